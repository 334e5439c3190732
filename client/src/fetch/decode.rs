//! Record batches as a fetch returns them, decoded by this crate (pure, no I/O):
//! v2 batches with their CRC-32C checked, decompressed with [`crate::compression`],
//! control batches and (in `read_committed`) aborted transactions dropped, and
//! every size read from the wire checked against the bytes that are really
//! there before anything is allocated for it.
//!
//! Why not kafka-protocol's `RecordBatchDecoder`: it reserves memory from the
//! record and header counts on the wire, keeps headers in a map (Kafka allows
//! the same header key twice; a map loses one), and fails a whole fetch on one
//! bad batch, where the records before it must still reach the user.

use std::collections::{BTreeSet, VecDeque};

use bytes::Bytes;

use super::{Header, IsolationLevel, Record};
use crate::compression::{self, Codec};

/// Bytes of a v2 batch before its records.
const BATCH_HEADER: usize = 61;
/// Offset + length: what must be there to know a batch's size.
const LOG_OVERHEAD: usize = 12;
/// The smallest encoded record: length, attributes, timestamp and offset deltas,
/// key and value lengths, header count (one byte each).
const MIN_RECORD: usize = 7;
/// The smallest encoded header: key length and value length.
const MIN_HEADER: usize = 2;

const ATTR_TIMESTAMP_LOG_APPEND: i16 = 1 << 3;
const ATTR_TRANSACTIONAL: i16 = 1 << 4;
const ATTR_CONTROL: i16 = 1 << 5;
/// Control record type of a transaction abort marker (key: version int16, type int16).
const CONTROL_ABORT: i16 = 0;

/// A transaction the broker reports aborted in a fetch response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    /// The producer id whose batches from `first_offset` on are dropped, up to
    /// its abort marker.
    pub producer_id: i64,
    /// The offset of the transaction's first batch.
    pub first_offset: i64,
}

/// A batch that cannot be read: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct DecodeError {
    /// The batch's base offset (as its header says).
    pub offset: i64,
    /// What was wrong: a CRC mismatch, an unsupported magic or codec, a count
    /// or length that does not fit the bytes, a decompression failure.
    pub reason: String,
}

/// What one partition's records decoded to (all at once: for tests and fuzzing;
/// the consumer reads through a [`BatchReader`]).
#[cfg(any(test, feature = "fuzzing"))]
#[derive(Debug, Default)]
pub struct Decoded {
    /// Records at or after the fetch offset, in offset order, for the user.
    pub records: Vec<Record>,
    /// Where the next fetch starts: past every whole batch read, including
    /// control batches and aborted ones that yielded no records.
    pub next_offset: i64,
    /// A batch that could not be decoded; `records` holds everything before it.
    pub error: Option<DecodeError>,
}

/// How to decode one partition's `records` field.
#[derive(Debug, Clone, Copy)]
pub struct DecodeOptions<'a> {
    /// The offset the Fetch asked for; records below it (a batch starts
    /// earlier) are skipped.
    pub fetch_offset: i64,
    /// With `ReadCommitted`, records of `aborted` transactions and control
    /// batches are dropped; with `ReadUncommitted`, only control batches.
    pub isolation: IsolationLevel,
    /// From the fetch response (read_committed only); any order.
    pub aborted: &'a [AbortedTxn],
    /// `check.crcs`.
    pub check_crcs: bool,
}

/// Decodes every whole batch in `data`. A batch cut short at the end is the
/// fetch size limit, not damage: it is left for the next fetch.
#[cfg(any(test, feature = "fuzzing"))]
pub fn decode(data: Bytes, opts: &DecodeOptions<'_>) -> Decoded {
    let mut reader = BatchReader::new(data, opts);
    let mut records = Vec::new();
    while let Some(r) = reader.next_record() {
        records.push(r);
    }
    Decoded { records, next_offset: reader.next_offset(), error: reader.error().cloned() }
}

