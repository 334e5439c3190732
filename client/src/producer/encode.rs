//! The v2 record batch (magic 2) as the producer writes it, pure: records straight
//! from [`OutRecord`] into the bytes the broker stores, and the producer state in a
//! sealed batch's header rewritten in place.
//!
//! Our own writer rather than kafka-protocol's `RecordBatchEncoder`: that one wants
//! its own `Record` per record (an `IndexMap` of headers, clones of key and value)
//! and a second pass to size it, which cost more CPU than the rest of `send`; and a
//! batch moved to a new producer id (idempotence) needs only its header rewritten,
//! as the Java client's `ProducerBatch::resetProducerState` does, so the records
//! need not be kept once encoded. The layout is Kafka's `DefaultRecordBatch`.

use bytes::{BufMut, Bytes, BytesMut};

use super::batch::{Idempotence, OutRecord};
use crate::compression::{self, Codec, CodecError};

/// Bytes before the records: base offset .. record count (the accumulator counts
/// them as `BATCH_OVERHEAD`).
pub(crate) const HEADER_LEN: usize = 61;
/// Base offset and batch length: not counted in the batch length.
const LOG_OVERHEAD: usize = 12;
const MAGIC: u8 = 2;
const CRC_AT: usize = 17;
/// The CRC covers attributes to the end.
const ATTRIBUTES_AT: usize = 21;
const PRODUCER_ID_AT: usize = 43;
const PRODUCER_EPOCH_AT: usize = 51;
const BASE_SEQUENCE_AT: usize = 53;
const NO_PRODUCER_ID: i64 = -1;
const NO_PRODUCER_EPOCH: i16 = -1;
const NO_SEQUENCE: i32 = -1;
const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Attribute bit 4: the batch belongs to a transaction.
const ATTR_TRANSACTIONAL: i16 = 1 << 4;

/// Encodes `records` as one batch: offsets 0.., create-time timestamps, compressed
/// with `codec`, under `idem`'s producer id and sequences (none without), marked
/// `transactional` (part of the producer's open transaction) or not. `size` is about
/// the uncompressed size (the buffer's first capacity). Fails only if the codec does.
pub(crate) fn encode(
    records: &[OutRecord],
    size: usize,
    codec: Codec,
    idem: Option<Idempotence>,
    transactional: bool,
) -> Result<Bytes, CodecError> {
    let base_timestamp = records.iter().map(|r| r.timestamp_ms).min().unwrap_or(0);
    let max_timestamp = records.iter().map(|r| r.timestamp_ms).max().unwrap_or(0);
    let mut buf = BytesMut::with_capacity(HEADER_LEN.max(size));
    buf.put_i64(0); // base offset: the broker assigns offsets
    buf.put_i32(0); // batch length, set below
    buf.put_i32(NO_PARTITION_LEADER_EPOCH);
    buf.put_u8(MAGIC);
    buf.put_u32(0); // CRC, set below
    buf.put_i16(codec_attribute(codec) | if transactional { ATTR_TRANSACTIONAL } else { 0 });
    buf.put_i32(records.len().saturating_sub(1) as i32); // last offset delta
    buf.put_i64(base_timestamp);
    buf.put_i64(max_timestamp);
    let (pid, epoch, seq) = match idem {
        Some(i) => (i.producer_id, i.producer_epoch, i.base_sequence),
        None => (NO_PRODUCER_ID, NO_PRODUCER_EPOCH, NO_SEQUENCE),
    };
    buf.put_i64(pid);
    buf.put_i16(epoch);
    buf.put_i32(seq);
    buf.put_i32(records.len() as i32);
    debug_assert_eq!(buf.len(), HEADER_LEN);
    if codec == Codec::None {
        write_records(&mut buf, records, base_timestamp);
    } else {
        let mut raw = BytesMut::with_capacity(size);
        write_records(&mut raw, records, base_timestamp);
        buf.extend_from_slice(&compression::compress(codec, &raw)?);
    }
    finish(&mut buf);
    Ok(buf.freeze())
}

