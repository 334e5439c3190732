//! `cafe consume --group-protocol consumer` (KIP-848) against a real Kafka 4.1
//! broker: one member reads everything; three members split six partitions and
//! the survivors take over a member stopped with SIGTERM, every record printed
//! once and committed offsets never moving back; a mixed group with a
//! librdkafka member (`tests/peers/group_consume.py --group-protocol consumer`);
//! a classic cafe member in a consumer-protocol group; and the library's consumer
//! API (commit, restart, commit on revocation) with it.
//!
//! The broker's heartbeat interval (`group.consumer.heartbeat.interval.ms`, 5 s
//! by default, also its minimum) paces every step of a rebalance here, so the
//! waits are counted in heartbeats.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::consume_json::{ConsumeLine, parse_lines, partitions_of};
use common::member::{self, Mode, cafe_positions as positions, peer_owned, peer_positions};
use common::records::{OffsetMonitor, Pos, assert_exactly_once, committed, group_state, produce};
use common::{Background, bootstrap, unique_topic};

/// A KIP-848 `cafe consume --json` member, then `extra`.
fn member(name: &str, topic: &str, group: &str, extra: &[&str]) -> Background {
    // A safety net only: the tests stop the members themselves.
    let mut args = vec!["--idle-exit", "50s"];
    args.extend_from_slice(extra);
    member::cafe(name, topic, group, Mode::Consumer, &args)
}

fn wait_until(limit: Duration, what: &str, mut check: impl FnMut() -> bool, explain: impl Fn() -> String) {
    common::records::wait_until(limit, what, || check().then_some(()), explain)
}

#[test]
fn one_consumer_protocol_member_gets_every_partition_and_reads_every_record() {
    bootstrap();
    let topic = unique_topic("cafe-848-one");
    let group = unique_topic("cafe-848-group-one");
    common::create_topic(&topic, 3);
    let produced = produce(&topic, 20);
    let mut m = member("member", &topic, &group, &["--group-remote-assignor", "range"]);
    m.wait_for(Duration::from_secs(30), "every record", |lines| {
        positions(lines, &topic).into_iter().collect::<BTreeSet<_>>() == produced
    });
    assert_eq!(m.owned(&topic), Some((0..3).collect()));
    let state = group_state(&group);
    assert!(state.contains("range") && state.contains("Stable"), "a consumer-protocol group with range:\n{state}");
    m.signal("TERM");
    let end = m.finish(Duration::from_secs(20));
    end.assert_success("member after SIGTERM");
    let printed = positions(&end.stdout, &topic);
    assert_eq!(printed.len(), produced.len(), "each record once: {printed:?}");
    // Closing revokes what it owned (before the final commit and the leave heartbeat).
    assert_eq!(end.revocations().last().map(|p| partitions_of(p, &topic)), Some((0..3).collect()));
    // The final commit landed: everything is committed.
    let offsets = committed(&group, &topic).expect("describe the group");
    let ends: BTreeMap<i32, i64> =
        (0..3).map(|p| (p, produced.iter().filter(|(q, _)| *q == p).map(|(_, o)| o + 1).max().unwrap_or(0))).collect();
    assert_eq!(offsets, ends, "committed offsets are the log ends");
    common::delete_topic(&topic);
}

