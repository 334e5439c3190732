//! The fault suite: real brokers broken while `cafe` produces and consumes.
//!
//! Runs against the 3-node KRaft cluster of `scripts/kafka.sh up --nodes 3`
//! (127.0.0.1:19092-19094, topics with replication factor 3, min.insync.replicas=2),
//! which it starts when it is not up; it never touches the shared single broker.
//! Nodes are killed with `kill -9` and started again on their data. The group
//! scenarios run with classic members and with KIP-848 consumer-protocol members
//! (`--group-protocol consumer`), the protocol a parameter of the one scenario.
//!
//! `cargo test --test faults` runs the short set (a few broker restarts, slow
//! processing). `make faults` sets `CAFE_FAULTS_FULL=1` and runs every scenario at
//! full size (`--include-ignored`). Each scenario prints its figures and runs within
//! a bounded time; the tests of this binary run one at a time (they share the cluster).

mod common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::consume_json::records_in;
use common::{
    Background, BackgroundEnd, kafka_tool, repo_root, run_cafe_within, run_with_deadline, stderr, stdout, unique_topic,
};
use serde_json::Value;

const CLUSTER: &str = "127.0.0.1:19092,127.0.0.1:19093,127.0.0.1:19094";

/// One scenario at a time: they kill nodes of the one cluster.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn full() -> bool {
    std::env::var("CAFE_FAULTS_FULL").is_ok_and(|v| v == "1")
}

fn kafka_sh(args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/kafka.sh")).args(args);
    run_with_deadline(cmd, b"", Duration::from_secs(180))
}

/// The cluster up with all three nodes (a node left stopped by a failed run is started).
fn ensure_cluster() {
    let out = kafka_sh(&["up", "--nodes", "3"]);
    assert!(out.status.success(), "cannot start the 3-node cluster:\n{}", stderr(&out));
    for n in ["1", "2", "3"] {
        let out = kafka_sh(&["start", n]);
        assert!(out.status.success(), "cannot start node {n}:\n{}", stderr(&out));
    }
}

fn kill_node(n: i32) {
    let out = kafka_sh(&["kill", &n.to_string()]);
    assert!(out.status.success(), "kill node {n}: {}", stderr(&out));
}

fn start_node(n: i32) {
    let out = kafka_sh(&["start", &n.to_string()]);
    assert!(out.status.success(), "start node {n}: {}", stderr(&out));
}

/// `cafe -b CLUSTER args...` within `limit`.
fn cafe(args: &[&str], limit: Duration) -> Output {
    let mut all = vec!["-b", CLUSTER];
    all.extend_from_slice(args);
    run_cafe_within(&all, b"", limit)
}

fn create_topic(name: &str, partitions: i32) {
    let p = partitions.to_string();
    let out =
        cafe(&["topic", "create", name, "--partitions", &p, "--replication-factor", "3"], Duration::from_secs(60));
    assert!(out.status.success(), "create {name}: {}", stderr(&out));
}

