//! `cafe consume`: the seed's consumer, a member of `cafe-group-clean` that prints
//! every event. Stops on Ctrl+C/SIGTERM, `--max-messages` or `--idle-exit`, always
//! through `Consumer::close` (final commit, LeaveGroup).
//!
//! Values may be plain JSON or framed for a Schema Registry (magic byte 0,
//! schema id, JSON); framed ones are checked against the registry by id.

use std::time::Duration;

use clap::Args;

use super::{Common, defaults};
use crate::error::Error;
use crate::event_codec::{Decoded, ValueDecoder};
use cafe_kafka::consumer::{ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, IsolationLevel, OffsetReset};
use cafe_kafka::registry::SchemaRegistry;
use cafe_kafka::{Assignor, GroupProtocol};

/// `consume`'s flags. The Kafka settings are `None` when not given, leaving
/// them to -X, --config and the defaults; --help shows the defaults from the
/// library (and the application's group id).
#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Topic(s) to subscribe to.
    #[arg(long = "topic", short = 't', default_value = defaults::TOPIC)]
    pub topics: Vec<String>,
    /// Subscribe to every topic whose whole name matches this regular expression
    /// (Java's `subscribe(Pattern)`), including topics created later; instead of --topic.
    #[arg(long, value_name = "REGEX", conflicts_with = "topics")]
    pub topic_pattern: Option<String>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help = lib(
        "`metadata.max.age.ms`: how often metadata is refreshed to notice new partitions and, with \
         --topic-pattern, new matching topics",
        "metadata.max.age.ms"))]
    pub metadata_max_age_ms: Option<u64>,
    #[arg(long, help = lib(
        "`isolation.level`: read_committed (skip aborted transactions; librdkafka's default) or read_uncommitted",
        "isolation.level"))]
    pub isolation_level: Option<IsolationLevel>,
    #[arg(long, value_parser = clap::value_parser!(i32).range(0..), help = lib(
        "`fetch.min.bytes`: the broker waits for this much data (up to --fetch-max-wait-ms)", "fetch.min.bytes"))]
    pub fetch_min_bytes: Option<i32>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(0..=i32::MAX as u64),
        help = lib("`fetch.max.wait.ms`", "fetch.max.wait.ms"))]
    pub fetch_max_wait_ms: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..), help = lib(
        "`fetch.max.bytes`: the most one Fetch response (per broker) may carry", "fetch.max.bytes"))]
    pub fetch_max_bytes: Option<i32>,
    #[arg(long, value_parser = clap::value_parser!(i32).range(1..), help = lib(
        "`max.partition.fetch.bytes`: the most one partition may add to a response", "max.partition.fetch.bytes"))]
    pub max_partition_fetch_bytes: Option<i32>,
    #[arg(long, action = clap::ArgAction::Set,
        help = lib("`check.crcs`: verify every record batch's CRC-32C", "check.crcs"))]
    pub check_crcs: Option<bool>,
    #[arg(long = "group", short = 'g', help = defaults::app("`group.id`", defaults::GROUP_ID))]
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (KIP-345).
    #[arg(long)]
    pub group_instance_id: Option<String>,
    #[arg(long, help = lib("`auto.offset.reset`: earliest, latest or error", "auto.offset.reset"))]
    pub auto_offset_reset: Option<OffsetReset>,
    #[arg(long, action = clap::ArgAction::Set, help = lib("`enable.auto.commit`", "enable.auto.commit"))]
    pub enable_auto_commit: Option<bool>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = lib("`auto.commit.interval.ms`", "auto.commit.interval.ms"))]
    pub auto_commit_interval_ms: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = lib("`session.timeout.ms`", "session.timeout.ms"))]
    pub session_timeout_ms: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = lib("`heartbeat.interval.ms`", "heartbeat.interval.ms"))]
    pub heartbeat_interval_ms: Option<u64>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..),
        help = lib("`max.poll.interval.ms` (the rebalance timeout)", "max.poll.interval.ms"))]
    pub max_poll_interval_ms: Option<u64>,
    #[arg(long, help = lib(
        "`group.protocol`: classic (JoinGroup/SyncGroup) or consumer (KIP-848, assignment by the broker)",
        "group.protocol"))]
    pub group_protocol: Option<GroupProtocol>,
    #[arg(long, value_enum, help = defaults::app(
        "`group.remote.assignor`, with --group-protocol consumer: the broker's assignor", "the broker's"))]
    pub group_remote_assignor: Option<RemoteAssignor>,
    #[arg(long, value_parser = parse_assignors, help = lib(
        "`partition.assignment.strategy`: range, roundrobin or cooperative-sticky, or a comma list in \
         preference order (cooperative only if every one listed is)",
        "partition.assignment.strategy"))]
    // `std::vec::Vec`: one value holding the whole list, not a repeated flag.
    pub partition_assignment_strategy: Option<std::vec::Vec<Assignor>>,
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..), help = lib(
        "`max.poll.records`: the most records taken per poll (the member handles group changes between polls)",
        "max.poll.records"))]
    pub max_poll_records: Option<u64>,
    /// Exit after this many records.
    #[arg(long)]
    pub max_messages: Option<u64>,
    /// Exit once no record arrived for this long (e.g. 10s, 500ms).
    #[arg(long, value_parser = parse_duration)]
    pub idle_exit: Option<Duration>,
    /// One JSON object per record: topic, partition, offset, key, timestamp, value;
    /// and one per change of assignment, `{"event": "assigned"|"revoked", ...}`.
    #[arg(long)]
    pub json: bool,
    /// Schema Registry base URL for values framed with a schema id (the seed's
    /// JSONSerializer format). Plain JSON values need none.
    #[arg(long, value_name = "URL", env = "CAFE_SCHEMA_REGISTRY")]
    pub schema_registry: Option<String>,
    /// Pretend each record takes this long to process (for testing slow consumers).
    #[arg(long, hide = true, value_parser = parse_duration)]
    pub process_delay: Option<Duration>,
}

