//! Arbitrary bytes decoded as each response type cafe reads, at every version it
//! speaks, through `wire::frame::decode_response`.
//!
//! Known finding (kafka-protocol 0.18.0, the newest release): its array decoders
//! call `Vec::with_capacity(n)` with the element count read from the wire, so a
//! ten-byte body declaring a huge array asks for gigabytes and the allocation
//! failure aborts the process (libFuzzer reports out-of-memory within seconds).
//! Not fixable in cafe without patching the dependency; fixes are proposed
//! upstream (kafka-protocol-rs pull requests 152, 161 and 200). Brokers are trusted
//! peers, and `frame::frame_len` already refuses frames over 256 MiB.
#![no_main]

use bytes::Bytes;
use cafe_kafka::wire::api::ApiRequest;
use cafe_kafka::wire::frame;
use kafka_protocol::messages as m;
use libfuzzer_sys::fuzz_target;

fn decode_all_versions<R: ApiRequest>(body: &Bytes) {
    for v in R::VERSIONS.min..=R::VERSIONS.max {
        let _ = frame::decode_response::<R>(body.clone(), v);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let body = Bytes::copy_from_slice(rest);
    match selector % 12 {
        0 => decode_all_versions::<m::ApiVersionsRequest>(&body),
        1 => decode_all_versions::<m::MetadataRequest>(&body),
        2 => decode_all_versions::<m::ProduceRequest>(&body),
        3 => decode_all_versions::<m::ListOffsetsRequest>(&body),
        4 => decode_all_versions::<m::FindCoordinatorRequest>(&body),
        5 => decode_all_versions::<m::JoinGroupRequest>(&body),
        6 => decode_all_versions::<m::SyncGroupRequest>(&body),
        7 => decode_all_versions::<m::HeartbeatRequest>(&body),
        8 => decode_all_versions::<m::LeaveGroupRequest>(&body),
        9 => decode_all_versions::<m::OffsetFetchRequest>(&body),
        10 => decode_all_versions::<m::OffsetCommitRequest>(&body),
        _ => decode_all_versions::<m::InitProducerIdRequest>(&body),
    }
});
