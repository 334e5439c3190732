//! `cafe consume` against a real broker: the seed scenario, reading from earliest
//! with a new group, rebalancing among several `cafe` members (graceful and
//! `kill -9`), a mixed group with a librdkafka consumer, committed offsets as
//! Kafka's own tool reports them, and malformed values.
//!
//! Consumers run as child processes (`common::Background`) with `--json`, so the
//! tests follow their assignments through the `{"event": "assigned", ...}` and
//! `{"event": "revoked", ...}` lines printed among the records while they run.
//!
//! Run with `cargo test --test consume -- --test-threads=2`; it needs the broker
//! from `make kafka-up` and the peer venv from `scripts/py-peers.sh`.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::consume_json::{ConsumeLine, parse_lines, partitions_of, records_in};
use common::member::{self, Mode, peer_owned};
use common::records::{OffsetMonitor, Pos, assert_exactly_once, assert_never_back, wait_until};
use common::{
    Background, BackgroundEnd, assert_success, bootstrap, consumed_count, json_lines, kafka_tool, run_cafe, stderr,
    unique_topic,
};
use serde_json::Value;

// ---------------------------------------------------------------------------
// helpers

/// One delivery report of `cafe produce --json` / `cafe send --json`.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    key: Option<String>,
    partition: i32,
    offset: i64,
}

/// One record printed by `cafe consume --json`.
#[derive(Debug, Clone)]
struct Consumed {
    partition: i32,
    offset: i64,
    key: Option<String>,
    valid: bool,
    value: Value,
}

impl Consumed {
    fn pos(&self) -> Pos {
        (self.partition, self.offset)
    }

    fn event_id(&self) -> Option<&str> {
        self.value.get("event_id").and_then(Value::as_str)
    }
}

fn parse_delivery(v: &Value) -> Delivery {
    assert!(v.get("error").is_none(), "delivery failed: {v}");
    Delivery {
        id: v["id"].as_str().unwrap_or_else(|| panic!("no id in {v}")).to_owned(),
        key: v["key"].as_str().map(String::from),
        partition: v["partition"].as_i64().unwrap_or_else(|| panic!("no partition in {v}")) as i32,
        offset: v["offset"].as_i64().unwrap_or_else(|| panic!("no offset in {v}")),
    }
}

/// A record line of `cafe consume --json` (see `common::consume_json`).
fn consumed(v: &Value, topic: &str) -> Consumed {
    assert_eq!(v["topic"], topic, "record of another topic: {v}");
    assert!(v["timestamp"].is_i64(), "no timestamp in {v}");
    Consumed {
        partition: v["partition"].as_i64().unwrap_or_else(|| panic!("no partition in {v}")) as i32,
        offset: v["offset"].as_i64().unwrap_or_else(|| panic!("no offset in {v}")),
        key: v["key"].as_str().map(String::from),
        valid: v["valid"].as_bool().unwrap_or_else(|| panic!("no valid flag in {v}")),
        value: v["value"].clone(),
    }
}

/// `cafe produce -t topic -n count --json`: the delivery reports, all successful.
fn produce(topic: &str, count: usize) -> Vec<Delivery> {
    let b = bootstrap();
    let n = count.to_string();
    let out = run_cafe(&["-b", &b, "produce", "-t", topic, "-n", &n, "--json"], b"");
    assert_success(&out, &format!("producing {count} events to {topic}"));
    let reports: Vec<Delivery> = json_lines(&out).iter().map(parse_delivery).collect();
    assert_eq!(reports.len(), count, "one delivery report per event:\n{}", common::stdout(&out));
    reports
}

fn positions(reports: &[Delivery]) -> BTreeSet<Pos> {
    reports.iter().map(|d| (d.partition, d.offset)).collect()
}

/// The arguments of an eager `cafe consume` member with the short test timings.
fn consume_args(topic: &str, group: &str, idle_exit: &str) -> Vec<String> {
    member::consume_args(topic, group, Mode::Eager, &["--idle-exit", idle_exit])
}

