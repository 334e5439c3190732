use bytes::{Bytes, BytesMut};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{NO_PARTITION_LEADER_EPOCH, Record as KRecord, TimestampType};

use super::*;
use crate::producer::encode_batch;

const ALL: [Codec; 5] = [Codec::None, Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd];

fn record(offset: i64, value: Option<&str>) -> KRecord {
    KRecord {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset,
        sequence: offset as i32,
        timestamp: 1_700_000_000_000 + offset,
        key: Some(Bytes::from(format!("k{offset}"))),
        value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
        headers: IndexMap::new(),
    }
}

/// One batch of `records` (offsets as given).
fn batch(records: &[KRecord], codec: Codec) -> Bytes {
    let mut buf = BytesMut::new();
    encode_batch(&mut buf, records, codec).unwrap();
    buf.freeze()
}

fn values(records: &[KRecord]) -> Vec<i64> {
    records.iter().map(|r| r.offset).collect()
}

fn opts(fetch_offset: i64) -> DecodeOptions<'static> {
    DecodeOptions { fetch_offset, isolation: IsolationLevel::ReadUncommitted, aborted: &[], check_crcs: true }
}

fn offsets(d: &Decoded) -> Vec<i64> {
    d.records.iter().map(|r| r.offset).collect()
}

fn concat(parts: &[Bytes]) -> Bytes {
    let mut b = BytesMut::new();
    for p in parts {
        b.extend_from_slice(p);
    }
    b.freeze()
}

#[test]
fn every_codec_decodes_keys_values_headers_and_timestamps() {
    for codec in ALL {
        let mut rs: Vec<KRecord> = (10..20).map(|o| record(o, Some("{\"drink\":\"latte\"}"))).collect();
        rs[1].value = None; // tombstone
        rs[2].value = Some(Bytes::new()); // empty, not null
        rs[3].key = None;
        rs[4].headers.insert(StrBytes::from_static_str("trace"), Some(Bytes::from_static(b"abc")));
        rs[4].headers.insert(StrBytes::from_static_str("nothing"), None);
        let d = decode(batch(&rs, codec), &opts(10));
        assert!(d.error.is_none(), "{codec}: {:?}", d.error);
        assert_eq!(offsets(&d), values(&rs), "{codec}");
        assert_eq!(d.next_offset, 20);
        assert_eq!(d.records[0].value.as_deref(), Some(&b"{\"drink\":\"latte\"}"[..]));
        assert_eq!(d.records[1].value, None);
        assert_eq!(d.records[2].value.as_deref(), Some(&b""[..]));
        assert_eq!(d.records[3].key, None);
        assert_eq!(d.records[0].key.as_deref(), Some(&b"k10"[..]));
        assert_eq!(d.records[5].timestamp_ms, 1_700_000_000_015);
        let h = &d.records[4].headers;
        assert_eq!(h.len(), 2);
        assert_eq!((&h[0].key[..], h[0].value.as_deref()), (&b"trace"[..], Some(&b"abc"[..])));
        assert_eq!((&h[1].key[..], h[1].value.as_deref()), (&b"nothing"[..], None));
    }
}

#[test]
fn records_before_the_fetch_offset_are_skipped() {
    let rs: Vec<KRecord> = (0..5).map(|o| record(o, Some("v"))).collect();
    let d = decode(batch(&rs, Codec::None), &opts(3));
    assert_eq!(offsets(&d), vec![3, 4]);
    assert_eq!(d.next_offset, 5);
    // A batch wholly before the fetch offset yields nothing but keeps the position.
    let d = decode(batch(&rs, Codec::Lz4), &opts(9));
    assert!(d.records.is_empty());
    assert_eq!(d.next_offset, 9);
}

