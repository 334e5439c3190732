//! Joins a consumer group on a topic, prints every record until none arrives for
//! three seconds, then commits (explicitly, as a manual-commit program would) and leaves.
//!
//! `cargo run -p cafe-kafka --example consume -- [TOPIC] [GROUP]` (defaults `demo`
//! and `example-group`), with the broker at `$KAFKA_BOOTSTRAP` (default `127.0.0.1:9092`).

use std::time::Duration;

use cafe_kafka::{Cluster, ConnectionConfig, Consumer, ConsumerConfig, GroupConfig, OffsetReset};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let bootstrap = std::env::var("KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".into());
    let mut args = std::env::args().skip(1);
    let topic = args.next().unwrap_or_else(|| "demo".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());
    let cluster = Cluster::connect(vec![bootstrap], ConnectionConfig::default()).await?;
    let mut config = ConsumerConfig {
        group: GroupConfig { group_id: group, topics: vec![topic], ..GroupConfig::default() },
        ..ConsumerConfig::default()
    };
    config.fetch.reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(cluster, config).await?;

    let mut count = 0;
    // Each poll marks the records of the previous one consumed; auto-commit and
    // `close` commit them.
    while let Ok(batch) = tokio::time::timeout(Duration::from_secs(3), consumer.poll()).await {
        for r in batch? {
            let value = r.record.value.as_deref().map(String::from_utf8_lossy);
            println!("{}[{}]@{} {:?}", r.topic, r.partition, r.record.offset, value);
            count += 1;
        }
    }
    // Auto-commit and `close` would commit this too; with `enable_auto_commit:
    // false`, `commit` is how progress is kept (it waits for the coordinator).
    consumer.commit().await?;
    consumer.close().await?;
    println!("{count} records");
    Ok(())
}
