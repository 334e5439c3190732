//! Which request types this client sends, their API keys and the versions it can speak,
//! and choosing a version against what the broker advertised in ApiVersions.
//!
//! kafka-protocol only implements its own `Request` trait when both its `client` and
//! `broker` features are on; the `broker` feature would double the crate's compile
//! time for decoders we never use, so the mapping lives here instead.

use std::collections::HashMap;

use kafka_protocol::messages::{self as m, ApiKey};
use kafka_protocol::protocol::{Decodable, Encodable, Message};

/// A request this client can send: its key and the type of the matching response.
pub trait ApiRequest: Encodable + Message {
    /// The API key written in the request header.
    const KEY: ApiKey;
    /// What the broker answers with.
    type Response: Decodable + std::fmt::Debug;
}

macro_rules! api_requests {
    ($($req:ident => $resp:ident, $key:ident;)*) => {
        $(impl ApiRequest for m::$req {
            const KEY: ApiKey = ApiKey::$key;
            type Response = m::$resp;
        })*
    };
}

api_requests! {
    ApiVersionsRequest => ApiVersionsResponse, ApiVersions;
    MetadataRequest => MetadataResponse, Metadata;
    ProduceRequest => ProduceResponse, Produce;
    FetchRequest => FetchResponse, Fetch;
    ListOffsetsRequest => ListOffsetsResponse, ListOffsets;
    FindCoordinatorRequest => FindCoordinatorResponse, FindCoordinator;
    JoinGroupRequest => JoinGroupResponse, JoinGroup;
    SyncGroupRequest => SyncGroupResponse, SyncGroup;
    HeartbeatRequest => HeartbeatResponse, Heartbeat;
    LeaveGroupRequest => LeaveGroupResponse, LeaveGroup;
    OffsetFetchRequest => OffsetFetchResponse, OffsetFetch;
    OffsetCommitRequest => OffsetCommitResponse, OffsetCommit;
    InitProducerIdRequest => InitProducerIdResponse, InitProducerId;
    AddPartitionsToTxnRequest => AddPartitionsToTxnResponse, AddPartitionsToTxn;
    AddOffsetsToTxnRequest => AddOffsetsToTxnResponse, AddOffsetsToTxn;
    TxnOffsetCommitRequest => TxnOffsetCommitResponse, TxnOffsetCommit;
    EndTxnRequest => EndTxnResponse, EndTxn;
    ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse, ConsumerGroupHeartbeat;
    SaslHandshakeRequest => SaslHandshakeResponse, SaslHandshake;
    SaslAuthenticateRequest => SaslAuthenticateResponse, SaslAuthenticate;
    CreateTopicsRequest => CreateTopicsResponse, CreateTopics;
    DeleteTopicsRequest => DeleteTopicsResponse, DeleteTopics;
}

/// The version range each API has on the broker, from its ApiVersions response.
#[derive(Debug, Clone, Default)]
pub struct BrokerVersions {
    ranges: HashMap<i16, (i16, i16)>,
}

impl BrokerVersions {
    /// The ranges the broker advertised, by API key.
    pub fn from_response(resp: &m::ApiVersionsResponse) -> Self {
        let ranges = resp.api_keys.iter().map(|k| (k.api_key, (k.min_version, k.max_version))).collect();
        Self { ranges }
    }

    /// The newest version both sides speak, or `None` when the ranges do not meet
    /// (or the broker does not offer the API at all).
    pub fn pick(&self, key: ApiKey, ours: (i16, i16)) -> Option<i16> {
        let (bmin, bmax) = *self.ranges.get(&(key as i16))?;
        let hi = ours.1.min(bmax);
        let lo = ours.0.max(bmin);
        (lo <= hi).then_some(hi)
    }
}

/// The versions this client can speak for request type `R`: what kafka-protocol implements.
pub fn our_versions<R: ApiRequest>() -> (i16, i16) {
    (R::VERSIONS.min, R::VERSIONS.max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;

    fn versions(key: ApiKey, min: i16, max: i16) -> BrokerVersions {
        let resp = m::ApiVersionsResponse::default().with_api_keys(vec![
            ApiVersion::default().with_api_key(key as i16).with_min_version(min).with_max_version(max),
        ]);
        BrokerVersions::from_response(&resp)
    }

    #[test]
    fn picks_newest_common_version() {
        let v = versions(ApiKey::JoinGroup, 0, 9);
        assert_eq!(v.pick(ApiKey::JoinGroup, (0, 7)), Some(7));
        assert_eq!(v.pick(ApiKey::JoinGroup, (0, 12)), Some(9));
    }

    #[test]
    fn no_overlap_or_missing_api_is_none() {
        let v = versions(ApiKey::Produce, 3, 12);
        assert_eq!(v.pick(ApiKey::Produce, (0, 2)), None);
        assert_eq!(v.pick(ApiKey::Fetch, (4, 17)), None);
    }
}
