//! Arbitrary bytes as a broker's response, through the code cafe owns: the size
//! prefix check, the correlation id peek, the response header, and the
//! consumer-protocol bytes a SyncGroup/JoinGroup carries. Errors are fine; panics
//! (and huge allocations) are bugs. Whole response bodies (kafka-protocol's
//! decoders) are the `responses` target.
#![no_main]

use bytes::Bytes;
use cafe_kafka::group::consumer_protocol::{Assignment, Subscription};
use cafe_kafka::wire::frame;
use kafka_protocol::messages as m;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() >= 4 {
        let _ = frame::frame_len([data[0], data[1], data[2], data[3]]);
    }
    let _ = frame::peek_correlation_id(data);
    let Some((&selector, rest)) = data.split_first() else { return };
    match selector % 4 {
        // An empty body after the header: only the header decoding is exercised.
        0 => {
            let _ = frame::decode_response::<m::HeartbeatRequest>(Bytes::copy_from_slice(rest), 0);
        }
        1 => {
            let _ = frame::decode_response::<m::HeartbeatRequest>(Bytes::copy_from_slice(rest), 4);
        }
        2 => {
            let _ = Assignment::decode(rest);
        }
        _ => {
            let _ = Subscription::decode(rest);
        }
    }
});
