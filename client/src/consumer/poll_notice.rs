//! When the consumer tells its group member that the user is polling, for
//! `max.poll.interval.ms` (the KIP-848 member leaves the group when it passes
//! without a poll). A notice at every call would wake the group task once per
//! record for a caller of `stream()`; at most one per `every` is enough.

use std::time::{Duration, Instant};

/// Notices at most every `every`: a tenth of `max.poll.interval.ms`, at most
/// 1 s. The member may then see the last poll up to `every` late, and so leave
/// up to that much early: 1 s of Java's 5-minute default.
#[derive(Debug)]
pub(crate) struct PollNotice {
    every: Duration,
    last: Option<Instant>,
}

impl PollNotice {
    pub(crate) fn new(max_poll_interval: Duration) -> Self {
        Self { every: (max_poll_interval / 10).min(Duration::from_secs(1)), last: None }
    }

    /// How often a caller waiting inside a poll should check [`due`](Self::due)
    /// again, so a long wait for records still counts as polling.
    pub(crate) fn every(&self) -> Duration {
        self.every
    }

    /// True when a notice is due at `now` (and counts it as sent).
    pub(crate) fn due(&mut self, now: Instant) -> bool {
        if self.last.is_some_and(|t| now < t + self.every) {
            return false;
        }
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_most_one_notice_per_tenth_of_the_interval_capped_at_a_second() {
        let mut n = PollNotice::new(Duration::from_millis(2_000));
        assert_eq!(n.every(), Duration::from_millis(200));
        let t0 = Instant::now();
        assert!(n.due(t0), "the first poll is noticed");
        assert!(!n.due(t0 + Duration::from_millis(199)));
        assert!(n.due(t0 + Duration::from_millis(200)));
        assert_eq!(PollNotice::new(Duration::from_secs(300)).every(), Duration::from_secs(1));
    }
}
