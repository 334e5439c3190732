//! Helpers shared by the integration tests: where the broker is, unique topic
//! names, running the `cafe` binary, the Python peers and the Java tools, each
//! with a deadline so a hung child fails the test instead of hanging it.
//!
//! Every test that needs Kafka calls [`bootstrap`], which fails (never skips)
//! with a message saying how to start the broker when nothing answers.

// Each test crate compiles this module on its own and uses only part of it.
#![allow(dead_code)]

pub mod background;
pub mod consume_json;
pub mod member;
pub mod proxy;
pub mod records;
pub mod totals;

#[allow(unused_imports)] // not every test crate runs background processes
pub use background::{Background, BackgroundEnd};

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How long one run of `cafe` may take before the test gives up on it.
pub const CAFE_TIMEOUT: Duration = Duration::from_secs(120);
/// Java tools start a JVM on a small shared machine: give them longer.
pub const TOOL_TIMEOUT: Duration = Duration::from_secs(180);

/// The repository root (where `scripts/` lives).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// True when something accepts TCP connections at `host:port` (within 3 s).
pub fn listening(authority: &str) -> bool {
    authority
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|sa| TcpStream::connect_timeout(&sa, Duration::from_secs(3)).is_ok())
}

/// The broker address from `CAFE_BOOTSTRAP` (default `127.0.0.1:9092`), after
/// checking that something accepts connections there. Panics with how to start
/// Kafka when nothing does: a test that needs the broker must not silently pass.
pub fn bootstrap() -> String {
    static CHECKED: OnceLock<Result<String, String>> = OnceLock::new();
    let checked = CHECKED.get_or_init(|| {
        let addr = std::env::var("CAFE_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
        let first = addr.split(',').next().unwrap_or_default().trim().to_owned();
        if listening(&first) {
            Ok(addr)
        } else {
            Err(format!(
                "no Kafka broker answers at {first} (CAFE_BOOTSTRAP={addr}); \
                 start one with `make kafka-up` (scripts/kafka.sh up) and run the tests again"
            ))
        }
    });
    match checked {
        Ok(addr) => addr.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// `prefix-<uuid>`: a topic (or group) name no other test run uses.
pub fn unique_topic(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// The `cafe` binary Cargo built for this test run.
pub fn cafe_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cafe"))
}

/// Runs `cafe args...` with `stdin` as standard input, within [`CAFE_TIMEOUT`].
/// The broker address comes from `CAFE_BOOTSTRAP`, as for the binary itself;
/// pass `-b` in `args` to override it.
pub fn run_cafe(args: &[&str], stdin: &[u8]) -> Output {
    run_cafe_within(args, stdin, CAFE_TIMEOUT)
}

/// [`run_cafe`] with an explicit deadline.
pub fn run_cafe_within(args: &[&str], stdin: &[u8], limit: Duration) -> Output {
    let mut cmd = Command::new(cafe_bin());
    cmd.args(args);
    run_with_deadline(cmd, stdin, limit)
}

/// Creates `name` with `partitions` partitions (replication factor 1) through
/// `cafe topic create`, which returns once every partition has a leader.
pub fn create_topic(name: &str, partitions: i32) {
    let bootstrap = bootstrap();
    let parts = partitions.to_string();
    let out = run_cafe(&["-b", &bootstrap, "topic", "create", name, "--partitions", &parts], b"");
    assert_success(&out, &format!("creating topic {name}"));
}

/// Creates `name` afresh with `partitions` partitions (`cafe topic recreate`).
pub fn recreate_topic(name: &str, partitions: i32) {
    let bootstrap = bootstrap();
    let parts = partitions.to_string();
    let out = run_cafe(&["-b", &bootstrap, "topic", "recreate", name, "--partitions", &parts], b"");
    assert_success(&out, &format!("recreating topic {name}"));
}

/// Deletes `name`, best effort: tests call it at the end of a passing run, so a
/// failing test leaves its topic behind for inspection.
pub fn delete_topic(name: &str) {
    let bootstrap = bootstrap();
    let _ = run_cafe(&["-b", &bootstrap, "topic", "delete", name], b"");
}

/// The Python interpreter of the peer-client venv (confluent-kafka, kafka-python):
/// `CAFE_PEER_PYTHON` if set, else what `scripts/py-peers.sh` prints (it creates
/// the venv on first use and answers at once afterwards).
pub fn peer_python() -> PathBuf {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let found = PYTHON.get_or_init(|| {
        if let Some(p) = std::env::var_os("CAFE_PEER_PYTHON") {
            let p = PathBuf::from(p);
            return if p.is_file() { Ok(p) } else { Err(format!("CAFE_PEER_PYTHON={} is not a file", p.display())) };
        }
        let script = repo_root().join("scripts/py-peers.sh");
        let mut cmd = Command::new("bash");
        cmd.arg(&script);
        let out = run_with_deadline(cmd, b"", Duration::from_secs(600));
        let stdout = String::from_utf8_lossy(&out.stdout);
        let path = stdout.lines().rev().map(str::trim).find(|l| !l.is_empty()).map(PathBuf::from);
        match path {
            Some(p) if out.status.success() && p.is_file() => Ok(p),
            _ => Err(format!(
                "no peer Python venv: `{}` failed ({}):\n{}\nrun scripts/py-peers.sh by hand, or set CAFE_PEER_PYTHON",
                script.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    });
    match found {
        Ok(p) => p.clone(),
        Err(msg) => panic!("{msg}"),
    }
}

/// Runs the peer script `tests/peers/<script>` with the venv's Python.
pub fn run_peer(script: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(peer_python());
    cmd.arg(repo_root().join("tests/peers").join(script)).args(args);
    run_with_deadline(cmd, b"", TOOL_TIMEOUT)
}

/// Runs a Kafka CLI tool through `scripts/kafka.sh tool <alias> args...`
/// (aliases such as `topics`, `console-consumer`, `consumer-groups`).
pub fn kafka_tool(alias: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/kafka.sh")).arg("tool").arg(alias).args(args);
    run_with_deadline(cmd, b"", TOOL_TIMEOUT)
}

/// Runs `cmd` with `stdin` fed in and both outputs captured; kills it and panics
/// when it outlives `limit`.
pub fn run_with_deadline(mut cmd: Command, stdin: &[u8], limit: Duration) -> Output {
    let what = format!("{cmd:?}");
    let mut child = spawn_piped(&mut cmd, Stdio::piped());
    // Feed and drain on threads: a child blocked on a full pipe would never exit.
    let mut input = child.stdin.take().expect("stdin is piped");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        // A child that exits without reading all of stdin is not our error.
        let _ = input.write_all(&data);
    });
    let drain = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("stdout is piped")));
    let err = drain(Box::new(child.stderr.take().expect("stderr is piped")));
    let deadline = Instant::now() + limit;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                let stderr = err.join().unwrap_or_default();
                panic!(
                    "{what} still running after {limit:?}; killed it. stderr:\n{}",
                    String::from_utf8_lossy(&stderr)
                );
            }
            Err(e) => panic!("waiting for {what}: {e}"),
        }
    };
    let _ = feeder.join();
    Output { status, stdout: out.join().unwrap_or_default(), stderr: err.join().unwrap_or_default() }
}

