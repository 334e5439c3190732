//! Unit tests of the KIP-848 member: events in, actions out, a virtual clock, no sockets.
//! Backoff uses jitter 0.5 inside the machine, so the first retry comes 100 ms
//! after a failure with the default policy.
use super::*;

use kafka_protocol::error::ResponseError as E;

const GROUP: &str = "g-848";
const TOPIC: &str = "demo";
const MEMBER: &str = "AAAAAAAAAAAAAAAAAAAAAA";
const COORDINATOR: i32 = 1;
const HB_MS: i32 = 5_000;

fn topic_id() -> Uuid {
    Uuid::from_u128(0x1111)
}

fn config() -> GroupConfig {
    GroupConfig { group_id: GROUP.into(), topics: vec![TOPIC.into()], ..GroupConfig::default() }
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

fn assignment(ps: &[i32]) -> Option<BTreeMap<Uuid, Vec<i32>>> {
    Some([(topic_id(), ps.to_vec())].into())
}

fn answer(epoch: i32, assigned: Option<&[i32]>) -> HeartbeatAnswer {
    HeartbeatAnswer {
        member_id: Some(MEMBER.into()),
        member_epoch: epoch,
        heartbeat_interval_ms: HB_MS,
        assignment: assigned.and_then(assignment),
    }
}

/// A member on a virtual clock.
struct Sim {
    m: ConsumerMember,
    t0: Instant,
    now: Instant,
}

impl Sim {
    fn new(config: GroupConfig) -> (Self, Vec<Action>) {
        let t0 = Instant::now();
        let mut m = ConsumerMember::new(config, MEMBER.into(), Some("uniform".into()));
        let out = m.start(t0);
        (Self { m, t0, now: t0 }, out)
    }

    fn on(&mut self, e: Event) -> Vec<Action> {
        self.m.handle(e, self.now)
    }

    fn advance(&mut self, ms: u64) -> Vec<Action> {
        self.now += Duration::from_millis(ms);
        self.on(Event::Tick)
    }

    fn at_ms(&self) -> u128 {
        (self.now - self.t0).as_millis()
    }

    /// Coordinator found, joined (epoch 1) with no assignment yet.
    fn joined() -> Self {
        let (mut s, _) = Sim::new(config());
        s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
        s.on(Event::Heartbeat(Ok(answer(1, None))));
        s
    }

    /// Joined and owning `ps` of TOPIC (no committed offsets).
    fn owning(ps: &[i32]) -> Self {
        Self::owning_with(config(), ps)
    }

    /// [`owning`](Self::owning) with `config`.
    fn owning_with(config: GroupConfig, ps: &[i32]) -> Self {
        let (mut s, _) = Sim::new(config);
        s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
        s.on(Event::Heartbeat(Ok(answer(1, Some(ps)))));
        s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
        s.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
        let out = s.on(Event::Heartbeat(Ok(answer(2, None))));
        assert!(heartbeats(&out).is_empty());
        assert_eq!(s.m.owned().iter().cloned().collect::<Vec<_>>(), ps.iter().map(|p| tp(*p)).collect::<Vec<_>>());
        s
    }
}

fn heartbeats(out: &[Action]) -> Vec<&Heartbeat> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(Request::Heartbeat(h)) => Some(h),
            _ => None,
        })
        .collect()
}

fn one_heartbeat(out: &[Action]) -> &Heartbeat {
    let hbs = heartbeats(out);
    assert_eq!(hbs.len(), 1, "one heartbeat in {out:?}");
    hbs[0]
}

fn commits(out: &[Action]) -> Vec<(i32, BTreeMap<TopicPartition, i64>, Option<u64>)> {
    out.iter()
        .filter_map(|a| match a {
            Action::Send(Request::Commit { member_epoch, offsets, reply, .. }) => {
                Some((*member_epoch, offsets.clone(), *reply))
            }
            _ => None,
        })
        .collect()
}

fn revoked(out: &[Action]) -> Option<Vec<TopicPartition>> {
    out.iter().find_map(|a| match a {
        Action::Revoke { partitions } => Some(partitions.clone()),
        _ => None,
    })
}

fn owned_ack(h: &Heartbeat) -> Option<Vec<i32>> {
    h.topic_partitions.as_ref().map(|m| m.get(&topic_id()).cloned().unwrap_or_default())
}

// ---- joining and heartbeats ---------------------------------------------------------

#[test]
fn the_member_id_is_a_java_style_uuid() {
    let id = new_member_id(Uuid::from_u128(0));
    assert_eq!(id, "AAAAAAAAAAAAAAAAAAAAAA");
    assert_eq!(new_member_id(Uuid::from_u128(u128::MAX)), "_____________________w");
    assert_eq!(new_member_id(Uuid::new_v4()).len(), 22);
}

