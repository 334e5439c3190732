//! Group settings: [`GroupConfig`], with the Java client's names and defaults.

use std::time::Duration;

use super::assign::Assignor;
use crate::backoff::BackoffPolicy;

/// `group.protocol`: which rebalance protocol the member speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup / SyncGroup / Heartbeat, assignment computed by the group leader.
    #[default]
    Classic,
    /// KIP-848: ConsumerGroupHeartbeat, assignment computed by the coordinator.
    Consumer,
}

impl std::str::FromStr for GroupProtocol {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "classic" => Ok(GroupProtocol::Classic),
            "consumer" => Ok(GroupProtocol::Consumer),
            other => Err(format!("unknown group protocol `{other}`")),
        }
    }
}

impl std::fmt::Display for GroupProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GroupProtocol::Classic => "classic",
            GroupProtocol::Consumer => "consumer",
        })
    }
}

/// Group settings with the Java client's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.protocol` (classic).
    pub protocol: GroupProtocol,
    /// `group.remote.assignor`: the coordinator's assignor for the consumer
    /// protocol (`uniform`, `range`); `None` lets the broker pick its default.
    pub remote_assignor: Option<String>,
    /// `group.id` (no default: it must be set).
    pub group_id: String,
    /// `group.instance.id` (KIP-345 static membership).
    pub group_instance_id: Option<String>,
    /// `client.rack`: the member's rack, for rack-aware assignors (the
    /// subscription's `rack_id`, KIP-881; the heartbeat's `RackId`, KIP-848).
    pub client_rack: Option<String>,
    /// The subscribed topics; with `topic_pattern`, the topics it matched at the
    /// last metadata refresh (the member keeps this up to date).
    pub topics: Vec<String>,
    /// Java's `subscribe(Pattern)`: every topic whose whole name matches this
    /// regular expression, checked again at every metadata refresh.
    pub topic_pattern: Option<String>,
    /// `metadata.max.age.ms`: how often topic metadata is refreshed, so new
    /// partitions (and, with a pattern, new topics) are noticed.
    pub metadata_max_age: Duration,
    /// `partition.assignment.strategy`, in preference order (eager assignors).
    pub assignors: Vec<Assignor>,
    /// `session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `max.poll.interval.ms`, sent as the rebalance timeout.
    pub rebalance_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s); heartbeats run on their own task.
    pub heartbeat_interval: Duration,
    /// `enable.auto.commit` (true): commit what `poll` handed out, every interval and on close.
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
    /// `retry.backoff.ms` / `retry.backoff.max.ms` for group requests.
    pub backoff: BackoffPolicy,
}

/// Java's defaults. There is no default group id or topic (as in Java): set
/// both, or `ConsumerConfig::validate` refuses the config.
impl Default for GroupConfig {
    fn default() -> Self {
        Self {
            protocol: GroupProtocol::Classic,
            remote_assignor: None,
            group_id: String::new(),
            group_instance_id: None,
            client_rack: None,
            topics: Vec::new(),
            topic_pattern: None,
            metadata_max_age: Duration::from_millis(300_000),
            assignors: vec![Assignor::Range],
            session_timeout: Duration::from_millis(45_000),
            rebalance_timeout: Duration::from_millis(300_000),
            heartbeat_interval: Duration::from_millis(3_000),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            backoff: BackoffPolicy::default(),
        }
    }
}
