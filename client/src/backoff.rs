//! The one retry/backoff policy of the project (exponential with ±20 % jitter,
//! capped, like the Java client's `retry.backoff.ms` / `retry.backoff.max.ms`) and
//! the one retry loop built on it, `retry`: a policy, a stop rule, an operation.
//!
//! The policy is pure: callers pass in the random draw and decide themselves
//! whether to sleep, so state machines use it with virtual time. The loop is for
//! the drivers around them, and sleeps on tokio's clock.

use std::time::Duration;

use tokio::time::Instant;

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

/// When [`retry`] gives up: after so many retries, at a deadline, or at whichever
/// comes first. Every rule has a bound, so nothing retries forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StopRule {
    retries: Option<u32>,
    deadline: Option<Duration>,
}

impl StopRule {
    /// At most `n` retries after the first attempt (`n + 1` attempts in all), as
    /// Kafka's `retries` setting counts them.
    pub(crate) const fn retries(n: u32) -> Self {
        Self { retries: Some(n), deadline: None }
    }

    /// Retries until `timeout` has passed since the first attempt began; no
    /// attempt starts after that.
    pub(crate) const fn deadline(timeout: Duration) -> Self {
        Self { retries: None, deadline: Some(timeout) }
    }

    /// This rule and a deadline: whichever is reached first ends the retries.
    #[cfg_attr(not(test), expect(dead_code, reason = "every call site today keeps the one bound it had"))]
    pub(crate) const fn with_deadline(self, timeout: Duration) -> Self {
        Self { deadline: Some(timeout), ..self }
    }
}

/// How one attempt of an operation given to [`retry`] failed.
#[derive(Debug)]
pub(crate) enum Failure<E> {
    /// Another attempt may succeed, after the backoff.
    Retriable {
        /// What went wrong; returned when the retries run out.
        error: E,
        /// How long the broker asked the client to hold off (KIP-219
        /// `throttle_time_ms`; zero when it did not): the wait before the next
        /// attempt is at least this long.
        throttle: Duration,
    },
    /// Retrying cannot help: [`retry`] returns the error at once.
    Fatal(E),
}

impl<E> Failure<E> {
    /// Retriable, without a broker throttle (no response, or one that has none).
    pub(crate) fn retriable(error: E) -> Self {
        Failure::Retriable { error, throttle: Duration::ZERO }
    }

    /// Retriable, from a response that carried `throttle_time_ms` (a negative
    /// value counts as zero).
    pub(crate) fn throttled(error: E, throttle_time_ms: i32) -> Self {
        let throttle = Duration::from_millis(throttle_time_ms.max(0) as u64);
        Failure::Retriable { error, throttle }
    }

    /// Not worth retrying.
    pub(crate) fn fatal(error: E) -> Self {
        Failure::Fatal(error)
    }

    /// Retriable (without a throttle) or fatal as `retriable` says, usually the
    /// error's own `is_retriable()`.
    pub(crate) fn new(error: E, retriable: bool) -> Self {
        if retriable { Self::retriable(error) } else { Self::fatal(error) }
    }
}

