//! `cafe bench produce|consume`: throughput, send→ack latency, CPU and peak memory
//! of the producer and of a fresh group consumer, printed as text or one JSON
//! object (what `make bench` collects). `cafe bench events` writes the pool of
//! keyed cafe events the peer clients send, so every client sends the same bytes.

use std::io::Write;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{Args, Subcommand};

mod measure;

use measure::{Progress, Report, cpu_seconds, micros_since, percentile_ms};

use crate::cli::Common;
use crate::cli::produce::ProducerArgs;
use crate::error::Error;
use crate::event::EventGenerator;
use cafe_kafka::GroupConfig;
use cafe_kafka::consumer::{Consumer, ConsumerConfig};
use cafe_kafka::producer::{Producer, ProducerRecord};

/// Distinct events in the keyed workload's pool; records cycle through it.
const EVENT_POOL: usize = 10_000;
/// The pool's seed: the same events on every run and for every client.
const EVENT_SEED: u64 = 20_261_125;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send N records as fast as the producer goes; report rate, latency, CPU, memory.
    Produce(ProduceBenchArgs),
    /// Read N records from the earliest offset as a new group member; report the same.
    Consume(ConsumeBenchArgs),
    /// Print the keyed workload's event pool as `key<TAB>json` lines (for the peers).
    Events(EventsArgs),
}

