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

/// `isolation.level`: whether a consumer sees records of aborted transactions.
///
/// Parses from the Java client's values:
///
/// ```
/// use cafe_kafka::{IsolationLevel, OffsetReset};
///
/// assert_eq!("read_uncommitted".parse(), Ok(IsolationLevel::ReadUncommitted));
/// assert_eq!(IsolationLevel::default(), IsolationLevel::ReadCommitted);
/// assert!("committed".parse::<IsolationLevel>().is_err());
///
/// // `none` is the Java client's spelling of `error`.
/// assert_eq!("none".parse(), Ok(OffsetReset::Error));
/// assert_eq!("earliest".parse(), Ok(OffsetReset::Earliest));
/// ```
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

/// As the Java client spells it.
impl std::fmt::Display for IsolationLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ReadCommitted => "read_committed",
            Self::ReadUncommitted => "read_uncommitted",
        })
    }
}

/// `auto.offset.reset`: where a partition starts when the group has no committed
/// offset for it, or the committed one is out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    /// The log start offset (the oldest record still kept). The default in
    /// [`FetchConfig`].
    Earliest,
    /// The end of the log: only records written from now on.
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

/// As the Java client spells it: [`OffsetReset::Error`] is `none`.
impl std::fmt::Display for OffsetReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Earliest => "earliest",
            Self::Latest => "latest",
            Self::Error => "none",
        })
    }
}

/// One record header. Kafka allows the same key twice and a null value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The key's bytes (UTF-8 when a Java client wrote it).
    pub key: Bytes,
    /// The value's bytes; `None` for a null value.
    pub value: Option<Bytes>,
}

/// A record as fetched: zero-copy slices of the (decompressed) batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: i64,
    /// Milliseconds since the Unix epoch: the producer's create time, or the
    /// broker's append time on topics with `message.timestamp.type=LogAppendTime`.
    pub timestamp_ms: i64,
    /// `None` for a record without a key.
    pub key: Option<Bytes>,
    /// `None` is a tombstone (null value); an empty value is `Some` of no bytes.
    pub value: Option<Bytes>,
    /// The headers in the order the producer wrote them.
    pub headers: Vec<Header>,
}

/// Fetch settings with the Java consumer's names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchConfig {
    /// `fetch.min.bytes`: the broker waits until this many bytes are ready (or
    /// `max_wait` passed) before answering. Default 1.
    pub min_bytes: i32,
    /// `fetch.max.wait.ms`: the longest the broker holds a Fetch open waiting for
    /// `min_bytes`. Default 500 ms.
    pub max_wait: Duration,
    /// `fetch.max.bytes`: per Fetch response (so per broker and round), in bytes.
    /// Not a hard limit: a first batch larger than this is still returned.
    /// Default 52428800 (50 MiB).
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`: per partition in one response, in bytes, with
    /// the same first-batch exception. Default 1048576 (1 MiB).
    pub max_partition_bytes: i32,
    /// `isolation.level`. Default `read_committed`.
    pub isolation: IsolationLevel,
    /// `check.crcs`: verify each batch's CRC-32C. Default true.
    pub check_crcs: bool,
    /// `auto.offset.reset`. Default `earliest` (the Java client's is `latest`).
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
    /// Rejects settings the broker would refuse or that cannot make progress:
    /// a negative `fetch.min.bytes`, a non-positive `fetch.max.bytes` or
    /// `max.partition.fetch.bytes`, a `fetch.max.wait.ms` beyond `i32::MAX` ms.
    /// The error names the setting.
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
