//! The caller's side of `send`: a record into its partition's batch, in the
//! caller's task, under the producer's lock; waiting (for room, for a topic's
//! metadata, for a partition to join the transaction) happens outside it.
//!
//! `State::append` is the decision for one record: batch it now, or say what
//! has to happen first. `Producer::enqueue` does what it says, and batches a
//! run of further records from the same call under one hold of the lock, since
//! the lock, the clock read and the wake-up cost more than the append itself
//! with small records.

use std::sync::Arc;
use std::time::Instant;

use super::accumulator::BATCH_OVERHEAD;
use super::batch::OutRecord;
use super::{
    Completion, Delivery, DeliveryError, Producer, ProducerRecord, SendError, SendErrorKind, Shared, State,
    TransactionError, now_ms,
};
use crate::types::TopicPartition;

/// The most records one hold of the lock batches: enough to spread its cost, few
/// enough (a few µs) that the background task is not kept from settling.
const RUN: usize = 64;

/// Where a caller's further records come from while the lock is held.
pub(super) type More<'a> = dyn FnMut() -> Option<(ProducerRecord, Completion)> + Send + 'a;

/// What [`State::append`] did with a record.
enum Append {
    /// Batched; `news` when the background task should hear of it (a batch opened
    /// or sealed).
    Batched { news: bool },
    /// Given back: something has to happen first.
    Refused(Refusal, ProducerRecord, Completion),
}

/// Why [`State::append`] gave a record back instead of batching it.
enum Refusal {
    /// The topic's partition count is not known yet: fetch its metadata.
    NoMetadata,
    /// The record names a partition the topic does not have.
    UnknownPartition {
        /// The partition it names.
        partition: i32,
        /// How many the topic has.
        partitions: i32,
    },
    /// Larger than `buffer.memory` could ever hold.
    TooLarge,
    /// `buffer.memory` is full or sealed batches already wait: wait for room.
    NoRoom,
    /// No transaction is open, or it failed.
    Transaction(TransactionError),
    /// The partition must join the transaction first.
    AddPartition(i32),
}

impl State {
    /// Batches `record` if nothing has to wait or fail first. `partitions` is a
    /// count the caller fetched itself, for a topic the cluster has not cached.
    fn append(
        &mut self,
        shared: &Shared,
        mut record: ProducerRecord,
        completion: Completion,
        partitions: Option<i32>,
        now_ms: &mut impl FnMut() -> i64,
    ) -> Append {
        let config = &shared.config;
        let Some(partitions) = self.partitions_of(&record.topic, &shared.cluster).or(partitions) else {
            return Append::Refused(Refusal::NoMetadata, record, completion);
        };
        if let Some(partition) = record.partition.filter(|p| !(0..partitions).contains(p)) {
            return Append::Refused(Refusal::UnknownPartition { partition, partitions }, record, completion);
        }
        // Held against buffer.memory: the record itself (Java counts whole batch
        // buffers; we hold no more than the records' bytes).
        let size = record.approx_size();
        if self.pending.too_large(size) {
            return Append::Refused(Refusal::TooLarge, record, completion);
        }
        if !self.pending.has_room(size) || self.core.backlog_full() {
            return Append::Refused(Refusal::NoRoom, record, completion);
        }
        if let Some(txn) = &self.txn {
            if let Err(e) = txn.check_send() {
                return Append::Refused(Refusal::Transaction(e), record, completion);
            }
            // A partition joins the transaction before a record of it is batched.
            let p = record.partition.unwrap_or_else(|| {
                let (topic, key) = (&record.topic, record.key.as_deref());
                State::partition_of(&mut self.null_keys, config, topic, key, partitions, size)
            });
            record.partition = Some(p);
            if txn.needs_partition(&record.topic, p) {
                return Append::Refused(Refusal::AddPartition(p), record, completion);
            }
        }
        let id = self.pending.admit(size, completion);
        let (topic, partition, r) = OutRecord::new(id, record, now_ms);
        let State { core, null_keys, .. } = self;
        let news = core.append(&topic, r, Instant::now, |r| {
            partition.unwrap_or_else(|| {
                let key = r.key.as_deref();
                State::partition_of(null_keys, config, &topic, key, partitions, r.approx_size())
            })
        });
        Append::Batched { news }
    }
}