#[test]
fn start_finds_the_coordinator_then_joins_at_epoch_0_with_a_full_request() {
    let (mut s, out) = Sim::new(config());
    assert_eq!(out, vec![Action::Send(Request::FindCoordinator { group_id: GROUP.into() })]);
    let out = s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    let h = one_heartbeat(&out);
    assert_eq!((h.member_id.as_str(), h.member_epoch), (MEMBER, JOIN_EPOCH));
    assert_eq!(h.rebalance_timeout, Some(Duration::from_millis(300_000)));
    assert_eq!(h.subscribed_topic_names, Some(vec![TOPIC.to_string()]));
    assert_eq!(h.subscribed_topic_regex, None);
    assert_eq!(h.server_assignor.as_deref(), Some("uniform"));
    assert_eq!(owned_ack(h), Some(vec![]));
}

#[test]
fn a_topic_pattern_is_sent_as_the_subscribed_regex() {
    let (mut s, _) = Sim::new(GroupConfig { topics: vec![], topic_pattern: Some("demo-.*".into()), ..config() });
    let out = s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    let h = one_heartbeat(&out);
    assert_eq!(h.subscribed_topic_regex.as_deref(), Some("demo-.*"));
    assert_eq!(h.subscribed_topic_names, None);
}

#[test]
fn one_heartbeat_in_flight_and_the_next_after_the_brokers_interval() {
    let (mut s, _) = Sim::new(config());
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    assert!(heartbeats(&s.advance(60_000)).is_empty(), "none while one is in flight");
    let out = s.on(Event::Heartbeat(Ok(HeartbeatAnswer { heartbeat_interval_ms: 2_000, ..answer(1, None) })));
    assert!(heartbeats(&out).is_empty());
    assert_eq!(s.m.next_deadline(), Some(s.now + Duration::from_millis(2_000)));
    assert!(heartbeats(&s.advance(1_999)).is_empty());
    assert_eq!(heartbeats(&s.advance(1)).len(), 1);
}

#[test]
fn a_non_positive_interval_keeps_the_previous_one() {
    let mut s = Sim::joined();
    s.advance(HB_MS as u64);
    s.on(Event::Heartbeat(Ok(HeartbeatAnswer { heartbeat_interval_ms: 0, ..answer(1, None) })));
    assert_eq!(s.m.next_deadline(), Some(s.now + Duration::from_millis(HB_MS as u64)));
}

#[test]
fn owning_partitions_heartbeats_are_partial_and_full_again_after_an_error() {
    let mut s = Sim::owning(&[0, 1]);
    let out = s.advance(HB_MS as u64);
    let h = one_heartbeat(&out);
    assert_eq!(h.member_epoch, 2);
    assert_eq!(
        (&h.rebalance_timeout, &h.subscribed_topic_names, &h.server_assignor, &h.topic_partitions),
        (&None, &None, &None, &None),
        "nothing changed: {h:?}"
    );
    s.on(Event::Heartbeat(Err(Failure::Broker(E::UnstableOffsetCommit))));
    let out = s.advance(100);
    let h = one_heartbeat(&out);
    assert_eq!(h.subscribed_topic_names, Some(vec![TOPIC.to_string()]));
    assert_eq!(owned_ack(h), Some(vec![0, 1]));
    assert!(h.rebalance_timeout.is_some() && h.server_assignor.is_some());
}

#[test]
fn coordinator_errors_find_the_coordinator_again_with_backoff() {
    for e in [E::CoordinatorNotAvailable, E::NotCoordinator, E::CoordinatorLoadInProgress] {
        let mut s = Sim::owning(&[0]);
        s.advance(HB_MS as u64);
        let out = s.on(Event::Heartbeat(Err(Failure::Broker(e))));
        assert!(out.is_empty(), "{e:?}: {out:?}");
        assert_eq!(s.m.coordinator(), None);
        assert!(s.advance(99).is_empty());
        assert_eq!(s.advance(1), vec![Action::Send(Request::FindCoordinator { group_id: GROUP.into() })]);
        let out = s.on(Event::CoordinatorFound(Ok(2)));
        let h = one_heartbeat(&out);
        assert_eq!((h.member_epoch, owned_ack(h)), (2, Some(vec![0])), "{e:?}: full, same epoch");
        assert_eq!(s.m.owned().len(), 1, "{e:?}: partitions kept");
    }
}

#[test]
fn fatal_errors_stop_the_member() {
    for e in [
        E::FencedInstanceId,
        E::UnreleasedInstanceId,
        E::GroupMaxSizeReached,
        E::UnsupportedAssignor,
        E::InvalidRequest,
    ] {
        let (mut s, _) = Sim::new(config());
        s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
        let out = s.on(Event::Heartbeat(Err(Failure::Broker(e))));
        match out.as_slice() {
            [Action::Fatal(g)] => {
                assert_eq!(g.error, e);
                assert!(g.explanation.is_some(), "{e:?}");
            }
            other => panic!("{e:?}: {other:?}"),
        }
        assert!(s.m.is_closed());
        assert_eq!(s.m.next_deadline(), None);
    }
}

// ---- reconciliation -----------------------------------------------------------------

