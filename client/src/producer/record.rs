//! What a user hands the producer ([`ProducerRecord`]) and what comes back for it
//! ([`Delivery`], [`RecordMetadata`]).

use std::sync::Arc;

use bytes::Bytes;

use super::accumulator::DeliveryError;

/// One record to send: Java's `ProducerRecord`. Only the topic is required; a record
/// without a partition is partitioned by key (Java's murmur2 by default), one
/// without a timestamp gets the time `send` was called.
///
/// ```
/// use cafe_kafka::ProducerRecord;
///
/// let r = ProducerRecord::new("orders", "{\"latte\":2}")
///     .with_key("alice")
///     .with_header("source", "till-3");
/// assert_eq!(r.key.as_deref(), Some(&b"alice"[..]));
/// assert_eq!(r.partition, None);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ProducerRecord {
    /// The topic. An `Arc` so that sending many records to one topic clones a
    /// pointer, not the name.
    pub topic: Arc<str>,
    /// The partition; `None` lets the partitioner choose from the key.
    pub partition: Option<i32>,
    /// The key; `None` spreads keyless records over the partitions.
    pub key: Option<Bytes>,
    /// The value; `None` is a tombstone (deletes the key in a compacted topic).
    pub value: Option<Bytes>,
    /// Creation time in milliseconds since the Unix epoch; `None` is "now".
    pub timestamp_ms: Option<i64>,
    /// Headers in order. kafka-protocol's encoder keeps them in a map, so a key given
    /// twice is written once, with its last value (Kafka itself allows repeats).
    pub headers: Vec<(String, Option<Bytes>)>,
}

impl ProducerRecord {
    /// A record of `value` for `topic`, with no key, partition, timestamp or headers.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        Self {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value.into()),
            timestamp_ms: None,
            headers: Vec::new(),
        }
    }

    /// A tombstone: `key` with a null value.
    pub fn tombstone(topic: impl Into<Arc<str>>, key: impl Into<Bytes>) -> Self {
        Self { value: None, ..Self::new(topic, Bytes::new()) }.with_key(key)
    }

    /// Sets the key.
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sends to this partition instead of the partitioner's choice.
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Sets the creation time (milliseconds since the Unix epoch).
    pub fn with_timestamp_ms(mut self, timestamp_ms: i64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// Adds a header.
    pub fn with_header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Size the record adds to a batch, close to its encoded size: counted against
    /// `batch.size`, `max.request.size` and `buffer.memory` as the Java client does.
    pub(crate) fn approx_size(&self) -> usize {
        // varint length/offset/timestamp deltas and attributes: at most ~21 bytes
        // and per header: varint key length, key, varint value length, value
        let headers: usize = self.headers.iter().map(|(k, v)| 10 + k.len() + v.as_ref().map_or(0, |v| v.len())).sum();
        21 + self.key.as_ref().map_or(0, |k| k.len()) + self.value.as_ref().map_or(0, |v| v.len()) + headers
    }
}

/// Where a record landed: Java's `RecordMetadata`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: i32,
    /// The offset; `None` when the broker does not say: with acks=0, or for a retry
    /// the broker recognised as already written (idempotence).
    pub offset: Option<i64>,
}

/// The final outcome of one record, as a delivery callback receives it: where it
/// went, and its offset or why it was not delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The topic it was sent to.
    pub topic: Arc<str>,
    /// Its partition; -1 for a record refused before partitioning (too large).
    pub partition: i32,
    /// Its offset (when known), or why it was not delivered.
    pub result: Result<Option<i64>, DeliveryError>,
}

impl Delivery {
    /// The outcome as a `Result`, for `?`.
    pub fn into_result(self) -> Result<RecordMetadata, DeliveryError> {
        let Delivery { topic, partition, result } = self;
        result.map(|offset| RecordMetadata { topic, partition, offset })
    }
}
