//! How `cafe bench` measures itself: the report of one run (text or JSON), latency
//! percentiles, this process's CPU time and peak RSS from /proc, and the progress
//! indicator on stderr.

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The figures of one run. CPU and peak RSS are this process's own.
#[derive(Debug, serde::Serialize)]
pub(super) struct Report {
    pub(super) client: &'static str,
    pub(super) mode: &'static str,
    pub(super) topic: String,
    pub(super) records: u64,
    /// Produce: records not delivered. Consume: records handed out twice.
    pub(super) failed: u64,
    pub(super) bytes: u64,
    pub(super) elapsed_s: f64,
    pub(super) records_per_s: f64,
    pub(super) mib_per_s: f64,
    /// Consume only: records/s from the first record on (without the group join).
    pub(super) fetch_records_per_s: Option<f64>,
    pub(super) p50_ms: Option<f64>,
    pub(super) p99_ms: Option<f64>,
    pub(super) p999_ms: Option<f64>,
    pub(super) max_ms: Option<f64>,
    pub(super) first_record_ms: Option<f64>,
    /// user+sys seconds of this process while the workload ran.
    pub(super) cpu_s: Option<f64>,
    pub(super) cpu_s_per_1m: Option<f64>,
    pub(super) peak_rss_mib: Option<f64>,
    /// Produce only: Produce requests sent, and the batches they carried.
    pub(super) requests: Option<u64>,
    pub(super) batches: Option<u64>,
}

impl Report {
    pub(super) fn new(
        mode: &'static str,
        topic: &str,
        records: u64,
        bytes: u64,
        elapsed: Duration,
        cpu: Option<f64>,
    ) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        Self {
            client: "cafe",
            mode,
            topic: topic.to_owned(),
            records,
            failed: 0,
            bytes,
            elapsed_s: secs,
            records_per_s: records as f64 / secs,
            mib_per_s: bytes as f64 / secs / (1024.0 * 1024.0),
            fetch_records_per_s: None,
            p50_ms: None,
            p99_ms: None,
            p999_ms: None,
            max_ms: None,
            first_record_ms: None,
            cpu_s: cpu,
            cpu_s_per_1m: cpu.filter(|_| records > 0).map(|c| c * 1e6 / records as f64),
            peak_rss_mib: peak_rss_kib().map(|k| k as f64 / 1024.0),
            requests: None,
            batches: None,
        }
    }

    pub(super) fn print(&self, json: bool) {
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) is not worth a panic; the figures are lost either way.
        let _ = out.write_all(self.render(json).as_bytes());
    }

    fn render(&self, json: bool) -> String {
        if json {
            return serde_json::to_string(self).unwrap_or_default() + "\n";
        }
        let opt = |v: Option<f64>, unit: &str| v.map_or("n/a".to_owned(), |v| format!("{v:.1}{unit}"));
        let mut s = format!(
            "{} {}: {} records, {:.0} records/s, {:.2} MiB/s in {:.2} s\n",
            self.mode, self.topic, self.records, self.records_per_s, self.mib_per_s, self.elapsed_s
        );
        if self.mode == "produce" {
            s += &format!(
                "  latency send->ack p50 {} p99 {} p99.9 {} max {}\n",
                opt(self.p50_ms, " ms"),
                opt(self.p99_ms, " ms"),
                opt(self.p999_ms, " ms"),
                opt(self.max_ms, " ms")
            );
            if let (Some(requests), Some(batches)) = (self.requests, self.batches) {
                let per = |n: u64, of: u64| if of == 0 { 0.0 } else { n as f64 / of as f64 };
                s += &format!(
                    "  {requests} requests, {batches} batches: {:.2} batches per request, {:.0} records per batch\n",
                    per(batches, requests),
                    per(self.records, batches)
                );
            }
        } else {
            s += &format!(
                "  first record after {}, {} records/s after it\n",
                opt(self.first_record_ms, " ms"),
                opt(self.fetch_records_per_s, "")
            );
        }
        s += &format!(
            "  cpu {} ({} per 1M records), peak RSS {}\n",
            opt(self.cpu_s, " s"),
            opt(self.cpu_s_per_1m, " s"),
            opt(self.peak_rss_mib, " MiB")
        );
        s
    }
}

pub(super) fn percentile_ms(sorted_us: &[u32], q: f64) -> Option<f64> {
    if sorted_us.is_empty() {
        return None;
    }
    let i = ((sorted_us.len() - 1) as f64 * q).round() as usize;
    Some(f64::from(sorted_us[i]) / 1000.0)
}

pub(super) fn micros_since(start: Instant) -> u32 {
    start.elapsed().as_micros().min(u32::MAX as u128) as u32
}

/// user+sys CPU seconds of this process (all threads), from /proc/self/stat.
pub(super) fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on every Linux architecture we build for.
    Some((utime + stime) / 100.0)
}

/// Peak resident set size (VmHWM) of this process in KiB.
pub(super) fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A progress indicator on stderr: a redrawn bar on a terminal, a line every five
/// seconds otherwise (logs of `make bench`). Nothing for runs shorter than a second.
pub(super) struct Progress {
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub(super) fn start(label: &'static str, total: u64, done: Arc<AtomicU64>, quiet: bool) -> Self {
        if quiet || total == 0 {
            return Self { task: None };
        }
        let tty = std::io::stderr().is_terminal();
        let task = tokio::spawn(async move {
            let start = Instant::now();
            let period = if tty { Duration::from_millis(250) } else { Duration::from_secs(5) };
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), period);
            loop {
                tick.tick().await;
                let d = done.load(Ordering::Relaxed).min(total);
                let rate = d as f64 / start.elapsed().as_secs_f64();
                let pct = d as f64 * 100.0 / total as f64;
                if tty {
                    let filled = (pct / 5.0) as usize;
                    eprint!("\r{label} [{:<20}] {pct:5.1}% {d}/{total} {rate:.0} rec/s ", "#".repeat(filled));
                } else {
                    eprintln!("{label}: {pct:.0}% ({d}/{total}, {rate:.0} rec/s)");
                }
            }
        });
        Self { task: Some(task) }
    }

    pub(super) fn finish(self) {
        if let Some(t) = self.task {
            t.abort();
            if std::io::stderr().is_terminal() {
                eprint!("\r\x1b[2K");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_nearest_rank() {
        let v: Vec<u32> = (1..=100).map(|i| i * 1000).collect();
        assert_eq!(percentile_ms(&v, 0.5), Some(51.0));
        assert_eq!(percentile_ms(&v, 0.99), Some(99.0));
        assert_eq!(percentile_ms(&[], 0.5), None);
    }

    #[test]
    fn own_cpu_and_rss_are_readable() {
        assert!(cpu_seconds().is_some());
        assert!(peak_rss_kib().is_some_and(|k| k > 0));
    }
}
