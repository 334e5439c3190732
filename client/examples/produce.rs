//! Sends ten keyed records to a topic and prints where each one landed.
//!
//! `cargo run -p cafe-kafka --example produce -- [TOPIC]` (default `demo`),
//! with the broker at `$KAFKA_BOOTSTRAP` (default `127.0.0.1:9092`).

use std::time::{SystemTime, UNIX_EPOCH};

use cafe_kafka::{Acks, Cluster, ConnectionConfig, OutRecord, Producer, ProducerConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let cluster = Cluster::connect(vec![bootstrap], ConnectionConfig::default()).await?;
    let config = ProducerConfig { acks: Acks::All, ..ProducerConfig::default() };
    let mut producer = Producer::new(cluster, config).await?;

    let now_ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis() as i64;
    let records = (0..10u64).map(|i| OutRecord {
        id: i,
        key: Some(format!("customer-{}", i % 3).into()),
        value: format!("{{\"order\":{i}}}").into(),
        timestamp_ms: now_ms,
        headers: vec![("source".into(), Some("example".into()))],
    });
    // One delivery report per record, in whatever order the partitions answer.
    let summary = producer
        .send_stream(&topic, records, |d| match d.result {
            Ok(offset) => println!("record {} -> {}[{}]@{:?}", d.id, d.topic, d.partition, offset),
            Err(e) => eprintln!("record {} failed: {e}", d.id),
        })
        .await?;
    println!("{} delivered, {} failed", summary.delivered, summary.failed);
    Ok(())
}
