//! Sends ten keyed records to a topic and prints where each one landed.
//!
//! `cargo run -p cafe-kafka --example produce -- [TOPIC]` (default `demo`),
//! with the broker at `$KAFKA_BOOTSTRAP` (default `127.0.0.1:9092`).

use cafe_kafka::{Acks, Cluster, ConnectionConfig, Producer, ProducerConfig, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let topic = std::env::args().nth(1).unwrap_or_else(|| "demo".into());
    let cluster = Cluster::connect(vec![bootstrap], ConnectionConfig::default()).await?;
    let config = ProducerConfig { acks: Acks::All, ..ProducerConfig::default() };
    // A cheap handle: clone it into as many tasks as send.
    let producer = Producer::new(cluster, config).await?;

    let mut deliveries = Vec::new();
    for i in 0..10 {
        let record = ProducerRecord::new(topic.as_str(), format!("{{\"order\":{i}}}"))
            .with_key(format!("customer-{}", i % 3))
            .with_header("source", "example");
        // Returns once the record is batched; the future resolves when it is delivered.
        deliveries.push(producer.send(record).await?);
    }
    let mut failed = 0;
    for (i, delivery) in deliveries.into_iter().enumerate() {
        match delivery.await {
            Ok(m) => println!("record {i} -> {}[{}]@{:?}", m.topic, m.partition, m.offset),
            Err(e) => {
                failed += 1;
                eprintln!("record {i} failed: {e}");
            }
        }
    }
    println!("{} delivered, {failed} failed", 10 - failed);
    producer.close().await;
    Ok(())
}
