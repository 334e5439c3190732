//! The library's public API (`cafe_kafka`) against the real broker, as a Rust
//! program using it would. Test data comes from the `cafe` binary (`cafe send`),
//! so these tests do not depend on the producer API.

mod common;

/// The consumer's API: manual commit, seek, pause/resume, rebalance events, Stream.
mod consumer_api {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    use cafe_kafka::{
        Cluster, CommitError, ConnectionConfig, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, GroupConfig,
        OffsetReset, TopicPartition,
    };

    use super::common::{assert_success, bootstrap, create_topic, delete_topic, run_cafe, unique_topic};

    /// Long enough for a first join on a busy machine, short enough to fail fast.
    const WAIT: Duration = Duration::from_secs(30);

    /// Writes `lines` (`key\tvalue` with `keyed`) to `topic` through `cafe send`.
    fn send(topic: &str, lines: &[String], keyed: bool) {
        let b = bootstrap();
        let mut args = vec!["-b", b.as_str(), "send", "-t", topic];
        if keyed {
            args.push("--keyed");
        }
        let mut input = lines.join("\n");
        input.push('\n');
        let out = run_cafe(&args, input.as_bytes());
        assert_success(&out, &format!("cafe send to {topic}"));
    }

    /// A topic with `partitions` partitions holding `values` (null keys, so on one
    /// partition it is exactly `v0`, `v1`, ... at offsets 0, 1, ...).
    fn topic_with(prefix: &str, partitions: i32, values: usize) -> String {
        let topic = unique_topic(prefix);
        create_topic(&topic, partitions);
        send(&topic, &(0..values).map(|i| format!("v{i}")).collect::<Vec<_>>(), false);
        topic
    }

    async fn cluster() -> Arc<Cluster> {
        Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect to the broker")
    }

    /// Manual commit, from the earliest offset, quick heartbeats (so a second
    /// member's join is noticed within a second).
    fn manual(topic: &str, group: &str) -> ConsumerConfig {
        let mut config = ConsumerConfig {
            group: GroupConfig {
                group_id: group.into(),
                topics: vec![topic.into()],
                enable_auto_commit: false,
                heartbeat_interval: Duration::from_millis(500),
                session_timeout: Duration::from_secs(10),
                ..GroupConfig::default()
            },
            ..ConsumerConfig::default()
        };
        config.fetch.reset = OffsetReset::Earliest;
        config
    }

    /// Polls until exactly `n` records arrived (never more: `poll_max`).
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

    /// Every record that arrives until none comes for `idle`.
    async fn read_until_idle(consumer: &mut Consumer, idle: Duration) -> Vec<ConsumedRecord> {
        let mut out = Vec::new();
        while let Ok(batch) = tokio::time::timeout(idle, consumer.poll()).await {
            out.extend(batch.expect("poll"));
        }
        out
    }

    fn offsets(records: &[ConsumedRecord]) -> Vec<i64> {
        records.iter().map(|r| r.record.offset).collect()
    }

