//! One fetch task per assigned partition, over rskafka's partition client: resolve
//! the start offset (committed, else `auto.offset.reset`), then fetch in a loop and
//! push batches into the consumer's bounded channel (which is the backpressure).

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::error::{Error as RsError, ProtocolError};
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use tokio::sync::mpsc;

use crate::backoff::{Backoff, BackoffPolicy};
use crate::group::state::Tp;

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Fail when there is no committed offset (`none` in the Java client).
    Error,
}

impl std::str::FromStr for OffsetReset {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "earliest" => Ok(Self::Earliest),
            "latest" => Ok(Self::Latest),
            "error" | "none" => Ok(Self::Error),
            o => Err(format!("auto.offset.reset must be earliest, latest or error, not `{o}`")),
        }
    }
}

/// A record as fetched.
#[derive(Debug, Clone)]
pub struct FetchedRecord {
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub timestamp_ms: i64,
}

/// What a fetch task sends: records of `tp`, tagged with the assignment epoch in
/// which they were fetched, so records of a revoked assignment are dropped.
#[derive(Debug)]
pub enum Fetched {
    Records {
        tp: Tp,
        epoch: u64,
        records: Vec<FetchedRecord>,
    },
    /// Nothing to do but report: no committed offset and `auto.offset.reset=error`,
    /// or the topic is gone.
    Failed {
        tp: Tp,
        epoch: u64,
        reason: String,
        unknown_topic: bool,
    },
}

#[derive(Debug, Clone, Copy)]
pub struct FetchSettings {
    pub reset: OffsetReset,
    pub max_bytes: i32,
    pub max_wait: Duration,
}

/// Runs until aborted (revocation) or the receiver is gone.
pub async fn run(
    client: Arc<rskafka::client::Client>,
    tp: Tp,
    start: Option<i64>,
    epoch: u64,
    settings: FetchSettings,
    tx: mpsc::Sender<Fetched>,
) {
    let fail = |reason: String, unknown_topic: bool| Fetched::Failed { tp: tp.clone(), epoch, reason, unknown_topic };
    let pc = match client.partition_client(tp.0.clone(), tp.1, UnknownTopicHandling::Error).await {
        Ok(pc) => pc,
        Err(e) => {
            let unknown = is_unknown_topic(&e);
            let _ = tx.send(fail(format!("cannot fetch {}[{}]: {e}", tp.0, tp.1), unknown)).await;
            return;
        }
    };
    let mut backoff = Backoff::new(BackoffPolicy::default());
    let mut offset = match start {
        Some(o) => o,
        None => match reset_offset(&pc, settings.reset).await {
            Ok(o) => o,
            Err(reason) => {
                let _ = tx.send(fail(reason, false)).await;
                return;
            }
        },
    };
    tracing::debug!(topic = %tp.0, partition = tp.1, offset, "fetching");
    let max_wait = settings.max_wait.as_millis().min(i32::MAX as u128) as i32;
    loop {
        match pc.fetch_records(offset, 1..settings.max_bytes, max_wait).await {
            Ok((records, _high_watermark)) => {
                backoff.reset();
                // rskafka returns whole batches; skip what precedes our position.
                let records: Vec<FetchedRecord> = records
                    .into_iter()
                    .filter(|r| r.offset >= offset)
                    .map(|r| FetchedRecord {
                        offset: r.offset,
                        key: r.record.key,
                        value: r.record.value,
                        timestamp_ms: r.record.timestamp.timestamp_millis(),
                    })
                    .collect();
                if let Some(last) = records.last() {
                    offset = last.offset + 1;
                    if tx.send(Fetched::Records { tp: tp.clone(), epoch, records }).await.is_err() {
                        return;
                    }
                }
            }
            Err(RsError::ServerError { protocol_error: ProtocolError::OffsetOutOfRange, .. }) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, offset, "offset out of range; applying auto.offset.reset");
                match reset_offset(&pc, settings.reset).await {
                    Ok(o) => offset = o,
                    Err(reason) => {
                        let _ = tx.send(fail(reason, false)).await;
                        return;
                    }
                }
            }
            // A broker that just restarted may answer UNKNOWN_TOPIC_OR_PARTITION
            // before it has caught up with the metadata log: only a topic the
            // cluster metadata no longer lists was really deleted.
            Err(e) if is_unknown_topic(&e) && !topic_listed(&client, &tp).await => {
                let _ = tx.send(fail(format!("topic {} was deleted while consuming", tp.0), true)).await;
                return;
            }
            Err(e) => {
                // Broker restarts, leader moves: rskafka re-resolves the leader; we back off.
                let delay = backoff.next_delay();
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, ?delay, "fetch failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

async fn reset_offset(pc: &rskafka::client::partition::PartitionClient, reset: OffsetReset) -> Result<i64, String> {
    let at = match reset {
        OffsetReset::Earliest => OffsetAt::Earliest,
        OffsetReset::Latest => OffsetAt::Latest,
        OffsetReset::Error => {
            return Err(format!(
                "{}[{}] has no committed offset and auto.offset.reset=error; use --auto-offset-reset earliest|latest",
                pc.topic(),
                pc.partition()
            ));
        }
    };
    pc.get_offset(at).await.map_err(|e| format!("ListOffsets for {}[{}] failed: {e}", pc.topic(), pc.partition()))
}

/// Whether the cluster still lists `tp` (a failed lookup counts as listed: retry).
async fn topic_listed(client: &rskafka::client::Client, tp: &Tp) -> bool {
    match client.list_topics().await {
        Ok(topics) => topics.iter().any(|t| t.name == tp.0 && t.partitions.contains(&tp.1)),
        Err(_) => true,
    }
}

fn is_unknown_topic(e: &RsError) -> bool {
    matches!(e, RsError::ServerError { protocol_error: ProtocolError::UnknownTopicOrPartition, .. })
}