/// Runs one `cafe consume` to its end (idle exit) and returns its records and stderr.
fn consume_once(topic: &str, group: &str, idle_exit: &str) -> (Vec<Consumed>, String) {
    let args = consume_args(topic, group, idle_exit);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cafe(&args, b"");
    assert_success(&out, &format!("consuming {topic} as {group}"));
    let records = records_in(&out).iter().map(|v| consumed(v, topic)).collect();
    (records, stderr(&out))
}

/// The records of `topic` a member printed, running or finished.
trait Printed {
    fn consumed(&self, topic: &str) -> Vec<Consumed>;
}

impl Printed for Background {
    fn consumed(&self, topic: &str) -> Vec<Consumed> {
        self.records().iter().map(|v| consumed(v, topic)).collect()
    }
}

impl Printed for BackgroundEnd {
    fn consumed(&self, topic: &str) -> Vec<Consumed> {
        self.records().iter().map(|v| consumed(v, topic)).collect()
    }
}

/// One row of `kafka-consumer-groups --describe`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct GroupRow {
    current: Option<i64>,
    log_end: Option<i64>,
    lag: Option<i64>,
}

/// Committed offsets of `group` on `topic` as Kafka's own tool reports them, by
/// partition. `Err` with the tool's output when it fails (e.g. while the
/// coordinator is loading), so a monitor can retry.
fn describe_group(group: &str, topic: &str) -> Result<BTreeMap<i32, GroupRow>, String> {
    let b = bootstrap();
    let out = kafka_tool("consumer-groups", &["--bootstrap-server", &b, "--describe", "--group", group]);
    if !out.status.success() {
        return Err(format!("consumer-groups failed ({}): {}{}", out.status, common::stdout(&out), stderr(&out)));
    }
    let num = |s: &str| s.parse::<i64>().ok();
    Ok(common::stdout(&out)
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            if cols.len() < 6 || cols[0] != group || cols[1] != topic {
                return None;
            }
            let partition = cols[2].parse().ok()?;
            Some((partition, GroupRow { current: num(cols[3]), log_end: num(cols[4]), lag: num(cols[5]) }))
        })
        .collect())
}

/// How many times each position was printed, over all members.
fn tally<'a>(records: impl IntoIterator<Item = &'a Consumed>) -> BTreeMap<Pos, usize> {
    let mut seen = BTreeMap::new();
    for r in records {
        *seen.entry(r.pos()).or_insert(0) += 1;
    }
    seen
}

fn union_positions(members: &[&Background], topic: &str) -> BTreeSet<Pos> {
    members.iter().flat_map(|m| m.consumed(topic)).map(|r| r.pos()).collect()
}

// ---------------------------------------------------------------------------
// tests

/// The seed scenario: the consumer waits first, the producer sends 5 events, the
/// consumer prints exactly those; a second run prints nothing; 5 more, exactly those.
#[test]
fn seed_scenario_consumer_first_then_resume_from_commits() {
    let b = bootstrap();
    let topic = unique_topic("cafe-consume-seed");
    let group = unique_topic("cafe-group-seed");
    common::recreate_topic(&topic, 3);

    let member = member::cafe_member("consumer", &consume_args(&topic, &group, "6s"));
    wait_until(Duration::from_secs(30), "the consumer to be assigned", || member.owned(&topic), || member.describe());
    assert_eq!(member.owned(&topic), Some(BTreeSet::from([0, 1, 2])), "a lone member owns all 3 partitions");

    let first = produce(&topic, 5);
    let done = member.finish(Duration::from_secs(60));
    done.assert_success("consumer");
    let got = done.consumed(&topic);
    assert_eq!(done.consumed_count(), 5, "stderr:\n{}", done.stderr_text());
    assert_matches_reports(&got, &first);

    // Values equal what is on the topic, read by an independent client.
    let raw = common::run_peer("read_all.py", &["--bootstrap", &b, "--topic", &topic, "--expect", "5"]);
    assert_success(&raw, "read_all.py");
    let on_topic: BTreeMap<Pos, Value> = json_lines(&raw)
        .iter()
        .map(|v| {
            let value: Value =
                serde_json::from_str(v["value"].as_str().expect("value text")).expect("produced value is JSON");
            ((v["partition"].as_i64().expect("partition") as i32, v["offset"].as_i64().expect("offset")), value)
        })
        .collect();
    for r in &got {
        let produced = &on_topic[&r.pos()];
        assert!(
            same_event(&r.value, produced),
            "printed value differs from the record at {:?}:\nprinted  {}\nproduced {}",
            r.pos(),
            r.value,
            produced
        );
    }

    let (again, err) = consume_once(&topic, &group, "4s");
    assert!(again.is_empty(), "second run must print nothing (offsets committed), got {again:?}\n{err}");
    assert_eq!(consumed_count(&err), 0);

    let second = produce(&topic, 5);
    let (third, err) = consume_once(&topic, &group, "4s");
    assert_eq!(consumed_count(&err), 5, "{err}");
    assert_matches_reports(&third, &second);

    common::delete_topic(&topic);
}

