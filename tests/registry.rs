//! Schema Registry JSON against a real registry (`make registry-up`, started by
//! `.ci/run`) and the real broker, with confluent-kafka's serializer and
//! deserializer as the independent peer (`tests/peers/registry_peer.py`):
//!
//! 1. `cafe produce --schema-registry` frames events that `JSONDeserializer`
//!    decodes into the same seven fields;
//! 2. `JSONSerializer`'s framed events print exactly like cafe's own;
//! 3. an unknown schema id, a value that breaks the schema and bytes that are
//!    neither are warned about and skipped, and the group commits past them.

mod common;

use std::process::Output;

use common::consume_json::records_in;
use common::{
    assert_success, bootstrap, create_topic, delete_topic, json_lines, repo_root, run_cafe, run_peer, stderr, stdout,
    unique_topic,
};
use serde_json::Value;

const FIELDS: [&str; 7] = ["event_id", "customer_name", "drink_name", "quantity", "amount", "is_member", "ts_utc"];

/// The registry URL from `CAFE_SCHEMA_REGISTRY` (default `http://127.0.0.1:8081`),
/// after checking that something listens there. Panics with how to start one.
fn registry() -> String {
    let url = std::env::var("CAFE_SCHEMA_REGISTRY").unwrap_or_else(|_| "http://127.0.0.1:8081".into());
    let authority = url.trim_start_matches("http://").split('/').next().unwrap_or_default().to_owned();
    assert!(
        common::listening(&authority),
        "no schema registry answers at {url} (CAFE_SCHEMA_REGISTRY); start one with `make registry-up` \
         (scripts/registry.sh up) and run the tests again"
    );
    url
}

fn produce_framed(topic: &str, count: usize) -> Vec<Value> {
    let (b, reg) = (bootstrap(), registry());
    let n = count.to_string();
    let out = run_cafe(&["-b", &b, "produce", "-t", topic, "-n", &n, "--schema-registry", &reg, "--json"], b"");
    assert_success(&out, "cafe produce --schema-registry");
    let reports = json_lines(&out);
    assert_eq!(reports.len(), count, "one report per event: {reports:?}");
    reports
}

fn consume(topic: &str, group: &str, json: bool) -> Output {
    let (b, reg) = (bootstrap(), registry());
    let mut args = vec!["-b", &b, "consume", "-t", topic, "-g", group, "--schema-registry", &reg, "--idle-exit", "5s"];
    if json {
        args.push("--json");
    }
    let out = run_cafe(&args, b"");
    assert_success(&out, "cafe consume --schema-registry");
    out
}

fn peer(args: &[&str]) -> Output {
    let out = run_peer("registry_peer.py", args);
    assert_success(&out, &format!("registry_peer.py {}", args.first().copied().unwrap_or_default()));
    out
}

/// The line `cafe consume` prints for an event, built here independently.
fn expected_line(topic: &str, offset: i64, e: &Value) -> String {
    format!(
        "{topic}[0]@{offset} {} ordered {} x {} = {:.2}{} at {} (event {})",
        e["customer_name"].as_str().unwrap(),
        e["quantity"],
        e["drink_name"].as_str().unwrap(),
        e["amount"].as_f64().unwrap(),
        if e["is_member"].as_bool().unwrap() { " (member)" } else { "" },
        e["ts_utc"].as_str().unwrap(),
        e["event_id"].as_str().unwrap(),
    )
}

#[test]
fn cafe_framed_events_decode_with_confluent_json_deserializer() {
    let topic = unique_topic("reg-produce");
    create_topic(&topic, 2);
    let reports = produce_framed(&topic, 6);

    let (b, reg) = (bootstrap(), registry());
    let decoded =
        json_lines(&peer(&["decode", "--bootstrap", &b, "--topic", &topic, "--registry", &reg, "--expect", "6"]));
    assert_eq!(decoded.len(), 6);
    // cafe's own view of the same records, to compare field by field.
    let ours = records_in(&consume(&topic, &unique_topic("reg-produce-g"), true));
    for d in &decoded {
        let value = d["value"].as_object().unwrap_or_else(|| panic!("no decoded object in {d}"));
        let mut keys: Vec<&str> = value.keys().map(String::as_str).collect();
        keys.sort_unstable();
        let mut want = FIELDS.to_vec();
        want.sort_unstable();
        assert_eq!(keys, want, "exactly the seven fields: {d}");
        let id = &value["event_id"];
        assert!(reports.iter().any(|r| &r["id"] == id), "{id} was not produced by cafe: {reports:?}");
        let mine = ours
            .iter()
            .find(|o| o["partition"] == d["partition"] && o["offset"] == d["offset"])
            .unwrap_or_else(|| panic!("cafe consume did not show {d}"));
        assert_eq!(&mine["value"], &d["value"], "same seven fields");
        assert_eq!(mine["schema_id"], d["schema_id"]);
    }
    delete_topic(&topic);
}

