//! The registry's REST calls this client makes (Confluent's API, which Apicurio also
//! serves): register a schema under a subject, fetch a schema by id. Ids are
//! cached for the life of the client, unknown ids too, so a topic full of
//! records written against another registry costs one lookup per id.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

use super::Error;
use super::http::{self, BaseUrl, HttpError, Method};
use crate::backoff::{BackoffPolicy, Failure, StopRule, retry};

/// Retries after a 5xx answer before it becomes the error.
const SERVER_ERROR_RETRIES: u32 = 3;

/// The subject of a topic's record values (Confluent's `TopicNameStrategy`).
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// A schema as the registry returns it for an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// The id records carry in their framing.
    pub id: u32,
    /// `JSON`, `AVRO` or `PROTOBUF` (Confluent omits the field for Avro).
    pub schema_type: String,
    /// The schema text as registered.
    pub schema: String,
}

/// What a call was, for error messages and for mapping statuses to errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `POST /subjects/{subject}/versions`.
    Register {
        /// The subject registered under.
        subject: String,
    },
    /// `GET /schemas/ids/{id}`.
    SchemaById {
        /// The schema id looked up.
        id: u32,
    },
    /// `GET /subjects`, the reachability check.
    ListSubjects,
}

/// A client of one Confluent-compatible Schema Registry (Confluent's REST API,
/// which Apicurio also serves) over plain HTTP, with ids cached for its lifetime.
pub struct SchemaRegistry {
    base: BaseUrl,
    timeout: Duration,
    registered: HashMap<(String, String), u32>,
    /// `None`: the registry said it has no schema with that id.
    by_id: HashMap<u32, Option<Arc<RegisteredSchema>>>,
}

impl SchemaRegistry {
    /// A client of the registry at `url` (`http://host[:port][/prefix]`, port 80
    /// by default); `timeout` bounds each HTTP exchange. Connects lazily; fails
    /// only with [`Error::BadUrl`].
    pub fn new(url: &str, timeout: Duration) -> Result<Self, Error> {
        let base = BaseUrl::parse(url).map_err(Error::BadUrl)?;
        Ok(Self { base, timeout, registered: HashMap::new(), by_id: HashMap::new() })
    }

    /// The base URL, normalised (`http://host:port/prefix`).
    pub fn url(&self) -> String {
        self.base.to_string()
    }