/// Leader of `topic[partition]` as `cafe topic describe` reports it.
fn leader_of(topic: &str, partition: i32) -> i32 {
    let out = cafe(&["topic", "describe", topic], Duration::from_secs(60));
    let prefix = format!("partition {partition} leader ");
    stdout(&out)
        .lines()
        .find_map(|l| l.trim().strip_prefix(&prefix)?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no leader for {topic}[{partition}] in:\n{}", stdout(&out)))
}

/// The group's coordinator node id, from `kafka-consumer-groups --describe --state`.
fn coordinator_of(group: &str) -> Option<i32> {
    group_state(group).map(|(coordinator, _)| coordinator)
}

/// The group's coordinator node id and assignment strategy (the column after
/// it; blank, so the state, for an empty classic group), from
/// `kafka-consumer-groups --describe --state`.
fn group_state(group: &str) -> Option<(i32, String)> {
    let out =
        kafka_tool("consumer-groups", &["--bootstrap-server", CLUSTER, "--describe", "--group", group, "--state"]);
    let text = stdout(&out);
    let line = text.lines().find(|l| l.starts_with(group))?;
    let open = line.find('(')?;
    let close = line[open..].find(')')? + open;
    let coordinator = line[open + 1..close].trim().parse().ok()?;
    Some((coordinator, line[close + 1..].split_whitespace().next().unwrap_or_default().to_owned()))
}

/// The coordinator of a group with members, after checking that the group
/// speaks `protocol`: a KIP-848 group shows the broker's assignor (`uniform`
/// by default), a classic one its members' (cafe's `range` by default).
fn coordinator_checked(group: &str, protocol: Protocol) -> i32 {
    let (coordinator, strategy) = group_state(group).expect("the group has a coordinator");
    let kip848 = strategy == "uniform";
    assert_eq!(kip848, matches!(protocol, Protocol::Consumer), "group {group} of {protocol:?} members: {strategy}");
    coordinator
}

/// Committed offsets per partition from `kafka-consumer-groups --describe --offsets`
/// (partitions without a committed offset are left out).
fn committed_offsets(group: &str) -> BTreeMap<i32, i64> {
    let out =
        kafka_tool("consumer-groups", &["--bootstrap-server", CLUSTER, "--describe", "--group", group, "--offsets"]);
    let mut m = BTreeMap::new();
    for line in stdout(&out).lines().filter(|l| l.starts_with(group)) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if let (Some(p), Some(o)) = (f.get(2).and_then(|p| p.parse().ok()), f.get(3).and_then(|o| o.parse().ok())) {
            m.insert(p, o);
        }
    }
    m
}

/// Polls the group's committed offsets until stopped; every sample, in order.
struct OffsetMonitor {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<BTreeMap<i32, i64>>>,
}

impl OffsetMonitor {
    fn start(group: &str) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, g) = (Arc::clone(&stop), group.to_owned());
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !s.load(Ordering::SeqCst) {
                samples.push(committed_offsets(&g));
                std::thread::sleep(Duration::from_millis(300));
            }
            samples.push(committed_offsets(&g));
            samples
        });
        Self { stop, thread }
    }

    /// Stops; returns (samples, decreases seen) and panics on none.
    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let samples = self.thread.join().expect("monitor thread");
        let mut last: BTreeMap<i32, i64> = BTreeMap::new();
        let mut decreases = Vec::new();
        for s in &samples {
            for (p, o) in s {
                if let Some(prev) = last.get(p).filter(|prev| o < prev) {
                    decreases.push(format!("partition {p}: {prev} -> {o}"));
                }
                last.insert(*p, *o);
            }
        }
        (samples.len(), decreases)
    }
}

/// What produce runs reported: event ids acknowledged and failed, and how many
/// records were asked for (each must have exactly one report).
#[derive(Debug, Default)]
struct Produced {
    sent: usize,
    reports: usize,
    acked: HashSet<String>,
    failed: HashSet<String>,
    runs: usize,
}

impl Produced {
    fn add(&mut self, out: &Output, n: usize) {
        self.runs += 1;
        self.sent += n;
        for line in stdout(out).lines().filter(|l| l.starts_with('{')) {
            let v: serde_json::Value = serde_json::from_str(line).expect("a JSON report");
            let id = v["id"].as_str().expect("report id").to_owned();
            self.reports += 1;
            if v.get("error").is_some() {
                self.failed.insert(id);
            } else {
                self.acked.insert(id);
            }
        }
        let code = out.status.code();
        assert!(
            code == Some(0) || code == Some(5),
            "produce exited with {:?} (0 or 5 expected):\n{}",
            out.status,
            stderr(out)
        );
    }
}

/// Runs `cafe produce` of `n` idempotent acks=all events, `runs` times or until `stop`.
fn produce_loop(topic: String, n: usize, runs: usize, stop: Arc<AtomicBool>, pause: Duration) -> Produced {
    let mut p = Produced::default();
    let count = n.to_string();
    for _ in 0..runs {
        let out = cafe(
            &["produce", "-t", &topic, "-n", &count, "--acks", "all", "--enable-idempotence", "--json"],
            Duration::from_secs(180),
        );
        p.add(&out, n);
        if stop.load(Ordering::SeqCst) {
            break;
        }
        std::thread::sleep(pause);
    }
    p
}

