//! Schema Registry support: the Confluent wire format (`framing`), a small
//! HTTP/1.1 client (`http`), the registry's REST calls with id caches
//! (`client`), and the cafe-event codec built on them (`codec`).
//!
//! Values framed as magic byte `0` + 4-byte big-endian schema id + JSON are
//! what Confluent's `JSONSerializer` writes, with the schema registered under
//! `<topic>-value`; `cafe`'s producer writes the same with a registry given.

pub mod client;
pub mod framing;
pub mod http;

pub use client::{RegisteredSchema, SchemaRegistry, value_subject};

/// Why the registry could not do what was asked. Every message is one line that
/// says what happened; the application adds what to do (its flags, its make
/// targets), as `cafe`'s `error` module does.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("bad schema registry URL {0}")]
    BadUrl(String),
    #[error("no schema registry at {url} ({reason})")]
    Unreachable { url: String, reason: String },
    #[error(
        "the schema for subject `{subject}` is incompatible with the versions registered there ({message}); \
         register a compatible schema under another subject, or relax the subject's compatibility \
         (PUT {url}/config/{subject})"
    )]
    Incompatible { url: String, subject: String, message: String },
    #[error("subject `{subject}` not found at {url}")]
    SubjectNotFound { url: String, subject: String },
    #[error(
        "schema id {id} not found at {url}: the record was written against another registry, or its schema was deleted"
    )]
    SchemaNotFound { id: u32, url: String },
    #[error(
        "the registry at {url} rejected the schema for `{subject}` as invalid ({message}); \
         check schemas/cafe-event.schema.json"
    )]
    InvalidSchema { url: String, subject: String, message: String },
    #[error(
        "the registry at {url} refused {call} ({status}: {message}); it requires authentication, which cafe does not support"
    )]
    Refused { url: String, status: u16, call: String, message: String },
    #[error("the registry at {url} answered {status} to {call}: {message}")]
    Status { url: String, status: u16, call: String, message: String },
    #[error("{url} does not answer like a schema registry while {call} ({reason})")]
    BadResponse { url: String, call: String, reason: String },
    #[error("{record} is framed for a schema registry (schema id {id}) but none is configured")]
    NoRegistry { record: String, id: u32 },
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