/// Starts `cmd` with both outputs piped; panics naming it when it cannot start.
pub fn spawn_piped(cmd: &mut Command, stdin: Stdio) -> std::process::Child {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"))
}

/// Panics with both outputs unless `out` exited 0.
pub fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Standard output as text.
pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Every non-empty stdout line parsed as JSON (delivery reports with `--json`,
/// peer script output). Panics naming the line that is not JSON.
pub fn json_lines(out: &Output) -> Vec<serde_json::Value> {
    stdout(out)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// This machine's host name, found independently of `cafe`'s own lookup.
pub fn host_name() -> String {
    let from_cmd = Command::new("hostname")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    from_cmd
        .filter(|h| !h.is_empty())
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok().map(|s| s.trim().to_owned()))
        .expect("cannot find this machine's host name")
}

/// How a [`FakeServer`] treats each connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeBehaviour {
    /// Answers anything with an HTTP error page, then closes (a web server on the port).
    HttpReply,
    /// Accepts and closes at once.
    CloseAtOnce,
    /// Accepts, reads and never answers (a stuck service).
    Silent,
}

/// A loopback TCP server that is not Kafka, for testing what a client says when
/// pointed at the wrong port. Stops accepting when dropped.
pub struct FakeServer {
    addr: std::net::SocketAddr,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl FakeServer {
    pub fn start(behaviour: FakeBehaviour) -> Self {
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut conn) = conn else { continue };
                std::thread::spawn(move || match behaviour {
                    FakeBehaviour::HttpReply => {
                        let mut buf = [0u8; 1024];
                        let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                        let _ = conn.read(&mut buf);
                        let _ = conn.write_all(
                            b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nbad request\n",
                        );
                    }
                    FakeBehaviour::CloseAtOnce => drop(conn),
                    FakeBehaviour::Silent => {
                        // Read until the client gives up and closes.
                        let mut buf = [0u8; 1024];
                        while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
                    }
                });
            }
        });
        Self { addr, stop }
    }

    /// `127.0.0.1:<port>`.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        // Wake the blocked accept so the thread sees the flag and ends.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
    }
}

/// [`kafka_tool`] with `stdin` fed to the tool (e.g. lines for `console-producer`).
pub fn kafka_tool_with_stdin(alias: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut cmd = Command::new("bash");
    cmd.arg(repo_root().join("scripts/kafka.sh")).arg("tool").arg(alias).args(args);
    run_with_deadline(cmd, stdin, TOOL_TIMEOUT)
}

/// The single node's `log.dirs` (where each partition's segment files live, as
/// `<topic>-<partition>/*.log`): `CAFE_KAFKA_LOG_DIR` if set, else
/// `.run/kafka/single/data` of this checkout, where `scripts/kafka.sh up` keeps it.
pub fn broker_log_dir() -> PathBuf {
    match std::env::var_os("CAFE_KAFKA_LOG_DIR") {
        Some(d) => PathBuf::from(d),
        None => repo_root().join(".run/kafka/single/data"),
    }
}

/// The N of the final `cafe: consumed N records` line `cafe consume` prints on stderr.
pub fn consumed_count(stderr: &str) -> u64 {
    stderr
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("cafe: consumed ")?.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no `cafe: consumed N records` line in stderr:\n{stderr}"))
}
