//! Cooperative incremental rebalancing (KIP-429) against a real broker: `cafe
//! consume --partition-assignment-strategy cooperative-sticky` members give up
//! only the partitions that move, and share a group with the Java consumer and
//! librdkafka (confluent-kafka) running the same assignor.
//!
//! Members run as child processes (`common::Background`) with `--json`; their
//! `{"event": "assigned"|"revoked", ...}` lines show what they owned and gave up.
//!
//! Run with `cargo test --test cooperative`; it needs the broker from `make
//! kafka-up`, the peer venv from `scripts/py-peers.sh` and Java for Kafka's tools.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::consume_json::{ConsumeLine, parse_lines, partitions_of};
use common::member::{self, Mode, cafe_positions, java_positions, peer_positions};
use common::records::{Pos, assert_exactly_once, produce, wait_until};
use common::{Background, unique_topic};

/// A cooperative-sticky `cafe consume --json` member with the short test timings.
fn cafe_member(name: &str, topic: &str, group: &str) -> Background {
    member::cafe(name, topic, group, Mode::Cooperative, &["--idle-exit", "60s"])
}

/// The partitions a cafe member revoked, one entry per `revoked` line, so far.
fn revoked(m: &Background, topic: &str) -> Vec<BTreeSet<i32>> {
    parse_lines(&m.stdout_lines())
        .into_iter()
        .filter_map(|l| match l {
            ConsumeLine::Revoked(p) => Some(partitions_of(&p, topic)),
            _ => None,
        })
        .collect()
}

fn describe_all(members: &[&Background]) -> String {
    members.iter().map(|m| m.describe()).collect::<Vec<_>>().join("\n")
}

/// Three cooperative members share 6 partitions; a fourth joins. The three keep
/// fetching what stays theirs: each revokes only partitions that end up with
/// the newcomer, never one it keeps, and every record is printed once.
#[test]
fn a_joining_member_takes_partitions_without_revoking_the_ones_that_stay() {
    let topic = unique_topic("cafe-coop-join");
    let group = unique_topic("cafe-group-coop-join");
    common::recreate_topic(&topic, 6);

    let first: Vec<Background> = (1..=3).map(|i| cafe_member(&format!("cafe-{i}"), &topic, &group)).collect();
    let explain = || describe_all(&first.iter().collect::<Vec<_>>());
    let before: Vec<BTreeSet<i32>> = wait_until(
        Duration::from_secs(30),
        "3 members with 2 partitions each",
        || {
            let owned: Vec<BTreeSet<i32>> = first.iter().map(|m| m.owned(&topic)).collect::<Option<_>>()?;
            let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
            (owned.iter().all(|o| o.len() == 2) && all.len() == 6).then_some(owned)
        },
        explain,
    );
    let mut produced = produce(&topic, 30);
    let printed_by = |ms: &[&Background]| -> BTreeSet<Pos> {
        ms.iter().flat_map(|m| cafe_positions(&m.stdout_lines(), &topic)).collect()
    };
    wait_until(
        Duration::from_secs(30),
        "the first 30 records",
        || printed_by(&first.iter().collect::<Vec<_>>()).is_superset(&produced).then_some(()),
        explain,
    );
    // Revocations before the newcomer: those of the first rebalances settling.
    let revoked_before: Vec<usize> = first.iter().map(|m| revoked(m, &topic).len()).collect();

    let fourth = cafe_member("cafe-4", &topic, &group);
    let everyone = || -> Vec<&Background> { first.iter().chain(std::iter::once(&fourth)).collect() };
    let after: Vec<BTreeSet<i32>> = wait_until(
        Duration::from_secs(30),
        "4 members sharing the 6 partitions 2/2/1/1",
        || {
            let owned: Vec<BTreeSet<i32>> = everyone().iter().map(|m| m.owned(&topic)).collect::<Option<_>>()?;
            let all: BTreeSet<i32> = owned.iter().flatten().copied().collect();
            let total: usize = owned.iter().map(BTreeSet::len).sum();
            let mut sizes: Vec<usize> = owned.iter().map(BTreeSet::len).collect();
            sizes.sort_unstable();
            (all.len() == 6 && total == 6 && sizes == [1, 1, 2, 2]).then_some(owned)
        },
        || describe_all(&everyone()),
    );
    produced.extend(produce(&topic, 30));
    wait_until(
        Duration::from_secs(30),
        "all 60 records",
        || printed_by(&everyone()).is_superset(&produced).then_some(()),
        || describe_all(&everyone()),
    );

    // Only what moved to the newcomer was revoked; what stayed never was.
    let newcomer = &after[3];
    let moved: BTreeSet<i32> =
        first.iter().enumerate().flat_map(|(i, m)| revoked(m, &topic).split_off(revoked_before[i])).flatten().collect();
    assert_eq!(&moved, newcomer, "exactly the newcomer's partitions were revoked\n{}", describe_all(&everyone()));
    for (i, m) in first.iter().enumerate() {
        let kept: BTreeSet<i32> = before[i].intersection(&after[i]).copied().collect();
        assert_eq!(after[i], kept, "{}: nothing new while others give up partitions", m.describe());
        for gone in &revoked(m, &topic)[revoked_before[i]..] {
            assert!(gone.is_disjoint(&kept), "cafe-{} revoked {gone:?} but kept {kept:?}\n{}", i + 1, m.describe());
            assert!(gone.is_subset(newcomer), "cafe-{} revoked {gone:?}, not the newcomer's {newcomer:?}", i + 1);
        }
    }

    let mut printed = Vec::new();
    for m in first.into_iter().chain(std::iter::once(fourth)) {
        m.signal("TERM");
        let end = m.finish(Duration::from_secs(30));
        end.assert_success("cafe");
        printed.extend(cafe_positions(&end.stdout, &topic));
    }
    assert_exactly_once(printed, &produced);
    common::delete_topic(&topic);
}

