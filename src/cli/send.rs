//! `cafe send`: raw records from standard input, one per line. For feeding other
//! data to a topic (malformed JSON in tests, oversized values, replays).

use std::io::BufRead;
use std::sync::Arc;

use clap::Args;

use super::interrupt::Interrupt;
use super::produce::ProducerArgs;
use super::{Common, Reports, defaults};
use crate::error::Error;
use cafe_kafka::producer::{Producer, ProducerRecord};

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
    let config = args.producer.config_without_transactions(common, "send")?;
    config.validate().map_err(|e| Error::Usage(e.to_string()))?;
    let cluster = common.cluster().await?;
    // An unknown topic fails here, before any input is read.
    cluster.topic_or_fetch(&args.topic).await?;
    let producer = Producer::new(cluster, config).await?;
    let reports = Reports::new(args.json);
    let topic: Arc<str> = Arc::from(args.topic.as_str());
    let mut total = 0u64;
    let mut interrupt = Interrupt::watch();
    // Line by line: a long input is never held in memory. A bad line stops the input
    // there; what was sent before it is still delivered and reported.
    let mut lines = read_lines();
    let mut stopped = None;
    for i in 0.. {
        let line = tokio::select! {
            biased;
            _ = interrupt.wait() => break,
            line = lines.recv() => match line {
                Some(line) => line,
                None => break,
            },
        };
        let line = match read_line(i, line) {
            Ok(l) => l,
            Err(e) => {
                stopped = Some(e);
                break;
            }
        };
        let (key, value) = match (args.keyed, line.split_once('\t')) {
            (true, Some((k, v))) => (Some(k.to_owned()), v.to_owned()),
            _ => (None, line),
        };
        let mut record = ProducerRecord::new(Arc::clone(&topic), value);
        if let Some(k) = &key {
            record = record.with_key(k.clone());
        }
        let sent = tokio::select! {
            _ = interrupt.wait() => break,
            r = reports.send(&producer, record, format!("line{}", i + 1), key) => r,
        };
        if let Err(e) = sent {
            stopped = Some(e);
            break;
        }
        total += 1;
    }
    producer.close().await;
    if interrupt.fired() {
        // How many lines there were is not known: the input was not read to its end.
        return Err(Error::Interrupted { sent: total, of: None });
    }
    if let Some(e) = stopped {
        return Err(e);
    }
    let failed = reports.failed();
    if failed > 0 {
        return Err(reports.failure(failed, total, &args.topic));
    }
    Ok(())
}

/// Standard input's lines as they come, read on their own thread: a read blocked on
/// a terminal or a quiet pipe must not keep Ctrl+C from being heard.
fn read_lines() -> tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().split(b'\n') {
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Line `i` (from 0) of standard input as text, without its line ending.
fn read_line(i: usize, line: std::io::Result<Vec<u8>>) -> Result<String, Error> {
    let line = line.map_err(|e| Error::Other(format!("reading standard input: {e}")))?;
    let line = String::from_utf8(line).map_err(|e| {
        Error::Input(format!(
            "line {} of standard input is not UTF-8 (invalid byte at column {}); cafe send takes text lines \
             (`key<TAB>value` with --keyed): convert the input, e.g. with iconv",
            i + 1,
            e.utf8_error().valid_up_to() + 1
        ))
    })?;
    Ok(line.strip_suffix('\r').map(str::to_owned).unwrap_or(line))
}