impl Producer {
    /// Sends every record `records` yields, each with its tag, as
    /// [`send_tagged`](Self::send_tagged) would one by one, but batching a run of
    /// them under one hold of the producer's lock and one clock read: with small
    /// records that is most of what a `send` costs. Returns when the iterator is
    /// done. On an error, the records before the failed one are sent, the failed one
    /// comes back in the [`SendError`], and the ones after it are left in `records`.
    ///
    /// ```no_run
    /// # async fn demo(producer: cafe_kafka::Producer) -> Result<(), cafe_kafka::SendError> {
    /// use cafe_kafka::ProducerRecord;
    /// let mut orders = (0..1000u64).map(|i| (ProducerRecord::new("orders", i.to_string()), i));
    /// producer.send_tagged_all(&mut orders).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_tagged_all<I>(&self, records: &mut I) -> Result<(), SendError>
    where
        I: Iterator<Item = (ProducerRecord, u64)> + Send,
    {
        let mut more = || records.next().map(|(r, tag)| (r, Completion::Tagged(tag)));
        let Some(mut next) = more() else { return Ok(()) };
        if self.handle.shared.on_delivery.is_none() {
            return Err(SendError { kind: SendErrorKind::NoDeliveryHandler, record: Box::new(next.0) });
        }
        loop {
            match self.enqueue(next.0, next.1, &mut more).await? {
                Some(refused) => next = refused,
                None => match more() {
                    Some(r) => next = r,
                    None => return Ok(()),
                },
            }
        }
    }

    /// Batches `record`, waiting for what it needs first, then as many of `more`'s
    /// records as go in at once without waiting. A record of `more` that would have
    /// to wait comes back, for another call.
    pub(super) async fn enqueue(
        &self,
        record: ProducerRecord,
        completion: Completion,
        more: &mut More<'_>,
    ) -> Result<Option<(ProducerRecord, Completion)>, SendError> {
        let shared = &self.handle.shared;
        let config = &shared.config;
        let fail = |kind, record| Err(SendError { kind, record: Box::new(record) });
        let timeout = SendErrorKind::Timeout {
            max_block_ms: config.max_block.as_millis() as u64,
            buffer_memory: config.buffer_memory,
        };
        // `max.block.ms` bounds all the waiting of one call; the clock is read only
        // when there is a wait (a clock read per record is measurable).
        let mut deadline = None;
        let mut deadline = move || *deadline.get_or_insert_with(|| tokio::time::Instant::now() + config.max_block);
        let (mut room, mut fetched) = (None, None);
        let (mut record, mut completion) = (record, completion);
        loop {
            // The lock is held only in this block, never across an await (a held
            // guard would also make the future !Send).
            let refusal = {
                let mut st = shared.lock();
                if st.closing {
                    return fail(SendErrorKind::Closed, record);
                }
                // One timestamp for the records of one hold: they are handed over
                // within microseconds of each other.
                let mut now = None;
                let mut now_ms = || *now.get_or_insert_with(now_ms);
                match st.append(shared, record, completion, fetched, &mut now_ms) {
                    Append::Refused(why, r, c) => (why, r, c),
                    Append::Batched { mut news } => {
                        let mut left = None;
                        for _ in 1..RUN {
                            let Some((r, c)) = more() else { break };
                            match st.append(shared, r, c, None, &mut now_ms) {
                                Append::Batched { news: n } => news |= n,
                                Append::Refused(_, r, c) => {
                                    left = Some((r, c));
                                    break;
                                }
                            }
                        }
                        // Only a record refused by the core (over max.request.size) is settled here.
                        let reports = st.reports();
                        drop(st);
                        reports.hand_out(shared);
                        if news {
                            shared.wake.notify_one();
                        }
                        return Ok(left);
                    }
                }
            };
            let (why, r, c) = refusal;
            (record, completion) = (r, c);
            match why {
                Refusal::UnknownPartition { partition, partitions } => {
                    let topic = record.topic.to_string();
                    return fail(SendErrorKind::UnknownPartition { topic, partition, partitions }, record);
                }
                Refusal::TooLarge => {
                    let (size, max) = (record.approx_size() + BATCH_OVERHEAD, config.buffer_memory);
                    let err = DeliveryError::RecordTooLarge { size, max, setting: "buffer.memory" };
                    completion.complete(Delivery { topic: record.topic, partition: -1, result: Err(err) }, shared);
                    return Ok(None);
                }
                Refusal::Transaction(e) => return fail(SendErrorKind::Transaction(e), record),
                Refusal::AddPartition(p) => {
                    let tp = TopicPartition::new(Arc::clone(&record.topic), p);
                    if let Err(e) = self.add_to_transaction(&tp).await {
                        return fail(SendErrorKind::Transaction(e), record);
                    }
                }
                // A topic not seen yet: its metadata first (bounded by max.block.ms too).
                Refusal::NoMetadata => {
                    match tokio::time::timeout_at(deadline(), shared.cluster.topic_or_fetch(&record.topic)).await {
                        Ok(Ok(info)) => fetched = Some(info.partition_count()),
                        Ok(Err(e)) => return fail(SendErrorKind::Metadata(e), record),
                        Err(_) => return fail(timeout, record),
                    }
                }
                Refusal::NoRoom => match room.take() {
                    // No room: register for the wake-up, then look once more, so room
                    // freed in between is not missed.
                    None => {
                        let mut notified = Box::pin(shared.room.notified());
                        notified.as_mut().enable();
                        room = Some(notified);
                    }
                    Some(notified) => {
                        if tokio::time::timeout_at(deadline(), notified).await.is_err() {
                            return fail(timeout, record);
                        }
                    }
                },
            }
        }
    }
}
