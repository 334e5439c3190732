//! Topic administration: create, delete, recreate and describe. CreateTopics
//! and DeleteTopics go over the cluster's own connections (so with its TLS
//! and SASL; a KRaft broker forwards them to the controller, KIP-590); our
//! metadata view decides when a change is visible (every partition has a
//! leader, or the topic is gone).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::backoff::{BackoffPolicy, Failure, StopRule, retry};
use crate::cluster::{self, Cluster, TopicInfo};

/// Why a topic admin operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Metadata or a connection failed; also `UnknownTopic` when deleting or
    /// describing a topic that does not exist.
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    /// CreateTopics answered TOPIC_ALREADY_EXISTS.
    #[error("topic `{0}` already exists")]
    AlreadyExists(String),
    /// The partition count or replication factor is below 1, or the broker
    /// refused them or the name (INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR,
    /// INVALID_TOPIC_EXCEPTION).
    #[error("invalid topic settings for `{topic}`: {reason}")]
    Invalid {
        /// The topic named in the request.
        topic: String,
        /// The broker's error message, or which setting is out of range.
        reason: String,
    },
    /// The broker's ACLs refuse the request (TOPIC_AUTHORIZATION_FAILED,
    /// CLUSTER_AUTHORIZATION_FAILED).
    #[error("not authorized to {operation} topic `{topic}` ({error:?})")]
    NotAuthorized {
        /// The topic named in the request.
        topic: String,
        /// `create` or `delete`.
        operation: &'static str,
        /// The broker's error.
        error: ResponseError,
    },
    /// The broker answered another error, or the request itself failed.
    #[error("topic admin request failed: {0}")]
    Request(String),
    /// The change was accepted but the metadata did not show it within the
    /// admin time-out.
    #[error("topic `{topic}` was not {what} within {secs} s")]
    NotReady {
        /// The topic waited for.
        topic: String,
        /// What was awaited: `ready` (every partition has a leader) or `deleted`.
        what: &'static str,
        /// The time-out, in whole seconds.
        secs: u64,
    },
}

/// Topic admin over one cluster.
pub struct Admin {
    cluster: Arc<Cluster>,
    timeout: Duration,
}

impl Admin {
    /// Topic admin on `cluster`, over its connections (with their TLS and
    /// SASL). `timeout` bounds each CreateTopics/DeleteTopics request and each
    /// wait for the metadata to show its effect.
    pub fn new(cluster: Arc<Cluster>, timeout: Duration) -> Self {
        Self { cluster, timeout }
    }

    /// Creates `topic` and waits until every partition has a leader, then returns
    /// its metadata. Fails with [`Error::AlreadyExists`], [`Error::Invalid`], or
    /// [`Error::NotReady`] when the leaders do not appear within the time-out.
    pub async fn create(&self, topic: &str, partitions: i32, replication_factor: i16) -> Result<TopicInfo, Error> {
        if partitions < 1 || replication_factor < 1 {
            return Err(Error::Invalid {
                topic: topic.into(),
                reason: "partitions and replication factor must be at least 1".into(),
            });
        }
        let req = CreateTopicsRequest::default().with_timeout_ms(self.timeout_ms()).with_topics(vec![
            CreatableTopic::default()
                .with_name(topic_name(topic))
                .with_num_partitions(partitions)
                .with_replication_factor(replication_factor),
        ]);
        let resp = self.send(&req).await?;
        let (error, message) = outcome(resp.topics.first().map(|t| (t.error_code, &t.error_message)));
        match error {
            None => {}
            Some(ResponseError::TopicAlreadyExists) => return Err(Error::AlreadyExists(topic.into())),
            Some(
                e @ (ResponseError::InvalidReplicationFactor
                | ResponseError::InvalidPartitions
                | ResponseError::InvalidTopicException),
            ) => {
                let reason = message.unwrap_or_else(|| format!("{e:?}"));
                return Err(Error::Invalid { topic: topic.into(), reason });
            }
            Some(e) => return Err(refused(topic, "create", e, message)),
        }
        self.wait_until(topic, "ready", |m| match m {
            Ok(t) => t.partitions.len() == partitions as usize && t.partitions.iter().all(|p| p.leader >= 0),
            Err(_) => false,
        })
        .await?;
        Ok(self.cluster.topic_or_fetch(topic).await?)
    }

