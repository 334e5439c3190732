//! Groups that mix protocols, against a real Kafka 4.1 broker, while a producer
//! keeps records flowing: cafe's KIP-848 members with a Java classic member and
//! a librdkafka KIP-848 member in one group; and a group of cafe members moved
//! from the classic protocol to the consumer protocol by a rolling restart, and
//! back (the broker converts the group each way: `group.consumer.migration.policy`
//! is `bidirectional` by default). Every record is printed once over all members,
//! and the committed offsets, sampled throughout, never move back.
//!
//! The broker's heartbeat interval for consumer-protocol members (5 s, its
//! minimum on the single node) paces each step, so a test takes a minute.
//! Run with `cargo test --test mixed_groups`; it needs the broker from `make
//! kafka-up`, the peer venv from `scripts/py-peers.sh` and Java for Kafka's tools.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::member::{self, Mode, cafe, cafe_positions, java_positions, peer_owned, peer_positions};
use common::records::{OffsetMonitor, Pos, SteadyProducer, assert_exactly_once, group_state, wait_until};
use common::{Background, BackgroundEnd, bootstrap, create_topic, unique_topic};

const PARTITIONS: i32 = 6;
/// Long enough for any step here; the tests stop the members themselves.
const STEP: Duration = Duration::from_secs(60);
/// A safety net only, as `--idle-exit`.
const IDLE_EXIT: &str = "150s";

fn all_partitions() -> BTreeSet<i32> {
    (0..PARTITIONS).collect()
}

/// The partitions each member owns, when every member owns some, no partition
/// is owned twice and together they own every partition.
fn settled(owned: &[Option<BTreeSet<i32>>]) -> bool {
    let Some(owned) = owned.iter().cloned().collect::<Option<Vec<_>>>() else { return false };
    let total: usize = owned.iter().map(BTreeSet::len).sum();
    let union: BTreeSet<i32> = owned.iter().flatten().copied().collect();
    owned.iter().all(|o| !o.is_empty()) && total == union.len() && union == all_partitions()
}

fn describe(members: &[&Background]) -> String {
    members.iter().map(|m| m.describe()).collect::<Vec<_>>().join("\n")
}

/// The ASSIGNMENT-STRATEGY column of [`group_state`]: `uniform` (the server
/// assignor) for a consumer-protocol group, `range` for a classic one here.
fn assignment_strategy(group: &str) -> String {
    let state = group_state(group);
    state
        .lines()
        .find_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            // GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS
            (cols.first() == Some(&group) && cols.len() >= 5).then(|| cols[cols.len() - 3].to_owned())
        })
        .unwrap_or_else(|| panic!("no state row for {group}:\n{state}"))
}

/// Two cafe KIP-848 members, a Java classic member (the console consumer with
/// `group.protocol=classic`, eager by its default `[range, cooperative-sticky]`)
/// and a librdkafka `group.protocol=consumer` member share six partitions in
/// one consumer-protocol group; the Java and librdkafka members leave cleanly
/// while records flow and the cafe members take over.
#[test]
fn cafe_consumer_protocol_members_with_java_classic_and_librdkafka_consumer_members() {
    bootstrap();
    let topic = unique_topic("cafe-mixed-848");
    let group = unique_topic("cafe-group-mixed-848");
    create_topic(&topic, PARTITIONS);
    let producer = SteadyProducer::start(&topic, 10, Duration::from_millis(250));
    let monitor = OffsetMonitor::start(&group, &topic);

    // cafe makes the group a consumer-protocol group; the others join it.
    let first = cafe("cafe-1", &topic, &group, Mode::Consumer, &["--idle-exit", IDLE_EXIT]);
    wait_until(
        STEP,
        "cafe-1 to own every partition",
        || (first.owned(&topic)? == all_partitions()).then_some(()),
        || first.describe(),
    );
    // One record per poll: the console consumer prints each record before its
    // next poll, so the commit on close never passes an unprinted record.
    let [session, heartbeat] = member::java_classic_timings();
    let java = member::java(
        "java-classic",
        &topic,
        &group,
        "120000",
        &["group.protocol=classic", "max.poll.records=1", &session, &heartbeat],
    );
    let peer = member::librdkafka(
        "librdkafka-consumer-protocol",
        &topic,
        &group,
        &["--group-protocol", "consumer", "--idle", "120", "--timeout", "150"],
    );
    let second = cafe("cafe-2", &topic, &group, Mode::Consumer, &["--idle-exit", IDLE_EXIT]);
    let explain = || describe(&[&first, &second, &java, &peer]);
    // Java's console consumer prints no assignment: it owns what the others do
    // not, and shows it by printing records of those partitions.
    wait_until(
        Duration::from_secs(90),
        "all four members consuming, cafe and librdkafka owning disjoint partitions",
        || {
            let (a, b, p) = (first.owned(&topic)?, second.owned(&topic)?, peer_owned(&peer)?);
            let union: BTreeSet<i32> = a.iter().chain(&b).chain(&p).copied().collect();
            let disjoint = union.len() == a.len() + b.len() + p.len();
            let rest: BTreeSet<i32> = all_partitions().difference(&union).copied().collect();
            let java_reads_rest = java_positions(&java.stdout_lines()).iter().any(|(q, _)| rest.contains(q));
            let each = !a.is_empty() && !b.is_empty() && !p.is_empty();
            (each && disjoint && !rest.is_empty() && java_reads_rest).then_some(())
        },
        explain,
    );
    let state = assignment_strategy(&group);
    assert_eq!(state, "uniform", "a consumer-protocol group, assigned by the broker");

    // Clean leaves while records flow: the peer closes (commit, leave), then Java.
    peer.signal("TERM");
    let peer = peer.finish(Duration::from_secs(30));
    peer.assert_success("the librdkafka member after SIGTERM");
    java.signal("TERM");
    let java = java.finish(Duration::from_secs(30));
    let explain = || describe(&[&first, &second]);
    wait_until(
        STEP,
        "the two cafe members to own every partition",
        || settled(&[first.owned(&topic), second.owned(&topic)]).then_some(()),
        explain,
    );
    let produced = producer.stop();
    let left: Vec<Pos> = peer_positions(&peer.stdout).into_iter().chain(java_positions(&java.stdout)).collect();
    wait_until(
        STEP,
        "every record to be printed",
        || {
            let mut seen: BTreeSet<Pos> = left.iter().copied().collect();
            seen.extend(cafe_positions(&first.stdout_lines(), &topic));
            seen.extend(cafe_positions(&second.stdout_lines(), &topic));
            seen.is_superset(&produced).then_some(())
        },
        explain,
    );
    assert!(!peer_positions(&peer.stdout).is_empty(), "librdkafka consumed\n{}", peer.stderr_text());
    assert!(!java_positions(&java.stdout).is_empty(), "Java consumed\n{}", java.stderr_text());
    let mut printed = left;
    for m in [first, second] {
        m.signal("TERM");
        let end = m.finish(Duration::from_secs(30));
        end.assert_success("cafe after SIGTERM");
        printed.extend(cafe_positions(&end.stdout, &topic));
    }
    assert_exactly_once(printed, &produced);
    monitor.assert_never_back(3);
    common::delete_topic(&topic);
}

