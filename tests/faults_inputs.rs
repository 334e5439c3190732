//! Bad input: each case of the README's "Bad input" table, run for real. Every one
//! must end with a one-line `cafe: ...` error naming the problem and what to do,
//! its own exit code, and no panic. Uses the shared broker (`CAFE_BOOTSTRAP`) only
//! for ordinary requests on its own topics.

mod common;

use std::process::Output;
use std::time::Duration;

use common::{FakeBehaviour, FakeServer, bootstrap, run_cafe, run_cafe_within, stderr, stdout, unique_topic};

/// The last stderr line (logs may precede it), after checking there was no panic.
fn last_error_line(out: &Output) -> String {
    let err = stderr(out);
    assert!(!err.contains("panicked"), "cafe panicked:\n{err}");
    err.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or_default().to_owned()
}

fn expect(out: &Output, code: i32, contains: &[&str]) {
    let line = last_error_line(out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{}", stderr(out));
    assert!(line.starts_with("cafe: "), "error line `{line}`");
    for c in contains {
        assert!(line.contains(c), "`{line}` should mention `{c}`");
    }
}

fn cafe(args: &[&str], stdin: &[u8]) -> Output {
    let b = bootstrap();
    let mut all = vec!["-b", b.as_str()];
    all.extend_from_slice(args);
    run_cafe(&all, stdin)
}

fn topic() -> String {
    let t = unique_topic("bad-input");
    let out = cafe(&["topic", "create", &t, "--partitions", "1"], b"");
    assert!(out.status.success(), "{}", stderr(&out));
    t
}

#[test]
fn unreachable_bootstrap_is_exit_3() {
    let out = run_cafe(&["-b", "127.0.0.1:1", "produce", "-n", "1"], b"");
    expect(&out, 3, &["no broker at 127.0.0.1:1", "make kafka-up"]);
}

#[test]
fn a_port_that_is_not_kafka_is_exit_3() {
    let http = FakeServer::start(FakeBehaviour::HttpReply);
    let out = run_cafe(&["-b", &http.addr(), "produce", "-n", "1"], b"");
    expect(&out, 3, &["does not speak the Kafka protocol", "check the port"]);
}

#[test]
fn a_bootstrap_without_port_is_exit_2() {
    let out = run_cafe(&["-b", "localhost", "produce"], b"");
    expect(&out, 2, &["is not host:port"]);
}

#[test]
fn unknown_topic_is_exit_4() {
    let t = unique_topic("no-such-topic");
    expect(&cafe(&["produce", "-t", &t, "-n", "1"], b""), 4, &["does not exist", "cafe topic create"]);
    expect(&cafe(&["consume", "-t", &t, "-g", &t, "--idle-exit", "2s"], b""), 4, &["does not exist"]);
}

#[test]
fn topic_deleted_while_consuming_is_exit_4() {
    let t = topic();
    let out = cafe(&["produce", "-t", &t, "-n", "3"], b"");
    assert!(out.status.success());
    let b = bootstrap();
    let child = {
        let (b, t) = (b.clone(), t.clone());
        std::thread::spawn(move || {
            run_cafe_within(&["-b", &b, "consume", "-t", &t, "-g", &t], b"", Duration::from_secs(90))
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    assert!(cafe(&["topic", "delete", &t], b"").status.success());
    let out = child.join().expect("consumer thread");
    expect(&out, 4, &["does not exist (or was deleted)"]);
}

#[test]
fn malformed_json_on_the_topic_is_a_warning_not_an_exit() {
    let t = topic();
    assert!(cafe(&["send", "-t", &t], b"{not json\n").status.success());
    let out = cafe(&["consume", "-t", &t, "-g", &t, "--idle-exit", "3s"], b"");
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not a cafe event"), "{}", stderr(&out));
}

#[test]
fn a_non_utf8_key_is_exit_9() {
    let t = topic();
    let out = cafe(&["send", "-t", &t, "--keyed"], b"ok\tfine\nk\xff\tv\n");
    expect(&out, 9, &["line 2 of standard input is not UTF-8"]);
    // Input is read line by line: the good line before the bad one was sent, and its
    // report printed before the error (nothing is lost, nothing is left unreported).
    assert!(stdout(&out).contains("delivered line1 key=ok -> "), "{}", stdout(&out));
}

#[test]
fn a_record_over_the_size_limits_is_reported_and_exit_5() {
    let t = topic();
    let mut big = vec![b'x'; 2_000_000];
    big.push(b'\n');
    // Over our max.request.size: refused before sending.
    let out = cafe(&["send", "-t", &t], &big);
    expect(&out, 5, &["1 of 1 records were not delivered"]);
    assert!(stdout(&out).contains("exceeds max.request.size=1048576"), "{}", stdout(&out));
    // Over the broker's message.max.bytes (1 MiB by default): refused by the broker.
    let out = cafe(&["send", "-t", &t, "--max-request-size", "3000000"], &big);
    expect(&out, 5, &["not delivered"]);
    assert!(stdout(&out).contains("MESSAGE_TOO_LARGE"), "{}", stdout(&out));
}

#[test]
fn invalid_command_line_values_are_exit_2_on_one_line() {
    let cases: &[(&[&str], &str)] = &[
        (&["produce", "-n", "-5"], "`-5` is negative"),
        (&["consume", "--max-messages", "-1"], "`-1` is negative"),
        (&["produce", "--acks", "2"], "acks must be 0, 1 or all"),
        (&["consume", "-g", ""], "group.id must not be empty"),
        (&["produce", "--enable-idempotence"], "requires acks=all"),
        (&["produce", "--batch-size", "0"], "batch.size"),
        (&["consume", "--heartbeat-interval-ms", "50000"], "heartbeat.interval.ms must be lower"),
        (&["consume", "--idle-exit", "5x"], "use ms, s or m"),
    ];
    for (args, msg) in cases {
        let out = cafe(args, b"");
        expect(&out, 2, &[msg]);
        assert_eq!(stderr(&out).lines().count(), 1, "one line for {args:?}:\n{}", stderr(&out));
    }
}
