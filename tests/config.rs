//! `cafe --config FILE` (a Java client.properties) and `-X key=value` against a
//! real broker: what reaches the wire (through the recording proxy), which
//! group a consumer joins, the order settings override each other in (flag
//! beats -X beats the file beats the defaults), and the usage errors.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::Duration;

use common::proxy::RecordingProxy;
use common::*;

/// The usage exit code (README, "Exit codes").
const USAGE: i32 = 2;

/// A properties file in the temporary directory, removed on drop.
struct PropertiesFile(PathBuf);

impl PropertiesFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{}.properties", unique_topic("cafe-config")));
        std::fs::write(&path, text).expect("write the properties file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("a UTF-8 temporary path")
    }
}

impl Drop for PropertiesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Runs `cafe -b <proxy> <global...> produce -t <topic> -n 3 <args...>` through a
/// fresh proxy and returns the `acks` of every Produce request it sent.
fn produce_acks(topic: &str, global: &[&str], args: &[&str]) -> Vec<i16> {
    let proxy = RecordingProxy::start(&bootstrap());
    let addr = proxy.addr();
    let mut all = vec!["-b", addr.as_str()];
    all.extend_from_slice(global);
    all.extend_from_slice(&["produce", "-t", topic, "-n", "3"]);
    all.extend_from_slice(args);
    let out = run_cafe(&all, b"");
    assert_success(&out, &format!("cafe {}", all.join(" ")));
    // acks=0 has no answer: cafe may exit before the proxy has read the request.
    let reqs = proxy.wait_until(Duration::from_secs(10), |r| r.iter().any(|r| r.produce.is_some()));
    let acks: Vec<i16> = reqs.iter().filter_map(|r| r.produce.as_ref()).map(|p| p.acks).collect();
    assert!(!acks.is_empty(), "no Produce request went through the proxy for cafe {}", all.join(" "));
    acks
}

#[test]
fn x_acks_all_goes_on_the_wire_as_minus_1() {
    let topic = unique_topic("config-acks");
    create_topic(&topic, 3);
    let acks = produce_acks(&topic, &["-X", "acks=all"], &[]);
    assert!(acks.iter().all(|a| *a == -1), "acks on the wire: {acks:?}");
    delete_topic(&topic);
}

#[test]
fn the_acks_flag_beats_x_which_beats_the_file_which_beats_the_default() {
    let topic = unique_topic("config-precedence");
    create_topic(&topic, 3);
    // The application's default is acks=1.
    assert!(produce_acks(&topic, &[], &[]).iter().all(|a| *a == 1));
    let file = PropertiesFile::new("# shared with consumers\ngroup.id=ignored-by-producers\nacks = 0\n");
    let cases: [(&[&str], &[&str], i16); 3] = [
        (&["--config", file.path()], &[], 0),
        (&["--config", file.path(), "-X", "acks=all"], &[], -1),
        (&["--config", file.path(), "-X", "acks=all"], &["--acks", "1"], 1),
    ];
    for (global, args, want) in cases {
        let acks = produce_acks(&topic, global, args);
        assert!(acks.iter().all(|a| *a == want), "{global:?} {args:?}: acks on the wire {acks:?}, want {want}");
    }
    delete_topic(&topic);
}

#[test]
fn bootstrap_servers_and_client_id_can_come_from_the_file() {
    let topic = unique_topic("config-client");
    create_topic(&topic, 1);
    let proxy = RecordingProxy::start(&bootstrap());
    let client_id = unique_topic("from-file");
    let file = PropertiesFile::new(&format!("bootstrap.servers={}\nclient.id: {client_id}\n", proxy.addr()));
    // No -b, and no CAFE_BOOTSTRAP (which counts as -b): the file says where the broker is.
    let mut cmd = Command::new(cafe_bin());
    cmd.env_remove("CAFE_BOOTSTRAP").args(["--config", file.path(), "produce", "-t", &topic, "-n", "2"]);
    let out = run_with_deadline(cmd, b"", CAFE_TIMEOUT);
    assert_success(&out, "cafe --config FILE produce");
    let reqs = proxy.requests();
    assert!(reqs.iter().any(|r| r.produce.is_some()), "the produce went elsewhere: {reqs:#?}");
    let ids: Vec<Option<String>> = reqs.iter().map(|r| r.client_id()).collect();
    assert!(ids.iter().all(|id| id.as_deref() == Some(client_id.as_str())), "client ids: {ids:?}");
    delete_topic(&topic);
}

