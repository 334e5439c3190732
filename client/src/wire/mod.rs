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
pub(crate) use connection::Connection;
pub use connection::ConnectionConfig;

use kafka_protocol::messages::ApiKey;

/// What can go wrong on one connection. Messages say what happened; what to do
/// about it (a flag to pass, a broker to start) is the application's to add.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("no broker at {addr} ({source})")]
    Connect { addr: String, source: std::io::Error },
    #[error("connecting to {addr} timed out after {after_ms} ms; is the address right and the broker up?")]
    ConnectTimeout { addr: String, after_ms: u64 },
    #[error("{addr} does not speak the Kafka protocol ({reason})")]
    NotKafka { addr: String, reason: String },
    #[error("connection to {addr} lost: {reason}")]
    Closed { addr: String, reason: String },
    #[error("{api:?} request to {addr} got no answer within {after_ms} ms")]
    Timeout { addr: String, api: ApiKey, after_ms: u64 },
    #[error("broker {addr} does not support {api:?} in any version cafe speaks ({ours:?}); use Kafka 2.8 or newer")]
    UnsupportedVersion { addr: String, api: ApiKey, ours: (i16, i16) },
    #[error("could not encode {api:?} v{version}: {reason}")]
    Encode { api: ApiKey, version: i16, reason: String },
    #[error("could not decode {api:?} v{version} response: {reason}")]
    Decode { api: ApiKey, version: i16, reason: String },
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