/// Records printed == delivery reports: same positions, event ids and keys, each once.
fn assert_matches_reports(got: &[Consumed], reports: &[Delivery]) {
    let by_pos: BTreeMap<Pos, &Delivery> = reports.iter().map(|d| ((d.partition, d.offset), d)).collect();
    assert_eq!(got.len(), reports.len(), "printed {got:?}\nproduced {reports:?}");
    assert_exactly_once(got.iter().map(Consumed::pos), &positions(reports));
    for r in got {
        let d = by_pos[&r.pos()];
        assert!(r.valid, "a produced event printed as invalid: {r:?}");
        assert_eq!(r.event_id(), Some(d.id.as_str()), "event id at {:?}", r.pos());
        assert_eq!(r.key, d.key, "key at {:?}", r.pos());
    }
}

/// Field-by-field equality, numbers compared as f64 (`8.0` printed vs `8` produced).
fn same_event(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same_event(v, w)))
        }
        _ => a == b,
    }
}

/// A group that never committed starts at the earliest offset
/// (`auto.offset.reset=earliest`), so it reads what was produced before it existed.
#[test]
fn new_group_after_the_producer_reads_from_earliest() {
    bootstrap();
    let topic = unique_topic("cafe-consume-earliest");
    common::recreate_topic(&topic, 3);
    let reports = produce(&topic, 12);

    let group = unique_topic("cafe-group-earliest");
    let (got, err) = consume_once(&topic, &group, "4s");
    assert_eq!(consumed_count(&err), 12, "{err}");
    assert_matches_reports(&got, &reports);

    common::delete_topic(&topic);
}

