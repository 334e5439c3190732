//! What the member does about each Kafka error a group API can return: one table,
//! kept as data, so every code path handles an error the same way.

use kafka_protocol::error::ResponseError as E;

/// The one action an error leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Same request to the same coordinator after backoff.
    Retry,
    /// Find the coordinator again, then carry on.
    Rediscover,
    /// Rejoin with the same member id (revoking partitions first, eager protocol).
    Rejoin,
    /// Generation is gone: rejoin without committing (partitions are lost, not revoked).
    RejoinLost,
    /// Forget member id and generation, then rejoin from scratch.
    Reset,
    /// KIP-394: JoinGroup told us our member id; join again with it.
    JoinWithMemberId,
    /// Nothing a retry can fix; the message says what setting to change.
    Fatal,
}

/// The recovery for `error` (None = success is not an input here).
pub fn recovery(error: E) -> Recovery {
    match error {
        E::CoordinatorLoadInProgress | E::UnstableOffsetCommit => Recovery::Retry,
        E::CoordinatorNotAvailable | E::NotCoordinator | E::NetworkException | E::RequestTimedOut => {
            Recovery::Rediscover
        }
        E::RebalanceInProgress => Recovery::Rejoin,
        E::IllegalGeneration => Recovery::RejoinLost,
        E::UnknownMemberId => Recovery::Reset,
        E::MemberIdRequired => Recovery::JoinWithMemberId,
        E::FencedInstanceId
        | E::InconsistentGroupProtocol
        | E::InvalidSessionTimeout
        | E::GroupAuthorizationFailed
        | E::InvalidGroupId
        | E::GroupMaxSizeReached
        | E::UnsupportedVersion
        | E::TopicAuthorizationFailed => Recovery::Fatal,
        e if e.is_retriable() => Recovery::Retry,
        _ => Recovery::Fatal,
    }
}

/// What to tell the user for a fatal error: the setting or situation to change.
pub fn advice(error: E) -> &'static str {
    match error {
        E::FencedInstanceId => "another consumer runs with the same --group-instance-id; stop it or pick another id",
        E::InconsistentGroupProtocol => {
            "the group's members use assignors cafe does not share; use --partition-assignment-strategy range"
        }
        E::InvalidSessionTimeout => {
            "session.timeout.ms is outside the broker's group.min/max.session.timeout.ms; change --session-timeout-ms"
        }
        E::GroupAuthorizationFailed => "this principal may not use the group; check the ACLs",
        E::InvalidGroupId => "the group id is invalid; pass a non-empty --group",
        E::GroupMaxSizeReached => "the group is full (group.max.size); stop a member or use another group",
        E::TopicAuthorizationFailed => "this principal may not read the topic; check the ACLs",
        _ => "see the broker log (`make kafka-logs`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_matches_the_protocol_notes() {
        assert_eq!(recovery(E::CoordinatorLoadInProgress), Recovery::Retry);
        assert_eq!(recovery(E::CoordinatorNotAvailable), Recovery::Rediscover);
        assert_eq!(recovery(E::NotCoordinator), Recovery::Rediscover);
        assert_eq!(recovery(E::RebalanceInProgress), Recovery::Rejoin);
        assert_eq!(recovery(E::IllegalGeneration), Recovery::RejoinLost);
        assert_eq!(recovery(E::UnknownMemberId), Recovery::Reset);
        assert_eq!(recovery(E::MemberIdRequired), Recovery::JoinWithMemberId);
        assert_eq!(recovery(E::UnstableOffsetCommit), Recovery::Retry);
        for fatal in [
            E::FencedInstanceId,
            E::InconsistentGroupProtocol,
            E::InvalidSessionTimeout,
            E::GroupAuthorizationFailed,
            E::InvalidGroupId,
            E::GroupMaxSizeReached,
        ] {
            assert_eq!(recovery(fatal), Recovery::Fatal, "{fatal:?}");
            assert!(!advice(fatal).is_empty());
        }
    }
}