#[test]
fn a_target_assignment_resolves_ids_fetches_offsets_assigns_and_acknowledges() {
    let (mut s, _) = Sim::new(config());
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    let out = s.on(Event::Heartbeat(Ok(answer(1, Some(&[0, 1])))));
    assert_eq!(out, vec![Action::Send(Request::ResolveTopics { ids: vec![topic_id()] })]);
    let out = s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
    assert_eq!(
        out,
        vec![Action::Send(Request::FetchOffsets {
            group_id: GROUP.into(),
            member_id: MEMBER.into(),
            member_epoch: 1,
            partitions: vec![tp(0), tp(1)],
        })]
    );
    let out = s.on(Event::OffsetsFetched(Ok([(tp(0), 42), (tp(1), -1)].into())));
    assert_eq!(out[0], Action::Assign { partitions: vec![(tp(0), Some(42)), (tp(1), None)] });
    // The acknowledgement goes at once, not after the interval.
    let h = one_heartbeat(&out);
    assert_eq!((h.member_epoch, owned_ack(h)), (1, Some(vec![0, 1])));
}

#[test]
fn known_topic_ids_are_not_resolved_again() {
    let mut s = Sim::owning(&[0]);
    s.advance(HB_MS as u64);
    let out = s.on(Event::Heartbeat(Ok(answer(3, Some(&[0, 1])))));
    assert!(
        matches!(out.as_slice(), [Action::Send(Request::FetchOffsets { partitions, member_epoch: 3, .. })] if partitions == &vec![tp(1)])
    );
}

#[test]
fn an_unknown_topic_id_is_asked_for_again_later() {
    let (mut s, _) = Sim::new(config());
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    s.on(Event::Heartbeat(Ok(answer(1, Some(&[0])))));
    let out = s.on(Event::TopicsResolved(Ok(BTreeMap::new())));
    assert!(out.is_empty());
    assert_eq!(s.advance(100), vec![Action::Send(Request::ResolveTopics { ids: vec![topic_id()] })]);
}

#[test]
fn a_shrinking_target_revokes_commits_then_acknowledges() {
    let mut s = Sim::owning(&[0, 1, 2]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 10 });
    s.on(Event::Consumed { tp: tp(2), next_offset: 7 });
    s.advance(HB_MS as u64);
    let out = s.on(Event::Heartbeat(Ok(answer(3, Some(&[0])))));
    assert_eq!(revoked(&out), Some(vec![tp(1), tp(2)]));
    assert!(commits(&out).is_empty(), "the consumer reports positions before the commit");
    s.on(Event::Consumed { tp: tp(2), next_offset: 9 });
    let out = s.on(Event::Revoked);
    assert_eq!(commits(&out), vec![(3, [(tp(2), 9)].into(), None)], "only the revoked partitions");
    assert!(heartbeats(&out).is_empty(), "acknowledged after the commit");
    let out = s.on(Event::Committed { offsets: [(tp(2), 9)].into(), result: Ok(vec![]) });
    let h = one_heartbeat(&out);
    assert_eq!(owned_ack(h), Some(vec![0]));
    assert_eq!(s.m.owned().iter().cloned().collect::<Vec<_>>(), vec![tp(0)]);
}

#[test]
fn revocation_without_auto_commit_does_not_commit() {
    let (mut s, _) = Sim::new(GroupConfig { enable_auto_commit: false, ..config() });
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    s.on(Event::Heartbeat(Ok(answer(1, Some(&[0, 1])))));
    s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
    s.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    s.on(Event::Heartbeat(Ok(answer(1, None))));
    s.on(Event::Consumed { tp: tp(1), next_offset: 5 });
    s.advance(HB_MS as u64);
    s.on(Event::Heartbeat(Ok(answer(2, Some(&[0])))));
    let out = s.on(Event::Revoked);
    assert!(commits(&out).is_empty());
    assert_eq!(owned_ack(one_heartbeat(&out)), Some(vec![0]));
}

#[test]
fn revoke_and_assign_in_one_target_revokes_first() {
    let mut s = Sim::owning(&[0, 1]);
    s.advance(HB_MS as u64);
    let out = s.on(Event::Heartbeat(Ok(answer(3, Some(&[1, 2])))));
    assert_eq!(revoked(&out), Some(vec![tp(0)]));
    let out = s.on(Event::Revoked);
    assert!(
        matches!(&out[0], Action::Send(Request::FetchOffsets { partitions, .. }) if partitions == &vec![tp(2)]),
        "{out:?}"
    );
    assert_eq!(owned_ack(one_heartbeat(&out)), Some(vec![1]), "the revocation is acknowledged at once");
    s.on(Event::Heartbeat(Ok(answer(3, None))));
    let out = s.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    assert_eq!(out[0], Action::Assign { partitions: vec![(tp(2), None)] });
    assert_eq!(owned_ack(one_heartbeat(&out)), Some(vec![1, 2]));
}

