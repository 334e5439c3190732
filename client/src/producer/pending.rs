//! The records a producer has accepted and not yet settled, pure: the id each gets,
//! what its caller is waiting on (a future or a callback, `C`), the bytes they hold
//! against `buffer.memory`, and the `flush` calls waiting for them (`W`, their wakers).

use std::collections::VecDeque;

/// Accepted, unsettled records.
#[derive(Debug)]
pub(crate) struct Pending<C, W> {
    /// The id of `entries[0]`. Ids are given in order and mostly settled in order,
    /// so a ring indexed by `id - first` beats a map (no hashing per record); an
    /// entry settled out of order leaves a `None` until those before it are settled.
    first: u64,
    entries: VecDeque<Option<(usize, C)>>,
    /// Entries that are `Some`.
    live: usize,
    /// Bytes held by `entries`, against `limit`.
    buffered: usize,
    /// `buffer.memory`.
    limit: usize,
    /// Each waiting `flush`: the first id it does not wait for, how many records it
    /// still waits for, and its waker.
    flushes: Vec<(u64, usize, W)>,
}

impl<C, W> Pending<C, W> {
    /// An empty table holding at most `limit` bytes (`buffer.memory`).
    pub(crate) fn new(limit: usize) -> Self {
        Self { first: 0, entries: VecDeque::new(), live: 0, buffered: 0, limit, flushes: Vec::new() }
    }

    /// True if a record of `size` bytes can never fit, however long it waits.
    pub(crate) fn too_large(&self, size: usize) -> bool {
        size > self.limit
    }

    /// True if a record of `size` bytes fits now.
    pub(crate) fn has_room(&self, size: usize) -> bool {
        self.buffered + size <= self.limit
    }

    /// Takes in a record of `size` bytes, whose caller waits on `completion`; returns
    /// its id. The caller checked [`has_room`](Self::has_room).
    pub(crate) fn admit(&mut self, size: usize, completion: C) -> u64 {
        let id = self.next_id();
        self.buffered += size;
        self.live += 1;
        self.entries.push_back(Some((size, completion)));
        id
    }

    /// Settles record `id`: frees its bytes and returns its completion (`None` for an
    /// id settled before, which the core never reports twice), plus the wakers of the
    /// flushes that were waiting for it last.
    pub(crate) fn settle(&mut self, id: u64, flushed: &mut Vec<W>) -> Option<C> {
        let at = usize::try_from(id.checked_sub(self.first)?).ok()?;
        let (size, completion) = self.entries.get_mut(at)?.take()?;
        while let Some(None) = self.entries.front() {
            self.entries.pop_front();
            self.first += 1;
        }
        self.live -= 1;
        self.buffered -= size;
        let mut i = 0;
        while i < self.flushes.len() {
            let (below, remaining, _) = &mut self.flushes[i];
            if id < *below {
                *remaining -= 1;
                if *remaining == 0 {
                    flushed.push(self.flushes.swap_remove(i).2);
                    continue;
                }
            }
            i += 1;
        }
        Some(completion)
    }

    /// A flush of everything accepted so far: `Err(waker)` back when there is nothing
    /// to wait for, else the waker is kept until [`settle`](Self::settle) frees the
    /// last of those records.
    pub(crate) fn flush(&mut self, waker: W) -> Result<(), W> {
        if self.live == 0 {
            return Err(waker);
        }
        self.flushes.push((self.next_id(), self.live, waker));
        Ok(())
    }

    /// The id the next admitted record gets.
    fn next_id(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// True while a flush waits: the driver sends batches without waiting for `linger.ms`.
    pub(crate) fn flushing(&self) -> bool {
        !self.flushes.is_empty()
    }

    /// Bytes held now.
    pub(crate) fn buffered(&self) -> usize {
        self.buffered
    }

    /// Records accepted and not settled.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Everything still held, for a producer that stops with records unsettled
    /// (its runtime shut down): their completions, so they can be failed, not lost.
    pub(crate) fn drain(&mut self) -> (Vec<C>, Vec<W>) {
        self.buffered = 0;
        self.live = 0;
        self.first += self.entries.len() as u64;
        let flushes = self.flushes.drain(..).map(|f| f.2).collect();
        (self.entries.drain(..).flatten().map(|(_, c)| c).collect(), flushes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_are_held_until_settled() {
        let mut p = Pending::<&str, &str>::new(100);
        assert!(p.has_room(100) && !p.too_large(100) && p.too_large(101));
        let a = p.admit(60, "a");
        assert!(!p.has_room(41) && p.has_room(40));
        let b = p.admit(40, "b");
        assert_eq!((p.buffered(), p.len()), (100, 2));
        assert_eq!(p.settle(a, &mut Vec::new()), Some("a"));
        assert!(p.has_room(60) && !p.has_room(61));
        assert_eq!(p.settle(a, &mut Vec::new()), None, "settled twice");
        assert_eq!(p.settle(b, &mut Vec::new()), Some("b"));
        assert_eq!(p.buffered(), 0);
    }

    #[test]
    fn a_flush_waits_for_the_records_before_it_only() {
        let mut p = Pending::<&str, &str>::new(1000);
        assert_eq!(p.flush("nothing"), Err("nothing"), "nothing to wait for");
        let a = p.admit(1, "a");
        let b = p.admit(1, "b");
        p.flush("f1").unwrap();
        assert!(p.flushing());
        let c = p.admit(1, "c");
        p.flush("f2").unwrap();
        let mut woken = Vec::new();
        // Settled out of order, as partitions answer.
        p.settle(b, &mut woken);
        p.settle(c, &mut woken);
        assert!(woken.is_empty(), "a is still out");
        p.settle(a, &mut woken);
        assert_eq!(woken, ["f1", "f2"]);
        assert!(!p.flushing());
    }

    #[test]
    fn a_later_record_does_not_hold_up_an_earlier_flush() {
        let mut p = Pending::<&str, &str>::new(1000);
        let a = p.admit(1, "a");
        p.flush("f").unwrap();
        let b = p.admit(1, "b");
        let mut woken = Vec::new();
        p.settle(a, &mut woken);
        assert_eq!(woken, ["f"], "b came after the flush");
        assert_eq!(p.len(), 1);
        p.settle(b, &mut woken);
    }

    #[test]
    fn ids_stay_unique_across_out_of_order_settles() {
        let mut p = Pending::<u64, ()>::new(1000);
        let ids: Vec<u64> = (0..5).map(|i| p.admit(1, i)).collect();
        assert_eq!(ids, [0, 1, 2, 3, 4]);
        for id in [3, 1, 4] {
            assert_eq!(p.settle(id, &mut Vec::new()), Some(id));
        }
        assert_eq!(p.admit(1, 5), 5, "a new id, however the ring shrank");
        assert_eq!(p.settle(0, &mut Vec::new()), Some(0));
        assert_eq!(p.settle(2, &mut Vec::new()), Some(2));
        assert_eq!((p.len(), p.buffered()), (1, 1));
        assert_eq!(p.settle(5, &mut Vec::new()), Some(5));
        assert_eq!(p.settle(7, &mut Vec::new()), None, "never given");
        assert_eq!(p.admit(1, 6), 6);
    }

    #[test]
    fn drain_hands_back_every_completion() {
        let mut p = Pending::<&str, &str>::new(1000);
        p.admit(5, "a");
        p.admit(5, "b");
        p.flush("f").unwrap();
        let (mut records, flushes) = p.drain();
        records.sort();
        assert_eq!((records, flushes), (vec!["a", "b"], vec!["f"]));
        assert_eq!((p.buffered(), p.len(), p.flushing()), (0, 0, false));
    }
}
