//! Command-line parsing and printing. Each subcommand builds its config, calls the
//! library and prints; nothing here talks Kafka itself.

mod bench;
mod consume;
pub mod defaults;
mod interrupt;
mod produce;
mod send;
mod settings;
mod topic;
mod totals;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Args, Parser, Subcommand};

use crate::error::Error;
use cafe_kafka::producer::{Delivery, Producer, ProducerRecord};
use cafe_kafka::{ClientConfig, Properties};

#[derive(Debug, Parser)]
#[command(name = "cafe", version, about = "Campus cafe events through Apache Kafka, in pure Rust")]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub command: Command,
}

/// Settings every subcommand shares, with Kafka's names. The flags are
/// `None` when not given, so that `--config` and `-X` can set the same
/// settings underneath them (see `settings.rs`); [`run`] resolves them.
#[derive(Debug, Args)]
pub struct Common {
    // `bootstrap.servers`; CAFE_BOOTSTRAP counts as the flag.
    #[arg(
        long = "bootstrap-server",
        short = 'b',
        global = true,
        env = "CAFE_BOOTSTRAP",
        help = defaults::app("`bootstrap.servers`: comma-separated host:port list", defaults::BOOTSTRAP)
    )]
    pub bootstrap: Option<String>,
    /// `client.id` sent with every request; defaults to this machine's host name.
    #[arg(long, global = true)]
    pub client_id: Option<String>,
    #[arg(long, global = true, value_parser = clap::value_parser!(u64).range(1..),
        help = defaults::library::<ClientConfig>("`request.timeout.ms`", "request.timeout.ms"))]
    pub request_timeout_ms: Option<u64>,
    /// `security.protocol`: PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL.
    #[arg(long, global = true, value_name = "PROTOCOL")]
    pub security_protocol: Option<String>,
    /// `sasl.mechanism`: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER.
    #[arg(long, global = true, value_name = "MECHANISM")]
    pub sasl_mechanism: Option<String>,
    /// `sasl.username`. The password is never a flag: it comes from the
    /// CAFE_SASL_PASSWORD environment variable, or sasl.password /
    /// sasl.jaas.config in the --config file.
    #[arg(long, global = true, value_name = "USER")]
    pub sasl_username: Option<String>,
    /// A Java client.properties file of Kafka settings (bootstrap.servers=...,
    /// acks=..., group.id=...); each command takes the settings of its role.
    /// -X and the dedicated flags override it.
    #[arg(long = "config", global = true, value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// A Kafka setting, as kcat takes it (e.g. -X acks=all -X linger.ms=20);
    /// repeatable, overrides --config, overridden by the dedicated flags.
    #[arg(short = 'X', global = true, value_name = "KEY=VALUE", value_parser = settings::parse_setting)]
    pub properties_given: Vec<(String, String)>,
    /// The --config file with -X on top, read by [`run`].
    #[arg(skip)]
    pub(crate) properties: Properties,
    /// The client settings, resolved by [`run`].
    #[arg(skip)]
    pub(crate) client: ClientConfig,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure producer or consumer throughput, latency, CPU and memory.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Join the consumer group and print every cafe event (the seed's consumer).
    Consume(consume::ConsumeArgs),
    /// Send N random cafe events (the seed's producer).
    Produce(produce::ProduceArgs),
    /// Send raw records, one per line of standard input (`key<TAB>value` with --keyed).
    Send(send::SendArgs),
    /// Create, recreate or describe a topic.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Exactly once: read the cafe events and write each customer's running total
    /// to another topic, input offsets committed in the same transaction.
    Totals(totals::TotalsArgs),
}

impl Common {
    /// The servers of `--bootstrap-server` (or CAFE_BOOTSTRAP), checked.
    pub fn bootstrap_list(&self) -> Result<Vec<String>, Error> {
        let given = self.bootstrap.as_deref().unwrap_or(defaults::BOOTSTRAP);
        let list: Vec<String> = given.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if list.is_empty() {
            return Err(Error::Usage("--bootstrap-server is empty; give host:port".into()));
        }
        for addr in &list {
            let ok = addr.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(Error::Usage(format!("--bootstrap-server `{addr}` is not host:port")));
            }
        }
        Ok(list)
    }
}

/// Runs the parsed command, after resolving `--config` and `-X`.
pub async fn run(mut cli: Cli) -> Result<(), Error> {
    cli.common.resolve()?;
    match cli.command {
        Command::Bench(cmd) => bench::run(&cli.common, cmd).await,
        Command::Consume(args) => consume::run(&cli.common, args).await,
        Command::Produce(args) => produce::run(&cli.common, args).await,
        Command::Send(args) => send::run(&cli.common, args).await,
        Command::Topic(cmd) => topic::run(&cli.common, cmd).await,
        Command::Totals(args) => totals::run(&cli.common, args).await,
    }
}

