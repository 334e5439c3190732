//! `cafe produce`: the seed's producer, N random cafe events with delivery reports.
//! With `--schema-registry URL` the values are framed for the registry (the
//! seed's `JSONSerializer` format) after validation against the schema.

use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::interrupt::Interrupt;
use super::{Common, Reports, defaults};
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
    #[arg(long, short = 't', default_value = defaults::TOPIC)]
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
    /// `transactional.id`: send the events in one transaction, committed at the end
    /// (needs --acks all); read_committed consumers see them only then.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// With --transactional-id: abort the transaction instead of committing it.
    #[arg(long, requires = "transactional_id")]
    pub abort: bool,
}

/// Producer settings shared by `produce`, `send` and `bench produce`, with
/// Kafka's names. `None` (or a flag not given) leaves the setting to -X,
/// --config and the defaults; --help shows the defaults from the library.
#[derive(Debug, Args)]
pub struct ProducerArgs {
    #[arg(long, help = defaults::app("`acks`: 0, 1 or all", defaults::ACKS))]
    pub acks: Option<Acks>,
    #[arg(long, help = defaults::library::<ProducerConfig>(
        "Key hashing: murmur2 (Java client) or crc32 (librdkafka consistent_random)", "partitioner.class"))]
    pub partitioner: Option<Partitioner>,
    #[arg(long, help = defaults::library::<ProducerConfig>(
        "`compression.type`: none, gzip, snappy, lz4 or zstd (all pure Rust)", "compression.type"))]
    pub compression: Option<Compression>,
    #[arg(long, help = defaults::library::<ProducerConfig>("`batch.size` in bytes", "batch.size"))]
    pub batch_size: Option<usize>,
    #[arg(long, help = defaults::library::<ProducerConfig>("`max.request.size` in bytes", "max.request.size"))]
    pub max_request_size: Option<usize>,
    #[arg(long, help = defaults::library::<ProducerConfig>("`delivery.timeout.ms`", "delivery.timeout.ms"))]
    pub delivery_timeout_ms: Option<u64>,
    #[arg(long, help = defaults::library::<ProducerConfig>(
        "`linger.ms`: how long a batch waits for more records before it is sent", "linger.ms"))]
    pub linger_ms: Option<u64>,
    /// `enable.idempotence` (requires --acks all).
    #[arg(long)]
    pub enable_idempotence: bool,
}

impl ProducerArgs {
    /// Sets `transactional.id` to `id` (a command's --transactional-id) when given;
    /// a transactional config gets acks=all (transactions need it), the seed's acks=1
    /// giving way unless --acks says otherwise.
    pub fn make_transactional(&self, config: &mut ProducerConfig, id: Option<&str>) {
        if let Some(id) = id {
            config.transactional_id = Some(id.to_owned());
        }
        if config.transactional_id.is_some() && self.acks.is_none() {
            config.acks = Acks::All;
        }
    }

    /// [`config`](Self::config) for a command that runs no transactions (`send`,
    /// `bench produce`): a `transactional.id` from --config or -X is refused there.
    pub fn config_without_transactions(&self, common: &Common, command: &str) -> Result<ProducerConfig, Error> {
        let config = self.config(common)?;
        if config.transactional_id.is_some() {
            return Err(Error::Usage(format!(
                "`transactional.id` is for `cafe produce --transactional-id`; `cafe {command}` runs no transactions"
            )));
        }
        Ok(config)
    }

    /// The producer's settings: the library's defaults, the application's
    /// acks, --config and -X, then these flags where given.
    pub fn config(&self, common: &Common) -> Result<ProducerConfig, Error> {
        let mut config = ProducerConfig { acks: defaults::ACKS, ..ProducerConfig::default() };
        common.apply(&mut config)?;
        config.acks = self.acks.unwrap_or(config.acks);
        config.partitioner = self.partitioner.unwrap_or(config.partitioner);
        config.compression = self.compression.unwrap_or(config.compression);
        config.batch_size = self.batch_size.unwrap_or(config.batch_size);
        config.max_request_size = self.max_request_size.unwrap_or(config.max_request_size);
        if let Some(ms) = self.delivery_timeout_ms {
            config.delivery_timeout = Duration::from_millis(ms);
        }
        if let Some(ms) = self.linger_ms {
            config.linger = Duration::from_millis(ms);
        }
        if self.enable_idempotence {
            config.enable_idempotence = Some(true);
        }
        // The connection's request.timeout.ms: set from the same -X/--config and flag.
        config.request_timeout = common.request_timeout();
        Ok(config)
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
    let mut config = args.producer.config(common)?;
    args.producer.make_transactional(&mut config, args.transactional_id.as_deref());
    config.validate().map_err(|e| Error::Usage(e.to_string()))?;
    // The registry first: a registry problem fails before any Kafka work.
    let schema_id = match &args.schema_registry {
        Some(url) => Some(register_schema(url, &args.topic, common).await?),
        None => None,
    };
    let cluster = common.cluster().await?;
    // An unknown topic fails here, before any event is made.
    cluster.topic_or_fetch(&args.topic).await?;
    let transactional = config.transactional_id.is_some();
    let producer = Producer::new(cluster, config).await?;
    if transactional {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let reports = Reports::new(args.json);

    tracing::info!(count = args.count, topic = %args.topic, "producing");
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let mut generator = EventGenerator::new(args.seed);
    let mut invalid = 0u64;
    let (mut sent, mut interrupt) = (0u64, Interrupt::watch());
    // One event at a time: made, framed, sent; memory stays flat however many.
    for _ in 0..args.count {
        if interrupt.fired() {
            break;
        }
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
        tokio::select! {
            // A send waiting for room (a slow or unreachable broker) gives way to Ctrl+C;
            // that record was not taken, so it has no report.
            _ = interrupt.wait() => break,
            r = reports.send(&producer, record, ev.event_id, key) => r?,
        }
        sent += 1;
    }
    if transactional {
        // Interrupted, or asked to: abort. A failed record also leaves only the abort.
        let outcome = match args.abort || interrupt.fired() {
            true => producer.abort_transaction().await,
            false => match producer.commit_transaction().await {
                Err(e @ cafe_kafka::TransactionError::Abortable(_)) => {
                    producer.abort_transaction().await?;
                    Err(e)
                }
                other => other,
            },
        };
        if let Err(e) = outcome {
            producer.close().await;
            return Err(e.into());
        }
        let verb = if args.abort || interrupt.fired() { "aborted" } else { "committed" };
        tracing::info!(sent, "transaction {verb}");
        if !args.json {
            eprintln!("transaction {verb}: {sent} records");
        }
    }
    producer.close().await;
    if interrupt.fired() {
        return Err(Error::Interrupted { sent, of: Some(args.count) });
    }
    let failed = reports.failed() + invalid;
    if failed > 0 {
        if invalid > 0 {
            return Err(Error::DeliveryFailed { failed, total: args.count });
        }
        return Err(reports.failure(failed, args.count, &args.topic));
    }
    Ok(())
}

/// Registers (or finds) the event schema under `<topic>-value`; its id frames every value.
async fn register_schema(url: &str, topic: &str, common: &Common) -> Result<u32, Error> {
    let mut registry = SchemaRegistry::new(url, common.request_timeout())?;
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
