//! Producer settings, named and defaulted as in the Java client, validated before
//! any connection is opened.

use std::str::FromStr;
use std::time::Duration;

use crate::backoff::BackoffPolicy;
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

/// Producer settings, named and defaulted as in the Java client (except `acks`, see below).
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`; the cafe default is 1 (the seed's setting), not Java's `all`.
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
    /// `enable.idempotence`: producer id + sequence numbers, so retries never duplicate.
    pub enable_idempotence: bool,
    /// `retry.backoff.ms` / `retry.backoff.max.ms`.
    pub backoff: BackoffPolicy,
    /// `buffer.memory`: bytes of records accepted but not yet delivered, at most;
    /// `send` waits for room beyond it.
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` may wait for room in the buffer (or for the
    /// topic's metadata) before it gives up.
    pub max_block: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        Self {
            acks: Acks::Leader,
            partitioner: Partitioner::Murmur2,
            batch_size: 16_384,
            max_request_size: 1_048_576,
            compression: Compression::None,
            linger: Duration::from_millis(5),
            delivery_timeout: Duration::from_secs(120),
            request_timeout: Duration::from_secs(30),
            max_in_flight: 5,
            enable_idempotence: false,
            backoff: BackoffPolicy::default(),
            buffer_memory: 32 * 1024 * 1024,
            max_block: Duration::from_secs(60),
        }
    }
}

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
        if self.enable_idempotence && self.acks != Acks::All {
            return bad("enable.idempotence", "requires acks=all, as in the Java client");
        }
        if self.enable_idempotence && self.max_in_flight > 5 {
            return bad("enable.idempotence", "requires max.in.flight.requests.per.connection <= 5");
        }
        Ok(())
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
    fn acks_parse_like_kafka() {
        assert_eq!("all".parse::<Acks>().unwrap().wire_value(), -1);
        assert_eq!("1".parse::<Acks>().unwrap().wire_value(), 1);
        assert!("2".parse::<Acks>().is_err());
    }

    #[test]
    fn idempotence_needs_acks_all() {
        let c = ProducerConfig { enable_idempotence: true, ..Default::default() };
        assert_eq!(c.validate().unwrap_err().setting, "enable.idempotence");
        let c = ProducerConfig { enable_idempotence: true, acks: Acks::All, ..Default::default() };
        c.validate().unwrap();
    }

    #[test]
    fn every_kafka_codec_parses() {
        for c in ["none", "gzip", "snappy", "lz4", "zstd"] {
            assert_eq!(c.parse::<Compression>().unwrap().name(), c);
        }
        assert!("lzma".parse::<Compression>().is_err());
    }
}
