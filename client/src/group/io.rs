//! What goes into the group member and what comes out: the [`Event`]s fed to
//! [`GroupMember::handle`](super::state::GroupMember::handle) (responses, timers,
//! the consumer's progress, the user's requests) and the [`Action`]s it returns
//! for the driver to perform.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::error::{CommitError, GroupError};
use crate::types::Tp;

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
    /// The answer to [`Action::RefreshTopics`].
    TopicsRefreshed(Result<TopicsView, Failure>),
    Synced(Result<Bytes, Failure>),
    OffsetsFetched(Result<BTreeMap<Tp, i64>, Failure>),
    Heartbeat(Result<(), Failure>),
    /// The offsets that were sent, and per-partition failures (or one for all).
    Committed {
        offsets: BTreeMap<Tp, i64>,
        result: Result<Vec<(Tp, ResponseError)>, Failure>,
    },
    Left,
    /// The consumer has handed the user every record before `next_offset`.
    Consumed {
        tp: Tp,
        next_offset: i64,
    },
    /// The consumer stopped fetching the revoked partitions and reported positions.
    Revoked,
    Close,
    /// The user asks to commit `offsets`, or with `None` every consumed position
    /// ahead of the last commit; answered by [`Action::AnswerCommit`] with `id`.
    CommitRequested {
        id: u64,
        offsets: Option<BTreeMap<Tp, i64>>,
    },
    /// The answer to an [`Action::Commit`] that carried `reply: Some(id)`.
    CommitAnswered {
        id: u64,
        offsets: BTreeMap<Tp, i64>,
        result: Result<Vec<(Tp, ResponseError)>, Failure>,
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

/// What to do, returned by [`GroupMember::handle`](super::state::GroupMember::handle).
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    FindCoordinator,
    Join {
        member_id: String,
        protocols: Vec<(String, Bytes)>,
    },
    FetchMetadata {
        topics: Vec<String>,
    },
    /// Periodic metadata refresh (`metadata.max.age.ms`): partition counts of
    /// `topics`, and the topics matching the pattern if there is one.
    RefreshTopics {
        topics: Vec<String>,
    },
    Sync {
        generation_id: i32,
        member_id: String,
        protocol_name: String,
        assignments: Vec<(String, Bytes)>,
    },
    FetchOffsets {
        partitions: Vec<Tp>,
    },
    /// Start fetching: committed offset, or None for `auto.offset.reset`.
    Assign {
        partitions: Vec<(Tp, Option<i64>)>,
    },
    /// Stop fetching these and answer with `Event::Revoked`.
    Revoke {
        partitions: Vec<Tp>,
    },
    Heartbeat {
        generation_id: i32,
        member_id: String,
    },
    /// With `reply: Some(id)` the answer comes back as [`Event::CommitAnswered`]
    /// (a commit the user asked for); else as [`Event::Committed`].
    Commit {
        generation_id: i32,
        member_id: String,
        offsets: BTreeMap<Tp, i64>,
        reply: Option<u64>,
    },
    /// Tell the user who asked for commit `id` how it went.
    AnswerCommit {
        id: u64,
        result: Result<(), CommitError>,
    },
    Leave {
        member_id: String,
    },
    Fatal(GroupError),
    Closed,
}
