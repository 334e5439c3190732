//! `cafe totals`: consume-transform-produce, exactly once (KIP-98). Reads the cafe
//! events of `--from` as group `--group` (read_committed, no auto-commit), keeps a
//! running total per customer, and writes each new total to `--to` (key: the
//! customer) in a transaction that also commits the input offsets. Killed at any
//! point, the next run (same `--transactional-id`, so it fences and aborts what the
//! killed one left open) starts from the committed input offsets with the totals as
//! `--to` holds them, committed: no update is lost or counted twice.
//!
//! The input offsets are committed with the member's generation and id (KIP-447),
//! so a member the group has moved on from cannot commit them. One instance per
//! group at a time all the same: the totals are kept in memory for every customer
//! and restored from `--to` only at the start, and the transactional id is fixed,
//! so a second instance fences the first.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use cafe_kafka::consumer::{Consumer, ConsumerConfig, ConsumerEvent, IsolationLevel, OffsetReset};
use cafe_kafka::{Admin, Producer, ProducerConfig, ProducerRecord, TopicPartition};
use clap::Args;
use serde_json::json;

use super::Common;
use super::consume::parse_duration;
use crate::error::Error;
use crate::event::CafeEvent;

#[derive(Debug, Args)]
pub struct TotalsArgs {
    /// The topic of cafe events to read.
    #[arg(long, default_value = super::defaults::TOPIC)]
    pub from: String,
    /// The topic the running totals go to (it must exist: `cafe topic create totals`).
    #[arg(long, default_value = "totals")]
    pub to: String,
    /// The consumer group reading --from.
    #[arg(long, short = 'g', default_value = "cafe-totals")]
    pub group: String,
    /// `transactional.id`; default `<group>-tx`.
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// Exit once no event arrived for this long (e.g. 10s), counted from the start or
    /// the last change of assignment; default: run until Ctrl+C.
    #[arg(long, value_parser = parse_duration)]
    pub idle_exit: Option<Duration>,
}

/// A customer's running total, as written to --to.
#[derive(Debug, Default, PartialEq)]
struct Total {
    orders: u64,
    /// In cents, so sums stay exact.
    cents: i64,
}

fn cents(amount: f64) -> i64 {
    (amount * 100.0).round() as i64
}

impl Total {
    fn to_json(&self, customer: &str) -> Vec<u8> {
        let v = json!({"customer_name": customer, "orders": self.orders, "total_cents": self.cents});
        serde_json::to_vec(&v).expect("a JSON object")
    }

    fn from_json(bytes: &[u8]) -> Option<(String, Total)> {
        let v: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let customer = v.get("customer_name")?.as_str()?.to_owned();
        Some((customer, Total { orders: v.get("orders")?.as_u64()?, cents: v.get("total_cents")?.as_i64()? }))
    }
}

