//! ConsumerProtocol bytes: the subscription a member puts in JoinGroup and the
//! assignment the leader hands out in SyncGroup, as plain Rust values, converted
//! to and from the wire with `kafka-protocol`'s message types.
//!
//! On the wire each is an `int16` version followed by the body at that version
//! (Kafka's `ConsumerProtocol.java`). Newer versions only append fields, so, as
//! the Java client does, a version above the newest we know is read with our
//! newest schema and trailing bytes are ignored.

use std::collections::BTreeMap;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName, consumer_protocol_assignment,
    consumer_protocol_subscription,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

/// Newest ConsumerProtocol version we read and write (v3 added `rack_id`).
pub const LATEST_VERSION: i16 = 3;

/// Generation id meaning "not known" (Java's `DEFAULT_GENERATION`).
pub const NO_GENERATION: i32 = -1;

/// Errors turning ConsumerProtocol bytes into values and back.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerProtocolError {
    /// The version prefix is negative; Java rejects these too.
    #[error("consumer protocol {kind} has version {version}; versions start at 0")]
    UnsupportedVersion {
        /// Which message: `subscription` or `assignment`.
        kind: &'static str,
        /// The version prefix read.
        version: i16,
    },
    /// The bytes do not follow the schema (truncated, bad lengths, bad UTF-8).
    #[error("malformed consumer protocol {kind}: {reason}")]
    Malformed {
        /// Which message: `subscription` or `assignment`.
        kind: &'static str,
        /// Which part does not fit the schema.
        reason: String,
    },
    /// A value cannot be written (e.g. a string longer than 32767 bytes).
    #[error("cannot encode consumer protocol {kind}: {reason}")]
    Encode {
        /// Which message: `subscription` or `assignment`.
        kind: &'static str,
        /// `kafka-protocol`'s encode error.
        reason: String,
    },
}

/// Partitions of one topic, as listed in `owned_partitions`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    /// The topic's name.
    pub topic: String,
    /// Partition indexes, in the order written.
    pub partitions: Vec<i32>,
}

/// What a member sends in JoinGroup for each assignor it supports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Assignor-specific data, passed to the leader untouched.
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (v1+; used by cooperative rebalancing).
    pub owned_partitions: Vec<TopicPartitions>,
    /// Generation in which `owned_partitions` were assigned (v2+), or [`NO_GENERATION`].
    pub generation_id: i32,
    /// The member's `client.rack` (v3+).
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    fn default() -> Self {
        Self {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: NO_GENERATION,
            rack_id: None,
        }
    }
}

/// What the leader gives each member in SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// Topic -> partitions; a `BTreeMap` so the bytes we write are deterministic.
    pub partitions: BTreeMap<String, Vec<i32>>,
    /// Assignor-specific data for the member (unused by the built-in assignors).
    pub user_data: Option<Bytes>,
}

impl Subscription {
    /// A subscription to `topics` with nothing owned, as a fresh member sends it.
    pub fn new(topics: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self { topics: topics.into_iter().map(Into::into).collect(), ..Self::default() }
    }

    /// Writes the version prefix and the body. A version above [`LATEST_VERSION`]
    /// is written as [`LATEST_VERSION`] (as Java does); fields the version lacks
    /// are left out.
    pub fn encode(&self, version: i16) -> Result<Bytes, ConsumerProtocolError> {
        const KIND: &str = "subscription";
        let version = clamp_version(KIND, version)?;
        let owned = self.owned_partitions.iter().map(|tp| {
            consumer_protocol_subscription::TopicPartition::default()
                .with_topic(topic_name(&tp.topic))
                .with_partitions(tp.partitions.clone())
        });
        let message = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(owned.collect())
            .with_generation_id(self.generation_id)
            .with_rack_id(self.rack_id.clone().map(StrBytes::from_string));
        encode_versioned(KIND, &message, version)
    }

    /// Reads a version-prefixed subscription as any Kafka client writes it.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConsumerProtocolError> {
        const KIND: &str = "subscription";
        let (version, mut body) = split_version(KIND, bytes)?;
        layout::check_subscription(body, version).map_err(|reason| malformed(KIND, reason))?;
        let message =
            ConsumerProtocolSubscription::decode(&mut body, version).map_err(|e| malformed(KIND, e.to_string()))?;
        Ok(Self::from_message(message))
    }

    fn from_message(message: ConsumerProtocolSubscription) -> Self {
        let owned_partitions = message
            .owned_partitions
            .into_iter()
            .map(|tp| TopicPartitions { topic: tp.topic.to_string(), partitions: tp.partitions })
            .collect();
        Self {
            topics: message.topics.iter().map(|t| t.to_string()).collect(),
            user_data: message.user_data,
            owned_partitions,
            generation_id: message.generation_id,
            // Java treats an empty rack id as "no rack".
            rack_id: message.rack_id.map(|r| r.to_string()).filter(|r| !r.is_empty()),
        }
    }
}

