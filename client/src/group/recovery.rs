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
    /// Rejoin with the same member id: eager, revoking everything first (with a
    /// commit); cooperative, committing and keeping every partition (KIP-429).
    Rejoin,
    /// Generation is gone: rejoin without committing (partitions are lost, not
    /// revoked), whichever the rebalance protocol.
    RejoinLost,
    /// Forget member id and generation, then rejoin from scratch.
    Reset,
    /// KIP-394: JoinGroup told us our member id; join again with it.
    JoinWithMemberId,
    /// Nothing a retry can fix; the explanation says what is wrong.
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

/// What a fatal error means, in Kafka's setting names (None: nothing more to say
/// than the code). The application phrases it as advice in its own terms (flags).
pub fn explain(error: E) -> Option<&'static str> {
    Some(match error {
        E::FencedInstanceId => "another member uses the same group.instance.id",
        E::InconsistentGroupProtocol => {
            "the group's members use assignors this client does not share (partition.assignment.strategy)"
        }
        E::InvalidSessionTimeout => "session.timeout.ms is outside the broker's group.min/max.session.timeout.ms",
        E::GroupAuthorizationFailed => "this principal may not use the group; check the ACLs",
        E::InvalidGroupId => "the group id is invalid",
        E::GroupMaxSizeReached => "the group is full (group.max.size); stop a member or use another group",
        E::TopicAuthorizationFailed => "this principal may not read the topic; check the ACLs",
        _ => return None,
    })
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
            assert!(explain(fatal).is_some_and(|x| !x.is_empty()), "{fatal:?}");
        }
    }
}