/// Kafka's console consumer (the Java client) in `group`, cooperative-sticky;
/// exits after `idle_ms` without records.
fn java_member(topic: &str, group: &str, idle_ms: &str) -> Background {
    let [session, heartbeat] = member::java_classic_timings();
    let strategy = "partition.assignment.strategy=org.apache.kafka.clients.consumer.CooperativeStickyAssignor";
    member::java("java-console-consumer", topic, group, idle_ms, &[strategy, &session, &heartbeat])
}

/// The confluent-kafka peer (librdkafka), cooperative-sticky.
fn librdkafka_member(topic: &str, group: &str) -> Background {
    let mut args = member::librdkafka_classic("cooperative-sticky").to_vec();
    args.extend(["--idle", "8", "--timeout", "60"]);
    member::librdkafka("confluent-kafka", topic, group, &args)
}

/// cafe (leading), the Java consumer and librdkafka, all cooperative-sticky, on
/// 6 partitions: each gets partitions, and together they print every record once.
#[test]
fn mixed_cooperative_group_with_java_and_librdkafka() {
    let topic = unique_topic("cafe-coop-mixed");
    let group = unique_topic("cafe-group-coop-mixed");
    common::recreate_topic(&topic, 6);

    let cafe = cafe_member("cafe", &topic, &group);
    wait_until(
        Duration::from_secs(30),
        "cafe to lead with all 6",
        || (cafe.owned(&topic)?.len() == 6).then_some(()),
        || cafe.describe(),
    );
    let java = java_member(&topic, &group, "12000");
    let peer = librdkafka_member(&topic, &group);
    let explain = || describe_all(&[&cafe, &java, &peer]);
    // cafe holds 2 once both others are in (and have been handed theirs).
    let peer_assigned =
        |p: &Background| p.stderr_lines().iter().any(|l| l.contains("\"assigned\": [") && !l.contains("[]"));
    wait_until(
        Duration::from_secs(40),
        "cafe down to 2 partitions and the peer assigned",
        || (cafe.owned(&topic)?.len() == 2 && peer_assigned(&peer)).then_some(()),
        explain,
    );
    let produced = produce(&topic, 60);
    let all_printed = || -> BTreeSet<Pos> {
        let mut s: BTreeSet<Pos> = cafe_positions(&cafe.stdout_lines(), &topic).into_iter().collect();
        s.extend(java_positions(&java.stdout_lines()));
        s.extend(peer_positions(&peer.stdout_lines()));
        s
    };
    wait_until(
        Duration::from_secs(30),
        "every record printed by one of the three",
        || all_printed().is_superset(&produced).then_some(()),
        explain,
    );
    let cafe_parts: BTreeSet<i32> = cafe.owned(&topic).expect("assigned");

    // The others exit once idle; cafe after them, so nothing moves while records flow.
    let peer = peer.finish(Duration::from_secs(30));
    assert!(peer.status.success(), "peer failed ({}):\n{}", peer.status, peer.stderr_text());
    let java = java.finish(Duration::from_secs(30));
    cafe.signal("TERM");
    let cafe = cafe.finish(Duration::from_secs(30));
    cafe.assert_success("cafe");

    let (c, j, p) = (cafe_positions(&cafe.stdout, &topic), java_positions(&java.stdout), peer_positions(&peer.stdout));
    let parts = |ps: &[Pos]| ps.iter().map(|(p, _)| *p).collect::<BTreeSet<i32>>();
    let (cp, jp, pp) = (parts(&c), parts(&j), parts(&p));
    let report = format!("cafe {cp:?} (owned {cafe_parts:?}), java {jp:?}, librdkafka {pp:?}");
    assert!(!cp.is_empty() && !jp.is_empty() && !pp.is_empty(), "every member consumed: {report}");
    assert!(cp.is_disjoint(&jp) && cp.is_disjoint(&pp) && jp.is_disjoint(&pp), "no partition shared: {report}");
    eprintln!("mixed cooperative group: {report}");
    assert_exactly_once(c.into_iter().chain(j).chain(p), &produced);
    common::delete_topic(&topic);
}