/// Event ids of the records a `cafe consume --json` printed.
fn consumed_ids(records: &[Value]) -> Vec<String> {
    records.iter().filter_map(|v| v["value"]["event_id"].as_str().map(String::from)).collect()
}

/// Every event in the topic, read by a fresh group from the start: id -> copies.
fn log_contents(topic: &str) -> HashMap<String, usize> {
    let group = unique_topic("faults-reader");
    let out = cafe(&["consume", "-t", topic, "-g", &group, "--json", "--idle-exit", "6s"], Duration::from_secs(180));
    assert!(out.status.success(), "reading {topic} back: {}", stderr(&out));
    let mut m = HashMap::new();
    for id in consumed_ids(&records_in(&out)) {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

/// The group protocol a scenario's members speak.
#[derive(Clone, Copy, Debug)]
enum Protocol {
    /// JoinGroup/SyncGroup/Heartbeat, eager (`cafe consume`'s default).
    Classic,
    /// KIP-848 `ConsumerGroupHeartbeat` (`--group-protocol consumer`).
    Consumer,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Classic => "classic",
            Protocol::Consumer => "consumer",
        }
    }

    /// `cafe consume` flags for a member of `group` that heartbeats every second
    /// and is taken for dead after `session_ms` without one. KIP-848 keeps both
    /// on the broker: they become the group's `consumer.session.timeout.ms` and
    /// `consumer.heartbeat.interval.ms`, set before any member joins (the
    /// cluster's floors are lowered for this in `scripts/kafka.sh`).
    fn member_args(self, group: &str, session_ms: u32) -> Vec<String> {
        let session = session_ms.to_string();
        match self {
            Protocol::Classic => {
                vec!["--session-timeout-ms".into(), session, "--heartbeat-interval-ms".into(), "1000".into()]
            }
            Protocol::Consumer => {
                let configs = format!("consumer.session.timeout.ms={session},consumer.heartbeat.interval.ms=1000");
                let out = kafka_tool(
                    "configs",
                    &[
                        "--bootstrap-server",
                        CLUSTER,
                        "--alter",
                        "--entity-type",
                        "groups",
                        "--entity-name",
                        group,
                        "--add-config",
                        &configs,
                    ],
                );
                assert!(out.status.success(), "setting {configs} on group {group}: {}", stderr(&out));
                vec!["--group-protocol".into(), "consumer".into()]
            }
        }
    }
}

/// `cafe consume --json` of `topic` as a member of `group`, then `extra`, in
/// the background, through the suite's one member spawner (the protocol and
/// timings come in `extra`, per scenario).
fn spawn_consumer<S: AsRef<str>>(topic: &str, group: &str, name: &str, extra: &[S]) -> Background {
    let mut args = vec!["-b", CLUSTER, "consume", "-t", topic, "-g", group, "--json"];
    args.extend(extra.iter().map(AsRef::as_ref));
    common::member::cafe_member(name, &args)
}

/// Waits for a consumer's own exit (idle exit, --max-messages) within `limit`;
/// panics unless it exits 0.
fn finish_ok(consumer: Background, limit: Duration) -> BackgroundEnd {
    let end = consumer.finish(limit);
    assert_eq!(end.status.code(), Some(0), "a consumer failed:\n{}", end.stderr_text());
    end
}

/// Copies per id across all consumers' outputs.
fn tally(ids: impl IntoIterator<Item = String>) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for id in ids {
        *m.entry(id).or_insert(0) += 1;
    }
    m
}

fn duplicates(t: &HashMap<String, usize>) -> usize {
    t.values().map(|c| c.saturating_sub(1)).sum()
}

