//! `cafe` against the secured broker of `scripts/kafka.sh up --secure`
//! (`make kafka-secure-up`): produce and consume, with a consumer group, over
//! SSL, SASL_SSL with PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and OAUTHBEARER,
//! SASL_PLAINTEXT and mTLS; a confluent-kafka peer reading what cafe wrote
//! over SASL_SSL; each failure (wrong password, mechanism not enabled, unknown
//! mechanism, expired token, wrong CA, wrong host name, TLS to a plaintext
//! port, missing client certificate) with its message and exit code; ACL
//! denials of a topic and a group that pass once `kafka-acls` grants them; and
//! no secret in the output, debug logs included.
//!
//! The broker's listeners, users and certificates are described at the top of
//! scripts/kafka.sh. When it is not running, every test here fails saying how
//! to start it.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use common::consume_json::records_in;
use common::{assert_success, cafe_bin, json_lines, listening, repo_root, run_peer, run_with_deadline, stderr};

const SSL: &str = "127.0.0.1:9392";
const SASL_SSL: &str = "127.0.0.1:9393";
const SASL_PLAINTEXT: &str = "127.0.0.1:9394";
const MTLS: &str = "127.0.0.1:9396";

/// The exit codes of the README's table.
const USAGE: i32 = 2;
const AUTHENTICATION: i32 = 11;
const NOT_AUTHORIZED: i32 = 12;

/// A failure must come back well within this (a hang or a retry loop would not).
const FAIL_WITHIN: Duration = Duration::from_secs(60);

/// The certificates and tool settings `kafka.sh up --secure` made, after
/// checking that every listener answers; panics saying how to start the broker.
fn tls_dir() -> PathBuf {
    static CHECKED: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let dir = repo_root().join(".run/kafka/secure/tls");
        let down: Vec<&str> = [SSL, SASL_SSL, SASL_PLAINTEXT, MTLS].into_iter().filter(|a| !listening(a)).collect();
        if !down.is_empty() || !dir.join("ca.pem").is_file() {
            return Err(format!(
                "the secured broker is not running (nothing answers at {down:?}, or no {}); start it with \
                 `make kafka-secure-up` (scripts/kafka.sh up --secure) and run the tests again",
                dir.join("ca.pem").display()
            ));
        }
        Ok(dir)
    });
    match checked {
        Ok(dir) => dir.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

fn tls_file(name: &str) -> String {
    tls_dir().join(name).display().to_string()
}

/// How one test connects: the bootstrap server, settings, and the environment
/// (`CAFE_SASL_PASSWORD`).
#[derive(Clone, Default)]
struct Profile {
    args: Vec<String>,
    env: Vec<(String, String)>,
    /// The client.properties file given with --config, kept until the profile is dropped.
    _file: Option<std::sync::Arc<PropertiesFile>>,
}

impl Profile {
    fn new(bootstrap: &str, settings: &[&str]) -> Self {
        let _ = tls_dir(); // fails the test, saying how to start the broker, when it is down
        let mut args = vec!["-b".to_owned(), bootstrap.to_owned()];
        for s in settings {
            args.push("-X".into());
            args.push((*s).to_owned());
        }
        Self { args, ..Self::default() }
    }

    fn flags(mut self, flags: &[&str]) -> Self {
        self.args.extend(flags.iter().map(|s| s.to_string()));
        self
    }

    fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Settings in a Java client.properties file, as a managed service hands it out.
    fn file(text: &str) -> Self {
        let file = PropertiesFile::new(text);
        let args = vec!["--config".to_owned(), file.0.display().to_string()];
        Self { args, _file: Some(std::sync::Arc::new(file)), ..Self::default() }
    }

    fn run(&self, args: &[&str], limit: Duration) -> Output {
        self.run_env(args, limit, &[])
    }

    fn run_env(&self, args: &[&str], limit: Duration, extra_env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(cafe_bin());
        // `make test` exports CAFE_BOOTSTRAP for the plaintext broker; it would count as -b.
        cmd.env_remove("CAFE_BOOTSTRAP").env_remove("CAFE_SASL_PASSWORD");
        cmd.args(&self.args).args(args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        run_with_deadline(cmd, b"", limit)
    }
}

struct PropertiesFile(PathBuf);

impl PropertiesFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("cafe-security-{}.properties", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, text).expect("write a properties file");
        Self(path)
    }
}