#[test]
fn three_consumer_protocol_members_split_six_partitions_and_take_over_after_sigterm() {
    bootstrap();
    let topic = unique_topic("cafe-848-three");
    let group = unique_topic("cafe-848-group-three");
    common::create_topic(&topic, 6);
    let mut produced = produce(&topic, 12);
    let members: Vec<Background> = (0..3).map(|i| member(&format!("member{i}"), &topic, &group, &[])).collect();
    let explain = |ms: &[Background]| ms.iter().map(Background::describe).collect::<Vec<_>>().join("\n");
    let all6: BTreeSet<i32> = (0..6).collect();
    let split = |ms: &[Background], each: usize| {
        let Some(a) = ms.iter().map(|m| m.owned(&topic)).collect::<Option<Vec<_>>>() else { return false };
        let union: BTreeSet<i32> = a.iter().flatten().copied().collect();
        a.iter().all(|s| s.len() == each) && union == all6
    };
    wait_until(
        Duration::from_secs(40),
        "2 partitions for each of 3 members",
        || split(&members, 2),
        || explain(&members),
    );

    // Committed offsets, sampled while members come and go, must never move back.
    let monitor = OffsetMonitor::start(&group, &topic);

    produced.extend(produce(&topic, 18));
    let mut members = members;
    let victim = members.pop().expect("three members");
    let victim_parts = victim.owned(&topic).expect("assigned");
    victim.signal("TERM");
    produced.extend(produce(&topic, 18));
    let victim = victim.finish(Duration::from_secs(20));
    victim.assert_success("member2 after SIGTERM");
    let last_change = parse_lines(&victim.stdout).into_iter().rev().find_map(|l| match l {
        ConsumeLine::Revoked(p) => Some(Ok(partitions_of(&p, &topic))),
        ConsumeLine::Assigned(a) => Some(Err(a)),
        ConsumeLine::Record(_) => None,
    });
    assert_eq!(last_change, Some(Ok(victim_parts.clone())), "member2 revokes its partitions on close");

    wait_until(Duration::from_secs(30), "the two survivors to own all 6", || split(&members, 3), || explain(&members));
    wait_until(
        Duration::from_secs(20),
        "every record to be printed",
        || {
            let mut seen: BTreeSet<Pos> = positions(&victim.stdout, &topic).into_iter().collect();
            for m in &members {
                seen.extend(positions(&m.stdout_lines(), &topic));
            }
            seen.is_superset(&produced)
        },
        || explain(&members),
    );
    let mut all = positions(&victim.stdout, &topic);
    for (i, m) in members.into_iter().enumerate() {
        m.signal("TERM");
        let end = m.finish(Duration::from_secs(20));
        end.assert_success(&format!("member{i}"));
        all.extend(positions(&end.stdout, &topic));
    }

    assert_exactly_once(all, &produced);

    monitor.assert_never_back(1);
    common::delete_topic(&topic);
}

/// A mixed KIP-848 group: `cafe` and librdkafka (confluent-kafka,
/// `group.protocol=consumer`) split four partitions; when the peer closes, `cafe`
/// takes its partitions over from its commits. Every record is printed once.
#[test]
fn a_mixed_group_with_a_librdkafka_consumer_protocol_member() {
    bootstrap();
    let topic = unique_topic("cafe-848-mixed");
    let group = unique_topic("cafe-848-group-mixed");
    common::create_topic(&topic, 4);
    let mut produced = produce(&topic, 16);
    let cafe = member("cafe", &topic, &group, &[]);
    let peer_args = ["--group-protocol", "consumer", "--idle", "40", "--timeout", "55"];
    let peer = member::librdkafka("peer", &topic, &group, &peer_args);
    let explain = || format!("{}\n{}", cafe.describe(), peer.describe());
    let all4: BTreeSet<i32> = (0..4).collect();
    wait_until(
        Duration::from_secs(40),
        "2 partitions each for cafe and the librdkafka member",
        || match (cafe.owned(&topic), peer_owned(&peer)) {
            (Some(a), Some(b)) => a.len() == 2 && b.len() == 2 && a.union(&b).copied().collect::<BTreeSet<_>>() == all4,
            _ => false,
        },
        explain,
    );
    produced.extend(produce(&topic, 16));
    wait_until(
        Duration::from_secs(20),
        "every record so far to be printed by one of them",
        || {
            let mut seen: BTreeSet<Pos> = positions(&cafe.stdout_lines(), &topic).into_iter().collect();
            seen.extend(peer_positions(&peer.stdout_lines()));
            seen.is_superset(&produced)
        },
        explain,
    );
    // Ctrl+C: the peer closes (final commit, leave) and cafe gets its partitions.
    peer.signal("INT");
    let peer = peer.finish(Duration::from_secs(20));
    wait_until(
        Duration::from_secs(30),
        "cafe to own all 4",
        || cafe.owned(&topic) == Some(all4.clone()),
        || cafe.describe(),
    );
    produced.extend(produce(&topic, 8));
    wait_until(
        Duration::from_secs(20),
        "every record to be printed",
        || {
            let mut seen: BTreeSet<Pos> = positions(&cafe.stdout_lines(), &topic).into_iter().collect();
            seen.extend(peer_positions(&peer.stdout));
            seen.is_superset(&produced)
        },
        || format!("{}\n--- peer stderr\n{}", cafe.describe(), peer.stderr_text()),
    );
    cafe.signal("TERM");
    let end = cafe.finish(Duration::from_secs(20));
    end.assert_success("cafe after SIGTERM");
    let mut all = positions(&end.stdout, &topic);
    all.extend(peer_positions(&peer.stdout));
    assert_exactly_once(all, &produced);
    common::delete_topic(&topic);
}

