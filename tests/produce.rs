//! `cafe produce` and `cafe send` against a real broker: what goes on the wire
//! (seen through a recording proxy), what independent clients read back, and
//! the exit codes and messages of the error paths.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use cafe::event::{CafeEvent, FIELDS};
use cafe_kafka::partitioner::{murmur2, to_positive};
use common::proxy::{RecordedRequest, RecordingProxy, produce_partitions};
use common::*;
use serde_json::Value;

// ---------------------------------------------------------------------------
// On the wire, through the recording proxy

/// Creates a topic, runs `cafe -b <proxy> <global> produce -t <topic> -n <n> <args>`
/// through a fresh proxy, and returns both with the topic name.
fn produce_via_proxy(global: &[&str], args: &[&str], n: usize) -> (RecordingProxy, std::process::Output, String) {
    let topic = unique_topic("produce-wire");
    create_topic(&topic, 3);
    produce_via_proxy_to(&topic, global, args, n)
}

/// Like [`produce_via_proxy`], to an existing topic.
fn produce_via_proxy_to(
    topic: &str,
    global: &[&str],
    args: &[&str],
    n: usize,
) -> (RecordingProxy, std::process::Output, String) {
    let broker = bootstrap();
    let topic = topic.to_owned();
    let proxy = RecordingProxy::start(&broker);
    let addr = proxy.addr();
    let count = n.to_string();
    let mut all = vec!["-b", addr.as_str()];
    all.extend_from_slice(global);
    all.extend_from_slice(&["produce", "-t", &topic, "-n", &count]);
    all.extend_from_slice(args);
    let out = run_cafe(&all, b"");
    assert_success(&out, &format!("cafe {}", all.join(" ")));
    (proxy, out, topic)
}

/// Checks what went through the proxy: every Produce request decoded, went to
/// `topic` with `acks`, and the `n` records were each carried once (acks=0) or
/// acknowledged once (acks=1/all: a batch the broker refused with a retriable
/// error, e.g. NOT_LEADER_OR_FOLLOWER just after the topic was created, is
/// legitimately sent again, so it is the acknowledged records that must add up).
fn assert_produce_requests(proxy: &RecordingProxy, out: &std::process::Output, topic: &str, acks: i16, n: usize) {
    let carried = |reqs: &[RecordedRequest]| -> usize {
        reqs.iter().filter_map(|r| r.produce.as_ref()).flat_map(produce_partitions).map(|p| p.records).sum()
    };
    // acks=0 has no answer to wait for: cafe may exit before the proxy read it all.
    let reqs = proxy.wait_until(Duration::from_secs(10), |r| carried(r) >= n);
    assert!(proxy.errors().is_empty(), "proxy problems: {:?}", proxy.errors());
    let produce: Vec<&RecordedRequest> = reqs.iter().filter(|r| r.api_key == 0).collect();
    assert!(!produce.is_empty(), "no Produce request went through the proxy: {reqs:#?}");
    for r in &produce {
        assert_eq!(r.decode_error, None, "Produce v{} did not decode", r.api_version);
        let req = r.produce.as_ref().expect("decoded Produce body");
        assert_eq!(req.acks, acks, "acks of a Produce v{} request", r.api_version);
        for p in produce_partitions(req) {
            assert_eq!(p.topic, topic, "Produce v{} addressed another topic", r.api_version);
            assert!((0..3).contains(&p.partition), "partition {} of a 3-partition topic", p.partition);
            assert!(p.records > 0, "empty batch for partition {}", p.partition);
        }
    }

    // Per response: which partitions it acknowledged (with how many records) or refused.
    let mut acked = 0;
    let mut log = Vec::new();
    let mut offsets = BTreeSet::new();
    for resp in proxy.responses().iter().filter(|r| r.api_key == 0) {
        assert_eq!(resp.decode_error, None, "Produce response did not decode");
        let req = proxy.request_of(resp).expect("the request of a Produce response");
        let sent: HashMap<i32, usize> = produce_partitions(req.produce.as_ref().expect("Produce body"))
            .iter()
            .map(|p| (p.partition, p.records))
            .collect();
        for t in &resp.produce.as_ref().expect("Produce response body").responses {
            for p in &t.partition_responses {
                let records = sent.get(&p.index).copied().unwrap_or(0);
                log.push(format!(
                    "conn {} corr {}: [{}] {} records -> error {} offset {}",
                    resp.connection, resp.correlation_id, p.index, records, p.error_code, p.base_offset
                ));
                if p.error_code == 0 {
                    acked += records;
                    assert!(
                        offsets.insert((p.index, p.base_offset)),
                        "[{}]@{} acknowledged twice",
                        p.index,
                        p.base_offset
                    );
                }
            }
        }
    }
    if log.iter().any(|l| !l.contains("-> error 0 ")) {
        // Retries are allowed; show them when the test runs with --nocapture.
        eprintln!("Produce responses with retries:\n{}", log.join("\n"));
    }
    let (what, count) = if acks == 0 { ("carried", carried(&reqs)) } else { ("acknowledged", acked) };
    assert_eq!(count, n, "records {what}; Produce responses:\n{}\ncafe stderr:\n{}", log.join("\n"), stderr(out));
    if acks == 0 {
        assert!(log.is_empty(), "the broker answered acks=0 Produce requests:\n{}", log.join("\n"));
    }
}