impl Drop for PropertiesFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn ca() -> String {
    format!("ssl.ca.location={}", tls_file("ca.pem"))
}

/// The super user `admin` over SASL_SSL with SCRAM-SHA-512, password from the environment.
fn admin() -> Profile {
    Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", &ca()])
        .flags(&["--sasl-username", "admin"])
        .env("CAFE_SASL_PASSWORD", "admin-secret")
}

/// `bob`, who has no ACLs until a test adds them, over SASL_SSL with PLAIN.
fn bob() -> Profile {
    Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", &ca()])
        .flags(&["--sasl-mechanism", "PLAIN", "--sasl-username", "bob"])
        .env("CAFE_SASL_PASSWORD", "bob-secret")
}

fn create_topic(p: &Profile, topic: &str) {
    let out = p.run(&["topic", "create", topic, "--partitions", "3", "--replication-factor", "1"], FAIL_WITHIN);
    assert_success(&out, &format!("creating {topic}"));
}

fn produce(p: &Profile, topic: &str, n: usize) {
    let count = n.to_string();
    let out = p.run(&["produce", "-t", topic, "-n", &count, "--json"], FAIL_WITHIN);
    assert_success(&out, &format!("producing to {topic}"));
    assert_eq!(json_lines(&out).len(), n, "one delivery report per record");
}

/// Consumes `n` records of `topic` as a member of `group`.
fn consume(p: &Profile, topic: &str, group: &str, n: usize) -> Output {
    let count = n.to_string();
    let args = ["consume", "-t", topic, "-g", group, "--json", "--max-messages", &count, "--idle-exit", "30s"];
    p.run(&args, FAIL_WITHIN)
}

/// Creates a topic, produces 5 records and consumes them in a group, all with `p`.
fn round_trip(p: &Profile, name: &str) {
    let topic = common::unique_topic(&format!("sec-{name}"));
    create_topic(p, &topic);
    produce(p, &topic, 5);
    let out = consume(p, &topic, &format!("{topic}-group"), 5);
    assert_success(&out, &format!("consuming {topic}"));
    assert_eq!(records_in(&out).len(), 5, "all 5 records back:\n{}", stderr(&out));
}

#[test]
fn ssl_produce_and_consume() {
    round_trip(&Profile::new(SSL, &["security.protocol=SSL", &ca()]), "ssl");
}

#[test]
fn sasl_ssl_plain_from_a_confluent_cloud_style_properties_file() {
    // librdkafka's `sasl.mechanisms` and a JAAS line, as Confluent Cloud writes them.
    let p = Profile::file(&format!(
        "bootstrap.servers={SASL_SSL}\nsecurity.protocol=SASL_SSL\nsasl.mechanisms=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"admin\" password=\"admin-secret\";\n{}\n",
        ca()
    ));
    round_trip(&p, "plain");
}

#[test]
fn sasl_ssl_scram_sha_256() {
    let p = Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", &ca(), "sasl.username=admin"])
        .flags(&["--sasl-mechanism", "SCRAM-SHA-256"])
        .env("CAFE_SASL_PASSWORD", "admin-secret");
    round_trip(&p, "scram256");
}

#[test]
fn sasl_ssl_scram_sha_512() {
    let jaas = "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
                username=\"admin\" password=\"admin-secret\";";
    let p = Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", "sasl.mechanism=SCRAM-SHA-512", &ca(), jaas]);
    round_trip(&p, "scram512");
}

#[test]
fn sasl_ssl_oauthbearer_unsecured_jwt() {
    let jaas = "sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                unsecuredLoginStringClaim_sub=\"admin\";";
    let p = Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", "sasl.mechanism=OAUTHBEARER", &ca(), jaas]);
    round_trip(&p, "oauth");
}

