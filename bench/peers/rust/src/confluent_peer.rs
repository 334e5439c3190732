//! Confluent's Rust client (`confluent-kafka` 1.0, a translation of the Java
//! client) as a benchmark peer: the workloads of `cafe bench produce|consume`.
//! Its consumer speaks only the KIP-848 group protocol (`group.protocol=consumer`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use cafe_bench_rust_peers::{ConsumeTally, Opts, Totals, cpu_seconds, exit, latency_fields, report};
use confluent_kafka::common::serialization::{ByteArrayDeserializer, ByteArraySerializer};
use confluent_kafka::consumer::{Consumer, ConsumerConfig, KafkaConsumer};
use confluent_kafka::producer::{KafkaProducer, Producer, ProducerConfig, ProducerRecord};

const CLIENT: &str = "confluent-kafka-rust";
// The version Cargo.lock pins (built with --locked).
const VERSION: &str = "1.0.0";

// The callbacks run on the producer's I/O task: plain statics keep the common
// (unsampled) callback a zero-sized closure, so it allocates nothing per record.
static DELIVERED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static LATENCIES: Mutex<Vec<Duration>> = Mutex::new(Vec::new());

fn props(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn count(failed: bool) {
    if failed { &FAILED } else { &DELIVERED }.fetch_add(1, Ordering::Relaxed);
}

async fn produce(o: &Opts) -> Result<i32, Box<dyn std::error::Error>> {
    let (batch, linger) = (o.batch_size.to_string(), o.linger_ms.to_string());
    let config = ProducerConfig::new(&props(&[
        ("bootstrap.servers", &o.bootstrap),
        ("client.id", "bench-confluent-rust"),
        ("acks", &o.acks),
        ("batch.size", &batch),
        ("linger.ms", &linger),
        ("compression.type", &o.compression),
        ("max.in.flight.requests.per.connection", "5"),
        // acks=1 and idempotence exclude each other (as in Java).
        ("enable.idempotence", "false"),
    ]))?;
    let producer =
        KafkaProducer::<Vec<u8>, Vec<u8>>::new(config, ByteArraySerializer::default(), ByteArraySerializer::default())?;
    // Connect and load the topic's metadata before the clock starts, as the others do.
    producer.partitions_for(&o.topic).await?;
    let value = o.value();
    LATENCIES.lock().map_err(|_| "poisoned")?.reserve((o.n / o.sample_every + 1) as usize);
    let cpu0 = cpu_seconds();
    let start = Instant::now();
    for i in 0..o.n {
        o.pace(start, i);
        let record = ProducerRecord::new(o.topic.clone(), Some(&value[..]));
        if i % o.sample_every == 0 {
            let sent = Instant::now();
            let cb = move |_: Option<&_>, e: Option<&confluent_kafka::common::Error>| {
                if let Ok(mut l) = LATENCIES.lock() {
                    l.push(sent.elapsed());
                }
                count(e.is_some());
            };
            let _ack = producer.send(record, Some(Box::new(cb))).await?;
        } else {
            let cb = |_: Option<&_>, e: Option<&confluent_kafka::common::Error>| count(e.is_some());
            let _ack = producer.send(record, Some(Box::new(cb))).await?;
        }
    }
    producer.flush().await?;
    let elapsed = start.elapsed();
    let cpu = cpu_seconds() - cpu0;
    producer.close().await?;
    let (delivered, failed) = (DELIVERED.load(Ordering::Relaxed), FAILED.load(Ordering::Relaxed));
    let lat = std::mem::take(&mut *LATENCIES.lock().map_err(|_| "poisoned")?);
    let mut extra = latency_fields(lat);
    extra.insert("failed".into(), failed.into());
    let totals = Totals { records: delivered, bytes: delivered * o.record_size as u64, elapsed, cpu };
    report(CLIENT, VERSION, o, totals, extra);
    Ok(if failed > 0 { 5 } else { 0 })
}

async fn consume(o: &Opts) -> Result<i32, Box<dyn std::error::Error>> {
    let mut tally = ConsumeTally::start(o);
    let group = o.group_or_new("confluent-rust");
    let config = ConsumerConfig::new(&props(&[
        ("bootstrap.servers", &o.bootstrap),
        ("client.id", "bench-confluent-rust"),
        ("group.id", &group),
        ("group.protocol", "consumer"),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "true"),
    ]))?;
    let mut consumer = KafkaConsumer::<Vec<u8>, Vec<u8>>::new(
        config,
        ByteArrayDeserializer::default(),
        ByteArrayDeserializer::default(),
    )?;
    consumer.subscribe_with_topics(vec![o.topic.clone()]).await?;
    while tally.count < o.n {
        let records = consumer.poll(Duration::from_millis(100)).await?;
        let bytes = (&records).into_iter().map(|r| r.key().map_or(0, |k| k.len()) + r.value().map_or(0, |v| v.len()));
        if !tally.add(records.count() as u64, bytes.sum::<usize>() as u64, o) {
            break;
        }
    }
    let stopped = tally.stop();
    consumer.close().await?;
    Ok(tally.report(CLIENT, VERSION, o, stopped))
}

#[tokio::main]
async fn main() {
    let o = Opts::from_args("confluent_peer");
    exit("confluent_peer", if o.mode == "produce" { produce(&o).await } else { consume(&o).await });
}
