//! `cafe-kafka`: a Kafka client in pure Rust, with no C compiler anywhere in the
//! build (`cargo tree -e normal,build -i cc` is empty).
//!
//! Layers, each knowing only the ones below it (see `docs/DESIGN.md`):
//! `partitioner`, `backoff`, `compression` (pure) -> `wire` (one broker
//! connection) -> `cluster` (metadata, connections) -> `producer`, `fetch`,
//! `group`, `consumer`, `admin`; `registry` is a Schema Registry client beside them.
//!
//! Data flow: a [`Producer`] partitions records by key (Java's murmur2), batches
//! them per partition, compresses, and sends Produce requests to each leader; a
//! [`Consumer`] joins a group (the classic protocol, driven by a sans-IO member),
//! fetches its partitions with one Fetch per broker in KIP-227 sessions, decodes
//! batches as the records are taken, and commits what was handed out.

// Every public item is documented; the `fuzzing` feature opens internals that are
// not part of the API, so it is not held to that.
#![cfg_attr(not(feature = "fuzzing"), warn(missing_docs))]

pub mod admin;
pub mod backoff;
pub mod cluster;
pub mod compression;
pub mod config;
pub mod consumer;
pub mod fetch;
pub mod group;
pub mod partitioner;
pub mod producer;
pub mod registry;
pub mod types;
pub mod wire;

pub use admin::Admin;
pub use cluster::{Cluster, PartitionInfo, TopicInfo};
pub use compression::Codec;
pub use config::{ClientConfig, Properties, RoleConfig};
pub use consumer::{CommitError, ConsumedRecord, Consumer, ConsumerConfig, ConsumerEvent, PendingCommit, RecordStream};
pub use fetch::{FetchConfig, Header, IsolationLevel, OffsetReset, Record};
pub use group::assign::Assignor;
pub use group::{GroupConfig, GroupError};
pub use partitioner::Partitioner;
pub use producer::{
    Acks, Delivery, DeliveryError, DeliveryFuture, Producer, ProducerConfig, ProducerRecord, RecordMetadata, SendError,
    SendErrorKind,
};
pub use registry::SchemaRegistry;
pub use types::TopicPartition;
pub use wire::ConnectionConfig;