#[test]
fn a_partial_batch_at_the_end_waits_for_the_next_fetch() {
    let a = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::None);
    let b = batch(&[record(2, Some("c"))], Codec::None);
    let mut data = concat(&[a, b.clone()]);
    data.truncate(data.len() - 3);
    let d = decode(data, &opts(0));
    assert!(d.error.is_none());
    assert_eq!(offsets(&d), vec![0, 1]);
    assert_eq!(d.next_offset, 2);
    // Only a few bytes of a batch header: the same.
    let d = decode(b.slice(..7), &opts(2));
    assert!(d.records.is_empty() && d.error.is_none());
    assert_eq!(d.next_offset, 2);
}

#[test]
fn a_corrupt_batch_stops_after_the_good_ones_before_it() {
    let good = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::None);
    let bad = batch(&[record(2, Some("cafe")), record(3, Some("dd"))], Codec::None);
    let after = batch(&[record(4, Some("e"))], Codec::None);
    let mut bad = BytesMut::from(&bad[..]);
    let n = bad.len();
    bad[n - 3] ^= 0x01; // inside the last record's value
    let data = concat(&[good, bad.freeze(), after]);
    let d = decode(data.clone(), &opts(0));
    assert_eq!(offsets(&d), vec![0, 1]);
    assert_eq!(d.next_offset, 2, "nothing past the bad batch");
    let e = d.error.unwrap();
    assert_eq!(e.offset, 2);
    assert!(e.reason.contains("CRC-32C"), "{}", e.reason);
    // check.crcs=false reads it (the flipped byte is only in a value).
    let d = decode(data, &DecodeOptions { check_crcs: false, ..opts(0) });
    assert!(d.error.is_none());
    assert_eq!(offsets(&d), vec![0, 1, 2, 3, 4]);
}

/// Rewrites a batch's header field and fixes up its CRC, as a broken producer would.
fn patch(b: &Bytes, at: usize, bytes: &[u8]) -> Bytes {
    let mut m = BytesMut::from(&b[..]);
    m[at..at + bytes.len()].copy_from_slice(bytes);
    let crc = crc32c::crc32c(&m[21..]);
    m[17..21].copy_from_slice(&crc.to_be_bytes());
    m.freeze()
}

#[test]
fn unknown_codec_magic_and_impossible_counts_are_errors() {
    let b = batch(&[record(0, Some("a"))], Codec::None);
    let d = decode(patch(&b, 21, &[0, 7]), &opts(0));
    assert!(d.error.unwrap().reason.contains("unknown compression codec 7"));
    let mut m = BytesMut::from(&b[..]);
    m[16] = 1;
    let d = decode(m.freeze(), &opts(0));
    assert!(d.error.unwrap().reason.contains("magic 1"));
    // A record count no batch this size can hold: refused before any allocation.
    let d = decode(patch(&b, 57, &i32::MAX.to_be_bytes()), &opts(0));
    assert!(d.error.unwrap().reason.contains("does not fit"));
    let d = decode(patch(&b, 57, &(-1i32).to_be_bytes()), &opts(0));
    assert!(d.error.unwrap().reason.contains("negative record count"));
    // A garbage compressed payload.
    let z = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::Zstd);
    let len = z.len();
    let mut m = BytesMut::from(&z[..]);
    for i in 65..len {
        m[i] = 0xAA;
    }
    let d = decode(patch(&m.freeze(), 21, &[0, 4]), &opts(0));
    assert!(d.error.unwrap().reason.contains("zstd"));
}

#[test]
fn offsets_that_overflow_are_errors_not_panics() {
    let b = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::None);
    // Base offset i64::MAX: its last offset (and the next fetch's) cannot be held.
    let d = decode(patch(&b, 0, &i64::MAX.to_be_bytes()), &opts(0));
    assert!(d.error.unwrap().reason.contains("overflows"), "the batch's last offset");
    // Last offset delta 0 keeps the header in range; the second record's delta 5 does not.
    let b = batch(&[record(0, Some("a")), record(5, Some("b"))], Codec::None);
    let at_max = patch(&patch(&b, 0, &(i64::MAX - 1).to_be_bytes()), 23, &0i32.to_be_bytes());
    let d = decode(at_max, &opts(0));
    assert!(d.error.unwrap().reason.contains("overflows"), "a record's offset");
}