#[test]
fn acks_1_goes_on_the_wire_as_1() {
    let (proxy, out, topic) = produce_via_proxy(&[], &["--acks", "1"], 7);
    assert_produce_requests(&proxy, &out, &topic, 1, 7);
    let delivered = stdout(&out).lines().filter(|l| l.starts_with("delivered ")).count();
    assert_eq!(delivered, 7, "delivery reports:\n{}", stdout(&out));
    delete_topic(&topic);
}

#[test]
fn acks_all_goes_on_the_wire_as_minus_1() {
    let (proxy, out, topic) = produce_via_proxy(&[], &["--acks", "all"], 7);
    assert_produce_requests(&proxy, &out, &topic, -1, 7);
    let delivered = stdout(&out).lines().filter(|l| l.starts_with("delivered ")).count();
    assert_eq!(delivered, 7, "delivery reports:\n{}", stdout(&out));
    delete_topic(&topic);
}

#[test]
fn acks_0_goes_on_the_wire_as_0_and_reports_no_offset() {
    // acks=0 has no answer, so a leader that is not serving yet (just after the topic
    // was created) drops records without anyone knowing: that is acks=0's contract.
    // Warm every partition up with acknowledged records first, then count on all 5.
    let topic = unique_topic("produce-wire");
    create_topic(&topic, 3);
    let warm = run_cafe(
        &["-b", &bootstrap(), "send", "-t", &topic, "--acks", "all", "--partitioner", "murmur2", "--keyed"],
        b"a\tw\nb\tw\nc\tw\nd\tw\ne\tw\nf\tw\n",
    );
    assert_success(&warm, "warming the topic up with acks=all");
    let (proxy, out, topic) = produce_via_proxy_to(&topic, &[], &["--acks", "0"], 5);
    assert_produce_requests(&proxy, &out, &topic, 0, 5);
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 5, "one report per record:\n{text}");
    for l in &lines {
        assert!(l.starts_with("sent ") && l.contains("no offset"), "acks=0 report should say there is no offset: {l}");
        assert!(!l.contains('@'), "acks=0 report shows an offset: {l}");
    }
    // Unacknowledged is not lost: the broker has them all.
    let read = run_peer("read_all.py", &["--bootstrap", &bootstrap(), "--topic", &topic, "--expect", "11"]);
    assert_success(&read, "reading the acks=0 records back");
    delete_topic(&topic);
}

#[test]
fn client_id_defaults_to_the_host_name() {
    let (proxy, _, topic) = produce_via_proxy(&[], &[], 3);
    let host = host_name();
    let reqs = proxy.requests();
    assert!(reqs.len() >= 3, "expected ApiVersions, Metadata and Produce at least: {reqs:#?}");
    for r in &reqs {
        assert_eq!(r.client_id().as_deref(), Some(host.as_str()), "client_id of {:?} v{}", r.key(), r.api_version);
    }
    delete_topic(&topic);
}

#[test]
fn client_id_flag_goes_in_every_request_header() {
    let (proxy, _, topic) = produce_via_proxy(&["--client-id", "cafe-test-x"], &[], 3);
    let reqs = proxy.requests();
    assert!(reqs.iter().any(|r| r.api_key == 0), "no Produce request seen: {reqs:#?}");
    for r in &reqs {
        assert_eq!(r.client_id().as_deref(), Some("cafe-test-x"), "client_id of {:?} v{}", r.key(), r.api_version);
    }
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// Read back by independent clients

/// `cafe produce --json -n 20 --seed 7` into a fresh 3-partition topic; returns
/// the topic and the delivery reports keyed by (partition, offset).
fn produce_twenty_events() -> (String, HashMap<(i64, i64), Value>) {
    let broker = bootstrap();
    let topic = unique_topic("produce-readback");
    create_topic(&topic, 3);
    let out = run_cafe(&["-b", &broker, "produce", "-t", &topic, "--json", "-n", "20", "--seed", "7"], b"");
    assert_success(&out, "cafe produce --json -n 20 --seed 7");
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 20, "one delivery report per event:\n{}", stdout(&out));
    let mut by_position = HashMap::new();
    for r in reports {
        assert_eq!(r["topic"], topic.as_str(), "report: {r}");
        assert!(r.get("error").is_none(), "delivery failed: {r}");
        let partition = r["partition"].as_i64().unwrap_or_else(|| panic!("no partition in {r}"));
        let offset = r["offset"].as_i64().unwrap_or_else(|| panic!("no offset in {r}"));
        assert!(offset >= 0, "acks=1 report without an offset: {r}");
        let dup = by_position.insert((partition, offset), r);
        assert!(dup.is_none(), "two reports name {topic}[{partition}]@{offset}");
    }
    (topic, by_position)
}

