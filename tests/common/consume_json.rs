//! The lines `cafe consume --json` prints on stdout: one JSON object per record,
//! and one per change of assignment (`{"event": "assigned", "generation": N,
//! "partitions": [{"topic", "partition"}]}`, `{"event": "revoked", ...}`), told
//! apart by the `event` field that only change lines have.

use std::collections::BTreeSet;
use std::process::Output;

use serde_json::Value;

/// A topic and partition, as a change line names them.
pub type TopicPartition = (String, i32);

/// One `"assigned"` line: the member's whole assignment in one generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub generation: i64,
    pub partitions: Vec<TopicPartition>,
}

impl Assignment {
    /// The partition numbers, all of which must be of `topic`.
    pub fn of(&self, topic: &str) -> BTreeSet<i32> {
        partitions_of(&self.partitions, topic)
    }
}

/// One stdout line of `cafe consume --json`.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumeLine {
    Record(Value),
    Assigned(Assignment),
    Revoked(Vec<TopicPartition>),
}

/// Parses one line; panics on a line that is not a JSON object, or a change
/// line that is not `assigned`/`revoked` with its fields.
pub fn parse_line(line: &str) -> ConsumeLine {
    let v: Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("consumer printed a non-JSON line ({e}): {line}"));
    assert!(v.is_object(), "consumer printed a JSON line that is not an object: {line}");
    let Some(event) = v.get("event") else { return ConsumeLine::Record(v) };
    let partitions = || -> Vec<TopicPartition> {
        v["partitions"]
            .as_array()
            .unwrap_or_else(|| panic!("no partitions in {line}"))
            .iter()
            .map(|p| {
                let topic = p["topic"].as_str().unwrap_or_else(|| panic!("no topic in {line}"));
                let partition = p["partition"].as_i64().unwrap_or_else(|| panic!("no partition in {line}"));
                (topic.to_owned(), partition as i32)
            })
            .collect()
    };
    match event.as_str() {
        Some("assigned") => ConsumeLine::Assigned(Assignment {
            generation: v["generation"].as_i64().unwrap_or_else(|| panic!("no generation in {line}")),
            partitions: partitions(),
        }),
        Some("revoked") => ConsumeLine::Revoked(partitions()),
        _ => panic!("unknown event line: {line}"),
    }
}

/// Every non-empty line, parsed.
pub fn parse_lines<S: AsRef<str>>(lines: &[S]) -> Vec<ConsumeLine> {
    lines.iter().map(AsRef::as_ref).filter(|l| !l.trim().is_empty()).map(parse_line).collect()
}

/// The record lines, in order.
pub fn records<S: AsRef<str>>(lines: &[S]) -> Vec<Value> {
    parse_lines(lines)
        .into_iter()
        .filter_map(|l| match l {
            ConsumeLine::Record(v) => Some(v),
            _ => None,
        })
        .collect()
}

/// The record lines of a finished run's stdout.
pub fn records_in(out: &Output) -> Vec<Value> {
    records(&String::from_utf8_lossy(&out.stdout).lines().collect::<Vec<_>>())
}

/// The `assigned` lines, in order.
pub fn assignments<S: AsRef<str>>(lines: &[S]) -> Vec<Assignment> {
    parse_lines(lines)
        .into_iter()
        .filter_map(|l| match l {
            ConsumeLine::Assigned(a) => Some(a),
            _ => None,
        })
        .collect()
}

/// The `revoked` lines' partitions, in order.
pub fn revocations<S: AsRef<str>>(lines: &[S]) -> Vec<Vec<TopicPartition>> {
    parse_lines(lines)
        .into_iter()
        .filter_map(|l| match l {
            ConsumeLine::Revoked(p) => Some(p),
            _ => None,
        })
        .collect()
}

/// The partition numbers of `partitions`, all of which must be of `topic`.
pub fn partitions_of(partitions: &[TopicPartition], topic: &str) -> BTreeSet<i32> {
    partitions
        .iter()
        .map(|(t, p)| {
            assert_eq!(t, topic, "a partition of another topic in {partitions:?}");
            *p
        })
        .collect()
}
