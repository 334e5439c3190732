//! `cafe-kafka`: a Kafka client in pure Rust, with no C compiler anywhere in the
//! build (`cargo tree -e normal,build -i cc` is empty).
//!
//! Layers, each knowing only the ones below it (see `docs/DESIGN.md`):
//! `partitioner`, `backoff`, `compression` (pure) -> `wire` (one broker
//! connection) -> `cluster` (metadata, connections) -> `producer`, `fetch`,
//! `group`, `consumer`, `admin`; `registry` is a Schema Registry client beside them.
//!
//! Data flow: [`Producer::send`] partitions a [`ProducerRecord`] by key (Java's
//! murmur2) and appends it to its partition's batch in the caller's task; the
//! producer's background task seals batches (`batch.size`, `linger.ms`),
//! compresses them, sends Produce requests to each leader, retries what is
//! retriable, and resolves each record's [`DeliveryFuture`]. A [`Consumer`] joins a
//! group (the classic protocol, driven by a sans-IO member), fetches its partitions
//! with one Fetch per broker in KIP-227 sessions, decodes batches as the records are
//! taken, and commits what was handed out. Settings have Kafka's names and Java's
//! defaults, as struct fields or as strings ([`ProducerConfig::set`],
//! [`Properties`] for a `client.properties` file). Every connection can be
//! secured with TLS (rustls with graviola's crypto: still no C) and SASL
//! (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) through `security.protocol` and the
//! `ssl.*`/`sasl.*` settings of [`ClientConfig`] ([`config::SecurityConfig`]).
//!
//! ```no_run
//! use cafe_kafka::{ClientConfig, Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let mut client = ClientConfig::default();
//! client.set("bootstrap.servers", "127.0.0.1:9092")?;
//! let cluster = client.connect().await?;
//!
//! let producer = Producer::new(cluster.clone(), ProducerConfig::default()).await?;
//! let delivered = producer.send(ProducerRecord::new("orders", "latte").with_key("alice")).await?.await?;
//! println!("at {}[{}]@{:?}", delivered.topic, delivered.partition, delivered.offset);
//!
//! let mut config = ConsumerConfig::default();
//! config.set("group.id", "baristas")?;
//! config.group.topics = vec!["orders".into()]; // what Java's subscribe() takes
//! let mut consumer = Consumer::new(cluster, config).await?;
//! for r in consumer.poll().await? {
//!     println!("{}[{}]@{}: {:?}", r.topic, r.partition, r.record.offset, r.record.value);
//! }
//! consumer.close().await?;
//! # Ok(()) }
//! ```

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
pub use group::assign::{Assignor, RebalanceProtocol};
pub use group::{GroupConfig, GroupError, GroupProtocol};
pub use partitioner::Partitioner;
pub use producer::{
    Acks, Delivery, DeliveryError, DeliveryFuture, DeliveryHandler, GroupMetadata, Producer, ProducerConfig,
    ProducerRecord, RecordMetadata, SendError, SendErrorKind, TransactionError,
};
pub use registry::SchemaRegistry;
pub use types::TopicPartition;
pub use wire::ConnectionConfig;