#[test]
fn sasl_plaintext_scram_sha_256() {
    let p = Profile::new(SASL_PLAINTEXT, &["sasl.mechanism=SCRAM-SHA-256", "sasl.username=admin"])
        .flags(&["--security-protocol", "SASL_PLAINTEXT"])
        .env("CAFE_SASL_PASSWORD", "admin-secret");
    round_trip(&p, "saslplain");
}

#[test]
fn mtls_client_certificate() {
    let p = Profile::new(
        MTLS,
        &[
            "security.protocol=SSL",
            &ca(),
            &format!("ssl.certificate.location={}", tls_file("client.pem")),
            &format!("ssl.key.location={}", tls_file("client-key.pem")),
        ],
    );
    round_trip(&p, "mtls");
}

#[test]
fn confluent_kafka_reads_what_cafe_wrote_over_sasl_ssl() {
    let topic = common::unique_topic("sec-peer");
    let p = admin();
    create_topic(&p, &topic);
    produce(&p, &topic, 7);
    let ca_file = tls_file("ca.pem");
    let settings = [
        "security.protocol=SASL_SSL".to_owned(),
        "sasl.mechanisms=SCRAM-SHA-512".to_owned(),
        "sasl.username=admin".to_owned(),
        "sasl.password=admin-secret".to_owned(),
        format!("ssl.ca.location={ca_file}"),
    ];
    let mut args = vec!["--bootstrap", SASL_SSL, "--topic", &topic, "--expect", "7"];
    for s in &settings {
        args.push("-X");
        args.push(s);
    }
    let out = run_peer("read_all.py", &args);
    assert_success(&out, "confluent-kafka reading over SASL_SSL");
    assert_eq!(json_lines(&out).len(), 7);
}

/// Runs `cafe topic describe` with `p` and expects it to fail with `code` and
/// a message containing each of `says`, in bounded time.
fn expect_failure(p: &Profile, code: i32, says: &[&str]) -> String {
    let started = Instant::now();
    let out = p.run(&["topic", "describe", "any-topic"], FAIL_WITHIN);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(code), "exit code; stderr:\n{err}");
    let line = err.lines().find(|l| l.starts_with("cafe: ")).unwrap_or_else(|| panic!("no error line in:\n{err}"));
    for s in says {
        assert!(line.contains(s), "`{s}` missing from: {line}");
    }
    // Bounded: the deadline of run_with_deadline catches a hang; this says how long it took.
    eprintln!("failed as expected after {:?}: {line}", started.elapsed());
    line.to_owned()
}

#[test]
fn wrong_password_fails_authentication() {
    let p = admin().env("CAFE_SASL_PASSWORD", "not-the-password");
    let line = expect_failure(&p, AUTHENTICATION, &["SASL SCRAM-SHA-512 authentication with", "failed"]);
    assert!(!line.contains("not-the-password"), "the password must not be printed: {line}");
}

#[test]
fn mechanism_not_enabled_and_unknown_mechanism() {
    let p = Profile::new(SASL_PLAINTEXT, &["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=SCRAM-SHA-512"])
        .flags(&["--sasl-username", "admin"])
        .env("CAFE_SASL_PASSWORD", "admin-secret");
    expect_failure(&p, AUTHENTICATION, &["does not enable SASL mechanism SCRAM-SHA-512", "PLAIN, SCRAM-SHA-256"]);
    let p = Profile::new(SASL_PLAINTEXT, &["security.protocol=SASL_PLAINTEXT"]).flags(&["--sasl-mechanism", "MD5"]);
    expect_failure(&p, USAGE, &["--sasl-mechanism MD5", "expected PLAIN, SCRAM-SHA-256"]);
    let p = Profile::new(SASL_PLAINTEXT, &["security.protocol=SASL_PLAINTEXT", "sasl.mechanism=PLAIN"]);
    expect_failure(&p, USAGE, &["needs a user name"]);
}

