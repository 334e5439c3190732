//! The consumer's fetch path against a real broker (issue #9):
//!
//! - records written by confluent-kafka and the Java console producer with every
//!   codec, and what `cafe produce`/`cafe send` write with every codec, read back
//!   by both (small batches, and 3,000-record batches of many codec blocks);
//! - transactions (committed, aborted, interleaved producers, one still open) in
//!   both isolation levels, compared with the Java console consumer;
//! - every record form in `--json` (headers, null header values, tombstones, empty
//!   values, non-UTF-8 bytes);
//! - batches damaged on the broker's disk (CRC mismatch, unknown codec or magic,
//!   impossible record count, truncated record, garbage compressed bytes): exit 10
//!   at the right offset, nothing committed past it;
//! - partitions and pattern-matched topics that appear while consuming;
//! - a 1,000-partition topic through the recording proxy (one fetch in flight,
//!   fetch sessions), the fetch settings on the wire;
//! - positions kept after a reset, OFFSET_OUT_OF_RANGE after records were deleted.
//!
//! Each test uses its own uuid-suffixed topics and groups. Consumers that run
//! while the test changes the cluster have a long --idle-exit (a JVM tool can
//! take seconds to start on a busy machine) and are stopped with SIGTERM once
//! they have printed what was expected. The damaged-batch tests and the on-disk
//! codec checks read (and write) the single node's segment files (see
//! `common::broker_log_dir`), so they need the broker from `scripts/kafka.sh up`
//! of this checkout, or `CAFE_KAFKA_LOG_DIR` naming its `log.dirs`.
//!
//! Run with `cargo test --test fetch`; it needs the broker (`make kafka-up`), the
//! peer venv (`scripts/py-peers.sh`) and the Kafka tool jars.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use common::proxy::{Direction, RecordingProxy, fetch_partitions};
use common::*;
use serde_json::{Value, json};

/// Exit code of `cafe consume` for a batch it cannot decode.
const EXIT_BAD_BATCH: i32 = 10;

// ---------------------------------------------------------------------------
// helpers

/// The whole command line `-b <broker> consume --json <args>`.
fn consume_line<'a>(broker: &'a str, args: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["-b", broker, "consume", "--json"];
    all.extend_from_slice(args);
    all
}

/// `cafe -b <broker> consume <args> --json`, run to its end.
fn consume(args: &[&str]) -> Output {
    let b = bootstrap();
    run_cafe(&consume_line(&b, args), b"")
}

/// `cafe consume --json <args>` against the broker, in the background.
fn consume_in_background(name: &str, args: &[&str]) -> Background {
    let b = bootstrap();
    Background::cafe(name, &consume_line(&b, args))
}

/// `cafe consume` arguments for a new member of `group` reading `source`
/// (`-t <topic>` or `--topic-pattern <pattern>`) from earliest until idle for
/// `idle`, then `extra`.
fn member_args<'a>(source: [&'a str; 2], group: &'a str, idle: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = source.to_vec();
    args.extend_from_slice(&["-g", group, "--auto-offset-reset", "earliest", "--idle-exit", idle]);
    args.extend_from_slice(extra);
    args
}

/// [`member_args`] for one topic.
fn group_args<'a>(topic: &'a str, group: &'a str, idle: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    member_args(["-t", topic], group, idle, extra)
}

/// A `cafe consume` of `topic` as a new member of `group`, from earliest, until
/// idle for `idle`; panics unless it exits 0. Returns the printed records.
/// How long a run waits for a record before it ends. The first wait includes
/// joining the group, which can take seconds while 30-odd tests share two cores.
const IDLE: &str = "10s";

fn consume_all(topic: &str, group: &str, idle: &str, extra: &[&str]) -> (Vec<Value>, Output) {
    let args = group_args(topic, group, idle, extra);
    let out = consume(&args);
    assert_success(&out, &format!("cafe consume {}", args.join(" ")));
    (printed(&out), out)
}

/// The records a finished `cafe consume --json` printed.
fn printed(out: &Output) -> Vec<Value> {
    records_of(&common::stdout(out))
}

/// The records among a background `cafe consume --json`'s stdout lines
/// (assignment changes left out).
fn records_of_lines(lines: &[String]) -> Vec<Value> {
    consume_json::records(lines)
}

/// Gives a background `cafe consume` a moment (for duplicates to show), stops
/// it with SIGTERM and panics unless it then exits 0. Returns how it ended and
/// the records it printed.
fn stop_consumer(cafe: Background) -> (BackgroundEnd, Vec<Value>) {
    std::thread::sleep(Duration::from_secs(1));
    cafe.signal("TERM");
    let end = cafe.finish(Duration::from_secs(30));
    assert!(end.status.success(), "cafe after SIGTERM: {}\n--- stderr\n{}", end.status, end.stderr.join("\n"));
    let got = records_of_lines(&end.stdout);
    (end, got)
}

/// The record lines of `cafe consume --json` stdout (assignment changes left
/// out); panics on a line that is not a JSON object.
fn records_of(stdout: &str) -> Vec<Value> {
    consume_json::records(&stdout.lines().collect::<Vec<_>>())
}

fn partition_of(r: &Value) -> i32 {
    r["partition"].as_i64().unwrap_or_else(|| panic!("no partition in {r}")) as i32
}

fn offset_of(r: &Value) -> i64 {
    r["offset"].as_i64().unwrap_or_else(|| panic!("no offset in {r}"))
}

fn pos(r: &Value) -> (i32, i64) {
    (partition_of(r), offset_of(r))
}

/// Panics when a (partition, offset) was printed twice.
fn assert_no_duplicates(records: &[Value]) {
    let mut seen = BTreeMap::new();
    for r in records {
        *seen.entry(pos(r)).or_insert(0usize) += 1;
    }
    let dups: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(dups.is_empty(), "records printed more than once ((partition, offset) -> times): {dups:?}");
}

/// (partition, offset) -> event id of each record (delivery reports or printed
/// records).
fn ids_by_pos(records: &[Value]) -> BTreeMap<(i32, i64), String> {
    records.iter().map(|r| (pos(r), event_id(&r["value"]))).collect()
}

/// [`ids_by_pos`] of what cafe printed, after checking that no record was
/// printed twice.
fn printed_once_by_pos(records: &[Value]) -> BTreeMap<(i32, i64), String> {
    assert_no_duplicates(records);
    ids_by_pos(records)
}

/// [`printed_once_by_pos`] of a finished `cafe consume --json` (`what`), after
/// checking that it exited 0.
fn printed_ids_once(out: &Output, what: &str) -> BTreeMap<(i32, i64), String> {
    assert_success(out, what);
    printed_once_by_pos(&printed(out))
}

/// offset -> (key, event id) of each record of a one-partition topic (delivery
/// reports or printed records; a null key as `<null>`).
fn keyed_ids_by_offset(records: &[Value]) -> BTreeMap<i64, (String, String)> {
    records
        .iter()
        .map(|r| (offset_of(r), (r["key"].as_str().unwrap_or("<null>").to_owned(), event_id(&r["value"]))))
        .collect()
}

/// offset -> (key, event id) of `cafe produce --json`'s delivery reports;
/// panics on a failed delivery.
fn produced_by_offset(reports: &[Value]) -> BTreeMap<i64, (String, String)> {
    reports
        .iter()
        .map(|r| {
            assert!(r.get("error").is_none(), "delivery failed: {r}");
            let key = r["key"].as_str().unwrap_or_else(|| panic!("no key in {r}")).to_owned();
            (offset_of(r), (key, r["id"].as_str().unwrap_or_else(|| panic!("no id in {r}")).to_owned()))
        })
        .collect()
}

/// `v`, sorted.
fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

/// Runs `tests/peers/fetch_peer.py <sub> --bootstrap <broker> --topic <topic> <args>`
/// and returns its JSON lines; panics unless it exits 0.
fn peer(sub: &str, topic: &str, args: &[&str]) -> Vec<Value> {
    let b = bootstrap();
    let mut all = vec![sub, "--bootstrap", b.as_str(), "--topic", topic];
    all.extend_from_slice(args);
    let out = run_peer("fetch_peer.py", &all);
    assert_success(&out, &format!("fetch_peer.py {}", all.join(" ")));
    json_lines(&out)
}

/// `count` cafe events from confluent-kafka (key = customer name): the delivery
/// reports `{"topic", "partition", "offset", "key", "value"}`.
fn peer_events(topic: &str, count: usize, args: &[&str]) -> Vec<Value> {
    let n = count.to_string();
    let mut all = vec!["--count", n.as_str()];
    all.extend_from_slice(args);
    let reports = peer("events", topic, &all);
    assert_eq!(reports.len(), count, "one report per event from the peer: {reports:?}");
    reports
}

/// A random cafe event, as the JSON text a producer would send.
fn event_json(customer: &str) -> String {
    json!({
        "event_id": uuid::Uuid::new_v4().to_string(),
        "customer_name": customer,
        "drink_name": "Flat White",
        "quantity": 2,
        "amount": 8.4,
        "is_member": true,
        "ts_utc": "2026-12-01T09:00:00.000Z",
    })
    .to_string()
}

/// Checks each printed record of a one-partition topic against the peer's
/// delivery report of its offset (`reports` in offset order from 0).
fn assert_events_as_reported(got: &[Value], reports: &[Value]) {
    for r in got {
        let i = offset_of(r) as usize;
        assert_event(r, reports[i]["key"].as_str().unwrap(), reports[i]["value"].as_str().unwrap());
    }
}

