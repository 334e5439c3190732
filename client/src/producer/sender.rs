//! The produce loop: pulls records lazily (memory stays bounded however many are
//! sent), seals full batches, keeps up to `max.in.flight` Produce requests going,
//! and turns every partition response into per-record delivery reports.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use super::Error;
use super::batch::{Idempotence, OpenBatch, OutRecord, SealedBatch};
use super::config::{Acks, ProducerConfig};
use crate::cluster::Cluster;
use crate::partitioner::NullKeyPicker;
use crate::wire;

/// Produce v13 addresses topics by id (KIP-516); names are all we track.
const MAX_PRODUCE_VERSION: i16 = 12;
/// Sealed batches waiting to be sent, at most; bounds memory on long streams.
const READY_LIMIT: usize = 64;
/// Record batch header, counted against `max.request.size` with the record.
const BATCH_OVERHEAD: usize = 61;

/// Why one record was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    #[error("record of {size} bytes exceeds max.request.size={max}")]
    RecordTooLarge { size: usize, max: usize },
    #[error("broker refused the record: MESSAGE_TOO_LARGE (its message.max.bytes is smaller than this batch)")]
    BrokerTooLarge,
    #[error("broker refused the record: {error}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Rejected { error: ResponseError, message: Option<String> },
    #[error("not delivered within delivery.timeout.ms={timeout_ms} after {attempts} attempts; last error: {last}")]
    TimedOut { timeout_ms: u64, attempts: u32, last: String },
    #[error("{0}")]
    Encode(String),
}

/// The final outcome of one record. The offset is `None` when the broker does not
/// tell it: with acks=0, or for a retry the broker recognised as already written.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub id: u64,
    pub topic: Arc<str>,
    pub partition: i32,
    pub result: Result<Option<i64>, DeliveryError>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProduceSummary {
    pub delivered: u64,
    pub failed: u64,
    pub retries: u64,
}

/// A producer bound to a cluster. One `send_stream` at a time per producer.
pub struct Producer {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    producer_id: Option<(i64, i16)>,
    sequences: HashMap<(Arc<str>, i32), i32>,
    /// (producer id, topic, partition) where a batch failed for good: the broker will
    /// refuse every later sequence of that producer id there (OUT_OF_ORDER_SEQUENCE_NUMBER),
    /// so those batches move to a fresh producer id instead of retrying in vain.
    gaps: HashSet<(i64, Arc<str>, i32)>,
}

/// What one Produce request came back with.
struct Outcome {
    leader: i32,
    batches: Vec<SealedBatch>,
    result: Result<Option<ProduceResponse>, wire::Error>,
}

impl Producer {
    pub async fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Self, Error> {
        config.validate()?;
        let mut p = Self { cluster, config, producer_id: None, sequences: HashMap::new(), gaps: HashSet::new() };
        if p.config.enable_idempotence {
            p.producer_id = Some(p.init_producer_id().await?);
        }
        Ok(p)
    }

