//! krafka (0.28, an async pure-Rust client) as a benchmark peer: the workloads
//! of `cafe bench produce|consume`.

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cafe_bench_rust_peers::{ConsumeTally, Opts, Totals, cpu_seconds, exit, latency_fields, report};
use krafka::consumer::{AutoOffsetReset, PartitionAssignmentStrategy};
use krafka::producer::Acks;
use krafka::{Compression, Kafka, Record};

const CLIENT: &str = "krafka";
// The version Cargo.lock pins (built with --locked).
const VERSION: &str = "0.28.1";

async fn connect(o: &Opts) -> krafka::error::Result<Kafka> {
    Kafka::builder(o.bootstrap.clone()).client_id("bench-krafka").max_in_flight_requests(5).connect().await
}

async fn produce(o: &Opts) -> Result<i32, Box<dyn std::error::Error>> {
    let acks = match o.acks.as_str() {
        "0" => Acks::None,
        "all" | "-1" => Acks::All,
        _ => Acks::Leader,
    };
    let compression = match o.compression.as_str() {
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        _ => Compression::None,
    };
    let kafka = connect(o).await?;
    let producer = kafka
        .producer()
        .acks(acks)
        // Idempotence needs acks=all in krafka (as in Java).
        .idempotent(false)
        .batch_size(o.batch_size)
        .linger(Duration::from_millis(o.linger_ms))
        .compression(compression)
        .build()
        .await?;
    // Connect and load the topic's metadata before the clock starts, as the others do.
    producer.partitions_for(&o.topic).await?;
    let value = bytes::Bytes::from(o.value());
    let latencies = Arc::new(Mutex::new(Vec::with_capacity((o.n / o.sample_every + 1) as usize)));
    let mut waiters = Vec::new();
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for i in 0..o.n {
        o.pace(start, i);
        let sent = Instant::now();
        let handle = producer.enqueue(Record::new(o.topic.as_str(), value.clone())).await?;
        if i % o.sample_every == 0 {
            // Time this one to its acknowledgement; the other handles are dropped
            // (the record is still sent) and flush() waits for them.
            let latencies = Arc::clone(&latencies);
            waiters.push(tokio::spawn(async move {
                let ok = handle.await.is_ok();
                if let Ok(mut l) = latencies.lock() {
                    l.push(sent.elapsed());
                }
                ok
            }));
        }
    }
    producer.flush().await?;
    let mut failed = 0u64;
    for w in waiters {
        failed += u64::from(!w.await.unwrap_or(false));
    }
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu0;
    producer.close().await?;
    let lat = std::mem::take(&mut *latencies.lock().map_err(|_| "poisoned")?);
    let mut extra = latency_fields(lat);
    // Only the sampled records' outcomes are seen; the harness checks the topic's
    // end offsets for all of them.
    extra.insert("failed_sampled".into(), failed.into());
    let totals = Totals { records: o.n, bytes: o.n * o.record_size as u64, elapsed, cpu };
    report(CLIENT, VERSION, o, totals, extra);
    Ok(if failed > 0 { 5 } else { 0 })
}

async fn consume(o: &Opts) -> Result<i32, Box<dyn std::error::Error>> {
    let mut tally = ConsumeTally::start(o);
    let kafka = connect(o).await?;
    let consumer = kafka
        .consumer(o.group_or_new("krafka"))
        .auto_offset_reset(AutoOffsetReset::Earliest)
        .enable_auto_commit(true)
        .partition_assignment_strategy(PartitionAssignmentStrategy::Range)
        .build()
        .await?;
    consumer.subscribe([o.topic.as_str()]).await?;
    while tally.count < o.n {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        let bytes =
            records.iter().map(|r| r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()));
        if !tally.add(records.len() as u64, bytes.sum::<usize>() as u64, o) {
            break;
        }
    }
    let stopped = tally.stop();
    consumer.close().await?;
    Ok(tally.report(CLIENT, VERSION, o, stopped))
}

#[tokio::main]
async fn main() {
    let o = Opts::from_args("krafka_peer");
    exit("krafka_peer", if o.mode == "produce" { produce(&o).await } else { consume(&o).await });
}