/// Checks that `got` (a `cafe consume --json` record) holds the event `value`
/// (JSON text) with key `key`.
fn assert_event(got: &Value, key: &str, value: &str) {
    let want: Value = serde_json::from_str(value).unwrap_or_else(|e| panic!("sent value is not JSON ({e}): {value}"));
    assert_eq!(got["key"], key, "key of {got}");
    assert_eq!(got["valid"], true, "a cafe event must be printed as valid: {got}");
    assert_eq!(got["value"], want, "value of {got}");
    assert!(got["schema_id"].is_null(), "no schema registry framing: {got}");
    assert!(
        got.get("key_encoding").is_none() && got.get("value_encoding").is_none(),
        "UTF-8 record with an encoding field: {got}"
    );
}

/// The event id of a cafe-event value, whether printed as an object or as text.
fn event_id(value: &Value) -> String {
    let parsed;
    let obj = match value {
        Value::String(s) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or_else(|e| panic!("value is not JSON ({e}): {s}"));
            &parsed
        }
        v => v,
    };
    obj["event_id"].as_str().unwrap_or_else(|| panic!("no event_id in {obj}")).to_owned()
}

/// Standard base64 with padding.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// CRC-32C (Castagnoli), as record batches carry it.
fn crc32c(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0x82F6_3B78 } else { crc >> 1 };
        }
    }
    !crc
}

/// One record batch in a partition's segment file.
#[derive(Debug, Clone)]
struct DiskBatch {
    file: PathBuf,
    /// Where the batch starts in `file` (its baseOffset field).
    position: usize,
    /// baseOffset + batchLength + the batchLength bytes.
    size: usize,
    base_offset: i64,
    last_offset: i64,
    magic: i8,
    /// compression codec: attributes & 7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    codec: i16,
    control: bool,
    records: i32,
    crc_ok: bool,
}

/// The directory the single node keeps `topic`'s partition in; panics with what
/// to do when it is not there (another broker, or a different checkout's).
fn partition_dir(topic: &str, partition: i32) -> PathBuf {
    let dir = broker_log_dir().join(format!("{topic}-{partition}"));
    assert!(
        dir.is_dir(),
        "{} does not exist: this test reads the broker's segment files and needs the single node of \
         scripts/kafka.sh (set CAFE_KAFKA_LOG_DIR to its log.dirs when it runs from another checkout)",
        dir.display()
    );
    dir
}

/// Every v2 batch in `topic[partition]`'s segment files, in offset order. The
/// layout: baseOffset int64, batchLength int32, partitionLeaderEpoch int32,
/// magic int8, crc uint32 (CRC-32C of everything after it), attributes int16,
/// lastOffsetDelta int32, timestamps, producer fields, recordCount int32 at 57.
fn disk_batches(topic: &str, partition: i32) -> Vec<DiskBatch> {
    let dir = partition_dir(topic, partition);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let data = std::fs::read(&file).unwrap_or_else(|e| panic!("reading {}: {e}", file.display()));
        let mut at = 0usize;
        while at + 61 <= data.len() {
            let be_i64 = |o: usize| i64::from_be_bytes(data[o..o + 8].try_into().unwrap());
            let be_i32 = |o: usize| i32::from_be_bytes(data[o..o + 4].try_into().unwrap());
            let base_offset = be_i64(at);
            let len = be_i32(at + 8);
            if len <= 0 {
                break; // preallocated zeros past the end of the log
            }
            let size = 12 + len as usize;
            if at + size > data.len() {
                break; // a batch still being written
            }
            let magic = data[at + 16] as i8;
            let crc = u32::from_be_bytes(data[at + 17..at + 21].try_into().unwrap());
            let attributes = i16::from_be_bytes(data[at + 21..at + 23].try_into().unwrap());
            out.push(DiskBatch {
                file: file.clone(),
                position: at,
                size,
                base_offset,
                last_offset: base_offset + i64::from(be_i32(at + 23)),
                magic,
                codec: attributes & 7,
                control: attributes & 0x20 != 0,
                records: be_i32(at + 57),
                crc_ok: crc32c(&data[at + 21..at + size]) == crc,
            });
            at += size;
        }
    }
    out
}

/// Overwrites bytes of a segment file in place. The broker serves fetches from
/// the page cache, so the next fetch sees them.
fn write_at(file: &std::path::Path, position: usize, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap_or_else(|e| panic!("opening {} for writing: {e}", file.display()));
    f.seek(SeekFrom::Start(position as u64)).unwrap();
    f.write_all(bytes).unwrap();
    f.sync_data().unwrap();
}

/// Kafka's id of a codec name in a batch's attributes.
fn codec_id(codec: &str) -> i16 {
    match codec {
        "none" => 0,
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("unknown codec {other}"),
    }
}

/// All data batches of `topic` (every partition in `0..partitions`).
fn topic_batches(topic: &str, partitions: i32) -> Vec<DiskBatch> {
    (0..partitions).flat_map(|p| disk_batches(topic, p)).filter(|b| !b.control).collect()
}

/// Deletes a topic when dropped, pass or fail (for a topic that must not stay
/// behind, such as one whose log was corrupted on purpose).
struct DeleteOnDrop(String);

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        delete_topic(&self.0);
    }
}

/// The Java console consumer reading `topic[0]` from the beginning (assigned,
/// no group), with `extra` arguments.
fn java_console(topic: &str, extra: &[&str]) -> Output {
    let b = bootstrap();
    let mut args = vec!["--bootstrap-server", b.as_str(), "--topic", topic, "--partition", "0", "--offset", "earliest"];
    args.extend_from_slice(extra);
    kafka_tool("console-consumer", &args)
}

/// offset -> (key, event id) of what the Java console consumer reads of
/// `topic[0]` (read_committed) until it has `max` records.
fn java_keyed_ids(topic: &str, max: usize) -> BTreeMap<i64, (String, String)> {
    java_console_read(topic, "read_committed", Some(max))
        .into_iter()
        .map(|(offset, key, value)| (offset, (key, event_id(&Value::String(value)))))
        .collect()
}

/// `kafka-consumer-groups --describe --group <group>`.
fn describe_group(group: &str) -> Output {
    let b = bootstrap();
    kafka_tool("consumer-groups", &["--bootstrap-server", &b, "--describe", "--group", group])
}

/// The rows (columns split at white space) of `describe_group`'s output `text`
/// for `topic`.
fn group_rows<'t>(text: &'t str, group: &str, topic: &str) -> Vec<Vec<&'t str>> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.len() >= 2 && c[0] == group && c[1] == topic)
        .collect()
}

/// Consumes `args` (a new member of a group, from earliest) and checks that it
/// prints the records at `printed_offsets` (each as the peer reported it in
/// `reports`), then exits 10 with a last stderr line from cafe naming
/// `topic[0]@<bad_offset>`. `what` starts the failure messages. Returns that
/// last line.
fn consume_to_bad_batch(
    what: &str,
    args: &[&str],
    reports: &[Value],
    topic: &str,
    printed_offsets: &[i64],
    bad_offset: i64,
) -> String {
    let out = consume(args);
    let err = stderr(&out);
    let got = printed(&out);
    let offsets: Vec<i64> = got.iter().map(offset_of).collect();
    assert_eq!(offsets, printed_offsets, "{what}: records printed before the bad batch\n--- stderr\n{err}");
    assert_events_as_reported(&got, reports);
    assert_eq!(out.status.code(), Some(EXIT_BAD_BATCH), "{what}: exit code\n--- stderr\n{err}");
    let last = err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned();
    assert!(last.starts_with("cafe: "), "{what}: last stderr line: {last:?}\n--- stderr\n{err}");
    let at = format!("{topic}[0]@{bad_offset}");
    assert!(last.contains(&at), "{what}: last line names {at}: {last:?}");
    last
}