/// A cafe member of the classic protocol (eager range) joining a consumer-protocol
/// group: the broker assigns it through JoinGroup/SyncGroup with the server
/// assignor; when it leaves, the consumer-protocol member takes everything back.
#[test]
fn a_classic_cafe_member_in_a_consumer_protocol_group() {
    bootstrap();
    let topic = unique_topic("cafe-848-classic");
    let group = unique_topic("cafe-848-group-classic");
    common::create_topic(&topic, 4);
    let mut produced = produce(&topic, 16);
    let mut modern = member("consumer-protocol", &topic, &group, &[]);
    // The consumer-protocol member makes the group first: the classic one then
    // joins a consumer-protocol group (not a classic group being converted).
    let all4: BTreeSet<i32> = (0..4).collect();
    modern.wait_for(Duration::from_secs(20), "the consumer-protocol member to own all 4", |lines| {
        parse_lines(lines).iter().any(|l| matches!(l, ConsumeLine::Assigned(a) if a.of(&topic) == all4))
    });
    let classic = member::cafe("classic", &topic, &group, Mode::Eager, &["--idle-exit", "50s"]);
    let explain = || format!("{}\n{}", modern.describe(), classic.describe());
    wait_until(
        Duration::from_secs(40),
        "2 partitions each for the two members",
        || match (modern.owned(&topic), classic.owned(&topic)) {
            (Some(a), Some(b)) => a.len() == 2 && b.len() == 2 && a.union(&b).copied().collect::<BTreeSet<_>>() == all4,
            _ => false,
        },
        explain,
    );
    produced.extend(produce(&topic, 8));
    classic.signal("TERM");
    let classic = classic.finish(Duration::from_secs(20));
    classic.assert_success("the classic member after SIGTERM");
    wait_until(
        Duration::from_secs(30),
        "the consumer-protocol member to own all 4",
        || modern.owned(&topic) == Some(all4.clone()),
        || modern.describe(),
    );
    wait_until(
        Duration::from_secs(20),
        "every record to be printed",
        || {
            let mut seen: BTreeSet<Pos> = positions(&modern.stdout_lines(), &topic).into_iter().collect();
            seen.extend(positions(&classic.stdout, &topic));
            seen.is_superset(&produced)
        },
        || modern.describe(),
    );
    modern.signal("TERM");
    let end = modern.finish(Duration::from_secs(20));
    end.assert_success("the consumer-protocol member");
    let mut all = positions(&end.stdout, &topic);
    all.extend(positions(&classic.stdout, &topic));
    assert_exactly_once(all, &produced);
    common::delete_topic(&topic);
}

/// A member slower than `max.poll.interval.ms` between polls (each record
/// takes 3 s, the interval is 2 s): it leaves the group, its partition lost
/// (a `revoked` line), and rejoins at its next poll (assigned again), as the
/// Java client does.
#[test]
fn a_member_that_does_not_poll_within_max_poll_interval_leaves_and_rejoins_at_its_next_poll() {
    bootstrap();
    let topic = unique_topic("cafe-848-slow");
    let group = unique_topic("cafe-848-group-slow");
    common::create_topic(&topic, 1);
    produce(&topic, 3);
    let slow = ["--max-poll-interval-ms", "2000", "--process-delay", "3s", "--max-poll-records", "1"];
    let mut m = member("slow", &topic, &group, &slow);
    m.wait_for(Duration::from_secs(40), "assigned, revoked, assigned again", |lines| {
        let changes: Vec<&str> = parse_lines(lines)
            .iter()
            .filter_map(|l| match l {
                ConsumeLine::Assigned(_) => Some("assigned"),
                ConsumeLine::Revoked(_) => Some("revoked"),
                ConsumeLine::Record(_) => None,
            })
            .collect();
        changes.starts_with(&["assigned", "revoked", "assigned"])
    });
    let warned = m.stderr_lines().iter().any(|l| l.contains("no poll within max.poll.interval.ms"));
    assert!(warned, "the leave is logged\n{}", m.describe());
    m.signal("TERM");
    m.finish(Duration::from_secs(30)).assert_success("the slow member after SIGTERM");
    common::delete_topic(&topic);
}

/// The library's consumer API with `group.protocol=consumer`, as with classic:
/// commit, NotAssigned, restart from the commit, commit on revocation.
mod consumer_api {
    use std::collections::BTreeMap;
    use std::sync::Arc;
    use std::time::Duration;

    use cafe_kafka::{
        Cluster, CommitError, ConnectionConfig, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, GroupConfig,
        GroupProtocol, OffsetReset, TopicPartition,
    };

    use super::common::{assert_success, bootstrap, create_topic, delete_topic, run_cafe, unique_topic};

    /// A few broker heartbeat intervals (5 s each).
    const WAIT: Duration = Duration::from_secs(30);

    /// `values` records with distinct keys (so two partitions both get some).
    fn topic_with(prefix: &str, partitions: i32, values: usize) -> String {
        let topic = unique_topic(prefix);
        create_topic(&topic, partitions);
        let b = bootstrap();
        let input: String = (0..values).map(|i| format!("k{i}\tv{i}\n")).collect();
        let out = run_cafe(&["-b", &b, "send", "-t", &topic, "--keyed"], input.as_bytes());
        assert_success(&out, &format!("cafe send to {topic}"));
        topic
    }

