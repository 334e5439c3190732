//! What the Rust peers share: their command line (the same flags as the other
//! drivers), the fixed-rate throttle, the latency samples and the one JSON line
//! bench/harness.py parses. Each client's own calls live in its binary.

use std::time::{Duration, Instant};

/// One driver run, from the command line.
pub struct Opts {
    pub mode: String,
    pub bootstrap: String,
    pub topic: String,
    pub group: Option<String>,
    pub n: u64,
    pub record_size: usize,
    pub acks: String,
    pub linger_ms: u64,
    pub batch_size: usize,
    pub compression: String,
    pub throughput: f64,
    pub sample_every: u64,
    pub idle_timeout: Duration,
}

impl Opts {
    /// `NAME produce|consume -t TOPIC [-b HOST:PORT] [-n N] [--record-size S] ...`;
    /// exits with a usage line on anything else.
    pub fn from_args(name: &str) -> Self {
        let usage = |msg: &str| -> ! {
            eprintln!(
                "{name}: {msg}\nusage: {name} produce|consume -t TOPIC [-b HOST:PORT] [-n N] [--record-size S] [--acks A] [--linger-ms L] [--batch-size B] [--compression C] [--throughput R] [--sample-every K] [-g GROUP]"
            );
            std::process::exit(2)
        };
        let mut args = std::env::args().skip(1);
        let mode = args.next().filter(|m| m == "produce" || m == "consume").unwrap_or_else(|| usage("mode?"));
        let mut o = Opts {
            mode,
            bootstrap: "127.0.0.1:9092".into(),
            topic: String::new(),
            group: None,
            n: 1_000_000,
            record_size: 100,
            acks: "1".into(),
            linger_ms: 5,
            batch_size: 16384,
            compression: "none".into(),
            throughput: 0.0,
            sample_every: 8,
            idle_timeout: Duration::from_secs(30),
        };
        while let Some(flag) = args.next() {
            let mut value = || args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
            let num = |v: String| v.parse::<f64>().unwrap_or_else(|_| usage(&format!("{flag}: not a number: {v}")));
            match flag.as_str() {
                "-b" | "--bootstrap" => o.bootstrap = value(),
                "-t" | "--topic" => o.topic = value(),
                "-g" | "--group" => o.group = Some(value()),
                "-n" | "--num-records" => o.n = num(value()) as u64,
                "--record-size" => o.record_size = num(value()) as usize,
                "--acks" => o.acks = value(),
                "--linger-ms" => o.linger_ms = num(value()) as u64,
                "--batch-size" => o.batch_size = num(value()) as usize,
                "--compression" => o.compression = value(),
                "--throughput" => o.throughput = num(value()),
                "--sample-every" => o.sample_every = num(value()) as u64,
                "--idle-timeout" => o.idle_timeout = Duration::from_secs_f64(num(value())),
                _ => usage(&format!("unknown argument {flag}")),
            }
        }
        if o.topic.is_empty() || o.n == 0 || o.sample_every == 0 {
            usage("-t TOPIC is required; -n and --sample-every must be >= 1");
        }
        o
    }

    /// The group of a consume run: the given one, or a new one per process.
    pub fn group_or_new(&self, client: &str) -> String {
        self.group.clone().unwrap_or_else(|| {
            let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_millis();
            format!("bench-{client}-{}-{ms}", std::process::id())
        })
    }

    /// The value every produce workload sends: printable filler, as cafe and the others.
    pub fn value(&self) -> Vec<u8> {
        (0..self.record_size).map(|i| b'A' + (i % 26) as u8).collect()
    }

    /// Like the Java tool's throttler: sleep when more than 1 ms ahead of the
    /// schedule of record `i`. A no-op without --throughput. The thread sleeps, as
    /// in the Go and C drivers and `cafe bench`: tokio's timer ticks in whole
    /// milliseconds and fires up to 2 ms late, which would offer the records in
    /// bursts of another shape than the other drivers'. `#[tokio::main]` runs the
    /// loop on the main thread, not on a worker, so no client task waits for it.
    pub fn pace(&self, start: Instant, i: u64) {
        if self.throughput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / self.throughput);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
            }
        }
    }
}

