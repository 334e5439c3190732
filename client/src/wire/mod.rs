//! One connection to one broker: framing, correlation ids, pipelining and version
//! negotiation, with `kafka-protocol` message types. Nothing here knows about
//! topics, groups or retries; callers decide what an error means for them.

#[cfg(feature = "fuzzing")]
pub mod api;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod api;
#[cfg(feature = "fuzzing")]
pub mod connection;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod connection;
#[cfg(feature = "fuzzing")]
pub mod frame;
#[cfg(not(feature = "fuzzing"))]
pub(crate) mod frame;

// The framing and connection internals are public only for the fuzz targets
// (feature `fuzzing`); users configure connections and match on `Error`.
pub(crate) use api::ApiRequest;
pub use connection::ConnectionConfig;
pub(crate) use connection::{Connection, Sent};

use kafka_protocol::messages::ApiKey;

/// What can go wrong on one connection. Messages say what happened; what to do
/// about it (a flag to pass, a broker to start) is the application's to add.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The TCP connection was refused or failed (no broker listening, host unreachable).
    #[error("no broker at {addr} ({source})")]
    Connect {
        /// The `host:port` dialled.
        addr: String,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The TCP connect did not finish within `socket.connection.setup.timeout.ms`.
    #[error("connecting to {addr} timed out after {after_ms} ms; is the address right and the broker up?")]
    ConnectTimeout {
        /// The `host:port` dialled.
        addr: String,
        /// The time-out that expired, in milliseconds.
        after_ms: u64,
    },
    /// The peer accepted the connection but its answer to ApiVersions was not Kafka.
    #[error("{addr} does not speak the Kafka protocol ({reason})")]
    NotKafka {
        /// The `host:port` dialled.
        addr: String,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The connection closed or failed after it was established; requests in
    /// flight on it fail with this.
    #[error("connection to {addr} lost: {reason}")]
    Closed {
        /// The broker's `host:port`.
        addr: String,
        /// The I/O error or why the reader stopped.
        reason: String,
    },
    /// No response arrived within `request.timeout.ms`.
    #[error("{api:?} request to {addr} got no answer within {after_ms} ms")]
    Timeout {
        /// The broker's `host:port`.
        addr: String,
        /// The request that went unanswered.
        api: ApiKey,
        /// The time-out that expired, in milliseconds.
        after_ms: u64,
    },
    /// The broker's version range for a request does not overlap ours (brokers
    /// older than Kafka 2.8).
    #[error(
        "broker {addr} does not support {api:?} in any version this client speaks ({ours:?}); it needs Kafka 2.8 or newer"
    )]
    UnsupportedVersion {
        /// The broker's `host:port`.
        addr: String,
        /// The request that cannot be sent.
        api: ApiKey,
        /// The lowest and highest version this client speaks.
        ours: (i16, i16),
    },
    /// A request could not be encoded at the negotiated version (a field the
    /// version cannot carry, for example).
    #[error("could not encode {api:?} v{version}: {reason}")]
    Encode {
        /// The request.
        api: ApiKey,
        /// The negotiated version.
        version: i16,
        /// `kafka-protocol`'s message.
        reason: String,
    },
    /// A response did not decode as the version it was requested at.
    #[error("could not decode {api:?} v{version} response: {reason}")]
    Decode {
        /// The request the response answers.
        api: ApiKey,
        /// The version it was requested at.
        version: i16,
        /// `kafka-protocol`'s message.
        reason: String,
    },
    /// A response frame was malformed (bad size prefix, too short for its header).
    #[error("malformed response: {0}")]
    Malformed(String),
}

impl Error {
    /// True when retrying on a fresh connection (possibly to another broker) may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Closed { .. } | Error::Timeout { .. }
        )
    }
}