/// `range`, or a comma list like Java's `range,cooperative-sticky`.
fn parse_assignors(s: &str) -> Result<Vec<Assignor>, String> {
    let names: Vec<&str> = s.split(',').map(str::trim).filter(|n| !n.is_empty()).collect();
    if names.is_empty() {
        return Err("give at least one of range, roundrobin, cooperative-sticky".into());
    }
    names
        .into_iter()
        .map(|n| {
            Assignor::from_name(n)
                .ok_or_else(|| format!("unknown assignor `{n}`; use range, roundrobin or cooperative-sticky"))
        })
        .collect()
}

/// The server-side assignors of Kafka 4 (`group.consumer.assignors`); a flag
/// value of one byte, not a `String`, keeps `Command` small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum RemoteAssignor {
    Uniform,
    Range,
}

impl RemoteAssignor {
    fn name(self) -> &'static str {
        match self {
            RemoteAssignor::Uniform => "uniform",
            RemoteAssignor::Range => "range",
        }
    }
}

/// `10s`, `500ms`, `2m`, or plain milliseconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, "ms"), |i| s.split_at(i));
    let n: u64 = num.parse().map_err(|_| format!("`{s}` is not a duration like 10s or 500ms"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        _ => Err(format!("`{s}`: use ms, s or m")),
    }
}

/// A flag's help text ending in the library's default for the consumer's `key`.
fn lib(text: &str, key: &str) -> String {
    defaults::library::<ConsumerConfig>(text, key)
}

