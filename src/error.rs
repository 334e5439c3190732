//! The top-level error of a `cafe` command and the exit code each kind maps to.
//! Exit codes are part of the CLI contract (README, "Exit codes"): scripts can
//! tell "start the broker" from "create the topic" from "some records failed".

use crate::consumer::PartitionError;
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
            Error::Consumer(e) => consumer_code(e),
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

/// The library's errors carry no exit codes: which one a failure gets is the CLI's
/// contract, decided here.
fn consumer_code(e: &consumer::Error) -> u8 {
    use consumer::Error as C;
    match e {
        C::Config(_) => exit::USAGE,
        C::Cluster(e) => cluster_code(e),
        C::Group(_) => exit::GROUP,
        C::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
        C::Partition(PartitionError::Corrupt { .. }) => exit::UNREADABLE,
        C::Partition(PartitionError::TopicGone(_)) => exit::UNKNOWN_TOPIC,
        C::Partition(_) | C::Setup(_) => exit::FAILURE,
    }
}

fn cluster_code(e: &cluster::Error) -> u8 {
    match e {
        cluster::Error::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
        cluster::Error::NoBootstrap => exit::USAGE,
        cluster::Error::Wire(w) => wire_code(w),
        _ => exit::FAILURE,
    }
}

fn wire_code(e: &wire::Error) -> u8 {
    match e {
        wire::Error::Connect { .. }
        | wire::Error::ConnectTimeout { .. }
        | wire::Error::NotKafka { .. }
        | wire::Error::Closed { .. }
        | wire::Error::Timeout { .. } => exit::UNREACHABLE,
        _ => exit::FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_errors_exit_with_code_7_and_bad_urls_with_2() {
        let refused =
            registry::Error::Unreachable { url: "http://127.0.0.1:8081".into(), reason: "connection refused".into() };
        assert_eq!(Error::from(refused).exit_code(), exit::REGISTRY);
        let conflict =
            registry::Error::Incompatible { url: "u".into(), subject: "demo-value".into(), message: "m".into() };
        assert_eq!(Error::from(conflict).exit_code(), exit::REGISTRY);
        assert_eq!(Error::from(registry::Error::BadUrl("`x`".into())).exit_code(), exit::USAGE);
    }

    #[test]
    fn consumer_errors_map_to_their_exit_codes() {
        let gone = consumer::Error::UnknownTopic("demo".into());
        assert_eq!(Error::from(gone).exit_code(), exit::UNKNOWN_TOPIC);
        let bad = consumer::Error::Config("x".into());
        assert_eq!(Error::from(bad).exit_code(), exit::USAGE);
        let unknown = consumer::Error::Cluster(cluster::Error::UnknownTopic("demo".into()));
        assert_eq!(Error::from(unknown).exit_code(), exit::UNKNOWN_TOPIC);
    }
}
