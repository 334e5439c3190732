//! The child-process harness of the integration tests: a process (a `cafe
//! consume` group member, a peer script) that runs while the test changes the
//! cluster, its output collected line by line on threads, stopped with a signal
//! or `kill -9`, and read back as `cafe consume --json` lines
//! ([`consume_json`](super::consume_json)) when it is a consumer.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::consume_json::{self, Assignment, TopicPartition};
use super::{cafe_bin, spawn_piped};

/// How many of the last stdout lines a failure message shows.
const SHOWN_STDOUT_LINES: usize = 40;

/// A child process running in the background, its output collected line by
/// line while it runs. Killed when dropped, so a failing test leaves nothing
/// behind to disturb the next run.
pub struct Background {
    name: String,
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
    readers: Vec<JoinHandle<()>>,
}

/// How a [`Background`] process ended.
pub struct BackgroundEnd {
    pub status: ExitStatus,
    pub stdout: Vec<String>,
    pub stderr: Vec<String>,
}

impl Background {
    /// Starts `cmd` with stdin closed and both outputs collected.
    pub fn spawn(name: &str, cmd: Command) -> Self {
        Self::start(name, cmd, Stdio::null())
    }

    /// Starts `cmd` with stdin open for [`stdin`](Self::stdin) and both outputs collected.
    pub fn spawn_with_stdin(name: &str, cmd: Command) -> Self {
        Self::start(name, cmd, Stdio::piped())
    }

    /// The child's stdin (with [`spawn_with_stdin`](Self::spawn_with_stdin)).
    pub fn stdin(&mut self) -> &mut std::process::ChildStdin {
        self.child.stdin.as_mut().expect("started with spawn_with_stdin")
    }

    fn start(name: &str, mut cmd: Command, stdin: Stdio) -> Self {
        let mut child = spawn_piped(&mut cmd, stdin);
        let out = Arc::new(Mutex::new(Vec::new()));
        let err = Arc::new(Mutex::new(Vec::new()));
        // Read on threads: a child blocked on a full pipe would stop consuming.
        let collect = |r: Box<dyn Read + Send>, into: Arc<Mutex<Vec<String>>>| {
            std::thread::spawn(move || {
                for line in BufReader::new(r).lines() {
                    let Ok(line) = line else { break };
                    into.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            })
        };
        let readers = vec![
            collect(Box::new(child.stdout.take().expect("stdout is piped")), Arc::clone(&out)),
            collect(Box::new(child.stderr.take().expect("stderr is piped")), Arc::clone(&err)),
        ];
        Self { name: name.to_owned(), child, out, err, readers }
    }

    /// `cafe args...` in the background (warnings only on stderr, as a user sees).
    pub fn cafe<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S]) -> Self {
        let mut cmd = Command::new(cafe_bin());
        cmd.args(args).env("NO_COLOR", "1");
        Self::spawn(name, cmd)
    }

    /// `cafe args...` with the log filter `CAFE_LOG=filter`, so a failure
    /// message shows what the client did (joins, assignments, retries).
    pub fn cafe_logging<S: AsRef<std::ffi::OsStr>>(name: &str, args: &[S], filter: &str) -> Self {
        let mut cmd = Command::new(cafe_bin());
        cmd.args(args).env("CAFE_LOG", filter).env("NO_COLOR", "1");
        Self::spawn(name, cmd)
    }

    pub fn stdout_lines(&self) -> Vec<String> {
        self.out.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn stderr_lines(&self) -> Vec<String> {
        self.err.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// True while the process has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Both outputs so far (the last stdout lines, all of stderr), for a failure message.
    pub fn describe(&self) -> String {
        let out = self.stdout_lines();
        let shown = &out[out.len().saturating_sub(SHOWN_STDOUT_LINES)..];
        format!(
            "--- {} stdout ({} lines, the last {} shown)\n{}\n--- {} stderr\n{}",
            self.name,
            out.len(),
            shown.len(),
            shown.join("\n"),
            self.name,
            self.stderr_lines().join("\n")
        )
    }

    /// Polls `check(stdout lines)` every 100 ms until it holds; panics after
    /// `limit`, or as soon as the process exits without it holding.
    pub fn wait_for(&mut self, limit: Duration, what: &str, check: impl Fn(&[String]) -> bool) {
        let deadline = Instant::now() + limit;
        loop {
            if check(&self.stdout_lines()) {
                return;
            }
            if !self.running() {
                // Its last lines may still be in the pipe: look once more.
                std::thread::sleep(Duration::from_millis(200));
                if check(&self.stdout_lines()) {
                    return;
                }
                panic!("{} exited ({:?}) before {what}\n{}", self.name, self.child.try_wait(), self.describe());
            }
            if Instant::now() > deadline {
                panic!("timed out after {limit:?} waiting for {what}\n{}", self.describe());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// [`wait_for`](Self::wait_for) on the records a `cafe consume --json` printed so far.
    pub fn wait_for_records(&mut self, limit: Duration, what: &str, check: impl Fn(&[Value]) -> bool) {
        self.wait_for(limit, what, |lines| check(&consume_json::records(lines)))
    }

    /// The records a `cafe consume --json` printed so far.
    pub fn records(&self) -> Vec<Value> {
        consume_json::records(&self.stdout_lines())
    }

    /// The latest assignment a `cafe consume --json` reported, None before the first.
    pub fn assignment(&self) -> Option<Assignment> {
        consume_json::assignments(&self.stdout_lines()).pop()
    }

    /// Sends `signal` (e.g. "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        let st = Command::new("kill").args([&format!("-{signal}"), &pid]).status().expect("run kill(1)");
        assert!(st.success(), "kill -{signal} {pid} ({}) failed", self.name);
    }

    /// `kill -9`, then what it printed until then.
    pub fn kill(mut self) -> BackgroundEnd {
        let _ = self.child.kill(); // SIGKILL
        self.finish(Duration::from_secs(10))
    }

    /// Waits for the process to end; kills it and panics past `limit`.
    pub fn finish(mut self, limit: Duration) -> BackgroundEnd {
        let deadline = Instant::now() + limit;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                Ok(None) => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    panic!("{} still running after {limit:?}; killed it\n{}", self.name, self.describe());
                }
                Err(e) => panic!("waiting for {}: {e}", self.name),
            }
        };
        for r in std::mem::take(&mut self.readers) {
            let _ = r.join();
        }
        BackgroundEnd { status, stdout: self.stdout_lines(), stderr: self.stderr_lines() }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl BackgroundEnd {
    /// Standard error as one text.
    pub fn stderr_text(&self) -> String {
        self.stderr.join("\n")
    }

    /// Panics with its stderr unless it exited 0.
    pub fn assert_success(&self, name: &str) {
        assert!(self.status.success(), "{name} exited with {}\n--- stderr\n{}", self.status, self.stderr_text());
    }

    /// The records a `cafe consume --json` printed.
    pub fn records(&self) -> Vec<Value> {
        consume_json::records(&self.stdout)
    }

    /// The assignments a `cafe consume --json` reported, in order.
    pub fn assignments(&self) -> Vec<Assignment> {
        consume_json::assignments(&self.stdout)
    }

    /// The partitions of each revocation a `cafe consume --json` reported, in order.
    pub fn revocations(&self) -> Vec<Vec<TopicPartition>> {
        consume_json::revocations(&self.stdout)
    }

    /// The N of the final `cafe: consumed N records` line on stderr.
    pub fn consumed_count(&self) -> u64 {
        super::consumed_count(&self.stderr_text())
    }
}