    /// Deletes `topic` and waits until the metadata no longer lists it. A missing
    /// topic fails with [`cluster::Error::UnknownTopic`] inside [`Error::Cluster`].
    pub async fn delete(&self, topic: &str) -> Result<(), Error> {
        // v6 names topics in `topics`; older versions in `topic_names`.
        let req = DeleteTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![DeleteTopicState::default().with_name(Some(topic_name(topic)))])
            .with_topic_names(vec![topic_name(topic)]);
        let resp = self.send(&req).await?;
        let (error, message) = outcome(resp.responses.first().map(|t| (t.error_code, &t.error_message)));
        match error {
            None => {}
            Some(ResponseError::UnknownTopicOrPartition) => {
                return Err(Error::Cluster(cluster::Error::UnknownTopic(topic.into())));
            }
            Some(e) => return Err(refused(topic, "delete", e, message)),
        }
        self.wait_until(topic, "deleted", |m| matches!(m, Err(cluster::Error::UnknownTopic(_)))).await
    }

    /// Deletes `topic` if present, then creates it afresh with `partitions` and
    /// `replication_factor`. Retries the create while the broker still reports
    /// the old topic, until the time-out.
    pub async fn recreate(&self, topic: &str, partitions: i32, replication_factor: i16) -> Result<TopicInfo, Error> {
        // Ask first, so a missing topic is not an error to report.
        match self.describe(topic).await {
            Ok(_) => match self.delete(topic).await {
                Ok(()) | Err(Error::Cluster(cluster::Error::UnknownTopic(_))) => {}
                Err(e) => return Err(e),
            },
            Err(Error::Cluster(cluster::Error::UnknownTopic(_))) => {}
            Err(e) => return Err(e),
        }
        // Right after a deletion the controller may still be removing the old log;
        // CreateTopics then says TOPIC_ALREADY_EXISTS for a moment.
        let stop = StopRule::deadline(self.timeout);
        retry("creating a deleted topic afresh", BackoffPolicy::default(), stop, |_| async move {
            match self.create(topic, partitions, replication_factor).await {
                Err(e @ Error::AlreadyExists(_)) => Err(Failure::retriable(e)),
                other => other.map_err(Failure::fatal),
            }
        })
        .await
    }

    /// The admin time-out as the requests' `timeout_ms`.
    fn timeout_ms(&self) -> i32 {
        self.timeout.as_millis().min(i32::MAX as u128) as i32
    }

    /// Sends an admin request to any broker, retrying on another connection
    /// while the failure is retriable (a broker restarting, NOT_CONTROLLER is
    /// in the response and handled by the caller), until the admin time-out.
    async fn send<R: crate::wire::ApiRequest>(&self, req: &R) -> Result<R::Response, Error> {
        let stop = StopRule::deadline(self.timeout);
        retry("topic admin request", BackoffPolicy::default(), stop, |_| async move {
            let conn = self.cluster.any_connection().await.map_err(admin_failure)?;
            match conn.request(req).await {
                Ok(resp) => Ok(resp),
                Err(e) => {
                    self.cluster.forget_connection(conn.addr()).await;
                    Err(admin_failure(cluster::Error::from(e)))
                }
            }
        })
        .await
    }

    /// The end offset of each partition of `topic`, as a read_committed reader sees
    /// it (the last stable offset: records of open transactions come after it), from
    /// each partition's leader (ListOffsets, latest).
    pub async fn end_offsets(&self, topic: &str) -> Result<BTreeMap<i32, i64>, Error> {
        let info = self.describe(topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for p in 0..info.partition_count() {
            let leader = info.leader_of(p).ok_or_else(|| Error::Request(format!("{topic}[{p}] has no leader")))?;
            let latest = ListOffsetsPartition::default().with_partition_index(p).with_timestamp(-1);
            by_leader.entry(leader).or_default().push(latest);
        }
        let mut ends = BTreeMap::new();
        for (leader, partitions) in by_leader {
            let conn = self.cluster.broker(leader).await?;
            let req = ListOffsetsRequest::default()
                .with_replica_id((-1).into())
                .with_isolation_level(1) // read_committed
                .with_topics(vec![
                    ListOffsetsTopic::default()
                        .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                        .with_partitions(partitions),
                ]);
            let resp = conn.request(&req).await.map_err(|e| Error::Request(e.to_string()))?;
            for p in resp.topics.iter().flat_map(|t| &t.partitions) {
                if let Some(e) = ResponseError::try_from_code(p.error_code) {
                    return Err(Error::Request(format!("ListOffsets {topic}[{}]: {e}", p.partition_index)));
                }
                ends.insert(p.partition_index, p.offset);
            }
        }
        Ok(ends)
    }

    /// Fresh metadata for `topic` (a Metadata request, not the cache); a missing
    /// topic fails with [`cluster::Error::UnknownTopic`] inside [`Error::Cluster`].
    pub async fn describe(&self, topic: &str) -> Result<TopicInfo, Error> {
        let mut infos = self.cluster.refresh(&[topic]).await?;
        infos.pop().ok_or_else(|| Error::Cluster(cluster::Error::UnknownTopic(topic.into())))
    }

    /// Polls the metadata of `topic` until `done` holds, with a shorter backoff than
    /// the default (a new topic's leaders appear within a few hundred ms), until the
    /// time-out: then [`Error::NotReady`]. Errors other than a retriable one or an
    /// unknown topic end the wait at once.
    async fn wait_until<F>(&self, topic: &str, what: &'static str, done: F) -> Result<(), Error>
    where
        F: Fn(&Result<TopicInfo, cluster::Error>) -> bool,
    {
        let policy = BackoffPolicy { initial: Duration::from_millis(50), max: Duration::from_millis(500) };
        let done = &done;
        let waiting = format!("topic `{topic}` to be {what}");
        retry(&waiting, policy, StopRule::deadline(self.timeout), |_| async move {
            let (m, throttle) = self.cluster.refresh_throttled(&[topic]).await;
            let m = m.and_then(|mut v| v.pop().ok_or_else(|| cluster::Error::UnknownTopic(topic.into())));
            if done(&m) {
                return Ok(());
            }
            match m {
                Err(e) if !matches!(e, cluster::Error::UnknownTopic(_)) && !e.is_retriable() => {
                    Err(Failure::fatal(Error::Cluster(e)))
                }
                // KIP-219: a throttled Metadata response holds the next poll back.
                _ => Err(Failure::Retriable {
                    error: Error::NotReady { topic: topic.into(), what, secs: self.timeout.as_secs() },
                    throttle,
                }),
            }
        })
        .await
    }
}

fn admin_failure(e: cluster::Error) -> Failure<Error> {
    let retriable = e.is_retriable();
    Failure::new(Error::Cluster(e), retriable)
}

/// The error and message of the one topic in a CreateTopics/DeleteTopics
/// response (none when the broker listed no topic).
fn outcome(topic: Option<(i16, &Option<StrBytes>)>) -> (Option<ResponseError>, Option<String>) {
    match topic {
        Some((code, message)) => (ResponseError::try_from_code(code), message.as_ref().map(|m| m.to_string())),
        None => (None, None),
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// A CreateTopics/DeleteTopics error other than the ones each handles itself.
fn refused(topic: &str, operation: &'static str, error: ResponseError, message: Option<String>) -> Error {
    match error {
        ResponseError::TopicAuthorizationFailed | ResponseError::ClusterAuthorizationFailed => {
            Error::NotAuthorized { topic: topic.into(), operation, error }
        }
        e => Error::Request(format!(
            "{operation} `{topic}`: {e:?}{}",
            message.map(|m| format!(" ({m})")).unwrap_or_default()
        )),
    }
}
