//! What the client knows of the cluster: bootstrap addresses, brokers by node id,
//! topic metadata (partitions and their leaders), and one shared connection per
//! broker. Producer, consumer and group driver all go through here.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, MetadataResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Mutex;

use crate::backoff::{BackoffPolicy, Failure, StopRule, retry};
use crate::wire::{self, Connection, ConnectionConfig, Security};

/// Errors learning about the cluster.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection to a broker failed (see [`wire::Error`]).
    #[error(transparent)]
    Wire(#[from] wire::Error),
    /// Metadata answered UNKNOWN_TOPIC_OR_PARTITION: no topic of that name.
    #[error("topic `{0}` does not exist")]
    UnknownTopic(String),
    /// Metadata answered another error for the topic (LEADER_NOT_AVAILABLE
    /// right after creation, TOPIC_AUTHORIZATION_FAILED, ...).
    #[error("metadata for topic `{topic}` failed: {error}")]
    Topic {
        /// The topic asked for.
        topic: String,
        /// The broker's error code.
        error: ResponseError,
    },
    /// The broker's ACLs do not let this client see the topic
    /// (TOPIC_AUTHORIZATION_FAILED in Metadata).
    #[error("not authorized to describe topic `{0}` (TOPIC_AUTHORIZATION_FAILED)")]
    TopicAuthorization(String),
    /// A node id (from FindCoordinator or a partition's leader) that no
    /// metadata response has listed yet; refresh and retry.
    #[error("broker {0} is not in the cluster metadata")]
    UnknownBroker(i32),
    /// [`Cluster::connect`] got an empty bootstrap list.
    #[error("no bootstrap server given")]
    NoBootstrap,
}

impl Error {
    /// True when the same call may succeed after a metadata refresh or a
    /// backoff: lost connections, time-outs, retriable broker codes, unknown
    /// brokers. An unknown topic is not retriable.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Wire(e) => e.is_retriable(),
            Error::Topic { error, .. } => error.is_retriable(),
            Error::UnknownBroker(_) => true,
            Error::UnknownTopic(_) | Error::NoBootstrap | Error::TopicAuthorization(_) => false,
        }
    }
}

impl From<Error> for Failure<Error> {
    /// Retriable or fatal as [`Error::is_retriable`] says.
    fn from(e: Error) -> Self {
        let retriable = e.is_retriable();
        Failure::new(e, retriable)
    }
}

/// Retries of a failed Metadata request (each on another broker if one is known)
/// before its error is returned.
const METADATA_RETRIES: u32 = 4;

/// One partition as the metadata describes it. `leader` is -1 while there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition's index within its topic, from 0.
    pub id: i32,
    /// The node id of the leader broker, or -1.
    pub leader: i32,
    /// The leader epoch (KIP-320), -1 when the broker does not report one.
    pub leader_epoch: i32,
}

/// One topic as the last Metadata response described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    /// The topic's name.
    pub name: String,
    /// An internal topic such as `__consumer_offsets`.
    pub internal: bool,
    /// KIP-516 topic id (nil from brokers before Kafka 2.8).
    pub topic_id: uuid::Uuid,
    /// Every partition, sorted by `id`.
    pub partitions: Vec<PartitionInfo>,
}

impl TopicInfo {
    /// How many partitions the topic has.
    pub fn partition_count(&self) -> i32 {
        self.partitions.len() as i32
    }

    /// The leader's node id, or `None` for a partition that has no leader or
    /// does not exist.
    pub fn leader_of(&self, partition: i32) -> Option<i32> {
        self.partitions.iter().find(|p| p.id == partition).map(|p| p.leader).filter(|l| *l >= 0)
    }
}

/// Shared view of the cluster; cheap to clone behind an `Arc`.
#[derive(Debug)]
pub struct Cluster {
    bootstrap: Vec<String>,
    config: ConnectionConfig,
    brokers: std::sync::RwLock<BTreeMap<i32, String>>,
    topics: std::sync::RwLock<HashMap<String, TopicInfo>>,
    // Held across connect so two tasks never open two connections to one broker.
    connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// A second connection per broker for Fetch: a broker answers the requests of
    /// one connection in order, so a long-polling Fetch (up to fetch.max.wait.ms)
    /// would hold back heartbeats and commits queued behind it. The Java consumer
    /// keeps its coordinator on a socket of its own for the same reason.
    fetch_connections: Mutex<HashMap<String, Arc<Connection>>>,
    /// TLS and SASL for every connection of this cluster (bootstrap, metadata,
    /// produce, fetch, coordinator, admin), prepared once.
    security: Security,
    /// Bumped whenever `topics` changes, so a cache of it (the producer's partition
    /// counts) can tell it is stale without taking the lock.
    topics_generation: std::sync::atomic::AtomicU64,
}