#[test]
fn confluent_json_serializer_events_print_like_cafes_own() {
    let topic = unique_topic("reg-peer");
    create_topic(&topic, 1);
    let (b, reg) = (bootstrap(), registry());
    let ours = produce_framed(&topic, 3);
    let schema = repo_root().join("schemas/cafe-event.schema.json");
    let schema = schema.to_str().unwrap();
    let theirs = json_lines(&peer(&[
        "produce",
        "--bootstrap",
        &b,
        "--topic",
        &topic,
        "--registry",
        &reg,
        "--count",
        "3",
        "--schema",
        schema,
    ]));
    assert_eq!(theirs.len(), 3);

    let out = consume(&topic, &unique_topic("reg-peer-g"), false);
    assert!(!stderr(&out).contains("warning"), "no record skipped:\n{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 6, "{lines:?}");
    // cafe's own framed events (offsets 0-2), then the serializer's (3-5): every
    // line has the one shape, and the peer's are exactly the expected text.
    for (i, r) in ours.iter().enumerate() {
        let id = r["id"].as_str().unwrap();
        assert!(lines[i].starts_with(&format!("{topic}[0]@{i} ")) && lines[i].ends_with(&format!("(event {id})")));
        assert!(lines[i].contains(" ordered "), "{}", lines[i]);
    }
    for (i, e) in theirs.iter().enumerate() {
        assert_eq!(lines[3 + i], expected_line(&topic, 3 + i as i64, e));
    }

    let json = records_in(&consume(&topic, &unique_topic("reg-peer-j"), true));
    assert_eq!(json.len(), 6);
    assert!(json.iter().all(|j| j["valid"] == true && j["schema_id"].is_u64()), "{json:?}");
    for (i, e) in theirs.iter().enumerate() {
        assert_eq!(&json[3 + i]["value"], e, "the serializer's event, field for field");
    }
    delete_topic(&topic);
}

#[test]
fn unknown_ids_and_invalid_values_are_skipped_and_committed_past() {
    let topic = unique_topic("reg-bad");
    create_topic(&topic, 1);
    let b = bootstrap();
    let first = produce_framed(&topic, 1); // offset 0, registers the schema
    // The id cafe registered, read back from the framing of its own record.
    let group_a = unique_topic("reg-bad-a");
    let seen = records_in(&consume(&topic, &group_a, true));
    let id = seen[0]["schema_id"].as_u64().expect("cafe's record is framed") as u32;
    assert_eq!(seen[0]["value"]["event_id"], first[0]["id"]);

    let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let frame = |id: u32, payload: &[u8]| {
        let mut v = vec![0u8];
        v.extend_from_slice(&id.to_be_bytes());
        v.extend_from_slice(payload);
        hex(&v)
    };
    let unknown_id = 0x7fff_fff0u32;
    let breaks_schema = br#"{"event_id":"x","customer_name":"A","drink_name":"B","quantity":0,"amount":1.0,"is_member":true,"ts_utc":"2026-11-25T12:00:00.000Z"}"#;
    peer(&[
        "send-raw",
        "--bootstrap",
        &b,
        "--topic",
        &topic,
        &frame(unknown_id, b"{}"), // offset 1: unknown schema id
        &frame(id, breaks_schema), // offset 2: known id, quantity 0 breaks the schema
        &hex(b"\x01\x02 neither"), // offset 3: neither framed nor JSON
    ]);
    produce_framed(&topic, 1); // offset 4

    let group = unique_topic("reg-bad-g");
    let out = consume(&topic, &group, false);
    let (text, err) = (stdout(&out), stderr(&out));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "only the two cafe events print:\n{text}\n{err}");
    assert!(lines[0].starts_with(&format!("{topic}[0]@0 ")) && lines[1].starts_with(&format!("{topic}[0]@4 ")));
    let warning = |offset: i64| {
        err.lines()
            .find(|l| l.starts_with(&format!("warning: {topic}[0]@{offset} ")))
            .unwrap_or_else(|| panic!("no warning for offset {offset}:\n{err}"))
            .to_owned()
    };
    assert!(warning(1).contains(&format!("schema id {unknown_id} not found")), "{}", warning(1));
    assert!(warning(2).contains(&format!("schema id {id}")) && warning(2).contains("quantity"), "{}", warning(2));
    assert!(warning(3).contains("not valid JSON") || warning(3).contains("not UTF-8"), "{}", warning(3));
    assert!(err.contains("consumed 5 records (3 not cafe events)"), "{err}");

    // The group committed past all five: a second run with it sees nothing.
    let again = consume(&topic, &group, false);
    assert_eq!(stdout(&again), "", "nothing left after the commit");
    assert!(stderr(&again).contains("consumed 0 records"), "{}", stderr(&again));
    delete_topic(&topic);
}

#[test]
fn registry_errors_are_one_line_with_exit_code_7() {
    let topic = unique_topic("reg-err");
    create_topic(&topic, 1);
    let b = bootstrap();
    // Nothing listens on a port we just bound and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run_cafe(&["-b", &b, "produce", "-t", &topic, "-n", "1", "--schema-registry", &url], b"");
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("connection refused") && err.contains("make registry-up"), "{err}");

    // A framed record and no registry configured: stop (exit 7), commit nothing.
    produce_framed(&topic, 1);
    let group = unique_topic("reg-err-g");
    let mut cmd = std::process::Command::new(common::cafe_bin());
    cmd.args(["-b", &b, "consume", "-t", &topic, "-g", &group, "--idle-exit", "5s"]);
    // It stops without LeaveGroup (see cli/consume.rs): a short session lets the
    // next member take over in seconds.
    cmd.args(["--session-timeout-ms", "6000", "--heartbeat-interval-ms", "1000"]);
    cmd.env_remove("CAFE_SCHEMA_REGISTRY");
    let out = common::run_with_deadline(cmd, b"", common::CAFE_TIMEOUT);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("--schema-registry"), "{}", stderr(&out));
    // Nothing was committed: with the registry, the same group reads the record.
    let reg = registry();
    let args = ["-b", &b, "consume", "-t", &topic, "-g", &group, "--schema-registry", &reg, "--idle-exit", "30s"];
    let out = run_cafe(&[&args[..], &["--max-messages", "1"]].concat(), b"");
    assert_success(&out, "consume after the stop");
    assert_eq!(stdout(&out).lines().count(), 1, "{}", stderr(&out));
    delete_topic(&topic);
}