/// `cafe -b <broker> <global...> consume -t <topic> <args...>`, which stops once
/// no record came for `idle`; returns how many records it consumed.
fn consume(topic: &str, global: &[&str], args: &[&str], idle: &str) -> u64 {
    let broker = bootstrap();
    let mut all = vec!["-b", broker.as_str()];
    all.extend_from_slice(global);
    all.extend_from_slice(&["consume", "-t", topic, "--idle-exit", idle]);
    all.extend_from_slice(args);
    let out = run_cafe(&all, b"");
    assert_success(&out, &format!("cafe {}", all.join(" ")));
    consumed_count(&stderr(&out))
}

#[test]
fn consume_takes_group_id_from_the_file_then_x_then_the_flag() {
    let topic = unique_topic("config-consume");
    create_topic(&topic, 1);
    let out = run_cafe(&["-b", &bootstrap(), "produce", "-t", &topic, "-n", "3"], b"");
    assert_success(&out, "producing 3 events");
    let [from_file, from_x, from_flag] = ["file", "x", "flag"].map(|w| unique_topic(&format!("config-group-{w}")));
    let file = PropertiesFile::new(&format!("bootstrap.servers=127.0.0.1:1\nacks=all\ngroup.id={from_file}\n"));
    let with_file = ["--config", file.path()];
    let until_3 = ["--max-messages", "3"];

    // A group's first member reads all 3 and commits them; a later member of the
    // same group reads nothing. So which group each run joined shows.
    assert_eq!(consume(&topic, &with_file, &until_3, "30s"), 3, "the file's group is new");
    assert_eq!(consume(&topic, &[], &["-g", &from_file], "8s"), 0, "the file's group was joined and committed");

    let x = ["--config", file.path(), "-X", &format!("group.id={from_x}")];
    assert_eq!(consume(&topic, &x, &until_3, "30s"), 3, "-X names a new group, over the file's");
    assert_eq!(consume(&topic, &x, &[], "8s"), 0, "the -X group was joined and committed");

    assert_eq!(consume(&topic, &x, &[&until_3[..], &["-g", &from_flag]].concat(), "30s"), 3, "--group beats -X");
    delete_topic(&topic);
}

fn usage_error(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(USAGE), "exit code; stderr:\n{}", stderr(out));
    let text = stderr(out);
    text.lines().last().unwrap_or_default().to_owned()
}

#[test]
fn unknown_or_invalid_settings_are_usage_errors_saying_where_they_came_from() {
    let broker = bootstrap();
    let out = run_cafe(&["-b", &broker, "-X", "no.such.key=1", "produce", "-n", "1"], b"");
    assert_eq!(usage_error(&out), "cafe: -X no.such.key=1: unknown setting `no.such.key`");

    let out = run_cafe(&["-b", &broker, "-X", "fetch.max.wait=100", "consume"], b"");
    assert_eq!(
        usage_error(&out),
        "cafe: -X fetch.max.wait=100: unknown setting `fetch.max.wait`; did you mean `fetch.max.wait.ms`?"
    );

    let file = PropertiesFile::new("bootstrap.servers=127.0.0.1:9092\n\n# TLS\nsecurity.protocol=TLS\n");
    let out = run_cafe(&["--config", file.path(), "topic", "describe", "demo"], b"");
    assert_eq!(
        usage_error(&out),
        format!(
            "cafe: {}:4: invalid value `TLS` for `security.protocol`: expected PLAINTEXT, SSL, SASL_PLAINTEXT or \
             SASL_SSL",
            file.path()
        )
    );

    let file = PropertiesFile::new("enable.idempotence=maybe\n");
    let out = run_cafe(&["-b", &broker, "--config", file.path(), "send"], b"x\n");
    assert_eq!(
        usage_error(&out),
        format!("cafe: {}:1: invalid value `maybe` for `enable.idempotence`: expected true or false", file.path())
    );

    let out = run_cafe(&["-b", &broker, "-X", "transaction.two.phase.commit.enable=true", "send"], b"x\n");
    assert_eq!(
        usage_error(&out),
        "cafe: -X transaction.two.phase.commit.enable=true: `transaction.two.phase.commit.enable` is a Kafka client \
         setting that cafe-kafka does not support yet"
    );

    let out = run_cafe(&["-b", &broker, "-X", "transactional.id=t", "send"], b"x\n");
    assert_eq!(
        usage_error(&out),
        "cafe: `transactional.id` is for `cafe produce --transactional-id`; `cafe send` runs no transactions"
    );

    let out = run_cafe(&["--config", "/nonexistent/client.properties", "produce"], b"");
    let line = usage_error(&out);
    assert!(line.starts_with("cafe: cannot read properties file /nonexistent/client.properties: "), "{line}");
}