/// Three members over 6 partitions get 2 each; after one is stopped with SIGTERM
/// (final commit, LeaveGroup) the other two take its partitions over; every
/// record produced before, between and during is printed exactly once overall.
#[test]
fn three_members_share_and_take_over_after_sigterm() {
    bootstrap();
    let topic = unique_topic("cafe-consume-three");
    let group = unique_topic("cafe-group-three");
    common::recreate_topic(&topic, 6);
    let mut produced = positions(&produce(&topic, 12));

    // Idle exit only as a safety net: the test stops the members itself.
    let args = consume_args(&topic, &group, "60s");
    let members: Vec<Background> = (0..3).map(|i| member::cafe_member(&format!("member{i}"), &args)).collect();
    let explain = || members.iter().map(Background::describe).collect::<Vec<_>>().join("\n");

    let all6: BTreeSet<i32> = (0..6).collect();
    wait_until(
        Duration::from_secs(40),
        "2 partitions for each of 3 members",
        || {
            let a: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned(&topic)).collect::<Option<_>>()?;
            let union: BTreeSet<i32> = a.iter().flatten().copied().collect();
            (a.iter().all(|s| s.len() == 2) && union == all6).then_some(())
        },
        explain,
    );
    let split: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned(&topic).expect("assigned")).collect();
    let before_batch: Vec<usize> = members.iter().map(|m| m.consumed(&topic).len()).collect();

    let between = produce(&topic, 18);
    produced.extend(positions(&between));
    let refs: Vec<&Background> = members.iter().collect();
    wait_until(
        Duration::from_secs(30),
        "every record so far to be printed",
        || union_positions(&refs, &topic).is_superset(&produced).then_some(()),
        explain,
    );
    // Records produced after the split land only with the partitions' owners.
    for (i, m) in members.iter().enumerate() {
        for r in &m.consumed(&topic)[before_batch[i]..] {
            assert!(split[i].contains(&r.partition), "member{i} owns {:?} but printed {r:?}", split[i]);
        }
    }

    // Stop member2 gracefully while more records arrive.
    let mut members = members;
    let victim = members.pop().expect("three members");
    let victim_parts = split[2].clone();
    victim.signal("TERM");
    let during = produce(&topic, 18);
    produced.extend(positions(&during));
    let victim = victim.finish(Duration::from_secs(30));
    victim.assert_success("member2 after SIGTERM");
    // Its last change of assignment: close revokes all it owned (before the
    // final commit and LeaveGroup).
    let last_change = parse_lines(&victim.stdout).into_iter().rev().find_map(|l| match l {
        ConsumeLine::Revoked(p) => Some(Ok(partitions_of(&p, &topic))),
        ConsumeLine::Assigned(a) => Some(Err(a)),
        ConsumeLine::Record(_) => None,
    });
    assert_eq!(
        last_change,
        Some(Ok(victim_parts.clone())),
        "member2 should revoke its partitions on close:\n{}",
        victim.stdout.join("\n")
    );

    let explain = || members.iter().map(Background::describe).collect::<Vec<_>>().join("\n");
    wait_until(
        Duration::from_secs(40),
        "the two survivors to own all 6 partitions",
        || {
            let a: Vec<BTreeSet<i32>> = members.iter().map(|m| m.owned(&topic)).collect::<Option<_>>()?;
            let union: BTreeSet<i32> = a.iter().flatten().copied().collect();
            (a.iter().all(|s| s.len() == 3) && union == all6).then_some(())
        },
        explain,
    );
    let refs: Vec<&Background> = members.iter().collect();
    wait_until(
        Duration::from_secs(40),
        "every record to be printed",
        || {
            let mut seen = union_positions(&refs, &topic);
            seen.extend(victim.consumed(&topic).iter().map(Consumed::pos));
            seen.is_superset(&produced).then_some(())
        },
        explain,
    );
    let taken_over: BTreeSet<i32> =
        members.iter().flat_map(|m| m.owned(&topic).expect("assigned")).filter(|p| victim_parts.contains(p)).collect();
    assert_eq!(taken_over, victim_parts, "member2's partitions move to the survivors");

    let mut finished = Vec::new();
    for (i, m) in members.into_iter().enumerate() {
        m.signal("TERM");
        let f = m.finish(Duration::from_secs(30));
        f.assert_success(&format!("member{i}"));
        finished.push(f);
    }
    let mut all: Vec<Consumed> = victim.consumed(&topic);
    for f in &finished {
        all.extend(f.consumed(&topic));
    }
    assert_exactly_once(all.iter().map(Consumed::pos), &produced);
    let printed: u64 = finished.iter().map(BackgroundEnd::consumed_count).sum::<u64>() + victim.consumed_count();
    assert_eq!(printed, produced.len() as u64, "the `consumed N` lines add up");

    common::delete_topic(&topic);
}