impl ConsumeArgs {
    /// The consumer's settings: the library's defaults, the application's
    /// group id, --config and -X, then the topics and these flags where given.
    pub(crate) fn config(&self, common: &Common) -> Result<ConsumerConfig, Error> {
        let mut config = ConsumerConfig::default();
        config.group.group_id = defaults::GROUP_ID.to_owned();
        common.apply(&mut config)?;
        let (group, fetch) = (&mut config.group, &mut config.fetch);
        group.topics = if self.topic_pattern.is_some() { Vec::new() } else { self.topics.clone() };
        group.topic_pattern = self.topic_pattern.clone();
        let ms = |flag: Option<u64>, field: &mut Duration| {
            if let Some(ms) = flag {
                *field = Duration::from_millis(ms);
            }
        };
        ms(self.metadata_max_age_ms, &mut group.metadata_max_age);
        ms(self.session_timeout_ms, &mut group.session_timeout);
        ms(self.max_poll_interval_ms, &mut group.rebalance_timeout);
        ms(self.heartbeat_interval_ms, &mut group.heartbeat_interval);
        ms(self.auto_commit_interval_ms, &mut group.auto_commit_interval);
        ms(self.fetch_max_wait_ms, &mut fetch.max_wait);
        if let Some(id) = &self.group_id {
            group.group_id = id.clone();
        }
        if let Some(id) = &self.group_instance_id {
            group.group_instance_id = Some(id.clone());
        }
        if let Some(p) = self.group_protocol {
            group.protocol = p;
        }
        if let Some(a) = self.group_remote_assignor {
            group.remote_assignor = Some(a.name().to_owned());
        }
        if let Some(a) = &self.partition_assignment_strategy {
            group.assignors = a.clone();
        }
        if let Some(on) = self.enable_auto_commit {
            group.enable_auto_commit = on;
        }
        fetch.min_bytes = self.fetch_min_bytes.unwrap_or(fetch.min_bytes);
        fetch.max_bytes = self.fetch_max_bytes.unwrap_or(fetch.max_bytes);
        fetch.max_partition_bytes = self.max_partition_fetch_bytes.unwrap_or(fetch.max_partition_bytes);
        fetch.isolation = self.isolation_level.unwrap_or(fetch.isolation);
        fetch.check_crcs = self.check_crcs.unwrap_or(fetch.check_crcs);
        fetch.reset = self.auto_offset_reset.unwrap_or(fetch.reset);
        if let Some(n) = self.max_poll_records {
            config.max_poll_records = n.try_into().unwrap_or(usize::MAX);
        }
        Ok(config)
    }
}

pub async fn run(common: &Common, args: ConsumeArgs) -> Result<(), Error> {
    let config = args.config(common)?;
    config.validate()?; // exit 2, with the flag to fix (see `error.rs`)
    let registry = match &args.schema_registry {
        Some(url) => {
            let registry = SchemaRegistry::new(url, common.request_timeout())?;
            registry.check().await?; // fail before joining the group
            Some(registry)
        }
        None => None,
    };
    let mut decoder = ValueDecoder::new(registry);
    let cluster = common.cluster().await?;
    let mut consumer = Consumer::new(cluster, config).await?;
    let mut seen: u64 = 0;
    let mut malformed: u64 = 0;
    let shutdown = super::interrupt::signal();
    tokio::pin!(shutdown);
    // --idle-exit counts from the last batch of records (or the start): a change
    // of assignment is no record.
    let mut idle_since = tokio::time::Instant::now();
    // What the member owns, for the `assigned` lines (cooperative rebalances
    // announce only what was added).
    let mut owned = std::collections::BTreeSet::new();
    let result = loop {
        if args.max_messages.is_some_and(|m| seen >= m) {
            break Ok(());
        }
        // Never take more than --max-messages leaves: what is not printed is not consumed.
        let limit = args.max_messages.map_or(usize::MAX, |m| (m - seen).try_into().unwrap_or(usize::MAX));
        let next = async {
            match args.idle_exit {
                Some(idle) => tokio::time::timeout_at(idle_since + idle, consumer.next_event_max(limit)).await.ok(),
                None => Some(consumer.next_event_max(limit).await),
            }
        };
        let event = tokio::select! {
            _ = &mut shutdown => { tracing::info!("signal received; closing"); break Ok(()) }
            b = next => match b {
                None => break Ok(()), // idle
                Some(Err(e)) => break Err(e),
                Some(Ok(e)) => e,
            },
        };
        let batch = match event {
            ConsumerEvent::Records(batch) => batch,
            change => {
                if args.json {
                    print_change(&change, consumer.generation_id(), &mut owned);
                }
                continue;
            }
        };
        for r in batch {
            let at = format!("{}[{}]@{}", r.topic, r.partition, r.record.offset);
            let decoded = match &r.record.value {
                None => Ok(Decoded::Skip("a tombstone (null value)".into())),
                Some(v) => decoder.decode(&at, v).await,
            };
            let decoded = match decoded {
                Ok(d) => d,
                Err(e) => {
                    // The registry is needed and cannot answer: this record was not read.
                    // No close(): it would commit this whole batch, this record included.
                    // The group sees us gone after session.timeout.ms and the records are
                    // read again (from the last commit) by the next member.
                    eprintln!("cafe: consumed {seen} records ({malformed} not cafe events); stopping at {at}");
                    return Err(e.into());
                }
            };
            seen += 1;
            if !print_record(&r, decoded, args.json) {
                malformed += 1;
            }
            if let Some(d) = args.process_delay {
                tokio::time::sleep(d).await;
            }
        }
        idle_since = tokio::time::Instant::now();
    };
    let json = args.json;
    let close = consumer
        .close_with(|change| {
            if json {
                print_change(&change, None, &mut owned)
            }
        })
        .await;
    match &result {
        // The last line names the batch; say first that everything before it was read.
        Err(cafe_kafka::consumer::Error::Partition(p)) => eprintln!(
            "cafe: consumed {seen} records ({malformed} not cafe events); the partition below stopped, nothing past it was committed: {p}"
        ),
        _ => eprintln!("cafe: consumed {seen} records ({malformed} not cafe events)"),
    }
    result?;
    close?;
    Ok(())
}

