//! Record batches, pure: records grouped per partition, sealed into the v2 record
//! batch bytes the broker stores, and remembered by input index so every record
//! gets its own delivery report.

use std::sync::Arc;
use std::time::Instant;

use super::encode;
use super::record::ProducerRecord;
use crate::compression::Codec;
use bytes::Bytes;
#[cfg(test)]
use bytes::BytesMut;

/// A record inside the producer: the user's [`ProducerRecord`] fields the batch
/// needs, its timestamp settled, and the id its delivery report is matched by.
#[derive(Debug, Clone)]
pub(crate) struct OutRecord {
    pub id: u64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub timestamp_ms: i64,
    pub headers: Vec<(String, Option<Bytes>)>,
    /// [`ProducerRecord::approx_size`], computed once.
    pub size: usize,
}

impl OutRecord {
    /// Record `id` from `r`, with its topic and partition apart; a record without a
    /// timestamp gets `now_ms()` (the clock is read only then).
    pub fn new(id: u64, r: ProducerRecord, now_ms: impl FnOnce() -> i64) -> (Arc<str>, Option<i32>, Self) {
        let size = r.approx_size();
        let ProducerRecord { topic, partition, key, value, timestamp_ms, headers } = r;
        let timestamp_ms = timestamp_ms.unwrap_or_else(now_ms);
        (topic, partition, Self { id, key, value, timestamp_ms, headers, size })
    }

    /// Size the record adds to a batch, close to its encoded size.
    pub fn approx_size(&self) -> usize {
        self.size
    }
}

/// Producer id, epoch and the batch's first sequence number, for idempotent produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Idempotence {
    /// From InitProducerId.
    pub producer_id: i64,
    /// From InitProducerId; bumped by the broker when the producer is fenced.
    pub producer_epoch: i16,
    /// Sequence number of the batch's first record in its partition.
    pub base_sequence: i32,
}

/// Records gathered for one partition, not yet encoded.
#[derive(Debug)]
pub struct OpenBatch {
    pub topic: Arc<str>,
    pub partition: i32,
    records: Vec<OutRecord>,
    size: usize,
    created: Instant,
}

impl OpenBatch {
    pub fn new(topic: Arc<str>, partition: i32, now: Instant) -> Self {
        Self { topic, partition, records: Vec::new(), size: super::accumulator::BATCH_OVERHEAD, created: now }
    }

    /// Room for about a batch of records like the first (at most 4096): growing the
    /// list by doubling copied every record several times over.
    pub fn reserve_for(&mut self, batch_size: usize, record_size: usize) {
        self.records.reserve((batch_size / record_size.max(1)).clamp(1, 4096));
    }

    pub fn push(&mut self, r: OutRecord) {
        self.size += r.approx_size();
        self.records.push(r);
    }

    pub fn created(&self) -> Instant {
        self.created
    }

    pub fn size(&self) -> usize {
        self.size
    }

    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Encodes the batch (its records are dropped here, in the task that made them,
    /// once they are bytes). Fails only if the codec does (not expected), reported
    /// per record by the caller.
    pub fn seal(
        self,
        compression: Codec,
        idem: Option<Idempotence>,
        transactional: bool,
    ) -> Result<SealedBatch, (Vec<u64>, String)> {
        let ids: Vec<u64> = self.records.iter().map(|r| r.id).collect();
        match encode::encode(&self.records, self.size, compression, idem, transactional) {
            Ok(bytes) => Ok(SealedBatch {
                topic: self.topic,
                partition: self.partition,
                ids,
                bytes,
                created: self.created,
                attempts: 0,
                idem,
            }),
            Err(e) => Err((ids, format!("encoding the record batch failed: {e}"))),
        }
    }
}

/// Encodes v2 record batches of kafka-protocol `Record`s (control and transactional
/// batches too) with this crate's codecs: test input for the fetch path.
#[cfg(test)]
pub(crate) fn encode_batch(
    buf: &mut BytesMut,
    records: &[kafka_protocol::records::Record],
    compression: Codec,
) -> anyhow::Result<()> {
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions};
    let compress = |raw: &mut BytesMut, out: &mut BytesMut, _: kafka_protocol::records::Compression| {
        if compression == Codec::None {
            out.extend_from_slice(raw);
        } else {
            out.extend_from_slice(&crate::compression::compress(compression, raw)?);
        }
        Ok(())
    };
    let options = RecordEncodeOptions { version: 2, compression: compression.to_records() };
    RecordBatchEncoder::encode_with_custom_compression(buf, records, &options, Some(compress))
}

/// An encoded batch, ready to send and to resend unchanged on a retriable error
/// (with idempotence the unchanged sequence numbers let the broker drop duplicates).
#[derive(Debug, Clone)]
pub struct SealedBatch {
    pub topic: Arc<str>,
    pub partition: i32,
    /// The records' ids, in offset order.
    pub ids: Vec<u64>,
    pub bytes: Bytes,
    pub created: Instant,
    pub attempts: u32,
    /// Producer id, epoch and base sequence the bytes carry (idempotence only).
    pub idem: Option<Idempotence>,
}