#[test]
fn a_negative_batch_length_is_an_error() {
    let mut m = BytesMut::from(&batch(&[record(0, Some("a"))], Codec::None)[..]);
    m[8..12].copy_from_slice(&(-5i32).to_be_bytes());
    let d = decode(m.freeze(), &opts(0));
    assert!(d.error.unwrap().reason.contains("negative batch length"));
}

fn txn_record(offset: i64, pid: i64, value: &str) -> KRecord {
    KRecord { transactional: true, producer_id: pid, producer_epoch: 0, ..record(offset, Some(value)) }
}

/// A transaction marker: key = version 0, type (0 abort, 1 commit).
fn marker(offset: i64, pid: i64, kind: i16) -> KRecord {
    let mut key = vec![0, 0];
    key.extend_from_slice(&kind.to_be_bytes());
    KRecord {
        control: true,
        key: Some(Bytes::from(key)),
        value: Some(Bytes::from_static(&[0, 0, 0, 0, 0, 0])),
        ..txn_record(offset, pid, "")
    }
}

#[test]
fn read_committed_drops_aborted_transactions_and_markers_are_never_records() {
    let data = concat(&[
        batch(&[txn_record(0, 5, "aborted-a"), txn_record(1, 5, "aborted-b")], Codec::None),
        batch(&[txn_record(2, 6, "kept-a")], Codec::Lz4),
        batch(&[marker(3, 5, 0)], Codec::None),
        batch(&[marker(4, 6, 1)], Codec::None),
        batch(&[record(5, Some("plain"))], Codec::None),
        batch(&[txn_record(6, 5, "second txn of 5, committed")], Codec::None),
        batch(&[marker(7, 5, 1)], Codec::None),
    ]);
    let aborted = [AbortedTxn { producer_id: 5, first_offset: 0 }];
    let committed = DecodeOptions { isolation: IsolationLevel::ReadCommitted, aborted: &aborted, ..opts(0) };
    let d = decode(data.clone(), &committed);
    assert!(d.error.is_none(), "{:?}", d.error);
    assert_eq!(offsets(&d), vec![2, 5, 6]);
    assert_eq!(d.next_offset, 8, "past the last marker");
    let d = decode(data, &opts(0));
    assert_eq!(offsets(&d), vec![0, 1, 2, 5, 6], "read_uncommitted shows aborted records, never markers");
    assert_eq!(d.next_offset, 8);
}

#[test]
fn log_append_time_replaces_record_timestamps() {
    let b = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::None);
    let max_ts = i64::from_be_bytes(b[35..43].try_into().unwrap());
    let d = decode(patch(&b, 21, &[0, 0x08]), &opts(0));
    assert!(d.records.iter().all(|r| r.timestamp_ms == max_ts));
}

#[test]
fn a_batch_of_only_markers_moves_the_position() {
    let d = decode(batch(&[marker(40, 9, 1)], Codec::None), &opts(40));
    assert!(d.records.is_empty() && d.error.is_none());
    assert_eq!(d.next_offset, 41);
}

#[test]
fn truncated_records_inside_a_whole_batch_are_errors() {
    let b = batch(&[record(0, Some("abcdef"))], Codec::None);
    // Claim a longer value than the record holds (varint 100 = 0xc8 0x01 zigzagged).
    let mut m = BytesMut::from(&b[..]);
    let value_len_at = m.len() - 1 - 6 - 1; // header count, value, value length
    m[value_len_at] = 0x7e; // zigzag 63
    let d = decode(patch(&m.freeze(), 21, &[0, 0]), &opts(0));
    assert!(d.error.is_some());
}

#[test]
fn a_record_offset_outside_its_batch_is_an_error() {
    let b = batch(&[record(0, Some("a")), record(1, Some("b"))], Codec::None);
    // last_offset_delta 0: the second record (delta 1) lies past the batch's end.
    let d = decode(patch(&b, 23, &0i32.to_be_bytes()), &opts(0));
    assert!(d.error.unwrap().reason.contains("outside its batch"));
}
