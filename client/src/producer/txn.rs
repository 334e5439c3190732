//! The transaction coordinator calls (KIP-98, transaction protocol version 1):
//! FindCoordinator for the `transactional.id`, InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit (to the group's coordinator) and EndTxn. Each is
//! retried with the one backoff helper on what Kafka calls retriable
//! (CONCURRENT_TRANSACTIONS, COORDINATOR_LOAD_IN_PROGRESS, a moved coordinator),
//! within `max.block.ms`; fencing is fatal, anything else fails the transaction.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, EndTxnRequest, GroupId, InitProducerIdRequest, ProducerId,
    TopicName, TransactionalId, TxnOffsetCommitRequest,
};
use kafka_protocol::protocol::StrBytes;

use super::config::ProducerConfig;
use super::transaction::TransactionError;
use crate::backoff::{BackoffPolicy, Failure, StopRule, retry};
use crate::cluster::Cluster;
use crate::types::TopicPartition;
use crate::wire::{self, ApiRequest, Connection};

/// Versions of transaction protocol 1: the next ones (AddPartitionsToTxn v4+ is for
/// brokers; EndTxn v5, TxnOffsetCommit v5, AddOffsetsToTxn v4 and Produce v12) mean
/// version 2 to a Kafka 4 broker.
const MAX_ADD_PARTITIONS_VERSION: i16 = 3;
const MAX_ADD_OFFSETS_VERSION: i16 = 3;
const MAX_END_TXN_VERSION: i16 = 4;
const MAX_TXN_OFFSET_COMMIT_VERSION: i16 = 4;
/// FindCoordinator key types.
const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// How a coordinator's error code counts.
fn classify(code: i16) -> Result<(), Failure<TransactionError>> {
    use ResponseError as E;
    let Some(e) = ResponseError::try_from_code(code) else { return Ok(()) };
    let message = e.to_string();
    Err(match e {
        E::ProducerFenced
        | E::InvalidProducerEpoch
        | E::TransactionalIdAuthorizationFailed
        | E::TransactionCoordinatorFenced
        | E::InvalidProducerIdMapping
        | E::InvalidTxnState => Failure::fatal(TransactionError::Fatal(message)),
        E::ConcurrentTransactions
        | E::CoordinatorLoadInProgress
        | E::CoordinatorNotAvailable
        | E::NotCoordinator
        | E::UnknownTopicOrPartition
        | E::RequestTimedOut => Failure::retriable(TransactionError::Abortable(message)),
        _ => Failure::fatal(TransactionError::Abortable(message)),
    })
}

fn transport(e: impl std::fmt::Display) -> Failure<TransactionError> {
    Failure::retriable(TransactionError::Abortable(e.to_string()))
}

/// The coordinator of `key` (a transactional id or a group).
async fn coordinator(cluster: &Cluster, key: &str, key_type: i8) -> Result<Arc<Connection>, Failure<TransactionError>> {
    let node = match cluster.find_coordinator(key, key_type).await.map_err(transport)? {
        Ok(node) => node,
        // An error code Kafka does not define is retried like a transport failure.
        Err(code) => {
            return Err(classify(code).err().unwrap_or_else(|| transport(format!("FindCoordinator error {code}"))));
        }
    };
    cluster.broker(node).await.map_err(transport)
}

/// `req` to the coordinator of `key`, retried within `max.block.ms`; `code` takes
/// the response's error code (the first one, for batched responses).
/// The backoff of the calls that can open a transaction (AddPartitionsToTxn,
/// AddOffsetsToTxn): right after EndTxn the coordinator answers them with
/// CONCURRENT_TRANSACTIONS until the previous transaction's markers are written, a
/// few milliseconds. Java retries that after 20 ms instead of `retry.backoff.ms`
/// (`ADD_PARTITIONS_RETRY_BACKOFF_MS`); at 100 ms every transaction of `cafe bench
/// produce --transaction-ms 100` lost a tenth of a second before its first record.
fn first_call_backoff(config: &ProducerConfig) -> BackoffPolicy {
    BackoffPolicy { initial: config.backoff.initial.min(Duration::from_millis(20)), ..config.backoff }
}

/// One coordinator call, `(what, backoff)` being its name for the logs and its
/// backoff between attempts (retried up to `max.block.ms`).
async fn call<R, T>(
    (what, backoff): (&str, BackoffPolicy),
    cluster: &Cluster,
    config: &ProducerConfig,
    (key, key_type): (&str, i8),
    max_version: i16,
    req: &R,
    answer: impl Fn(R::Response) -> Result<T, Failure<TransactionError>>,
) -> Result<T, TransactionError>
where
    R: ApiRequest,
{
    let stop = StopRule::deadline(config.max_block);
    retry(what, backoff, stop, |_| async {
        let conn = coordinator(cluster, key, key_type).await?;
        let version = conn.version::<R>().map_err(transport)?.min(max_version);
        match conn.request_at(req, version).await {
            Ok(resp) => answer(resp),
            Err(e) => {
                if e.is_retriable() {
                    cluster.forget_connection(conn.addr()).await;
                }
                Err(transport(e))
            }
        }
    })
    .await
}

/// InitProducerId for `transactional.id`: the producer id and epoch (bumping the
/// epoch fences any older producer with the same id, and makes the coordinator
/// finish what that one left open).
pub(super) async fn init_producer_id(
    cluster: &Cluster,
    config: &ProducerConfig,
    txn_id: &str,
) -> Result<(i64, i16), TransactionError> {
    let req = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(s(txn_id))))
        .with_transaction_timeout_ms(config.transaction_timeout.as_millis().min(i32::MAX as u128) as i32)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let key = (txn_id, TRANSACTION_KEY);
    call(("InitProducerId", config.backoff), cluster, config, key, i16::MAX, &req, |r| {
        classify(r.error_code)?;
        Ok((r.producer_id.0, r.producer_epoch))
    })
    .await
}