    /// Fails early, before any Kafka work, when nothing registry-like answers.
    pub async fn check(&self) -> Result<(), Error> {
        let call = Call::ListSubjects;
        let body = self.call(&call, Method::Get, "/subjects", None).await?;
        match serde_json::from_slice::<Vec<String>>(&body) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.bad_response(&call, &format!("GET /subjects is not a list of subjects: {e}"))),
        }
    }

    /// Registers `schema` (JSON Schema text) under `subject`, or finds the id it
    /// already has there: `POST /subjects/{subject}/versions` does both.
    pub async fn register_json(&mut self, subject: &str, schema: &str) -> Result<u32, Error> {
        let key = (subject.to_owned(), schema.to_owned());
        if let Some(id) = self.registered.get(&key) {
            return Ok(*id);
        }
        let call = Call::Register { subject: subject.to_owned() };
        let body = serde_json::to_vec(&json!({ "schema": schema, "schemaType": "JSON" }))
            .map_err(|e| Error::Other(e.to_string()))?;
        let path = format!("/subjects/{}/versions", encode_segment(subject));
        let reply = self.call(&call, Method::Post, &path, Some(&body)).await?;
        #[derive(Deserialize)]
        struct Registered {
            id: u32,
        }
        let id = serde_json::from_slice::<Registered>(&reply)
            .map_err(|e| self.bad_response(&call, &format!("no schema id in the answer: {e}")))?
            .id;
        self.registered.insert(key, id);
        Ok(id)
    }

    /// The schema with this id (`GET /schemas/ids/{id}`); `Error::SchemaNotFound`
    /// when the registry has none, remembered so it is asked only once.
    pub async fn schema_by_id(&mut self, id: u32) -> Result<Arc<RegisteredSchema>, Error> {
        match self.by_id.get(&id) {
            Some(Some(s)) => return Ok(Arc::clone(s)),
            Some(None) => return Err(Error::SchemaNotFound { id, url: self.url() }),
            None => {}
        }
        let call = Call::SchemaById { id };
        let reply = match self.call(&call, Method::Get, &format!("/schemas/ids/{id}"), None).await {
            Ok(reply) => reply,
            Err(e @ Error::SchemaNotFound { .. }) => {
                self.by_id.insert(id, None);
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        #[derive(Deserialize)]
        struct Found {
            schema: String,
            #[serde(rename = "schemaType")]
            schema_type: Option<String>,
        }
        let found: Found = serde_json::from_slice(&reply)
            .map_err(|e| self.bad_response(&call, &format!("no schema in the answer: {e}")))?;
        let schema = Arc::new(RegisteredSchema {
            id,
            schema_type: found.schema_type.unwrap_or_else(|| "AVRO".into()),
            schema: found.schema,
        });
        self.by_id.insert(id, Some(Arc::clone(&schema)));
        Ok(schema)
    }

    async fn call(&self, call: &Call, method: Method, path: &str, body: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        // Both calls are idempotent, so a server error (5xx) is retried a few
        // times; every other answer is final.
        let stop = StopRule::retries(SERVER_ERROR_RETRIES);
        retry(&call.describe(), BackoffPolicy::default(), stop, |_| async move {
            match http::request(&self.base, method, path, body, self.timeout).await {
                Ok(r) if (200..300).contains(&r.status) => Ok(r.body),
                Ok(r) => {
                    let e = error_from_status(&self.url(), call, r.status, &r.body);
                    Err(Failure::new(e, r.status >= 500))
                }
                Err(HttpError::Malformed(reason)) => Err(Failure::fatal(self.bad_response(call, &reason))),
                Err(e) => Err(Failure::fatal(Error::Unreachable { url: self.url(), reason: unreachable_reason(&e) })),
            }
        })
        .await
    }

    fn bad_response(&self, call: &Call, reason: &str) -> Error {
        Error::BadResponse { url: self.url(), call: call.describe(), reason: reason.to_owned() }
    }
}

impl Call {
    fn describe(&self) -> String {
        match self {
            Call::Register { subject } => format!("registering a schema under `{subject}`"),
            Call::SchemaById { id } => format!("looking up schema id {id}"),
            Call::ListSubjects => "listing subjects".into(),
        }
    }
}

fn unreachable_reason(e: &HttpError) -> String {
    match e {
        HttpError::Connect(io) | HttpError::Io(io) => match io.kind() {
            std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
            _ => io.to_string(),
        },
        other => other.to_string(),
    }
}

/// The registry's error body: `{"error_code": 40401, "message": "..."}`.
#[derive(Debug, Default, Deserialize)]
struct ErrorBody {
    error_code: Option<i64>,
    message: Option<String>,
}

/// Maps a non-2xx answer to the error that says what to do about it. Pure, so
/// each status (and Confluent's `error_code`s) is tested without a registry.
pub fn error_from_status(url: &str, call: &Call, status: u16, body: &[u8]) -> Error {
    let parsed: ErrorBody = serde_json::from_slice(body).unwrap_or_default();
    let message = parsed.message.clone().unwrap_or_else(|| one_line(body));
    let url = url.to_owned();
    match (status, call) {
        (409, Call::Register { subject }) => Error::Incompatible { url, subject: subject.clone(), message },
        (404, Call::SchemaById { id }) if parsed.error_code.is_some() => Error::SchemaNotFound { id: *id, url },
        (404, Call::Register { subject }) if parsed.error_code == Some(40401) => {
            Error::SubjectNotFound { url, subject: subject.clone() }
        }
        (422, Call::Register { subject }) => Error::InvalidSchema { url, subject: subject.clone(), message },
        (401 | 403, _) => Error::Refused { url, status, call: call.describe(), message },
        // A 404 without a registry error code: the path does not exist, so the
        // URL is probably not the registry's base (a wrong prefix, another service).
        (404, _) => Error::BadResponse {
            url,
            call: call.describe(),
            reason: format!("404 for a Schema Registry path ({message}); is that the registry's base URL?"),
        },
        _ => Error::Status { url, status, call: call.describe(), message },
    }
}

fn one_line(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ").chars().take(200).collect();
    if line.is_empty() { "empty body".into() } else { line }
}

/// Percent-encodes one path segment (topic names are usually safe already).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "http://127.0.0.1:8081";

    fn register() -> Call {
        Call::Register { subject: "demo-value".into() }
    }

    #[test]
    fn subject_is_topic_dash_value() {
        assert_eq!(value_subject("demo"), "demo-value");
    }

    #[test]
    fn conflict_on_register_is_incompatible_and_says_what_to_do() {
        let e = error_from_status(URL, &register(), 409, br#"{"error_code":409,"message":"Incompatible schema"}"#);
        assert!(matches!(e, Error::Incompatible { .. }), "{e:?}");
        let text = e.to_string();
        assert!(text.contains("demo-value") && text.contains("Incompatible schema"), "{text}");
        assert!(text.contains("/config/demo-value"), "{text}");
        assert!(!text.contains('\n'));
    }

    #[test]
    fn not_found_maps_by_call_and_error_code() {
        let e = error_from_status(URL, &Call::SchemaById { id: 42 }, 404, br#"{"error_code":40403,"message":"x"}"#);
        assert!(matches!(e, Error::SchemaNotFound { id: 42, .. }), "{e:?}");
        assert!(e.is_unknown_schema());
        let e = error_from_status(URL, &register(), 404, br#"{"error_code":40401,"message":"Subject not found"}"#);
        assert!(matches!(e, Error::SubjectNotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("demo-value"));
        // A bare 404 page: the URL is not the registry's base.
        let e = error_from_status(URL, &Call::SchemaById { id: 1 }, 404, b"<html>Not Found</html>");
        assert!(matches!(e, Error::BadResponse { .. }) && e.to_string().contains("base URL"), "{e}");
        assert!(!e.is_unknown_schema());
    }

    #[test]
    fn invalid_schema_auth_and_server_errors() {
        let e = error_from_status(URL, &register(), 422, br#"{"error_code":42201,"message":"Invalid schema"}"#);
        assert!(matches!(e, Error::InvalidSchema { .. }) && e.to_string().contains("Invalid schema"), "{e}");
        // Which file holds the schema is the application's to say (see `error.rs`).
        assert!(!e.to_string().contains("cafe"), "{e}");
        let e = error_from_status(URL, &register(), 401, b"");
        assert!(matches!(e, Error::Refused { status: 401, .. }) && e.to_string().contains("authentication"));
        assert!(!e.to_string().contains("cafe"), "{e}");
        let e = error_from_status(URL, &Call::ListSubjects, 500, b"boom\n  trace\n");
        assert!(matches!(e, Error::Status { status: 500, .. }));
        assert!(e.to_string().contains("boom trace") && !e.to_string().contains('\n'), "{e}");
    }

    #[test]
    fn unreachable_names_the_url_and_the_reason() {
        // What to do about it is the CLI's to add: see `error.rs`.
        let e = Error::Unreachable { url: URL.into(), reason: "connection refused".into() };
        let text = e.to_string();
        assert!(text.contains(URL) && text.contains("connection refused") && !text.contains("make"), "{text}");
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(encode_segment("demo-value"), "demo-value");
        assert_eq!(encode_segment("a b/c"), "a%20b%2Fc");
    }

    #[tokio::test]
    async fn connection_refused_is_unreachable() {
        // Bind then drop a listener: nothing listens on that port afterwards.
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port());
        let port = port.expect("a free port");
        let mut reg = SchemaRegistry::new(&format!("http://127.0.0.1:{port}"), Duration::from_secs(5)).unwrap();
        let e = reg.schema_by_id(1).await.unwrap_err();
        assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
        assert!(e.to_string().contains("connection refused"), "{e}");
    }
}