/// Prints one record; false if its value is not a cafe event (warned, skipped, still consumed).
fn print_record(r: &ConsumedRecord, decoded: Decoded, json: bool) -> bool {
    let rec = &r.record;
    let value = rec.value.as_deref().unwrap_or_default();
    if json {
        println!("{}", json_line(r, &decoded));
    }
    match decoded {
        Decoded::Event { event: e, .. } => {
            if !json {
                println!(
                    "{}[{}]@{} {} ordered {} x {} = {:.2}{} at {} (event {})",
                    r.topic,
                    r.partition,
                    rec.offset,
                    e.customer_name,
                    e.quantity,
                    e.drink_name,
                    e.amount,
                    if e.is_member { " (member)" } else { "" },
                    e.ts_utc,
                    e.event_id
                );
            }
            true
        }
        Decoded::Skip(reason) => {
            let raw: String = String::from_utf8_lossy(value).chars().take(200).collect();
            eprintln!(
                "warning: {}[{}]@{} is not a cafe event ({reason}); skipped. raw value: {raw:?}",
                r.topic, r.partition, rec.offset
            );
            false
        }
    }
}

/// Prints the `--json` line of an assignment change (the generation goes with
/// an assignment); `owned` follows the member's whole assignment, which an
/// `assigned` line lists.
fn print_change(
    change: &ConsumerEvent,
    generation: Option<i32>,
    owned: &mut std::collections::BTreeSet<cafe_kafka::TopicPartition>,
) {
    let whole = match change {
        ConsumerEvent::Assigned(added) => {
            owned.extend(added.iter().cloned());
            ConsumerEvent::Assigned(owned.iter().cloned().collect())
        }
        ConsumerEvent::Revoked(revoked) => {
            revoked.iter().for_each(|tp| {
                owned.remove(tp);
            });
            change.clone()
        }
        other => other.clone(),
    };
    if let Some(line) = change_line(&whole, generation) {
        println!("{line}");
    }
}

/// `{"event": "assigned", "generation": 3, "partitions": [{"topic": "t", "partition": 0}, ...]}`
/// (the whole assignment after the change: with cooperative rebalancing, what
/// the member kept and what it got) or `{"event": "revoked", "partitions": [...]}`
/// (only what it gave up). Record lines have no `event` field: that is how a
/// reader tells the two apart.
fn change_line(change: &ConsumerEvent, generation: Option<i32>) -> Option<serde_json::Value> {
    use serde_json::json;
    let partitions = |tps: &[cafe_kafka::TopicPartition]| -> Vec<serde_json::Value> {
        tps.iter().map(|tp| json!({"topic": &*tp.topic, "partition": tp.partition})).collect()
    };
    match change {
        ConsumerEvent::Assigned(tps) => {
            Some(json!({"event": "assigned", "generation": generation, "partitions": partitions(tps)}))
        }
        ConsumerEvent::Revoked(tps) => Some(json!({"event": "revoked", "partitions": partitions(tps)})),
        _ => None,
    }
}

