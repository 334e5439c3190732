//! Group members as child processes, one spawner per client: `cafe consume
//! --json` in each of its three rebalance modes, Kafka's console consumer (the
//! Java client) and the confluent-kafka peer (`tests/peers/group_consume.py`),
//! and what each printed, read back as record positions and owned partitions.
//!
//! Every test that runs a group member starts it here, so the test timings and
//! the flags a mode needs are written once.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::background::Background;
use super::consume_json::{ConsumeLine, parse_lines, partitions_of};
use super::records::Pos;
use super::{bootstrap, peer_python, repo_root};

/// Classic-protocol timings for tests: rebalances and session expiry take
/// seconds, not the defaults' minute. (A KIP-848 member gets its timings from
/// the broker and must not send these.)
pub const SESSION_MS: &str = "6000";
pub const HEARTBEAT_MS: &str = "1000";
pub const AUTO_COMMIT_MS: &str = "1000";

/// How a `cafe consume` member rebalances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The classic protocol, eager `range` (cafe's default).
    Eager,
    /// The classic protocol, `cooperative-sticky` (KIP-429).
    Cooperative,
    /// `--group-protocol consumer` (KIP-848), the broker's assignor.
    Consumer,
}

impl Mode {
    /// The flags this mode adds to `cafe consume`.
    fn flags(self) -> Vec<&'static str> {
        let classic = vec!["--session-timeout-ms", SESSION_MS, "--heartbeat-interval-ms", HEARTBEAT_MS];
        match self {
            Mode::Eager => classic,
            Mode::Cooperative => [classic, vec!["--partition-assignment-strategy", "cooperative-sticky"]].concat(),
            Mode::Consumer => vec!["--group-protocol", "consumer"],
        }
    }
}

/// `cafe consume --json` of `topic` in `group` against the test broker, with
/// the mode's flags, auto-commit every second, then `extra`.
pub fn consume_args(topic: &str, group: &str, mode: Mode, extra: &[&str]) -> Vec<String> {
    let b = bootstrap();
    let mut args = vec!["-b", &b, "consume", "-t", topic, "-g", group, "--json"];
    args.extend(mode.flags());
    args.extend_from_slice(&["--auto-commit-interval-ms", AUTO_COMMIT_MS]);
    args.extend_from_slice(extra);
    args.into_iter().map(str::to_owned).collect()
}

/// A `cafe consume` with `args` in the background, its group decisions
/// (joins, assignments, heartbeat errors) logged for the failure messages.
pub fn cafe_member<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Background {
    Background::cafe_logging(name, args, "info,cafe_kafka::group=debug")
}

/// [`cafe_member`] with [`consume_args`].
pub fn cafe(name: &str, topic: &str, group: &str, mode: Mode, extra: &[&str]) -> Background {
    cafe_member(name, &consume_args(topic, group, mode, extra))
}

impl Background {
    /// What a `cafe consume --json` member owns now, None before its first
    /// assignment. Folded over its change lines: an `assigned` line lists the
    /// whole assignment, a `revoked` line only what was taken away (KIP-429
    /// and KIP-848 revoke part of it).
    pub fn owned(&self, topic: &str) -> Option<BTreeSet<i32>> {
        let mut owned: Option<BTreeSet<i32>> = None;
        for line in parse_lines(&self.stdout_lines()) {
            match line {
                ConsumeLine::Assigned(a) => owned.get_or_insert_default().extend(a.of(topic)),
                ConsumeLine::Revoked(p) => {
                    let gone = partitions_of(&p, topic);
                    owned.get_or_insert_default().retain(|q| !gone.contains(q));
                }
                ConsumeLine::Record(_) => {}
            }
        }
        owned
    }
}

/// The record positions a `cafe consume --json` member printed, all of `topic`.
pub fn cafe_positions(lines: &[String], topic: &str) -> Vec<Pos> {
    super::consume_json::records(lines)
        .iter()
        .map(|v| {
            assert_eq!(v["topic"], topic, "record of another topic: {v}");
            (v["partition"].as_i64().expect("partition") as i32, v["offset"].as_i64().expect("offset"))
        })
        .collect()
}

/// Kafka's console consumer (the Java client) in `group` from the beginning,
/// printing `Partition:p\tOffset:o\tvalue` lines, with `props` as consumer
/// properties; it exits after `idle_ms` without records, or when stopped.
pub fn java(name: &str, topic: &str, group: &str, idle_ms: &str, props: &[&str]) -> Background {
    let b = bootstrap();
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/kafka.sh")).args(["tool", "console-consumer"]).args([
        "--bootstrap-server",
        &b,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--timeout-ms",
        idle_ms,
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
    ]);
    for p in props {
        cmd.args(["--consumer-property", p]);
    }
    Background::spawn(name, cmd)
}

/// The classic-protocol timings for [`java`], as `key=value` properties.
pub fn java_classic_timings() -> [String; 2] {
    [format!("session.timeout.ms={SESSION_MS}"), format!("heartbeat.interval.ms={HEARTBEAT_MS}")]
}

/// Positions the console consumer printed.
pub fn java_positions(lines: &[String]) -> Vec<Pos> {
    lines
        .iter()
        .filter_map(|l| {
            let field = |name: &str| l.split('\t').find_map(|f| f.strip_prefix(name)?.trim().parse::<i64>().ok());
            Some((field("Partition:")? as i32, field("Offset:")?))
        })
        .collect()
}

/// The confluent-kafka peer `tests/peers/group_consume.py` in `group`, with
/// the script's `extra` options (see its docstring).
pub fn librdkafka(name: &str, topic: &str, group: &str, extra: &[&str]) -> Background {
    let b = bootstrap();
    let mut cmd = Command::new(peer_python());
    cmd.arg(repo_root().join("tests/peers/group_consume.py"))
        .args(["--bootstrap", &b, "--topic", topic, "--group", group])
        .args(extra);
    Background::spawn(name, cmd)
}

/// The peer's options for a classic member with `strategy` and the test timings.
pub fn librdkafka_classic(strategy: &str) -> [&str; 6] {
    ["--strategy", strategy, "--session-timeout-ms", SESSION_MS, "--heartbeat-interval-ms", HEARTBEAT_MS]
}

/// Positions the peer printed (one JSON object per record on stdout).
pub fn peer_positions(lines: &[String]) -> Vec<Pos> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| Some((v.get("partition")?.as_i64()? as i32, v.get("offset")?.as_i64()?)))
        .collect()
}

/// What the peer owns now, None before its first assignment: folded from its
/// `{"assigned": [...]}` / `{"revoked": [...]}` lines on stderr (incremental
/// with cooperative-sticky and KIP-848, whole with eager assignors).
pub fn peer_owned(peer: &Background) -> Option<BTreeSet<i32>> {
    let mut owned: Option<BTreeSet<i32>> = None;
    for l in peer.stderr_lines() {
        let Ok(v) = serde_json::from_str::<Value>(&l) else { continue };
        let list = |k: &str| -> Option<BTreeSet<i32>> {
            Some(v.get(k)?.as_array()?.iter().filter_map(|p| p.as_i64().map(|p| p as i32)).collect())
        };
        if let Some(a) = list("assigned") {
            owned.get_or_insert_default().extend(a);
        } else if let Some(r) = list("revoked") {
            owned.get_or_insert_default().retain(|p| !r.contains(p));
        }
    }
    owned
}
