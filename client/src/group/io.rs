//! What goes into the group member and what comes out: the [`Event`]s fed to
//! [`GroupMember::handle`](super::state::GroupMember::handle) (responses, timers,
//! the consumer's progress, the user's requests) and the [`Action`]s it returns
//! for the driver to perform.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::error::{CommitError, GroupError};
use crate::types::TopicPartition;

/// Why a group request failed: the broker said so, or the connection did.
#[derive(Debug, Clone, PartialEq)]
pub enum Failure {
    Broker(ResponseError),
    Transport(String),
}

/// One JoinGroup member entry (only the leader gets these).
#[derive(Debug, Clone, PartialEq)]
pub struct JoinedMember {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub metadata: Bytes,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JoinResult {
    pub generation_id: i32,
    pub member_id: String,
    pub leader: String,
    pub protocol_name: Option<String>,
    pub members: Vec<JoinedMember>,
}

/// What happened, fed to [`GroupMember::handle`](super::state::GroupMember::handle).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Check timers (heartbeat, auto-commit, retries).
    Tick,
    CoordinatorFound(Result<i32, Failure>),
    /// For MEMBER_ID_REQUIRED the broker's member id rides along in `Err`.
    Joined(Result<JoinResult, (Failure, String)>),
    /// Partition counts of the subscribed topics, for the leader's assignment.
    Metadata(Result<BTreeMap<String, i32>, Failure>),
    /// The answer to [`Request::RefreshTopics`].
    TopicsRefreshed(Result<TopicsView, Failure>),
    Synced(Result<Bytes, Failure>),
    OffsetsFetched(Result<BTreeMap<TopicPartition, i64>, Failure>),
    Heartbeat(Result<(), Failure>),
    /// The offsets that were sent, and per-partition failures (or one for all).
    Committed {
        offsets: BTreeMap<TopicPartition, i64>,
        result: Result<Vec<(TopicPartition, ResponseError)>, Failure>,
    },
    Left,
    /// The consumer has handed the user every record before `next_offset`.
    Consumed {
        tp: TopicPartition,
        next_offset: i64,
    },
    /// The consumer stopped fetching the revoked partitions and reported positions.
    Revoked,
    /// The user is polling (`consumer::poll_notice`): the KIP-848 member's
    /// `max.poll.interval.ms` timer starts again.
    Polled,
    Close,
    /// The user asks to commit `offsets`, or with `None` every consumed position
    /// ahead of the last commit; answered by [`Action::AnswerCommit`] with `id`.
    CommitRequested {
        id: u64,
        offsets: Option<BTreeMap<TopicPartition, i64>>,
    },
    /// The answer to a [`Request::Commit`] that carried `reply: Some(id)`.
    CommitAnswered {
        id: u64,
        offsets: BTreeMap<TopicPartition, i64>,
        result: Result<Vec<(TopicPartition, ResponseError)>, Failure>,
    },
}

/// What a metadata refresh found.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TopicsView {
    /// Partition counts of the topics asked for (and of the matching ones).
    pub counts: BTreeMap<String, i32>,
    /// With a topic pattern: the topics whose whole name it matches now.
    pub matching: Option<BTreeSet<String>>,
}

/// What to do, returned by [`GroupMember::handle`](super::state::GroupMember::handle):
/// a request to send, or news for the consumer and the user.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this request; its answer comes back as the event it names.
    Send(Request),
    /// Start fetching: committed offset, or None for `auto.offset.reset`.
    Assign {
        partitions: Vec<(TopicPartition, Option<i64>)>,
    },
    /// Stop fetching these and answer with `Event::Revoked`.
    Revoke {
        partitions: Vec<TopicPartition>,
    },
    /// Tell the user who asked for commit `id` how it went.
    AnswerCommit {
        id: u64,
        result: Result<(), CommitError>,
    },
    Fatal(GroupError),
    Closed,
}

/// A request for the driver to send. Each carries every field of its Kafka
/// request (and how long its answer may take), so the driver builds it from the
/// request alone; the member's [`GroupConfig`](super::GroupConfig) stays in the
/// member.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// FindCoordinator for the group; answered by [`Event::CoordinatorFound`].
    FindCoordinator { group_id: String },
    /// JoinGroup; answered by [`Event::Joined`]. KIP-394: the first one carries
    /// an empty member id.
    Join {
        group_id: String,
        member_id: String,
        /// `group.instance.id` (KIP-345).
        group_instance_id: Option<String>,
        /// `session.timeout.ms`.
        session_timeout: Duration,
        /// `max.poll.interval.ms`: the coordinator holds the answer until every
        /// member rejoined, up to this long.
        rebalance_timeout: Duration,
        /// One (assignor name, ConsumerProtocolSubscription bytes) per assignor,
        /// in preference order.
        protocols: Vec<(String, Bytes)>,
    },
    /// The leader's metadata request: partition counts of every topic the group
    /// subscribes to; answered by [`Event::Metadata`].
    FetchMetadata { topics: Vec<String> },
    /// Periodic metadata refresh (`metadata.max.age.ms`): partition counts of
    /// `topics`, and the topics matching the pattern if there is one; answered
    /// by [`Event::TopicsRefreshed`].
    RefreshTopics { topics: Vec<String> },
    /// SyncGroup (the leader's carries the assignments); answered by [`Event::Synced`].
    Sync {
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
        protocol_name: String,
        assignments: Vec<(String, Bytes)>,
        /// The coordinator holds the answer until the leader's SyncGroup arrived,
        /// up to the rebalance timeout.
        rebalance_timeout: Duration,
    },
    /// OffsetFetch of the partitions just assigned; answered by [`Event::OffsetsFetched`].
    FetchOffsets { group_id: String, partitions: Vec<TopicPartition> },
    /// Heartbeat; answered by [`Event::Heartbeat`].
    Heartbeat {
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
        /// `session.timeout.ms`: an answer later than this is worth nothing.
        session_timeout: Duration,
    },
    /// OffsetCommit. With `reply: Some(id)` the answer comes back as
    /// [`Event::CommitAnswered`] (a commit the user asked for); else as
    /// [`Event::Committed`].
    Commit {
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
        offsets: BTreeMap<TopicPartition, i64>,
        reply: Option<u64>,
    },
    /// LeaveGroup; answered by [`Event::Left`]. Only dynamic members leave
    /// (KIP-345), so it carries no instance id.
    Leave { group_id: String, member_id: String },
}

/// What a user commit sends: the offsets given (refused with `NotAssigned` when any
/// partition is not in `owned`), or, without any, everything consumed and not yet
/// committed (`uncommitted`). Both members, classic and KIP-848, answer it alike.
pub(crate) fn user_commit_offsets(
    offsets: Option<BTreeMap<TopicPartition, i64>>,
    owned: &BTreeSet<TopicPartition>,
    uncommitted: impl FnOnce() -> BTreeMap<TopicPartition, i64>,
) -> Result<BTreeMap<TopicPartition, i64>, CommitError> {
    let Some(offsets) = offsets else { return Ok(uncommitted()) };
    let foreign: Vec<TopicPartition> = offsets.keys().filter(|tp| !owned.contains(*tp)).cloned().collect();
    if foreign.is_empty() { Ok(offsets) } else { Err(CommitError::NotAssigned(foreign)) }
}