#[test]
fn expired_token_fails_authentication() {
    // An unsecured JWT ({"alg":"none"}) for `admin` that expired in 1970.
    let token = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiIsImlhdCI6MTAwMCwiZXhwIjoyMDAwfQ.";
    let p = Profile::new(SASL_SSL, &["security.protocol=SASL_SSL", "sasl.mechanism=OAUTHBEARER", &ca()])
        .flags(&["-X", &format!("sasl.oauthbearer.token={token}")]);
    let line = expect_failure(&p, AUTHENTICATION, &["SASL OAUTHBEARER authentication with", "invalid or has expired"]);
    assert!(!line.contains(token), "the token must not be printed: {line}");
}

#[test]
fn tls_failures_say_which() {
    let ssl = |addr: &str, settings: &[&str]| {
        let mut all = vec!["security.protocol=SSL"];
        all.extend_from_slice(settings);
        Profile::new(addr, &all)
    };
    let other_ca = format!("ssl.ca.location={}", tls_file("other-ca.pem"));
    expect_failure(&ssl(SSL, &[&other_ca]), AUTHENTICATION, &["not signed by a trusted CA", "ssl.ca.location"]);
    // The broker's certificate names 127.0.0.1 only.
    expect_failure(&ssl("localhost:9392", &[&ca()]), AUTHENTICATION, &["does not name this host"]);
    // ...which an empty ssl.endpoint.identification.algorithm accepts.
    let out = ssl("localhost:9392", &[&ca(), "ssl.endpoint.identification.algorithm="])
        .run(&["topic", "describe", &common::unique_topic("none")], FAIL_WITHIN);
    assert_eq!(out.status.code(), Some(4), "connected, and the topic is unknown: {}", stderr(&out));
    expect_failure(&ssl(SASL_PLAINTEXT, &[&ca()]), AUTHENTICATION, &["is this a plaintext port?"]);
    expect_failure(&ssl(MTLS, &[&ca()]), AUTHENTICATION, &["refused the handshake", "ssl.certificate.location"]);
    let missing = "ssl.ca.location=/nonexistent/ca.pem";
    expect_failure(&ssl(SSL, &[missing]), USAGE, &["`ssl.ca.location` /nonexistent/ca.pem"]);
}

/// `kafka-acls --add` on the secured broker, as `admin`.
fn grant(args: &[&str]) {
    let config = tls_file("admin.properties");
    let mut all = vec!["--bootstrap-server", SASL_PLAINTEXT, "--command-config", &config, "--add", "--allow-principal"];
    all.push("User:bob");
    all.extend_from_slice(args);
    let out = common::kafka_tool("org.apache.kafka.tools.AclCommand", &all);
    assert_success(&out, &format!("kafka-acls {args:?}"));
}

/// Retries `run` while the broker has not applied a new ACL yet (it does so
/// from its metadata log, a moment after kafka-acls returns), up to 20 s.
fn once_allowed(what: &str, run: impl Fn() -> Output) -> Output {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = run();
        if out.status.code() != Some(NOT_AUTHORIZED) || Instant::now() > deadline {
            assert_success(&out, what);
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn acls_deny_a_topic_and_a_group_until_granted() {
    let topic = common::unique_topic("sec-acl");
    let group = format!("{topic}-group");
    create_topic(&admin(), &topic);

    let own = common::unique_topic("sec-acl-bob");
    let out = bob().run(&["topic", "create", &own, "--partitions", "1", "--replication-factor", "1"], FAIL_WITHIN);
    assert_eq!(out.status.code(), Some(NOT_AUTHORIZED), "{}", stderr(&out));
    assert!(stderr(&out).contains(&format!("User:bob may not Create topic `{own}`")), "{}", stderr(&out));

    let out = bob().run(&["produce", "-t", &topic, "-n", "1"], FAIL_WITHIN);
    assert_eq!(out.status.code(), Some(NOT_AUTHORIZED), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "not authorized: User:bob may not Describe topic `{topic}` (TOPIC_AUTHORIZATION_FAILED)"
        )),
        "{err}"
    );

    // Describe alone: the metadata is his to see, the records are not his to write.
    grant(&["--operation", "Describe", "--topic", &topic]);
    let denied = || bob().run(&["produce", "-t", &topic, "-n", "2"], FAIL_WITHIN);
    let mut out = denied();
    let deadline = Instant::now() + Duration::from_secs(20);
    while stderr(&out).contains("may not Describe") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(500));
        out = denied();
    }
    assert_eq!(out.status.code(), Some(NOT_AUTHORIZED), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "2 of 2 records were not delivered: not authorized: User:bob may not Write topic `{topic}`"
        )),
        "{err}"
    );

    grant(&["--operation", "Write", "--operation", "Read", "--topic", &topic]);
    once_allowed("producing once bob may", || bob().run(&["produce", "-t", &topic, "-n", "3"], FAIL_WITHIN));

    let out = consume(&bob(), &topic, &group, 3);
    assert_eq!(out.status.code(), Some(NOT_AUTHORIZED), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("not authorized: User:bob may not Read group `{group}` (GROUP_AUTHORIZATION_FAILED)")),
        "{err}"
    );

    grant(&["--operation", "Read", "--group", &group]);
    let out = once_allowed("consuming once bob may use the group", || consume(&bob(), &topic, &group, 3));
    assert_eq!(records_in(&out).len(), 3);
}

