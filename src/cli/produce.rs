//! `cafe produce`: the seed's producer, N random cafe events with delivery reports.
//! With `--schema-registry URL` the values are framed for the registry (the
//! seed's `JSONSerializer` format) after validation against the schema.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Common, Reports};
use crate::error::Error;
use crate::event::{CafeEvent, EventGenerator};
use crate::event_codec::{self, CAFE_EVENT_SCHEMA};
use cafe_kafka::partitioner::Partitioner;
use cafe_kafka::producer::{Acks, Compression, Producer, ProducerConfig, ProducerRecord};
use cafe_kafka::registry::{self, SchemaRegistry};

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum KeyField {
    EventId,
    CustomerName,
    None,
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// How many events to send.
    #[arg(long, short = 'n', default_value_t = 5)]
    pub count: u64,
    #[arg(long, short = 't', default_value = "demo")]
    pub topic: String,
    /// Which field becomes the record key.
    #[arg(long, value_enum, default_value = "customer-name")]
    pub key: KeyField,
    #[command(flatten)]
    pub producer: ProducerArgs,
    /// Seed for the event generator: the same seed gives the same events.
    #[arg(long)]
    pub seed: Option<u64>,
    /// One JSON object per delivery report instead of text.
    #[arg(long)]
    pub json: bool,
    /// Schema Registry base URL (e.g. http://127.0.0.1:8081): register the
    /// event schema under `<topic>-value`, validate each event, and write
    /// values framed as magic byte 0 + schema id + JSON. Without it, plain JSON.
    #[arg(long, value_name = "URL")]
    pub schema_registry: Option<String>,
}

/// Producer settings shared by `produce` and `send`, with Kafka's names.
#[derive(Debug, Args)]
pub struct ProducerArgs {
    /// `acks`: 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: Acks,
    /// Key hashing: murmur2 (Java client) or crc32 (librdkafka consistent_random).
    #[arg(long, default_value = "murmur2")]
    pub partitioner: Partitioner,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd (all pure Rust).
    #[arg(long, default_value = "none")]
    pub compression: Compression,
    /// `batch.size` in bytes.
    #[arg(long, default_value_t = 16_384)]
    pub batch_size: usize,
    /// `max.request.size` in bytes.
    #[arg(long, default_value_t = 1_048_576)]
    pub max_request_size: usize,
    /// `delivery.timeout.ms`.
    #[arg(long, default_value_t = 120_000)]
    pub delivery_timeout_ms: u64,
    /// `linger.ms`: how long a batch waits for more records before it is sent.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// `enable.idempotence` (requires --acks all).
    #[arg(long)]
    pub enable_idempotence: bool,
}

impl ProducerArgs {
    pub fn config(&self, common: &Common) -> ProducerConfig {
        ProducerConfig {
            acks: self.acks,
            partitioner: self.partitioner,
            compression: self.compression,
            batch_size: self.batch_size,
            max_request_size: self.max_request_size,
            delivery_timeout: Duration::from_millis(self.delivery_timeout_ms),
            linger: Duration::from_millis(self.linger_ms),
            request_timeout: Duration::from_millis(common.request_timeout_ms),
            enable_idempotence: self.enable_idempotence,
            ..ProducerConfig::default()
        }
    }
}

fn key_of(ev: &CafeEvent, field: KeyField) -> Option<String> {
    match field {
        KeyField::EventId => Some(ev.event_id.clone()),
        KeyField::CustomerName => Some(ev.customer_name.clone()),
        KeyField::None => None,
    }
}

pub async fn run(common: &Common, args: ProduceArgs) -> Result<(), Error> {
    let config = args.producer.config(common);
    config.validate().map_err(|e| Error::Usage(e.to_string()))?;
    // The registry first: a registry problem fails before any Kafka work.
    let schema_id = match &args.schema_registry {
        Some(url) => Some(register_schema(url, &args.topic, common).await?),
        None => None,
    };
    let cluster = common.cluster().await?;
    // An unknown topic fails here, before any event is made.
    cluster.topic_or_fetch(&args.topic).await?;
    let producer = Producer::new(cluster, config).await?;
    let reports = Reports::new(args.json);

    tracing::info!(count = args.count, topic = %args.topic, "producing");
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let mut generator = EventGenerator::new(args.seed);
    let mut invalid = 0u64;
    // One event at a time: made, framed, sent; memory stays flat however many.
    for _ in 0..args.count {
        let ev = generator.next_event(chrono::Utc::now());
        let key = key_of(&ev, args.key);
        // With a registry each event is checked against the schema; one that fails
        // is reported here and never sent.
        let value = match schema_id {
            None => Ok(ev.to_json()),
            Some(id) => event_codec::encode_event(id, &ev),
        };
        let value = match value {
            Ok(v) => v,
            Err(e) => {
                invalid += 1;
                print_invalid(&ev.event_id, key.as_deref(), &args.topic, &e.to_string(), args.json);
                continue;
            }
        };
        let mut record = ProducerRecord::new(Arc::clone(&topic), value);
        if let Some(k) = &key {
            record = record.with_key(k.clone());
        }
        reports.send(&producer, record, ev.event_id, key).await?;
    }
    producer.close().await;
    let failed = reports.failed() + invalid;
    if failed > 0 {
        return Err(Error::DeliveryFailed { failed, total: args.count });
    }
    Ok(())
}

/// Registers (or finds) the event schema under `<topic>-value`; its id frames every value.
async fn register_schema(url: &str, topic: &str, common: &Common) -> Result<u32, Error> {
    let timeout = Duration::from_millis(common.request_timeout_ms);
    let mut registry = SchemaRegistry::new(url, timeout)?;
    let subject = registry::value_subject(topic);
    let id = registry.register_json(&subject, CAFE_EVENT_SCHEMA).await?;
    tracing::info!(%subject, id, registry = %registry.url(), "schema registered");
    Ok(id)
}

/// The delivery report of an event that failed validation (not sent).
fn print_invalid(label: &str, key: Option<&str>, topic: &str, reason: &str, json: bool) {
    if json {
        let error = format!("not sent: {reason}");
        println!(
            "{}",
            serde_json::json!({ "id": label, "key": key, "topic": topic, "partition": null, "error": error })
        );
    } else {
        println!(
            "FAILED {label} key={} -> {topic}: not sent, does not match the schema: {reason}",
            key.unwrap_or("<null>")
        );
    }
}
