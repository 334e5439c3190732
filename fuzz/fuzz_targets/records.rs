//! Arbitrary bytes as one partition's `records` in a Fetch response, through the
//! decoder cafe owns (`fetch::decode`): batch framing, CRC-32C, the four codecs,
//! control records, read_committed filtering, record and header varints. Errors
//! are fine; panics and allocations beyond what the input can hold are bugs.
#![no_main]

use bytes::Bytes;
use cafe_kafka::fetch::IsolationLevel;
use cafe_kafka::fetch::decode::{AbortedTxn, DecodeOptions, decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let isolation = if flags & 1 == 0 { IsolationLevel::ReadUncommitted } else { IsolationLevel::ReadCommitted };
    // Checking CRCs would stop almost every mutated input at the first batch;
    // without the check the fuzzer reaches the codecs and the record decoder.
    let check_crcs = flags & 2 != 0;
    let aborted = [AbortedTxn { producer_id: i64::from(flags >> 2), first_offset: 0 }];
    let opts = DecodeOptions { fetch_offset: i64::from(flags >> 4), isolation, aborted: &aborted, check_crcs };
    let decoded = decode(Bytes::copy_from_slice(rest), &opts);
    // Everything handed out lies at or past the fetch offset, and before the
    // position the next fetch starts at.
    for r in &decoded.records {
        assert!(r.offset >= opts.fetch_offset, "record before the fetch offset");
        assert!(r.offset < decoded.next_offset, "record at or past the next fetch offset");
    }
    assert!(decoded.next_offset >= opts.fetch_offset);
});
