//! The I/O half of the fetch path: performs [`FetchState`]'s actions over `wire`
//! on spawned tasks and feeds their answers back. Records are decoded later,
//! a batch at a time, as the consumer hands them out ([`BatchReader`]).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{FetchRequest, FetchResponse, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::FetchConfig;
use super::decode::{AbortedTxn, BatchReader, DecodeOptions};
use super::session::FetchPlan;
use super::state::{FetchAction, FetchEvent, FetchState, Leader, ListedOffsets, MetadataError, PartitionResult, Ready};
use crate::backoff::BackoffPolicy;
use crate::cluster::{self, Cluster};
use crate::types::TopicPartition;

/// Fetch v13 addresses topics by id (KIP-516).
const TOPIC_ID_VERSION: i16 = 13;
/// The broker holds a Fetch up to `fetch.max.wait.ms`; allow that on top of the request timeout.
const FETCH_TIMEOUT_SLACK: Duration = Duration::from_secs(5);

/// Drives a [`FetchState`]: call [`dispatch`](Self::dispatch) after every change,
/// and await [`next`](Self::next) for what the consumer should see.
pub(crate) struct Fetcher {
    pub state: FetchState,
    cluster: Arc<Cluster>,
    tx: mpsc::UnboundedSender<FetchEvent>,
    rx: mpsc::UnboundedReceiver<FetchEvent>,
}

impl Fetcher {
    pub fn new(cluster: Arc<Cluster>, config: FetchConfig, backoff: BackoffPolicy) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        Self { state: FetchState::new(config, backoff), cluster, tx, rx }
    }

    /// Where metadata currently puts `tp`'s leader (cached, no request).
    pub fn cached_leader(&self, tp: &TopicPartition) -> Option<Leader> {
        let t = self.cluster.topic(&tp.topic)?;
        let p = t.partitions.iter().find(|p| p.id == tp.partition)?;
        Some(Leader { node: p.leader, epoch: p.leader_epoch, topic_id: t.topic_id })
    }

    /// Sends whatever the state wants sent now.
    pub fn dispatch(&mut self) {
        for action in self.state.actions(Instant::now()) {
            let cluster = Arc::clone(&self.cluster);
            let config = *self.state.config();
            let tx = self.tx.clone();
            tokio::spawn(async move {
                let event = perform(&cluster, &config, action).await;
                let _ = tx.send(event);
            });
        }
    }

    /// Closes this consumer's fetch sessions on their brokers (best effort, at
    /// most `within`): a Fetch with the session id, epoch -1 and no partitions.
    pub async fn close_sessions(&mut self, within: Duration) {
        let closes = self.state.close_sessions().into_iter().map(|(broker, id, epoch)| {
            let cluster = Arc::clone(&self.cluster);
            async move {
                let req = FetchRequest::default().with_max_wait_ms(0).with_session_id(id).with_session_epoch(epoch);
                let closed = async {
                    let conn = cluster.fetch_broker(broker).await.map_err(|e| e.to_string())?;
                    let version = conn.version::<FetchRequest>().map_err(|e| e.to_string())?;
                    conn.request_within(&req, version, within).await.map_err(|e| e.to_string())
                };
                if let Err(e) = closed.await {
                    tracing::debug!(broker, session = id, error = %e, "closing the fetch session failed; it expires on the broker");
                }
            }
        });
        let _ = tokio::time::timeout(within, futures_join_all(closes)).await;
    }

    /// Waits for the next answer that gives the consumer something (records,
    /// a reset position, an error). Cancel-safe: an answer is never lost.
    pub async fn next(&mut self) -> Vec<Ready> {
        loop {
            let failures = self.state.take_failures();
            if !failures.is_empty() {
                return failures;
            }
            let deadline = self.state.next_deadline();
            let event = tokio::select! {
                e = self.rx.recv() => e,
                _ = sleep_until(deadline) => None,
            };
            let ready = match event {
                Some(e) => self.state.handle(e, Instant::now()),
                None => Vec::new(),
            };
            self.dispatch();
            if !ready.is_empty() {
                return ready;
            }
        }
    }
}

