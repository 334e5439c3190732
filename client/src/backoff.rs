//! The one retry/backoff policy of the project: exponential with ±20 % jitter,
//! capped, like the Java client's `retry.backoff.ms` / `retry.backoff.max.ms`.
//!
//! Pure: callers pass in a random source and decide themselves whether to sleep,
//! so state machines can use it with virtual time.

use std::time::Duration;

/// `retry.backoff.ms` and `retry.backoff.max.ms`, Java client defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BackoffPolicy {
    /// `retry.backoff.ms`: the delay before the first retry. Default 100 ms.
    pub initial: Duration,
    /// `retry.backoff.max.ms`: the cap the doubling stops at (jitter may add up
    /// to 20 % on top). Default 1000 ms.
    pub max: Duration,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        Self { initial: Duration::from_millis(100), max: Duration::from_millis(1000) }
    }
}

impl BackoffPolicy {
    /// Delay before retry number `attempt` (0-based): `initial * 2^attempt`, capped at
    /// `max`, then scaled by a jitter factor in [0.8, 1.2) (the Java client's ±20 %),
    /// so that many clients failing together do not retry in lock-step.
    /// `jitter_unit` is the random draw, in [0, 1] (clamped); 0.5 means no jitter.
    pub fn delay(&self, attempt: u32, jitter_unit: f64) -> Duration {
        let base = self.initial.as_secs_f64() * 2f64.powi(attempt.min(30) as i32);
        let capped = base.min(self.max.as_secs_f64());
        let factor = 0.8 + 0.4 * jitter_unit.clamp(0.0, 1.0);
        Duration::from_secs_f64((capped * factor).min(self.max.as_secs_f64() * 1.2))
    }

    /// Like [`delay`](Self::delay) with thread-local randomness; for drivers, not state machines.
    pub fn delay_random(&self, attempt: u32) -> Duration {
        self.delay(attempt, rand::random::<f64>())
    }
}

/// Counts attempts of one operation and hands out delays from a [`BackoffPolicy`].
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    attempt: u32,
}

impl Backoff {
    /// Starts at attempt 0, so the first [`next_delay`](Self::next_delay) is about `policy.initial`.
    pub fn new(policy: BackoffPolicy) -> Self {
        Self { policy, attempt: 0 }
    }

    /// The delay before the next retry; each call counts one more attempt.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.policy.delay_random(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        d
    }

    /// How many delays have been handed out since creation or the last [`reset`](Self::reset).
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Back to attempt 0, after the operation succeeded.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_then_caps() {
        let p = BackoffPolicy::default();
        // jitter 0.5 -> factor 1.0
        assert_eq!(p.delay(0, 0.5), Duration::from_millis(100));
        assert_eq!(p.delay(1, 0.5), Duration::from_millis(200));
        assert_eq!(p.delay(3, 0.5), Duration::from_millis(800));
        assert_eq!(p.delay(4, 0.5), Duration::from_millis(1000));
        assert_eq!(p.delay(u32::MAX, 0.5), Duration::from_millis(1000));
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let p = BackoffPolicy::default();
        assert_eq!(p.delay(0, 0.0), Duration::from_millis(80));
        assert!(p.delay(0, 1.0) <= Duration::from_millis(120));
        assert!(p.delay(10, 1.0) <= Duration::from_millis(1200));
    }
}