/// Checks of the produce side against the log: every report present, every acked
/// record exactly once in the log. Returns (in log, duplicates in log, failed but written).
fn check_log(produced: &Produced, log: &HashMap<String, usize>) -> (usize, usize, usize) {
    assert_eq!(produced.reports, produced.sent, "every record gets exactly one delivery report");
    let missing: Vec<&String> = produced.acked.iter().filter(|id| !log.contains_key(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records are not in the log, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    let dups = duplicates(log);
    assert_eq!(dups, 0, "duplicates in the log with idempotence on");
    let unknown: Vec<&String> =
        log.keys().filter(|id| !produced.acked.contains(*id) && !produced.failed.contains(*id)).collect();
    assert!(unknown.is_empty(), "records in the log that were never reported: {}", unknown.len());
    let failed_but_written = produced.failed.iter().filter(|id| log.contains_key(*id)).count();
    (log.len(), dups, failed_but_written)
}

/// A group scenario's topic of six partitions and group (both named after
/// `prefix`), and the members' flags: `protocol`'s for `session_ms`, then `extra`.
fn group_setup(protocol: Protocol, prefix: &str, session_ms: u32, extra: &[&str]) -> (String, String, Vec<String>) {
    let topic = unique_topic(prefix);
    let group = unique_topic(&format!("{prefix}-g"));
    create_topic(&topic, 6);
    let mut args = protocol.member_args(&group, session_ms);
    args.extend(extra.iter().map(|a| a.to_string()));
    (topic, group, args)
}

/// Runs 500-record `cafe produce` runs 200 ms apart on a thread until the flag is set.
fn produce_until_stopped(topic: &str) -> (Arc<AtomicBool>, std::thread::JoinHandle<Produced>) {
    let stop = Arc::new(AtomicBool::new(false));
    let (t, s) = (topic.to_owned(), Arc::clone(&stop));
    (stop, std::thread::spawn(move || produce_loop(t, 500, usize::MAX, s, Duration::from_millis(200))))
}

/// The group's checks once its members have ended: every acknowledged record
/// seen by some member, committed offsets never decreasing. Returns the copies
/// per id consumed and how many offset samples were taken.
fn check_consumed(
    produced: &Produced,
    ends: &[BackgroundEnd],
    monitor: OffsetMonitor,
) -> (HashMap<String, usize>, usize) {
    let (samples, decreases) = monitor.finish();
    let consumed = tally(ends.iter().flat_map(|c| consumed_ids(&c.records())));
    let not_consumed = produced.acked.iter().filter(|id| !consumed.contains_key(*id)).count();
    assert_eq!(not_consumed, 0, "acknowledged records no consumer saw");
    assert!(decreases.is_empty(), "committed offsets went backwards: {decreases:?}");
    (consumed, samples)
}

/// The members' final commits (on their idle exit) cover every record.
fn check_final_commits(group: &str, produced: &Produced) {
    let committed: i64 = committed_offsets(group).values().sum();
    assert_eq!(committed as usize, produced.acked.len(), "final commits cover every record");
}

// ---------------------------------------------------------------------------
// 1. Broker restarts while an idempotent acks=all producer runs.

#[test]
fn broker_restarts_during_idempotent_produce() {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let restarts = if full() { 20 } else { 2 };
    let topic = unique_topic("faults-restart");
    create_topic(&topic, 3);
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (t, s) = (topic.clone(), Arc::clone(&stop));
        std::thread::spawn(move || produce_loop(t, 2_000, usize::MAX, s, Duration::from_millis(50)))
    };
    for i in 0..restarts {
        std::thread::sleep(Duration::from_millis(700));
        let node = 1 + (i % 3);
        kill_node(node);
        std::thread::sleep(Duration::from_millis(300));
        start_node(node);
    }
    stop.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer thread");
    let log = log_contents(&topic);
    let (in_log, dups, failed_written) = check_log(&produced, &log);
    println!(
        "FAULTS 1 broker restarts: restarts={restarts} produce_runs={} sent={} acked={} failed={} in_log={in_log} \
         duplicates={dups} failed_but_written={failed_written} secs={}",
        produced.runs,
        produced.sent,
        produced.acked.len(),
        produced.failed.len(),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 2. The leader of a partition is killed while records are produced and consumed.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn leader_killed_during_produce_and_consume() {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let topic = unique_topic("faults-leader");
    let group = unique_topic("faults-leader-g");
    create_topic(&topic, 3);
    let consumer = spawn_consumer(
        &topic,
        &group,
        "leader-consumer",
        &["--idle-exit", "20s", "--session-timeout-ms", "10000", "--heartbeat-interval-ms", "1000"],
    );
    std::thread::sleep(Duration::from_secs(3));
    let stop = Arc::new(AtomicBool::new(false));
    let producer = {
        let (t, s) = (topic.clone(), Arc::clone(&stop));
        std::thread::spawn(move || produce_loop(t, 3_000, 8, s, Duration::from_millis(300)))
    };
    std::thread::sleep(Duration::from_secs(2));
    let leader = leader_of(&topic, 0);
    kill_node(leader);
    std::thread::sleep(Duration::from_secs(6));
    let new_leader = leader_of(&topic, 0);
    start_node(leader);
    let produced = producer.join().expect("producer thread");
    let consumer = finish_ok(consumer, Duration::from_secs(180));
    let consumed = tally(consumed_ids(&consumer.records()));
    let log = log_contents(&topic);
    let (in_log, dups, _) = check_log(&produced, &log);
    assert_eq!(produced.failed.len(), 0, "nothing fails within delivery.timeout.ms when one of three nodes dies");
    let not_consumed = produced.acked.iter().filter(|id| !consumed.contains_key(*id)).count();
    assert_eq!(not_consumed, 0, "acknowledged records the consumer never saw");
    println!(
        "FAULTS 2 leader killed: old_leader={leader} new_leader={new_leader} broker_kills_survived=1 \
         sent={} acked={} in_log={in_log} log_duplicates={dups} consumed={} consumed_duplicates={} secs={}",
        produced.sent,
        produced.acked.len(),
        consumed.len(),
        duplicates(&consumed),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 3. The group coordinator dies while three consumers share the group.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn coordinator_killed_with_three_consumers() {
    coordinator_killed(Protocol::Classic, 3);
}

fn coordinator_killed(protocol: Protocol, scenario: u32) {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let extra = ["--idle-exit", "15s", "--auto-commit-interval-ms", "1000", "--process-delay", "4ms"];
    let (topic, group, args) = group_setup(protocol, "faults-coord", 10_000, &extra);
    let produced = produce_loop(topic.clone(), 3_000, 2, Arc::new(AtomicBool::new(false)), Duration::ZERO);
    let consumers: Vec<Background> =
        (0..3).map(|i| spawn_consumer(&topic, &group, &format!("coord-{i}"), &args)).collect();
    let monitor = OffsetMonitor::start(&group);
    std::thread::sleep(Duration::from_secs(4));
    let coordinator = coordinator_checked(&group, protocol);
    kill_node(coordinator);
    std::thread::sleep(Duration::from_secs(6));
    start_node(coordinator);
    let ends: Vec<BackgroundEnd> = consumers.into_iter().map(|c| finish_ok(c, Duration::from_secs(240))).collect();
    let (consumed, samples) = check_consumed(&produced, &ends, monitor);
    let new_coordinator = coordinator_of(&group);
    check_final_commits(&group, &produced);
    println!(
        "FAULTS {scenario} coordinator killed: protocol={} old_coordinator={coordinator} \
         new_coordinator={new_coordinator:?} consumers=3 broker_kills_survived=1 sent={} acked={} consumed={} \
         consumed_duplicates={} offset_samples={samples} offset_decreases=0 secs={}",
        protocol.name(),
        produced.sent,
        produced.acked.len(),
        consumed.len(),
        duplicates(&consumed),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 4. Consumers killed with -9 while records flow.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn consumers_killed_while_records_flow() {
    consumers_killed(Protocol::Classic, 4);
}

fn consumers_killed(protocol: Protocol, scenario: u32) {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let kills = if full() { 10 } else { 2 };
    let extra = ["--idle-exit", "15s", "--auto-commit-interval-ms", "1000"];
    let (topic, group, args) = group_setup(protocol, "faults-ckill", 6_000, &extra);
    let mut spawned = 0;
    let spawn = |spawned: &mut usize| {
        *spawned += 1;
        spawn_consumer(&topic, &group, &format!("ckill-{spawned}"), &args)
    };
    let mut live: Vec<Background> = (0..3).map(|_| spawn(&mut spawned)).collect();
    let mut ends: Vec<BackgroundEnd> = Vec::new();
    let monitor = OffsetMonitor::start(&group);
    let (stop, producer) = produce_until_stopped(&topic);
    for i in 0..kills {
        std::thread::sleep(Duration::from_secs(5));
        let victim = live.remove(i % live.len());
        ends.push(victim.kill());
        live.push(spawn(&mut spawned));
    }
    stop.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer thread");
    let produce_secs = t0.elapsed().as_secs_f64();
    ends.extend(live.into_iter().map(|c| finish_ok(c, Duration::from_secs(240))));
    let (consumed, samples) = check_consumed(&produced, &ends, monitor);
    let dups = duplicates(&consumed);
    // A killed member's records since its last commit are read again by the next
    // owner: per kill at most what flows in one auto-commit interval (1 s) plus the
    // poll-to-commit latency; 2 s of slack on top, at the measured rate.
    let rate = produced.acked.len() as f64 / produce_secs;
    let bound = (kills as f64 * rate * 3.0) as usize;
    assert!(dups <= bound, "{dups} duplicates exceed the auto-commit window bound {bound}");
    println!(
        "FAULTS {scenario} consumers killed: protocol={} kills={kills} consumers_started={spawned} sent={} acked={} \
         consumed={} consumed_duplicates={dups} duplicate_bound={bound} rate_per_s={rate:.0} \
         offset_samples={samples} offset_decreases=0 secs={}",
        protocol.name(),
        produced.sent,
        produced.acked.len(),
        consumed.len(),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 5. A handler slower than the heartbeat interval (and the session timeout), but
//    within max.poll.interval.ms: heartbeats run on their own task, no rebalance.

#[test]
fn slow_processing_causes_no_rebalance() {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let topic = unique_topic("faults-slow");
    let group = unique_topic("faults-slow-g");
    create_topic(&topic, 3);
    let n = 8;
    let produced = produce_loop(topic.clone(), n, 1, Arc::new(AtomicBool::new(false)), Duration::ZERO);
    let c = spawn_consumer(
        &topic,
        &group,
        "slow",
        &[
            "--max-messages",
            &n.to_string(),
            "--process-delay",
            "1500ms",
            "--heartbeat-interval-ms",
            "500",
            "--session-timeout-ms",
            "6000",
            "--max-poll-interval-ms",
            "20000",
        ],
    );
    let c = finish_ok(c, Duration::from_secs(120));
    let assignments = c.assignments();
    let assigned = assignments.len();
    // A rebalance would show as a later generation, a second assignment, or a
    // revocation before the one of close.
    let generations: Vec<i64> = assignments.iter().map(|a| a.generation).collect();
    let revocations = c.revocations().len();
    let consumed = tally(consumed_ids(&c.records()));
    assert_eq!(consumed.len(), produced.acked.len());
    assert_eq!(
        (generations, revocations),
        (vec![1], 1),
        "one assignment in the group's first generation, revoked once by close, no rebalance expected:\n{}\n{}",
        c.stdout.iter().filter(|l| l.contains("\"event\"")).cloned().collect::<Vec<_>>().join("\n"),
        c.stderr_text()
    );
    println!(
        "FAULTS 5 slow processing: records={} consumed={} per_record_ms=1500 heartbeat_ms=500 session_ms=6000 \
         assignments={assigned} revocations={revocations} rebalances=0 secs={}",
        produced.acked.len(),
        consumed.len(),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 6 and 7. Scenarios 3 and 4 with KIP-848 consumer-protocol members.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn coordinator_killed_with_three_consumer_protocol_members() {
    coordinator_killed(Protocol::Consumer, 6);
}

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn consumer_protocol_members_killed_while_records_flow() {
    consumers_killed(Protocol::Consumer, 7);
}

// ---------------------------------------------------------------------------
// 8. Nodes restarted one after another (the coordinator among them) while
//    records flow to a KIP-848 group of three members.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn broker_restarts_during_consumer_protocol_group() {
    broker_restarts_with_group(Protocol::Consumer, 8);
}

fn broker_restarts_with_group(protocol: Protocol, scenario: u32) {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let restarts = if full() { 6 } else { 3 };
    let extra = ["--idle-exit", "20s", "--auto-commit-interval-ms", "1000"];
    let (topic, group, args) = group_setup(protocol, "faults-grestart", 10_000, &extra);
    let mut members: Vec<Background> =
        (0..3).map(|i| spawn_consumer(&topic, &group, &format!("grestart-{i}"), &args)).collect();
    let monitor = OffsetMonitor::start(&group);
    let (stop, producer) = produce_until_stopped(&topic);
    std::thread::sleep(Duration::from_secs(2));
    let coordinator = coordinator_checked(&group, protocol);
    for i in 0..restarts {
        std::thread::sleep(Duration::from_secs(4));
        let node = 1 + (i % 3);
        kill_node(node);
        std::thread::sleep(Duration::from_secs(1));
        start_node(node);
    }
    std::thread::sleep(Duration::from_secs(4));
    stop.store(true, Ordering::SeqCst);
    let produced = producer.join().expect("producer thread");
    // Recovering means staying in the group: no member may have given up.
    for m in &mut members {
        assert!(m.running(), "a member exited during the restarts:\n{}", m.describe());
    }
    let ends: Vec<BackgroundEnd> = members.into_iter().map(|c| finish_ok(c, Duration::from_secs(240))).collect();
    let (consumed, samples) = check_consumed(&produced, &ends, monitor);
    check_final_commits(&group, &produced);
    println!(
        "FAULTS {scenario} broker restarts in a group: protocol={} restarts={restarts} coordinator={coordinator} \
         consumers=3 sent={} acked={} failed={} consumed={} consumed_duplicates={} offset_samples={samples} \
         offset_decreases=0 secs={}",
        protocol.name(),
        produced.sent,
        produced.acked.len(),
        produced.failed.len(),
        consumed.len(),
        duplicates(&consumed),
        t0.elapsed().as_secs()
    );
}

// ---------------------------------------------------------------------------
// 9. Exactly once: `cafe totals` (consume-transform-produce in transactions) killed
// with -9 again and again, and a broker restarted under it; the totals it wrote,
// read_committed, are exactly those of its input.

#[test]
#[ignore = "part of the full fault suite: make faults"]
fn totals_exactly_once_through_kills_and_a_broker_restart() {
    let _serial = serial();
    let t0 = Instant::now();
    ensure_cluster();
    let (kills, events) = if full() { (10, 20_000) } else { (2, 3_000) };
    let (from, to) = (unique_topic("faults-totals-in"), unique_topic("faults-totals-out"));
    create_topic(&from, 3);
    create_topic(&to, 3);
    let group = unique_topic("faults-group-totals");
    let n = events.to_string();
    let out = cafe(&["produce", "-t", &from, "-n", &n, "--acks", "all", "--json"], Duration::from_secs(300));
    assert!(out.status.success(), "produce: {}", stderr(&out));
    let totals = |extra: &[&str]| {
        let mut cmd = Command::new(common::cafe_bin());
        cmd.args(["-b", CLUSTER, "totals", "--from", &from, "--to", &to, "-g", &group]).args(extra);
        cmd
    };
    for i in 0..kills {
        let quiet = || std::process::Stdio::null();
        let mut child = totals(&[]).stdout(quiet()).stderr(quiet()).spawn().expect("cafe totals");
        std::thread::sleep(Duration::from_millis(300 + 150 * (i % 5) as u64));
        if i == kills / 2 {
            // A broker restarted while it works (the transaction coordinator or a leader, or neither).
            let node = 1 + (i % 3);
            kill_node(node);
            std::thread::sleep(Duration::from_secs(1));
            start_node(node);
        }
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
    let out = run_with_deadline(totals(&["--idle-exit", "10s"]), b"", Duration::from_secs(300));
    assert!(out.status.success(), "the last totals run: {}", stderr(&out));
    let expected = common::totals::expected(CLUSTER, &from);
    assert_eq!(expected.values().map(|t| t.0).sum::<u64>(), events as u64, "every input event read back");
    let written = common::totals::written(CLUSTER, &to);
    let wrong = expected.iter().filter(|(c, t)| written.get(*c) != Some(t)).count();
    assert_eq!(written, expected, "totals differ for {wrong} customers");
    println!(
        "FAULTS 9 totals exactly once: kills={kills} broker_restarts=1 events={events} customers={} wrong_totals={wrong} secs={}",
        expected.len(),
        t0.elapsed().as_secs()
    );
}
