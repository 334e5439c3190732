//! The top-level error of a `cafe` command and the exit code each kind maps to.
//! Exit codes are part of the CLI contract (README, "Exit codes"): scripts can
//! tell "start the broker" from "create the topic" from "some records failed".

use crate::{admin, cluster, consumer, producer, registry, wire};

/// Exit codes, documented in the README.
pub mod exit {
    pub const OK: u8 = 0;
    /// Anything unexpected; the message says what.
    pub const FAILURE: u8 = 1;
    /// Invalid command line (also what clap uses for parse errors).
    pub const USAGE: u8 = 2;
    /// No broker reachable, or the address is not Kafka.
    pub const UNREACHABLE: u8 = 3;
    /// The topic does not exist (or was deleted while in use).
    pub const UNKNOWN_TOPIC: u8 = 4;
    /// At least one record was not delivered; each failure was reported.
    pub const DELIVERY_FAILED: u8 = 5;
    /// The consumer group refused us (fenced instance, bad group settings).
    pub const GROUP: u8 = 6;
    /// The schema registry refused or could not be reached.
    pub const REGISTRY: u8 = 7;
    /// A topic admin request failed (already exists, invalid settings).
    pub const ADMIN: u8 = 8;
    /// The records given on standard input are unusable (not UTF-8 text).
    pub const INPUT: u8 = 9;
    /// A record batch on the topic cannot be read (corrupt CRC, unknown codec or
    /// magic, truncated record); everything before it was delivered.
    pub const UNREADABLE: u8 = 10;
    /// Interrupted before finishing (Ctrl+C during produce).
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error(transparent)]
    Producer(#[from] producer::Error),
    #[error(transparent)]
    Admin(#[from] admin::Error),
    #[error(transparent)]
    Consumer(#[from] consumer::Error),
    #[error(transparent)]
    Registry(#[from] registry::Error),
    #[error("{failed} of {total} records were not delivered (see the reports above)")]
    DeliveryFailed { failed: u64, total: u64 },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Input(String),
    #[error("interrupted: {0}")]
    Interrupted(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Cluster(e) => cluster_code(e),
            Error::Producer(producer::Error::Cluster(e)) => cluster_code(e),
            Error::Producer(producer::Error::Config(_)) => exit::USAGE,
            Error::Producer(_) => exit::FAILURE,
            Error::Admin(admin::Error::Cluster(e)) => cluster_code(e),
            Error::Admin(_) => exit::ADMIN,
            Error::Consumer(e) => e.exit_code(),
            Error::Registry(registry::Error::BadUrl(_)) => exit::USAGE,
            Error::Registry(_) => exit::REGISTRY,
            Error::DeliveryFailed { .. } => exit::DELIVERY_FAILED,
            Error::Usage(_) => exit::USAGE,
            Error::Input(_) => exit::INPUT,
            Error::Interrupted(_) => exit::INTERRUPTED,
            Error::Other(_) => exit::FAILURE,
        }
    }
}

pub(crate) fn cluster_code(e: &cluster::Error) -> u8 {
    match e {
        cluster::Error::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
        cluster::Error::NoBootstrap => exit::USAGE,
        cluster::Error::Wire(w) => wire_code(w),
        _ => exit::FAILURE,
    }
}

pub(crate) fn wire_code(e: &wire::Error) -> u8 {
    match e {
        wire::Error::Connect { .. }
        | wire::Error::ConnectTimeout { .. }
        | wire::Error::NotKafka { .. }
        | wire::Error::Closed { .. }
        | wire::Error::Timeout { .. } => exit::UNREACHABLE,
        _ => exit::FAILURE,
    }
}