    async fn cluster() -> Arc<Cluster> {
        Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect to the broker")
    }

    fn manual(topic: &str, group: &str) -> ConsumerConfig {
        let mut config = ConsumerConfig {
            group: GroupConfig {
                protocol: GroupProtocol::Consumer,
                group_id: group.into(),
                topics: vec![topic.into()],
                enable_auto_commit: false,
                ..GroupConfig::default()
            },
            ..ConsumerConfig::default()
        };
        config.fetch.reset = OffsetReset::Earliest;
        config
    }

    async fn read_exactly(consumer: &mut Consumer, n: usize) -> Vec<ConsumedRecord> {
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(WAIT, consumer.poll_max(n - out.len()))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} records within {WAIT:?}", out.len()))
                .expect("poll");
            out.extend(batch);
        }
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn manual_commit_then_restart_resumes_exactly_at_the_commit() {
        let topic = topic_with("lib-848-commit", 1, 12);
        let group = unique_topic("lib-848-commit-group");
        let tp = TopicPartition::new(topic.clone(), 0);
        let mut first = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let seen = read_exactly(&mut first, 5).await;
        assert_eq!(seen.iter().map(|r| r.record.offset).collect::<Vec<_>>(), (0..5).collect::<Vec<_>>());
        first.commit().await.expect("commit with the member epoch");
        assert!(first.generation_id().is_some_and(|e| e > 0), "the member epoch: {:?}", first.generation_id());
        let foreign = TopicPartition::new(topic.clone(), 3);
        match first.commit_offsets(BTreeMap::from([(foreign.clone(), 1)])).await {
            Err(CommitError::NotAssigned(tps)) => assert_eq!(tps, vec![foreign]),
            other => panic!("expected NotAssigned, got {other:?}"),
        }
        read_exactly(&mut first, 2).await;
        first.close().await.expect("close");

        let mut second = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        assert_eq!(read_exactly(&mut second, 1).await[0].record.offset, 5, "the next member starts at the commit");
        second.commit_offsets(BTreeMap::from([(tp, 2)])).await.expect("commit_offsets moves back");
        second.close().await.expect("close");
        let mut third = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        assert_eq!(read_exactly(&mut third, 1).await[0].record.offset, 2);
        third.close().await.expect("close");
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_member_takes_one_partition_from_the_commit_made_on_revocation() {
        let topic = topic_with("lib-848-rebalance", 2, 20);
        let group = unique_topic("lib-848-rebalance-group");
        let mut first = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let mut positions: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        let mut owned = Vec::new();
        let mut read = 0;
        while read < 6 || owned.len() < 2 {
            match tokio::time::timeout(WAIT, first.next_event_max(3)).await.expect("events").expect("event") {
                ConsumerEvent::Assigned(tps) => owned.extend(tps),
                ConsumerEvent::Records(rs) => {
                    read += rs.len();
                    for r in rs {
                        positions.insert(TopicPartition::new(r.topic.clone(), r.partition), r.record.offset + 1);
                    }
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        // Hold the rest back, so the positions stay where they are.
        first.pause(&owned);
        let mut second = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("second consumer");
        let revoked = match tokio::time::timeout(WAIT, first.next_event()).await.expect("a revocation").expect("event")
        {
            ConsumerEvent::Revoked(tps) => {
                first.commit().await.expect("commit during the revocation");
                tps
            }
            other => panic!("expected Revoked, got {other:?}"),
        };
        assert_eq!(revoked.len(), 1, "uniform gives the newcomer one of two: {revoked:?}");
        // The first member is called again (which ends its revocation) while the
        // second gets the revoked partition.
        let next = {
            let take = async {
                match tokio::time::timeout(WAIT, second.next_event_max(1)).await.expect("an assignment").expect("event")
                {
                    ConsumerEvent::Assigned(tps) => assert_eq!(tps, revoked),
                    other => panic!("expected Assigned, got {other:?}"),
                }
                read_exactly(&mut second, 1).await
            };
            tokio::select! {
                next = take => next,
                e = first.next_event() => panic!("the first member owns only paused partitions: {e:?}"),
            }
        };
        let start = positions.get(&revoked[0]).copied().unwrap_or(0);
        assert_eq!(next[0].record.offset, start, "the new owner starts at the revocation's commit");
        let (r1, r2) = tokio::join!(first.close(), second.close());
        r1.expect("close first");
        r2.expect("close second");
        delete_topic(&topic);
    }
}
