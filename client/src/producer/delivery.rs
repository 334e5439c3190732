//! How the callers of `send` hear of their records: a future, a callback, or the
//! producer's handler with a tag; and the delivery reports the background task
//! takes from the core under the lock and hands out after it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use super::Shared;
use super::accumulator::{DeliveryError, Outcome};
use super::record::{Delivery, RecordMetadata};

/// What a producer made with [`Producer::with_delivery_handler`](super::Producer::with_delivery_handler) calls for each
/// record sent with [`Producer::send_tagged`](super::Producer::send_tagged): the tag given with the record, and
/// its delivery report. It runs on the producer's background task (or at once, in
/// the sending task, for a record refused before batching), so it should be quick
/// and must not block.
///
/// One handler for the producer and a number per record is librdkafka's model
/// (`dr_msg_cb` and a per-message opaque). It costs nothing per record, where a
/// closure per record ([`Producer::send_with_callback`](super::Producer::send_with_callback)) is an allocation, made on
/// the sending thread and freed on the producer's, and an owned `Delivery` is a
/// reference count moved between the two (both together: a third of the client's
/// CPU with 100-byte records). The handler is lent one `Delivery` per batch,
/// changed only in its offset from one record to the next.
pub type DeliveryHandler = Box<dyn Fn(u64, &Delivery) + Send + Sync>;

/// How a record's caller hears of its delivery.
pub(crate) enum Completion {
    Future(oneshot::Sender<Delivery>),
    Callback(Box<dyn FnOnce(Delivery) + Send>),
    /// For the producer's [`DeliveryHandler`].
    Tagged(u64),
}

impl Completion {
    pub(super) fn complete(self, d: Delivery, shared: &Shared) {
        match self {
            // The caller may have dropped its future: it did not want to know.
            Completion::Future(tx) => drop(tx.send(d)),
            Completion::Callback(f) => f(d),
            // `send_tagged` takes no record without a handler.
            Completion::Tagged(tag) => {
                if let Some(handler) = &shared.on_delivery {
                    handler(tag, &d);
                }
            }
        }
    }
}

/// Delivery reports taken from the core under the lock, handed out after it: each
/// outcome with the waiters of its records (`completions`, in the same order, as
/// (index in the outcome, waiter)), so a record's `Delivery` is built only outside
/// the lock, and only for a record someone waits for.
#[derive(Default)]
#[must_use]
pub(crate) struct Reports {
    pub(super) outcomes: Vec<(Outcome, usize)>,
    pub(super) completions: Vec<(usize, Completion)>,
    pub(super) flushed: Vec<oneshot::Sender<()>>,
}

impl Reports {
    /// Tells every waiter; wakes `send`s waiting for the room their records freed.
    pub(super) fn hand_out(self, shared: &Shared) {
        let freed = !self.completions.is_empty();
        let mut completions = self.completions.into_iter();
        for (outcome, n) in &self.outcomes {
            // The delivery lent to the handler, for the whole outcome.
            let mut lent: Option<Delivery> = None;
            for (i, c) in completions.by_ref().take(*n) {
                match (c, &shared.on_delivery) {
                    (Completion::Tagged(tag), Some(handler)) => {
                        let d = lent.get_or_insert_with(|| outcome.delivery(i));
                        outcome.move_to(d, i);
                        handler(tag, d);
                    }
                    (c, _) => c.complete(outcome.delivery(i), shared),
                }
            }
        }
        for f in self.flushed {
            let _ = f.send(());
        }
        if freed {
            shared.room.notify_waiters();
        }
    }
}

/// The delivery of one record: resolves to where it landed, or why it was not
/// delivered. Dropping it does not cancel the send.
#[must_use = "the record is sent either way; await this to learn its offset or error"]
pub struct DeliveryFuture {
    pub(super) rx: oneshot::Receiver<Delivery>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, DeliveryError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx).poll(cx).map(|r| match r {
            Ok(d) => d.into_result(),
            // The background task went away without settling it (runtime shut down).
            Err(_) => Err(DeliveryError::Stopped),
        })
    }
}