#[test]
fn heartbeats_go_on_while_the_user_holds_a_revocation() {
    let mut s = Sim::owning(&[0, 1]);
    s.advance(HB_MS as u64);
    s.on(Event::Heartbeat(Ok(answer(3, Some(&[0])))));
    let out = s.advance(HB_MS as u64);
    let h = one_heartbeat(&out);
    assert_eq!(h.member_epoch, 3);
    assert_eq!(h.topic_partitions, None, "still owns 0 and 1, as last acknowledged");
}

// ---- fencing ------------------------------------------------------------------------

#[test]
fn fenced_or_unknown_member_loses_partitions_and_rejoins_at_epoch_0_with_the_same_id() {
    for e in [E::FencedMemberEpoch, E::UnknownMemberId] {
        let mut s = Sim::owning(&[0, 1]);
        s.on(Event::Consumed { tp: tp(0), next_offset: 10 });
        s.advance(HB_MS as u64);
        let out = s.on(Event::Heartbeat(Err(Failure::Broker(e))));
        assert_eq!(revoked(&out), Some(vec![tp(0), tp(1)]), "{e:?}");
        let h = one_heartbeat(&out);
        assert_eq!((h.member_id.as_str(), h.member_epoch), (MEMBER, JOIN_EPOCH), "{e:?}: no backoff");
        assert_eq!(owned_ack(h), Some(vec![]), "{e:?}: full");
        assert!(commits(&out).is_empty());
        let out = s.on(Event::Revoked);
        assert!(commits(&out).is_empty(), "{e:?}: lost, not committed");
        // The rejoin's answer brings a new assignment.
        let out = s.on(Event::Heartbeat(Ok(answer(5, Some(&[1])))));
        assert!(matches!(out.as_slice(), [Action::Send(Request::FetchOffsets { member_epoch: 5, .. })]), "{out:?}");
    }
}

#[test]
fn fenced_while_offsets_are_fetched_assigns_nothing() {
    let (mut s, _) = Sim::new(config());
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    s.on(Event::Heartbeat(Ok(answer(1, Some(&[0])))));
    s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
    s.advance(HB_MS as u64);
    let out = s.on(Event::Heartbeat(Err(Failure::Broker(E::FencedMemberEpoch))));
    assert_eq!(one_heartbeat(&out).member_epoch, JOIN_EPOCH);
    let out = s.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    assert!(!out.iter().any(|a| matches!(a, Action::Assign { .. })), "{out:?}");
}

// ---- commits ------------------------------------------------------------------------

#[test]
fn commits_carry_the_member_epoch_and_auto_commit_runs_on_its_interval() {
    let mut s = Sim::owning(&[0]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 3 });
    let out = s.on(Event::CommitRequested { id: 7, offsets: None });
    assert_eq!(commits(&out), vec![(2, [(tp(0), 3)].into(), Some(7))]);
    let out = s.on(Event::CommitAnswered { id: 7, offsets: [(tp(0), 3)].into(), result: Ok(vec![]) });
    assert_eq!(out, vec![Action::AnswerCommit { id: 7, result: Ok(()) }]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 4 });
    let out = s.advance(5_000);
    assert_eq!(commits(&out), vec![(2, [(tp(0), 4)].into(), None)], "at {} ms", s.at_ms());
}

#[test]
fn stale_member_epoch_on_commit_retries_after_the_next_heartbeat() {
    let mut s = Sim::owning(&[0]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 3 });
    s.on(Event::CommitRequested { id: 1, offsets: None });
    let out = s.on(Event::CommitAnswered {
        id: 1,
        offsets: [(tp(0), 3)].into(),
        result: Ok(vec![(tp(0), E::StaleMemberEpoch)]),
    });
    assert_eq!(heartbeats(&out).len(), 1, "the heartbeat is expedited: {out:?}");
    assert!(commits(&out).is_empty() && !out.iter().any(|a| matches!(a, Action::AnswerCommit { .. })));
    let out = s.on(Event::Heartbeat(Ok(answer(4, None))));
    assert_eq!(commits(&out), vec![(4, [(tp(0), 3)].into(), Some(1))]);
}

#[test]
fn commits_are_refused_before_joining_and_for_foreign_partitions() {
    let (mut s, _) = Sim::new(config());
    let out = s.on(Event::CommitRequested { id: 1, offsets: None });
    assert_eq!(out, vec![Action::AnswerCommit { id: 1, result: Err(CommitError::CoordinatorUnavailable) }]);
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    let out = s.on(Event::CommitRequested { id: 2, offsets: None });
    assert!(matches!(out.as_slice(), [Action::AnswerCommit { id: 2, result: Err(CommitError::RebalanceInProgress) }]));
    let mut s = Sim::owning(&[0]);
    let out = s.on(Event::CommitRequested { id: 3, offsets: Some([(tp(5), 1)].into()) });
    assert_eq!(out, vec![Action::AnswerCommit { id: 3, result: Err(CommitError::NotAssigned(vec![tp(5)])) }]);
}