/// Stops `members[i]` (SIGTERM: commit, leave), waits for the others to own
/// every partition, then starts `next` in its place and waits for it to be
/// given a share: one step of a rolling restart.
fn restart(members: &mut Vec<Background>, i: usize, topic: &str, next: impl FnOnce() -> Background) -> BackgroundEnd {
    let old = members.remove(i);
    old.signal("TERM");
    let end = old.finish(Duration::from_secs(30));
    end.assert_success("a member stopped for the rolling restart");
    let all_settled = |ms: &[Background]| settled(&ms.iter().map(|m| m.owned(topic)).collect::<Vec<_>>());
    let explain = |ms: &[Background]| describe(&ms.iter().collect::<Vec<_>>());
    wait_until(
        STEP,
        "the other members to own every partition",
        || all_settled(members).then_some(()),
        || explain(members),
    );
    members.insert(i, next());
    wait_until(STEP, "the restarted member to get a share", || all_settled(members).then_some(()), || explain(members));
    end
}

/// Three cafe members, classic (eager range); one at a time each restarts with
/// `--group-protocol consumer` (the first one converts the group), then one at
/// a time back to classic (the last consumer-protocol member leaving converts
/// it back). Records flow from a producer throughout.
#[test]
fn a_group_moves_from_classic_to_consumer_protocol_and_back_by_rolling_restart() {
    bootstrap();
    let topic = unique_topic("cafe-migrate");
    let group = unique_topic("cafe-group-migrate");
    create_topic(&topic, PARTITIONS);
    let producer = SteadyProducer::start(&topic, 10, Duration::from_millis(250));
    let monitor = OffsetMonitor::start(&group, &topic);
    let start = |name: String, mode: Mode| {
        let (topic, group) = (topic.clone(), group.clone());
        move || cafe(&name, &topic, &group, mode, &["--idle-exit", IDLE_EXIT])
    };

    let mut members: Vec<Background> = (0..3).map(|i| start(format!("classic-{i}"), Mode::Eager)()).collect();
    wait_until(
        STEP,
        "three classic members sharing every partition",
        || settled(&members.iter().map(|m| m.owned(&topic)).collect::<Vec<_>>()).then_some(()),
        || describe(&members.iter().collect::<Vec<_>>()),
    );
    assert_eq!(assignment_strategy(&group), "range", "a classic group to begin with");
    let mut stopped: Vec<BackgroundEnd> = Vec::new();
    for (mode, label, strategy) in [(Mode::Consumer, "consumer", "uniform"), (Mode::Eager, "classic-again", "range")] {
        for i in 0..members.len() {
            stopped.push(restart(&mut members, i, &topic, start(format!("{label}-{i}"), mode)));
        }
        assert_eq!(assignment_strategy(&group), strategy, "every member restarted as {label}");
    }

    let produced = producer.stop();
    let before: Vec<Pos> = stopped.iter().flat_map(|e| cafe_positions(&e.stdout, &topic)).collect();
    wait_until(
        STEP,
        "every record to be printed",
        || {
            let mut seen: BTreeSet<Pos> = before.iter().copied().collect();
            seen.extend(members.iter().flat_map(|m| cafe_positions(&m.stdout_lines(), &topic)));
            seen.is_superset(&produced).then_some(())
        },
        || describe(&members.iter().collect::<Vec<_>>()),
    );
    let mut printed = before;
    for m in members {
        m.signal("TERM");
        let end = m.finish(Duration::from_secs(30));
        end.assert_success("a classic member after SIGTERM");
        printed.extend(cafe_positions(&end.stdout, &topic));
    }
    assert_exactly_once(printed, &produced);
    monitor.assert_never_back(5);
    common::delete_topic(&topic);
}
