//! The producer's background task, the only part of the producer that does I/O:
//! seals batches as `linger.ms` passes (or at once for a flush or a close), sends
//! the Produce requests the core chooses when one is due (at most `max.in.flight` at a time, each on
//! its own task), feeds the responses back, hands the delivery reports out, and
//! performs what settling asks for: a metadata refresh, a new producer id.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use super::accumulator::{DeliveryError, Request, Response};
use super::config::{Acks, ProducerConfig};
use super::record::Delivery;
use super::{Error, Shared};
use crate::backoff::{Failure, StopRule, retry};
use crate::cluster::{Cluster, TopicInfo};
use crate::wire;

/// Produce v13 addresses topics by id (KIP-516); names are all we track.
const MAX_PRODUCE_VERSION: i16 = 12;

/// Runs until the producer is closing and every record is settled.
pub(super) async fn run(shared: Arc<Shared>) {
    let _stop = Stopped(Arc::clone(&shared));
    let mut inflight: JoinSet<(Request, Response)> = JoinSet::new();
    loop {
        // Taken before looking at the state: a wake-up sent meanwhile is kept.
        let woken = shared.wake.notified();
        let (deadline, done, settled) = {
            let mut st = shared.lock();
            let st = &mut *st;
            let now = Instant::now();
            st.core.seal_aged(now);
            let hurry = st.closing || st.pending.flushing();
            if hurry {
                st.core.seal_all();
            }
            if st.core.has_free_slot() && (st.core.request_due(now) || (hurry && st.core.ready_len() > 0)) {
                let infos: Vec<TopicInfo> = st.core.topics().filter_map(|t| shared.cluster.topic(t)).collect();
                let leader_of = |topic: &str, p: i32| {
                    infos.iter().find(|i| i.name == topic).and_then(|i| i.leader_of(p)).unwrap_or(-1)
                };
                let mut sent = false;
                while let Some(req) = st.core.next_request(leader_of) {
                    inflight.spawn(send(Arc::clone(&shared), req));
                    sent = true;
                }
                if sent && st.core.backlog_drained() {
                    // Few sealed batches wait now: `send`s held back by them may go on.
                    shared.room.notify_waiters();
                }
            }
            let done = st.closing && inflight.is_empty() && st.core.is_idle();
            (st.core.next_deadline(now), done, st.reports())
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
            Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                // Only a panic in `send` (a bug) is an error here; keep its message.
                let (req, resp) = joined.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                settle(&shared, req, resp).await;
            }
        }
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
            c.complete(Delivery { topic: Arc::from(""), partition: -1, result: Err(DeliveryError::Stopped) });
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

/// Sends one Produce request (after the backoff its batches earned); the batches of
/// several topics go as one `TopicProduceData` each.
async fn send(shared: Arc<Shared>, req: Request) -> (Request, Response) {
    let (cluster, config) = (&shared.cluster, &shared.config);
    let attempts = req.batches.iter().map(|b| b.attempts).max().unwrap_or(0);
    if attempts > 0 {
        tokio::time::sleep(config.backoff.delay_random(attempts - 1)).await;
    }
    let leader = req.leader;
    let result = async {
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
            .with_acks(config.acks.wire_value())
            .with_timeout_ms(config.request_timeout.as_millis().min(i32::MAX as u128) as i32)
            .with_topic_data(topic_data);
        let version = conn.version::<ProduceRequest>()?.min(MAX_PRODUCE_VERSION);
        if config.acks == Acks::None {
            conn.send_only_at(&produce, version).await?;
            return Ok(None);
        }
        let resp = conn.request_at(&produce, version).await;
        if let Err(e) = &resp {
            if e.is_retriable() {
                cluster.forget_connection(conn.addr()).await;
            }
        }
        resp.map(Some)
    }
    .await;
    let response = match result {
        Ok(None) => Response::Sent,
        Ok(Some(r)) => Response::Produced(r),
        Err::<_, wire::Error>(e) => Response::Failed(e.to_string()),
    };
    (req, response)
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
