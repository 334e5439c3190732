//! [`RecordStream`]: the consumer's records one at a time, as a
//! [`Stream`](futures_core::Stream) over [`Consumer::poll_max`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::{ConsumedRecord, Consumer, Error};

/// [`Consumer::stream`]: the consumer's records one by one, as a
/// [`Stream`](futures_core::Stream) (or through [`next`](RecordStream::next)).
pub struct RecordStream<'a> {
    state: StreamState<'a>,
}

type PollOne<'a> = Pin<Box<dyn Future<Output = (&'a mut Consumer, Result<Vec<ConsumedRecord>, Error>)> + Send + 'a>>;

enum StreamState<'a> {
    Idle(&'a mut Consumer),
    Polling(PollOne<'a>),
    /// Only while `poll_next` moves from one state to the other.
    Moving,
}

impl<'a> RecordStream<'a> {
    pub(super) fn new(consumer: &'a mut Consumer) -> Self {
        Self { state: StreamState::Idle(consumer) }
    }

    /// The next record (or error), without bringing in a `Stream` extension trait.
    pub async fn next(&mut self) -> Option<Result<ConsumedRecord, Error>> {
        std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *self), cx)).await
    }
}

impl<'a> futures_core::Stream for RecordStream<'a> {
    type Item = Result<ConsumedRecord, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            match std::mem::replace(&mut this.state, StreamState::Moving) {
                StreamState::Idle(consumer) => {
                    // One record per poll: what the stream has not yielded is never
                    // marked consumed, whenever the stream is dropped.
                    this.state = StreamState::Polling(Box::pin(async move {
                        let r = consumer.poll_max(1).await;
                        (consumer, r)
                    }));
                }
                StreamState::Polling(mut poll) => match poll.as_mut().poll(cx) {
                    Poll::Pending => {
                        this.state = StreamState::Polling(poll);
                        return Poll::Pending;
                    }
                    Poll::Ready((consumer, result)) => {
                        this.state = StreamState::Idle(consumer);
                        match result {
                            Ok(records) => {
                                if let Some(r) = records.into_iter().next() {
                                    return Poll::Ready(Some(Ok(r)));
                                }
                            }
                            Err(e) => return Poll::Ready(Some(Err(e))),
                        }
                    }
                },
                StreamState::Moving => return Poll::Ready(None),
            }
        }
    }
}