/// Checks one record read back against the delivery reports: the report for its
/// position exists and agrees, the value is a complete `CafeEvent` keyed by its
/// customer, and the key chose the partition as the Java client would.
fn check_record(reports: &HashMap<(i64, i64), Value>, partition: i64, offset: i64, key: &str, value: &str) {
    let report = reports
        .get(&(partition, offset))
        .unwrap_or_else(|| panic!("no delivery report for partition {partition} offset {offset}"));
    let event = CafeEvent::from_json(value.as_bytes()).unwrap_or_else(|e| panic!("not a CafeEvent ({e:?}): {value}"));
    let doc: Value = serde_json::from_str(value).expect("value is JSON");
    let fields: BTreeSet<&str> = doc.as_object().expect("value is an object").keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = FIELDS.iter().map(|(name, _)| *name).collect();
    assert_eq!(fields, expected, "fields of {value}");
    assert_eq!(key, event.customer_name, "record key is the customer name");
    assert_eq!(report["key"], key, "report and record disagree on the key");
    assert_eq!(report["id"], event.event_id.as_str(), "report and record disagree on the event");
    let java_partition = i64::from(to_positive(murmur2(key.as_bytes())) % 3);
    assert_eq!(partition, java_partition, "key {key:?} landed where the Java partitioner would not put it");
}

#[test]
fn python_clients_read_back_what_was_produced() {
    let (topic, reports) = produce_twenty_events();
    for client in ["confluent", "kafka-python"] {
        let out = run_peer(
            "read_all.py",
            &["--bootstrap", &bootstrap(), "--topic", &topic, "--expect", "20", "--client", client],
        );
        assert_success(&out, &format!("read_all.py --client {client}"));
        let records = json_lines(&out);
        assert_eq!(records.len(), 20, "{client} read:\n{}", stdout(&out));
        for r in &records {
            let key = r["key"].as_str().unwrap_or_else(|| panic!("{client}: record without a key: {r}"));
            let value = r["value"].as_str().unwrap_or_else(|| panic!("{client}: record without a value: {r}"));
            check_record(
                &reports,
                r["partition"].as_i64().expect("partition"),
                r["offset"].as_i64().expect("offset"),
                key,
                value,
            );
        }
    }
    delete_topic(&topic);
}

#[test]
fn java_console_consumer_reads_back_what_was_produced() {
    let (topic, reports) = produce_twenty_events();
    let broker = bootstrap();
    let out = kafka_tool(
        "console-consumer",
        &[
            "--bootstrap-server",
            &broker,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "20",
            "--timeout-ms",
            "60000",
            "--property",
            "print.key=true",
            "--property",
            "print.partition=true",
            "--property",
            "print.offset=true",
            "--property",
            "key.separator=\t",
        ],
    );
    assert_success(&out, "kafka console-consumer");
    let text = stdout(&out);
    let mut seen = BTreeSet::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        // Partition:<p> \t Offset:<o> \t <key> \t <value>
        let parts: Vec<&str> = line.splitn(4, '\t').collect();
        assert_eq!(parts.len(), 4, "unexpected console-consumer line: {line}");
        let partition: i64 =
            parts[0].strip_prefix("Partition:").and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("{line}"));
        let offset: i64 =
            parts[1].strip_prefix("Offset:").and_then(|o| o.parse().ok()).unwrap_or_else(|| panic!("{line}"));
        check_record(&reports, partition, offset, parts[2], parts[3]);
        assert!(seen.insert((partition, offset)), "read {partition}@{offset} twice");
    }
    assert_eq!(seen.len(), 20, "console-consumer output:\n{text}\nstderr:\n{}", stderr(&out));
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// Error paths: exit codes and messages

