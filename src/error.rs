//! The top-level error of a `cafe` command, the line the user reads and the exit
//! code each kind maps to. Exit codes are part of the CLI contract (README, "Exit
//! codes"): scripts can tell "start the broker" from "create the topic" from
//! "some records failed".
//!
//! Library errors say what happened, in Kafka's terms; only the CLI knows its
//! flags, make targets and subcommands, so the advice that names them is added
//! here (`advise_*`), and the exit codes are decided here too.

use std::sync::OnceLock;

use kafka_protocol::error::ResponseError;

use cafe_kafka::GroupError;
use cafe_kafka::consumer::PartitionError;
use cafe_kafka::{admin, cluster, config, consumer, producer, registry, wire};

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
    /// The cluster did not let us in: the TLS handshake failed (untrusted or
    /// wrong-host certificate, plaintext port, client certificate refused) or
    /// SASL authentication failed (wrong password, mechanism not enabled, bad token).
    pub const AUTHENTICATION: u8 = 11;
    /// The broker's ACLs refuse this principal an operation on a topic, group,
    /// the cluster or a transactional id.
    pub const NOT_AUTHORIZED: u8 = 12;
    /// A transaction could not commit (a record was not delivered, a coordinator
    /// call failed) and was aborted, or the producer was fenced by another with the
    /// same `transactional.id`.
    pub const TRANSACTION: u8 = 13;
    /// Interrupted (Ctrl+C or SIGTERM) during `produce` or `send`, after every record
    /// sent before was delivered and reported; 128 + SIGINT, as a shell reports it.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("{}", advise_cluster(.0))]
    Cluster(#[from] cluster::Error),
    #[error("{}", advise_producer(.0))]
    Producer(#[from] producer::Error),
    #[error("{}", advise_send(.0))]
    Send(#[from] producer::SendError),
    #[error("{}", advise_admin(.0))]
    Admin(#[from] admin::Error),
    #[error("{}", advise_consumer(.0))]
    Consumer(#[from] consumer::Error),
    #[error("{}", advise_registry(.0))]
    Registry(#[from] registry::Error),
    /// A setting from `--config` or `-X` refused (the message says where from).
    #[error("{}", advise_config(.0))]
    Config(#[from] config::Error),
    #[error("{0}")]
    Transaction(#[from] cafe_kafka::TransactionError),
    #[error("{failed} of {total} records were not delivered (see the reports above)")]
    DeliveryFailed { failed: u64, total: u64 },
    /// Every record that failed was refused by the topic's ACLs.
    #[error(
        "{failed} of {total} records were not delivered: {}",
        denial(ResponseError::TopicAuthorizationFailed, "Write", "topic", topic)
    )]
    WriteDenied { topic: String, failed: u64, total: u64 },
    #[error(
        "interrupted after sending {sent}{} records; each one sent was reported above",
        .of.map(|n| format!(" of {n}")).unwrap_or_default()
    )]
    Interrupted { sent: u64, of: Option<u64> },
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Other(String),
}

/// Who the broker sees, for the ACL messages ("User:bob"); set once the
/// settings are resolved, before anything connects.
static PRINCIPAL: OnceLock<String> = OnceLock::new();

pub fn set_principal(principal: String) {
    let _ = PRINCIPAL.set(principal);
}

fn principal() -> &'static str {
    PRINCIPAL.get().map_or("this client", String::as_str)
}

/// The ACL operation and resource a denial is about, and the line saying so.
fn denial(error: ResponseError, operation: &str, resource_type: &str, resource: &str) -> String {
    let flag = match resource_type {
        "topic" => format!("--topic {resource}"),
        "group" => format!("--group {resource}"),
        "transactional id" => format!("--transactional-id {resource}"),
        _ => "--cluster".into(),
    };
    format!(
        "not authorized: {} may not {operation} {resource_type} `{resource}` ({}); an admin can grant it with \
         kafka-acls --add --allow-principal {} --operation {operation} {flag}",
        principal(),
        error_name(error),
        principal(),
    )
}

/// Kafka's name of an error code (TOPIC_AUTHORIZATION_FAILED).
fn error_name(error: ResponseError) -> String {
    let camel = format!("{error:?}");
    let mut out = String::new();
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

fn is_acl(error: ResponseError) -> bool {
    matches!(
        error,
        ResponseError::TopicAuthorizationFailed
            | ResponseError::GroupAuthorizationFailed
            | ResponseError::ClusterAuthorizationFailed
            | ResponseError::TransactionalIdAuthorizationFailed
    )
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Cluster(e) => cluster_code(e),
            Error::Producer(producer::Error::Cluster(e)) => cluster_code(e),
            Error::Producer(producer::Error::Config(_)) => exit::USAGE,
            Error::Producer(_) => exit::FAILURE,
            Error::Transaction(_) => exit::TRANSACTION,
            Error::Send(e) => match &e.kind {
                producer::SendErrorKind::Metadata(c) => cluster_code(c),
                producer::SendErrorKind::Transaction(_) => exit::TRANSACTION,
                _ => exit::FAILURE,
            },
            Error::Admin(admin::Error::Cluster(e)) => cluster_code(e),
            Error::Admin(admin::Error::NotAuthorized { .. }) => exit::NOT_AUTHORIZED,
            Error::Admin(_) => exit::ADMIN,
            Error::Consumer(e) => consumer_code(e),
            Error::Registry(registry::Error::BadUrl(_)) => exit::USAGE,
            Error::Registry(_) => exit::REGISTRY,
            Error::Config(_) => exit::USAGE,
            Error::DeliveryFailed { .. } => exit::DELIVERY_FAILED,
            Error::WriteDenied { .. } => exit::NOT_AUTHORIZED,
            Error::Usage(_) => exit::USAGE,
            Error::Input(_) => exit::INPUT,
            Error::Other(_) => exit::FAILURE,
            Error::Interrupted { .. } => exit::INTERRUPTED,
        }
    }
}

/// The library's errors carry no exit codes: which one a failure gets is the CLI's
/// contract, decided here.
fn consumer_code(e: &consumer::Error) -> u8 {
    use consumer::Error as C;
    match e {
        C::Config(_) | C::NoGroupId | C::NoTopics | C::ClassicOnly { .. } => exit::USAGE,
        C::Cluster(e) => cluster_code(e),
        C::Group(g) if is_acl(g.error) => exit::NOT_AUTHORIZED,
        C::Group(_) => exit::GROUP,
        C::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
        C::Partition(PartitionError::Corrupt { .. }) => exit::UNREADABLE,
        C::Partition(PartitionError::TopicGone(_)) => exit::UNKNOWN_TOPIC,
        // `consumer::Error` is non-exhaustive: a kind added later is a plain failure.
        _ => exit::FAILURE,
    }
}

fn cluster_code(e: &cluster::Error) -> u8 {
    match e {
        cluster::Error::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
        cluster::Error::NoBootstrap => exit::USAGE,
        cluster::Error::TopicAuthorization(_) => exit::NOT_AUTHORIZED,
        cluster::Error::Topic { error, .. } if is_acl(*error) => exit::NOT_AUTHORIZED,
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
        wire::Error::TlsConfig { .. } | wire::Error::SaslConfig { .. } => exit::USAGE,
        wire::Error::Tls { .. }
        | wire::Error::SaslMechanism { .. }
        | wire::Error::SaslAuthentication { .. }
        | wire::Error::Sasl { .. } => exit::AUTHENTICATION,
        _ => exit::FAILURE,
    }
}

// The user's line for each library error: the library's message, then what to do
// about it where the CLI has something to say (most often after "; ").

fn advise_wire(e: &wire::Error) -> String {
    match e {
        wire::Error::Connect { .. } => format!("{e}; start one with `make kafka-up` or pass --bootstrap-server"),
        wire::Error::NotKafka { .. } => format!("{e}; check the port of --bootstrap-server"),
        wire::Error::Tls { failure, .. } => {
            let advice = match failure {
                wire::TlsFailure::Untrusted => "; give the CA that signed it with -X ssl.ca.location=FILE",
                wire::TlsFailure::WrongHost => {
                    "; connect by a name the certificate has, or (tests only) \
                     -X ssl.endpoint.identification.algorithm="
                }
                wire::TlsFailure::NotTls => "; check --security-protocol and the port",
                wire::TlsFailure::Refused => {
                    "; if the listener requires client certificates, give ssl.certificate.location and ssl.key.location"
                }
                _ => "",
            };
            format!("{e}{advice}")
        }
        wire::Error::SaslAuthentication { mechanism: "OAUTHBEARER", .. } => {
            format!("{e}; the token is invalid or has expired (sasl.oauthbearer.token, sasl.jaas.config)")
        }
        wire::Error::SaslAuthentication { .. } => {
            format!("{e}; check the user name and the password (CAFE_SASL_PASSWORD or the --config file)")
        }
        wire::Error::SaslMechanism { .. } => format!("{e}; pick one of those with --sasl-mechanism"),
        _ => e.to_string(),
    }
}

fn advise_cluster(e: &cluster::Error) -> String {
    match e {
        cluster::Error::Wire(w) => advise_wire(w),
        cluster::Error::UnknownTopic(t) => format!("{e}; create it with `cafe topic create {t}` (or `make topic`)"),
        cluster::Error::NoBootstrap => format!("{e}; pass --bootstrap-server host:port"),
        cluster::Error::TopicAuthorization(t) => {
            denial(ResponseError::TopicAuthorizationFailed, "Describe", "topic", t)
        }
        cluster::Error::Topic { topic, error } if is_acl(*error) => denial(*error, "Describe", "topic", topic),
        _ => e.to_string(),
    }
}

fn advise_config(e: &config::Error) -> String {
    match e {
        config::Error::Read { .. } => format!("{e} (given with --config)"),
        _ => e.to_string(),
    }
}

fn advise_producer(e: &producer::Error) -> String {
    match e {
        producer::Error::Cluster(c) => advise_cluster(c),
        _ => e.to_string(),
    }
}

fn advise_send(e: &producer::SendError) -> String {
    match &e.kind {
        producer::SendErrorKind::Metadata(c) => advise_cluster(c),
        _ => e.to_string(),
    }
}

fn advise_admin(e: &admin::Error) -> String {
    match e {
        admin::Error::Cluster(c) => advise_cluster(c),
        admin::Error::AlreadyExists(t) => format!("{e}; use `cafe topic recreate {t}` to start it afresh"),
        admin::Error::NotAuthorized { topic, operation, error } => {
            let (op, kind, name) = match (error, *operation) {
                (ResponseError::ClusterAuthorizationFailed, _) => ("Create", "cluster", "kafka-cluster"),
                (_, "create") => ("Create", "topic", topic.as_str()),
                _ => ("Delete", "topic", topic.as_str()),
            };
            denial(*error, op, kind, name)
        }
        admin::Error::NotReady { .. } => format!("{e}; check the broker log (`make kafka-logs`)"),
        _ => e.to_string(),
    }
}

fn advise_consumer(e: &consumer::Error) -> String {
    match e {
        consumer::Error::Cluster(c) => advise_cluster(c),
        consumer::Error::Group(g) => advise_group(g),
        consumer::Error::UnknownTopic(t) => format!("{e}; create it with `cafe topic create {t}`"),
        consumer::Error::NoGroupId => format!("{e}; pass --group NAME"),
        // The flag is the subject here: said instead of the library's "topic".
        consumer::Error::NoTopics => "invalid consumer setting: give at least one non-empty --topic".into(),
        consumer::Error::ClassicOnly { key, .. } => {
            let flag = format!("--{}", key.replace('.', "-"));
            format!("{e}; drop {flag} (or -X {key}), or use --group-protocol classic")
        }
        _ => e.to_string(),
    }
}

/// A fatal group error: the library's `group G: CODE — explanation`, with the
/// explanation phrased as the flag to change where one fits.
fn advise_group(g: &GroupError) -> String {
    match g.error {
        ResponseError::GroupAuthorizationFailed => return denial(g.error, "Read", "group", &g.group),
        ResponseError::TopicAuthorizationFailed => {
            return denial(g.error, "Read", "topic", "(a subscribed topic)");
        }
        _ => {}
    }
    let advice = match g.error {
        ResponseError::FencedInstanceId => {
            "another consumer runs with the same --group-instance-id; stop it or pick another id"
        }
        ResponseError::InconsistentGroupProtocol => {
            "the group's members use assignors cafe does not share; use --partition-assignment-strategy range"
        }
        ResponseError::InvalidSessionTimeout => {
            "session.timeout.ms is outside the broker's group.min/max.session.timeout.ms; change --session-timeout-ms"
        }
        ResponseError::InvalidGroupId => "the group id is invalid; pass a non-empty --group",
        _ => g.explanation.unwrap_or("see the broker log (`make kafka-logs`)"),
    };
    format!("group {}: {} — {advice}", g.group, g.error)
}

fn advise_registry(e: &registry::Error) -> String {
    use registry::Error as R;
    match e {
        // The flag names the setting; the library's reason says what is wrong with it.
        R::BadUrl(reason) => format!("--schema-registry {reason}"),
        R::Unreachable { .. } => format!("{e}; start one with `make registry-up` or pass --schema-registry URL"),
        // The only schema cafe registers is the cafe event's.
        R::InvalidSchema { .. } => format!("{e}; check schemas/cafe-event.schema.json"),
        R::SubjectNotFound { url, .. } => {
            format!("{e}; produce once with `cafe produce --schema-registry {url}` to register it")
        }
        R::Status { .. } => format!("{e}; see the registry's log (`make registry-logs`)"),
        R::BadResponse { .. } => format!("{e}; check --schema-registry"),
        R::NoRegistry { .. } => format!("{e}; pass --schema-registry URL or set CAFE_SCHEMA_REGISTRY"),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use cafe_kafka::consumer::ConsumerConfig;

    /// The line `cafe` prints for `lib` (after `cafe: `), checking first that the
    /// library's own message names no flag, make target or `cafe` command.
    fn line(lib: impl Into<Error> + std::fmt::Display) -> (String, u8) {
        let text = lib.to_string();
        assert!(
            !text.contains("--") && !text.contains("make ") && !text.contains("`cafe ") && !text.contains("schemas/"),
            "library says: {text}"
        );
        let e = lib.into();
        (e.to_string(), e.exit_code())
    }

    fn refused(addr: &str) -> wire::Error {
        let source = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "Connection refused (os error 111)");
        wire::Error::Connect { addr: addr.into(), source }
    }

    // The expected lines are README's "Bad input" table and the CLI tests' wording.

    #[test]
    fn broker_errors_say_how_to_start_or_find_one() {
        let want = "no broker at 127.0.0.1:1 (Connection refused (os error 111)); start one with `make kafka-up` \
                    or pass --bootstrap-server";
        assert_eq!(line(cluster::Error::Wire(refused("127.0.0.1:1"))), (want.into(), exit::UNREACHABLE));
        // The same error reached through the producer or admin reads the same.
        let via_producer = producer::Error::Cluster(cluster::Error::Wire(refused("127.0.0.1:1")));
        assert_eq!(line(via_producer), (want.into(), exit::UNREACHABLE));
        let via_admin = admin::Error::Cluster(cluster::Error::Wire(refused("127.0.0.1:1")));
        assert_eq!(line(via_admin), (want.into(), exit::UNREACHABLE));

        let not_kafka = wire::Error::NotKafka {
            addr: "127.0.0.1:8080".into(),
            reason: "its answer to ApiVersions was not a Kafka response".into(),
        };
        let want = "127.0.0.1:8080 does not speak the Kafka protocol (its answer to ApiVersions was not a Kafka \
                    response); check the port of --bootstrap-server";
        assert_eq!(line(cluster::Error::Wire(not_kafka)), (want.into(), exit::UNREACHABLE));
        let want = "no bootstrap server given; pass --bootstrap-server host:port";
        assert_eq!(line(cluster::Error::NoBootstrap), (want.into(), exit::USAGE));
    }

    #[test]
    fn unknown_topics_say_how_to_create_them() {
        let want = "topic `nope` does not exist; create it with `cafe topic create nope` (or `make topic`)";
        assert_eq!(line(cluster::Error::UnknownTopic("nope".into())), (want.into(), exit::UNKNOWN_TOPIC));
        let consumer = consumer::Error::Cluster(cluster::Error::UnknownTopic("nope".into()));
        assert_eq!(line(consumer), (want.into(), exit::UNKNOWN_TOPIC));
        let want = "topic `demo` does not exist (or was deleted); create it with `cafe topic create demo`";
        assert_eq!(line(consumer::Error::UnknownTopic("demo".into())), (want.into(), exit::UNKNOWN_TOPIC));
    }

    #[test]
    fn consumer_settings_name_the_flag_to_fix() {
        let invalid = |change: fn(&mut ConsumerConfig)| {
            let mut config = ConsumerConfig::default();
            config.group.group_id = "g".into();
            config.group.topics = vec!["t".into()];
            change(&mut config);
            line(config.validate().unwrap_err())
        };
        let want = "invalid consumer setting: group.id must not be empty; pass --group NAME";
        assert_eq!(invalid(|c| c.group.group_id = String::new()), (want.into(), exit::USAGE));
        let want = "invalid consumer setting: give at least one non-empty --topic";
        assert_eq!(invalid(|c| c.group.topics = vec![" ".into()]), (want.into(), exit::USAGE));
        let want = "invalid consumer setting: heartbeat.interval.ms must be lower than session.timeout.ms";
        assert_eq!(invalid(|c| c.group.heartbeat_interval = Duration::from_secs(50)), (want.into(), exit::USAGE));
        let (text, code) = invalid(|c| {
            c.group.protocol = cafe_kafka::GroupProtocol::Consumer;
            c.group.session_timeout = Duration::from_secs(10);
        });
        assert!(
            text.ends_with("drop --session-timeout-ms (or -X session.timeout.ms), or use --group-protocol classic"),
            "{text}"
        );
        assert_eq!(code, exit::USAGE);
    }

    #[test]
    fn fatal_group_errors_name_the_flag_to_change() {
        let fatal = |error| {
            let g = GroupError { group: "g".into(), error, explanation: cafe_kafka::group::explain(error) };
            line(consumer::Error::Group(g))
        };
        let fenced = ResponseError::FencedInstanceId;
        let want = format!(
            "group g: {fenced} — another consumer runs with the same --group-instance-id; stop it or pick another id"
        );
        assert_eq!(fatal(fenced), (want, exit::GROUP));
        let timeout = ResponseError::InvalidSessionTimeout;
        let (text, _) = fatal(timeout);
        assert!(text.ends_with("group.min/max.session.timeout.ms; change --session-timeout-ms"), "{text}");
        let (text, _) = fatal(ResponseError::InconsistentGroupProtocol);
        assert!(text.ends_with("use --partition-assignment-strategy range"), "{text}");
        let (text, _) = fatal(ResponseError::InvalidGroupId);
        assert!(text.ends_with("— the group id is invalid; pass a non-empty --group"), "{text}");
        // No flag to suggest: the library's explanation as it is.
        let (text, _) = fatal(ResponseError::GroupMaxSizeReached);
        assert!(text.ends_with("— the group is full (group.max.size); stop a member or use another group"), "{text}");
        let (text, _) = fatal(ResponseError::UnknownServerError);
        assert!(text.ends_with("— see the broker log (`make kafka-logs`)"), "{text}");
    }

    #[test]
    fn admin_errors_say_what_to_run() {
        let want = "topic `demo` already exists; use `cafe topic recreate demo` to start it afresh";
        assert_eq!(line(admin::Error::AlreadyExists("demo".into())), (want.into(), exit::ADMIN));
        let late = admin::Error::NotReady { topic: "demo".into(), what: "created", secs: 30 };
        let want = "topic `demo` was not created within 30 s; check the broker log (`make kafka-logs`)";
        assert_eq!(line(late), (want.into(), exit::ADMIN));
    }

    #[test]
    fn registry_errors_exit_with_code_7_and_say_what_to_do() {
        let url = "http://127.0.0.1:8081";
        let refused = registry::Error::Unreachable { url: url.into(), reason: "connection refused".into() };
        let want = "no schema registry at http://127.0.0.1:8081 (connection refused); start one with \
                    `make registry-up` or pass --schema-registry URL";
        assert_eq!(line(refused), (want.into(), exit::REGISTRY));
        let conflict =
            registry::Error::Incompatible { url: "u".into(), subject: "demo-value".into(), message: "m".into() };
        assert_eq!(line(conflict).1, exit::REGISTRY);
        let framed = registry::Error::NoRegistry { record: "t[0]@3".into(), id: 5 };
        let want = "t[0]@3 is framed for a schema registry (schema id 5) but none is configured; \
                    pass --schema-registry URL or set CAFE_SCHEMA_REGISTRY";
        assert_eq!(line(framed), (want.into(), exit::REGISTRY));
        let missing = registry::Error::SubjectNotFound { url: url.into(), subject: "demo-value".into() };
        let (text, _) = line(missing);
        assert!(
            text.ends_with("; produce once with `cafe produce --schema-registry http://127.0.0.1:8081` to register it")
        );
        let status = registry::Error::Status {
            url: url.into(),
            status: 500,
            call: "listing subjects".into(),
            message: "boom".into(),
        };
        assert!(line(status).0.ends_with("boom; see the registry's log (`make registry-logs`)"));
        let odd = registry::Error::BadResponse { url: url.into(), call: "listing subjects".into(), reason: "r".into() };
        assert!(line(odd).0.ends_with("(r); check --schema-registry"));
        let invalid = registry::Error::InvalidSchema {
            url: url.into(),
            subject: "demo-value".into(),
            message: "Invalid schema".into(),
        };
        let want = "the registry at http://127.0.0.1:8081 rejected the schema for `demo-value` as invalid \
                    (Invalid schema); check schemas/cafe-event.schema.json";
        assert_eq!(line(invalid), (want.into(), exit::REGISTRY));
    }

    #[test]
    fn a_bad_registry_url_is_a_usage_error_naming_the_flag() {
        let bad = cafe_kafka::registry::SchemaRegistry::new("ftp://x", Duration::from_secs(1)).err().expect("not http");
        let (text, code) = line(bad);
        assert!(text.starts_with("--schema-registry `ftp://x`: unsupported scheme"), "{text}");
        assert_eq!(code, exit::USAGE);
    }
}
