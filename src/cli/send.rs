//! `cafe send`: raw records from standard input, one per line. For feeding other
//! data to a topic (malformed JSON in tests, oversized values, replays).

use std::io::BufRead;

use bytes::Bytes;
use clap::Args;

use super::produce::ProducerArgs;
use super::{Common, defaults, print_delivery};
use crate::error::Error;
use cafe_kafka::producer::{OutRecord, Producer};

#[derive(Debug, Args)]
pub struct SendArgs {
    #[arg(long, short = 't', default_value = defaults::TOPIC)]
    pub topic: String,
    /// Lines are `key<TAB>value`; without it every record has a null key.
    #[arg(long)]
    pub keyed: bool,
    #[command(flatten)]
    pub producer: ProducerArgs,
    #[arg(long)]
    pub json: bool,
}

pub async fn run(common: &Common, args: SendArgs) -> Result<(), Error> {
    let config = args.producer.config(common)?;
    config.validate().map_err(|e| Error::Usage(e.to_string()))?;
    let mut lines = Vec::new();
    for (i, line) in std::io::stdin().lock().split(b'\n').enumerate() {
        let line = line.map_err(|e| Error::Other(format!("reading standard input: {e}")))?;
        let line = String::from_utf8(line).map_err(|e| {
            Error::Input(format!(
                "line {} of standard input is not UTF-8 (invalid byte at column {}); cafe send takes text lines \
                 (`key<TAB>value` with --keyed): convert the input, e.g. with iconv",
                i + 1,
                e.utf8_error().valid_up_to() + 1
            ))
        })?;
        lines.push(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line));
    }
    let split: Vec<(Option<String>, String)> = lines
        .into_iter()
        .map(|l| match (args.keyed, l.split_once('\t')) {
            (true, Some((k, v))) => (Some(k.to_owned()), v.to_owned()),
            _ => (None, l),
        })
        .collect();
    let cluster = common.cluster().await?;
    let mut producer = Producer::new(cluster, config).await?;
    let now = chrono::Utc::now().timestamp_millis();
    let records = split.iter().enumerate().map(|(i, (k, v))| OutRecord {
        id: i as u64,
        key: k.as_ref().map(|k| Bytes::copy_from_slice(k.as_bytes())),
        value: Bytes::copy_from_slice(v.as_bytes()),
        timestamp_ms: now,
        headers: Vec::new(),
    });
    let summary = producer
        .send_stream(&args.topic, records, |d| {
            let i = d.id as usize;
            print_delivery(&d, &format!("line{}", i + 1), split[i].0.as_deref(), args.json);
        })
        .await?;
    if summary.failed > 0 {
        return Err(Error::DeliveryFailed { failed: summary.failed, total: split.len() as u64 });
    }
    Ok(())
}
