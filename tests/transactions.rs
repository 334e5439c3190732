//! Transactions (KIP-98) against the real broker: what a transactional `cafe
//! produce` commits is what read_committed readers see (cafe, the Java console
//! consumer, confluent-kafka), what it aborts they never see (read_uncommitted
//! does), a second producer with the same `transactional.id` fences the first,
//! a `kill -9`ed one leaves nothing visible, offsets sent to a transaction
//! count only when it commits, and only for a member still in the group (KIP-447).
//!
//! Needs the broker from `make kafka-up`, the peer venv and Java for Kafka's tools.

mod common;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cafe_kafka::consumer::{Consumer, ConsumerConfig, ConsumerEvent};
use cafe_kafka::{
    Cluster, ConnectionConfig, GroupConfig, GroupMetadata, GroupProtocol, Producer, ProducerConfig, ProducerRecord,
    TopicPartition, TransactionError,
};
use common::records::committed;
use common::totals;
use common::*;

/// Records of `topic` as Kafka's Java console consumer reads them at `isolation`.
fn java_count(topic: &str, isolation: &str) -> usize {
    let out = kafka_tool(
        "console-consumer",
        &[
            "--bootstrap-server",
            &bootstrap(),
            "--topic",
            topic,
            "--from-beginning",
            "--isolation-level",
            isolation,
            "--timeout-ms",
            "6000",
        ],
    );
    stdout(&out).lines().filter(|l| !l.trim().is_empty()).count()
}

/// Records of `topic` as confluent-kafka (librdkafka) reads them at `isolation`.
fn librdkafka_count(topic: &str, isolation: &str) -> usize {
    let x = format!("isolation.level={isolation}");
    let out = run_peer("read_all.py", &["--bootstrap", &bootstrap(), "--topic", topic, "-X", &x]);
    assert_success(&out, "read_all.py");
    stdout(&out).lines().count()
}

/// Records of `topic` as `cafe consume` reads them at `isolation`.
fn cafe_count(topic: &str, isolation: &str) -> usize {
    let group = unique_topic("cafe-group-txn");
    let out = run_cafe(
        &["consume", "-t", topic, "-g", &group, "--isolation-level", isolation, "--idle-exit", "3s", "--json"],
        b"",
    );
    assert_success(&out, "cafe consume");
    json_lines(&out).iter().filter(|v| v.get("offset").is_some()).count()
}

fn produce_txn(topic: &str, txn_id: &str, n: &str, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["produce", "-t", topic, "-n", n, "--transactional-id", txn_id, "--json"];
    args.extend_from_slice(extra);
    run_cafe(&args, b"")
}

#[test]
fn committed_records_are_visible_to_read_committed_readers_and_aborted_ones_are_not() {
    let topic = unique_topic("cafe-txn");
    create_topic(&topic, 3);
    let txn_id = unique_topic("cafe-txn-id");
    let out = produce_txn(&topic, &txn_id, "7", &[]);
    assert_success(&out, "committed transaction");
    assert_eq!(json_lines(&out).len(), 7, "a delivery report per record");
    let out = produce_txn(&topic, &txn_id, "4", &["--abort"]);
    assert_success(&out, "aborted transaction");
    assert_eq!(json_lines(&out).len(), 4, "each aborted record was still delivered (then aborted)");

    assert_eq!(cafe_count(&topic, "read_committed"), 7);
    assert_eq!(java_count(&topic, "read_committed"), 7);
    assert_eq!(librdkafka_count(&topic, "read_committed"), 7);
    assert_eq!(cafe_count(&topic, "read_uncommitted"), 11, "the aborted records are in the log");
    assert_eq!(java_count(&topic, "read_uncommitted"), 11);
    delete_topic(&topic);
}