#[test]
fn no_secret_is_printed_even_in_debug_logs() {
    let topic = common::unique_topic("sec-log");
    let secret = "admin-secret";
    let p = Profile::file(&format!(
        "bootstrap.servers={SASL_SSL}\nsecurity.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"admin\" password=\"{secret}\";\n{}\n",
        ca()
    ));
    let debug = [("CAFE_LOG", "debug")];
    let out =
        p.run_env(&["topic", "create", &topic, "--partitions", "1", "--replication-factor", "1"], FAIL_WITHIN, &debug);
    assert_success(&out, "creating a topic with debug logs");
    let out2 = p.run_env(&["produce", "-t", &topic, "-n", "2"], FAIL_WITHIN, &debug);
    assert_success(&out2, "producing with debug logs");
    // A failing run prints the error too; the password given must not be in it.
    let wrong = admin().env("CAFE_SASL_PASSWORD", "wrong-pass-4711");
    let out3 = wrong.run_env(&["topic", "describe", &topic], FAIL_WITHIN, &debug);
    assert_eq!(out3.status.code(), Some(AUTHENTICATION));
    // --help with the password in the environment.
    let out4 = admin().run(&["--help"], FAIL_WITHIN);
    let mut seen = 0;
    for (out, secret) in [(&out, secret), (&out2, secret), (&out3, "wrong-pass-4711"), (&out4, secret)] {
        let all = format!("{}{}", common::stdout(out), stderr(out));
        seen += all.lines().count();
        assert!(!all.contains(secret), "`{secret}` printed:\n{all}");
    }
    assert!(seen > 20, "the debug logs were printed ({seen} lines)");
}

/// KIP-368: the SASL_PLAINTEXT listener ends sessions after 10 s. A connection
/// past 85 % of that reads as closed, so the cluster opens a freshly
/// authenticated one, and requests keep working past the session's end.
#[tokio::test]
async fn connections_are_replaced_before_their_sasl_session_ends() {
    use cafe_kafka::ClientConfig;
    let _ = tls_dir(); // the broker is up
    let mut client = ClientConfig::default();
    for (k, v) in [
        ("bootstrap.servers", SASL_PLAINTEXT),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "SCRAM-SHA-256"),
        ("sasl.username", "admin"),
        ("sasl.password", "admin-secret"),
    ] {
        client.set(k, v).expect("a valid setting");
    }
    let cluster = client.connect().await.expect("connect over SASL_PLAINTEXT");
    let first = cluster.any_connection().await.expect("a connection");
    assert!(!first.is_closed(), "a new session is open");
    cluster.list_topics().await.expect("metadata within the session");
    // Past the 85 % mark (8.5 s) of the 10 s session, and past its end.
    tokio::time::sleep(Duration::from_millis(10_500)).await;
    assert!(first.is_closed(), "the old connection reads as closed once its session nears its end");
    cluster.list_topics().await.expect("metadata after the first session ended");
    let second = cluster.any_connection().await.expect("a connection");
    assert!(!std::sync::Arc::ptr_eq(&first, &second), "a new, re-authenticated connection");
}