pub async fn run(common: &Common, args: TotalsArgs) -> Result<(), Error> {
    let cluster = common.cluster().await?;
    cluster.topic_or_fetch(&args.from).await?;
    cluster.topic_or_fetch(&args.to).await?;
    let txn_id = args.transactional_id.clone().unwrap_or_else(|| format!("{}-tx", args.group));
    let mut pconfig = ProducerConfig::default(); // acks=all, idempotent
    common.apply(&mut pconfig)?;
    pconfig.transactional_id = Some(txn_id);
    pconfig.validate().map_err(|e| Error::Usage(e.to_string()))?;
    let producer = Producer::new(cluster.clone(), pconfig).await?;
    // Fences an older instance and aborts its open transaction: what --to holds,
    // read_committed, is then exactly what the committed input offsets produced.
    producer.init_transactions().await?;
    let mut totals = restore(&cluster, common, &args.to).await?;
    tracing::info!(customers = totals.len(), "totals restored from {}", args.to);

    let mut config = ConsumerConfig::default();
    common.apply(&mut config)?;
    config.group.group_id = args.group.clone();
    config.group.topics = vec![args.from.clone()];
    config.group.enable_auto_commit = false; // offsets go with each transaction
    config.fetch.isolation = IsolationLevel::ReadCommitted;
    config.fetch.reset = OffsetReset::Earliest;
    config.validate()?;
    let mut consumer = Consumer::new(cluster, config).await?;
    let to: std::sync::Arc<str> = args.to.as_str().into();
    let shutdown = super::interrupt::signal();
    tokio::pin!(shutdown);
    let mut idle_since = tokio::time::Instant::now();
    let (mut events, mut transactions) = (0u64, 0u64);
    let result: Result<(), Error> = loop {
        let next = async {
            match args.idle_exit {
                Some(idle) => tokio::time::timeout_at(idle_since + idle, consumer.next_event()).await.ok(),
                None => Some(consumer.next_event().await),
            }
        };
        let batch = tokio::select! {
            _ = &mut shutdown => break Ok(()),
            e = next => match e {
                None => break Ok(()),
                Some(Err(e)) => break Err(e.into()),
                Some(Ok(ConsumerEvent::Records(batch))) => batch,
                // Assignment changes: the offsets travel with each transaction. The idle
                // clock starts again, so a slow join does not count as idle.
                Some(Ok(_)) => {
                    idle_since = tokio::time::Instant::now();
                    continue;
                }
            },
        };
        if batch.is_empty() {
            continue;
        }
        idle_since = tokio::time::Instant::now();
        producer.begin_transaction()?;
        let mut offsets: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        // Updated in place: a transaction that fails to commit ends the run, and the
        // next one restores the totals from --to.
        for r in &batch {
            offsets.insert(TopicPartition::new(r.topic.clone(), r.partition), r.record.offset + 1);
            let Some(ev) = r.record.value.as_deref().and_then(|v| CafeEvent::from_json(v).ok()) else {
                tracing::warn!(topic = %r.topic, partition = r.partition, offset = r.record.offset, "not a cafe event; skipped");
                continue;
            };
            let t = totals.entry(ev.customer_name.clone()).or_default();
            t.orders += 1;
            t.cents += cents(ev.amount);
            let record = ProducerRecord::new(to.clone(), t.to_json(&ev.customer_name)).with_key(ev.customer_name);
            // Delivery is checked by the commit: a record not delivered fails it.
            drop(producer.send(record).await?);
        }
        let offsets: Vec<(TopicPartition, i64)> = offsets.into_iter().collect();
        producer.send_offsets_to_transaction(&offsets, &consumer.group_metadata()).await?;
        if let Err(e) = producer.commit_transaction().await {
            // Nothing of this batch counts; the next run starts again from the last commit.
            let _ = producer.abort_transaction().await;
            break Err(e.into());
        }
        events += batch.len() as u64;
        transactions += 1;
    };
    producer.close().await;
    // No offsets are committed on close (auto-commit is off): they went with each transaction.
    let closed = consumer.close().await;
    eprintln!("cafe totals: {events} events in {transactions} transactions; {} customers", totals.len());
    result?;
    closed.map_err(Error::from)
}

/// The last committed total per customer in `topic`, read_committed to its end.
async fn restore(
    cluster: &std::sync::Arc<cafe_kafka::Cluster>,
    common: &Common,
    topic: &str,
) -> Result<HashMap<String, Total>, Error> {
    let ends = Admin::new(cluster.clone(), common.request_timeout()).end_offsets(topic).await?;
    let mut totals = HashMap::new();
    if ends.values().all(|&end| end == 0) {
        return Ok(totals);
    }
    let mut config = ConsumerConfig::default();
    common.apply(&mut config)?;
    // A group of its own, committing nothing: only to read the topic from its start.
    config.group.group_id = format!("cafe-totals-restore-{}", uuid::Uuid::new_v4().simple());
    config.group.topics = vec![topic.to_owned()];
    config.group.enable_auto_commit = false;
    config.fetch.isolation = IsolationLevel::ReadCommitted;
    config.fetch.reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(cluster.clone(), config).await?;
    let caught_up = |c: &Consumer| {
        ends.iter().all(|(&p, &end)| end == 0 || c.position(&TopicPartition::new(topic, p)).is_some_and(|at| at >= end))
    };
    while !caught_up(&consumer) {
        // A poll waits for records, and aborted ones never come: look at the
        // positions again every so often, they move past them.
        let Ok(batch) = tokio::time::timeout(Duration::from_millis(500), consumer.poll()).await else { continue };
        for r in batch? {
            if let Some((customer, t)) = r.record.value.as_deref().and_then(Total::from_json) {
                totals.insert(customer, t);
            }
        }
    }
    consumer.close().await?;
    Ok(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_total_round_trips_and_sums_in_cents() {
        let t = Total { orders: 3, cents: cents(4.4) + cents(3.3) + cents(0.1) };
        assert_eq!(t.cents, 780);
        assert_eq!(Total::from_json(&t.to_json("Ana")), Some(("Ana".into(), t)));
        assert_eq!(Total::from_json(b"{\"customer_name\":\"x\"}"), None);
    }
}
