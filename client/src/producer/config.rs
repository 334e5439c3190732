//! Producer settings, named and defaulted as in the Java client, validated before
//! any connection is opened; `SETTINGS` maps their Kafka names to the fields.

use std::str::FromStr;
use std::time::Duration;

use crate::backoff::BackoffPolicy;
use crate::config::value::{BOOL, Choice, INT_AT_LEAST_0, INT_AT_LEAST_1, LONG_AT_LEAST_0, MS_INT, MS_LONG, TEXT};
use crate::config::{Role, Setting, role_config, setting};
use crate::partitioner::Partitioner;

/// `acks`: how many replicas must have the record before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker does not answer; offsets are unknown.
    None,
    /// `acks=1`: the partition leader has written it.
    Leader,
    /// `acks=all` (-1): every in-sync replica has it.
    All,
}

impl Acks {
    /// The value of the Produce request's `acks` field (0, 1 or -1).
    pub fn wire_value(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

impl FromStr for Acks {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "0" => Ok(Acks::None),
            "1" => Ok(Acks::Leader),
            "all" | "-1" => Ok(Acks::All),
            other => Err(format!("acks must be 0, 1 or all, not `{other}`")),
        }
    }
}

impl std::fmt::Display for Acks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        })
    }
}

/// `compression.type`: all four Kafka codecs, in pure Rust (see [`crate::compression`]).
pub use crate::compression::Codec as Compression;

