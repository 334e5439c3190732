//! The group's errors: [`GroupError`] (the group refused the member for good) and
//! [`CommitError`] (a commit the user asked for did not happen).

use kafka_protocol::error::ResponseError;

use super::recovery::{Recovery, recovery};
use crate::types::TopicPartition;

/// An error no retry fixes.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("group {group}: {error} — {}", .explanation.unwrap_or("see the broker log"))]
pub struct GroupError {
    /// The group id.
    pub group: String,
    /// The broker's error.
    pub error: ResponseError,
    /// `recovery::explain` of `error`, in Kafka's setting names.
    pub explanation: Option<&'static str>,
}

/// Why a commit the user asked for did not happen (or not for every partition).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CommitError {
    /// The group is rebalancing (or this member is rejoining): nothing was sent.
    /// Retriable, as Java's `RebalanceInProgressException`: commit again once
    /// the new assignment arrived, or during a revocation.
    #[error("the group is rebalancing; commit again after the new assignment")]
    RebalanceInProgress,
    /// The coordinator is being looked for again; nothing was sent. Retriable.
    #[error("the group coordinator is not known at the moment")]
    CoordinatorUnavailable,
    /// Offsets for partitions this member does not own; nothing was sent.
    #[error("not assigned to this member: {0:?}")]
    NotAssigned(Vec<TopicPartition>),
    /// The coordinator refused these partitions (the others were committed).
    #[error("the coordinator refused the commit of {}", describe(.0))]
    Refused(Vec<(TopicPartition, ResponseError)>),
    /// The request got no answer (connection lost, time-out): it may or may not
    /// have been applied.
    #[error("the commit got no answer: {0}")]
    Transport(String),
    /// The consumer is closed (or its group member stopped).
    #[error("the consumer is closed")]
    Closed,
}

fn describe(refused: &[(TopicPartition, ResponseError)]) -> String {
    refused.iter().map(|(tp, e)| format!("{tp}: {e:?}")).collect::<Vec<_>>().join(", ")
}

impl CommitError {
    /// True when trying again later can succeed (a rebalance, a coordinator move,
    /// a lost connection); false for a commit that can never be accepted.
    pub fn is_retriable(&self) -> bool {
        match self {
            CommitError::RebalanceInProgress | CommitError::CoordinatorUnavailable | CommitError::Transport(_) => true,
            CommitError::Refused(errors) => errors.iter().all(|(_, e)| recovery(*e) != Recovery::Fatal),
            CommitError::NotAssigned(_) | CommitError::Closed => false,
        }
    }
}
