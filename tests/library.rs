//! The library's public API (`cafe_kafka`) against the real broker, as a Rust
//! program using it would. The consumer tests take their data from the `cafe`
//! binary (`cafe send`), so they do not depend on the producer API they share a
//! crate with; the producer tests read back with the consumer.

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

/// The producer's API: a shared handle sending from several tasks, every record
/// field, flush, close, backpressure, and the errors `send` gives back.
mod producer_api {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Arc;
    use std::time::Duration;

    use cafe_kafka::{
        Cluster, ConnectionConfig, Consumer, ConsumerConfig, Delivery, GroupConfig, OffsetReset, Producer,
        ProducerConfig, ProducerRecord, SendErrorKind,
    };

    use super::common::{bootstrap, create_topic, delete_topic, unique_topic};

    const WAIT: Duration = Duration::from_secs(30);

    async fn producer(config: ProducerConfig) -> Producer {
        let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect");
        Producer::new(cluster, config).await.expect("producer")
    }

    /// A new topic of `partitions` partitions, and a producer with `config`.
    async fn topic_and_producer(prefix: &str, partitions: i32, config: ProducerConfig) -> (String, Producer) {
        let topic = unique_topic(prefix);
        create_topic(&topic, partitions);
        (topic, producer(config).await)
    }