/// A member killed with SIGKILL: after the session timeout its partitions move to
/// the survivor, which resumes from the committed offsets. Committed offsets
/// (sampled with kafka-consumer-groups while this happens) never go backwards and
/// no record is lost (duplicates are allowed: the victim could not commit).
#[test]
fn kill_9_member_partitions_move_after_session_timeout() {
    bootstrap();
    let topic = unique_topic("cafe-consume-kill9");
    let group = unique_topic("cafe-group-kill9");
    common::recreate_topic(&topic, 4);
    let mut produced = positions(&produce(&topic, 20));

    let args = consume_args(&topic, &group, "60s");
    let survivor = member::cafe_member("survivor", &args);
    let victim = member::cafe_member("victim", &args);
    let explain = || format!("{}\n{}", survivor.describe(), victim.describe());
    wait_until(
        Duration::from_secs(40),
        "2 partitions each",
        || {
            let (a, b) = (survivor.owned(&topic)?, victim.owned(&topic)?);
            (a.len() == 2 && b.len() == 2 && a.union(&b).count() == 4).then_some(())
        },
        explain,
    );
    let victim_parts = victim.owned(&topic).expect("assigned");

    // Sample committed offsets in the background from now on.
    let monitor = OffsetMonitor::start(&group, &topic);

    produced.extend(positions(&produce(&topic, 20)));
    let refs = [&survivor, &victim];
    wait_until(
        Duration::from_secs(30),
        "every record so far to be printed",
        || union_positions(&refs, &topic).is_superset(&produced).then_some(()),
        explain,
    );

    // Auto-commit (every second, idle or not) gets the victim's positions in
    // before it dies, so the survivor has commits to resume from. Only the
    // partitions it owns now: if it joined first it read the others alone for a
    // while, and the survivor has committed past that since.
    let printed_by_victim: BTreeMap<i32, i64> = victim
        .consumed(&topic)
        .iter()
        .filter(|r| victim_parts.contains(&r.partition))
        .fold(BTreeMap::new(), |mut m, r| {
            let e = m.entry(r.partition).or_insert(r.offset);
            *e = (*e).max(r.offset);
            m
        });
    wait_until(
        Duration::from_secs(20),
        "the victim's auto-commit of what it printed",
        || {
            let rows = describe_group(&group, &topic).ok()?;
            printed_by_victim.iter().all(|(p, o)| rows.get(p).and_then(|r| r.current) == Some(o + 1)).then_some(())
        },
        || format!("printed by the victim (last offsets): {printed_by_victim:?}\n{}", explain()),
    );

    let victim = victim.kill();
    let killed_at = Instant::now();
    assert!(!victim.status.success(), "SIGKILL ends the victim");
    produced.extend(positions(&produce(&topic, 20)));

    let explain = || survivor.describe();
    wait_until(
        Duration::from_secs(45),
        "the survivor to own all 4 partitions",
        || (survivor.owned(&topic)?.len() == 4).then_some(()),
        explain,
    );
    let moved_after = killed_at.elapsed();
    wait_until(
        Duration::from_secs(30),
        "every record to be printed at least once",
        || {
            let mut seen = union_positions(&[&survivor], &topic);
            seen.extend(victim.consumed(&topic).iter().map(Consumed::pos));
            seen.is_superset(&produced).then_some(())
        },
        explain,
    );
    // Let at least one sample see the survivor's commits for the moved partitions.
    std::thread::sleep(Duration::from_secs(3));
    survivor.signal("TERM");
    let survivor = survivor.finish(Duration::from_secs(30));
    survivor.assert_success("survivor");
    let mut samples = monitor.stop();
    let last = describe_group(&group, &topic).expect("describe the group after the run");
    samples.push(last.iter().filter_map(|(p, r)| Some((*p, r.current?))).collect());

    eprintln!("victim's partitions {victim_parts:?} moved {moved_after:?} after SIGKILL; offset samples: {samples:?}");
    assert!(samples.len() >= 3, "too few offset samples to judge: {samples:?}");
    assert_never_back(&samples);
    for (p, row) in &last {
        assert_eq!(row.current, row.log_end, "partition {p} fully committed at the end: {last:?}");
    }
    let mut all = survivor.consumed(&topic);
    all.extend(victim.consumed(&topic));
    let seen = tally(&all);
    let missing: Vec<_> = produced.iter().filter(|p| !seen.contains_key(p)).collect();
    assert!(missing.is_empty(), "records lost: {missing:?}");
    assert!(
        moved_after >= Duration::from_millis(3000),
        "partitions {victim_parts:?} moved {moved_after:?} after SIGKILL; a dead member is only noticed after the session timeout"
    );

    common::delete_topic(&topic);
}

/// A `cafe` member and a librdkafka member (range assignor on both sides) share
/// a 4-partition topic; together they print every record exactly once.
#[test]
fn mixed_group_cafe_leads_confluent_kafka_peer() {
    // cafe joins first and so leads the group: it computes the assignment for both.
    mixed_group(false);
}

/// As above, with the librdkafka member joining first: it leads, and `cafe` must
/// follow an assignment that librdkafka computed and encoded.
#[test]
fn mixed_group_confluent_kafka_peer_leads_cafe() {
    mixed_group(true);
}

