//! The producer's background task, the only part of the producer that does I/O:
//! seals batches as `linger.ms` passes (or at once for a flush or a close), sends
//! the Produce requests the core chooses when one is due (at most `max.in.flight` at
//! a time), feeds the responses back, hands the delivery reports out, and performs
//! what settling asks for: a metadata refresh, a new producer id.
//!
//! Each leader's requests go through its own lane, a task that writes them in the
//! order the core chose them and then awaits their responses together: with
//! idempotence a partition may have several batches in flight, and their sequences
//! must reach the broker in order (TCP keeps the order of what is written on one
//! connection, and the broker handles a connection's requests one at a time).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::mpsc;

use super::accumulator::{DeliveryError, Request, Response};
use super::config::{Acks, ProducerConfig};
use super::record::Delivery;
use super::{Error, Shared};
use crate::backoff::{Failure, StopRule, retry};
use crate::cluster::{Cluster, TopicInfo};
use crate::wire;

/// Produce v13 addresses topics by id (KIP-516); names are all we track.
const MAX_PRODUCE_VERSION: i16 = 12;
/// The last Produce version of transaction protocol 1.
const MAX_PRODUCE_VERSION_TXN_V1: i16 = 11;

/// How far ahead of the clock the driver decides what `linger.ms` has made due,
/// and how early it wakes for it. A tokio timer fires up to about 2 ms late: the
/// deadline is rounded up to the wheel's next millisecond tick, and the poll's
/// timeout up to a whole millisecond again. Without the slack a 5 ms linger held
/// batches for 6–7 ms (p50 at 1k records/s: 4.6–4.8 ms, against 3.5–3.8 for
/// librdkafka and franz-go); with it a batch goes within about a millisecond of
/// `linger.ms`, on either side (Java, reading its clock in whole milliseconds,
/// sends up to one early).
const TIMER_SLACK: Duration = Duration::from_millis(1);

/// Runs until the producer is closing and every record is settled.
pub(super) async fn run(shared: Arc<Shared>) {
    let _stop = Stopped(Arc::clone(&shared));
    let (results_tx, mut results) = mpsc::unbounded_channel();
    let mut lanes = Lanes { lanes: HashMap::new(), results: results_tx, outstanding: 0 };
    loop {
        // Taken before looking at the state: a wake-up sent meanwhile is kept.
        let woken = shared.wake.notified();
        let (deadline, done, settled) = {
            let mut st = shared.lock();
            let st = &mut *st;
            // Every linger decision as of a moment ahead: see TIMER_SLACK.
            let soon = Instant::now() + TIMER_SLACK;
            st.core.seal_aged(soon);
            let hurry = st.closing || st.pending.flushing();
            if hurry {
                st.core.seal_all();
            }
            if st.core.has_free_slot() && (st.core.request_due(soon) || (hurry && st.core.ready_len() > 0)) {
                let infos: Vec<TopicInfo> = st.core.topics().filter_map(|t| shared.cluster.topic(t)).collect();
                let leader_of = |topic: &str, p: i32| {
                    infos.iter().find(|i| i.name == topic).and_then(|i| i.leader_of(p)).unwrap_or(-1)
                };
                let mut sent = false;
                while let Some(req) = st.core.next_request(leader_of) {
                    lanes.dispatch(&shared, req);
                    sent = true;
                }
                if sent && st.core.backlog_drained() {
                    // Few sealed batches wait now: `send`s held back by them may go on.
                    shared.room.notify_waiters();
                }
            }
            let done = st.closing && lanes.outstanding == 0 && st.core.is_idle();
            // Later than `soon`, so the wake-up is never in the past.
            (st.core.next_deadline(soon).map(|at| at - TIMER_SLACK), done, st.reports())
        };
        // Reports of batches that failed to seal (not expected), if any.
        settled.hand_out(&shared);
        if done {
            return;
        }
        let linger = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = woken => {}
            _ = linger => {}
            Some((req, resp)) = results.recv() => {
                lanes.returned(&req, &resp);
                settle(&shared, req, resp).await;
            }
        }
    }
}

/// The lanes of the leaders requests went to, and how many requests are out.
struct Lanes {
    lanes: HashMap<i32, Lane>,
    results: mpsc::UnboundedSender<(Request, Response)>,
    outstanding: usize,
}

/// One leader's lane: its queue, and its generation, which moves on each time a
/// request to that leader fails on the way (see [`lane`]).
struct Lane {
    queue: mpsc::UnboundedSender<(Request, u64)>,
    generation: u64,
}