fn assert_exit(out: &std::process::Output, code: i32, what: &str) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{what}: exit status\n--- stdout\n{}\n--- stderr\n{}",
        stdout(out),
        stderr(out)
    );
}

#[test]
fn unreachable_broker_exits_3_and_says_how_to_start_one() {
    let out = run_cafe(&["-b", "127.0.0.1:1", "produce", "-t", "whatever", "-n", "1"], b"");
    assert_exit(&out, 3, "no broker");
    assert!(stderr(&out).contains("make kafka-up"), "stderr: {}", stderr(&out));
}

#[test]
fn unknown_topic_exits_4_and_says_how_to_create_it() {
    let topic = unique_topic("produce-missing");
    let out = run_cafe(&["-b", &bootstrap(), "produce", "-t", &topic, "-n", "1"], b"");
    assert_exit(&out, 4, "unknown topic");
    let err = stderr(&out);
    assert!(err.contains("cafe topic create") && err.contains(&topic), "stderr: {err}");
}

#[test]
fn acks_2_is_a_usage_error_before_any_connection() {
    // An unreachable broker would be exit 3: getting 2 shows nothing was dialled.
    let out = run_cafe(&["-b", "127.0.0.1:1", "produce", "--acks", "2", "-n", "1"], b"");
    assert_exit(&out, 2, "--acks 2");
    assert!(stderr(&out).contains("acks"), "stderr: {}", stderr(&out));
}

#[test]
fn a_port_that_is_not_kafka_exits_3_in_bounded_time() {
    for behaviour in [FakeBehaviour::HttpReply, FakeBehaviour::CloseAtOnce, FakeBehaviour::Silent] {
        let server = FakeServer::start(behaviour);
        let addr = server.addr();
        let started = Instant::now();
        // A silent peer costs one request timeout; keep it short.
        let out = run_cafe_within(
            &["-b", &addr, "--request-timeout-ms", "2000", "produce", "-t", "whatever", "-n", "1"],
            b"",
            Duration::from_secs(30),
        );
        let took = started.elapsed();
        assert_exit(&out, 3, &format!("{behaviour:?} server"));
        let err = stderr(&out);
        assert!(err.contains("does not speak the Kafka protocol"), "{behaviour:?}: stderr: {err}");
        assert!(err.contains(&addr), "{behaviour:?}: stderr should name {addr}: {err}");
        assert!(took < Duration::from_secs(15), "{behaviour:?}: took {took:?}");
    }
}

/// Three lines for `cafe send`, the middle one 2 MB: above the default
/// `max.request.size` (1 MiB) and the broker's default `message.max.bytes`.
fn lines_with_a_2mb_record() -> Vec<u8> {
    let mut input = b"small one\n".to_vec();
    input.extend(std::iter::repeat_n(b'x', 2 * 1024 * 1024));
    input.extend_from_slice(b"\nsmall three\n");
    input
}

/// Runs `cafe send --json` with the 2 MB input and checks that every line got a
/// report and the big one failed; returns the big one's error text.
fn send_oversized(extra: &[&str]) -> String {
    let topic = unique_topic("produce-big");
    create_topic(&topic, 3);
    let broker = bootstrap();
    let mut args = vec!["-b", broker.as_str(), "send", "--json", "-t", &topic];
    args.extend_from_slice(extra);
    let out = run_cafe(&args, &lines_with_a_2mb_record());
    assert_exit(&out, 5, "oversized record");
    let reports = json_lines(&out);
    // Nothing silently lost: one report per input line.
    assert_eq!(reports.len(), 3, "reports:\n{}", stdout(&out));
    let ids: BTreeSet<&str> = reports.iter().map(|r| r["id"].as_str().expect("report id")).collect();
    assert_eq!(ids, BTreeSet::from(["line1", "line2", "line3"]));
    // The small lines around it are not collateral damage.
    for r in reports.iter().filter(|r| r["id"] != "line2") {
        assert!(r.get("error").is_none() && r["offset"].as_i64().is_some_and(|o| o >= 0), "not delivered: {r}");
    }
    let big = reports.iter().find(|r| r["id"] == "line2").expect("report for line2");
    let error = big["error"].as_str().unwrap_or_else(|| panic!("the 2 MB record was delivered: {big}")).to_owned();
    assert!(stderr(&out).contains("of 3 records were not delivered"), "stderr: {}", stderr(&out));
    delete_topic(&topic);
    error
}

#[test]
fn oversized_record_is_refused_by_max_request_size() {
    let error = send_oversized(&[]);
    assert!(error.contains("max.request.size"), "error: {error}");
}