/// Reads one partition's fetched bytes a batch at a time, as the records are
/// taken: a response holds up to `max.partition.fetch.bytes` of *compressed*
/// batches, so decompressing it all at once could take many times that memory
/// (the Java consumer decompresses lazily too).
#[derive(Debug)]
pub struct BatchReader {
    data: Bytes,
    pos: usize,
    fetch_offset: i64,
    isolation: IsolationLevel,
    check_crcs: bool,
    /// Aborted transactions not reached yet, by first offset.
    aborted: VecDeque<AbortedTxn>,
    /// Producers whose aborted transaction we are inside (read_committed).
    aborting: BTreeSet<i64>,
    /// Records of the batch being handed out.
    current: std::vec::IntoIter<Record>,
    next_offset: i64,
    error: Option<DecodeError>,
}

impl BatchReader {
    /// A reader over one partition's `records` bytes from a Fetch response;
    /// nothing is decoded until records are taken.
    pub fn new(data: Bytes, opts: &DecodeOptions<'_>) -> Self {
        let mut aborted: Vec<AbortedTxn> =
            if opts.isolation == IsolationLevel::ReadCommitted { opts.aborted.to_vec() } else { Vec::new() };
        aborted.sort_by_key(|a| a.first_offset);
        Self {
            data,
            pos: 0,
            fetch_offset: opts.fetch_offset,
            isolation: opts.isolation,
            check_crcs: opts.check_crcs,
            aborted: aborted.into(),
            aborting: BTreeSet::new(),
            current: Vec::new().into_iter(),
            next_offset: opts.fetch_offset,
            error: None,
        }
    }

    /// The next record for the user, decoding the next batch when needed;
    /// `None` at the end of the data or at a batch that cannot be decoded.
    pub fn next_record(&mut self) -> Option<Record> {
        loop {
            if let Some(r) = self.current.next() {
                return Some(r);
            }
            if !self.next_batch() {
                return None;
            }
        }
    }

    /// Where the next fetch starts once every record was taken: past every whole
    /// batch read (control and aborted ones included), never before the fetch offset.
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The batch that stopped the reader, if one did.
    pub fn error(&self) -> Option<&DecodeError> {
        self.error.as_ref()
    }

    /// The offset the fetch asked for (records before it are skipped).
    pub fn fetch_offset(&self) -> i64 {
        self.fetch_offset
    }

    /// True when nothing is left to read: no whole batch, no error to report (cheap).
    pub fn is_exhausted(&self) -> bool {
        self.current.len() == 0 && (self.error.is_some() || self.whole_batch_len().is_none())
    }

    /// The length of the batch at `pos` if it is all there; an error for a negative length.
    fn whole_batch_len(&self) -> Option<Result<usize, DecodeError>> {
        let rest = &self.data[self.pos..];
        if rest.len() < LOG_OVERHEAD {
            return None;
        }
        let batch_len = be_i32(&rest[8..]);
        let Ok(len) = usize::try_from(batch_len) else {
            let offset = be_i64(rest);
            return Some(Err(DecodeError { offset, reason: format!("negative batch length {batch_len}") }));
        };
        // A batch cut short at the end is the fetch size limit, not damage.
        (LOG_OVERHEAD + len <= rest.len()).then_some(Ok(LOG_OVERHEAD + len))
    }

    /// Decodes the next whole batch into `current`; false when there is none.
    fn next_batch(&mut self) -> bool {
        if self.error.is_some() {
            return false;
        }
        let len = match self.whole_batch_len() {
            None => return false,
            Some(Err(e)) => {
                self.error = Some(e);
                return false;
            }
            Some(Ok(len)) => len,
        };
        let batch = self.data.slice(self.pos..self.pos + len);
        let base_offset = be_i64(&batch);
        let opts = DecodeOptions {
            fetch_offset: self.fetch_offset,
            isolation: self.isolation,
            aborted: &[],
            check_crcs: self.check_crcs,
        };
        let mut records = Vec::new();
        match decode_batch(batch, &opts, &mut self.aborted, &mut self.aborting, &mut records) {
            Ok(last_offset) => {
                self.pos += len;
                self.next_offset = self.next_offset.max(last_offset + 1);
                self.current = records.into_iter();
                true
            }
            Err(reason) => {
                self.error = Some(DecodeError { offset: base_offset, reason });
                false
            }
        }
    }
}