fn mixed_group(peer_first: bool) {
    bootstrap();
    let topic = unique_topic("cafe-consume-mixed");
    let group = unique_topic("cafe-group-mixed");
    common::recreate_topic(&topic, 4);

    let start_peer = || {
        let mut args = member::librdkafka_classic("range").to_vec();
        args.extend(["--idle", "8", "--timeout", "90"]);
        member::librdkafka("confluent-kafka", &topic, &group, &args)
    };
    let start_cafe = || member::cafe_member("cafe", &consume_args(&topic, &group, "60s"));
    let (cafe, peer) = if peer_first {
        let peer = start_peer();
        wait_until(Duration::from_secs(30), "the peer to be assigned", || peer_owned(&peer), || peer.describe());
        (start_cafe(), peer)
    } else {
        let cafe = start_cafe();
        wait_until(Duration::from_secs(30), "cafe to be assigned", || cafe.owned(&topic), || cafe.describe());
        (cafe, start_peer())
    };
    let explain = || format!("{}\n{}", cafe.describe(), peer.describe());
    wait_until(
        Duration::from_secs(40),
        "2 partitions each",
        || {
            let (a, b) = (cafe.owned(&topic)?, peer_owned(&peer)?);
            (a.len() == 2 && b.len() == 2 && a.union(&b).count() == 4).then_some(())
        },
        explain,
    );
    let (cafe_parts, peer_parts) = (cafe.owned(&topic).expect("assigned"), peer_owned(&peer).expect("assigned"));

    let reports = produce(&topic, 40);
    let produced = positions(&reports);
    let peer_positions = || -> BTreeSet<Pos> {
        peer.stdout_lines()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .map(|v| (v["partition"].as_i64().unwrap_or(-1) as i32, v["offset"].as_i64().unwrap_or(-1)))
            .collect()
    };
    wait_until(
        Duration::from_secs(40),
        "every record to be printed by one of the two",
        || {
            let mut seen = union_positions(&[&cafe], &topic);
            seen.extend(peer_positions());
            seen.is_superset(&produced).then_some(())
        },
        explain,
    );
    // The peer exits after 8 s idle; stop cafe only after it, so no rebalance
    // moves the peer's partitions to cafe while records are still in flight.
    let peer = peer.finish(Duration::from_secs(60));
    assert!(peer.status.success(), "peer failed ({}):\n{}", peer.status, peer.stderr_text());
    cafe.signal("TERM");
    let cafe = cafe.finish(Duration::from_secs(30));
    cafe.assert_success("cafe");

    let cafe_records = cafe.consumed(&topic);
    let peer_records: Vec<Consumed> = peer
        .stdout
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("peer printed a non-JSON line ({e}): {l}"));
            Consumed {
                partition: v["partition"].as_i64().expect("partition") as i32,
                offset: v["offset"].as_i64().expect("offset"),
                key: v["key"].as_str().map(String::from),
                valid: true,
                value: serde_json::from_str(v["value"].as_str().expect("value")).expect("value is JSON"),
            }
        })
        .collect();
    for r in &cafe_records {
        assert!(cafe_parts.contains(&r.partition), "cafe owns {cafe_parts:?} but printed {r:?}");
    }
    for r in &peer_records {
        assert!(peer_parts.contains(&r.partition), "the peer owns {peer_parts:?} but printed {r:?}");
    }
    let mut all = cafe_records.clone();
    all.extend(peer_records.iter().cloned());
    assert_matches_reports(&all, &reports);

    common::delete_topic(&topic);
}