    fn value(r: &ConsumedRecord) -> String {
        String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned()
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn manual_commit_then_restart_resumes_exactly_at_the_commit() {
        let topic = topic_with("lib-commit", 1, 20);
        let group = unique_topic("lib-commit-group");
        let tp = TopicPartition::new(topic.clone(), 0);

        let mut first = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let seen = read_exactly(&mut first, 7).await;
        assert_eq!(offsets(&seen), (0..7).collect::<Vec<_>>());
        // The batch just returned counts: 7 is committed.
        first.commit().await.expect("commit");
        // Offsets of a partition we do not own: refused, nothing sent.
        let foreign = TopicPartition::new(topic.clone(), 5);
        match first.commit_offsets(BTreeMap::from([(foreign.clone(), 1)])).await {
            Err(CommitError::NotAssigned(tps)) => assert_eq!(tps, vec![foreign]),
            other => panic!("expected NotAssigned, got {other:?}"),
        }
        // Read on without committing: with enable.auto.commit off, close commits nothing.
        let more = read_exactly(&mut first, 3).await;
        assert_eq!(offsets(&more), vec![7, 8, 9]);
        first.close().await.expect("close");

        let mut second = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let resumed = read_exactly(&mut second, 1).await;
        assert_eq!(resumed[0].record.offset, 7, "the new member starts at the commit");
        assert_eq!(value(&resumed[0]), "v7");
        // commit_offsets can also move back; a non-waiting commit is answered too.
        second.commit_offsets_async(BTreeMap::from([(tp.clone(), 2)])).await.expect("commit_offsets_async");
        second.close().await.expect("close");

        let mut third = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        assert_eq!(read_exactly(&mut third, 1).await[0].record.offset, 2);
        third.close().await.expect("close");
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn seek_back_rereads_from_there() {
        let topic = topic_with("lib-seek", 1, 10);
        let group = unique_topic("lib-seek-group");
        let tp = TopicPartition::new(topic.clone(), 0);
        let mut consumer = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let all = read_exactly(&mut consumer, 10).await;
        assert_eq!(offsets(&all), (0..10).collect::<Vec<_>>());
        assert_eq!(consumer.assignment(), std::slice::from_ref(&tp));

        consumer.seek(&tp, 3);
        assert_eq!(consumer.position(&tp), Some(3));
        let again = read_exactly(&mut consumer, 7).await;
        assert_eq!(offsets(&again), (3..10).collect::<Vec<_>>());
        assert_eq!(value(&again[0]), "v3");
        consumer.close().await.expect("close");
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_paused_partition_yields_nothing_until_resumed() {
        let topic = unique_topic("lib-pause");
        create_topic(&topic, 2);
        // Fixed keys: murmur2 spreads them over both partitions, the same way every run.
        send(&topic, &(0..40).map(|i| format!("k{i}\tv{i}")).collect::<Vec<_>>(), true);
        let group = unique_topic("lib-pause-group");
        let mut consumer = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let paused = TopicPartition::new(topic.clone(), 1);

        // The assignment arrives with the first poll; pause before any record of 1 is taken.
        let mut seen = Vec::new();
        while consumer.assignment().is_empty() {
            match tokio::time::timeout(WAIT, consumer.next_event_max(1)).await.expect("an assignment").expect("event") {
                ConsumerEvent::Assigned(_) => {}
                ConsumerEvent::Records(r) => seen.extend(r),
                other => panic!("unexpected {other:?}"),
            }
        }
        consumer.pause(std::slice::from_ref(&paused));
        let mut rest = read_until_idle(&mut consumer, Duration::from_secs(3)).await;
        assert!(rest.iter().all(|r| r.partition == 0), "a paused partition yields nothing: {:?}", rest.first());
        seen.append(&mut rest);
        assert!(seen.iter().any(|r| r.partition == 0), "partition 0 goes on while 1 is paused");

        consumer.resume(std::slice::from_ref(&paused));
        let resumed = read_until_idle(&mut consumer, Duration::from_secs(3)).await;
        assert!(!resumed.is_empty(), "partition 1 yields once resumed");
        assert!(resumed.iter().all(|r| r.partition == 1));
        let values: BTreeSet<String> = seen.iter().chain(&resumed).map(value).collect();
        assert_eq!(values.len(), 40, "every record once, across both partitions");
        consumer.close().await.expect("close");
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_second_member_revokes_and_a_commit_on_revocation_is_where_the_next_owner_starts() {
        let topic = topic_with("lib-rebalance", 1, 10);
        let group = unique_topic("lib-rebalance-group");
        let tp = TopicPartition::new(topic.clone(), 0);

        let mut first = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        let mut taken = 0;
        while taken < 4 {
            match tokio::time::timeout(WAIT, first.next_event_max(4 - taken)).await.expect("records").expect("event") {
                ConsumerEvent::Assigned(tps) => assert_eq!(tps, vec![tp.clone()]),
                ConsumerEvent::Records(r) => taken += r.len(),
                other => panic!("unexpected {other:?}"),
            }
        }
        // Hold the rest back, so what the first member consumed stays at 4.
        first.pause(std::slice::from_ref(&tp));

        let mut second = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("second consumer");
        // The second member's JoinGroup starts a rebalance: the first hears of it
        // and commits before its partitions go.
        match tokio::time::timeout(WAIT, first.next_event()).await.expect("a revocation").expect("event") {
            ConsumerEvent::Revoked(tps) => {
                assert_eq!(tps, vec![tp.clone()]);
                first.commit().await.expect("commit during revocation");
            }
            other => panic!("expected Revoked, got {other:?}"),
        }
        // Both members take part in the new generation; one of them owns the partition.
        let (a, b) = tokio::join!(assigned(&mut first), assigned(&mut second));
        let owner = match (a.contains(&tp), b.contains(&tp)) {
            (true, false) => &mut first,
            (false, true) => &mut second,
            other => panic!("exactly one owner expected: {other:?} ({a:?}, {b:?})"),
        };
        let next = read_exactly(owner, 1).await;
        assert_eq!(next[0].record.offset, 4, "the next owner starts at the revocation's commit");
        let (r1, r2) = tokio::join!(first.close(), second.close());
        r1.expect("close first");
        r2.expect("close second");
        delete_topic(&topic);
    }

    /// Waits for this member's next assignment (records of it are not read yet).
    async fn assigned(consumer: &mut Consumer) -> Vec<TopicPartition> {
        match tokio::time::timeout(WAIT, consumer.next_event_max(1)).await.expect("an assignment").expect("event") {
            ConsumerEvent::Assigned(tps) => tps,
            other => panic!("expected Assigned, got {other:?}"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn stream_yields_records_one_by_one_and_commit_counts_only_those_yielded() {
        let topic = topic_with("lib-stream", 1, 10);
        let group = unique_topic("lib-stream-group");
        let mut consumer = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        {
            let mut stream = consumer.stream();
            for expected in 0..5 {
                let r = tokio::time::timeout(WAIT, stream.next()).await.expect("a record").expect("never ends");
                assert_eq!(r.expect("record").record.offset, expected);
            }
        }
        // The stream fetched more than it yielded; only the five yielded are consumed.
        consumer.commit().await.expect("commit");
        consumer.close().await.expect("close");

        let mut again = Consumer::new(cluster().await, manual(&topic, &group)).await.expect("consumer");
        assert_eq!(read_exactly(&mut again, 1).await[0].record.offset, 5);
        again.close().await.expect("close");
        delete_topic(&topic);
    }
}