impl Assignment {
    /// Writes the version prefix and the body (the body is the same for v0..=v3).
    pub fn encode(&self, version: i16) -> Result<Bytes, ConsumerProtocolError> {
        const KIND: &str = "assignment";
        let version = clamp_version(KIND, version)?;
        let assigned = self.partitions.iter().map(|(topic, partitions)| {
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions.clone())
        });
        let message = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(assigned.collect())
            .with_user_data(self.user_data.clone());
        encode_versioned(KIND, &message, version)
    }

    /// Reads a version-prefixed assignment. Empty bytes are an empty assignment:
    /// that is what SyncGroup returns to a member that was given nothing.
    pub fn decode(bytes: &[u8]) -> Result<Self, ConsumerProtocolError> {
        const KIND: &str = "assignment";
        if bytes.is_empty() {
            return Ok(Self::default());
        }
        let (version, mut body) = split_version(KIND, bytes)?;
        layout::check_assignment(body).map_err(|reason| malformed(KIND, reason))?;
        let message =
            ConsumerProtocolAssignment::decode(&mut body, version).map_err(|e| malformed(KIND, e.to_string()))?;
        let mut partitions: BTreeMap<String, Vec<i32>> = BTreeMap::new();
        // A topic listed twice is merged rather than one entry silently winning.
        for tp in message.assigned_partitions {
            partitions.entry(tp.topic.to_string()).or_default().extend(tp.partitions);
        }
        Ok(Self { partitions, user_data: message.user_data })
    }

    /// Number of partitions assigned, over all topics.
    pub fn len(&self) -> usize {
        self.partitions.values().map(Vec::len).sum()
    }

    /// True when no partition is assigned.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

fn malformed(kind: &'static str, reason: String) -> ConsumerProtocolError {
    ConsumerProtocolError::Malformed { kind, reason }
}

/// Java's `checkSubscriptionVersion`: negative is an error, newer means newest.
fn clamp_version(kind: &'static str, version: i16) -> Result<i16, ConsumerProtocolError> {
    if version < 0 {
        return Err(ConsumerProtocolError::UnsupportedVersion { kind, version });
    }
    Ok(version.min(LATEST_VERSION))
}

fn encode_versioned<M: Encodable>(
    kind: &'static str,
    message: &M,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message.encode(&mut buf, version).map_err(|e| ConsumerProtocolError::Encode { kind, reason: e.to_string() })?;
    Ok(buf.freeze())
}

fn split_version<'a>(kind: &'static str, bytes: &'a [u8]) -> Result<(i16, &'a [u8]), ConsumerProtocolError> {
    let Some((prefix, body)) = bytes.split_first_chunk::<2>() else {
        return Err(malformed(kind, "shorter than the 2-byte version prefix".into()));
    };
    let version = clamp_version(kind, i16::from_be_bytes(*prefix))?;
    Ok((version, body))
}

/// A walk over the bytes that checks every length before `kafka-protocol`
/// decodes them. Its array decoder calls `Vec::with_capacity(n)` with the
/// untrusted count, so a few random bytes could ask for gigabytes and abort
/// the process; here every array must fit in the bytes that remain.
mod layout {
    /// Smallest encodings: a string is an i16 length, a topic-partitions entry
    /// is a string plus an i32 array count.
    const MIN_STRING: usize = 2;
    const MIN_TOPIC_PARTITIONS: usize = MIN_STRING + 4;
    const INT32: usize = 4;

    pub(super) fn check_subscription(body: &[u8], version: i16) -> Result<(), String> {
        let mut cursor = Cursor(body);
        for _ in 0..cursor.array("topics", MIN_STRING)? {
            cursor.string("topic")?;
        }
        cursor.nullable_bytes("user_data")?;
        if version >= 1 {
            cursor.topic_partitions_array("owned_partitions")?;
        }
        if version >= 2 {
            cursor.take("generation_id", INT32)?;
        }
        if version >= 3 {
            cursor.string("rack_id")?;
        }
        Ok(())
    }

    pub(super) fn check_assignment(body: &[u8]) -> Result<(), String> {
        let mut cursor = Cursor(body);
        cursor.topic_partitions_array("assigned_partitions")?;
        cursor.nullable_bytes("user_data")?;
        Ok(())
    }

