//! Idempotent produce, pure: the producer id and epoch, the next sequence number of
//! every partition, and the partitions where a batch failed for good under some
//! producer id (a "gap" the broker will never see filled).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use super::batch::{Idempotence, SealedBatch};

/// A topic-partition as the producer keys it (`Arc<str>`: cloned per batch, not per record).
pub(crate) type PartitionKey = (Arc<str>, i32);

/// Producer id, epoch and sequences; `current` is `None` without idempotence.
#[derive(Debug, Default)]
pub(crate) struct ProducerIds {
    current: Option<(i64, i16)>,
    sequences: HashMap<PartitionKey, i32>,
    /// (producer id, topic, partition) where a batch failed for good: the broker will
    /// refuse every later sequence of that producer id there (OUT_OF_ORDER_SEQUENCE_NUMBER),
    /// so those batches move to a fresh producer id instead of retrying in vain.
    gaps: HashSet<(i64, Arc<str>, i32)>,
    /// Per partition, the producer id the broker acknowledged a batch of there and
    /// the highest last sequence it acknowledged under it. Until a partition has
    /// one under the current id, the broker may hold no state for the producer
    /// there, and such a broker takes whatever sequence comes first.
    acked: HashMap<PartitionKey, (i64, i32)>,
}

/// True when sequence `a` is `b` or comes before it. Sequences wrap at `i32::MAX`;
/// of two sequences a partition can have in play at once, the one less than half
/// the range behind is the earlier.
fn seq_at_or_before(a: i32, b: i32) -> bool {
    (b.wrapping_sub(a) & i32::MAX) < (1 << 30)
}

impl ProducerIds {
    pub(crate) fn new(current: Option<(i64, i16)>) -> Self {
        Self { current, ..Self::default() }
    }

    /// True with idempotence: sequences must reach each partition in order.
    pub(crate) fn enabled(&self) -> bool {
        self.current.is_some()
    }

    /// The producer id batches are sealed under now.
    pub(crate) fn current(&self) -> Option<(i64, i16)> {
        self.current
    }

    /// Producer id, epoch and base sequence for the next `count` records of
    /// `topic[partition]`; `None` without idempotence.
    pub(crate) fn next(&mut self, topic: &Arc<str>, partition: i32, count: usize) -> Option<Idempotence> {
        let (producer_id, producer_epoch) = self.current?;
        let seq = self.sequences.entry((topic.clone(), partition)).or_insert(0);
        let base_sequence = *seq;
        // Kafka sequence numbers wrap at i32::MAX back to 0.
        *seq = seq.wrapping_add(count as i32) & i32::MAX;
        Some(Idempotence { producer_id, producer_epoch, base_sequence })
    }

    /// True when `b` was sealed under a producer id that has a gap in its partition.
    pub(crate) fn is_gapped(&self, b: &SealedBatch) -> bool {
        b.idem.is_some_and(|i| self.gaps.contains(&(i.producer_id, b.topic.clone(), b.partition)))
    }

    /// Batches sealed under (producer id, topic, partition) failed for good. Returns
    /// true when one of them was under the current id, which must then be replaced.
    pub(crate) fn record_gaps(&mut self, failed: &[(i64, Arc<str>, i32)]) -> bool {
        let Some((current, _)) = self.current else { return false };
        let mut renew = false;
        for (pid, topic, partition) in failed {
            renew |= *pid == current;
            self.gaps.insert((*pid, topic.clone(), *partition));
        }
        renew
    }

    /// A new producer id from InitProducerId: sequences start from 0 again.
    pub(crate) fn renew(&mut self, id: (i64, i16)) {
        self.current = Some(id);
        self.sequences.clear();
    }

    /// The broker acknowledged `b` (written, or a duplicate of what was).
    pub(crate) fn acked(&mut self, b: &SealedBatch) {
        let Some(i) = b.idem else { return };
        let last = i.base_sequence.wrapping_add(b.len().saturating_sub(1) as i32) & i32::MAX;
        let e = self.acked.entry((b.topic.clone(), b.partition)).or_insert((i.producer_id, last));
        if e.0 != i.producer_id || seq_at_or_before(e.1, last) {
            *e = (i.producer_id, last);
        }
    }

    /// True when the broker acknowledged a batch of `b`'s partition under `b`'s
    /// producer id: it holds the producer's state there and checks sequences.
    pub(crate) fn established(&self, b: &SealedBatch) -> bool {
        let id = b.idem.map(|i| i.producer_id);
        self.acked.get(&(b.topic.clone(), b.partition)).is_some_and(|(pid, _)| Some(*pid) == id)
    }

    /// True when the broker acknowledged a later sequence of `b`'s partition than
    /// `b`'s, under `b`'s producer id: `b` can never be written under that id.
    pub(crate) fn overtaken(&self, b: &SealedBatch) -> bool {
        let Some(i) = b.idem else { return false };
        self.acked
            .get(&(b.topic.clone(), b.partition))
            .is_some_and(|(pid, last)| *pid == i.producer_id && seq_at_or_before(i.base_sequence, *last))
    }

    /// `b` under the current producer id with fresh sequences, if it carries an older
    /// one (see [`SealedBatch::reseal`] for when that is safe).
    pub(crate) fn move_to_current(&mut self, b: SealedBatch) -> SealedBatch {
        let current = self.current.map(|(id, _)| id);
        if b.idem.map(|i| i.producer_id) == current {
            return b;
        }
        match self.next(&b.topic.clone(), b.partition, b.len()) {
            Some(idem) => b.reseal(idem),
            None => b,
        }
    }
}