#[test]
fn stale_member_epoch_on_offset_fetch_waits_for_the_next_heartbeat() {
    let (mut s, _) = Sim::new(config());
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    s.on(Event::Heartbeat(Ok(answer(1, Some(&[0])))));
    s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
    let out = s.on(Event::OffsetsFetched(Err(Failure::Broker(E::StaleMemberEpoch))));
    assert_eq!(heartbeats(&out).len(), 1);
    let out = s.on(Event::Heartbeat(Ok(answer(2, None))));
    assert!(matches!(out.as_slice(), [Action::Send(Request::FetchOffsets { member_epoch: 2, .. })]), "{out:?}");
}

// ---- close --------------------------------------------------------------------------

#[test]
fn close_revokes_commits_and_leaves_with_epoch_minus_1() {
    let mut s = Sim::owning(&[0]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 8 });
    let out = s.on(Event::Close);
    assert_eq!(revoked(&out), Some(vec![tp(0)]));
    let out = s.on(Event::Revoked);
    assert_eq!(commits(&out), vec![(2, [(tp(0), 8)].into(), None)]);
    let out = s.on(Event::Committed { offsets: [(tp(0), 8)].into(), result: Ok(vec![]) });
    let h = one_heartbeat(&out);
    assert_eq!((h.member_epoch, h.member_id.as_str()), (LEAVE_EPOCH, MEMBER));
    assert_eq!(s.on(Event::Heartbeat(Ok(answer(LEAVE_EPOCH, None)))), vec![Action::Closed]);
    assert!(s.m.is_closed());
}

#[test]
fn a_static_member_leaves_with_epoch_minus_2() {
    let (mut s, _) = Sim::new(GroupConfig { group_instance_id: Some("i-1".into()), ..config() });
    let out = s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    assert_eq!(one_heartbeat(&out).instance_id.as_deref(), Some("i-1"));
    s.on(Event::Heartbeat(Ok(answer(1, None))));
    let out = s.on(Event::Close);
    let h = one_heartbeat(&out);
    assert_eq!((h.member_epoch, h.instance_id.as_deref()), (STATIC_LEAVE_EPOCH, Some("i-1")));
}

#[test]
fn close_waits_for_the_heartbeat_in_flight_before_leaving() {
    let mut s = Sim::joined();
    s.advance(HB_MS as u64);
    assert!(s.on(Event::Close).is_empty());
    let out = s.on(Event::Heartbeat(Ok(answer(1, None))));
    assert_eq!(one_heartbeat(&out).member_epoch, LEAVE_EPOCH);
    assert_eq!(s.on(Event::Heartbeat(Err(Failure::Transport("gone".into())))), vec![Action::Closed]);
}

#[test]
fn close_before_joining_closes_at_once() {
    let (mut s, _) = Sim::new(config());
    assert_eq!(s.on(Event::Close), vec![Action::Closed]);
}

#[test]
fn the_recovery_table_matches_the_protocol_notes() {
    assert_eq!(recovery(E::FencedMemberEpoch), Recovery::Fenced);
    assert_eq!(recovery(E::UnknownMemberId), Recovery::Fenced);
    assert_eq!(recovery(E::StaleMemberEpoch), Recovery::AfterHeartbeat);
    assert_eq!(recovery(E::UnreleasedInstanceId), Recovery::Fatal, "as Java and librdkafka");
    for e in [E::CoordinatorNotAvailable, E::NotCoordinator, E::CoordinatorLoadInProgress] {
        assert_eq!(recovery(e), Recovery::Rediscover, "{e:?}");
    }
    for e in [E::FencedInstanceId, E::GroupMaxSizeReached, E::UnsupportedAssignor, E::InvalidRequest] {
        assert_eq!(recovery(e), Recovery::Fatal, "{e:?}");
    }
}

#[test]
fn fenced_while_waiting_to_leave_closes_without_the_leave_heartbeat() {
    let mut s = Sim::joined();
    s.advance(HB_MS as u64);
    assert!(s.on(Event::Close).is_empty());
    let out = s.on(Event::Heartbeat(Err(Failure::Broker(E::FencedMemberEpoch))));
    assert_eq!(out, vec![Action::Closed]);
}

/// The driver sleeps until `next_deadline`: a deadline in the past that the
/// member does not act on would spin it.
fn assert_no_stale_deadline(s: &Sim) {
    assert!(s.m.next_deadline().is_none_or(|d| d > s.now), "stale deadline at {} ms", s.at_ms());
}

#[test]
fn no_deadline_in_the_past_while_the_coordinator_is_looked_for_or_while_leaving() {
    let mut s = Sim::owning(&[0]);
    s.on(Event::Consumed { tp: tp(0), next_offset: 3 });
    s.advance(HB_MS as u64);
    s.on(Event::Heartbeat(Err(Failure::Broker(E::NotCoordinator))));
    s.advance(100); // FindCoordinator in flight, no answer yet
    s.advance(20_000);
    assert_no_stale_deadline(&s);
    s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    s.on(Event::Heartbeat(Ok(answer(2, None))));
    s.on(Event::Close);
    s.on(Event::Revoked);
    s.on(Event::Committed { offsets: [(tp(0), 3)].into(), result: Ok(vec![]) });
    s.advance(20_000); // the leave heartbeat unanswered
    assert_no_stale_deadline(&s);
}