    /// Every record of `topic` (exactly `n`), read back by a new group from the start.
    async fn read_back(topic: &str, n: usize) -> Vec<cafe_kafka::ConsumedRecord> {
        let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect");
        let mut config = ConsumerConfig {
            group: GroupConfig {
                group_id: unique_topic("lib-produce-check"),
                topics: vec![topic.into()],
                ..GroupConfig::default()
            },
            ..ConsumerConfig::default()
        };
        config.fetch.reset = OffsetReset::Earliest;
        let mut consumer = Consumer::new(cluster, config).await.expect("consumer");
        let mut out = Vec::new();
        while out.len() < n {
            let batch = tokio::time::timeout(WAIT, consumer.poll_max(n - out.len()))
                .await
                .unwrap_or_else(|_| panic!("only {} of {n} records read back", out.len()))
                .expect("poll");
            out.extend(batch);
        }
        consumer.close().await.expect("close");
        out
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tasks_sharing_one_producer_each_get_every_record_delivered_once() {
        let (topic, producer) = topic_and_producer("lib-produce-tasks", 3, ProducerConfig::default()).await;
        let mut tasks = Vec::new();
        for task in 0..4 {
            let (producer, topic) = (producer.clone(), topic.clone());
            tasks.push(tokio::spawn(async move {
                let mut deliveries = Vec::new();
                for i in 0..250 {
                    let r = ProducerRecord::new(topic.as_str(), format!("t{task}-{i}")).with_key(format!("k{i}"));
                    deliveries.push(producer.send(r).await.expect("send"));
                }
                let mut landed = Vec::new();
                for d in deliveries {
                    let m = d.await.expect("delivered");
                    landed.push((m.partition, m.offset.expect("acks=1 reports the offset")));
                }
                landed
            }));
        }
        let mut positions = BTreeSet::new();
        for t in tasks {
            for p in t.await.expect("task") {
                assert!(positions.insert(p), "two records at {p:?}");
            }
        }
        assert_eq!(positions.len(), 1000);
        // Per partition the offsets are 0.. without a gap: nothing extra was written.
        let mut per_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
        for (p, o) in &positions {
            per_partition.entry(*p).or_default().push(*o);
        }
        for (p, offsets) in &per_partition {
            assert_eq!(*offsets, (0..offsets.len() as i64).collect::<Vec<_>>(), "partition {p}");
        }
        let values: BTreeSet<String> = read_back(&topic, 1000)
            .await
            .iter()
            .map(|r| String::from_utf8_lossy(r.record.value.as_deref().unwrap_or_default()).into_owned())
            .collect();
        assert_eq!(values.len(), 1000, "every record once");
        producer.close().await;
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn partition_timestamp_headers_and_tombstones_arrive_as_sent() {
        let (topic, producer) = topic_and_producer("lib-produce-fields", 3, ProducerConfig::default()).await;
        let first = ProducerRecord::new(topic.as_str(), "latte")
            .with_key("alice")
            .with_partition(2)
            .with_timestamp_ms(1_700_000_000_123)
            .with_header("source", "till-3")
            .with_header("trace", "abc");
        let m = producer.send(first).await.expect("send").await.expect("delivered");
        assert_eq!((&*m.topic, m.partition, m.offset), (topic.as_str(), 2, Some(0)));
        let gone = ProducerRecord::tombstone(topic.as_str(), "alice").with_partition(2);
        assert_eq!(producer.send(gone).await.expect("send").await.expect("delivered").offset, Some(1));
        producer.close().await;

        let back = read_back(&topic, 2).await;
        let (a, b) = (&back[0].record, &back[1].record);
        assert_eq!((back[0].partition, a.offset, a.timestamp_ms), (2, 0, 1_700_000_000_123));
        assert_eq!((a.key.as_deref(), a.value.as_deref()), (Some(&b"alice"[..]), Some(&b"latte"[..])));
        let headers: Vec<(&[u8], Option<&[u8]>)> = a.headers.iter().map(|h| (&h.key[..], h.value.as_deref())).collect();
        assert_eq!(headers, vec![(&b"source"[..], Some(&b"till-3"[..])), (&b"trace"[..], Some(&b"abc"[..]))]);
        assert_eq!((b.key.as_deref(), b.value.as_deref()), (Some(&b"alice"[..]), None), "a tombstone");
        assert!(b.timestamp_ms > 1_700_000_000_123, "no timestamp given: the time of send");
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn flush_sends_at_once_and_returns_when_every_earlier_record_is_delivered() {
        // A linger far longer than the test: only flush can send these batches.
        let config = ProducerConfig { linger: Duration::from_secs(600), ..ProducerConfig::default() };
        let (topic, producer) = topic_and_producer("lib-produce-flush", 1, config).await;
        let mut pending = Vec::new();
        for i in 0..3 {
            pending.push(producer.send(ProducerRecord::new(topic.as_str(), format!("v{i}"))).await.expect("send"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            tokio::time::timeout(Duration::ZERO, &mut pending[0]).await.is_err(),
            "delivered before flush, within linger.ms"
        );
        tokio::time::timeout(WAIT, producer.flush()).await.expect("flush returns");
        for (i, d) in pending.iter_mut().enumerate() {
            let m = tokio::time::timeout(Duration::ZERO, d).await.expect("delivered when flush returned");
            assert_eq!(m.expect("delivered").offset, Some(i as i64));
        }
        producer.close().await;
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn close_delivers_everything_and_then_send_gives_the_record_back() {
        let (topic, producer) = topic_and_producer("lib-produce-close", 3, ProducerConfig::default()).await;
        let reports = Arc::new(std::sync::Mutex::new(Vec::<Delivery>::new()));
        for i in 0..100 {
            let reports = Arc::clone(&reports);
            let r = ProducerRecord::new(topic.as_str(), format!("v{i}"));
            producer.send_with_callback(r, move |d| reports.lock().unwrap().push(d)).await.expect("send");
        }
        let other = producer.clone();
        tokio::time::timeout(WAIT, producer.close()).await.expect("close returns");
        {
            let reports = reports.lock().unwrap();
            assert_eq!(reports.len(), 100, "every callback ran before close returned");
            assert!(reports.iter().all(|d| d.result.as_ref().is_ok_and(|o| o.is_some())), "all delivered");
        }
        // Closed for every clone; the record comes back untouched.
        let refused = other.send(ProducerRecord::new(topic.as_str(), "late")).await.err().expect("refused");
        assert!(matches!(refused.kind, SendErrorKind::Closed), "{refused}");
        assert_eq!(refused.record.value.as_deref(), Some(&b"late"[..]));
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn tagged_records_report_to_the_handler_by_tag_with_their_offsets() {
        let topic = unique_topic("lib-produce-tagged");
        create_topic(&topic, 2);
        let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect");
        let reports = Arc::new(std::sync::Mutex::new(Vec::<(u64, Delivery)>::new()));
        let seen = Arc::clone(&reports);
        let handler = Box::new(move |tag: u64, d: &Delivery| seen.lock().unwrap().push((tag, d.clone())));
        let producer =
            Producer::with_delivery_handler(cluster, ProducerConfig::default(), handler).await.expect("producer");
        for tag in 0..300u64 {
            // Tags need not be dense or ordered: the handler gets back what was given.
            let mut r = ProducerRecord::new(topic.as_str(), format!("v{tag}"));
            r.partition = Some((tag % 2) as i32);
            producer.send_tagged(r, tag * 7).await.expect("send");
        }
        producer.close().await;
        let reports = std::mem::take(&mut *reports.lock().unwrap());
        let tags: BTreeSet<u64> = reports.iter().map(|(t, _)| *t).collect();
        assert_eq!(reports.len(), 300, "one report per record");
        assert_eq!(tags, (0..300u64).map(|t| t * 7).collect(), "every tag once");
        // Each partition's offsets are 0..150, in the order its records were sent.
        for p in 0..2 {
            let mut sent: Vec<(u64, i64)> = Vec::new();
            for (tag, d) in reports.iter().filter(|(t, _)| (t / 7 % 2) as i32 == p) {
                assert_eq!((d.topic.as_ref(), d.partition), (topic.as_str(), p), "record {}", tag / 7);
                sent.push((*tag, d.result.clone().expect("delivered").expect("an offset with acks=all")));
            }
            sent.sort();
            assert_eq!(
                sent.into_iter().map(|(_, o)| o).collect::<Vec<_>>(),
                (0..150).collect::<Vec<i64>>(),
                "partition {p}"
            );
        }
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn send_tagged_all_stops_at_a_refused_record_and_leaves_the_rest_in_the_iterator() {
        // Two topics, the second first seen mid-run (its metadata fetched then), and a
        // 16 KiB buffer, so runs also stop to wait for room.
        let (a, b) = (unique_topic("lib-produce-all-a"), unique_topic("lib-produce-all-b"));
        create_topic(&a, 2);
        create_topic(&b, 1);
        let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("connect");
        let reports = Arc::new(std::sync::Mutex::new(Vec::<(u64, Delivery)>::new()));
        let seen = Arc::clone(&reports);
        let handler = Box::new(move |tag: u64, d: &Delivery| seen.lock().unwrap().push((tag, d.clone())));
        let config = ProducerConfig { buffer_memory: 16 << 10, ..ProducerConfig::default() };
        let producer = Producer::with_delivery_handler(cluster, config, handler).await.expect("producer");
        let record = |i: u64| {
            let topic = if i / 500 % 2 == 0 { a.as_str() } else { b.as_str() };
            let mut r = ProducerRecord::new(topic, format!("{i:0>200}"));
            // Record 1500 names a partition topic a does not have.
            r.partition = Some(if i == 1500 { 9 } else { (i % 2) as i32 * i32::from(topic == a.as_str()) });
            (r, i)
        };
        let mut records = (0..2000u64).map(record);
        let refused = producer.send_tagged_all(&mut records).await.expect_err("record 1500 refused");
        assert!(matches!(refused.kind, SendErrorKind::UnknownPartition { partition: 9, .. }), "{refused}");
        assert_eq!(refused.record.value.as_deref(), Some(format!("{:0>200}", 1500).as_bytes()));
        assert_eq!(records.next().map(|(_, i)| i), Some(1501), "the rest stays in the iterator");
        producer.send_tagged_all(&mut records).await.expect("the rest");
        producer.close().await;
        let reports = std::mem::take(&mut *reports.lock().unwrap());
        let tags: BTreeSet<u64> = reports.iter().map(|(t, _)| *t).collect();
        assert_eq!(reports.len(), 1998, "one report per record sent");
        assert_eq!(tags, (0..2000u64).filter(|&i| i != 1500 && i != 1501).collect(), "every tag once");
        // Each partition holds its records in the order they were sent, from offset 0.
        for (topic, p) in [(&a, 0), (&a, 1), (&b, 0)] {
            let mut sent: Vec<(u64, i64)> = reports
                .iter()
                .filter(|(_, d)| (d.topic.as_ref(), d.partition) == (topic.as_str(), p))
                .map(|(t, d)| (*t, d.result.clone().expect("delivered").expect("an offset with acks=all")))
                .collect();
            sent.sort();
            let offsets: Vec<i64> = sent.iter().map(|&(_, o)| o).collect();
            assert_eq!(offsets, (0..sent.len() as i64).collect::<Vec<_>>(), "{topic}[{p}]");
        }
        delete_topic(&a);
        delete_topic(&b);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn send_tagged_without_a_handler_gives_the_record_back() {
        let (topic, producer) = topic_and_producer("lib-produce-untagged", 1, ProducerConfig::default()).await;
        let refused = producer.send_tagged(ProducerRecord::new(topic.as_str(), "v"), 1).await.expect_err("refused");
        assert!(matches!(refused.kind, SendErrorKind::NoDeliveryHandler), "{refused}");
        assert_eq!(refused.record.value.as_deref(), Some(&b"v"[..]));
        producer.close().await;
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn dropping_every_handle_still_delivers_what_was_sent() {
        let (topic, producer) = topic_and_producer("lib-produce-drop", 1, ProducerConfig::default()).await;
        let mut pending = Vec::new();
        for i in 0..20 {
            pending.push(producer.send(ProducerRecord::new(topic.as_str(), format!("v{i}"))).await.expect("send"));
        }
        drop(producer);
        for (i, d) in pending.into_iter().enumerate() {
            let m = tokio::time::timeout(WAIT, d).await.expect("settled").expect("delivered");
            assert_eq!(m.offset, Some(i as i64));
        }
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_full_buffer_makes_send_wait_up_to_max_block_ms_then_give_the_record_back() {
        // Records stay in their open batch (long linger, large batch.size), so nothing
        // frees the 4 KiB buffer until flush.
        let config = ProducerConfig {
            buffer_memory: 4096,
            max_block: Duration::from_millis(300),
            linger: Duration::from_secs(600),
            batch_size: 1 << 20,
            ..ProducerConfig::default()
        };
        let (topic, producer) = topic_and_producer("lib-produce-buffer", 1, config).await;
        let value = vec![b'x'; 1000];
        let mut pending = Vec::new();
        let refused = loop {
            let started = std::time::Instant::now();
            match producer.send(ProducerRecord::new(topic.as_str(), value.clone())).await {
                Ok(d) => pending.push(d),
                Err(e) => break (e, started.elapsed()),
            }
            assert!(pending.len() <= 4, "4 KiB of buffer took {} records of 1 KB", pending.len());
        };
        let (e, waited) = refused;
        assert_eq!(pending.len(), 4, "1021-byte records in 4096 bytes");
        assert!(matches!(e.kind, SendErrorKind::Timeout { max_block_ms: 300, buffer_memory: 4096 }), "{e}");
        assert!(waited >= Duration::from_millis(300), "send gave up after {waited:?}, before max.block.ms");
        assert_eq!(e.record.value.as_deref(), Some(&value[..]), "the record comes back");
        // Once the buffered records are delivered there is room again.
        producer.flush().await;
        let again = producer.send(ProducerRecord::new(topic.as_str(), value.clone())).await.expect("room after flush");
        producer.flush().await;
        assert_eq!(again.await.expect("delivered").offset, Some(4));
        producer.close().await;
        delete_topic(&topic);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn an_unknown_topic_or_partition_is_refused_with_the_record() {
        let (topic, producer) = topic_and_producer("lib-produce-unknown", 2, ProducerConfig::default()).await;
        let e = producer.send(ProducerRecord::new(topic.as_str(), "v").with_partition(2)).await.err().expect("refused");
        match &e.kind {
            SendErrorKind::UnknownPartition { partition: 2, partitions: 2, .. } => {}
            other => panic!("expected UnknownPartition, got {other:?}"),
        }
        let missing = unique_topic("lib-produce-missing");
        let e = producer.send(ProducerRecord::new(missing.as_str(), "v")).await.err().expect("refused");
        match &e.kind {
            SendErrorKind::Metadata(cafe_kafka::cluster::Error::UnknownTopic(t)) => assert_eq!(t, &missing),
            other => panic!("expected an unknown topic, got {other:?}"),
        }
        producer.close().await;
        delete_topic(&topic);
    }
}