/// Lines of the Java console consumer reading `topic[0]` from the beginning
/// (assigned, no group), printed as `offset\tkey\tvalue`: until idle for 5 s, or
/// (faster) until it has read `max` records.
fn java_console_read(topic: &str, isolation: &str, max: Option<usize>) -> Vec<(i64, String, String)> {
    let max_s = max.map(|m| m.to_string());
    let mut args = vec![
        "--isolation-level",
        isolation,
        "--property",
        "print.offset=true",
        "--property",
        "print.key=true",
        "--timeout-ms",
        if max.is_some() { "20000" } else { "5000" },
    ];
    if let Some(m) = &max_s {
        args.extend_from_slice(&["--max-messages", m]);
    }
    let out = java_console(topic, &args);
    assert_success(&out, &format!("console consumer of {topic} ({isolation})"));
    common::stdout(&out)
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut cols = l.splitn(3, '\t');
            let offset = cols.next().and_then(|c| c.strip_prefix("Offset:")).and_then(|c| c.parse().ok());
            let (Some(offset), Some(key), Some(value)) = (offset, cols.next(), cols.next()) else {
                panic!("unexpected console consumer line: {l:?}");
            };
            (offset, key.to_owned(), value.to_owned())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// 1. records written with each codec by confluent-kafka and the Java producer

/// confluent-kafka writes 50 events with `codec` in batches of many records and
/// the Java console producer 10 more; cafe reads each exactly once, key and value.
fn codec_from_peers(codec: &str) {
    let topic = unique_topic(&format!("fetch-peers-{codec}"));
    let group = unique_topic("fetch-peers-group");
    create_topic(&topic, 3);

    let mut want: BTreeMap<String, (String, String)> = BTreeMap::new(); // event id -> (key, value)
    // (A long linger: the peer queues all 50, then flush() sends them at once, in
    // batches of many records.)
    for r in peer_events(&topic, 50, &["--compression", codec, "--linger-ms", "5000"]) {
        let (key, value) = (r["key"].as_str().unwrap().to_owned(), r["value"].as_str().unwrap().to_owned());
        want.insert(event_id(&r["value"]), (key, value));
    }
    let mut lines = String::new();
    for i in 0..10 {
        let key = format!("java-{i}");
        let value = event_json(&key);
        lines.push_str(&format!("{key}\t{value}\n"));
        want.insert(event_id(&Value::String(value.clone())), (key, value));
    }
    let b = bootstrap();
    let out = kafka_tool_with_stdin(
        "console-producer",
        &[
            "--bootstrap-server",
            &b,
            "--topic",
            &topic,
            "--compression-codec",
            codec,
            "--property",
            "parse.key=true",
            "--property",
            "key.separator=\t",
        ],
        lines.as_bytes(),
    );
    assert_success(&out, &format!("Java console producer ({codec})"));

    // The batches really are compressed, and the peer's hold many records.
    let batches = topic_batches(&topic, 3);
    let records: i32 = batches.iter().map(|b| b.records).sum();
    assert_eq!(records, 60, "records on disk: {batches:#?}");
    assert!(batches.iter().all(|b| b.codec == codec_id(codec)), "not all batches are {codec}: {batches:#?}");
    assert!(batches.iter().any(|b| b.records >= 5), "no batch holds several records: {batches:#?}");

    let (got, out) = consume_all(&topic, &group, IDLE, &["--max-messages", "60"]);
    assert_no_duplicates(&got);
    let mut seen = BTreeSet::new();
    for r in &got {
        let id = event_id(&r["value"]);
        let (key, value) = want.get(&id).unwrap_or_else(|| panic!("cafe printed a record nobody sent: {r}"));
        assert_event(r, key, value);
        assert!(seen.insert(id.clone()), "event {id} printed twice");
    }
    let missing: Vec<_> = want.keys().filter(|id| !seen.contains(*id)).collect();
    assert!(missing.is_empty(), "{codec}: cafe did not print {missing:?}\n--- stderr\n{}", stderr(&out));
    assert_eq!(consumed_count(&stderr(&out)), 60);
    delete_topic(&topic);
}

#[test]
fn gzip_from_confluent_kafka_and_java_producer() {
    codec_from_peers("gzip");
}

#[test]
fn snappy_from_confluent_kafka_and_java_producer() {
    codec_from_peers("snappy");
}

#[test]
fn lz4_from_confluent_kafka_and_java_producer() {
    codec_from_peers("lz4");
}

#[test]
fn zstd_from_confluent_kafka_and_java_producer() {
    codec_from_peers("zstd");
}

// ---------------------------------------------------------------------------
// 2. what cafe writes with each codec, read back by confluent-kafka and Java

fn codec_written_by_cafe(codec: &str) {
    let topic = unique_topic(&format!("fetch-cafe-{codec}"));
    create_topic(&topic, 1);
    let b = bootstrap();
    let out = run_cafe(&["-b", &b, "produce", "-t", &topic, "-n", "20", "--compression", codec, "--json"], b"");
    assert_success(&out, &format!("cafe produce --compression {codec}"));
    let reports = json_lines(&out);
    assert_eq!(reports.len(), 20, "one delivery report per event:\n{}", common::stdout(&out));
    // offset -> (key, event id)
    let want = produced_by_offset(&reports);
    assert_eq!(want.len(), 20, "20 distinct offsets: {reports:?}");

    let batches = topic_batches(&topic, 1);
    assert!(
        !batches.is_empty() && batches.iter().all(|b| b.codec == codec_id(codec)),
        "cafe did not write {codec}: {batches:#?}"
    );
    assert!(batches.iter().all(|b| b.crc_ok && b.magic == 2), "bad batches from cafe: {batches:#?}");

    // confluent-kafka
    let read = peer("read", &topic, &[]);
    let got = keyed_ids_by_offset(&read);
    assert_eq!(read.len(), 20, "confluent-kafka read {} records: {read:?}", read.len());
    assert_eq!(got, want, "confluent-kafka read other records than cafe reported ({codec})");

    // The Java console consumer
    let java = java_keyed_ids(&topic, 20);
    assert_eq!(java, want, "the Java console consumer read other records than cafe reported ({codec})");
    delete_topic(&topic);
}

#[test]
fn cafe_gzip_read_by_confluent_kafka_and_java() {
    codec_written_by_cafe("gzip");
}

#[test]
fn cafe_snappy_read_by_confluent_kafka_and_java() {
    codec_written_by_cafe("snappy");
}

#[test]
fn cafe_lz4_read_by_confluent_kafka_and_java() {
    codec_written_by_cafe("lz4");
}

#[test]
fn cafe_zstd_read_by_confluent_kafka_and_java() {
    codec_written_by_cafe("zstd");
}

// ---------------------------------------------------------------------------
// 3. transactions

#[test]
fn transactions_read_committed_and_uncommitted_match_java() {
    // commit 5, abort 5, commit 5: 3 markers.
    transactions_match_java("fetch-txn", "txn", (10, 15), 3);
}

/// Two transactional producers interleaved record by record in one partition
/// (one aborts, the other commits) with a plain record in between: aborted
/// records sit between committed ones in the same fetch.
#[test]
fn interleaved_transactions_read_committed_and_uncommitted_match_java() {
    // b commits 4, a aborts 4, plain 1, a commits 2: 3 markers.
    transactions_match_java("fetch-txnmix", "txn-interleaved", (7, 11), 3);
}

/// Runs the transactional peer subcommand `sub` on a new 1-partition topic, then
/// cafe in each isolation level (and with the default), then the Java console
/// consumer in each: the same (offset, value) pairs, `counts` = (committed, all)
/// records, and no control record printed.
fn transactions_match_java(prefix: &str, sub: &str, counts: (usize, usize), markers: usize) {
    let topic = unique_topic(prefix);
    create_topic(&topic, 1);
    let reports = peer(sub, &topic, &["--txn-id", &unique_topic(&format!("{prefix}-id"))]);
    let data_offsets: BTreeSet<i64> = reports.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    let records = |outcomes: &[&str]| -> Vec<(i64, String)> {
        sorted(
            reports
                .iter()
                .filter(|r| outcomes.contains(&r["outcome"].as_str().unwrap()))
                .map(|r| (r["offset"].as_i64().unwrap(), r["value"].as_str().unwrap().to_owned()))
                .collect(),
        )
    };
    let committed = records(&["committed"]);
    let all = records(&["committed", "aborted"]);
    assert_eq!((committed.len(), all.len()), counts, "{reports:?}");
    // The markers are in the log.
    let controls = disk_batches(&topic, 0).iter().filter(|b| b.control).count();
    assert_eq!(controls, markers, "transaction markers on disk");

    // cafe in each mode (and with the default) at once, then Java in each mode.
    // "one-batch": a partition limit smaller than any batch, so each fetch returns
    // one batch and an aborted batch arrives in a response before its marker: only
    // the response's aborted-transaction list tells it apart.
    let runs: Vec<(&str, Vec<&str>)> = vec![
        ("committed", vec!["--isolation-level", "read_committed"]),
        ("uncommitted", vec!["--isolation-level", "read_uncommitted"]),
        ("default", vec![]),
        ("one-batch", vec!["--isolation-level", "read_committed", "--max-partition-fetch-bytes", "64"]),
    ];
    let groups: Vec<String> = runs.iter().map(|(name, _)| unique_topic(&format!("{prefix}-{name}"))).collect();
    let (cafe_results, java_results) = std::thread::scope(|s| {
        let cafe: Vec<_> = runs
            .iter()
            .zip(&groups)
            .map(|((_, extra), group)| {
                let topic = &topic;
                s.spawn(move || consume_all(topic, group, IDLE, extra))
            })
            .collect();
        let cafe = cafe.into_iter().map(|h| h.join().expect("cafe run")).collect::<Vec<_>>();
        // The reference reads to the end (no --max-messages): all it sees counts.
        let java: Vec<_> = ["read_committed", "read_uncommitted"]
            .iter()
            .map(|level| {
                let topic = &topic;
                s.spawn(move || java_console_read(topic, level, None))
            })
            .collect();
        (cafe, java.into_iter().map(|h| h.join().expect("Java run")).collect::<Vec<_>>())
    });
    let printed = |recs: &[Value]| -> Vec<(i64, String)> {
        sorted(
            recs.iter()
                .map(|r| {
                    (offset_of(r), r["value"].as_str().unwrap_or_else(|| panic!("value not text: {r}")).to_owned())
                })
                .collect(),
        )
    };
    for ((name, _), (recs, out)) in runs.iter().zip(&cafe_results) {
        assert_no_duplicates(recs);
        for r in recs {
            assert!(
                data_offsets.contains(&offset_of(r)),
                "cafe ({name}) printed a control record or unknown offset: {r}"
            );
        }
        let want = if *name == "uncommitted" { &all } else { &committed };
        assert_eq!(&printed(recs), want, "cafe ({name}):\n--- stderr\n{}", stderr(out));
        assert_eq!(consumed_count(&stderr(out)), want.len() as u64, "cafe ({name}) consumed count");
    }
    // The committed position is past the final marker (the log end), as the Java
    // consumer leaves it: no lag is left behind by control records.
    let out = describe_group(&groups[0]);
    assert_success(&out, "consumer-groups --describe");
    let text = common::stdout(&out);
    let row: Vec<&str> = group_rows(&text, &groups[0], &topic)
        .into_iter()
        .find(|c| c.len() >= 6)
        .unwrap_or_else(|| panic!("no row for {topic} in:\n{text}"));
    assert_eq!((row[3], row[5]), (row[4], "0"), "committed offset = log end, lag 0 (CURRENT LOG-END LAG):\n{text}");
    let java = |lines: &[(i64, String, String)]| -> Vec<(i64, String)> {
        sorted(lines.iter().map(|(o, _, v)| (*o, v.clone())).collect())
    };
    assert_eq!(java(&java_results[0]), committed, "Java read_committed");
    assert_eq!(java(&java_results[1]), all, "Java read_uncommitted");
    assert_eq!(printed(&cafe_results[0].0), java(&java_results[0]), "cafe vs Java, read_committed");
    assert_eq!(printed(&cafe_results[1].0), java(&java_results[1]), "cafe vs Java, read_uncommitted");
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 4. every record form in --json

#[test]
fn headers_tombstones_empty_values_and_non_utf8_bytes_in_json() {
    let topic = unique_topic("fetch-forms");
    let group = unique_topic("fetch-forms-group");
    create_topic(&topic, 1);
    let h = |b: &[u8]| Value::String(hex(b));
    let spec = json!([
        // 0: headers in order, a duplicate key, a null value, an empty value.
        {"key": h(b"k-headers"), "value": h(b"v-headers"),
         "headers": [["h1", h(b"a")], ["h2", null], ["h1", h(b"b")], ["h3", h(b"")]]},
        // 1: tombstone
        {"key": h(b"k-tombstone"), "value": null},
        // 2: empty value
        {"key": h(b"k-empty"), "value": h(b"")},
        // 3: non-UTF-8 key
        {"key": h(b"\xff\xfekey"), "value": h(b"v-binkey")},
        // 4: non-UTF-8 value
        // (not starting with 0x00: that is the schema-registry framing, which cafe decodes)
        {"key": h(b"k-binvalue"), "value": h(b"\xff\xfe\x00\x80raw")},
        // 5: no key, a header whose value is not UTF-8
        {"key": null, "value": h(b"v-nokey"), "headers": [["hb", h(b"\xff\x00")]]},
    ]);
    let offsets = peer("records", &topic, &["--spec", &spec.to_string()]);
    assert_eq!(offsets.len(), 6);

    let (got, out) = consume_all(&topic, &group, IDLE, &["--max-messages", "6"]);
    assert_no_duplicates(&got);
    assert_eq!(got.len(), 6, "cafe printed:\n{}\n--- stderr\n{}", common::stdout(&out), stderr(&out));
    assert_eq!(consumed_count(&stderr(&out)), 6);
    // None is a cafe event: a warning each (not an error), and the final count says so.
    let err = stderr(&out);
    for o in &offsets {
        let at = format!("{topic}[0]@{}", o["offset"]);
        assert!(err.lines().any(|l| l.contains(&at) && !l.starts_with("cafe: ")), "no warning naming {at}:\n{err}");
    }
    assert!(err.contains("(6 not cafe events)"), "final line counts the 6 non-events:\n{err}");
    let by_offset: BTreeMap<i64, &Value> = got.iter().map(|r| (offset_of(r), r)).collect();
    let rec = |i: usize| -> &Value {
        let o = offsets[i]["offset"].as_i64().unwrap();
        by_offset.get(&o).unwrap_or_else(|| panic!("record {i} (offset {o}) not printed; got {got:?}"))
    };
    let no_encodings = |r: &Value| {
        assert!(r.get("key_encoding").is_none(), "key_encoding on a UTF-8 key: {r}");
        assert!(r.get("value_encoding").is_none(), "value_encoding on a UTF-8 value: {r}");
    };

    let r = rec(0);
    assert_eq!((&r["key"], &r["value"]), (&json!("k-headers"), &json!("v-headers")), "{r}");
    assert_eq!(
        r["headers"],
        json!([
            {"key": "h1", "value": "a"},
            {"key": "h2", "value": null},
            {"key": "h1", "value": "b"},
            {"key": "h3", "value": ""},
        ]),
        "headers in record order, duplicates kept, null and empty told apart: {r}"
    );
    no_encodings(r);

    let r = rec(1);
    assert_eq!(r["key"], "k-tombstone", "{r}");
    assert!(r["value"].is_null(), "a tombstone's value is null: {r}");
    assert_eq!(r["headers"], json!([]), "{r}");
    no_encodings(r);

    let r = rec(2);
    assert_eq!(r["key"], "k-empty", "{r}");
    assert_eq!(r["value"], "", "an empty value is \"\", not null: {r}");
    no_encodings(r);

    let r = rec(3);
    assert_eq!(r["key"], base64(b"\xff\xfekey"), "a non-UTF-8 key in base64: {r}");
    assert_eq!(r["key_encoding"], "base64", "{r}");
    assert_eq!(r["value"], "v-binkey", "{r}");
    assert!(r.get("value_encoding").is_none(), "{r}");

    let r = rec(4);
    assert_eq!(r["key"], "k-binvalue", "{r}");
    assert_eq!(r["value"], base64(b"\xff\xfe\x00\x80raw"), "a non-UTF-8 value in base64: {r}");
    assert_eq!(r["value_encoding"], "base64", "{r}");
    assert!(r.get("key_encoding").is_none(), "{r}");

    let r = rec(5);
    assert!(r["key"].is_null(), "no key is null: {r}");
    assert_eq!(r["value"], "v-nokey", "{r}");
    assert_eq!(
        r["headers"],
        json!([{"key": "hb", "value": base64(b"\xff\x00"), "value_encoding": "base64"}]),
        "a non-UTF-8 header value in base64: {r}"
    );
    no_encodings(r);
    for r in &got {
        assert_eq!(r["valid"], false, "not a cafe event: {r}");
        assert_eq!(r["topic"], topic.as_str(), "{r}");
        assert!(r["timestamp"].is_i64(), "{r}");
    }
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 5. a batch corrupted on the broker's disk

#[test]
fn corrupt_batch_stops_with_exit_10_and_nothing_committed_past_it() {
    let topic = unique_topic("fetch-corrupt");
    let _cleanup = DeleteOnDrop(topic.clone());
    create_topic(&topic, 1);
    // Five records, each its own batch.
    let reports = peer_events(&topic, 5, &["--flush-each", "--linger-ms", "0"]);
    let offsets: Vec<i64> = reports.iter().map(|r| r["offset"].as_i64().unwrap()).collect();
    assert_eq!(offsets, vec![0, 1, 2, 3, 4]);

    let batches = disk_batches(&topic, 0);
    assert_eq!(batches.len(), 5, "one batch per record on disk: {batches:#?}");
    assert!(batches.iter().all(|b| b.crc_ok && b.magic == 2 && b.records == 1), "{batches:#?}");
    let bad = batches.iter().find(|b| b.base_offset == 3).expect("the batch of offset 3").clone();
    assert_eq!(bad.last_offset, 3);

    // Flip one character of the 4th record's event id, inside its value (not a
    // length field): the batch stays well-formed but its CRC-32C no longer matches.
    let id = event_id(&reports[3]["value"]);
    let data = std::fs::read(&bad.file).unwrap();
    let batch = &data[bad.position..bad.position + bad.size];
    let at = batch
        .windows(id.len())
        .position(|w| w == id.as_bytes())
        .unwrap_or_else(|| panic!("event id {id} not found in the batch of offset 3"));
    let target = bad.position + at;
    let flipped = if data[target] == b'a' { b'b' } else { b'a' };
    write_at(&bad.file, target, &[flipped]);
    let after = disk_batches(&topic, 0);
    let crc: Vec<(i64, bool)> = after.iter().map(|b| (b.base_offset, b.crc_ok)).collect();
    assert_eq!(crc, vec![(0, true), (1, true), (2, true), (3, false), (4, true)], "only batch 3 is corrupt");

    let group = unique_topic("fetch-corrupt-group");
    let args = group_args(&topic, &group, "5s", &[]);
    let expect_failure = |run: &str, want_offsets: &[i64]| {
        let last = consume_to_bad_batch(run, &args, &reports, &topic, want_offsets, 3);
        assert!(last.contains("CRC"), "{run}: last line says CRC: {last:?}");
    };
    expect_failure("first run", &[0, 1, 2]);

    // Kafka's own view of the group: nothing committed past offset 3.
    let text = common::stdout(&describe_group(&group));
    for cols in group_rows(&text, &group, &topic) {
        if cols.len() >= 4 {
            if let Ok(committed) = cols[3].parse::<i64>() {
                assert!(committed <= 3, "committed offset {committed} is past the bad batch:\n{text}");
            }
        }
    }

    // The same group again: nothing before the bad batch, the same error.
    expect_failure("second run", &[]);

    // Without CRC checks the record is read (its event id altered on disk).
    let group2 = unique_topic("fetch-corrupt-nocrc");
    let (got, _) = consume_all(&topic, &group2, IDLE, &["--check-crcs", "false", "--max-messages", "5"]);
    assert_eq!(got.iter().map(offset_of).collect::<Vec<_>>(), vec![0, 1, 2, 3, 4], "--check-crcs false: {got:?}");
}

/// Writes 3 batches to a new topic (one record each, or 5 when compressed:
/// librdkafka leaves a batch uncompressed when compressing does not make it
/// smaller), rewrites the second batch on disk with `patch` (then recomputes its
/// CRC-32C when `fix_crc`, so that the CRC is not what is wrong), and checks that
/// the consumer prints the records of the first batch, then exits 10 with a last
/// line naming `topic[0]@<second batch's offset>` and, when `words` is not empty,
/// containing one of them (case-insensitive). The bytes `patch` gets start at the
/// batch's baseOffset field; its records (or compressed data) start at 61.
fn bad_batch_stops_with_exit_10(prefix: &str, patch: impl Fn(&mut Vec<u8>), fix_crc: bool, words: &[&str]) {
    bad_batch_of_codec_stops_with_exit_10(prefix, "none", patch, fix_crc, words);
}

/// [`bad_batch_stops_with_exit_10`] with records the peer compressed with `codec`.
fn bad_batch_of_codec_stops_with_exit_10(
    prefix: &str,
    codec: &str,
    patch: impl Fn(&mut Vec<u8>),
    fix_crc: bool,
    words: &[&str],
) {
    let topic = unique_topic(prefix);
    let _cleanup = DeleteOnDrop(topic.clone());
    create_topic(&topic, 1);
    let per_batch = if codec == "none" { 1 } else { 5 };
    let mut reports = Vec::new();
    for _ in 0..3 {
        // One producer run per batch: its records are queued at once, then flush()
        // sends them (ignoring linger.ms), so they go out in one batch.
        reports.extend(peer_events(&topic, per_batch, &["--linger-ms", "5000", "--compression", codec]));
    }
    let bad_offset = per_batch as i64;
    let batches = disk_batches(&topic, 0);
    let bases: Vec<i64> = (0..3).map(|i| i * bad_offset).collect();
    assert_eq!(batches.iter().map(|b| b.base_offset).collect::<Vec<_>>(), bases, "batches on disk: {batches:#?}");
    let bad = batches[1].clone();
    assert_eq!((bad.codec, bad.magic), (codec_id(codec), 2), "the peer wrote a v2 batch with {codec}: {bad:?}");

    let mut batch = std::fs::read(&bad.file).unwrap()[bad.position..bad.position + bad.size].to_vec();
    patch(&mut batch);
    assert_eq!(batch.len(), bad.size, "the patch must keep the batch's size (the log's layout)");
    if fix_crc {
        let crc = crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }
    write_at(&bad.file, bad.position, &batch);
    let after: Vec<(i64, bool)> = disk_batches(&topic, 0).iter().map(|b| (b.base_offset, b.crc_ok)).collect();
    assert_eq!(after.iter().map(|b| b.0).collect::<Vec<_>>(), bases, "batch layout after the patch");
    assert!(after[0].1 && after[2].1 && (after[1].1 || !fix_crc), "CRCs after the patch: {after:?}");

    let group = unique_topic(&format!("{prefix}-group"));
    let before: Vec<i64> = (0..bad_offset).collect();
    let last =
        consume_to_bad_batch(codec, &group_args(&topic, &group, "5s", &[]), &reports, &topic, &before, bad_offset);
    let lower = last.to_lowercase();
    assert!(
        words.is_empty() || words.iter().any(|w| lower.contains(w)),
        "the message says what is wrong (one of {words:?}): {last:?}"
    );
}

/// Attributes naming a codec that does not exist (7), CRC recomputed.
#[test]
fn unknown_codec_batch_stops_with_exit_10() {
    bad_batch_stops_with_exit_10("fetch-badcodec", |b| b[22] |= 7, true, &["codec", "compression"]);
}

/// A compressed batch whose compressed bytes are all zeros (CRC recomputed), for
/// each codec: the decompressor's error is the batch's error.
#[test]
fn garbage_compressed_payload_stops_with_exit_10() {
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        bad_batch_of_codec_stops_with_exit_10(
            &format!("fetch-garbage-{codec}"),
            codec,
            |b| b[61..].iter_mut().for_each(|x| *x = 0),
            true,
            &[],
        );
    }
}

/// A magic byte no Kafka version writes (3); the CRC does not cover it.
#[test]
fn unknown_magic_batch_stops_with_exit_10() {
    bad_batch_stops_with_exit_10("fetch-badmagic", |b| b[16] = 3, false, &["magic"]);
}

/// A record count far beyond what the batch's bytes can hold (untrusted sizes:
/// nothing may be reserved from it), CRC recomputed.
#[test]
fn record_count_beyond_the_batch_stops_with_exit_10() {
    bad_batch_stops_with_exit_10(
        "fetch-badcount",
        |b| b[57..61].copy_from_slice(&0x7fff_fff0_i32.to_be_bytes()),
        true,
        &[],
    );
}

/// The first record's length (a varint at 61) claims more bytes than the batch
/// holds: a truncated record, CRC recomputed.
#[test]
fn truncated_record_stops_with_exit_10() {
    bad_batch_stops_with_exit_10(
        "fetch-truncated",
        |b| {
            // A 2-byte varint (records of 64..8191 bytes): make its high byte 0x7f.
            assert!(
                b[61] & 0x80 != 0 && b[62] & 0x80 == 0,
                "record length is not a 2-byte varint: {:02x?}",
                &b[61..63]
            );
            b[62] = 0x7f;
        },
        true,
        &[],
    );
}

// ---------------------------------------------------------------------------
// 6. partitions added while consuming

#[test]
fn partitions_added_while_consuming_are_read() {
    let topic = unique_topic("fetch-grow");
    let group = unique_topic("fetch-grow-group");
    create_topic(&topic, 1);
    let mut want = ids_by_pos(&peer_events(&topic, 2, &[]));
    let mut cafe =
        consume_in_background("cafe consume", &group_args(&topic, &group, "60s", &["--metadata-max-age-ms", "1000"]));
    cafe.wait_for_records(Duration::from_secs(30), "the 2 records of partition 0", |records| records.len() >= 2);

    let b = bootstrap();
    let out = kafka_tool("topics", &["--bootstrap-server", &b, "--alter", "--topic", &topic, "--partitions", "3"]);
    assert_success(&out, "adding partitions");
    want.extend(ids_by_pos(&peer_events(&topic, 4, &["--partitions", "1,2"])));
    want.extend(ids_by_pos(&peer_events(&topic, 1, &["--partitions", "0"])));
    assert_eq!(want.keys().map(|p| p.0).collect::<BTreeSet<_>>(), BTreeSet::from([0, 1, 2]));
    let n = want.len();
    cafe.wait_for_records(Duration::from_secs(60), "the records of the new partitions", |records| records.len() >= n);
    // A moment for duplicates to show, then a clean stop.
    let (end, got) = stop_consumer(cafe);
    assert_eq!(printed_once_by_pos(&got), want, "--- stderr\n{}", end.stderr.join("\n"));
    // Everything it printed was committed, on the new partitions too.
    let out = consume(&group_args(&topic, &group, "3s", &[]));
    assert_success(&out, "second run of the group");
    assert!(printed(&out).is_empty(), "the second run reads records the first one printed:\n{}", common::stdout(&out));
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 7. a topic created after the consumer started, matching its pattern

/// `--topic-pattern` matches whole topic names (Java's `subscribe(Pattern)`),
/// including topics created after the consumer started, at the next metadata
/// refresh (`--metadata-max-age-ms`).
#[test]
fn topic_created_later_matching_the_pattern_is_read() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let matching = format!("fetchpat-{id}-a");
    let second = format!("fetchpat-{id}-b");
    // Neither matches as a whole name: one has a prefix, one a suffix.
    let not_whole = format!("xfetchpat-{id}-a");
    let not_whole_end = format!("fetchpat-{id}-ax");
    let group = unique_topic("fetch-pattern-group");
    let pattern = format!("fetchpat-{id}-[ab]");
    // (topic, partition, offset) -> event id
    let key = |r: &Value| (r["topic"].as_str().unwrap_or_else(|| panic!("no topic in {r}")).to_owned(), pos(r));
    let mut cafe = consume_in_background(
        "cafe consume --topic-pattern",
        &member_args(["--topic-pattern", &pattern], &group, "60s", &["--metadata-max-age-ms", "1000"]),
    );
    // Let it start with no topic matching.
    std::thread::sleep(Duration::from_secs(1));
    assert!(cafe.running(), "cafe exited with no topic matching yet\n{}", cafe.describe());

    for t in [&not_whole, &not_whole_end] {
        create_topic(t, 1);
        peer_events(t, 5, &[]);
    }
    create_topic(&matching, 1);
    let mut want: BTreeMap<(String, (i32, i64)), String> =
        peer_events(&matching, 5, &[]).iter().map(|r| (key(r), event_id(&r["value"]))).collect();
    cafe.wait_for_records(Duration::from_secs(60), "the 5 records of the matching topic", |records| records.len() >= 5);

    // A second matching topic, while the first is assigned and being read: the
    // group rebalances again, and the first topic's records are not read twice.
    create_topic(&second, 2);
    want.extend(peer_events(&second, 4, &["--partitions", "0,1"]).iter().map(|r| (key(r), event_id(&r["value"]))));
    cafe.wait_for_records(Duration::from_secs(60), "the records of the second matching topic", |records| {
        records.len() >= 9
    });
    // The non-matching topics were there at every refresh that found a matching
    // one (a wrong match would have joined the first rebalance, before the second
    // topic's); a moment more for one to show.
    let (end, got) = stop_consumer(cafe);
    for r in &got {
        assert!(
            r["topic"] == matching.as_str() || r["topic"] == second.as_str(),
            "a record of a topic that does not match as a whole: {r}"
        );
    }
    let mut seen = BTreeMap::new();
    for r in &got {
        *seen.entry(key(r)).or_insert(0usize) += 1;
    }
    assert!(seen.values().all(|n| *n == 1), "records printed more than once: {seen:?}");
    let got: BTreeMap<(String, (i32, i64)), String> = got.iter().map(|r| (key(r), event_id(&r["value"]))).collect();
    assert_eq!(got, want, "--- stderr\n{}", end.stderr.join("\n"));
    for t in [&matching, &second, &not_whole, &not_whole_end] {
        delete_topic(t);
    }
}

// ---------------------------------------------------------------------------
// 8. a 1,000-partition topic: one fetch per broker, fetch sessions

#[test]
fn thousand_partitions_one_fetch_in_flight_with_incremental_sessions() {
    let topic = unique_topic("fetch-wide");
    let group = unique_topic("fetch-wide-group");
    create_topic(&topic, 1000);
    // The metadata names a leader for every partition before the broker serves
    // them all (NOT_LEADER_OR_FOLLOWER for a moment): wait, so that the first
    // fetch can cover them all.
    peer("ready", &topic, &["--partitions", "1000"]);
    let parts: Vec<String> = (0..10).map(|i| (i * 100 + 7).to_string()).collect();
    let want = ids_by_pos(&peer_events(&topic, 10, &["--partitions", &parts.join(",")]));

    let proxy = RecordingProxy::start(&bootstrap());
    let addr = proxy.addr();
    let out = run_cafe(&consume_line(&addr, &group_args(&topic, &group, "6s", &[])), b"");
    assert_eq!(
        printed_ids_once(&out, "cafe consume of 1,000 partitions through the proxy"),
        want,
        "records of the 1,000-partition topic\n--- stderr\n{}",
        stderr(&out)
    );

    // Connections reset or closed when cafe exits (a long-poll Fetch answered after
    // that cannot be passed on) are not problems; a failed rewrite (a client that
    // bypassed the proxy) or a broken frame is.
    let problems: Vec<String> =
        proxy.errors().into_iter().filter(|e| e.contains("rewriting") || e.contains("frame of")).collect();
    assert!(problems.is_empty(), "proxy problems: {problems:?}");
    let fetches = proxy.fetch_requests();
    let undecoded: Vec<_> = fetches.iter().filter(|r| r.fetch.is_none()).map(|r| r.decode_error.clone()).collect();
    assert!(undecoded.is_empty(), "Fetch requests that did not decode: {undecoded:?}");
    let bodies: Vec<_> = fetches.iter().map(|r| r.fetch.as_ref().unwrap()).collect();
    // (session id, session epoch, partitions) of the first requests, for messages.
    let summary: Vec<(i32, i32, usize)> =
        bodies.iter().take(40).map(|f| (f.session_id, f.session_epoch, fetch_partitions(f).len())).collect();
    assert!(fetches.len() >= 2, "a full fetch then incremental ones; got (session, epoch, partitions) {summary:?}");
    assert!(fetches.len() < 200, "{} Fetch requests: not one per broker per round: {summary:?}", fetches.len());
    assert!(
        fetches.iter().all(|r| r.api_version >= 7),
        "Fetch versions: {:?}",
        fetches.iter().map(|r| r.api_version).collect::<Vec<_>>()
    );

    // The first fetch asks for all 1,000 partitions in one request.
    let first = &bodies[0];
    let first_parts: BTreeSet<i32> = fetch_partitions(first).iter().map(|p| p.1).collect();
    assert_eq!(
        first_parts.len(),
        1000,
        "the first Fetch lists all 1,000 partitions; (session, epoch, partitions) {summary:?}"
    );
    assert_eq!(first.session_epoch, 0, "the first Fetch opens a session (epoch 0): {summary:?}");
    // Every full fetch (epoch 0) lists them all; the rest are incremental.
    for (i, f) in bodies.iter().enumerate() {
        if f.session_epoch == 0 {
            assert_eq!(
                fetch_partitions(f).len(),
                1000,
                "full Fetch #{i} lists only part of the partitions: {summary:?}"
            );
        }
    }
    let full = bodies.iter().filter(|f| f.session_epoch == 0).count();
    assert!(full <= 3, "{full} full Fetch requests: the session is not kept; {summary:?}");
    let incremental: Vec<_> = bodies.iter().filter(|f| f.session_epoch > 0).collect();
    assert!(!incremental.is_empty(), "no incremental Fetch (epoch > 0) after the first: {summary:?}");
    assert!(
        incremental.iter().all(|f| f.session_id != 0 && fetch_partitions(f).len() < 1000),
        "incremental Fetch requests name their session and list fewer partitions: {summary:?}"
    );
    // The broker opened a session, and the requests use it.
    let responses = proxy.responses();
    let sessions: BTreeSet<i32> =
        responses.iter().filter_map(|r| r.fetch.as_ref()).map(|f| f.session_id).filter(|s| *s != 0).collect();
    assert!(!sessions.is_empty(), "the broker opened no fetch session");
    assert!(
        incremental.iter().all(|f| sessions.contains(&f.session_id)),
        "incremental Fetch requests use a session the broker opened ({sessions:?}): {summary:?}"
    );

    // Never two Fetch requests in flight at once to the (one) broker. The request
    // closing the session on exit (epoch -1, KIP-227) may go out while the last
    // long poll is still pending (the broker answers a connection's requests in
    // order, so it only queues behind it); it must be the last Fetch.
    let closing: BTreeSet<(usize, i32)> = fetches
        .iter()
        .filter(|r| r.fetch.as_ref().is_some_and(|f| f.session_epoch == -1))
        .filter_map(|r| Some((r.connection, r.header.as_ref()?.correlation_id)))
        .collect();
    let timeline: Vec<_> = proxy.timeline().into_iter().filter(|e| e.api_key == 1).collect();
    if let Some(close) = closing.iter().next() {
        let last_request = timeline.iter().rev().find(|e| e.direction == Direction::Request).expect("a Fetch");
        assert_eq!(closing.len(), 1, "one session close: {closing:?}");
        assert_eq!(
            (last_request.connection, last_request.correlation_id),
            *close,
            "the session close is the last Fetch"
        );
    }
    let mut in_flight: BTreeSet<(usize, i32)> = BTreeSet::new();
    let mut max_in_flight = 0;
    for e in timeline.iter().filter(|e| !closing.contains(&(e.connection, e.correlation_id))) {
        match e.direction {
            Direction::Request => {
                in_flight.insert((e.connection, e.correlation_id));
            }
            Direction::Response => {
                in_flight.remove(&(e.connection, e.correlation_id));
            }
        }
        max_in_flight = max_in_flight.max(in_flight.len());
    }
    assert_eq!(max_in_flight, 1, "Fetch requests in flight at once to one broker");
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 9. positions after an offset reset are committed

#[test]
fn positions_after_latest_reset_are_kept_between_runs() {
    let topic = unique_topic("fetch-latest");
    let group = unique_topic("fetch-latest-group");
    create_topic(&topic, 3);
    // One old record per partition: "latest" is offset 1 everywhere.
    peer_events(&topic, 3, &["--partitions", "0,1,2"]);

    let args = ["-t", topic.as_str(), "-g", group.as_str(), "--auto-offset-reset", "latest", "--idle-exit", "5s"];
    let out = consume(&args);
    assert_success(&out, "first run (latest)");
    assert!(printed(&out).is_empty(), "the first run starts at the end:\n{}", common::stdout(&out));

    let want = ids_by_pos(&peer_events(&topic, 3, &["--partitions", "0,1,2"]));
    assert_eq!(want.keys().copied().collect::<Vec<_>>(), vec![(0, 1), (1, 1), (2, 1)]);

    // (It stops once it has the 3; a fourth could only be a duplicate, seen as one missing.)
    let out = consume(&[&args[..], &["--max-messages", "3"]].concat());
    assert_eq!(
        printed_ids_once(&out, "second run (latest)"),
        want,
        "the second run reads what was written between the runs\n--- stderr\n{}",
        stderr(&out)
    );
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 10. the fetch settings on the wire; limits smaller than a batch

/// Java's fetch settings reach the Fetch requests as given, and limits smaller
/// than one batch still read everything (the broker returns at least one batch).
#[test]
fn fetch_settings_on_the_wire_and_small_limits_read_everything() {
    let topic = unique_topic("fetch-settings");
    let group = unique_topic("fetch-settings-group");
    create_topic(&topic, 1);
    // One large batch (50 records, several KB), then 10 batches of one record.
    let mut want = ids_by_pos(&peer_events(&topic, 50, &["--linger-ms", "5000"]));
    want.extend(ids_by_pos(&peer_events(&topic, 10, &["--flush-each", "--linger-ms", "0"])));
    let batches = topic_batches(&topic, 1);
    assert!(batches.iter().any(|b| b.size > 2048), "a batch larger than the limits: {batches:#?}");

    let proxy = RecordingProxy::start(&bootstrap());
    let addr = proxy.addr();
    let settings = [
        "--max-messages",
        "60",
        "--isolation-level",
        "read_uncommitted",
        "--fetch-min-bytes",
        "1",
        "--fetch-max-wait-ms",
        "200",
        "--fetch-max-bytes",
        "2048",
        "--max-partition-fetch-bytes",
        "1024",
    ];
    let out = run_cafe(&consume_line(&addr, &group_args(&topic, &group, "5s", &settings)), b"");
    assert_eq!(printed_ids_once(&out, "cafe consume with small fetch limits"), want, "--- stderr\n{}", stderr(&out));

    let fetches: Vec<_> = proxy.fetch_requests().into_iter().filter_map(|r| r.fetch).collect();
    assert!(!fetches.is_empty(), "no Fetch request went through the proxy");
    // (The request closing the session at the end, epoch -1, fetches nothing and
    // may carry other values.)
    for f in fetches.iter().filter(|f| f.session_epoch != -1) {
        assert_eq!(
            (f.min_bytes, f.max_wait_ms, f.max_bytes, f.isolation_level),
            (1, 200, 2048, 0),
            "Fetch (min_bytes, max_wait_ms, max_bytes, isolation_level)"
        );
        for t in &f.topics {
            for p in &t.partitions {
                assert_eq!(p.partition_max_bytes, 1024, "partition_max_bytes of partition {}", p.partition);
            }
        }
    }
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 11. read_committed stops at the last stable offset

/// An open transaction holds read_committed back at its first offset (the last
/// stable offset), even for non-transactional records written after it;
/// read_uncommitted reads past it. Once it commits, read_committed reads the rest.
#[test]
fn read_committed_stops_at_an_open_transaction_until_it_commits() {
    let topic = unique_topic("fetch-lso");
    create_topic(&topic, 1);
    let offsets = |reports: &[Value]| -> Vec<i64> { reports.iter().map(|r| r["offset"].as_i64().unwrap()).collect() };
    let before = offsets(&peer_events(&topic, 2, &[]));

    let flag = std::env::temp_dir().join(format!("cafe-fetch-commit-{}", uuid::Uuid::new_v4().simple()));
    let b = bootstrap();
    let mut cmd = std::process::Command::new(peer_python());
    cmd.arg(repo_root().join("tests/peers/fetch_peer.py")).args([
        "txn-open",
        "--bootstrap",
        &b,
        "--topic",
        &topic,
        "--txn-id",
        &unique_topic("fetch-lso-txn"),
        "--count",
        "3",
        "--commit-when",
        flag.to_str().unwrap(),
    ]);
    let mut txn = Background::spawn("fetch_peer.py txn-open", cmd);
    txn.wait_for(Duration::from_secs(60), "the open transaction's records", |l| {
        l.iter().any(|l| l.contains("produced"))
    });
    let open: Vec<i64> = txn
        .stdout_lines()
        .iter()
        .find_map(|l| serde_json::from_str::<Value>(l).ok()?.get("produced").cloned())
        .and_then(|v| v.as_array().map(|a| a.iter().filter_map(Value::as_i64).collect()))
        .expect("offsets of the open transaction");
    let after = offsets(&peer_events(&topic, 2, &[]));
    let all: BTreeSet<i64> = before.iter().chain(&open).chain(&after).copied().collect();
    assert_eq!(all.len(), 7, "before {before:?}, open {open:?}, after {after:?}");

    let group = unique_topic("fetch-lso-committed");
    let mut committed = consume_in_background(
        "cafe consume read_committed",
        &group_args(&topic, &group, "60s", &["--isolation-level", "read_committed"]),
    );
    committed.wait_for_records(Duration::from_secs(30), "the records before the open transaction", |r| r.len() >= 2);
    // Meanwhile read_uncommitted reads everything (and gives read_committed time
    // to show records it must not print).
    let (uncommitted, _) = consume_all(
        &topic,
        &unique_topic("fetch-lso-uncommitted"),
        IDLE,
        &["--isolation-level", "read_uncommitted", "--max-messages", "7"],
    );
    std::thread::sleep(Duration::from_secs(1));
    assert_no_duplicates(&uncommitted);
    assert_eq!(
        uncommitted.iter().map(offset_of).collect::<BTreeSet<_>>(),
        all,
        "read_uncommitted reads past the open transaction"
    );
    let held: Vec<i64> = records_of_lines(&committed.stdout_lines()).iter().map(offset_of).collect();
    assert_eq!(held, before, "read_committed while the transaction is open: only what precedes it");

    std::fs::write(&flag, b"commit").expect("create the commit flag");
    txn.wait_for(Duration::from_secs(60), "the commit", |l| l.iter().any(|l| l.contains("committed")));
    committed.wait_for_records(Duration::from_secs(30), "the records after the commit", |r| r.len() >= 7);
    let (_, got) = stop_consumer(committed);
    assert_no_duplicates(&got);
    assert_eq!(got.iter().map(offset_of).collect::<BTreeSet<_>>(), all, "read_committed after the commit");
    let t = txn.finish(Duration::from_secs(30));
    assert!(t.status.success(), "txn-open peer: {}\n{}", t.status, t.stderr.join("\n"));
    let _ = std::fs::remove_file(&flag);
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 12. OFFSET_OUT_OF_RANGE applies auto.offset.reset

/// A committed position that the log no longer holds (records deleted past it)
/// is answered OFFSET_OUT_OF_RANGE; the consumer applies auto.offset.reset
/// (earliest: the new log start), says so in a log line, and reads on from there.
#[test]
fn offset_out_of_range_resets_to_the_new_log_start() {
    let topic = unique_topic("fetch-oor");
    let group = unique_topic("fetch-oor-group");
    create_topic(&topic, 1);
    let reports = peer_events(&topic, 6, &[]);
    let b = bootstrap();
    let args = group_args(&topic, &group, "5s", &["--max-messages", "2"]);
    let out = consume(&args);
    assert_success(&out, "first run (--max-messages 2)");
    assert_eq!(printed(&out).iter().map(offset_of).collect::<Vec<_>>(), vec![0, 1]);

    let spec = std::env::temp_dir().join(format!("cafe-fetch-delete-{}.json", uuid::Uuid::new_v4().simple()));
    let json = json!({"partitions": [{"topic": topic, "partition": 0, "offset": 4}], "version": 1});
    std::fs::write(&spec, json.to_string()).unwrap();
    let out = kafka_tool("delete-records", &["--bootstrap-server", &b, "--offset-json-file", spec.to_str().unwrap()]);
    let _ = std::fs::remove_file(&spec);
    assert_success(&out, "deleting records before offset 4");

    let mut cmd = std::process::Command::new(cafe_bin());
    cmd.args(consume_line(&b, &args)).env("CAFE_LOG", "info").env("NO_COLOR", "1");
    let out = run_with_deadline(cmd, b"", CAFE_TIMEOUT);
    assert_success(&out, "second run (committed offset 2, log starts at 4)");
    let got = printed(&out);
    assert_eq!(got.iter().map(offset_of).collect::<Vec<_>>(), vec![4, 5], "--- stderr\n{}", stderr(&out));
    assert_events_as_reported(&got, &reports);
    let squashed: String = stderr(&out).to_lowercase().chars().filter(|c| c.is_alphanumeric()).collect();
    assert!(squashed.contains("outofrange"), "no log line about the out-of-range offset:\n{}", stderr(&out));
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 13. large compressed batches (several codec blocks) both ways

/// One batch of 3,000 records (~750 KB before compression: many 64 KB lz4 blocks,
/// a long zstd frame) written by cafe, read back by the Java console consumer and
/// confluent-kafka; then one as large from confluent-kafka; cafe reads all 6,000.
fn large_batches(codec: &str) {
    const N: usize = 3000;
    let topic = unique_topic(&format!("fetch-large-{codec}"));
    let group = unique_topic("fetch-large-group");
    create_topic(&topic, 1);
    let b = bootstrap();
    let n = N.to_string();
    let out = run_cafe(
        // A long linger: events are made one at a time, and the batch must not be
        // sent before it holds a thousand of them.
        &[
            "-b",
            &b,
            "produce",
            "-t",
            &topic,
            "-n",
            &n,
            "--compression",
            codec,
            "--batch-size",
            "1000000",
            "--linger-ms",
            "5000",
            "--json",
        ],
        b"",
    );
    assert_success(&out, &format!("cafe produce -n {N} --compression {codec}"));
    // offset -> (key, event id)
    let mut want = produced_by_offset(&json_lines(&out));
    assert_eq!(want.len(), N);
    let batches = topic_batches(&topic, 1);
    assert!(
        batches.iter().all(|b| b.codec == codec_id(codec) && b.crc_ok) && batches.iter().any(|b| b.records >= 1000),
        "cafe's batches (codec, records): {:?}",
        batches.iter().map(|b| (b.codec, b.records)).collect::<Vec<_>>()
    );

    let java = java_keyed_ids(&topic, N);
    assert!(java == want, "the Java console consumer read {} records, other than cafe reported ({codec})", java.len());

    want.extend(keyed_ids_by_offset(&peer_events(&topic, N, &["--compression", codec, "--linger-ms", "5000"])));
    let batches = topic_batches(&topic, 1);
    assert!(
        batches.iter().filter(|b| b.base_offset >= N as i64).any(|b| b.records >= 500),
        "confluent-kafka's batches (base offset, records): {:?}",
        batches.iter().map(|b| (b.base_offset, b.records)).collect::<Vec<_>>()
    );
    let read = keyed_ids_by_offset(&peer("read", &topic, &[]));
    assert!(read == want, "confluent-kafka read {} records, other than were written ({codec})", read.len());

    let (got, out) = consume_all(&topic, &group, IDLE, &["--max-messages", &(2 * N).to_string()]);
    assert_no_duplicates(&got);
    let got = keyed_ids_by_offset(&got);
    assert!(got == want, "cafe read {} of {} records ({codec})\n--- stderr\n{}", got.len(), want.len(), stderr(&out));
    delete_topic(&topic);
}

#[test]
fn large_gzip_batches_both_ways() {
    large_batches("gzip");
}

#[test]
fn large_snappy_batches_both_ways() {
    large_batches("snappy");
}

#[test]
fn large_lz4_batches_both_ways() {
    large_batches("lz4");
}

#[test]
fn large_zstd_batches_both_ways() {
    large_batches("zstd");
}

// ---------------------------------------------------------------------------
// 14. cafe send --compression

/// `cafe send --keyed --compression C` writes batches with that codec; confluent-kafka
/// reads back exactly the lines' keys and values.
#[test]
fn cafe_send_compresses_with_each_codec() {
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let topic = unique_topic(&format!("fetch-send-{codec}"));
        create_topic(&topic, 1);
        let lines: Vec<(String, String)> =
            (0..20).map(|i| (format!("k{i}"), format!("{codec} value {i} {}", "x".repeat(40)))).collect();
        let input: String = lines.iter().map(|(k, v)| format!("{k}\t{v}\n")).collect();
        let b = bootstrap();
        let out =
            run_cafe(&["-b", &b, "send", "-t", &topic, "--keyed", "--compression", codec, "--json"], input.as_bytes());
        assert_success(&out, &format!("cafe send --compression {codec}"));
        let batches = topic_batches(&topic, 1);
        assert!(
            !batches.is_empty() && batches.iter().all(|b| b.codec == codec_id(codec) && b.crc_ok),
            "cafe send did not write {codec}: {:?}",
            batches.iter().map(|b| (b.codec, b.records, b.crc_ok)).collect::<Vec<_>>()
        );
        let read: Vec<(String, String)> = peer("read", &topic, &[])
            .iter()
            .map(|r| {
                (r["key"].as_str().unwrap_or("<null>").to_owned(), r["value"].as_str().unwrap_or("<null>").to_owned())
            })
            .collect();
        assert_eq!(read, lines, "confluent-kafka read back ({codec})");
        delete_topic(&topic);
    }
}

// ---------------------------------------------------------------------------
// 15. record timestamps: CreateTime and LogAppendTime

/// Timestamps as the Java console consumer prints them: the producer's per
/// record (CreateTime, here set far in the past), or the broker's append time of
/// the batch for a `message.timestamp.type=LogAppendTime` topic (the records
/// inside a compressed batch keep the producer's values; the batch header wins).
#[test]
fn timestamps_match_java_for_create_and_log_append_time() {
    let b = bootstrap();
    for (kind, codec) in
        [("CreateTime", "none"), ("CreateTime", "lz4"), ("LogAppendTime", "none"), ("LogAppendTime", "lz4")]
    {
        let topic = unique_topic(&format!("fetch-ts-{}-{codec}", kind.to_lowercase()));
        let config = format!("message.timestamp.type={kind}");
        let out = kafka_tool(
            "topics",
            &[
                "--bootstrap-server",
                &b,
                "--create",
                "--topic",
                &topic,
                "--partitions",
                "1",
                "--replication-factor",
                "1",
                "--config",
                &config,
            ],
        );
        assert_success(&out, &format!("creating {topic} ({config})"));
        // Old timestamps, one apart; queued at once, so one batch.
        peer_events(&topic, 5, &["--compression", codec, "--linger-ms", "5000", "--timestamp-base", "1600000000000"]);

        let out = java_console(
            &topic,
            &[
                "--max-messages",
                "5",
                "--timeout-ms",
                "20000",
                "--property",
                "print.timestamp=true",
                "--property",
                "print.offset=true",
            ],
        );
        assert_success(&out, "console consumer with timestamps");
        // "CreateTime:1600000000000\tOffset:0\t{...}"
        let java: BTreeMap<i64, i64> = common::stdout(&out)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let cols: Vec<&str> = l.splitn(3, '\t').collect();
                let ts = cols[0].strip_prefix(&format!("{kind}:")).and_then(|t| t.parse().ok());
                let offset = cols.get(1).and_then(|c| c.strip_prefix("Offset:")).and_then(|o| o.parse().ok());
                match (offset, ts) {
                    (Some(o), Some(t)) => (o, t),
                    _ => panic!("unexpected console consumer line for a {kind} topic: {l:?}"),
                }
            })
            .collect();
        assert_eq!(java.len(), 5, "Java read {java:?}");
        if kind == "CreateTime" {
            assert_eq!(
                java.values().copied().collect::<Vec<_>>(),
                (0..5).map(|i| 1_600_000_000_000 + i).collect::<Vec<_>>()
            );
        } else {
            assert!(java.values().all(|t| *t > 1_700_000_000_000), "append times are the broker's clock: {java:?}");
        }

        let (got, out) = consume_all(&topic, &unique_topic("fetch-ts-group"), IDLE, &["--max-messages", "5"]);
        let cafe: BTreeMap<i64, i64> = got
            .iter()
            .map(|r| (offset_of(r), r["timestamp"].as_i64().unwrap_or_else(|| panic!("no timestamp in {r}"))))
            .collect();
        assert_eq!(cafe, java, "{kind} {codec}: cafe's timestamps vs Java's\n--- stderr\n{}", stderr(&out));
        delete_topic(&topic);
    }
}

// ---------------------------------------------------------------------------
// 16. a rebalance while a member holds prefetched records

/// Member A reads a compressed backlog slowly (batches of 10 records, one batch
/// per partition per fetch, so it always holds fetched records it has not
/// printed yet); member B joins. Records A fetched for partitions it then loses
/// must not be printed by A after the hand-over: every record is printed exactly
/// once over both members.
#[test]
fn rebalance_with_prefetched_backlog_prints_each_record_once() {
    rebalance_with_backlog(
        "fetch-rebalance",
        400,
        &["--compression", "lz4", "--linger-ms", "5000", "--flush-every", "40", "--partitions", "0,1,2,3"],
        &["--process-delay", "15ms", "--max-partition-fetch-bytes", "1024"],
    );
}

/// The same with the default fetch sizes and a backlog of 2,000 records (5 ms
/// each). The Java consumer hands out at most max.poll.records (500) per poll
/// and keeps heartbeating until it rejoins, so A gives up its partitions within
/// about 2.5 s and nothing is printed twice. (Before 63d807c the rewritten
/// consumer handed out its whole prefetched buffer before looking at the group,
/// stopped heartbeating while the rebalance waited, lost its session and printed
/// 1,500 records that B printed too.)
#[test]
fn rebalance_with_large_default_size_backlog_prints_each_record_once() {
    rebalance_with_backlog(
        "fetch-rebalance-large",
        2000,
        &["--linger-ms", "5000", "--partitions", "0,1,2,3"],
        &["--process-delay", "5ms"],
    );
}

/// Writes `count` events with the peer (`peer_args`), starts member A of a new
/// group (`extra` consume flags, 6 s session, 1 s heartbeats), lets it print 20,
/// starts member B, waits until every record was printed, stops both and checks
/// each record was printed exactly once over both members, B some of them.
fn rebalance_with_backlog(prefix: &str, count: usize, peer_args: &[&str], extra: &[&str]) {
    let topic = unique_topic(prefix);
    let group = unique_topic(&format!("{prefix}-group"));
    create_topic(&topic, 4);
    let want: BTreeSet<(i32, i64)> = peer_events(&topic, count, peer_args).iter().map(pos).collect();
    let timings =
        ["--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000", "--auto-commit-interval-ms", "1000"];
    let args = group_args(&topic, &group, "60s", &[&timings[..], extra].concat());
    let mut a = consume_in_background("member A", &args);
    a.wait_for_records(Duration::from_secs(30), "member A's first records", |r| r.len() >= 20);
    let mut b_member = consume_in_background("member B", &args);
    b_member.wait_for_records(Duration::from_secs(60), "member B's first records", |r| !r.is_empty());
    let union = |a: &Background, b: &Background| -> BTreeSet<(i32, i64)> {
        let mut all = records_of_lines(&a.stdout_lines());
        all.extend(records_of_lines(&b.stdout_lines()));
        all.iter().map(pos).collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while union(&a, &b_member).len() < want.len() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out: {} of {} records printed\n{}\n{}",
            union(&a, &b_member).len(),
            want.len(),
            a.describe(),
            b_member.describe()
        );
        assert!(a.running() && b_member.running(), "a member exited early\n{}\n{}", a.describe(), b_member.describe());
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(1));
    a.signal("TERM");
    b_member.signal("TERM");
    let (ea, eb) = (a.finish(Duration::from_secs(30)), b_member.finish(Duration::from_secs(30)));
    assert!(ea.status.success() && eb.status.success(), "exits: A {} B {}", ea.status, eb.status);
    let (ra, rb) = (records_of_lines(&ea.stdout), records_of_lines(&eb.stdout));
    assert!(!rb.is_empty(), "member B printed nothing");
    let mut all = ra.clone();
    all.extend(rb.iter().cloned());
    let mut seen: BTreeMap<(i32, i64), Vec<&str>> = BTreeMap::new();
    for r in &ra {
        seen.entry(pos(r)).or_default().push("A");
    }
    for r in &rb {
        seen.entry(pos(r)).or_default().push("B");
    }
    let dups: Vec<_> = seen.iter().filter(|(_, who)| who.len() > 1).take(20).collect();
    assert!(
        dups.is_empty(),
        "records printed more than once (position -> members): {dups:?}\n--- A stderr\n{}\n--- B stderr\n{}",
        ea.stderr.join("\n"),
        eb.stderr.join("\n")
    );
    assert_eq!(seen.keys().copied().collect::<BTreeSet<_>>(), want, "every record printed");
    delete_topic(&topic);
}

// ---------------------------------------------------------------------------
// 17. a topic consumed the moment it is created

/// Just after a topic with many partitions is created, its leader answers
/// NOT_LEADER_OR_FOLLOWER for some of them for a moment (see the 1,000-partition
/// test): ListOffsets and Fetch errors that a metadata refresh and a retry cure.
/// A consumer started at once still reads every record.
#[test]
fn fresh_topic_with_many_partitions_is_read_through_not_leader_errors() {
    let topic = unique_topic("fetch-fresh");
    let group = unique_topic("fetch-fresh-group");
    create_topic(&topic, 300);
    let mut cafe = consume_in_background("cafe consume (fresh topic)", &group_args(&topic, &group, "60s", &[]));
    let parts: Vec<String> = (0..30).map(|i| (i * 10 + 3).to_string()).collect();
    let want = ids_by_pos(&peer_events(&topic, 30, &["--partitions", &parts.join(",")]));
    cafe.wait_for_records(Duration::from_secs(60), "all 30 records", |r| r.len() >= 30);
    let (end, got) = stop_consumer(cafe);
    assert_eq!(printed_once_by_pos(&got), want, "--- stderr\n{}", end.stderr.join("\n"));
    delete_topic(&topic);
}