/// The `--json` line of a record. Bytes that are not UTF-8 are printed base64
/// with a sibling `<field>_encoding: "base64"`, so nothing is lost; a null key,
/// value (tombstone) or header value is JSON null, an empty one `""`.
fn json_line(r: &ConsumedRecord, decoded: &Decoded) -> serde_json::Value {
    use serde_json::{Map, Value, json};
    let rec = &r.record;
    let mut line = Map::new();
    line.insert("topic".into(), json!(&*r.topic));
    line.insert("partition".into(), json!(r.partition));
    line.insert("offset".into(), json!(rec.offset));
    line.insert("timestamp".into(), json!(rec.timestamp_ms));
    put_bytes(&mut line, "key", rec.key.as_deref());
    match decoded {
        Decoded::Event { event, schema_id } => {
            line.insert("value".into(), serde_json::to_value(event).unwrap_or(Value::Null));
            line.insert("valid".into(), json!(true));
            line.insert("schema_id".into(), json!(schema_id));
        }
        Decoded::Skip(_) => {
            put_bytes(&mut line, "value", rec.value.as_deref());
            line.insert("valid".into(), json!(false));
            line.insert("schema_id".into(), Value::Null);
        }
    }
    let headers: Vec<Value> = rec
        .headers
        .iter()
        .map(|h| {
            let mut o = Map::new();
            put_bytes(&mut o, "key", Some(&h.key));
            put_bytes(&mut o, "value", h.value.as_deref());
            Value::Object(o)
        })
        .collect();
    line.insert("headers".into(), Value::Array(headers));
    Value::Object(line)
}

fn put_bytes(o: &mut serde_json::Map<String, serde_json::Value>, field: &str, bytes: Option<&[u8]>) {
    let v = match bytes.map(std::str::from_utf8) {
        None => serde_json::Value::Null,
        Some(Ok(s)) => s.into(),
        Some(Err(_)) => {
            o.insert(format!("{field}_encoding"), "base64".into());
            base64(bytes.unwrap_or_default()).into()
        }
    };
    o.insert(field.to_owned(), v);
}

/// Standard base64 with padding (RFC 4648), for bytes that are not text.
fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_strategy_takes_one_name_or_a_java_style_list() {
        assert_eq!(parse_assignors("cooperative-sticky"), Ok(vec![Assignor::CooperativeSticky]));
        assert_eq!(
            parse_assignors("range, cooperative-sticky"),
            Ok(vec![Assignor::Range, Assignor::CooperativeSticky])
        );
        assert!(parse_assignors("sticky").unwrap_err().contains("unknown assignor `sticky`"));
        assert!(parse_assignors(",").is_err());
    }

    #[test]
    fn assigned_lines_list_the_whole_assignment_revoked_lines_what_went() {
        let mut owned = std::collections::BTreeSet::new();
        let t = |p| cafe_kafka::TopicPartition::new("t", p);
        print_change(&ConsumerEvent::Assigned(vec![t(0), t(1)]), Some(1), &mut owned);
        print_change(&ConsumerEvent::Revoked(vec![t(1)]), None, &mut owned);
        print_change(&ConsumerEvent::Assigned(vec![t(2)]), Some(2), &mut owned);
        assert_eq!(owned.into_iter().collect::<Vec<_>>(), vec![t(0), t(2)]);
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (plain, enc) in
            [("", ""), ("f", "Zg=="), ("fo", "Zm8="), ("foo", "Zm9v"), ("foob", "Zm9vYg=="), ("foobar", "Zm9vYmFy")]
        {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
        assert_eq!(base64(&[0xff, 0xfe]), "//4=");
    }

    #[test]
    fn change_lines_name_the_event_and_every_partition() {
        let tps = vec![cafe_kafka::TopicPartition::new("t", 0), cafe_kafka::TopicPartition::new("t", 2)];
        let assigned = change_line(&ConsumerEvent::Assigned(tps.clone()), Some(4)).expect("a line");
        assert_eq!(
            assigned.to_string(),
            r#"{"event":"assigned","generation":4,"partitions":[{"partition":0,"topic":"t"},{"partition":2,"topic":"t"}]}"#
        );
        let revoked = change_line(&ConsumerEvent::Revoked(tps), None).expect("a line");
        assert_eq!(
            revoked.to_string(),
            r#"{"event":"revoked","partitions":[{"partition":0,"topic":"t"},{"partition":2,"topic":"t"}]}"#
        );
        assert_eq!(change_line(&ConsumerEvent::Records(Vec::new()), None), None);
    }
}