/// `batch` (from [`encode`]) under other producer state: the same records, offsets
/// and timestamps, a new producer id, epoch and base sequence, and the CRC again.
pub(crate) fn with_producer_state(batch: &[u8], idem: Idempotence) -> Bytes {
    let mut buf = BytesMut::from(batch);
    buf[PRODUCER_ID_AT..PRODUCER_ID_AT + 8].copy_from_slice(&idem.producer_id.to_be_bytes());
    buf[PRODUCER_EPOCH_AT..PRODUCER_EPOCH_AT + 2].copy_from_slice(&idem.producer_epoch.to_be_bytes());
    buf[BASE_SEQUENCE_AT..BASE_SEQUENCE_AT + 4].copy_from_slice(&idem.base_sequence.to_be_bytes());
    finish(&mut buf);
    buf.freeze()
}

/// Fills in the batch length and the CRC-32C of attributes .. end.
fn finish(buf: &mut BytesMut) {
    let len = (buf.len() - LOG_OVERHEAD) as i32;
    buf[8..12].copy_from_slice(&len.to_be_bytes());
    let crc = crc32c::crc32c(&buf[ATTRIBUTES_AT..]);
    buf[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}

fn codec_attribute(codec: Codec) -> i16 {
    match codec {
        Codec::None => 0,
        Codec::Gzip => 1,
        Codec::Snappy => 2,
        Codec::Lz4 => 3,
        Codec::Zstd => 4,
    }
}

fn write_records(buf: &mut BytesMut, records: &[OutRecord], base_timestamp: i64) {
    for (i, r) in records.iter().enumerate() {
        let timestamp_delta = r.timestamp_ms - base_timestamp;
        put_varint(buf, body_len(r, i, timestamp_delta) as i64);
        buf.put_u8(0); // record attributes: unused
        put_varint(buf, timestamp_delta);
        put_varint(buf, i as i64);
        put_bytes(buf, r.key.as_deref());
        put_bytes(buf, r.value.as_deref());
        put_varint(buf, r.headers.len() as i64);
        for (k, v) in &r.headers {
            put_bytes(buf, Some(k.as_bytes()));
            put_bytes(buf, v.as_deref());
        }
    }
}

/// Bytes after the length prefix.
fn body_len(r: &OutRecord, i: usize, timestamp_delta: i64) -> usize {
    let headers: usize = r.headers.iter().map(|(k, v)| bytes_len(Some(k.as_bytes())) + bytes_len(v.as_deref())).sum();
    1 + varint_len(timestamp_delta)
        + varint_len(i as i64)
        + bytes_len(r.key.as_deref())
        + bytes_len(r.value.as_deref())
        + varint_len(r.headers.len() as i64)
        + headers
}

/// Kafka's nullable bytes in a record: zig-zag varint length (-1 for null), then the bytes.
fn put_bytes(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i64);
            buf.put_slice(b);
        }
    }
}

fn bytes_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len(b.len() as i64) + b.len(),
    }
}