/// What `cafe` commits is what Kafka's own tool reports: CURRENT-OFFSET is the
/// last printed offset + 1 of each partition, equal to LOG-END-OFFSET, LAG 0.
#[test]
fn committed_offsets_match_kafka_consumer_groups() {
    bootstrap();
    let topic = unique_topic("cafe-consume-offsets");
    let group = unique_topic("cafe-group-offsets");
    common::recreate_topic(&topic, 3);
    let reports = produce(&topic, 30);
    let (got, err) = consume_once(&topic, &group, "4s");
    assert_matches_reports(&got, &reports);

    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &got {
        let e = last.entry(r.partition).or_insert(r.offset);
        *e = (*e).max(r.offset);
    }
    let rows = describe_group(&group, &topic).unwrap_or_else(|e| panic!("{e}"));
    for p in 0..3 {
        let row = rows.get(&p);
        match last.get(&p) {
            Some(o) => {
                let expected = GroupRow { current: Some(o + 1), log_end: Some(o + 1), lag: Some(0) };
                assert_eq!(row, Some(&expected), "partition {p}: all rows {rows:?}\nconsumer stderr:\n{err}");
            }
            // Nothing consumed there: nothing to commit (or offset 0 of an empty log).
            None => assert!(
                row.is_none_or(|r| r.current.unwrap_or(0) == 0 && r.lag.unwrap_or(0) == 0),
                "partition {p} had no records: {rows:?}"
            ),
        }
    }

    common::delete_topic(&topic);
}

/// A value that is not a cafe event is warned about with its partition and offset,
/// skipped, and committed past: the consumer goes on, and a second run sees nothing.
#[test]
fn malformed_values_are_warned_about_skipped_and_committed() {
    let b = bootstrap();
    let topic = unique_topic("cafe-consume-malformed");
    let group = unique_topic("cafe-group-malformed");
    common::recreate_topic(&topic, 2);

    let good_before = produce(&topic, 3);
    let lines = "k1\t{not json at all\nk2\t{\"order\": 1}\nk3\t\n";
    let out = run_cafe(&["-b", &b, "send", "-t", &topic, "--keyed", "--json"], lines.as_bytes());
    assert_success(&out, "cafe send of malformed values");
    let bad: Vec<Delivery> = json_lines(&out).iter().map(parse_delivery).collect();
    assert_eq!(bad.len(), 3, "{}", common::stdout(&out));
    let good_after = produce(&topic, 3);

    let (got, err) = consume_once(&topic, &group, "4s");
    assert_eq!(consumed_count(&err), 9, "{err}");
    let mut all = good_before.clone();
    all.extend(good_after.iter().cloned());
    all.extend(bad.iter().cloned());
    assert_exactly_once(got.iter().map(Consumed::pos), &positions(&all));
    let bad_pos = positions(&bad);
    for r in &got {
        assert_eq!(r.valid, !bad_pos.contains(&r.pos()), "valid flag of {r:?}");
    }
    for d in &bad {
        let needle = format!("{topic}[{}]@{}", d.partition, d.offset);
        assert!(
            err.lines().any(|l| l.contains("warning") && l.contains(&needle) && l.contains("not a cafe event")),
            "no warning naming {needle} in stderr:\n{err}"
        );
    }
    assert!(err.contains("(3 not cafe events)"), "summary counts the malformed values:\n{err}");

    let (again, err) = consume_once(&topic, &group, "4s");
    assert!(again.is_empty(), "committed past the malformed values, yet a second run printed {again:?}\n{err}");

    common::delete_topic(&topic);
}