impl Lanes {
    /// Queues `req` on its leader's lane; a retry first waits out its backoff (the
    /// core sends retries alone, so nothing of their partitions overtakes them).
    fn dispatch(&mut self, shared: &Arc<Shared>, req: Request) {
        self.outstanding += 1;
        let results = &self.results;
        let lane = self.lanes.entry(req.leader).or_insert_with(|| {
            let (queue, requests) = mpsc::unbounded_channel();
            tokio::spawn(lane(Arc::clone(shared), requests, results.clone()));
            Lane { queue, generation: 0 }
        });
        let attempts = req.batches.iter().map(|b| b.attempts).max().unwrap_or(0);
        let (queue, generation, results) = (lane.queue.clone(), lane.generation, results.clone());
        let enqueue = move |req| {
            if let Err(mpsc::error::SendError((req, _))) = queue.send((req, generation)) {
                // Not expected (a lane ends only with the producer): settle it as not sent.
                let _ = results.send((req, Response::Failed("the producer's lane stopped".into())));
            }
        };
        if attempts == 0 {
            enqueue(req);
        } else {
            let delay = shared.config.backoff.delay_random(attempts - 1);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                enqueue(req);
            });
        }
    }

    /// A request came back: a failure on the way starts a new generation of its lane.
    fn returned(&mut self, req: &Request, resp: &Response) {
        self.outstanding -= 1;
        if let (Response::Failed(_), Some(lane)) = (resp, self.lanes.get_mut(&req.leader)) {
            lane.generation += 1;
        }
    }
}

/// Writes one leader's requests in the order they come, and hands each back with
/// its response. Once a request fails on the way (not written, no answer), every
/// request queued before the driver learned of it is handed back unsent: written on
/// a new connection it could reach the broker before the retry of the failed one
/// (a higher sequence first). Those carry the same generation as the failed one or
/// an older one; requests queued afterwards carry a newer one and go.
async fn lane(
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<(Request, u64)>,
    results: mpsc::UnboundedSender<(Request, Response)>,
) {
    let mut waiting = FuturesUnordered::new();
    let mut failed_up_to: Option<u64> = None;
    let hand_back = |req, resp| {
        let _ = results.send((req, resp));
    };
    loop {
        tokio::select! {
            next = requests.recv() => {
                let Some((req, generation)) = next else { break };
                if failed_up_to.is_some_and(|g| generation <= g) {
                    let reason = "not sent: an earlier request to this broker failed, and this one must follow its retry";
                    hand_back(req, Response::Failed(reason.into()));
                    continue;
                }
                match write(&shared, &req).await {
                    Ok(Written::NoResponse) => hand_back(req, Response::Sent),
                    Ok(Written::Awaiting(conn, sent)) => waiting.push(async move {
                        let resp = sent.response(&conn).await;
                        (req, generation, conn, resp)
                    }),
                    Err(e) => {
                        failed_up_to = failed_up_to.max(Some(generation));
                        hand_back(req, Response::Failed(e.to_string()));
                    }
                }
            }
            Some((req, generation, conn, resp)) = waiting.next(), if !waiting.is_empty() => match resp {
                Ok(resp) => hand_back(req, Response::Produced(resp)),
                Err(e) => {
                    failed_up_to = failed_up_to.max(Some(generation));
                    if e.is_retriable() {
                        shared.cluster.forget_connection(conn.addr()).await;
                    }
                    hand_back(req, Response::Failed(e.to_string()));
                }
            },
        }
    }
    // The producer is done with this leader: answer what is still on the wire.
    while let Some((req, _, _, resp)) = waiting.next().await {
        hand_back(req, resp.map_or_else(|e| Response::Failed(e.to_string()), Response::Produced));
    }
}

/// Marks the producer stopped when the task ends, however it ends (also when the
/// runtime drops it mid-way): what is still unsettled is failed, never left hanging.
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        let (records, flushes, closers) = {
            let Ok(mut st) = self.0.state.lock() else { return };
            st.stopped = true;
            st.closing = true;
            let (records, flushes) = st.pending.drain();
            (records, flushes, std::mem::take(&mut st.closers))
        };
        for c in records {
            // The topic and partition are not kept per record; the error is what matters.
            c.complete(Delivery { topic: Arc::from(""), partition: -1, result: Err(DeliveryError::Stopped) }, &self.0);
        }
        for tx in flushes.into_iter().chain(closers) {
            let _ = tx.send(());
        }
        self.0.room.notify_waiters();
    }
}