// ---- random runs ----------------------------------------------------------------------

mod random {
    use super::*;
    use proptest::prelude::*;

    /// One step of a random run: which outstanding request to answer and how, a
    /// step of the clock, or something the consumer does.
    #[derive(Debug, Clone)]
    enum Step {
        Answer {
            pick: usize,
            ok: bool,
            assignment: Option<Vec<i32>>,
        },
        Advance(u64),
        Consumed(i32, i64),
        Revoked,
        Polled,
        Commit,
        Close,
        /// After the random part: answer what is pending (successfully), answer
        /// revocations, let time pass, so a member that can finish does.
        Drain,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0usize..4, prop::bool::weighted(0.8), prop::option::of(prop::collection::vec(0i32..4, 0..4)))
                .prop_map(|(pick, ok, assignment)| Step::Answer { pick, ok, assignment }),
            3 => (1u64..6_000).prop_map(Step::Advance),
            2 => (0i32..4, 0i64..100).prop_map(|(p, o)| Step::Consumed(p, o)),
            2 => Just(Step::Revoked),
            2 => Just(Step::Polled),
            1 => Just(Step::Commit),
            1 => Just(Step::Close),
        ]
    }

    const FAILURES: [E; 5] =
        [E::FencedMemberEpoch, E::NotCoordinator, E::UnstableOffsetCommit, E::StaleMemberEpoch, E::UnknownMemberId];

    proptest! {
        /// Whatever the broker answers and whenever: one heartbeat in flight at
        /// most, no deadline in the past, partitions assigned only when not
        /// owned and revoked only when owned, commits only of owned partitions.
        #[test]
        fn invariants_hold_over_random_runs(
            mut steps in prop::collection::vec(step(), 1..120),
            static_member in any::<bool>(),
            auto_commit in any::<bool>(),
        ) {
            let close_asked = steps.iter().any(|st| matches!(st, Step::Close));
            steps.extend(std::iter::repeat_n(Step::Drain, 300));
            let mut asked: BTreeSet<u64> = BTreeSet::new();
            let mut answered: BTreeSet<u64> = BTreeSet::new();
            let (mut s, first) = Sim::new(GroupConfig {
                group_instance_id: static_member.then(|| "i-1".to_string()),
                enable_auto_commit: auto_commit,
                ..config()
            });
            let mut pending: Vec<Request> = Vec::new();
            let mut owned: BTreeSet<TopicPartition> = BTreeSet::new();
            // Revocations the consumer has not answered yet: their partitions may
            // still be committed (the last commit before they go).
            let mut revoking: std::collections::VecDeque<Vec<TopicPartition>> = Default::default();
            let mut epoch = 0;
            let mut actions = first;
            let mut answered_revocation = false;
            for (i, st) in steps.into_iter().enumerate() {
                for a in std::mem::take(&mut actions) {
                    match a {
                        Action::Send(r) => {
                            if let Request::Commit { offsets, .. } = &r {
                                // The member holds a revoked partition until its last commit is answered.
                                let held = |tp: &TopicPartition| {
                                    owned.contains(tp) || s.m.owned().contains(tp) || revoking.iter().flatten().any(|r| r == tp)
                                };
                                prop_assert!(offsets.keys().all(held), "commit of {offsets:?}, owning {owned:?}");
                            }
                            if let Request::Heartbeat(h) = &r {
                                prop_assert!(!pending.iter().any(|p| matches!(p, Request::Heartbeat(_))), "two heartbeats in flight");
                                epoch = h.member_epoch;
                            }
                            pending.push(r);
                        }
                        Action::Assign { partitions } => {
                            for (tp, _) in partitions {
                                prop_assert!(owned.insert(tp.clone()), "{tp} assigned twice");
                            }
                        }
                        Action::Revoke { partitions } => {
                            for tp in &partitions {
                                prop_assert!(owned.remove(tp), "{tp} revoked but not owned");
                            }
                            revoking.push_back(partitions);
                        }
                        Action::AnswerCommit { id, .. } => {
                            prop_assert!(answered.insert(id), "commit {id} answered twice");
                        }
                        Action::Fatal(_) | Action::Closed => {}
                    }
                }
                // Its last commit has been sent (above): now the partitions are gone.
                if std::mem::take(&mut answered_revocation) {
                    revoking.pop_front();
                }
                prop_assert!(s.m.next_deadline().is_none_or(|d| d > s.now), "stale deadline after step {i}");
                if s.m.is_closed() {
                    break;
                }
                let event = match st {
                    Step::Advance(ms) => {
                        s.now += Duration::from_millis(ms);
                        Event::Tick
                    }
                    Step::Consumed(p, o) => Event::Consumed { tp: tp(p), next_offset: o },
                    Step::Revoked if !revoking.is_empty() => {
                        answered_revocation = true;
                        Event::Revoked
                    }
                    Step::Revoked => Event::Tick,
                    Step::Polled => Event::Polled,
                    Step::Commit => {
                        asked.insert(i as u64);
                        Event::CommitRequested { id: i as u64, offsets: None }
                    }
                    Step::Drain if !pending.is_empty() => match pending.remove(0) {
                        Request::FindCoordinator { .. } => Event::CoordinatorFound(Ok(COORDINATOR)),
                        Request::Heartbeat(h) => Event::Heartbeat(Ok(HeartbeatAnswer {
                            member_epoch: if h.member_epoch < 0 { h.member_epoch } else { epoch.max(0) + 1 },
                            ..answer(0, None)
                        })),
                        Request::ResolveTopics { .. } => {
                            Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into()))
                        }
                        Request::FetchOffsets { .. } => Event::OffsetsFetched(Ok(BTreeMap::new())),
                        Request::Commit { offsets, reply: None, .. } => Event::Committed { offsets, result: Ok(vec![]) },
                        Request::Commit { offsets, reply: Some(id), .. } => {
                            Event::CommitAnswered { id, offsets, result: Ok(vec![]) }
                        }
                    },
                    Step::Drain if !revoking.is_empty() => {
                        answered_revocation = true;
                        Event::Revoked
                    }
                    // The user goes on polling while the member settles.
                    Step::Drain => {
                        s.now += Duration::from_millis(6_000);
                        Event::Polled
                    }
                    Step::Close => Event::Close,
                    Step::Answer { .. } if pending.is_empty() => Event::Tick,
                    Step::Answer { pick, ok, assignment } => {
                        let r = pending.remove(pick % pending.len());
                        let fail = Failure::Broker(FAILURES[pick % FAILURES.len()]);
                        match r {
                            Request::FindCoordinator { .. } => {
                                Event::CoordinatorFound(if ok { Ok(COORDINATOR) } else { Err(Failure::Transport("down".into())) })
                            }
                            Request::Heartbeat(h) => Event::Heartbeat(if ok {
                                Ok(HeartbeatAnswer {
                                    member_epoch: if h.member_epoch < 0 { h.member_epoch } else { epoch.max(0) + 1 },
                                    assignment: assignment.map(|ps| [(topic_id(), ps)].into()),
                                    ..answer(0, None)
                                })
                            } else {
                                Err(fail)
                            }),
                            Request::ResolveTopics { .. } => Event::TopicsResolved(if ok || pick % 2 == 0 {
                                Ok([(topic_id(), TOPIC.to_string())].into())
                            } else {
                                Err(Failure::Transport("gone".into()))
                            }),
                            Request::FetchOffsets { .. } => {
                                Event::OffsetsFetched(if ok { Ok(BTreeMap::new()) } else { Err(fail) })
                            }
                            Request::Commit { offsets, reply: None, .. } => Event::Committed {
                                result: if ok { Ok(vec![]) } else { Ok(offsets.keys().map(|tp| (tp.clone(), E::StaleMemberEpoch)).collect()) },
                                offsets,
                            },
                            Request::Commit { offsets, reply: Some(id), .. } => Event::CommitAnswered {
                                id,
                                result: if ok { Ok(vec![]) } else { Err(fail) },
                                offsets,
                            },
                        }
                    }
                };
                actions = s.m.handle(event, s.now);
            }
            // Liveness: with a broker that answers, nothing waits for ever.
            if !s.m.is_closed() {
                let unanswered: Vec<_> = asked.difference(&answered).collect();
                prop_assert!(unanswered.is_empty(), "commits never answered: {unanswered:?}");
                prop_assert!(!close_asked, "close asked but the member never closed");
            }
        }
    }
}