/// Decodes one whole batch (offset and length prefix included) and appends its
/// user records; returns the batch's last offset.
fn decode_batch(
    batch: Bytes,
    opts: &DecodeOptions<'_>,
    aborted: &mut VecDeque<AbortedTxn>,
    aborting: &mut BTreeSet<i64>,
    records: &mut Vec<Record>,
) -> Result<i64, String> {
    // magic sits at byte 16 in every message format, v0 and v1 included.
    let magic = *batch.get(16).ok_or("batch shorter than its header")? as i8;
    if magic != 2 {
        return Err(format!(
            "record batch magic {magic} is not supported (Kafka 4 writes magic 2; v0/v1 message sets come from clients before Kafka 0.11)"
        ));
    }
    if batch.len() < BATCH_HEADER {
        return Err(format!("batch of {} bytes is shorter than the {BATCH_HEADER}-byte v2 header", batch.len()));
    }
    let base_offset = be_i64(&batch[0..]);
    let stored_crc = u32::from_be_bytes([batch[17], batch[18], batch[19], batch[20]]);
    if opts.check_crcs {
        let computed = crc32c::crc32c(&batch[21..]);
        if computed != stored_crc {
            return Err(format!(
                "CRC-32C mismatch (stored {stored_crc:#010x}, computed {computed:#010x}): the batch is corrupt"
            ));
        }
    }
    let attributes = be_i16(&batch[21..]);
    let last_offset_delta = be_i32(&batch[23..]);
    let base_timestamp = be_i64(&batch[27..]);
    let max_timestamp = be_i64(&batch[35..]);
    let producer_id = be_i64(&batch[43..]);
    let record_count = be_i32(&batch[57..]);
    // Checked: a corrupt header must be an error, not a panic (found by the records
    // fuzzer). The next fetch starts after the last offset, so that must fit too.
    let last_offset = base_offset
        .checked_add(i64::from(last_offset_delta))
        .filter(|last| *last < i64::MAX)
        .ok_or_else(|| format!("base offset {base_offset} + last offset delta {last_offset_delta} overflows"))?;
    let codec =
        Codec::from_attributes(attributes).ok_or_else(|| format!("unknown compression codec {}", attributes & 0x07))?;
    let control = attributes & ATTR_CONTROL != 0;
    let transactional = attributes & ATTR_TRANSACTIONAL != 0;

    // read_committed, as the Java consumer does it: a producer's transaction is
    // aborted from its first offset (in the response's list) up to its abort marker.
    if opts.isolation == IsolationLevel::ReadCommitted && producer_id >= 0 {
        while aborted.front().is_some_and(|a| a.first_offset <= last_offset) {
            if let Some(a) = aborted.pop_front() {
                aborting.insert(a.producer_id);
            }
        }
        if control {
            if control_type(&batch, codec)? == Some(CONTROL_ABORT) {
                aborting.remove(&producer_id);
            }
            return Ok(last_offset);
        }
        if transactional && aborting.contains(&producer_id) {
            return Ok(last_offset);
        }
    }
    // Control records (transaction markers) are never handed to the user.
    if control || last_offset < opts.fetch_offset {
        return Ok(last_offset);
    }

    let payload = batch.slice(BATCH_HEADER..);
    let payload = match codec {
        Codec::None => payload,
        c => Bytes::from(compression::decompress(c, &payload).map_err(|e| e.to_string())?),
    };
    let count = usize::try_from(record_count).map_err(|_| format!("negative record count {record_count}"))?;
    if count > payload.len() / MIN_RECORD {
        return Err(format!("record count {count} does not fit in {} bytes of records", payload.len()));
    }
    let log_append = attributes & ATTR_TIMESTAMP_LOG_APPEND != 0;
    let mut r = Reader { buf: &payload, pos: 0 };
    records.reserve(count);
    for i in 0..count {
        let rec = decode_record(&mut r, &payload, base_offset, base_timestamp)
            .map_err(|e| format!("record {i} of {count}: {e}"))?;
        // An offset outside the batch's range would move the committed position
        // to where no record is.
        if rec.offset < base_offset || rec.offset > last_offset {
            return Err(format!(
                "record {i} of {count} has offset {} outside its batch ({base_offset}..={last_offset})",
                rec.offset
            ));
        }
        if rec.offset >= opts.fetch_offset {
            records.push(Record { timestamp_ms: if log_append { max_timestamp } else { rec.timestamp_ms }, ..rec });
        }
    }
    Ok(last_offset)
}