/// This machine's host name (the seed used `socket.gethostname()` as `client.id`).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "cafe".into())
}

/// Sends records for `produce` and `send`, printing each delivery report as it
/// comes and counting the failures.
pub(crate) struct Reports {
    json: bool,
    failed: Arc<AtomicU64>,
    /// Of those, the records the broker's ACLs refused (TOPIC_AUTHORIZATION_FAILED).
    denied: Arc<AtomicU64>,
}

impl Reports {
    pub(crate) fn new(json: bool) -> Self {
        Self { json, failed: Arc::new(AtomicU64::new(0)), denied: Arc::new(AtomicU64::new(0)) }
    }

    /// The error for `failed` of `total` records not delivered to `topic`: an
    /// ACL denial when the ACLs refused every one of them.
    pub(crate) fn failure(&self, failed: u64, total: u64, topic: &str) -> Error {
        if self.denied.load(Ordering::Relaxed) == failed {
            return Error::WriteDenied { topic: topic.to_owned(), failed, total };
        }
        Error::DeliveryFailed { failed, total }
    }

    /// Sends `record`; its report will name it `label` and show `key`.
    pub(crate) async fn send(
        &self,
        producer: &Producer,
        record: ProducerRecord,
        label: String,
        key: Option<String>,
    ) -> Result<(), Error> {
        let (json, failed, denied) = (self.json, Arc::clone(&self.failed), Arc::clone(&self.denied));
        let on_delivery = move |d: Delivery| {
            if let Err(e) = &d.result {
                failed.fetch_add(1, Ordering::Relaxed);
                if let cafe_kafka::producer::DeliveryError::Rejected {
                    error: kafka_protocol::error::ResponseError::TopicAuthorizationFailed,
                    ..
                } = e
                {
                    denied.fetch_add(1, Ordering::Relaxed);
                }
            }
            print_delivery(&d, &label, key.as_deref(), json);
        };
        Ok(producer.send_with_callback(record, on_delivery).await?)
    }

    /// Records that failed so far (all of them, once the producer is closed).
    pub(crate) fn failed(&self) -> u64 {
        self.failed.load(Ordering::Relaxed)
    }
}

/// Shared delivery-report printing for `produce` and `send`.
pub(crate) fn print_delivery(d: &Delivery, label: &str, key: Option<&str>, json: bool) {
    let key_s = key.unwrap_or("<null>");
    if json {
        let line = match &d.result {
            Ok(offset) => serde_json::json!({
                "id": label, "key": key, "topic": &*d.topic, "partition": d.partition, "offset": offset,
            }),
            Err(e) => serde_json::json!({
                "id": label, "key": key, "topic": &*d.topic, "partition": d.partition, "error": delivery_error(e),
            }),
        };
        println!("{line}");
        return;
    }
    match &d.result {
        Ok(Some(offset)) => println!("delivered {label} key={key_s} -> {}[{}]@{offset}", d.topic, d.partition),
        // acks=0, or a retry the broker recognised as already written (idempotence).
        Ok(None) => println!("sent {label} key={key_s} -> {}[{}] (no offset reported)", d.topic, d.partition),
        Err(e) => println!("FAILED {label} key={key_s} -> {}: {}", d.topic, delivery_error(e)),
    }
}

/// Why a record failed, as the user reads it: the library's reason, plus the flag
/// to change where one helps.
fn delivery_error(e: &cafe_kafka::producer::DeliveryError) -> String {
    match e {
        cafe_kafka::producer::DeliveryError::RecordTooLarge { setting: "max.request.size", .. } => {
            format!("{e}; send a smaller record or raise --max-request-size")
        }
        cafe_kafka::producer::DeliveryError::RecordTooLarge { setting, .. } => {
            format!("{e}; send a smaller record or raise {setting}")
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use cafe_kafka::producer::DeliveryError;

    #[test]
    fn a_record_over_max_request_size_is_reported_with_the_flag_to_raise() {
        let e = DeliveryError::RecordTooLarge { size: 2_000_082, max: 1_048_576, setting: "max.request.size" };
        assert!(!e.to_string().contains("--"), "the library names no flag: {e}");
        assert_eq!(
            super::delivery_error(&e),
            "record of 2000082 bytes exceeds max.request.size=1048576; send a smaller record or raise --max-request-size"
        );
        // Other failures print as the library says them.
        assert_eq!(super::delivery_error(&DeliveryError::BrokerTooLarge), DeliveryError::BrokerTooLarge.to_string());
    }
}