    async fn init_producer_id(&self) -> Result<(i64, i16), Error> {
        let req = idempotent_init_request();
        let mut backoff = crate::backoff::Backoff::new(self.config.backoff);
        // Any broker hands out producer ids; a dead one or a busy coordinator is
        // retried with the one backoff policy (about 8 s in all), then reported.
        loop {
            let last = match self.cluster.any_connection().await {
                Ok(conn) => match conn.request(&req).await {
                    Ok(resp) => match ResponseError::try_from_code(resp.error_code) {
                        None => return Ok((resp.producer_id.0, resp.producer_epoch)),
                        Some(e) if e.is_retriable() => e.to_string(),
                        Some(e) => return Err(Error::InitProducerId(e.to_string())),
                    },
                    Err(e) if e.is_retriable() => {
                        self.cluster.forget_connection(conn.addr()).await;
                        e.to_string()
                    }
                    Err(e) => return Err(Error::InitProducerId(e.to_string())),
                },
                Err(e) if e.is_retriable() && backoff.attempts() > 0 => e.to_string(),
                Err(e) => return Err(e.into()),
            };
            if backoff.attempts() >= 10 {
                return Err(Error::InitProducerId(last));
            }
            tracing::debug!(%last, "InitProducerId failed; retrying");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Sends every record of `records` to `topic` and calls `on_delivery` once per
    /// record with its final outcome. Returns when all are settled.
    pub async fn send_stream<I, F>(
        &mut self,
        topic: &str,
        records: I,
        mut on_delivery: F,
    ) -> Result<ProduceSummary, Error>
    where
        I: IntoIterator<Item = OutRecord>,
        F: FnMut(Delivery),
    {
        let topic: Arc<str> = Arc::from(topic);
        let info = self.cluster.topic_or_fetch(&topic).await?;
        let partitions = info.partition_count();
        let mut summary = ProduceSummary::default();
        let mut picker = NullKeyPicker::new(None);
        let mut open: HashMap<i32, OpenBatch> = HashMap::new();
        let mut ready: VecDeque<SealedBatch> = VecDeque::new();
        let mut inflight: JoinSet<Outcome> = JoinSet::new();
        // Partitions with a batch in flight (tracked with idempotence only).
        let mut busy: HashSet<i32> = HashSet::new();
        let mut records = records.into_iter();
        let mut exhausted = false;
        let mut report = |d: Delivery, s: &mut ProduceSummary| {
            if d.result.is_ok() {
                s.delivered += 1
            } else {
                s.failed += 1
            }
            on_delivery(d);
        };

        loop {
            // Fill: batch records until enough sealed batches are waiting.
            let linger = self.config.linger;
            let mut pulled = 0u32;
            while !exhausted && ready.len() < READY_LIMIT {
                // Leave to dispatch once a slot is free and a request's worth (a batch
                // per partition) is sealed, or the oldest sealed batch waited `linger.ms`;
                // otherwise a record would wait for READY_LIMIT batches to fill.
                if inflight.len() < self.config.max_in_flight
                    && !ready.is_empty()
                    && (ready.len() >= partitions as usize
                        || ready.front().is_some_and(|b| b.created.elapsed() >= linger))
                {
                    break;
                }
                // Seal open batches older than `linger.ms` (checked every 16 records:
                // a clock read per record costs more than it saves).
                pulled = pulled.wrapping_add(1);
                if pulled % 16 == 0 {
                    let now = Instant::now();
                    let aged: Vec<i32> = open
                        .iter()
                        .filter(|(_, b)| !b.is_empty() && now.duration_since(b.created()) >= linger)
                        .map(|(p, _)| *p)
                        .collect();
                    for p in aged {
                        let b = open.remove(&p).expect("present");
                        self.seal_into(&topic, b, &mut ready, &mut report, &mut summary);
                    }
                }
                let Some(r) = records.next() else {
                    exhausted = true;
                    break;
                };
                let size = r.approx_size() + BATCH_OVERHEAD;
                let max = self.config.max_request_size;
                if size > max {
                    let err = DeliveryError::RecordTooLarge { size, max };
                    report(Delivery { id: r.id, topic: topic.clone(), partition: -1, result: Err(err) }, &mut summary);
                    continue;
                }
                let p = self.config.partitioner.partition(r.key.as_deref(), partitions, &mut picker);
                let batch = open.entry(p).or_insert_with(|| OpenBatch::new(p, Instant::now()));
                if !batch.is_empty() && batch.size() + r.approx_size() > self.config.batch_size {
                    let full = std::mem::replace(batch, OpenBatch::new(p, Instant::now()));
                    self.seal_into(&topic, full, &mut ready, &mut report, &mut summary);
                }
                open.get_mut(&p).expect("inserted above").push(r);
                if open[&p].size() >= self.config.batch_size {
                    let full = open.remove(&p).expect("present");
                    self.seal_into(&topic, full, &mut ready, &mut report, &mut summary);
                }
            }
            if exhausted {
                for (_, b) in open.drain() {
                    self.seal_into(&topic, b, &mut ready, &mut report, &mut summary);
                }
            }
            // Dispatch while there is room in flight.
            while inflight.len() < self.config.max_in_flight {
                let Some((leader, batches)) = self.take_request(&topic, &mut ready, &mut busy) else { break };
                inflight.spawn(send(Arc::clone(&self.cluster), self.config.clone(), topic.clone(), leader, batches));
            }
            if inflight.is_empty() {
                if exhausted && ready.is_empty() {
                    break;
                }
                continue;
            }
            // A slot is still free and every sealed batch went out: settle what has
            // already finished without waiting, and go on batching, so the pipeline
            // stays full at high rates. (With batches waiting for a busy partition
            // this would spin, so then we wait below.)
            if inflight.len() < self.config.max_in_flight && !exhausted && ready.is_empty() {
                while let Some(done) = inflight.try_join_next() {
                    let outcome = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    busy.retain(|p| !outcome.batches.iter().any(|b| b.partition == *p));
                    self.settle(&topic, outcome, &mut ready, &mut report, &mut summary).await;
                }
                continue;
            }
            // Settle one response.
            let outcome = match inflight.join_next().await {
                Some(Ok(o)) => o,
                // Only a panic in `send` (a bug) gets here; keep its message.
                Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
                None => continue,
            };
            busy.retain(|p| !outcome.batches.iter().any(|b| b.partition == *p));
            self.settle(&topic, outcome, &mut ready, &mut report, &mut summary).await;
        }
        Ok(summary)
    }

    fn seal_into<R: FnMut(Delivery, &mut ProduceSummary)>(
        &mut self,
        topic: &Arc<str>,
        batch: OpenBatch,
        ready: &mut VecDeque<SealedBatch>,
        report: &mut R,
        summary: &mut ProduceSummary,
    ) {
        if batch.is_empty() {
            return;
        }
        let partition = batch.partition;
        let idem = self.next_idempotence(topic, partition, batch.len());
        match batch.seal(self.config.compression, idem) {
            Ok(sealed) => ready.push_back(sealed),
            // Not expected (kafka-protocol encodes any batch we build), but if it
            // happens every record in it is reported, never dropped.
            Err((ids, reason)) => {
                for id in ids {
                    let err = DeliveryError::Encode(reason.clone());
                    report(Delivery { id, topic: topic.clone(), partition, result: Err(err) }, summary);
                }
            }
        }
    }

    /// Producer id, epoch and base sequence for the next `count` records of
    /// `topic[partition]`; `None` without idempotence.
    fn next_idempotence(&mut self, topic: &Arc<str>, partition: i32, count: usize) -> Option<Idempotence> {
        let (producer_id, producer_epoch) = self.producer_id?;
        let seq = self.sequences.entry((topic.clone(), partition)).or_insert(0);
        let base_sequence = *seq;
        // Kafka sequence numbers wrap at i32::MAX back to 0.
        *seq = seq.wrapping_add(count as i32) & i32::MAX;
        Some(Idempotence { producer_id, producer_epoch, base_sequence })
    }

    /// `b` under the current producer id with fresh sequences, if it carries an older
    /// one (see [`SealedBatch::reseal`] for when that is safe).
    fn move_to_current_producer_id(
        &mut self,
        topic: &Arc<str>,
        b: SealedBatch,
    ) -> Result<SealedBatch, (Vec<u64>, String)> {
        let current = self.producer_id.map(|(id, _)| id);
        if b.idem.map(|i| i.producer_id) == current {
            return Ok(b);
        }
        match self.next_idempotence(topic, b.partition, b.len()) {
            Some(idem) => b.reseal(idem),
            None => Ok(b),
        }
    }

    /// An idempotent batch of `topic[partition]` failed for good: its sequence numbers
    /// are a hole the broker will never see filled. Later batches go under a fresh
    /// producer id (new id = sequences from 0); those not sent yet move now.
    async fn close_gap(&mut self, topic: &Arc<str>, failed: &[(i64, i32)], ready: &mut VecDeque<SealedBatch>) {
        let Some((current, _)) = self.producer_id else { return };
        let mut renew = false;
        for &(pid, partition) in failed {
            renew |= pid == current;
            self.gaps.insert((pid, topic.clone(), partition));
        }
        if !renew {
            return;
        }
        match self.init_producer_id().await {
            Ok(id) => {
                tracing::info!(
                    old = current,
                    new = id.0,
                    "a batch failed for good; continuing under a new producer id"
                );
                self.producer_id = Some(id);
                self.sequences.clear();
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not get a new producer id; later batches may fail");
                return;
            }
        }
        // Never-sent batches of a partition with a gap: same order, new id.
        let mut kept = VecDeque::with_capacity(ready.len());
        for b in ready.drain(..) {
            let gapped = b.attempts == 0
                && b.idem.is_some_and(|i| self.gaps.contains(&(i.producer_id, topic.clone(), b.partition)));
            if !gapped {
                kept.push_back(b);
                continue;
            }
            match self.move_to_current_producer_id(topic, b) {
                Ok(b) => kept.push_back(b),
                // Not expected: the same records encoded fine before.
                Err((ids, reason)) => tracing::error!(?ids, %reason, "re-encoding a batch failed"),
            }
        }
        *ready = kept;
    }

    /// The next request: the first ready batch plus others for the same leader,
    /// one batch per partition, within `max.request.size`. With idempotence a
    /// partition that has a batch in flight (`busy`) waits: requests on one
    /// connection are written by separate tasks in no fixed order, and a broker
    /// that has no state for a producer accepts whatever sequence comes first
    /// (seq 75 before seq 0 would leave seq 0 refused for ever). One batch per
    /// partition in flight keeps each partition's sequences in order, retries included.
    fn take_request(
        &self,
        topic: &str,
        ready: &mut VecDeque<SealedBatch>,
        busy: &mut HashSet<i32>,
    ) -> Option<(i32, Vec<SealedBatch>)> {
        let ordered = self.producer_id.is_some();
        let eligible = |b: &SealedBatch, busy: &HashSet<i32>| !ordered || !busy.contains(&b.partition);
        let at = ready.iter().position(|b| eligible(b, busy))?;
        let first = ready.remove(at).expect("index in range");
        let info = self.cluster.topic(topic);
        let leader_of = |p: i32| info.as_ref().and_then(|t| t.leader_of(p)).unwrap_or(-1);
        let leader = leader_of(first.partition);
        let mut size = first.bytes.len();
        let mut batches = vec![first];
        let mut i = 0;
        while i < ready.len() {
            let b = &ready[i];
            let fits = size + b.bytes.len() <= self.config.max_request_size;
            let new_partition = batches.iter().all(|x| x.partition != b.partition);
            if fits && new_partition && eligible(b, busy) && leader_of(b.partition) == leader {
                size += b.bytes.len();
                batches.push(ready.remove(i).expect("index in range"));
            } else {
                i += 1;
            }
        }
        if ordered {
            busy.extend(batches.iter().map(|b| b.partition));
        }
        Some((leader, batches))
    }

    async fn settle<R: FnMut(Delivery, &mut ProduceSummary)>(
        &mut self,
        topic: &Arc<str>,
        outcome: Outcome,
        ready: &mut VecDeque<SealedBatch>,
        report: &mut R,
        summary: &mut ProduceSummary,
    ) {
        let Outcome { leader, batches, result } = outcome;
        let mut retry: Vec<(SealedBatch, String)> = Vec::new();
        // Idempotent batches that failed for good: (producer id, partition).
        let mut failed: Vec<(i64, i32)> = Vec::new();
        let mut fail = |b: &SealedBatch, err: DeliveryError, report: &mut R, summary: &mut ProduceSummary| {
            if let Some(i) = b.idem {
                failed.push((i.producer_id, b.partition));
            }
            deliver_all(b, topic, Err(err), report, summary);
        };
        match result {
            Ok(None) => {
                for b in batches {
                    deliver_all(&b, topic, Ok(None), report, summary);
                }
            }
            Ok(Some(resp)) => {
                let mut by_partition = HashMap::new();
                for t in resp.responses {
                    for p in t.partition_responses {
                        by_partition.insert(p.index, p);
                    }
                }
                for b in batches {
                    let Some(p) = by_partition.remove(&b.partition) else {
                        retry.push((b, "partition missing from the Produce response".into()));
                        continue;
                    };
                    match ResponseError::try_from_code(p.error_code) {
                        None => deliver_offsets(&b, topic, p.base_offset, report, summary),
                        // The broker already has this batch: a retry of something that landed.
                        Some(ResponseError::DuplicateSequenceNumber) => {
                            deliver_all(&b, topic, Ok(None), report, summary)
                        }
                        Some(ResponseError::MessageTooLarge) | Some(ResponseError::RecordListTooLarge) => {
                            fail(&b, DeliveryError::BrokerTooLarge, report, summary)
                        }
                        // Refused, so certainly not written. Either an earlier batch is still
                        // being retried (resend the same bytes after it), or an earlier one
                        // failed for good and this one must move to a new producer id.
                        Some(ResponseError::OutOfOrderSequenceNumber) => {
                            let gapped = b
                                .idem
                                .is_some_and(|i| self.gaps.contains(&(i.producer_id, topic.clone(), b.partition)));
                            let b = if gapped {
                                match self.move_to_current_producer_id(topic, b) {
                                    Ok(b) => b,
                                    Err((ids, reason)) => {
                                        tracing::error!(?ids, %reason, "re-encoding a batch failed");
                                        continue;
                                    }
                                }
                            } else {
                                b
                            };
                            retry.push((b, ResponseError::OutOfOrderSequenceNumber.to_string()))
                        }
                        Some(e) if e.is_retriable() => retry.push((b, e.to_string())),
                        Some(error) => {
                            // The broker names the bad record (KIP-467) where it can.
                            let detail = p.record_errors.iter().map(|r| {
                                format!(
                                    "record {}: {}",
                                    r.batch_index,
                                    r.batch_index_error_message.as_deref().unwrap_or("?")
                                )
                            });
                            let message =
                                p.error_message.map(|m| m.to_string()).into_iter().chain(detail).collect::<Vec<_>>();
                            let message = (!message.is_empty()).then(|| message.join("; "));
                            fail(&b, DeliveryError::Rejected { error, message }, report, summary)
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(leader, error = %e, "produce request failed; will retry");
                let reason = e.to_string();
                retry.extend(batches.into_iter().map(|b| (b, reason.clone())));
            }
        }
        if !retry.is_empty() {
            // Leaders may have moved: learn where before resending.
            if let Err(e) = self.cluster.refresh(&[topic]).await {
                tracing::warn!(error = %e, "metadata refresh failed while retrying");
            }
        }
        // Resend in sequence order: a partition's lowest sequence first, or the broker
        // answers the later ones with OUT_OF_ORDER_SEQUENCE_NUMBER once more.
        retry.sort_by_key(|(b, _)| (b.partition, b.idem.map(|i| (i.producer_id, i.base_sequence))));
        let mut requeue = Vec::with_capacity(retry.len());
        for (mut b, last) in retry {
            if b.created.elapsed() + self.config.backoff.max >= self.config.delivery_timeout {
                let err = DeliveryError::TimedOut {
                    timeout_ms: self.config.delivery_timeout.as_millis() as u64,
                    attempts: b.attempts + 1,
                    last,
                };
                fail(&b, err, report, summary);
                continue;
            }
            let seq = b.idem.map(|i| i.base_sequence);
            tracing::debug!(partition = b.partition, ?seq, records = b.len(), attempt = b.attempts, %last, "retrying batch");
            summary.retries += 1;
            b.attempts += 1;
            requeue.push(b);
        }
        for b in requeue.into_iter().rev() {
            ready.push_front(b);
        }
        if !failed.is_empty() {
            self.close_gap(topic, &failed, ready).await;
        }
    }
}

/// InitProducerId for an idempotent, non-transactional producer. kafka-protocol's
/// default transactional id is `Some("")`, which the broker's TransactionCoordinator
/// rejects with INVALID_REQUEST; the id must be null. The Java client sends the
/// timeout as Integer.MAX_VALUE here; the broker ignores it without an id.
fn idempotent_init_request() -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(i32::MAX)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Sends one Produce request to `leader` (after the backoff its batches earned).
async fn send(
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    topic: Arc<str>,
    leader: i32,
    batches: Vec<SealedBatch>,
) -> Outcome {
    let attempts = batches.iter().map(|b| b.attempts).max().unwrap_or(0);
    if attempts > 0 {
        tokio::time::sleep(config.backoff.delay_random(attempts - 1)).await;
    }
    let result = async {
        let conn = cluster.broker(leader).await.map_err(|e| match e {
            crate::cluster::Error::Wire(w) => w,
            other => wire::Error::Closed { addr: format!("broker {leader}"), reason: other.to_string() },
        })?;
        let req = ProduceRequest::default()
            .with_acks(config.acks.wire_value())
            .with_timeout_ms(config.request_timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partition_data(
                        batches
                            .iter()
                            .map(|b| {
                                PartitionProduceData::default()
                                    .with_index(b.partition)
                                    .with_records(Some(b.bytes.clone()))
                            })
                            .collect(),
                    ),
            ]);
        let version = conn.version::<ProduceRequest>()?.min(MAX_PRODUCE_VERSION);
        if config.acks == Acks::None {
            conn.send_only_at(&req, version).await?;
            return Ok(None);
        }
        let resp = conn.request_at(&req, version).await;
        if let Err(e) = &resp {
            if e.is_retriable() {
                cluster.forget_connection(conn.addr()).await;
            }
        }
        resp.map(Some)
    }
    .await;
    Outcome { leader, batches, result }
}

fn deliver_offsets<R: FnMut(Delivery, &mut ProduceSummary)>(
    b: &SealedBatch,
    topic: &Arc<str>,
    base_offset: i64,
    report: &mut R,
    summary: &mut ProduceSummary,
) {
    for (i, id) in b.ids.iter().enumerate() {
        let d = Delivery {
            id: *id,
            topic: topic.clone(),
            partition: b.partition,
            result: Ok(Some(base_offset + i as i64)),
        };
        report(d, summary);
    }
}

fn deliver_all<R: FnMut(Delivery, &mut ProduceSummary)>(
    b: &SealedBatch,
    topic: &Arc<str>,
    result: Result<Option<i64>, DeliveryError>,
    report: &mut R,
    summary: &mut ProduceSummary,
) {
    for id in &b.ids {
        report(Delivery { id: *id, topic: topic.clone(), partition: b.partition, result: result.clone() }, summary);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::protocol::Encodable;

    #[test]
    fn init_producer_id_sends_a_null_transactional_id() {
        let req = idempotent_init_request();
        assert_eq!(req.transactional_id, None);
        // v4 (flexible): compact nullable string, null = length varint 0.
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 4).unwrap();
        assert_eq!(buf[0], 0, "transactional id must encode as null, not as an empty string");
        // v1 (classic): nullable string, null = length -1.
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 1).unwrap();
        assert_eq!(&buf[..2], &(-1i16).to_be_bytes());
    }
}
