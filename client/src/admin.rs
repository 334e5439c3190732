//! Topic administration: create, delete, recreate and describe. rskafka's
//! controller client sends CreateTopics/DeleteTopics; our metadata view decides
//! when a change is visible (every partition has a leader, or the topic is gone).

use std::sync::Arc;
use std::time::Duration;

use rskafka::client::controller::ControllerClient;
use rskafka::client::error::{Error as RsError, ProtocolError};

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
    /// The controller client could not be built or the request failed otherwise
    /// (rskafka's message).
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
    /// Topic admin on `cluster`, through the rskafka client the cluster builds on
    /// first use. `timeout` bounds each CreateTopics/DeleteTopics request and each
    /// wait for the metadata to show its effect.
    pub fn new(cluster: Arc<Cluster>, timeout: Duration) -> Self {
        Self { cluster, timeout }
    }

    /// rskafka's controller client; [`Error::Request`] when no bootstrap server
    /// answers within `request.timeout.ms`.
    async fn controller(&self) -> Result<ControllerClient, Error> {
        let rs = self.cluster.rskafka().await.map_err(|e| Error::Request(e.to_string()))?;
        rs.controller_client().map_err(|e| Error::Request(e.to_string()))
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
        let controller = self.controller().await?;
        let ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        match controller.create_topic(topic, partitions, replication_factor, ms).await {
            Ok(()) => {}
            Err(RsError::ServerError { protocol_error: ProtocolError::TopicAlreadyExists, .. }) => {
                return Err(Error::AlreadyExists(topic.into()));
            }
            Err(RsError::ServerError { protocol_error, error_message, .. })
                if matches!(
                    protocol_error,
                    ProtocolError::InvalidReplicationFactor
                        | ProtocolError::InvalidPartitions
                        | ProtocolError::InvalidTopicException
                ) =>
            {
                let reason = error_message.unwrap_or_else(|| protocol_error.to_string());
                return Err(Error::Invalid { topic: topic.into(), reason });
            }
            Err(e) => return Err(Error::Request(e.to_string())),
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
        let controller = self.controller().await?;
        let ms = self.timeout.as_millis().min(i32::MAX as u128) as i32;
        match controller.delete_topic(topic, ms).await {
            Ok(()) => {}
            Err(RsError::ServerError { protocol_error: ProtocolError::UnknownTopicOrPartition, .. }) => {
                return Err(Error::Cluster(cluster::Error::UnknownTopic(topic.into())));
            }
            Err(e) => return Err(Error::Request(e.to_string())),
        }
        self.wait_until(topic, "deleted", |m| matches!(m, Err(cluster::Error::UnknownTopic(_)))).await
    }

    /// Deletes `topic` if present, then creates it afresh with `partitions` and
    /// `replication_factor`. Retries the create while the broker still reports
    /// the old topic, until the time-out.
    pub async fn recreate(&self, topic: &str, partitions: i32, replication_factor: i16) -> Result<TopicInfo, Error> {
        // Ask first: rskafka logs a DeleteTopics of a missing topic as an error.
        match self.describe(topic).await {
            Ok(_) => match self.delete(topic).await {
                Ok(()) | Err(Error::Cluster(cluster::Error::UnknownTopic(_))) => {}
                Err(e) => return Err(e),
            },
            Err(Error::Cluster(cluster::Error::UnknownTopic(_))) => {}
            Err(e) => return Err(e),
        }
        // Right after a deletion the controller may still be removing the old log;
        // CreateTopics then says TOPIC_ALREADY_EXISTS for a moment. (rskafka itself
        // honours the throttle_time_ms of CreateTopics and DeleteTopics responses.)
        let stop = StopRule::deadline(self.timeout);
        retry("creating a deleted topic afresh", BackoffPolicy::default(), stop, |_| async move {
            match self.create(topic, partitions, replication_factor).await {
                Err(e @ Error::AlreadyExists(_)) => Err(Failure::retriable(e)),
                other => other.map_err(Failure::fatal),
            }
        })
        .await
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