    struct Cursor<'a>(&'a [u8]);

    impl<'a> Cursor<'a> {
        fn take(&mut self, field: &str, n: usize) -> Result<&'a [u8], String> {
            if self.0.len() < n {
                return Err(format!("{field}: needs {n} bytes, {} left", self.0.len()));
            }
            let (head, rest) = self.0.split_at(n);
            self.0 = rest;
            Ok(head)
        }

        fn i16(&mut self, field: &str) -> Result<i16, String> {
            let raw = self.take(field, 2)?;
            Ok(i16::from_be_bytes([raw[0], raw[1]]))
        }

        fn i32(&mut self, field: &str) -> Result<i32, String> {
            let raw = self.take(field, 4)?;
            Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
        }

        /// A nullable string: length -1 is null.
        fn string(&mut self, field: &str) -> Result<(), String> {
            let len = self.i16(field)?.into();
            self.skip_sized(field, len)
        }

        fn nullable_bytes(&mut self, field: &str) -> Result<(), String> {
            let len = self.i32(field)?;
            self.skip_sized(field, len)
        }

        fn skip_sized(&mut self, field: &str, len: i32) -> Result<(), String> {
            match usize::try_from(len) {
                Ok(n) => self.take(field, n).map(drop),
                Err(_) if len == -1 => Ok(()),
                Err(_) => Err(format!("{field}: negative length {len}")),
            }
        }

        /// Reads an array count and checks that many elements could fit.
        fn array(&mut self, field: &str, min_element: usize) -> Result<usize, String> {
            let count = self.i32(field)?;
            let count = usize::try_from(count).map_err(|_| format!("{field}: array count {count}"))?;
            if count.saturating_mul(min_element) > self.0.len() {
                return Err(format!("{field}: {count} elements cannot fit in {} bytes", self.0.len()));
            }
            Ok(count)
        }

        fn topic_partitions_array(&mut self, field: &str) -> Result<(), String> {
            for _ in 0..self.array(field, MIN_TOPIC_PARTITIONS)? {
                self.string(field)?;
                let partitions = self.array(field, INT32)?;
                self.take(field, partitions * INT32)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// `"demo"` as a protocol string: i16 length then UTF-8.
    const DEMO: [u8; 6] = [0x00, 0x04, b'd', b'e', b'm', b'o'];
    const NULL_BYTES: [u8; 4] = [0xff; 4];

    fn concat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    #[test]
    fn v0_subscription_matches_java_bytes() {
        // version 0 | topics: [1] "demo" | user_data: null (-1)
        let java = concat(&[&[0, 0], &[0, 0, 0, 1], &DEMO, &NULL_BYTES]);
        let ours = Subscription::new(["demo"]).encode(0).expect("encodes");
        assert_eq!(ours.as_ref(), java.as_slice());
        assert_eq!(Subscription::decode(&java).expect("decodes"), Subscription::new(["demo"]));
    }

    #[test]
    fn v1_subscription_with_owned_partitions_matches_java_bytes() {
        // version 1 | topics ["demo"] | user_data null | owned: [1] { "demo", [0, 2] }
        let java = concat(&[
            &[0, 1],
            &[0, 0, 0, 1],
            &DEMO,
            &NULL_BYTES,
            &[0, 0, 0, 1],
            &DEMO,
            &[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 2],
        ]);
        let expected = Subscription {
            owned_partitions: vec![TopicPartitions { topic: "demo".into(), partitions: vec![0, 2] }],
            ..Subscription::new(["demo"])
        };
        assert_eq!(Subscription::decode(&java).expect("decodes"), expected);
        assert_eq!(expected.encode(1).expect("encodes").as_ref(), java.as_slice());
    }

    #[test]
    fn v3_subscription_carries_generation_and_rack() {
        // version 3 | topics ["demo"] | user_data empty (len 0) | owned [] | generation 5 | rack "r1"
        let java =
            concat(&[&[0, 3], &[0, 0, 0, 1], &DEMO, &[0, 0, 0, 0], &[0, 0, 0, 0], &[0, 0, 0, 5], &[0, 2, b'r', b'1']]);
        let expected = Subscription {
            user_data: Some(Bytes::new()),
            generation_id: 5,
            rack_id: Some("r1".into()),
            ..Subscription::new(["demo"])
        };
        assert_eq!(Subscription::decode(&java).expect("decodes"), expected);
        assert_eq!(expected.encode(3).expect("encodes").as_ref(), java.as_slice());
    }

    #[test]
    fn newer_version_is_read_with_our_newest_schema() {
        // A hypothetical v9 appends a field; Java reads it as its newest version.
        let future = concat(&[
            &[0, 9],
            &[0, 0, 0, 1],
            &DEMO,
            &NULL_BYTES,
            &[0, 0, 0, 0],
            &[0, 0, 0, 7],
            &[0xff, 0xff],
            &[0xde, 0xad],
        ]);
        let decoded = Subscription::decode(&future).expect("decodes");
        assert_eq!(decoded.generation_id, 7);
        assert_eq!(decoded.rack_id, None);
        // Writing asks for v9 but produces v3, the newest we know.
        assert_eq!(&decoded.encode(9).expect("encodes")[..2], &[0, 3]);
    }

    #[test]
    fn v0_assignment_matches_java_bytes() {
        // version 0 | assigned: [1] { "demo", [1, 3] } | user_data null
        let java = concat(&[&[0, 0], &[0, 0, 0, 1], &DEMO, &[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 3], &NULL_BYTES]);
        let expected = Assignment { partitions: BTreeMap::from([("demo".to_string(), vec![1, 3])]), user_data: None };
        assert_eq!(Assignment::decode(&java).expect("decodes"), expected);
        assert_eq!(expected.encode(0).expect("encodes").as_ref(), java.as_slice());
    }

    #[test]
    fn empty_bytes_are_an_empty_assignment() {
        assert_eq!(Assignment::decode(&[]).expect("decodes"), Assignment::default());
    }

    #[test]
    fn bad_input_is_an_error_not_a_panic() {
        assert!(matches!(
            Subscription::decode(&[0xff, 0xff, 0, 0, 0, 0]),
            Err(ConsumerProtocolError::UnsupportedVersion { version: -1, .. })
        ));
        assert!(matches!(Assignment::decode(&[0]), Err(ConsumerProtocolError::Malformed { .. })));
        assert!(matches!(Subscription::decode(&[]), Err(ConsumerProtocolError::Malformed { .. })));
        // An array claiming 2^31-1 topics must be refused before anything allocates.
        let huge = [0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 0];
        assert!(Subscription::decode(&huge).is_err());
        assert!(Assignment::decode(&huge).is_err());
        // Invalid UTF-8 in a topic name.
        let bad_utf8 = concat(&[&[0, 0], &[0, 0, 0, 1], &[0, 1, 0xff], &NULL_BYTES]);
        assert!(Subscription::decode(&bad_utf8).is_err());
    }

    #[test]
    fn negative_version_cannot_be_encoded() {
        assert!(Subscription::default().encode(-1).is_err());
        assert!(Assignment::default().encode(-1).is_err());
    }

    /// The subscription as it reads back after encoding at `version`.
    fn as_seen_at(mut sub: Subscription, version: i16) -> Subscription {
        if version < 1 {
            sub.owned_partitions.clear();
        }
        if version < 2 {
            sub.generation_id = NO_GENERATION;
        }
        if version < 3 {
            sub.rack_id = None;
        }
        sub
    }

    fn subscription_strategy() -> impl Strategy<Value = Subscription> {
        let owned = prop::collection::vec(
            ("[a-z._-]{0,12}", prop::collection::vec(any::<i32>(), 0..5))
                .prop_map(|(topic, partitions)| TopicPartitions { topic, partitions }),
            0..4,
        );
        (
            prop::collection::vec("[a-zA-Z0-9._-]{0,12}", 0..5),
            prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
            owned,
            any::<i32>(),
            prop::option::of("[a-z0-9]{1,6}"),
        )
            .prop_map(|(topics, user_data, owned_partitions, generation_id, rack_id)| Subscription {
                topics,
                user_data: user_data.map(Bytes::from),
                owned_partitions,
                generation_id,
                rack_id,
            })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let _ = Subscription::decode(&bytes);
            let _ = Assignment::decode(&bytes);
        }

        #[test]
        fn arbitrary_body_after_valid_version_never_panics(
            version in 0i16..5,
            body in prop::collection::vec(any::<u8>(), 0..64),
        ) {
            let bytes = concat(&[&version.to_be_bytes(), &body]);
            let _ = Subscription::decode(&bytes);
            let _ = Assignment::decode(&bytes);
        }

        #[test]
        fn subscription_round_trips_at_every_version(sub in subscription_strategy(), version in 0i16..=3) {
            let bytes = sub.encode(version).expect("encodes");
            prop_assert_eq!(&bytes[..2], &version.to_be_bytes());
            let decoded = Subscription::decode(&bytes).expect("decodes");
            prop_assert_eq!(decoded, as_seen_at(sub, version));
        }

        #[test]
        fn assignment_round_trips_at_every_version(
            partitions in prop::collection::btree_map("[a-z._-]{0,12}", prop::collection::vec(any::<i32>(), 0..6), 0..5),
            user_data in prop::option::of(prop::collection::vec(any::<u8>(), 0..16)),
            version in 0i16..=3,
        ) {
            let assignment = Assignment { partitions, user_data: user_data.map(Bytes::from) };
            let bytes = assignment.encode(version).expect("encodes");
            prop_assert_eq!(Assignment::decode(&bytes).expect("decodes"), assignment);
        }
    }
}