impl Cluster {
    /// Connects to the first reachable of `bootstrap` (`bootstrap.servers`, each
    /// `host:port`). Fails with [`Error::NoBootstrap`] for an empty list, else
    /// with the first server's [`wire::Error`] when none answers. Unusable
    /// security settings (a missing CA file, no password) fail before any
    /// socket is opened.
    pub async fn connect(bootstrap: Vec<String>, config: ConnectionConfig) -> Result<Arc<Self>, Error> {
        if bootstrap.is_empty() {
            return Err(Error::NoBootstrap);
        }
        let security = Security::new(&config.security)?;
        let cluster = Arc::new(Self {
            bootstrap,
            config,
            brokers: Default::default(),
            topics: Default::default(),
            connections: Mutex::new(HashMap::new()),
            fetch_connections: Mutex::new(HashMap::new()),
            security,
            topics_generation: std::sync::atomic::AtomicU64::new(0),
        });
        cluster.any_connection().await?;
        Ok(cluster)
    }

    /// A live connection to any broker: a known one first, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>, Error> {
        let known: Vec<String> = read(&self.brokers).values().cloned().collect();
        let mut first_err = None;
        for addr in known.iter().chain(self.bootstrap.iter()) {
            match self.connection(addr).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "broker unreachable, trying the next");
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or(Error::NoBootstrap))
    }

    /// The shared connection to `addr`, opened on first use or after it failed.
    pub async fn connection(&self, addr: &str) -> Result<Arc<Connection>, Error> {
        self.connection_in(&self.connections, addr).await
    }

    async fn connection_in(
        &self,
        pool: &Mutex<HashMap<String, Arc<Connection>>>,
        addr: &str,
    ) -> Result<Arc<Connection>, Error> {
        let mut conns = pool.lock().await;
        if let Some(c) = conns.get(addr).filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let c = Arc::new(Connection::open(addr, self.config.clone(), &self.security).await?);
        conns.insert(addr.to_owned(), Arc::clone(&c));
        Ok(c)
    }

    /// The connection to broker `node_id` (as named by metadata or FindCoordinator).
    pub async fn broker(&self, node_id: i32) -> Result<Arc<Connection>, Error> {
        self.connection(&self.address(node_id)?).await
    }

    /// The connection to broker `node_id` that carries Fetch requests only.
    pub async fn fetch_broker(&self, node_id: i32) -> Result<Arc<Connection>, Error> {
        self.connection_in(&self.fetch_connections, &self.address(node_id)?).await
    }

    fn address(&self, node_id: i32) -> Result<String, Error> {
        read(&self.brokers).get(&node_id).cloned().ok_or(Error::UnknownBroker(node_id))
    }

    /// Records a broker address learnt outside metadata (FindCoordinator answers).
    pub fn learn_broker(&self, node_id: i32, host: &str, port: i32) {
        write(&self.brokers).insert(node_id, format!("{host}:{port}"));
    }

    /// Drops a connection that proved bad, so the next use reconnects.
    pub async fn forget_connection(&self, addr: &str) {
        self.connections.lock().await.remove(addr);
    }

    /// Drops a Fetch connection that proved bad.
    pub async fn forget_fetch_connection(&self, addr: &str) {
        self.fetch_connections.lock().await.remove(addr);
    }

    /// The user name this client authenticates as with SASL PLAIN or SCRAM
    /// (Kafka's principal is then `User:<name>`), for messages about ACLs.
    pub fn sasl_username(&self) -> Option<&str> {
        self.security.sasl.as_ref()?.username()
    }

    /// Metadata of every topic in the cluster (for pattern subscriptions).
    pub async fn list_topics(&self) -> Result<Vec<TopicInfo>, Error> {
        self.metadata(MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(false)).await
    }

    /// Fetches metadata for `topics` and updates brokers and leaders.
    /// A topic the broker does not know is `Error::UnknownTopic`.
    /// A broker that dies mid-request is forgotten and the request goes to another
    /// (up to 4 retries with the one backoff policy), so a restart does not fail it.
    pub async fn refresh(&self, topics: &[&str]) -> Result<Vec<TopicInfo>, Error> {
        self.metadata(topics_request(topics)).await
    }

    async fn metadata(&self, req: MetadataRequest) -> Result<Vec<TopicInfo>, Error> {
        let resp = self.metadata_response(&req).await?;
        self.apply(resp)
    }

    /// Like [`refresh`](Self::refresh), also giving the response's `throttle_time_ms`
    /// (zero when no response came), for callers that poll metadata in a retry.
    pub(crate) async fn refresh_throttled(&self, topics: &[&str]) -> (Result<Vec<TopicInfo>, Error>, Duration) {
        match self.metadata_response(&topics_request(topics)).await {
            Ok(resp) => {
                let throttle = Duration::from_millis(resp.throttle_time_ms.max(0) as u64);
                (self.apply(resp), throttle)
            }
            Err(e) => (Err(e), Duration::ZERO),
        }
    }

    /// One Metadata request to any broker. A broker that fails is forgotten and the
    /// request retried on another, [`METADATA_RETRIES`] times.
    async fn metadata_response(&self, req: &MetadataRequest) -> Result<MetadataResponse, Error> {
        let stop = StopRule::retries(METADATA_RETRIES);
        retry("metadata request", BackoffPolicy::default(), stop, |_| async move {
            let conn = self.any_connection().await?;
            match conn.request(req).await {
                Ok(resp) => Ok(resp),
                Err(e) => {
                    self.forget_connection(conn.addr()).await;
                    Err(Error::from(e).into())
                }
            }
        })
        .await
    }

    /// The cached view of `topic`, if metadata was fetched for it.
    pub fn topic(&self, topic: &str) -> Option<TopicInfo> {
        read(&self.topics).get(topic).cloned()
    }

    fn topics_changed(&self) {
        self.topics_generation.fetch_add(1, std::sync::atomic::Ordering::Release);
    }

    /// Changes whenever the cached topic metadata changes.
    pub(crate) fn topics_generation(&self) -> u64 {
        self.topics_generation.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The cached partition count of `topic` (no copy of its metadata).
    pub fn partition_count(&self, topic: &str) -> Option<i32> {
        read(&self.topics).get(topic).map(TopicInfo::partition_count)
    }

    /// Cached metadata for `topic`, fetched when absent.
    pub async fn topic_or_fetch(&self, topic: &str) -> Result<TopicInfo, Error> {
        if let Some(t) = self.topic(topic) {
            return Ok(t);
        }
        let mut infos = self.refresh(&[topic]).await?;
        infos.pop().ok_or_else(|| Error::UnknownTopic(topic.to_owned()))
    }

    fn apply(&self, resp: MetadataResponse) -> Result<Vec<TopicInfo>, Error> {
        {
            let mut brokers = write(&self.brokers);
            for b in &resp.brokers {
                brokers.insert(b.node_id.0, format!("{}:{}", b.host.as_str(), b.port));
            }
        }
        let mut out = Vec::with_capacity(resp.topics.len());
        for t in resp.topics {
            let name = t.name.map(|n| n.0.to_string()).unwrap_or_default();
            match ResponseError::try_from_code(t.error_code) {
                None => {}
                Some(ResponseError::UnknownTopicOrPartition) => {
                    write(&self.topics).remove(&name);
                    self.topics_changed();
                    return Err(Error::UnknownTopic(name));
                }
                Some(ResponseError::TopicAuthorizationFailed) => return Err(Error::TopicAuthorization(name)),
                Some(error) => return Err(Error::Topic { topic: name, error }),
            }
            let mut partitions: Vec<PartitionInfo> = t
                .partitions
                .iter()
                .map(|p| PartitionInfo {
                    id: p.partition_index,
                    leader: p.leader_id.0, // -1 while there is none
                    leader_epoch: p.leader_epoch,
                })
                .collect();
            partitions.sort_by_key(|p| p.id);
            let info = TopicInfo { name: name.clone(), internal: t.is_internal, topic_id: t.topic_id, partitions };
            write(&self.topics).insert(name, info.clone());
            self.topics_changed();
            out.push(info);
        }
        Ok(out)
    }
}

/// Metadata of `topics`, without creating them.
fn topics_request(topics: &[&str]) -> MetadataRequest {
    let topics = topics
        .iter()
        .map(|t| MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string((*t).to_owned())))))
        .collect();
    MetadataRequest::default().with_topics(Some(topics)).with_allow_auto_topic_creation(false)
}

// The std locks guard plain maps and are never held across an await; a poisoned
// lock means a panic elsewhere already, and the data is still consistent.
fn read<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(l: &std::sync::RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}