#[test]
fn a_killed_producers_open_transaction_is_aborted_by_the_next_with_its_id() {
    let topic = unique_topic("cafe-txn-kill");
    create_topic(&topic, 3);
    let txn_id = unique_topic("cafe-txn-kill-id");
    // A transaction far too long to finish: killed once some records are delivered.
    let mut child = Command::new(cafe_bin())
        .args(["produce", "-t", &topic, "-n", "100000000", "--transactional-id", &txn_id, "--json"])
        .env("CAFE_BOOTSTRAP", bootstrap())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cafe produce");
    let mut stdout = std::io::BufReader::new(child.stdout.take().expect("piped"));
    let start = Instant::now();
    let mut delivered = 0;
    let mut line = String::new();
    while delivered < 1000 && start.elapsed() < Duration::from_secs(60) {
        line.clear();
        if std::io::BufRead::read_line(&mut stdout, &mut line).unwrap_or(0) == 0 {
            break;
        }
        delivered += usize::from(line.contains("\"offset\""));
    }
    child.kill().expect("kill -9");
    let _ = child.wait();
    assert!(delivered >= 1000, "the producer delivered only {delivered} records before it was killed");
    assert!(cafe_count(&topic, "read_uncommitted") >= 1000, "its records are in the log");
    // The next instance with the same id aborts what the killed one left open.
    let out = produce_txn(&topic, &txn_id, "3", &[]);
    assert_success(&out, "the next producer with the same transactional.id");
    assert_eq!(cafe_count(&topic, "read_committed"), 3, "only the new instance's committed records");
    assert_eq!(librdkafka_count(&topic, "read_committed"), 3);
    delete_topic(&topic);
}

async fn transactional(cluster: &std::sync::Arc<Cluster>, txn_id: &str) -> Producer {
    let config = ProducerConfig { transactional_id: Some(txn_id.to_owned()), ..ProducerConfig::default() };
    Producer::new(std::sync::Arc::clone(cluster), config).await.expect("producer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let topic = unique_topic("cafe-txn-fence");
    create_topic(&topic, 1);
    let txn_id = unique_topic("cafe-txn-fence-id");
    let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("cluster");
    let first = transactional(&cluster, &txn_id).await;
    first.init_transactions().await.expect("init first");
    first.begin_transaction().unwrap();
    first.send(ProducerRecord::new(topic.as_str(), "zombie")).await.unwrap().await.expect("delivered");

    let second = transactional(&cluster, &txn_id).await;
    second.init_transactions().await.expect("init second: fences the first, aborts its transaction");
    second.begin_transaction().unwrap();
    second.send(ProducerRecord::new(topic.as_str(), "live")).await.unwrap().await.expect("delivered");
    second.commit_transaction().await.expect("the second commits");

    let err = first.commit_transaction().await.expect_err("the first was fenced");
    assert!(matches!(err, TransactionError::Fatal(_)), "{err:?}");
    assert!(first.begin_transaction().is_err(), "a fenced producer can do nothing more");
    first.close().await;
    second.close().await;
    assert_eq!(librdkafka_count(&topic, "read_committed"), 1, "only the live producer's record");
    delete_topic(&topic);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_sent_to_a_transaction_count_only_when_it_commits() {
    let topic = unique_topic("cafe-txn-offsets");
    create_topic(&topic, 1);
    let group = unique_topic("cafe-group-txn-offsets");
    let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("cluster");
    let producer = transactional(&cluster, &unique_topic("cafe-txn-offsets-id")).await;
    producer.init_transactions().await.expect("init");
    let tp = TopicPartition::new(topic.as_str(), 0);
    let meta = GroupMetadata::new(group.clone());
    for (offset, commit) in [(5, false), (3, true)] {
        producer.begin_transaction().unwrap();
        producer.send(ProducerRecord::new(topic.as_str(), "x")).await.unwrap().await.expect("delivered");
        producer.send_offsets_to_transaction(&[(tp.clone(), offset)], &meta).await.expect("offsets");
        match commit {
            true => producer.commit_transaction().await.expect("commit"),
            false => producer.abort_transaction().await.expect("abort"),
        }
    }
    producer.close().await;
    let committed = committed(&group, &topic).expect("describe the group");
    assert_eq!(committed, BTreeMap::from([(0, 3)]), "the committed transaction's offset, not the aborted one's");
    delete_topic(&topic);
}

/// Waits for `consumer`'s first assignment, then returns its group metadata.
async fn member_of(consumer: &mut Consumer) -> GroupMetadata {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), consumer.next_event()).await {
            Ok(Ok(ConsumerEvent::Assigned(_))) => return consumer.group_metadata(),
            Ok(Ok(_)) => continue,
            Ok(Err(e)) => panic!("consumer: {e}"),
            Err(_) => panic!("no assignment within 30 s"),
        }
    }
}

