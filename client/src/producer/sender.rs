//! The produce driver, the only part of the producer that does I/O: pulls records
//! lazily (memory stays bounded however many are sent) into the pure
//! [`Accumulator`], sends the Produce requests it chooses (at most `max.in.flight`
//! at a time, each on its own task), feeds the responses back, and performs what
//! settling asks for: a metadata refresh, a new producer id.

use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{InitProducerIdRequest, ProduceRequest, ProducerId, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::task::JoinSet;

use super::Error;
use super::accumulator::{Accumulator, Delivery, ProduceSummary, Request, Response};
use super::batch::OutRecord;
use super::config::{Acks, ProducerConfig};
use crate::cluster::Cluster;
use crate::partitioner::NullKeyPicker;
use crate::wire;

/// Produce v13 addresses topics by id (KIP-516); names are all we track.
const MAX_PRODUCE_VERSION: i16 = 12;
/// Sealed batches waiting to be sent, at most; bounds memory on long streams.
const READY_LIMIT: usize = 64;

/// A producer bound to a cluster. One `send_stream` at a time per producer.
pub struct Producer {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    /// The pure core; it outlives a `send_stream` run, so sequence numbers (and the
    /// producer id) carry on across runs as the broker expects.
    core: Accumulator,
}

impl Producer {
    /// A producer on `cluster`; with idempotence it gets its producer id first.
    pub async fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Self, Error> {
        config.validate()?;
        let producer_id = match config.enable_idempotence {
            true => Some(init_producer_id(&cluster, &config).await?),
            false => None,
        };
        let core = Accumulator::new(config.clone(), producer_id);
        Ok(Self { cluster, config, core })
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
        let Self { cluster, config, core } = self;
        let topic: Arc<str> = Arc::from(topic);
        let info = cluster.topic_or_fetch(&topic).await?;
        let partitions = info.partition_count();
        let mut picker = NullKeyPicker::new(None);
        let before = core.summary();
        let mut inflight: JoinSet<(Request, Response)> = JoinSet::new();
        let mut records = records.into_iter();
        let mut exhausted = false;
        let linger = config.linger;
        let partitioner = config.partitioner;

        loop {
            // Fill: batch records until enough sealed batches are waiting.
            let mut pulled = 0u32;
            let mut now = Instant::now();
            while !exhausted && core.ready_len() < READY_LIMIT {
                // Leave to dispatch once a slot is free and a request's worth (a batch
                // per partition) is sealed, or the oldest sealed batch waited `linger.ms`;
                // otherwise a record would wait for READY_LIMIT batches to fill.
                if core.has_free_slot()
                    && core.ready_len() > 0
                    && (core.ready_len() >= partitions as usize
                        || core.oldest_ready().is_some_and(|c| c.elapsed() >= linger))
                {
                    break;
                }
                // Seal open batches older than `linger.ms` (checked every 16 records:
                // a clock read per record costs more than it saves).
                pulled = pulled.wrapping_add(1);
                if pulled % 16 == 0 {
                    now = Instant::now();
                    core.seal_aged(now);
                }
                let Some(r) = records.next() else {
                    exhausted = true;
                    break;
                };
                core.append(&topic, r, now, |r| partitioner.partition(r.key.as_deref(), partitions, &mut picker));
                report(core, &mut on_delivery);
            }
            if exhausted {
                core.seal_all();
                report(core, &mut on_delivery);
            }
            // Dispatch while there is room in flight.
            let info = cluster.topic(&topic);
            let leader_of = |_: &str, p: i32| info.as_ref().and_then(|t| t.leader_of(p)).unwrap_or(-1);
            while let Some(req) = core.next_request(leader_of) {
                inflight.spawn(send(Arc::clone(cluster), config.clone(), req));
            }
            if inflight.is_empty() {
                if exhausted && core.is_idle() {
                    break;
                }
                continue;
            }
            // A slot is still free and every sealed batch went out: settle what has
            // already finished without waiting, and go on batching, so the pipeline
            // stays full at high rates. (With batches waiting for a busy partition
            // this would spin, so then we wait below.)
            if core.has_free_slot() && !exhausted && core.ready_len() == 0 {
                while let Some(done) = inflight.try_join_next() {
                    let (req, resp) = done.unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
                    settle(cluster, config, core, req, resp).await;
                    report(core, &mut on_delivery);
                }
                continue;
            }
            // Settle one response.
            let (req, resp) = match inflight.join_next().await {
                Some(Ok(o)) => o,
                // Only a panic in `send` (a bug) gets here; keep its message.
                Some(Err(e)) => std::panic::resume_unwind(e.into_panic()),
                None => continue,
            };
            settle(cluster, config, core, req, resp).await;
            report(core, &mut on_delivery);
        }
        let after = core.summary();
        Ok(ProduceSummary {
            delivered: after.delivered - before.delivered,
            failed: after.failed - before.failed,
            retries: after.retries - before.retries,
        })
    }
}

/// Hands the core's delivery reports to the caller.
fn report<F: FnMut(Delivery)>(core: &mut Accumulator, on_delivery: &mut F) {
    for d in core.deliveries() {
        on_delivery(d);
    }
}

/// Feeds one response to the core and performs the I/O it asks for.
async fn settle(cluster: &Cluster, config: &ProducerConfig, core: &mut Accumulator, req: Request, resp: Response) {
    let settled = core.on_response(req, resp, Instant::now());
    if !settled.refresh.is_empty() {
        // Leaders may have moved: learn where before resending.
        let topics: Vec<&str> = settled.refresh.iter().map(|t| &**t).collect();
        if let Err(e) = cluster.refresh(&topics).await {
            tracing::warn!(error = %e, "metadata refresh failed while retrying");
        }
    }
    if settled.new_producer_id {
        let id = init_producer_id(cluster, config).await.map_err(|e| e.to_string());
        core.producer_id_renewed(id);
    }
}

/// A producer id and epoch from any broker (idempotent, non-transactional).
async fn init_producer_id(cluster: &Cluster, config: &ProducerConfig) -> Result<(i64, i16), Error> {
    let req = idempotent_init_request();
    let mut backoff = crate::backoff::Backoff::new(config.backoff);
    // Any broker hands out producer ids; a dead one or a busy coordinator is
    // retried with the one backoff policy (about 8 s in all), then reported.
    loop {
        let last = match cluster.any_connection().await {
            Ok(conn) => match conn.request(&req).await {
                Ok(resp) => match ResponseError::try_from_code(resp.error_code) {
                    None => return Ok((resp.producer_id.0, resp.producer_epoch)),
                    Some(e) if e.is_retriable() => e.to_string(),
                    Some(e) => return Err(Error::InitProducerId(e.to_string())),
                },
                Err(e) if e.is_retriable() => {
                    cluster.forget_connection(conn.addr()).await;
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
async fn send(cluster: Arc<Cluster>, config: ProducerConfig, req: Request) -> (Request, Response) {
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