#[test]
fn fenced_while_the_user_holds_a_revocation_commits_nothing_even_after_rejoining() {
    let mut s = Sim::owning(&[0, 1]);
    s.on(Event::Consumed { tp: tp(1), next_offset: 4 });
    s.advance(HB_MS as u64);
    s.on(Event::Heartbeat(Ok(answer(3, Some(&[0])))));
    s.advance(HB_MS as u64);
    let out = s.on(Event::Heartbeat(Err(Failure::Broker(E::FencedMemberEpoch))));
    assert_eq!(one_heartbeat(&out).member_epoch, JOIN_EPOCH);
    s.on(Event::Heartbeat(Ok(answer(5, None))));
    let out = s.on(Event::CommitRequested { id: 9, offsets: None });
    assert_eq!(out, vec![Action::AnswerCommit { id: 9, result: Err(CommitError::RebalanceInProgress) }]);
    let out = s.on(Event::Revoked);
    assert!(commits(&out).is_empty(), "partition 1 may be someone else's now: {out:?}");
    assert_eq!(revoked(&out), Some(vec![tp(0)]), "then the rest is lost too");
}

// ---- max.poll.interval.ms, client.rack ------------------------------------------------

fn poll_interval_config() -> GroupConfig {
    GroupConfig { rebalance_timeout: Duration::from_secs(12), ..config() }
}