/// `--max-messages N` stops after N records; the rest of the fetched batch was
/// never printed, so it must not be committed: the next run prints it.
#[test]
fn max_messages_commits_only_what_was_printed() {
    bootstrap();
    let topic = unique_topic("cafe-consume-max");
    let group = unique_topic("cafe-group-max");
    common::recreate_topic(&topic, 1);
    let reports = produce(&topic, 10);

    let mut args = consume_args(&topic, &group, "4s");
    args.extend(["--max-messages".to_owned(), "3".to_owned()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run_cafe(&args, b"");
    assert_success(&out, "consume --max-messages 3");
    let first: Vec<Consumed> = records_in(&out).iter().map(|v| consumed(v, &topic)).collect();
    assert_eq!(first.len(), 3, "--max-messages 3 prints 3");

    let (rest, err) = consume_once(&topic, &group, "4s");
    let mut all = first;
    all.extend(rest);
    assert!(
        all.len() == 10,
        "records lost: the first run printed 3 of 10, the second {} (committed past unprinted records?)\n{err}",
        all.len() - 3
    );
    assert_matches_reports(&all, &reports);

    common::delete_topic(&topic);
}

/// The generation of a finished member's latest assignment.
fn last_generation(end: &BackgroundEnd) -> Option<i64> {
    end.assignments().last().map(|a| a.generation)
}

/// KIP-345 static membership: a member with `--group-instance-id` that stops and
/// comes back within the session timeout keeps its place (same generation, same
/// partitions, no rebalance) and resumes from its commits.
#[test]
fn static_member_restart_keeps_generation_and_offsets() {
    let b = bootstrap();
    let topic = unique_topic("cafe-consume-static");
    let group = unique_topic("cafe-group-static");
    common::recreate_topic(&topic, 2);
    let first = produce(&topic, 6);

    let mut args = consume_args(&topic, &group, "3s");
    args.extend(["--group-instance-id".to_owned(), "cafe-static-1".to_owned()]);
    let run = member::cafe_member("static member", &args).finish(Duration::from_secs(60));
    run.assert_success("static member, first run");
    assert_matches_reports(&run.consumed(&topic), &first);
    let generation = last_generation(&run).unwrap_or_else(|| panic!("no `assigned` line:\n{}", run.stdout.join("\n")));

    // A static member does not leave on close: the coordinator keeps it until its
    // session times out.
    let members =
        kafka_tool("consumer-groups", &["--bootstrap-server", &b, "--describe", "--group", &group, "--members"]);
    assert_success(&members, "describe --members");
    assert!(
        common::stdout(&members).contains("cafe-static-1"),
        "the static member is still registered after close:\n{}",
        common::stdout(&members)
    );

    let second = produce(&topic, 4);
    let again = member::cafe_member("static member", &args).finish(Duration::from_secs(60));
    again.assert_success("static member, second run");
    assert_matches_reports(&again.consumed(&topic), &second);
    assert_eq!(
        last_generation(&again),
        Some(generation),
        "a static member rejoining within the session timeout causes no rebalance\n{}",
        again.stdout.join("\n")
    );

    common::delete_topic(&topic);
}

/// A broker answers the requests of one connection in order, so a Fetch that
/// long-polls for `fetch.max.wait.ms` would hold back a heartbeat or commit sent
/// behind it on the same connection (it once slowed every rebalance by up to that
/// long). Fetches must travel on connections that carry no group request.
#[test]
fn fetches_never_share_a_connection_with_group_requests() {
    use common::proxy::RecordingProxy;
    use kafka_protocol::messages::ApiKey;
    let topic = unique_topic("consume-lanes");
    let group = unique_topic("consume-lanes-group");
    common::create_topic(&topic, 2);
    let proxy = RecordingProxy::start(&bootstrap());
    let addr = proxy.addr();
    // Long polls on an empty topic, with heartbeats and auto-commits going on meanwhile.
    let out = run_cafe(
        &[
            "-b",
            &addr,
            "consume",
            "-t",
            &topic,
            "-g",
            &group,
            "--heartbeat-interval-ms",
            "300",
            "--auto-commit-interval-ms",
            "300",
            "--fetch-max-wait-ms",
            "500",
            "--idle-exit",
            "3s",
        ],
        b"",
    );
    assert_success(&out, "cafe consume through the proxy");
    let requests = proxy.requests();
    let fetch_conns: BTreeSet<usize> =
        requests.iter().filter(|r| r.key() == Some(ApiKey::Fetch)).map(|r| r.connection).collect();
    let group_keys = [ApiKey::Heartbeat, ApiKey::OffsetCommit, ApiKey::JoinGroup, ApiKey::SyncGroup];
    let group_conns: BTreeSet<usize> =
        requests.iter().filter(|r| r.key().is_some_and(|k| group_keys.contains(&k))).map(|r| r.connection).collect();
    assert!(!fetch_conns.is_empty(), "no Fetch went through the proxy");
    assert!(
        requests.iter().filter(|r| r.key() == Some(ApiKey::Heartbeat)).count() >= 3,
        "expected heartbeats during the run"
    );
    assert!(
        fetch_conns.is_disjoint(&group_conns),
        "Fetch on connections {fetch_conns:?}, group requests on {group_conns:?}"
    );
    common::delete_topic(&topic);
}