/// The one retry loop: runs `op` until it succeeds, fails fatally, or `stop` says
/// to give up, and returns its value or its last error; it never gives up
/// silently and never retries without a bound.
///
/// `op` is given the attempt number, 0 for the first. Before attempt `n` it waits
/// `policy`'s delay for retry `n - 1` (jittered), or the broker's throttle when
/// that is longer. With a deadline the wait is cut short so that the last attempt
/// starts at the deadline at the latest; a throttle that would end past the
/// deadline ends the retries instead, as the broker is not to be asked again
/// before then. Each retry is logged at debug level, naming `what` is retried.
///
/// Sleeps on tokio's clock (so tests can pause it); the state machines, which take
/// time as an argument, use [`BackoffPolicy::delay`] instead.
pub(crate) async fn retry<T, E, F, Fut>(what: &str, policy: BackoffPolicy, stop: StopRule, mut op: F) -> Result<T, E>
where
    E: std::fmt::Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let deadline = stop.deadline.map(|timeout| Instant::now() + timeout);
    let mut attempt = 0u32;
    loop {
        let (error, throttle) = match op(attempt).await {
            Ok(value) => return Ok(value),
            Err(Failure::Fatal(error)) => return Err(error),
            Err(Failure::Retriable { error, throttle }) => (error, throttle),
        };
        if stop.retries.is_some_and(|n| attempt >= n) {
            tracing::debug!(what, attempts = attempt + 1, %error, "giving up: no retries left");
            return Err(error);
        }
        let mut wait = policy.delay_random(attempt).max(throttle);
        if let Some(deadline) = deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || throttle > left {
                tracing::debug!(what, attempts = attempt + 1, %error, "giving up: deadline reached");
                return Err(error);
            }
            wait = wait.min(left);
        }
        attempt = attempt.saturating_add(1);
        tracing::debug!(what, retry = attempt, wait_ms = wait.as_millis() as u64, %error, "retrying");
        tokio::time::sleep(wait).await;
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

    /// A retry test's operation: fails with its attempt number (retriable, or
    /// throttled on the first attempt by `first_throttle_ms`) until attempt
    /// `succeed_at`, and records when each attempt started (paused clock).
    struct Flaky {
        started: Vec<Duration>,
        origin: Instant,
    }

    impl Flaky {
        fn new() -> Self {
            Self { started: Vec::new(), origin: Instant::now() }
        }

        async fn run(&mut self, stop: StopRule, succeed_at: Option<u32>, first_throttle_ms: i32) -> Result<u32, u32> {
            let (started, origin) = (&mut self.started, self.origin);
            retry("a test operation", BackoffPolicy::default(), stop, |attempt| {
                started.push(origin.elapsed());
                async move {
                    match attempt {
                        n if Some(n) == succeed_at => Ok(n),
                        0 if first_throttle_ms > 0 => Err(Failure::throttled(0, first_throttle_ms)),
                        n => Err(Failure::retriable(n)),
                    }
                }
            })
            .await
        }

        /// The waits between consecutive attempts.
        fn waits(&self) -> Vec<Duration> {
            self.started.windows(2).map(|w| w[1] - w[0]).collect()
        }
    }

    fn within_jitter(wait: Duration, base_ms: u64) -> bool {
        let base = Duration::from_millis(base_ms);
        wait >= base.mul_f64(0.8) && wait <= base.mul_f64(1.2)
    }

    #[tokio::test(start_paused = true)]
    async fn stops_after_the_retries_with_the_last_error() {
        let mut op = Flaky::new();
        assert_eq!(op.run(StopRule::retries(3), None, 0).await, Err(3));
        assert_eq!(op.started.len(), 4, "the first attempt and 3 retries");
    }

    #[tokio::test(start_paused = true)]
    async fn success_ends_the_retries() {
        let mut op = Flaky::new();
        assert_eq!(op.run(StopRule::retries(10), Some(2), 0).await, Ok(2));
        assert_eq!(op.started.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn stops_at_the_deadline_and_tries_once_more_there() {
        let mut op = Flaky::new();
        let last = op.run(StopRule::deadline(Duration::from_secs(1)), None, 0).await.unwrap_err();
        // 100, 200, 400 ms (±20 %), then the wait is cut to the deadline.
        assert_eq!(*op.started.last().unwrap(), Duration::from_secs(1));
        assert!(op.started.iter().all(|t| *t <= Duration::from_secs(1)), "{:?}", op.started);
        assert_eq!(last as usize, op.started.len() - 1, "the last attempt's error");
        assert!((4..=5).contains(&op.started.len()), "{:?}", op.started);
    }

    #[tokio::test(start_paused = true)]
    async fn either_bound_of_a_combined_rule_stops() {
        let mut op = Flaky::new();
        assert_eq!(op.run(StopRule::retries(2).with_deadline(Duration::from_secs(3600)), None, 0).await, Err(2));
        let mut op = Flaky::new();
        op.run(StopRule::retries(1000).with_deadline(Duration::from_millis(500)), None, 0).await.unwrap_err();
        assert_eq!(*op.started.last().unwrap(), Duration::from_millis(500));
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_stops_at_once() {
        let started = Instant::now();
        let mut calls = 0;
        let r: Result<(), &str> = retry("a test operation", BackoffPolicy::default(), StopRule::retries(5), |_| {
            calls += 1;
            async { Err(Failure::fatal("refused")) }
        })
        .await;
        assert_eq!(r, Err("refused"));
        assert_eq!(calls, 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_broker_throttle_lengthens_the_wait() {
        let mut op = Flaky::new();
        assert_eq!(op.run(StopRule::retries(2), Some(2), 3000).await, Ok(2));
        let waits = op.waits();
        // KIP-219: at least the throttle, not the 100 ms backoff.
        assert_eq!(waits[0], Duration::from_secs(3));
        // The next wait is the policy's again (retry 1: 200 ms).
        assert!(within_jitter(waits[1], 200), "{waits:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_throttle_past_the_deadline_ends_the_retries() {
        let mut op = Flaky::new();
        assert_eq!(op.run(StopRule::deadline(Duration::from_secs(1)), None, 5000).await, Err(0));
        assert_eq!(op.started, vec![Duration::ZERO]);
    }

    #[tokio::test(start_paused = true)]
    async fn waits_grow_as_the_policy_says() {
        let mut op = Flaky::new();
        op.run(StopRule::retries(6), None, 0).await.unwrap_err();
        let waits = op.waits();
        assert_eq!(waits.len(), 6);
        for (wait, base_ms) in waits.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(within_jitter(*wait, base_ms), "{wait:?} for {base_ms} ms in {waits:?}");
        }
    }
}
