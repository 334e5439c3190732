//! Schema Registry support: the Confluent wire format (`framing`), a small
//! HTTP/1.1 client (`http`), and the registry's REST calls with id caches
//! (`client`).
//!
//! Values framed as magic byte `0` + 4-byte big-endian schema id + JSON are
//! what Confluent's `JSONSerializer` writes, with the schema registered under
//! `<topic>-value`; [`framing::encode`] writes the same.

pub mod client;
pub mod framing;
pub mod http;

pub use client::{RegisteredSchema, SchemaRegistry, value_subject};

/// Why the registry could not do what was asked. Every message is one line that
/// says what happened; the application adds what to do (its flags, its make
/// targets).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The URL given to [`SchemaRegistry::new`] is not `http://host[:port][/prefix]`
    /// (https, credentials, no host, bad port); the message says which.
    #[error("bad schema registry URL {0}")]
    BadUrl(String),
    #[error("no schema registry at {url} ({reason})")]
    /// The TCP connection failed, broke, or the answer took longer than the
    /// client's time-out.
    Unreachable {
        /// The registry's base URL.
        url: String,
        /// The I/O error, or the time-out.
        reason: String,
    },
    #[error(
        "the schema for subject `{subject}` is incompatible with the versions registered there ({message}); \
         register a compatible schema under another subject, or relax the subject's compatibility \
         (PUT {url}/config/{subject})"
    )]
    /// 409 on register: the subject's compatibility rule rejects the schema.
    Incompatible {
        /// The registry's base URL.
        url: String,
        /// The subject named in the call.
        subject: String,
        /// The registry's `message`, or its body on one line.
        message: String,
    },
    #[error("subject `{subject}` not found at {url}")]
    /// 404 with error code 40401 on register.
    SubjectNotFound {
        /// The registry's base URL.
        url: String,
        /// The subject named in the call.
        subject: String,
    },
    #[error(
        "schema id {id} not found at {url}: the record was written against another registry, or its schema was deleted"
    )]
    /// 404 with a registry error code on a lookup by id: no schema has that id
    /// (see [`is_unknown_schema`](Error::is_unknown_schema)).
    SchemaNotFound {
        /// The schema id asked for.
        id: u32,
        /// The registry's base URL.
        url: String,
    },
    #[error("the registry at {url} rejected the schema for `{subject}` as invalid ({message})")]
    /// 422 on register: the registry does not accept the text as a schema.
    InvalidSchema {
        /// The registry's base URL.
        url: String,
        /// The subject named in the call.
        subject: String,
        /// The registry's `message`, or its body on one line.
        message: String,
    },
    #[error(
        "the registry at {url} refused {call} ({status}: {message}); it requires authentication, which this client does not support"
    )]
    /// 401 or 403: the registry requires credentials, which this client cannot send.
    Refused {
        /// The registry's base URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// What was being done (`registering a schema under ...`).
        call: String,
        /// The registry's `message`, or its body on one line.
        message: String,
    },
    #[error("the registry at {url} answered {status} to {call}: {message}")]
    /// Any other non-2xx status (a 5xx after the retries ran out).
    Status {
        /// The registry's base URL.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// What was being done (`registering a schema under ...`).
        call: String,
        /// The registry's `message`, or its body on one line.
        message: String,
    },
    #[error("{url} does not answer like a schema registry while {call} ({reason})")]
    /// The answer is not what a Schema Registry sends: not HTTP, not the
    /// expected JSON, or a 404 without a registry error code (the URL is
    /// probably not the registry's base).
    BadResponse {
        /// The registry's base URL.
        url: String,
        /// What was being done (`registering a schema under ...`).
        call: String,
        /// What was wrong with the answer.
        reason: String,
    },
    #[error("{record} is framed for a schema registry (schema id {id}) but none is configured")]
    /// A record value carries the registry framing but the caller has no
    /// registry configured to resolve its id; raised by applications decoding
    /// values, not by [`SchemaRegistry`].
    NoRegistry {
        /// The caller's name for the record (such as `topic[partition]@offset`).
        record: String,
        /// The schema id in its header.
        id: u32,
    },
    /// A request body could not be serialized.
    #[error("schema registry: {0}")]
    Other(String),
}

impl Error {
    /// The registry has no schema with the id a record names: that record is
    /// skipped, the consumer goes on.
    pub fn is_unknown_schema(&self) -> bool {
        matches!(self, Error::SchemaNotFound { .. })
    }
}