/// Producer settings, named and defaulted as in the Java client, except
/// `enable.idempotence` (on, as in Java since 3.0: unless set, it is on when `acks=all`
/// and `max.in.flight.requests.per.connection` <= 5, and quietly off otherwise, as
/// Java 3.2+ decides).
/// Each can also be set by its Kafka name ([`set`](Self::set)) or from a
/// properties file ([`from_properties`](Self::from_properties)).
///
/// ```
/// use cafe_kafka::{Acks, ProducerConfig};
///
/// let mut config = ProducerConfig::default();
/// config.set("acks", "1")?;
/// config.set("linger.ms", "20")?;
/// config.set("compression.type", "zstd")?;
/// assert_eq!(config.acks, Acks::Leader);
/// assert_eq!(config.linger.as_millis(), 20);
/// assert!(config.set("acks", "2").is_err());
/// # Ok::<(), cafe_kafka::config::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks` (all, as in Java).
    pub acks: Acks,
    /// `partitioner.class`: murmur2 (Java's) or crc32 (librdkafka's `consistent_random`).
    pub partitioner: Partitioner,
    /// `batch.size` in bytes per partition batch.
    pub batch_size: usize,
    /// `max.request.size`: the largest request, and so the largest record, we send.
    pub max_request_size: usize,
    /// `compression.type`.
    pub compression: Compression,
    /// `linger.ms`: how long a batch may wait for more records before it is sent.
    pub linger: Duration,
    /// `delivery.timeout.ms`: give up on a record this long after it was batched.
    pub delivery_timeout: Duration,
    /// `request.timeout.ms`: how long the broker may take to answer one request.
    pub request_timeout: Duration,
    /// `max.in.flight.requests.per.connection`.
    pub max_in_flight: usize,
    /// `enable.idempotence`: producer id + sequence numbers, so retries never
    /// duplicate and order holds with several batches in flight. `None` (the
    /// default) is on unless other settings conflict; see [`idempotent`](Self::idempotent).
    pub enable_idempotence: Option<bool>,
    /// `retry.backoff.ms` / `retry.backoff.max.ms`.
    pub backoff: BackoffPolicy,
    /// `buffer.memory`: bytes of records accepted but not yet delivered, at most;
    /// `send` waits for room beyond it.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for room in the buffer (or for the
    /// topic's metadata) before it gives up.
    pub max_block: Duration,
    /// `transactional.id`: makes the producer transactional ([`Producer::init_transactions`](crate::Producer::init_transactions));
    /// none by default.
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms`: how long the coordinator lets a transaction stay
    /// open before it aborts it. Default 60 s.
    pub transaction_timeout: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::All,
            partitioner: Partitioner::Murmur2,
            batch_size: 16_384,
            max_request_size: 1_048_576,
            compression: Compression::None,
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            enable_idempotence: None,
            backoff: BackoffPolicy::default(),
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
        }
    }
}

/// The producer's settings by Kafka name; `request.timeout.ms` is the
/// connection's too ([`ClientConfig`](crate::ClientConfig)).
pub(crate) static SETTINGS: &[Setting<ProducerConfig>] = &[
    setting!("acks" => acks: Choice("0, 1, all or -1")),
    setting!("partitioner.class" => partitioner: Choice("murmur2 (Java's) or crc32 (librdkafka's consistent_random)")),
    setting!("batch.size" => batch_size: INT_AT_LEAST_0),
    setting!("max.request.size" => max_request_size: INT_AT_LEAST_0),
    setting!("compression.type" => compression: Choice("none, gzip, snappy, lz4 or zstd")),
    setting!("linger.ms" => linger: MS_LONG),
    setting!("delivery.timeout.ms" => delivery_timeout: MS_INT),
    setting!("request.timeout.ms" => request_timeout: MS_INT),
    setting!("max.in.flight.requests.per.connection" => max_in_flight: INT_AT_LEAST_1),
    setting!("enable.idempotence" => enable_idempotence: BOOL),
    setting!("retry.backoff.ms" => backoff.initial: MS_LONG),
    setting!("retry.backoff.max.ms" => backoff.max: MS_LONG),
    setting!("buffer.memory" => buffer_memory: LONG_AT_LEAST_0),
    setting!("max.block.ms" => max_block: MS_LONG),
    setting!("transactional.id" => transactional_id: TEXT),
    setting!("transaction.timeout.ms" => transaction_timeout: MS_INT),
];

role_config!(ProducerConfig, Role::Producer, SETTINGS);

/// A setting that makes no sense, caught before connecting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid producer setting {setting}: {reason}")]
pub struct ConfigError {
    /// The Kafka name of the setting.
    pub setting: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

impl ProducerConfig {
    /// Rejects settings that make no sense together, before any connection is opened.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |setting, reason: &str| Err(ConfigError { setting, reason: reason.into() });
        if self.batch_size == 0 {
            return bad("batch.size", "must be at least 1 byte");
        }
        if self.max_request_size < 1024 {
            return bad("max.request.size", "must be at least 1024 bytes");
        }
        if self.buffer_memory == 0 {
            return bad("buffer.memory", "must be at least 1 byte");
        }
        if self.max_in_flight == 0 {
            return bad("max.in.flight.requests.per.connection", "must be at least 1");
        }
        if self.request_timeout.is_zero() || self.delivery_timeout < self.request_timeout {
            return bad("delivery.timeout.ms", "must be at least request.timeout.ms (and non-zero)");
        }
        if self.enable_idempotence == Some(true) && self.acks != Acks::All {
            return bad("enable.idempotence", "requires acks=all, as in the Java client");
        }
        if self.enable_idempotence == Some(true) && self.max_in_flight > 5 {
            return bad("enable.idempotence", "requires max.in.flight.requests.per.connection <= 5");
        }
        if self.transactional_id.is_some() && !self.idempotent() {
            return bad(
                "transactional.id",
                "requires idempotence (acks=all, max.in.flight.requests.per.connection <= 5, enable.idempotence not false)",
            );
        }
        Ok(())
    }

    /// Whether the producer is idempotent: `enable.idempotence` when set, else on
    /// exactly when nothing conflicts (`acks=all`, at most 5 requests in flight), as
    /// the Java client decides when the user did not set it.
    pub fn idempotent(&self) -> bool {
        self.enable_idempotence.unwrap_or(self.acks == Acks::All && self.max_in_flight <= 5)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        ProducerConfig::default().validate().unwrap();
    }

    #[test]
    fn idempotence_is_on_by_default_unless_a_setting_conflicts() {
        assert!(ProducerConfig::default().idempotent());
        let leader_acks = ProducerConfig { acks: Acks::Leader, ..Default::default() };
        assert!(!leader_acks.idempotent(), "not asked for, so quietly off with acks=1");
        leader_acks.validate().unwrap();
        let many = ProducerConfig { max_in_flight: 6, ..Default::default() };
        assert!(!many.idempotent());
        let off = ProducerConfig { enable_idempotence: Some(false), ..Default::default() };
        assert!(!off.idempotent());
    }

    #[test]
    fn acks_parse_like_kafka() {
        assert_eq!("all".parse::<Acks>().unwrap().wire_value(), -1);
        assert_eq!("1".parse::<Acks>().unwrap().wire_value(), 1);
        assert!("2".parse::<Acks>().is_err());
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let c = ProducerConfig { enable_idempotence: Some(true), acks: Acks::Leader, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().setting, "enable.idempotence");
        let c = ProducerConfig { enable_idempotence: Some(true), acks: Acks::All, ..Default::default() };
        c.validate().unwrap();
    }

    #[test]
    fn every_key_sets_its_field() {
        type Check = fn(&ProducerConfig) -> bool;
        let cases: &[(&str, &str, Check)] = &[
            ("acks", "0", |c| c.acks == Acks::None),
            ("partitioner.class", "CRC32", |c| c.partitioner == Partitioner::Crc32),
            ("batch.size", "1000", |c| c.batch_size == 1000),
            ("max.request.size", "2048", |c| c.max_request_size == 2048),
            ("compression.type", "lz4", |c| c.compression == Compression::Lz4),
            ("linger.ms", "0", |c| c.linger.is_zero()),
            ("delivery.timeout.ms", "60000", |c| c.delivery_timeout == Duration::from_secs(60)),
            ("request.timeout.ms", "15000", |c| c.request_timeout == Duration::from_secs(15)),
            ("max.in.flight.requests.per.connection", "1", |c| c.max_in_flight == 1),
            ("enable.idempotence", "true", |c| c.enable_idempotence == Some(true)),
            ("retry.backoff.ms", "250", |c| c.backoff.initial == Duration::from_millis(250)),
            ("retry.backoff.max.ms", "5000", |c| c.backoff.max == Duration::from_secs(5)),
            ("buffer.memory", "1048576", |c| c.buffer_memory == 1 << 20),
            ("max.block.ms", "10", |c| c.max_block == Duration::from_millis(10)),
            ("transactional.id", "orders-1", |c| c.transactional_id.as_deref() == Some("orders-1")),
            ("transaction.timeout.ms", "30000", |c| c.transaction_timeout == Duration::from_secs(30)),
        ];
        let tested: Vec<&str> = cases.iter().map(|(k, _, _)| *k).collect();
        assert_eq!(tested, Role::Producer.keys(), "one case per key of the table, in its order");
        for (key, value, check) in cases {
            let mut c = ProducerConfig::default();
            assert!(!check(&c), "{key}={value} is the default already: pick another value");
            c.set(key, value).unwrap_or_else(|e| panic!("{key}: {e}"));
            assert!(check(&c), "{key}={value} gave {c:?}");
        }
    }

    #[test]
    fn invalid_values_name_the_key_the_value_and_what_is_accepted() {
        let mut c = ProducerConfig::default();
        let cases = [
            ("acks", "2", "0, 1, all or -1"),
            ("compression.type", "lzma", "none, gzip, snappy, lz4 or zstd"),
            ("enable.idempotence", "yes", "true or false"),
            ("linger.ms", "-5", "a whole number of milliseconds from 0 to 9223372036854775807"),
            ("batch.size", "16k", "a whole number from 0 to 2147483647"),
            ("max.in.flight.requests.per.connection", "0", "a whole number from 1 to 2147483647"),
        ];
        for (key, value, expected) in cases {
            let e = c.set(key, value).unwrap_err();
            assert_eq!(e.to_string(), format!("invalid value `{value}` for `{key}`: expected {expected}"));
        }
        // A refused value leaves the field as it was.
        assert_eq!(c.acks, Acks::All);
    }

    #[test]
    fn java_defaults() {
        let c = ProducerConfig::default();
        let get = |k| c.get(k).unwrap();
        assert_eq!((get("acks"), get("batch.size"), get("linger.ms")), ("all".into(), "16384".into(), "5".into()));
        assert_eq!((get("buffer.memory"), get("max.block.ms")), ("33554432".into(), "60000".into()));
        assert_eq!(c.get("group.id"), None);
    }

    #[test]
    fn every_kafka_codec_parses() {
        for c in ["none", "gzip", "snappy", "lz4", "zstd"] {
            assert_eq!(c.parse::<Compression>().unwrap().name(), c);
        }
        assert!("lzma".parse::<Compression>().is_err());
    }
}