/// KIP-447: offsets go with the member's generation and id, and the coordinator
/// refuses those of a member the group has moved on from, with either protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_a_member_the_group_moved_on_from_are_refused() {
    let cluster = Cluster::connect(vec![bootstrap()], ConnectionConfig::default()).await.expect("cluster");
    let producer = transactional(&cluster, &unique_topic("cafe-txn-zombie-id")).await;
    producer.init_transactions().await.expect("init");
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let topic = unique_topic("cafe-txn-zombie");
        create_topic(&topic, 1);
        let group = unique_topic("cafe-group-txn-zombie");
        let config = || ConsumerConfig {
            group: GroupConfig {
                group_id: group.clone(),
                topics: vec![topic.clone()],
                protocol,
                enable_auto_commit: false,
                ..GroupConfig::default()
            },
            ..ConsumerConfig::default()
        };
        let mut first = Consumer::new(std::sync::Arc::clone(&cluster), config()).await.expect("first member");
        let zombie = member_of(&mut first).await;
        assert!(zombie.generation_id >= 0 && !zombie.member_id.is_empty(), "{protocol:?}: {zombie:?}");
        first.close().await.expect("close the first member");
        let mut second = Consumer::new(std::sync::Arc::clone(&cluster), config()).await.expect("second member");
        let live = member_of(&mut second).await;
        assert_ne!(live.member_id, zombie.member_id, "{protocol:?}");

        let tp = TopicPartition::new(topic.as_str(), 0);
        for (meta, offset) in [(&zombie, 7), (&live, 3)] {
            producer.begin_transaction().unwrap();
            producer.send(ProducerRecord::new(topic.as_str(), "x")).await.unwrap().await.expect("delivered");
            match producer.send_offsets_to_transaction(&[(tp.clone(), offset)], meta).await {
                Ok(()) if meta == &live => producer.commit_transaction().await.expect("commit"),
                Ok(()) => panic!("{protocol:?}: the coordinator took the offsets of a member that left: {zombie:?}"),
                Err(e) => {
                    assert!(meta == &zombie, "{protocol:?}: the live member's offsets refused: {e}");
                    assert!(matches!(e, TransactionError::Abortable(_)), "{protocol:?}: {e:?}");
                    producer.abort_transaction().await.expect("abort");
                }
            }
        }
        second.close().await.expect("close the second member");
        let committed = committed(&group, &topic).expect("describe the group");
        assert_eq!(committed, BTreeMap::from([(0, 3)]), "{protocol:?}: the live member's offset only");
        delete_topic(&topic);
    }
    producer.close().await;
}

#[test]
fn totals_are_exact_after_kill_9_restarts() {
    let (from, to) = (unique_topic("cafe-totals-in"), unique_topic("cafe-totals-out"));
    create_topic(&from, 3);
    create_topic(&to, 3);
    let group = unique_topic("cafe-group-totals");
    let out = run_cafe(&["produce", "-t", &from, "-n", "3000", "--json"], b"");
    assert_success(&out, "cafe produce");
    // Killed three times at some point of its work, then run to the end.
    for wait_ms in [400, 700, 1000] {
        let mut child = Command::new(cafe_bin())
            .args(["-X", "session.timeout.ms=6000", "totals", "--from", &from, "--to", &to, "-g", &group])
            .env("CAFE_BOOTSTRAP", bootstrap())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cafe totals");
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("kill -9");
        let _ = child.wait();
    }
    // A killed instance may still be in the group until its session times out (6 s).
    let args =
        ["-X", "session.timeout.ms=6000", "totals", "--from", &from, "--to", &to, "-g", &group, "--idle-exit", "12s"];
    let out = run_cafe(&args, b"");
    assert_success(&out, "the last cafe totals run");
    let expected = totals::expected(&bootstrap(), &from);
    assert_eq!(expected.values().map(|t| t.0).sum::<u64>(), 3000);
    assert_eq!(totals::written(&bootstrap(), &to), expected, "every event counted exactly once");
    delete_topic(&from);
    delete_topic(&to);
}

#[test]
fn totals_restore_past_an_output_of_only_aborted_records() {
    let (from, to) = (unique_topic("cafe-totals-in"), unique_topic("cafe-totals-out"));
    create_topic(&from, 1);
    create_topic(&to, 1);
    // The output holds records of an aborted transaction only: a read_committed
    // reader gets none of them, but must still get past them.
    assert_success(&produce_txn(&to, &unique_topic("cafe-txn-aborted"), "5", &["--abort"]), "aborted transaction");
    assert_success(&run_cafe(&["produce", "-t", &from, "-n", "20", "--json"], b""), "cafe produce");
    let group = unique_topic("cafe-group-totals");
    let out = run_cafe(&["totals", "--from", &from, "--to", &to, "-g", &group, "--idle-exit", "3s"], b"");
    assert_success(&out, "cafe totals");
    assert_eq!(totals::written(&bootstrap(), &to), totals::expected(&bootstrap(), &from));
    delete_topic(&from);
    delete_topic(&to);
}
