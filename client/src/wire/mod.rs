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
mod sasl;
mod security;
mod tls;

// The framing and connection internals are public only for the fuzz targets
// (feature `fuzzing`); users configure connections and match on `Error`.
pub(crate) use api::ApiRequest;
pub use connection::ConnectionConfig;
pub(crate) use connection::{Connection, Sent};
pub(crate) use security::Security;
pub use tls::TlsFailure;

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
    /// The TLS settings cannot be used: a CA, certificate or key file that is
    /// unreadable or malformed, or a CPU the TLS provider cannot run on.
    #[error("TLS cannot be set up: {reason}")]
    TlsConfig {
        /// What is wrong, naming the setting and file.
        reason: String,
    },
    /// The TLS handshake with a broker failed.
    #[error("TLS handshake with {addr} failed: {}: {source}", tls_failure_text(*.failure))]
    Tls {
        /// The broker's `host:port`.
        addr: String,
        /// What the failure means.
        failure: TlsFailure,
        /// rustls' or the socket's error.
        source: std::io::Error,
    },
    /// The SASL settings cannot be used (a missing password, an unsupported mechanism).
    #[error("SASL cannot be set up: {reason}")]
    SaslConfig {
        /// What is missing or wrong, naming the setting.
        reason: String,
    },
    /// SaslHandshake: the broker's listener does not enable this mechanism.
    #[error("broker {addr} does not enable SASL mechanism {mechanism} on this listener (it enables: {})", .enabled.join(", "))]
    SaslMechanism {
        /// The broker's `host:port`.
        addr: String,
        /// The mechanism asked for.
        mechanism: &'static str,
        /// The mechanisms the listener offers.
        enabled: Vec<String>,
    },
    /// SaslAuthenticate failed: wrong user name or password, an invalid or
    /// expired token (SASL_AUTHENTICATION_FAILED), or a broken exchange.
    #[error("SASL {mechanism} authentication with {addr} failed: {}", if .message.is_empty() { format!("error code {code}") } else { .message.clone() })]
    SaslAuthentication {
        /// The broker's `host:port`.
        addr: String,
        /// The mechanism used.
        mechanism: &'static str,
        /// The broker's error code (58 SASL_AUTHENTICATION_FAILED, 34 ILLEGAL_SASL_STATE).
        code: i16,
        /// The broker's message.
        message: String,
    },
    /// The broker's SASL messages did not make sense to the mechanism (a
    /// malformed SCRAM message, a server signature that does not match).
    #[error("SASL exchange with {addr} failed: {reason}")]
    Sasl {
        /// The broker's `host:port`.
        addr: String,
        /// What was wrong.
        reason: String,
    },
}

fn tls_failure_text(f: TlsFailure) -> &'static str {
    match f {
        TlsFailure::Untrusted => "its certificate is not signed by a trusted CA",
        TlsFailure::WrongHost => "its certificate does not name this host",
        TlsFailure::Expired => "its certificate has expired or is not valid yet",
        TlsFailure::Refused => "the broker refused the handshake (does it require a client certificate?)",
        TlsFailure::NotTls => "no TLS answer (is this a plaintext port?)",
        _ => "rustls refused it",
    }
}

impl Error {
    /// True for failures to authenticate (TLS or SASL) and unusable security
    /// settings: retrying cannot help until a setting changes.
    pub fn is_security(&self) -> bool {
        matches!(
            self,
            Error::TlsConfig { .. }
                | Error::Tls { .. }
                | Error::SaslConfig { .. }
                | Error::SaslMechanism { .. }
                | Error::SaslAuthentication { .. }
                | Error::Sasl { .. }
        )
    }

    /// True when retrying on a fresh connection (possibly to another broker) may succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Closed { .. } | Error::Timeout { .. }
        )
    }
}