#[test]
fn no_poll_within_max_poll_interval_leaves_loses_the_partitions_and_rejoins_at_the_next_poll() {
    let mut s = Sim::owning_with(poll_interval_config(), &[0, 1]);
    // Heartbeats every 5 s; a poll at 6 s restarts the 12 s timer.
    for (at, poll) in [(5_000, false), (6_000, true), (10_000, false), (15_000, false)] {
        let out = s.advance(at - s.at_ms() as u64);
        if poll {
            s.on(Event::Polled);
        } else {
            one_heartbeat(&out);
            s.on(Event::Heartbeat(Ok(answer(2, None))));
        }
    }
    s.on(Event::Consumed { tp: tp(0), next_offset: 9 });
    assert_eq!(s.m.next_deadline(), Some(s.t0 + Duration::from_secs(18)), "6 s + max.poll.interval.ms");
    let out = s.advance(2_999);
    assert_eq!(revoked(&out), None, "{out:?}");
    let out = s.advance(1);
    assert_eq!(revoked(&out), Some(vec![tp(0), tp(1)]), "the partitions are lost: {out:?}");
    assert!(commits(&out).is_empty(), "lost, not committed: {out:?}");
    assert_eq!(one_heartbeat(&out).member_epoch, LEAVE_EPOCH);
    let out = s.on(Event::CommitRequested { id: 7, offsets: None });
    assert_eq!(out, vec![Action::AnswerCommit { id: 7, result: Err(CommitError::RebalanceInProgress) }]);
    assert!(commits(&s.on(Event::Revoked)).is_empty());
    assert!(s.on(Event::Heartbeat(Ok(answer(LEAVE_EPOCH, None)))).is_empty());
    // Out of the group until the user polls: no heartbeats, no timers.
    assert!(heartbeats(&s.advance(60_000)).is_empty());
    assert_eq!(s.m.next_deadline(), None);
    let out = s.on(Event::Polled);
    let h = one_heartbeat(&out);
    assert_eq!((h.member_id.as_str(), h.member_epoch), (MEMBER, JOIN_EPOCH), "the same member id, at epoch 0");
    assert_eq!(owned_ack(h), Some(vec![]));
    assert_eq!(h.subscribed_topic_names, Some(vec![TOPIC.to_string()]), "a full heartbeat");
}

#[test]
fn the_poll_timer_leave_waits_for_the_heartbeat_in_flight_and_ignores_its_answer() {
    let mut s = Sim::owning_with(poll_interval_config(), &[0]);
    one_heartbeat(&s.advance(5_000));
    s.on(Event::Heartbeat(Ok(answer(2, None))));
    one_heartbeat(&s.advance(5_000)); // in flight from 10 s
    let out = s.advance(2_000);
    assert_eq!(revoked(&out), Some(vec![tp(0)]));
    assert!(heartbeats(&out).is_empty(), "one heartbeat in flight at most: {out:?}");
    let out = s.on(Event::Heartbeat(Ok(answer(3, Some(&[0, 1])))));
    assert_eq!(one_heartbeat(&out).member_epoch, LEAVE_EPOCH);
    let acted = out.iter().any(|a| matches!(a, Action::Send(Request::FetchOffsets { .. }) | Action::Assign { .. }));
    assert!(!acted, "a stale member takes no assignment: {out:?}");
}

#[test]
fn close_while_stale_closes_once_the_leave_is_answered() {
    let mut s = Sim::owning_with(poll_interval_config(), &[0]);
    let out = s.advance(12_000);
    assert_eq!(one_heartbeat(&out).member_epoch, LEAVE_EPOCH, "the leave, not the heartbeat also due");
    s.on(Event::Revoked);
    assert!(s.on(Event::Close).is_empty(), "the leave is in flight");
    assert_eq!(s.on(Event::Heartbeat(Ok(answer(LEAVE_EPOCH, None)))), vec![Action::Closed]);
}

#[test]
fn client_rack_goes_in_full_heartbeats_as_the_rack_id() {
    let (mut s, _) = Sim::new(GroupConfig { client_rack: Some("rack-a".into()), ..config() });
    let out = s.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    assert_eq!(one_heartbeat(&out).rack_id.as_deref(), Some("rack-a"));
    s.on(Event::Heartbeat(Ok(answer(1, Some(&[0])))));
    s.on(Event::TopicsResolved(Ok([(topic_id(), TOPIC.to_string())].into())));
    s.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    let out = s.on(Event::Heartbeat(Ok(answer(2, None))));
    assert!(heartbeats(&out).is_empty());
    let out = s.advance(HB_MS as u64);
    assert_eq!(one_heartbeat(&out).rack_id, None, "unchanged: null in a partial heartbeat");
}
