//! `cafe produce`: the seed's producer, N random cafe events with delivery reports.

use std::time::Duration;

use bytes::Bytes;
use clap::{Args, ValueEnum};

use super::{Common, print_delivery};
use crate::error::Error;
use crate::event::{CafeEvent, EventGenerator};
use crate::partitioner::Partitioner;
use crate::producer::{Acks, Compression, OutRecord, Producer, ProducerConfig};

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
    /// `compression.type`: none, gzip or snappy.
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
    let cluster = common.cluster().await?;
    let mut producer = Producer::new(cluster, config).await?;

    let mut generator = EventGenerator::new(args.seed);
    let events: Vec<CafeEvent> = (0..args.count).map(|_| generator.next_event(chrono::Utc::now())).collect();
    let keys: Vec<Option<String>> = events.iter().map(|e| key_of(e, args.key)).collect();
    let records = events.iter().zip(&keys).enumerate().map(|(i, (ev, key))| OutRecord {
        id: i as u64,
        key: key.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Bytes::from(ev.to_json()),
        timestamp_ms: chrono::Utc::now().timestamp_millis(),
    });
    tracing::info!(count = args.count, topic = %args.topic, "producing");
    let summary = producer
        .send_stream(&args.topic, records, |d| {
            let i = d.id as usize;
            print_delivery(&d, &events[i].event_id, keys[i].as_deref(), args.json);
        })
        .await?;
    if summary.failed > 0 {
        return Err(Error::DeliveryFailed { failed: summary.failed, total: args.count });
    }
    Ok(())
}