/// Adds `partitions` to the open transaction.
pub(super) async fn add_partitions(
    cluster: &Cluster,
    config: &ProducerConfig,
    txn_id: &str,
    (pid, epoch): (i64, i16),
    partitions: &[TopicPartition],
) -> Result<(), TransactionError> {
    let mut topics: Vec<AddPartitionsToTxnTopic> = Vec::new();
    for tp in partitions {
        match topics.iter_mut().find(|t| *t.name.0 == *tp.topic) {
            Some(t) => t.partitions.push(tp.partition),
            None => topics.push(
                AddPartitionsToTxnTopic::default()
                    .with_name(TopicName(s(&tp.topic)))
                    .with_partitions(vec![tp.partition]),
            ),
        }
    }
    let req = AddPartitionsToTxnRequest::default()
        .with_v3_and_below_transactional_id(TransactionalId(s(txn_id)))
        .with_v3_and_below_producer_id(ProducerId(pid))
        .with_v3_and_below_producer_epoch(epoch)
        .with_v3_and_below_topics(topics);
    let key = (txn_id, TRANSACTION_KEY);
    call(
        ("AddPartitionsToTxn", first_call_backoff(config)),
        cluster,
        config,
        key,
        MAX_ADD_PARTITIONS_VERSION,
        &req,
        |r| {
            for t in &r.results_by_topic_v3_and_below {
                for p in &t.results_by_partition {
                    classify(p.partition_error_code)?;
                }
            }
            classify(r.error_code)
        },
    )
    .await
}

/// Adds `group`'s offsets to the open transaction (AddOffsetsToTxn), so its
/// TxnOffsetCommit commits or aborts with it.
pub(super) async fn add_offsets(
    cluster: &Cluster,
    config: &ProducerConfig,
    txn_id: &str,
    (pid, epoch): (i64, i16),
    group: &str,
) -> Result<(), TransactionError> {
    let req = AddOffsetsToTxnRequest::default()
        .with_transactional_id(TransactionalId(s(txn_id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_group_id(GroupId(s(group)));
    let key = (txn_id, TRANSACTION_KEY);
    call(("AddOffsetsToTxn", first_call_backoff(config)), cluster, config, key, MAX_ADD_OFFSETS_VERSION, &req, |r| {
        classify(r.error_code)
    })
    .await
}

/// The consumer's group, as a transaction commits offsets for it (KIP-447: with
/// the member id and generation the coordinator fences a zombie member's commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadata {
    /// `group.id`.
    pub group_id: String,
    /// The member's generation (-1: not checked).
    pub generation_id: i32,
    /// The member id ("" : not checked).
    pub member_id: String,
    /// `group.instance.id`, for a static member.
    pub group_instance_id: Option<String>,
}

impl GroupMetadata {
    /// A group whose member and generation are not checked.
    pub fn new(group_id: impl Into<String>) -> Self {
        Self { group_id: group_id.into(), generation_id: -1, member_id: String::new(), group_instance_id: None }
    }
}

/// TxnOffsetCommit of `offsets` (the next offset to read, per partition) to the
/// group's coordinator, inside the open transaction.
pub(super) async fn commit_offsets(
    cluster: &Cluster,
    config: &ProducerConfig,
    txn_id: &str,
    (pid, epoch): (i64, i16),
    group: &GroupMetadata,
    offsets: &[(TopicPartition, i64)],
) -> Result<(), TransactionError> {
    let mut topics: Vec<TxnOffsetCommitRequestTopic> = Vec::new();
    for (tp, offset) in offsets {
        let p = TxnOffsetCommitRequestPartition::default()
            .with_partition_index(tp.partition)
            .with_committed_offset(*offset);
        match topics.iter_mut().find(|t| *t.name.0 == *tp.topic) {
            Some(t) => t.partitions.push(p),
            None => topics.push(
                TxnOffsetCommitRequestTopic::default().with_name(TopicName(s(&tp.topic))).with_partitions(vec![p]),
            ),
        }
    }
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(txn_id)))
        .with_group_id(GroupId(s(&group.group_id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(group.generation_id)
        .with_member_id(s(&group.member_id))
        .with_group_instance_id(group.group_instance_id.as_deref().map(s))
        .with_topics(topics);
    let key = (group.group_id.as_str(), GROUP_KEY);
    call(("TxnOffsetCommit", config.backoff), cluster, config, key, MAX_TXN_OFFSET_COMMIT_VERSION, &req, |r| {
        for t in &r.topics {
            for p in &t.partitions {
                classify(p.error_code)?;
            }
        }
        Ok(())
    })
    .await
}

/// EndTxn: commits (or aborts) the open transaction.
pub(super) async fn end(
    cluster: &Cluster,
    config: &ProducerConfig,
    txn_id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
) -> Result<(), TransactionError> {
    let req = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(s(txn_id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_committed(commit);
    let key = (txn_id, TRANSACTION_KEY);
    call(("EndTxn", config.backoff), cluster, config, key, MAX_END_TXN_VERSION, &req, |r| classify(r.error_code)).await
}

impl From<wire::Error> for TransactionError {
    fn from(e: wire::Error) -> Self {
        TransactionError::Abortable(e.to_string())
    }
}