/// The type of a control batch's record, from its key (version int16, type int16);
/// `None` when the record has no readable key (then it is not an abort marker).
fn control_type(batch: &Bytes, codec: Codec) -> Result<Option<i16>, String> {
    let payload = batch.slice(BATCH_HEADER..);
    let payload = match codec {
        Codec::None => payload,
        c => Bytes::from(compression::decompress(c, &payload).map_err(|e| e.to_string())?),
    };
    let mut r = Reader { buf: &payload, pos: 0 };
    let rec = decode_record(&mut r, &payload, 0, 0).map_err(|e| format!("control record: {e}"))?;
    Ok(rec.key.filter(|k| k.len() >= 4).map(|k| be_i16(&k[2..])))
}

fn decode_record(r: &mut Reader<'_>, payload: &Bytes, base_offset: i64, base_timestamp: i64) -> Result<Record, String> {
    let len = r.varint()?;
    let len = usize::try_from(len).map_err(|_| format!("negative record length {len}"))?;
    let end = r.pos.checked_add(len).filter(|e| *e <= r.buf.len()).ok_or("record length past the end of the batch")?;
    let mut rr = Reader { buf: &r.buf[..end], pos: r.pos };
    r.pos = end;
    let _attributes = rr.byte()?;
    let timestamp_delta = rr.varlong()?;
    let offset_delta = rr.varint()?;
    let key = rr.bytes(payload)?;
    let value = rr.bytes(payload)?;
    let header_count = rr.varint()?;
    let header_count = usize::try_from(header_count).map_err(|_| format!("negative header count {header_count}"))?;
    if header_count > (rr.buf.len() - rr.pos) / MIN_HEADER {
        return Err(format!("header count {header_count} does not fit in the record"));
    }
    let mut headers = Vec::with_capacity(header_count);
    for _ in 0..header_count {
        let key = rr.bytes(payload)?.ok_or("header with a null key")?;
        let value = rr.bytes(payload)?;
        headers.push(Header { key, value });
    }
    let offset = base_offset
        .checked_add(i64::from(offset_delta))
        .ok_or_else(|| format!("base offset {base_offset} + offset delta {offset_delta} overflows"))?;
    Ok(Record { offset, timestamp_ms: base_timestamp.wrapping_add(timestamp_delta), key, value, headers })
}

/// A cursor over record bytes; every read is bounds-checked.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.buf.get(self.pos).ok_or("record cut short")?;
        self.pos += 1;
        Ok(b)
    }

    /// An unsigned LEB128 of at most `max_bytes` bytes.
    fn uvarint(&mut self, max_bytes: u32) -> Result<u64, String> {
        let mut v: u64 = 0;
        for i in 0..max_bytes {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("varint too long".into())
    }

    fn varint(&mut self) -> Result<i32, String> {
        let u = self.uvarint(5)?;
        let u = u32::try_from(u).map_err(|_| "varint overflows 32 bits")?;
        Ok(((u >> 1) as i32) ^ -((u & 1) as i32))
    }

    fn varlong(&mut self) -> Result<i64, String> {
        let u = self.uvarint(10)?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }

    /// A varint length then that many bytes; -1 is null. Slices `payload` (no copy).
    fn bytes(&mut self, payload: &Bytes) -> Result<Option<Bytes>, String> {
        let len = self.varint()?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| format!("negative length {len}"))?;
        let end =
            self.pos.checked_add(len).filter(|e| *e <= self.buf.len()).ok_or("length past the end of the record")?;
        // `buf` is a prefix of `payload`'s bytes, so positions carry over.
        let out = payload.slice(self.pos..end);
        self.pos = end;
        Ok(Some(out))
    }
}

fn be_i16(b: &[u8]) -> i16 {
    i16::from_be_bytes([b[0], b[1]])
}

fn be_i32(b: &[u8]) -> i32 {
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn be_i64(b: &[u8]) -> i64 {
    i64::from_be_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

#[cfg(test)]
mod tests;