#[derive(Debug, Args)]
pub struct ProduceBenchArgs {
    #[arg(long, short = 't')]
    pub topic: String,
    /// Records to send.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    pub num_records: u64,
    /// Value size in bytes of each unkeyed record (ignored with --cafe-events).
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Send keyed cafe events (JSON, key = customer name) from a fixed pool instead.
    #[arg(long)]
    pub cafe_events: bool,
    /// Offer at most this many records per second (like the Java tool's --throughput);
    /// 0 sends as fast as the producer takes them.
    #[arg(long, default_value_t = 0)]
    pub throughput: u64,
    /// Time one record in this many from send to acknowledgement.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u64).range(1..))]
    pub sample_every: u64,
    /// Send in transactions with this `transactional.id` (acks=all unless --acks),
    /// each committed after --transaction-ms, like the Java tool's --transactional-id.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// How long each transaction runs before it is committed (the Java tool's
    /// --transaction-duration-ms).
    #[arg(long, default_value_t = 100, requires = "transactional_id")]
    pub transaction_ms: u64,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct ConsumeBenchArgs {
    #[arg(long, short = 't')]
    pub topic: String,
    /// Records to read before stopping.
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    pub num_records: u64,
    /// `group.id`; a new group (the default is unique per run) starts from earliest.
    #[arg(long, short = 'g')]
    pub group: Option<String>,
    /// Give up when no record arrived for this long.
    #[arg(long, default_value = "30s", value_parser = super::consume::parse_duration)]
    pub idle_timeout: Duration,
    #[command(flatten)]
    pub output: OutputArgs,
}

#[derive(Debug, Args)]
pub struct EventsArgs {
    #[arg(long, short = 'n', default_value_t = EVENT_POOL)]
    pub count: usize,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Print the figures as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// No progress indicator on stderr.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn run(common: &Common, cmd: BenchCommand) -> Result<(), Error> {
    match cmd {
        BenchCommand::Produce(args) => produce(common, args).await,
        BenchCommand::Consume(args) => consume(common, args).await,
        BenchCommand::Events(args) => {
            let mut out = std::io::stdout().lock();
            for (key, value) in event_pool(args.count) {
                let line = [&key[..], b"\t", &value[..], b"\n"].concat();
                out.write_all(&line).map_err(|e| Error::Other(format!("writing events: {e}")))?;
            }
            Ok(())
        }
    }
}

/// The keyed workload: seeded cafe events, key = customer name, value = JSON.
fn event_pool(count: usize) -> Vec<(Bytes, Bytes)> {
    let mut generator = EventGenerator::new(Some(EVENT_SEED));
    // A fixed order time too, so the pool is byte-for-byte the same on every run.
    let now = chrono::DateTime::from_timestamp(1_795_608_000, 0).unwrap_or_default();
    (0..count)
        .map(|_| {
            let ev = generator.next_event(now);
            (Bytes::from(ev.customer_name.clone().into_bytes()), Bytes::from(ev.to_json()))
        })
        .collect()
}

async fn produce(common: &Common, args: ProduceBenchArgs) -> Result<(), Error> {
    let mut config = args.producer.config_without_transactions(common, "bench produce")?;
    args.producer.make_transactional(&mut config, args.transactional_id.as_deref());
    config.validate().map_err(|e| Error::Usage(e.to_string()))?;
    let n = args.num_records;
    // The pool lives as long as the process, so its bytes can be static: a clone
    // of a static `Bytes` is a copy of two words, with no reference count for this
    // task's thread and the producer's to share (the Java and Go perf tools reuse
    // one payload buffer too).
    let leak = |b: Bytes| Bytes::from_static(Box::leak(Vec::from(b).into_boxed_slice()));
    let pool: Vec<(Option<Bytes>, Bytes)> = if args.cafe_events {
        event_pool(EVENT_POOL).into_iter().map(|(k, v)| (Some(leak(k)), leak(v))).collect()
    } else {
        // Printable filler, like the Java perf tool's random payload.
        let value: Vec<u8> = (0..args.record_size).map(|i| b'A' + (i % 26) as u8).collect();
        vec![(None, leak(Bytes::from(value)))]
    };
    let every = args.sample_every;
    // One run per process, so leaking the counters costs nothing; sharing them by
    // `Arc` would move its count between this task's thread and the producer's on
    // every record.
    let stats: &'static ProduceStats = Box::leak(Box::new(ProduceStats::new(&pool, n, every)));
    let cluster = common.cluster().await?;
    cluster.topic_or_fetch(&args.topic).await?;
    // Each record's tag is its index: the handler finds its size and, for a sampled
    // one, its send time from that, so nothing is allocated per record.
    let on_delivery = Box::new(|i: u64, d: &cafe_kafka::Delivery| stats.record(i, d));
    let producer = Producer::with_delivery_handler(cluster, config, on_delivery).await?;
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let transactions = args.transactional_id.is_some().then(|| Duration::from_millis(args.transaction_ms));
    if transactions.is_some() {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let mut txn_started = Instant::now();

    let progress = Progress::start("produce", n, Arc::clone(&stats.done), args.output.quiet);
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let record = |i: u64| {
        let (key, value) = &pool[(i % pool.len() as u64) as usize];
        let mut record = ProducerRecord::new(Arc::clone(&topic), value.clone());
        record.key = key.clone();
        // The latency clock starts as the producer takes the record.
        stats.sending(i);
        (record, i)
    };
    // Records go over in runs (`send_tagged_all`), as many as are due at once.
    let mut i = 0;
    while i < n {
        let mut end = n;
        if args.throughput > 0 {
            // Like the Java tool's throttler: a record goes when at most 1 ms ahead
            // of its schedule, else the loop sleeps until it is due. The sleep is
            // the thread's, as in the Go and C drivers: tokio's timer ticks in whole
            // milliseconds and fires up to 2 ms late, so the records came in bursts
            // of up to 100 at 50k/s, a batch filled in fewer and longer steps, and
            // the p50 read 2.2-2.3 ms instead of 1.4-1.5. This loop runs on the main
            // thread (`block_on`, see main.rs), not on a worker: blocking it holds up
            // none of the producer's tasks.
            let rate = args.throughput as f64;
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            let now = Instant::now();
            if due > now + Duration::from_millis(1) {
                std::thread::sleep(due - now);
                continue;
            }
            let due_by_now = ((now + Duration::from_millis(1) - start).as_secs_f64() * rate) as u64 + 1;
            end = end.min(due_by_now.max(i + 1));
        }
        if transactions.is_some() {
            // Short runs, so a commit is never late by more than a few records.
            end = end.min(i + 64);
        }
        producer.send_tagged_all(&mut (i..end).map(record)).await?;
        i = end;
        if transactions.is_some_and(|d| txn_started.elapsed() >= d) {
            producer.commit_transaction().await?;
            producer.begin_transaction()?;
            txn_started = Instant::now();
        }
    }
    if transactions.is_some() {
        producer.commit_transaction().await?;
    }
    producer.close().await;
    let summary = producer.summary();
    let (bytes, failed, first_error) = stats.totals();
    let mut latencies = std::mem::take(&mut *stats.latencies.lock().unwrap_or_else(|e| e.into_inner()));
    let elapsed = start.elapsed();
    progress.finish();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let mut report = Report::new("produce", &args.topic, n - failed, bytes, elapsed, cpu);
    report.failed = failed;
    (report.requests, report.batches) = (Some(summary.requests), Some(summary.batches));
    latencies.sort_unstable();
    report.p50_ms = percentile_ms(&latencies, 0.50);
    report.p99_ms = percentile_ms(&latencies, 0.99);
    report.p999_ms = percentile_ms(&latencies, 0.999);
    report.max_ms = latencies.last().map(|&us| f64::from(us) / 1000.0);
    report.print(args.output.json);
    if let Some(e) = first_error {
        eprintln!("cafe bench: {failed} records failed; first error: {e}");
        return Err(Error::DeliveryFailed { failed, total: n });
    }
    Ok(())
}

/// What the delivery handler of `bench produce` gathers, from the producer's task.
struct ProduceStats {
    /// What the send times count from.
    start: Instant,
    /// The size of each record of the pool (record `i` is the pool's `i % len`).
    sizes: Vec<u64>,
    /// One record in `every` is timed, from hand-over to acknowledgement.
    every: u64,
    /// The send times of the timed records, in µs since `start`.
    sent_us: Vec<AtomicU32>,
    done: Arc<AtomicU64>,
    bytes: AtomicU64,
    failed: AtomicU64,
    first_error: Mutex<Option<String>>,
    /// Send → acknowledgement of the sampled records, in µs.
    latencies: Mutex<Vec<u32>>,
}

impl ProduceStats {
    fn new(pool: &[(Option<Bytes>, Bytes)], n: u64, every: u64) -> Self {
        let sizes = pool.iter().map(|(k, v)| (k.as_ref().map_or(0, |k| k.len()) + v.len()) as u64).collect();
        ProduceStats {
            start: Instant::now(),
            sizes,
            every,
            sent_us: (0..n.div_ceil(every)).map(|_| AtomicU32::new(0)).collect(),
            done: Arc::default(),
            bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            first_error: Mutex::new(None),
            latencies: Mutex::new(Vec::with_capacity(n.div_ceil(every) as usize)),
        }
    }

    /// Notes the send time of record `i` if it is a timed one.
    fn sending(&self, i: u64) {
        if i % self.every == 0 {
            self.sent_us[(i / self.every) as usize].store(micros_since(self.start), Ordering::Relaxed);
        }
    }

    /// Counts the delivery of record `i`.
    fn record(&self, i: u64, d: &cafe_kafka::Delivery) {
        if i % self.every == 0 {
            let at = self.sent_us[(i / self.every) as usize].load(Ordering::Relaxed);
            let took = micros_since(self.start).saturating_sub(at);
            self.latencies.lock().unwrap_or_else(|e| e.into_inner()).push(took);
        }
        match &d.result {
            Ok(_) => {
                self.bytes.fetch_add(self.sizes[(i % self.sizes.len() as u64) as usize], Ordering::Relaxed);
            }
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                let mut first = self.first_error.lock().unwrap_or_else(|e| e.into_inner());
                first.get_or_insert_with(|| super::delivery_error(e));
            }
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    fn totals(&self) -> (u64, u64, Option<String>) {
        let first = self.first_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        (self.bytes.load(Ordering::Relaxed), self.failed.load(Ordering::Relaxed), first)
    }
}

async fn consume(common: &Common, args: ConsumeBenchArgs) -> Result<(), Error> {
    let group_id = args.group.clone().unwrap_or_else(|| format!("cafe-bench-{}", uuid::Uuid::new_v4().simple()));
    let mut config = ConsumerConfig {
        group: GroupConfig { group_id, topics: vec![args.topic.clone()], ..GroupConfig::default() },
        ..ConsumerConfig::default()
    };
    common.apply(&mut config)?; // --config and -X; --group still wins
    if let Some(g) = &args.group {
        config.group.group_id = g.clone();
    }
    config.validate()?; // exit 2, with the flag to fix (see `error.rs`)
    let n = args.num_records;
    let done = Arc::new(AtomicU64::new(0));
    // The clock starts before the first connection: "time to first record" is what a
    // user waits for after starting a consumer of a new group.
    let start = Instant::now();
    let cpu0 = cpu_seconds();
    let cluster = common.cluster().await?;
    let mut consumer = Consumer::new(cluster, config).await?;
    let progress = Progress::start("consume", n, Arc::clone(&done), args.output.quiet);
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut first = None;
    let mut next_offset: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    let mut repeated = 0u64;
    let result = loop {
        if count >= n {
            break Ok(());
        }
        let limit = usize::try_from(n - count).unwrap_or(usize::MAX);
        let batch = match tokio::time::timeout(args.idle_timeout, consumer.poll_max(limit)).await {
            Err(_) => break Err(Error::Other(format!("no record for {:?} after {count} of {n}", args.idle_timeout))),
            Ok(Err(e)) => break Err(e.into()),
            Ok(Ok(b)) => b,
        };
        first.get_or_insert_with(|| start.elapsed());
        for r in &batch {
            bytes +=
                (r.record.key.as_ref().map_or(0, |k| k.len()) + r.record.value.as_ref().map_or(0, |v| v.len())) as u64;
            // A fast consumer that hands out a record twice would flatter itself: check.
            let last = next_offset.entry(r.partition).or_insert(0);
            if r.record.offset < *last {
                repeated += 1;
            }
            *last = (*last).max(r.record.offset + 1);
        }
        count += batch.len() as u64;
        done.store(count, Ordering::Relaxed);
    };
    let elapsed = start.elapsed();
    progress.finish();
    let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
    let close = consumer.close().await;
    result?;
    close?;
    let mut report = Report::new("consume", &args.topic, count, bytes, elapsed, cpu);
    report.first_record_ms = first.map(|d| d.as_secs_f64() * 1000.0);
    if let Some(f) = first {
        report.fetch_records_per_s = Some(count as f64 / (elapsed - f).as_secs_f64().max(1e-9));
    }
    report.failed = repeated;
    report.print(args.output.json);
    if repeated > 0 {
        return Err(Error::Other(format!("{repeated} records were handed out more than once")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_pool_is_the_same_every_time() {
        let a = event_pool(3);
        let b = event_pool(3);
        assert_eq!(a.len(), 3);
        assert_eq!(a, b);
        assert!(a.iter().all(|(k, v)| !k.is_empty() && v.starts_with(b"{")));
    }
}