/// Feeds one response to the core, hands out what it settled, and performs the I/O
/// it asks for.
async fn settle(shared: &Shared, req: Request, resp: Response) {
    let (needs, settled) = {
        let mut st = shared.lock();
        let needs = st.core.on_response(req, resp, Instant::now());
        (needs, st.reports())
    };
    settled.hand_out(shared);
    if !needs.refresh.is_empty() {
        // Leaders may have moved: learn where before resending.
        let topics: Vec<&str> = needs.refresh.iter().map(|t| &**t).collect();
        if let Err(e) = shared.cluster.refresh(&topics).await {
            tracing::warn!(error = %e, "metadata refresh failed while retrying");
        }
    }
    if needs.new_producer_id {
        let id = init_producer_id(&shared.cluster, &shared.config).await.map_err(|e| e.to_string());
        shared.lock().core.producer_id_renewed(id);
    }
}

/// Retries of InitProducerId (about 8 s in all with the default policy) before its
/// last error is reported.
const INIT_PRODUCER_ID_RETRIES: u32 = 10;

/// A producer id and epoch from any broker (idempotent, non-transactional).
pub(super) async fn init_producer_id(cluster: &Cluster, config: &ProducerConfig) -> Result<(i64, i16), Error> {
    let req = &idempotent_init_request();
    // Any broker hands out producer ids; a dead one or a busy coordinator is
    // retried with the one backoff policy, then reported.
    let stop = StopRule::retries(INIT_PRODUCER_ID_RETRIES);
    retry("InitProducerId", config.backoff, stop, |attempt| async move {
        let conn = match cluster.any_connection().await {
            Ok(conn) => conn,
            // No broker reachable on the first attempt: the cluster is down, say so
            // as it is; once the cluster answered, a lost broker is worth a retry.
            Err(e) if e.is_retriable() && attempt > 0 => {
                return Err(Failure::retriable(Error::InitProducerId(e.to_string())));
            }
            Err(e) => return Err(Failure::fatal(e.into())),
        };
        match conn.request(req).await {
            Ok(resp) => match ResponseError::try_from_code(resp.error_code) {
                None => Ok((resp.producer_id.0, resp.producer_epoch)),
                Some(e) if e.is_retriable() => {
                    Err(Failure::throttled(Error::InitProducerId(e.to_string()), resp.throttle_time_ms))
                }
                Some(e) => Err(Failure::fatal(Error::InitProducerId(e.to_string()))),
            },
            Err(e) if e.is_retriable() => {
                cluster.forget_connection(conn.addr()).await;
                Err(Failure::retriable(Error::InitProducerId(e.to_string())))
            }
            Err(e) => Err(Failure::fatal(Error::InitProducerId(e.to_string()))),
        }
    })
    .await
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

/// A Produce request on the wire: with acks=0 nothing comes back.
enum Written {
    NoResponse,
    Awaiting(Arc<wire::Connection>, wire::Sent<ProduceRequest>),
}

/// Writes one Produce request to its leader; the batches of several topics go as
/// one `TopicProduceData` each.
async fn write(shared: &Shared, req: &Request) -> Result<Written, wire::Error> {
    let (cluster, config) = (&shared.cluster, &shared.config);
    let leader = req.leader;
    let conn = cluster.broker(leader).await.map_err(|e| match e {
        crate::cluster::Error::Wire(w) => w,
        other => wire::Error::Closed { addr: format!("broker {leader}"), reason: other.to_string() },
    })?;
    let mut topic_data: Vec<TopicProduceData> = Vec::with_capacity(1);
    for b in &req.batches {
        let data = PartitionProduceData::default().with_index(b.partition).with_records(Some(b.bytes.clone()));
        match topic_data.iter_mut().find(|t| *t.name.0 == *b.topic) {
            Some(t) => t.partition_data.push(data),
            None => topic_data.push(
                TopicProduceData::default()
                    .with_name(TopicName(StrBytes::from_string(b.topic.to_string())))
                    .with_partition_data(vec![data]),
            ),
        }
    }
    let produce = ProduceRequest::default()
        // A transactional batch is only accepted with its transactional.id here.
        .with_transactional_id(
            config.transactional_id.as_deref().map(|id| TransactionalId(StrBytes::from_string(id.to_owned()))),
        )
        .with_acks(config.acks.wire_value())
        .with_timeout_ms(config.request_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_topic_data(topic_data);
    // Produce v12 tells a Kafka 4 broker the producer speaks transaction protocol 2,
    // which a transactional producer here does not (see `transaction`).
    let max = if config.transactional_id.is_some() { MAX_PRODUCE_VERSION_TXN_V1 } else { MAX_PRODUCE_VERSION };
    let version = conn.version::<ProduceRequest>()?.min(max);
    if config.acks == Acks::None {
        conn.send_only_at(&produce, version).await?;
        return Ok(Written::NoResponse);
    }
    match conn.send_request(&produce, version).await {
        Ok(sent) => Ok(Written::Awaiting(conn, sent)),
        Err(e) => {
            if e.is_retriable() {
                cluster.forget_connection(conn.addr()).await;
            }
            Err(e)
        }
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