impl SealedBatch {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// The same records under new idempotence fields (only the batch header
    /// changes); keeps age and attempt count so `delivery.timeout.ms` still counts
    /// from the first time they were batched. Only for batches the broker did not
    /// write (never sent, or refused with OUT_OF_ORDER_SEQUENCE_NUMBER): anything
    /// else would be written twice.
    pub fn reseal(self, idem: Idempotence) -> SealedBatch {
        SealedBatch { bytes: encode::with_producer_state(&self.bytes, idem), idem: Some(idem), ..self }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::RecordBatchDecoder;

    fn record(key: &str, value: &str) -> ProducerRecord {
        ProducerRecord::new("t", value.to_owned()).with_key(key.to_owned())
    }

    fn rec(id: u64, key: &str, value: &str) -> OutRecord {
        OutRecord::new(id, record(key, value), || 1_700_000_000_000 + id as i64).2
    }

    #[test]
    fn sealed_batch_decodes_to_the_same_records() {
        let mut b = OpenBatch::new("t".into(), 2, Instant::now());
        b.push(rec(7, "ana", "{\"a\":1}"));
        b.push(rec(8, "bo", "{\"a\":2}"));
        let sealed = b.seal(Codec::None, None, false).unwrap();
        let infos = RecordBatchDecoder::decode_batch_info(&mut sealed.bytes.clone()).unwrap();
        assert_eq!(infos.len(), 1, "one batch, not one per record");
        assert_eq!(infos[0].base_sequence, -1);
        assert_eq!(sealed.ids, vec![7, 8]);
        let mut bytes = sealed.bytes.clone();
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records.len(), 2);
        assert_eq!(set.records[1].key.as_deref(), Some(&b"bo"[..]));
        assert_eq!(set.records[1].value.as_deref(), Some(&b"{\"a\":2}"[..]));
        assert_eq!(set.records[0].timestamp, 1_700_000_000_007);
        assert_eq!(set.records[0].producer_id, -1);
    }

    #[test]
    fn idempotent_batch_carries_sequences() {
        let mut b = OpenBatch::new("t".into(), 0, Instant::now());
        b.push(rec(0, "k", "v"));
        b.push(rec(1, "k", "v"));
        let idem = Idempotence { producer_id: 42, producer_epoch: 3, base_sequence: 10 };
        let mut bytes = b.seal(Codec::Gzip, Some(idem), false).unwrap().bytes;
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        assert_eq!(set.records[0].producer_id, 42);
        assert_eq!(set.records[0].producer_epoch, 3);
        assert_eq!(set.records[1].sequence, 11);
    }

    #[test]
    fn reseal_keeps_records_and_age_with_new_sequences() {
        let mut b = OpenBatch::new("t".into(), 1, Instant::now());
        b.push(rec(0, "k", "v0"));
        b.push(rec(1, "k", "v1"));
        let old = Idempotence { producer_id: 1, producer_epoch: 0, base_sequence: 7 };
        let mut sealed = b.seal(Codec::None, Some(old), false).unwrap();
        sealed.attempts = 3;
        let created = sealed.created;
        let new = Idempotence { producer_id: 2, producer_epoch: 0, base_sequence: 0 };
        let again = sealed.reseal(new);
        assert_eq!((again.attempts, again.created, again.idem), (3, created, Some(new)));
        assert_eq!(again.ids, vec![0, 1]);
        let set = RecordBatchDecoder::decode(&mut again.bytes.clone()).unwrap();
        assert_eq!(set.records[0].producer_id, 2);
        assert_eq!(set.records[1].sequence, 1);
        assert_eq!(set.records[1].value.as_deref(), Some(&b"v1"[..]));
    }

    #[test]
    fn headers_are_encoded_in_order() {
        let mut b = OpenBatch::new("t".into(), 0, Instant::now());
        let mut r = record("k", "v").with_header("trace", "abc");
        r.headers.push(("empty".into(), None));
        b.push(OutRecord::new(0, r, || 0).2);
        let mut bytes = b.seal(Codec::None, None, false).unwrap().bytes;
        let set = RecordBatchDecoder::decode(&mut bytes).unwrap();
        let headers: Vec<(&str, Option<&[u8]>)> =
            set.records[0].headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        assert_eq!(headers, vec![("trace", Some(&b"abc"[..])), ("empty", None)]);
    }

    #[test]
    fn a_tombstone_has_a_null_value_and_its_own_timestamp_wins() {
        let mut b = OpenBatch::new("t".into(), 0, Instant::now());
        b.push(OutRecord::new(0, ProducerRecord::tombstone("t", "gone").with_timestamp_ms(5), || 99).2);
        let set = RecordBatchDecoder::decode(&mut b.seal(Codec::None, None, false).unwrap().bytes).unwrap();
        assert_eq!(set.records[0].key.as_deref(), Some(&b"gone"[..]));
        assert_eq!(set.records[0].value, None, "a tombstone, not an empty value");
        assert_eq!(set.records[0].timestamp, 5);
    }

    #[test]
    fn size_grows_with_records() {
        let mut b = OpenBatch::new("t".into(), 0, Instant::now());
        let empty = b.size();
        b.push(rec(0, "key", "0123456789"));
        assert_eq!(b.size(), empty + 21 + 3 + 10);
    }
}