/// A zig-zag varint (Kafka's varint and varlong are the same encoding, of 32 and 64 bits).
fn put_varint(buf: &mut BytesMut, n: i64) {
    let mut v = zigzag(n);
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn varint_len(n: i64) -> usize {
    let bits = 64 - (zigzag(n) | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn zigzag(n: i64) -> u64 {
    ((n << 1) ^ (n >> 63)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::IsolationLevel;
    use crate::fetch::decode::{DecodeOptions, decode};
    use crate::producer::ProducerRecord;
    use indexmap::IndexMap;
    use kafka_protocol::protocol::StrBytes;
    use kafka_protocol::records::{Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn records() -> Vec<OutRecord> {
        let big = "x".repeat(300); // lengths past one varint byte
        let mut rs = vec![
            ProducerRecord::new("t", "{\"a\":1}").with_key("ana").with_timestamp_ms(1_700_000_000_050),
            ProducerRecord::new("t", big).with_timestamp_ms(1_700_000_000_000),
            ProducerRecord::tombstone("t", "gone").with_timestamp_ms(1_700_000_000_100),
            ProducerRecord::new("t", "").with_header("trace", "abc").with_timestamp_ms(1_700_000_000_020),
        ];
        rs[3].headers.push(("empty".into(), None));
        rs.into_iter().enumerate().map(|(i, r)| OutRecord::new(i as u64, r, || unreachable!()).2).collect()
    }

    /// The same records as kafka-protocol's `Record`s, for its encoder.
    fn as_kafka_protocol(rs: &[OutRecord], idem: Option<Idempotence>) -> Vec<Record> {
        let (pid, epoch, seq) = idem.map_or((-1, -1, -1), |i| (i.producer_id, i.producer_epoch, i.base_sequence));
        rs.iter()
            .enumerate()
            .map(|(i, r)| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: pid,
                producer_epoch: epoch,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: seq.wrapping_add(i as i32),
                timestamp: r.timestamp_ms,
                key: r.key.clone(),
                value: r.value.clone(),
                headers: r
                    .headers
                    .iter()
                    .map(|(k, v)| (StrBytes::from_string(k.clone()), v.clone()))
                    .collect::<IndexMap<_, _>>(),
            })
            .collect()
    }

    #[test]
    fn uncompressed_bytes_equal_kafka_protocols_encoder() {
        let rs = records();
        for idem in [None, Some(Idempotence { producer_id: 42, producer_epoch: 3, base_sequence: 10 })] {
            let ours = encode(&rs, 0, Codec::None, idem, false).unwrap();
            let mut theirs = BytesMut::new();
            let options = RecordEncodeOptions { version: 2, compression: Codec::None.to_records() };
            RecordBatchEncoder::encode(&mut theirs, &as_kafka_protocol(&rs, idem), &options).unwrap();
            assert_eq!(&ours[..], &theirs[..], "idempotence {idem:?}");
        }
    }

    #[test]
    fn every_codec_decodes_to_the_same_records() {
        let rs = records();
        for codec in [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let bytes = encode(&rs, 100, codec, None, false).unwrap();
            let crc = u32::from_be_bytes(bytes[CRC_AT..CRC_AT + 4].try_into().unwrap());
            assert_eq!(crc, crc32c::crc32c(&bytes[ATTRIBUTES_AT..]), "{codec}");
            let opts = DecodeOptions {
                fetch_offset: 0,
                isolation: IsolationLevel::ReadUncommitted,
                aborted: &[],
                check_crcs: true,
            };
            let decoded = decode(bytes.clone(), &opts);
            assert_eq!(decoded.error, None, "{codec}");
            let decoded = decoded.records;
            assert_eq!(decoded.len(), rs.len(), "{codec}");
            for (d, r) in decoded.iter().zip(&rs) {
                assert_eq!((&d.key, &d.value, d.timestamp_ms), (&r.key, &r.value, r.timestamp_ms), "{codec}");
                let headers: Vec<(String, Option<Bytes>)> =
                    d.headers.iter().map(|h| (String::from_utf8(h.key.to_vec()).unwrap(), h.value.clone())).collect();
                assert_eq!(headers, r.headers, "{codec}");
            }
            assert_eq!(decoded.iter().map(|d| d.offset).collect::<Vec<_>>(), [0, 1, 2, 3]);
        }
    }

    #[test]
    fn new_producer_state_rewrites_the_header_and_the_crc_only() {
        let rs = records();
        let old = Idempotence { producer_id: 1, producer_epoch: 0, base_sequence: 7 };
        let new = Idempotence { producer_id: 2, producer_epoch: 5, base_sequence: 0 };
        for codec in [Codec::None, Codec::Lz4] {
            let moved = with_producer_state(&encode(&rs, 0, codec, Some(old), false).unwrap(), new);
            assert_eq!(&moved[..], &encode(&rs, 0, codec, Some(new), false).unwrap()[..], "{codec}");
            let info = RecordBatchDecoder::decode_batch_info(&mut moved.clone()).unwrap();
            assert_eq!((info[0].producer_id, info[0].producer_epoch, info[0].base_sequence), (2, 5, 0));
        }
    }

    #[test]
    fn a_transactional_batch_says_so() {
        let bytes = encode(&records(), 0, Codec::None, None, true).unwrap();
        let info = RecordBatchDecoder::decode_batch_info(&mut bytes.clone()).unwrap();
        assert!(info[0].transactional);
        let opts = DecodeOptions {
            fetch_offset: 0,
            isolation: IsolationLevel::ReadUncommitted,
            aborted: &[],
            check_crcs: true,
        };
        assert_eq!(decode(bytes, &opts).records.len(), 4);
    }

    #[test]
    fn varint_lengths_match_the_encoding() {
        for n in [0i64, 1, -1, 63, -64, 64, -65, 8191, 8192, i32::MAX as i64, i32::MIN as i64, i64::MAX, i64::MIN] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, n);
            assert_eq!(buf.len(), varint_len(n), "{n}");
        }
    }
}
