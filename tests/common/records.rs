//! What the group tests count: the positions records were produced at (at once
//! or by a producer running through the test), each printed exactly once over
//! all members, and the group's committed offsets sampled while members come
//! and go, which must never move back.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{assert_success, bootstrap, json_lines, kafka_tool, run_cafe};

/// A (partition, offset) pair: the identity of one record within a topic.
pub type Pos = (i32, i64);

/// `cafe produce -t topic -n count --json`: the positions the records landed
/// at, every delivery successful.
pub fn produce(topic: &str, count: usize) -> BTreeSet<Pos> {
    let b = bootstrap();
    let out = run_cafe(&["-b", &b, "produce", "-t", topic, "-n", &count.to_string(), "--json"], b"");
    assert_success(&out, &format!("producing {count} events to {topic}"));
    let positions: BTreeSet<Pos> = json_lines(&out)
        .iter()
        .map(|v| {
            assert!(v.get("error").is_none(), "delivery failed: {v}");
            (v["partition"].as_i64().expect("partition") as i32, v["offset"].as_i64().expect("offset"))
        })
        .collect();
    assert_eq!(positions.len(), count, "one delivery report per event");
    positions
}

/// Records flowing while a test changes the group: `batch` records every
/// `pause` on a thread, until [`stop`](Self::stop).
pub struct SteadyProducer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<BTreeSet<Pos>>,
}

impl SteadyProducer {
    pub fn start(topic: &str, batch: usize, pause: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (stopped, topic) = (Arc::clone(&stop), topic.to_owned());
        let thread = std::thread::spawn(move || {
            let mut produced = BTreeSet::new();
            while !stopped.load(Ordering::Relaxed) {
                produced.extend(produce(&topic, batch));
                std::thread::sleep(pause);
            }
            produced
        });
        Self { stop, thread }
    }

    /// Stops after the batch under way; every position produced.
    pub fn stop(self) -> BTreeSet<Pos> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or_else(|e| std::panic::resume_unwind(e))
    }
}

/// Panics unless every position in `produced` was printed exactly once, and
/// nothing else was.
pub fn assert_exactly_once(printed: impl IntoIterator<Item = Pos>, produced: &BTreeSet<Pos>) {
    let mut seen: BTreeMap<Pos, usize> = BTreeMap::new();
    for p in printed {
        *seen.entry(p).or_insert(0) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<_> = produced.iter().filter(|p| !seen.contains_key(p)).collect();
    let extra: Vec<_> = seen.keys().filter(|p| !produced.contains(p)).collect();
    assert!(
        dups.is_empty() && missing.is_empty() && extra.is_empty(),
        "not exactly once: duplicates (pos -> times) {dups:?}, missing {missing:?}, not produced {extra:?}"
    );
}

/// Committed offsets of `group` on `topic` by partition, from Kafka's own tool
/// (`kafka-consumer-groups --describe`). `Err` with the tool's output when it
/// fails (e.g. while the coordinator loads or the group converts).
pub fn committed(group: &str, topic: &str) -> Result<BTreeMap<i32, i64>, String> {
    let b = bootstrap();
    let out = kafka_tool("consumer-groups", &["--bootstrap-server", &b, "--describe", "--group", group]);
    if !out.status.success() {
        return Err(format!("consumer-groups failed: {}{}", super::stdout(&out), super::stderr(&out)));
    }
    Ok(super::stdout(&out)
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 4 || cols[0] != group || cols[1] != topic {
                return None;
            }
            Some((cols[2].parse().ok()?, cols[3].parse().ok()?))
        })
        .collect())
}

/// `kafka-consumer-groups --describe --state` of `group`: its coordinator,
/// assignment strategy (the server assignor, e.g. `uniform`, for a
/// consumer-protocol group; the agreed protocol, e.g. `range`, for a classic
/// one), state and member count.
pub fn group_state(group: &str) -> String {
    let b = bootstrap();
    let out = kafka_tool("consumer-groups", &["--bootstrap-server", &b, "--describe", "--group", group, "--state"]);
    format!("{}{}", super::stdout(&out), super::stderr(&out))
}

/// Samples [`committed`] on a thread while the test runs.
pub struct OffsetMonitor {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<BTreeMap<i32, i64>>>>,
    thread: JoinHandle<()>,
}

impl OffsetMonitor {
    pub fn start(group: &str, topic: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<BTreeMap<i32, i64>>>> = Arc::default();
        let (stopped, into, group, topic) =
            (Arc::clone(&stop), Arc::clone(&samples), group.to_owned(), topic.to_owned());
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                if let Ok(c) = committed(&group, &topic) {
                    into.lock().unwrap_or_else(|p| p.into_inner()).push(c);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        });
        Self { stop, samples, thread }
    }

    /// Stops sampling; the samples taken, oldest first.
    pub fn stop(self) -> Vec<BTreeMap<i32, i64>> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let samples = self.samples.lock().unwrap_or_else(|p| p.into_inner());
        samples.clone()
    }

    /// Stops sampling; panics unless it saw the group at least `min_samples`
    /// times and no partition's committed offset ever went back.
    pub fn assert_never_back(self, min_samples: usize) {
        let samples = self.stop();
        assert!(samples.len() >= min_samples, "the monitor saw the group {} times, want {min_samples}", samples.len());
        assert_never_back(&samples);
    }
}

/// Panics unless no partition's committed offset goes back from one sample to a later one.
pub fn assert_never_back(samples: &[BTreeMap<i32, i64>]) {
    let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
    for (i, sample) in samples.iter().enumerate() {
        for (p, offset) in sample {
            if let Some(before) = highest.get(p) {
                assert!(
                    offset >= before,
                    "partition {p}'s committed offset went back: {before} -> {offset} (sample {i} of {samples:?})"
                );
            }
            highest.insert(*p, *offset);
        }
    }
}

/// Polls `check` every 200 ms until it returns Some, or panics after `limit`
/// with `what` and the diagnostics `explain` gives.
pub fn wait_until<T>(
    limit: Duration,
    what: &str,
    mut check: impl FnMut() -> Option<T>,
    explain: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(t) = check() {
            return t;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}\n{}", explain());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
