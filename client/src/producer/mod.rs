//! The producer: partitions records by key, gathers them into per-partition batches,
//! sends Produce requests with the configured `acks` (rskafka only sends acks=-1,
//! hence our own path over `wire`), retries what Kafka calls retriable within
//! `delivery.timeout.ms`, and reports the outcome of every single record.
//!
//! Every decision is taken by the sans-IO core in `accumulator` (with `idempotence`),
//! unit-tested on a virtual clock; `sender` is the async driver doing its I/O.

mod accumulator;
mod batch;
mod config;
mod idempotence;
mod sender;

pub use accumulator::{Delivery, DeliveryError, ProduceSummary};
#[cfg(test)]
pub(crate) use batch::encode_batch;
pub use batch::{Idempotence, OutRecord};
pub use config::{Acks, Compression, ConfigError, ProducerConfig};
pub use sender::Producer;

use crate::cluster;

/// Errors that stop a whole produce run (per-record failures are [`DeliveryError`]s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    /// A setting was refused by `ProducerConfig::validate`.
    Config(#[from] ConfigError),
    #[error(transparent)]
    /// The cluster could not be reached or does not have the topic.
    Cluster(#[from] cluster::Error),
    #[error("InitProducerId failed: {0}; idempotence needs Kafka 0.11+ and IDEMPOTENT_WRITE permission")]
    /// No producer id could be had for idempotence.
    InitProducerId(String),
}