#[test]
fn oversized_record_is_refused_by_the_broker_when_the_limit_is_raised() {
    let error = send_oversized(&["--max-request-size", "4000000"]);
    assert!(error.contains("MESSAGE_TOO_LARGE"), "error: {error}");
}

// ---------------------------------------------------------------------------
// Ctrl+C: every record sent is delivered and reported, then exit 130

/// Records on `topic`, from the Java tool's end offsets (one `topic:partition:offset` line each).
fn records_on(topic: &str) -> u64 {
    let b = bootstrap();
    let out = kafka_tool("get-offsets", &["--bootstrap-server", &b, "--topic", topic]);
    assert_success(&out, "kafka-get-offsets");
    stdout(&out).lines().filter_map(|l| l.rsplit(':').next()?.parse::<u64>().ok()).sum()
}

#[test]
fn ctrl_c_during_produce_reports_every_record_it_sent_and_exits_130() {
    let topic = unique_topic("produce-ctrl-c");
    create_topic(&topic, 3);
    let b = bootstrap();
    let mut p = common::Background::cafe("produce", &["-b", &b, "produce", "-t", &topic, "-n", "100000000", "--json"]);
    p.wait_for(Duration::from_secs(30), "delivery reports", |out| out.len() >= 100);
    p.signal("INT");
    let end = p.finish(Duration::from_secs(60));
    assert_eq!(end.status.code(), Some(130), "{}", end.stderr.join("\n"));
    let reports: Vec<Value> = end.stdout.iter().map(|l| serde_json::from_str(l).expect("a JSON report")).collect();
    assert!(reports.iter().all(|r| r.get("error").is_none()), "a record failed");
    let last = end.stderr.last().cloned().unwrap_or_default();
    let sent = format!("interrupted after sending {} of 100000000 records", reports.len());
    assert!(last.contains(&sent), "last line {last:?}, expected {sent:?}");
    // Nothing sent without a report, nothing reported that is not on the topic.
    assert_eq!(records_on(&topic), reports.len() as u64);
    delete_topic(&topic);
}

#[test]
fn ctrl_c_while_send_waits_for_input_delivers_the_lines_read_and_exits_130() {
    let topic = unique_topic("send-ctrl-c");
    create_topic(&topic, 1);
    let mut cmd = std::process::Command::new(cafe_bin());
    cmd.args(["-b", &bootstrap(), "send", "-t", &topic, "--json"]);
    let mut s = common::Background::spawn_with_stdin("send", cmd);
    use std::io::Write;
    s.stdin().write_all(b"one\ntwo\nthree\n").expect("write to cafe send");
    s.stdin().flush().expect("flush");
    s.wait_for(Duration::from_secs(30), "three reports", |out| out.len() >= 3);
    // stdin stays open and quiet: the interrupt must not wait for another line.
    let asked = Instant::now();
    s.signal("INT");
    let end = s.finish(Duration::from_secs(10));
    assert_eq!(end.status.code(), Some(130), "{}", end.stderr.join("\n"));
    assert!(asked.elapsed() < Duration::from_secs(5), "took {:?} to stop", asked.elapsed());
    assert_eq!(end.stdout.len(), 3, "{:?}", end.stdout);
    let last = end.stderr.last().cloned().unwrap_or_default();
    assert!(last.contains("interrupted after sending 3 records"), "{last:?}");
    assert_eq!(records_on(&topic), 3);
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// `cafe bench produce`: the figures `make bench` reads

#[test]
fn bench_produce_reports_every_record_and_ordered_percentiles() {
    let topic = unique_topic("bench-json");
    create_topic(&topic, 3);
    let out = run_cafe(
        &[
            "-b",
            &bootstrap(),
            "bench",
            "produce",
            "-t",
            &topic,
            "-n",
            "2000",
            "--sample-every",
            "1",
            "--json",
            "--quiet",
        ],
        b"",
    );
    assert_success(&out, "cafe bench produce");
    let report = json_lines(&out).pop().unwrap_or_else(|| panic!("no JSON line: {}", stdout(&out)));
    assert_eq!(report["records"], 2000, "{report}");
    assert_eq!(report["failed"], 0, "{report}");
    let ms = |k: &str| report[k].as_f64().unwrap_or_else(|| panic!("{k} missing: {report}"));
    // The harness's p50/p99/p99.9 columns come from these; nearest rank keeps them ordered.
    assert!(ms("p50_ms") <= ms("p99_ms") && ms("p99_ms") <= ms("p999_ms") && ms("p999_ms") <= ms("max_ms"), "{report}");
    delete_topic(&topic);
}