/// user+sys CPU seconds of this process, from /proc/self/stat (USER_HZ = 100).
pub fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// Nearest rank, index round((len-1)*q), in ms: as cafe and the other peers.
pub fn percentile_ms(sorted: &[Duration], q: f64) -> serde_json::Value {
    match sorted.len() {
        0 => serde_json::Value::Null,
        n => (sorted[((n - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0).into(),
    }
}

/// The latency figures of a produce run, from its samples.
pub fn latency_fields(mut lat: Vec<Duration>) -> serde_json::Map<String, serde_json::Value> {
    lat.sort_unstable();
    let mut m = serde_json::Map::new();
    for (k, q) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999), ("max_ms", 1.0)] {
        m.insert(k.into(), percentile_ms(&lat, q));
    }
    m
}

/// The counts of one run: records, their bytes, wall time and CPU seconds.
pub struct Totals {
    pub records: u64,
    pub bytes: u64,
    pub elapsed: Duration,
    pub cpu: f64,
}

/// Prints the JSON line the harness reads: the shared figures plus `extra`.
pub fn report(client: &str, version: &str, o: &Opts, t: Totals, extra: serde_json::Map<String, serde_json::Value>) {
    let s = t.elapsed.as_secs_f64().max(1e-9);
    let mut v = serde_json::json!({
        "client": client, "version": version, "mode": o.mode, "topic": o.topic,
        "records": t.records, "bytes": t.bytes, "elapsed_s": s, "records_per_s": t.records as f64 / s,
        "mib_per_s": t.bytes as f64 / s / 1048576.0, "cpu_s": t.cpu,
    });
    if let Some(obj) = v.as_object_mut() {
        obj.extend(extra);
    }
    println!("{v}");
}

/// What a consume loop keeps: records and bytes so far, when the first came (from
/// the clock started before connecting), and when to give up waiting.
pub struct ConsumeTally {
    pub count: u64,
    bytes: u64,
    first: Option<Duration>,
    start: Instant,
    cpu0: f64,
    idle_timeout: Duration,
    idle_until: Instant,
}

impl ConsumeTally {
    /// Starts the clock and the CPU count: call before connecting, so the group
    /// join is part of the figures.
    pub fn start(o: &Opts) -> Self {
        let now = Instant::now();
        Self {
            count: 0,
            bytes: 0,
            first: None,
            start: now,
            cpu0: cpu_seconds(),
            idle_timeout: o.idle_timeout,
            idle_until: now + o.idle_timeout,
        }
    }

    /// Counts one poll's `records` of `bytes` (key + value). False when the poll
    /// brought none and nothing came for the idle timeout: the loop should stop.
    pub fn add(&mut self, records: u64, bytes: u64, o: &Opts) -> bool {
        let now = Instant::now();
        if records == 0 {
            if now > self.idle_until {
                eprintln!("{}: stalled after {} of {} records", o.mode, self.count, o.n);
                return false;
            }
            return true;
        }
        self.first.get_or_insert_with(|| self.start.elapsed());
        self.count += records;
        self.bytes += bytes;
        self.idle_until = now + self.idle_timeout;
        true
    }

    /// Stops the clock and the CPU count (before the consumer's close).
    pub fn stop(&self) -> (Duration, f64) {
        (self.start.elapsed(), cpu_seconds() - self.cpu0)
    }

    /// Prints the consume report; the process's exit code (1: fewer than asked).
    pub fn report(&self, client: &str, version: &str, o: &Opts, (elapsed, cpu): (Duration, f64)) -> i32 {
        let mut m = serde_json::Map::new();
        if let Some(f) = self.first {
            m.insert("first_record_ms".into(), (f.as_secs_f64() * 1000.0).into());
            let rate = self.count as f64 / (elapsed - f).as_secs_f64().max(1e-9);
            m.insert("fetch_records_per_s".into(), rate.into());
        }
        let totals = Totals { records: self.count, bytes: self.bytes, elapsed, cpu };
        report(client, version, o, totals, m);
        i32::from(self.count < o.n)
    }
}

/// Ends the process with a driver's outcome: its exit code, or 1 and the error.
pub fn exit(name: &str, result: Result<i32, Box<dyn std::error::Error>>) -> ! {
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("{name}: {e}");
            std::process::exit(1)
        }
    }
}