/// Java's default `partition.assignment.strategy` is `[range, cooperative-sticky]`:
/// eager for the Java member, but the coordinator must pick cooperative-sticky,
/// the one protocol it shares with a cooperative cafe member. Java joins first
/// and leads; cafe joins, gets half, and every record is printed once.
#[test]
fn java_default_assignors_lead_a_cooperative_cafe_member() {
    let topic = unique_topic("cafe-coop-java-default");
    let group = unique_topic("cafe-group-coop-java-default");
    common::recreate_topic(&topic, 6);
    let mut produced = produce(&topic, 30);

    let [session, heartbeat] = member::java_classic_timings();
    let java =
        member::java("java-console-consumer (default assignors)", &topic, &group, "10000", &[&session, &heartbeat]);
    // Java alone has read everything: it is the group's leader.
    wait_until(
        Duration::from_secs(30),
        "Java to read the first 30 alone",
        || {
            java_positions(&java.stdout_lines())
                .into_iter()
                .collect::<BTreeSet<_>>()
                .is_superset(&produced)
                .then_some(())
        },
        || java.describe(),
    );
    let cafe = cafe_member("cafe", &topic, &group);
    let explain = || describe_all(&[&cafe, &java]);
    let cafe_parts = wait_until(
        Duration::from_secs(30),
        "cafe to get 3 of the 6",
        || cafe.owned(&topic).filter(|o| o.len() == 3),
        explain,
    );
    produced.extend(produce(&topic, 30));
    wait_until(
        Duration::from_secs(30),
        "all 60 printed",
        || {
            let mut s: BTreeSet<Pos> = cafe_positions(&cafe.stdout_lines(), &topic).into_iter().collect();
            s.extend(java_positions(&java.stdout_lines()));
            s.is_superset(&produced).then_some(())
        },
        explain,
    );
    let java = java.finish(Duration::from_secs(30));
    cafe.signal("TERM");
    let cafe = cafe.finish(Duration::from_secs(30));
    cafe.assert_success("cafe");
    let c = cafe_positions(&cafe.stdout, &topic);
    assert!(c.iter().all(|(p, _)| cafe_parts.contains(p)), "cafe printed only its own {cafe_parts:?}: {c:?}");
    assert!(!c.is_empty(), "cafe consumed records of its partitions");
    assert_exactly_once(c.into_iter().chain(java_positions(&java.stdout)), &produced);
    common::delete_topic(&topic);
}