/// Runs the futures concurrently (a tiny `join_all`, to avoid a dependency).
async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futs: impl Iterator<Item = F>) {
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    for h in handles {
        let _ = h.await;
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

async fn perform(cluster: &Cluster, config: &FetchConfig, action: FetchAction) -> FetchEvent {
    match action {
        FetchAction::Fetch { broker, plan, topic_ids, offsets } => {
            let result = fetch(cluster, config, broker, &plan, &topic_ids, &offsets).await;
            FetchEvent::Fetched { broker, result }
        }
        FetchAction::ListOffsets { broker, partitions } => {
            let result = list_offsets(cluster, config, broker, &partitions).await;
            FetchEvent::OffsetsListed { broker, result }
        }
        FetchAction::RefreshMetadata { topics } => FetchEvent::Metadata(leaders(cluster, &topics).await),
    }
}

type FetchOutcome = Result<(Option<ResponseError>, i32, Vec<PartitionResult>), String>;

async fn fetch(
    cluster: &Cluster,
    config: &FetchConfig,
    broker: i32,
    plan: &FetchPlan,
    topic_ids: &BTreeMap<Arc<str>, Uuid>,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> FetchOutcome {
    let conn = cluster.fetch_broker(broker).await.map_err(|e| e.to_string())?;
    let version = conn.version::<FetchRequest>().map_err(|e| e.to_string())?;
    let by_id = version >= TOPIC_ID_VERSION && topic_ids.values().all(|id| !id.is_nil());
    let req = build_request(plan, topic_ids, config, version, by_id);
    let timeout = conn.request_timeout() + config.max_wait + FETCH_TIMEOUT_SLACK;
    let resp = match conn.request_within(&req, version, timeout).await {
        Ok(r) => r,
        Err(e) => {
            // The next Fetch opens a fresh connection (and a full session).
            cluster.forget_fetch_connection(conn.addr()).await;
            return Err(e.to_string());
        }
    };
    let names: BTreeMap<Uuid, &Arc<str>> = topic_ids.iter().map(|(n, id)| (*id, n)).collect();
    let isolation = config.isolation;
    let check_crcs = config.check_crcs;
    let FetchResponse { error_code, session_id, responses, .. } = resp;
    let mut results = Vec::new();
    for topic in responses {
        let name = if by_id {
            match names.get(&topic.topic_id) {
                Some(n) => Arc::clone(n),
                None => continue, // a topic we did not ask for
            }
        } else {
            // The name we asked with, shared rather than copied.
            match topic_ids.get_key_value(topic.topic.0.as_str()) {
                Some((n, _)) => Arc::clone(n),
                None => Arc::from(topic.topic.0.as_str()),
            }
        };
        for p in topic.partitions {
            let tp = TopicPartition { topic: Arc::clone(&name), partition: p.partition_index };
            // An incremental answer may carry partitions this request did not list
            // (the session holds them, at the offset we sent last).
            let Some(fetch_offset) = offsets.get(&tp).copied() else { continue };
            let aborted: Vec<AbortedTxn> = p
                .aborted_transactions
                .unwrap_or_default()
                .iter()
                .map(|a| AbortedTxn { producer_id: a.producer_id.0, first_offset: a.first_offset })
                .collect();
            let error = ResponseError::try_from_code(p.error_code);
            let reader = match (&error, p.records) {
                (None, Some(records)) => {
                    let opts = DecodeOptions { fetch_offset, isolation, aborted: &aborted, check_crcs };
                    Some(BatchReader::new(records, &opts))
                }
                _ => None,
            };
            results.push(PartitionResult { tp, error, reader });
        }
    }
    Ok((ResponseError::try_from_code(error_code), session_id, results))
}

fn build_request(
    plan: &FetchPlan,
    topic_ids: &BTreeMap<Arc<str>, Uuid>,
    config: &FetchConfig,
    version: i16,
    by_id: bool,
) -> FetchRequest {
    let topic = |name: &str, t: FetchTopic| -> FetchTopic {
        if by_id {
            t.with_topic_id(topic_ids.get(name).copied().unwrap_or_default())
        } else {
            t.with_topic(TopicName(StrBytes::from_string(name.to_owned())))
        }
    };
    let mut topics: Vec<FetchTopic> = Vec::new();
    let mut last: Option<&str> = None;
    // The plan is sorted by topic, so partitions of one topic are adjacent.
    for (tp, f) in &plan.partitions {
        if last != Some(&*tp.topic) {
            topics.push(topic(&tp.topic, FetchTopic::default()));
            last = Some(&tp.topic);
        }
        let mut fp = FetchPartition::default()
            .with_partition(tp.partition)
            .with_fetch_offset(f.fetch_offset)
            .with_partition_max_bytes(f.max_bytes);
        if version >= 9 {
            // KIP-320: lets the broker tell us our leader is stale (FENCED_LEADER_EPOCH).
            fp = fp.with_current_leader_epoch(f.leader_epoch);
        }
        if let Some(t) = topics.last_mut() {
            t.partitions.push(fp);
        }
    }
    let mut forgotten: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in &plan.forgotten {
        forgotten.entry(&tp.topic).or_default().push(tp.partition);
    }
    let forgotten = forgotten
        .into_iter()
        .map(|(name, ps)| {
            let t = ForgottenTopic::default().with_partitions(ps);
            if by_id {
                t.with_topic_id(topic_ids.get(name).copied().unwrap_or_default())
            } else {
                t.with_topic(TopicName(StrBytes::from_string(name.to_owned())))
            }
        })
        .collect();
    FetchRequest::default()
        .with_max_wait_ms(ms(config.max_wait))
        .with_min_bytes(config.min_bytes)
        .with_max_bytes(config.max_bytes)
        .with_isolation_level(config.isolation.wire_value())
        .with_session_id(plan.session_id)
        .with_session_epoch(plan.epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

async fn list_offsets(
    cluster: &Cluster,
    config: &FetchConfig,
    broker: i32,
    partitions: &[(TopicPartition, i64, i32)],
) -> ListedOffsets {
    let conn = cluster.broker(broker).await.map_err(|e| e.to_string())?;
    let mut by_topic: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
    for (tp, timestamp, epoch) in partitions {
        by_topic.entry(&tp.topic).or_default().push(
            ListOffsetsPartition::default()
                .with_partition_index(tp.partition)
                .with_timestamp(*timestamp)
                .with_current_leader_epoch(*epoch),
        );
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id((-1).into())
        // read_committed resets "latest" to the last stable offset, as the broker defines it.
        .with_isolation_level(config.isolation.wire_value())
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                        .with_partitions(ps)
                })
                .collect(),
        );
    let resp = match conn.request(&req).await {
        Ok(r) => r,
        Err(e) => {
            cluster.forget_connection(conn.addr()).await;
            return Err(e.to_string());
        }
    };
    let mut out = Vec::new();
    for t in resp.topics {
        let topic: Arc<str> = Arc::from(t.name.0.as_str());
        for p in t.partitions {
            let tp = TopicPartition { topic: Arc::clone(&topic), partition: p.partition_index };
            out.push((tp, ResponseError::try_from_code(p.error_code).map_or(Ok(p.offset), Err)));
        }
    }
    Ok(out)
}

async fn leaders(cluster: &Cluster, topics: &[String]) -> Result<BTreeMap<TopicPartition, Leader>, MetadataError> {
    let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    let infos = cluster.refresh(&refs).await.map_err(|e| match e {
        cluster::Error::UnknownTopic(t) => MetadataError::TopicGone(t),
        e => MetadataError::Other(e.to_string()),
    })?;
    let mut out = BTreeMap::new();
    for t in infos {
        let topic: Arc<str> = Arc::from(t.name.as_str());
        for p in &t.partitions {
            let leader = Leader { node: p.leader, epoch: p.leader_epoch, topic_id: t.topic_id };
            out.insert(TopicPartition { topic: Arc::clone(&topic), partition: p.id }, leader);
        }
    }
    Ok(out)
}

fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::session::PartitionFetch;

    fn plan() -> FetchPlan {
        let f = PartitionFetch { fetch_offset: 7, leader_epoch: 3, max_bytes: 100 };
        FetchPlan {
            session_id: 5,
            epoch: 2,
            partitions: vec![
                (TopicPartition::new("a", 0), f),
                (TopicPartition::new("a", 2), f),
                (TopicPartition::new("b", 1), f),
            ],
            forgotten: vec![TopicPartition::new("b", 0)],
            full: false,
        }
    }

    #[test]
    fn request_groups_partitions_by_topic_and_uses_ids_from_v13() {
        let ids: BTreeMap<Arc<str>, Uuid> = [("a".into(), Uuid::from_u128(1)), ("b".into(), Uuid::from_u128(2))].into();
        let req = build_request(&plan(), &ids, &FetchConfig::default(), 17, true);
        assert_eq!(req.topics.len(), 2);
        assert_eq!(req.topics[0].topic_id, Uuid::from_u128(1));
        assert_eq!(req.topics[0].partitions.iter().map(|p| p.partition).collect::<Vec<_>>(), vec![0, 2]);
        assert_eq!(req.topics[0].partitions[0].current_leader_epoch, 3);
        assert_eq!((req.session_id, req.session_epoch), (5, 2));
        assert_eq!(req.forgotten_topics_data[0].topic_id, Uuid::from_u128(2));
        assert_eq!(req.isolation_level, 1, "read_committed by default");
        assert_eq!(req.replica_id.0, -1, "a consumer, not a follower");
        // It encodes at every version we may pick.
        for v in [12, 13, 17] {
            let r = build_request(&plan(), &ids, &FetchConfig::default(), v, v >= 13);
            crate::wire::frame::encode_request(&r, v, 1, "t").unwrap();
        }
    }

    #[test]
    fn request_names_topics_before_v13() {
        let ids = BTreeMap::new();
        let req = build_request(&plan(), &ids, &FetchConfig::default(), 12, false);
        assert_eq!(req.topics[1].topic.0.as_str(), "b");
        assert!(req.topics[1].topic_id.is_nil());
    }
}
