//! The fetch path, ours end to end (rskafka 0.6 speaks Fetch v4 only, needs C for
//! lz4/zstd and misreads control records): one Fetch in flight per broker covering
//! all of that broker's assigned partitions, KIP-227 fetch sessions, our own batch
//! decoder with all four codecs, and read_committed.
//!
//! - `decode`: record batches -> records (pure).
//! - `session`: the KIP-227 fetch session of one broker (pure).
//! - `state`: positions, leaders, which partitions to fetch from whom, and what
//!   each partition error means (pure, time passed in).
//! - `fetcher`: performs the state's actions over `wire` (the only I/O here).

// Internals, public only for the fuzz targets (feature `fuzzing`).
#[cfg(feature = "fuzzing")]
pub mod decode;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod decode;
pub(crate) mod fetcher;
pub(crate) mod session;
pub(crate) mod state;

use std::time::Duration;

use bytes::Bytes;

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark, aborted transactions included.
    ReadUncommitted,
    /// Up to the last stable offset, without aborted transactions. The default
    /// here, as in librdkafka (the Java client defaults to read_uncommitted).
    #[default]
    ReadCommitted,
}

impl IsolationLevel {
    /// The value of the Fetch and ListOffsets `isolation_level` field.
    pub fn wire_value(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

impl std::str::FromStr for IsolationLevel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read_committed" => Ok(Self::ReadCommitted),
            "read_uncommitted" => Ok(Self::ReadUncommitted),
            o => Err(format!("isolation.level must be read_committed or read_uncommitted, not `{o}`")),
        }
    }
}

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail when there is no committed offset (`none` in the Java client).
    Error,
}

impl std::str::FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            "error" | "none" => Ok(Self::Error),
            o => Err(format!("auto.offset.reset must be earliest, latest or error, not `{o}`")),
        }
    }
}

/// One record header. Kafka allows the same key twice and a null value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key's bytes (UTF-8 when a Java client wrote it).
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// A record as fetched: zero-copy slices of the (decompressed) batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub offset: i64,
    pub timestamp_ms: i64,
    pub key: Option<Bytes>,
    /// `None` is a tombstone (null value); an empty value is `Some` of no bytes.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Fetch settings with the Java consumer's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchConfig {
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
    /// `fetch.max.wait.ms`.
    pub max_wait: Duration,
    /// `fetch.max.bytes`: per Fetch response (so per broker and round).
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub max_partition_bytes: i32,
    /// `isolation.level`.
    pub isolation: IsolationLevel,
    /// `check.crcs`: verify each batch's CRC-32C.
    pub check_crcs: bool,
    /// `auto.offset.reset`.
    pub reset: OffsetReset,
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            min_bytes: 1,
            max_wait: Duration::from_millis(500),
            max_bytes: 52_428_800,
            max_partition_bytes: 1_048_576,
            isolation: IsolationLevel::ReadCommitted,
            check_crcs: true,
            reset: OffsetReset::Earliest,
        }
    }
}

impl FetchConfig {
    /// Rejects settings the broker would refuse or that cannot make progress.
    pub fn validate(&self) -> Result<(), String> {
        if self.min_bytes < 0 {
            return Err("fetch.min.bytes must be 0 or more".into());
        }
        if self.max_bytes <= 0 || self.max_partition_bytes <= 0 {
            return Err("fetch.max.bytes and max.partition.fetch.bytes must be positive".into());
        }
        if self.max_wait > Duration::from_millis(i32::MAX as u64) {
            return Err("fetch.max.wait.ms is too large".into());
        }
        Ok(())
    }
}
