//! Unit tests of the group member state machine: events in, actions out, no sockets.
//!
//! Time is virtual: every test owns a [`Sim`] whose clock is a base `Instant` plus
//! an offset in milliseconds, moved forward explicitly; nothing sleeps. Backoff
//! uses jitter 0.5 inside the machine, so with the default policy the first retry
//! comes exactly 100 ms after a failure, the second 200 ms after the next one.
use super::*;

use std::time::Duration;

use kafka_protocol::error::ResponseError as E;

// ---- fixtures -------------------------------------------------------------------------

const GROUP: &str = "cafe-group-clean";
const TOPIC: &str = "demo";
const MEMBER: &str = "m-1";
const GEN: i32 = 1;
const COORDINATOR: i32 = 1;

/// `heartbeat.interval.ms`, `auto.commit.interval.ms` and the first backoff, in ms.
const HB_MS: u64 = 3_000;
const COMMIT_MS: u64 = 5_000;
const BACKOFF_MS: u64 = 100;

/// The defaults, with metadata refreshes beyond the test horizon (tests of
/// refreshes set their own `metadata_max_age`).
fn base_config() -> GroupConfig {
    GroupConfig {
        group_id: GROUP.into(),
        topics: vec![TOPIC.into()],
        metadata_max_age: Duration::from_millis(100 * HOUR_MS),
        ..GroupConfig::default()
    }
}

fn config() -> GroupConfig {
    base_config()
}

fn manual_commit_config() -> GroupConfig {
    GroupConfig { enable_auto_commit: false, ..base_config() }
}

fn static_config() -> GroupConfig {
    GroupConfig { group_instance_id: Some("instance-a".into()), ..base_config() }
}

/// Heartbeat interval far beyond the test horizon, so ticks only concern commits.
const HOUR_MS: u64 = 3_600_000;

fn without_heartbeats(config: GroupConfig) -> GroupConfig {
    GroupConfig { heartbeat_interval: Duration::from_millis(HOUR_MS), ..config }
}

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, p)
}

fn offsets(entries: &[(i32, i64)]) -> BTreeMap<TopicPartition, i64> {
    entries.iter().map(|&(p, o)| (tp(p), o)).collect()
}

fn broker(e: E) -> Failure {
    Failure::Broker(e)
}

fn subscription_bytes(topics: &[&str]) -> Bytes {
    Subscription::new(topics.iter().copied()).encode(3).expect("subscription encodes")
}

/// ConsumerProtocolAssignment bytes giving `partitions` of each topic.
fn assignment_bytes(partitions: &[(&str, &[i32])]) -> Bytes {
    Assignment { partitions: partitions.iter().map(|(t, ps)| (t.to_string(), ps.to_vec())).collect(), user_data: None }
        .encode(3)
        .expect("assignment encodes")
}

fn follower_join(generation_id: i32, member_id: &str) -> JoinResult {
    JoinResult {
        generation_id,
        member_id: member_id.into(),
        leader: "m-0-leader".into(),
        protocol_name: Some("range".into()),
        members: Vec::new(),
    }
}

fn committed_ok(entries: &[(i32, i64)]) -> Event {
    Event::Committed { offsets: offsets(entries), result: Ok(Vec::new()) }
}

fn consumed(p: i32, next_offset: i64) -> Event {
    Event::Consumed { tp: tp(p), next_offset }
}

// ---- action matchers --------------------------------------------------------------------

/// The one action in `actions`.
#[track_caller]
fn single(actions: Vec<Action>) -> Action {
    assert_eq!(actions.len(), 1, "expected exactly one action, got {actions:?}");
    actions.into_iter().next().expect("one action")
}

/// Asserts a single Join of [`GROUP`] for the range assignor subscribing to [`TOPIC`]; its member id.
#[track_caller]
fn expect_join(actions: Vec<Action>) -> String {
    match single(actions) {
        Action::Send(Request::Join { group_id, member_id, protocols, .. }) => {
            assert_eq!(group_id, GROUP);
            assert_eq!(protocols.len(), 1, "one protocol per configured assignor: {protocols:?}");
            assert_eq!(protocols[0].0, "range");
            let sub = Subscription::decode(&protocols[0].1).expect("JoinGroup metadata decodes");
            assert_eq!(sub.topics, vec![TOPIC.to_string()]);
            member_id
        }
        other => panic!("expected Join, got {other:?}"),
    }
}

/// Asserts a single Commit; its generation, member id and offsets.
#[track_caller]
fn expect_commit(actions: Vec<Action>) -> (i32, String, BTreeMap<TopicPartition, i64>) {
    match single(actions) {
        Action::Send(Request::Commit { generation_id, member_id, offsets, reply: None, .. }) => {
            (generation_id, member_id, offsets)
        }
        other => panic!("expected Commit, got {other:?}"),
    }
}

#[track_caller]
fn expect_revoke(actions: Vec<Action>) -> Vec<TopicPartition> {
    match single(actions) {
        Action::Revoke { partitions } => partitions,
        other => panic!("expected Revoke, got {other:?}"),
    }
}

#[track_caller]
fn expect_fatal(actions: Vec<Action>) -> GroupError {
    match single(actions) {
        Action::Fatal(e) => e,
        other => panic!("expected Fatal, got {other:?}"),
    }
}

#[track_caller]
fn assert_no_commit(actions: &[Action]) {
    assert!(
        !actions.iter().any(|a| matches!(a, Action::Send(Request::Commit { .. }))),
        "unexpected Commit in {actions:?}"
    );
}

/// Asserts a single Commit the user asked for (`reply: Some(id)`); its generation and offsets.
#[track_caller]
fn expect_user_commit(actions: Vec<Action>, id: u64) -> (i32, BTreeMap<TopicPartition, i64>) {
    match single(actions) {
        Action::Send(Request::Commit { generation_id, member_id, offsets, reply, .. }) => {
            assert_eq!(reply, Some(id), "the commit carries the request's id");
            assert_eq!(member_id, MEMBER);
            (generation_id, offsets)
        }
        other => panic!("expected the user's Commit, got {other:?}"),
    }
}

/// Asserts a single answer to the user's commit `id`; its result.
#[track_caller]
fn expect_answer(actions: Vec<Action>, id: u64) -> Result<(), CommitError> {
    match single(actions) {
        Action::AnswerCommit { id: got, result } => {
            assert_eq!(got, id, "the answer names the request");
            result
        }
        other => panic!("expected AnswerCommit, got {other:?}"),
    }
}

fn commit_requested(id: u64, entries: Option<&[(i32, i64)]>) -> Event {
    Event::CommitRequested { id, offsets: entries.map(offsets) }
}

fn commit_answered(id: u64, entries: &[(i32, i64)], result: Result<Vec<(TopicPartition, E)>, Failure>) -> Event {
    Event::CommitAnswered { id, offsets: offsets(entries), result }
}

/// The Heartbeat of a dynamic [`MEMBER`] of [`GROUP`] with the default session timeout.
fn heartbeat(generation_id: i32) -> Action {
    Action::Send(Request::Heartbeat {
        group_id: GROUP.into(),
        generation_id,
        member_id: MEMBER.into(),
        group_instance_id: None,
        session_timeout: Duration::from_millis(45_000),
    })
}

fn find_coordinator() -> Action {
    Action::Send(Request::FindCoordinator { group_id: GROUP.into() })
}

fn fetch_offsets(partitions: Vec<TopicPartition>) -> Action {
    Action::Send(Request::FetchOffsets { group_id: GROUP.into(), partitions })
}

fn fetch_metadata(topics: &[&str]) -> Action {
    Action::Send(Request::FetchMetadata { topics: topics.iter().map(|t| t.to_string()).collect() })
}

fn refresh_topics(topics: &[&str]) -> Action {
    Action::Send(Request::RefreshTopics { topics: topics.iter().map(|t| t.to_string()).collect() })
}

/// [`MEMBER`]'s LeaveGroup.
fn leave() -> Action {
    Action::Send(Request::Leave { group_id: GROUP.into(), member_id: MEMBER.into() })
}

/// The auto-commit (no reply) of a dynamic [`MEMBER`] of [`GROUP`].
fn auto_commit(generation_id: i32, offsets: BTreeMap<TopicPartition, i64>) -> Action {
    Action::Send(Request::Commit {
        group_id: GROUP.into(),
        generation_id,
        member_id: MEMBER.into(),
        group_instance_id: None,
        offsets,
        reply: None,
    })
}

// ---- the simulator: a member plus a virtual clock ------------------------------------------

struct Sim {
    member: GroupMember,
    base: Instant,
    now: Instant,
}

impl Sim {
    fn new(config: GroupConfig) -> Self {
        let base = Instant::now();
        Self { member: GroupMember::new(config), base, now: base }
    }

    /// Moves the clock to `ms` after the base (never backwards).
    fn at(&mut self, ms: u64) -> &mut Self {
        let t = self.base + Duration::from_millis(ms);
        assert!(t >= self.now, "virtual time must not go backwards");
        self.now = t;
        self
    }

    fn on(&mut self, event: Event) -> Vec<Action> {
        self.member.handle(event, self.now)
    }

    fn tick(&mut self) -> Vec<Action> {
        self.on(Event::Tick)
    }

    fn tick_at(&mut self, ms: u64) -> Vec<Action> {
        self.at(ms).tick()
    }

    /// `next_deadline()` as milliseconds after the base.
    fn deadline_ms(&self) -> Option<u64> {
        self.member.next_deadline().map(|d| (d - self.base).as_millis() as u64)
    }

    /// start -> FindCoordinator -> CoordinatorFound -> Join{""} (the first join).
    fn to_first_join(config: GroupConfig) -> Self {
        let mut sim = Self::new(config);
        assert_eq!(sim.member.start(), vec![find_coordinator()]);
        let join = sim.on(Event::CoordinatorFound(Ok(COORDINATOR)));
        assert_eq!(expect_join(join), "", "KIP-394: the first JoinGroup carries an empty member id");
        sim
    }

    /// ... -> MEMBER_ID_REQUIRED -> Join{"m-1"}.
    fn to_second_join(config: GroupConfig) -> Self {
        let mut sim = Self::to_first_join(config);
        let join = sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into()))));
        assert_eq!(expect_join(join), MEMBER, "KIP-394: rejoin with the member id the broker gave");
        sim
    }

    /// ... -> Joined as follower -> Sync (no assignments).
    fn to_syncing(config: GroupConfig) -> Self {
        let (group_instance_id, rebalance_timeout) = (config.group_instance_id.clone(), config.rebalance_timeout);
        let mut sim = Self::to_second_join(config);
        let sync = sim.on(Event::Joined(Ok(follower_join(GEN, MEMBER))));
        assert_eq!(
            single(sync),
            Action::Send(Request::Sync {
                group_id: GROUP.into(),
                generation_id: GEN,
                member_id: MEMBER.into(),
                group_instance_id,
                protocol_name: "range".into(),
                assignments: Vec::new(),
                rebalance_timeout,
            }),
            "a follower sends no assignments"
        );
        sim
    }

    /// ... -> Synced(partitions of [`TOPIC`]) -> FetchOffsets.
    fn to_fetching_offsets(config: GroupConfig, partitions: &[i32]) -> Self {
        let mut sim = Self::to_syncing(config);
        let fetch = sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, partitions)]))));
        let expected: Vec<TopicPartition> = partitions.iter().map(|&p| tp(p)).collect();
        assert_eq!(single(fetch), fetch_offsets(expected));
        sim
    }

    /// The whole dance at t=0: a Stable follower of generation 1 owning `partitions`
    /// of [`TOPIC`], with `committed` offsets from OffsetFetch. First heartbeat is due
    /// at [`HB_MS`], first auto-commit at [`COMMIT_MS`].
    fn stable(config: GroupConfig, partitions: &[i32], committed: &[(i32, i64)]) -> Self {
        let mut sim = Self::to_fetching_offsets(config, partitions);
        let assign = sim.on(Event::OffsetsFetched(Ok(offsets(committed))));
        let expected = partitions
            .iter()
            .map(|&p| (tp(p), committed.iter().find(|(q, o)| *q == p && *o >= 0).map(|(_, o)| *o)))
            .collect();
        assert_eq!(single(assign), Action::Assign { partitions: expected });
        assert!(sim.member.is_stable());
        sim
    }
}

// ---- the dance: KIP-394, follower and leader paths ---------------------------------------------

#[test]
fn start_looks_for_the_coordinator_first() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.member.start(), vec![find_coordinator()]);
    assert_eq!(sim.member.coordinator(), None);
    assert!(!sim.member.is_stable());
    // Nothing is due until an answer arrives.
    assert_eq!(sim.tick_at(60_000), Vec::<Action>::new());
}

#[test]
fn kip394_first_join_is_anonymous_then_rejoins_with_the_given_member_id() {
    let sim = Sim::to_second_join(config());
    assert_eq!(sim.member.coordinator(), Some(COORDINATOR));
    assert_eq!(sim.member.member_id(), MEMBER);
    assert_eq!(sim.member.generation_id(), -1, "no generation before JoinGroup succeeds");
}

#[test]
fn follower_reaches_stable_with_its_assignment() {
    let sim = Sim::stable(config(), &[0, 2], &[(0, 7), (2, 9)]);
    let m = &sim.member;
    assert_eq!(m.member_id(), MEMBER);
    assert_eq!(m.generation_id(), GEN);
    assert_eq!(m.coordinator(), Some(COORDINATOR));
    assert_eq!(m.assigned().iter().cloned().collect::<Vec<_>>(), vec![tp(0), tp(2)]);
    assert_eq!(m.committed(), &offsets(&[(0, 7), (2, 9)]));
    assert!(!m.is_closed());
}

#[test]
fn empty_sync_assignment_means_no_partitions() {
    // GROUP-PROTOCOL: "Empty bytes = nothing" for a member given no partitions.
    let mut sim = Sim::to_syncing(config());
    assert_eq!(single(sim.on(Event::Synced(Ok(Bytes::new())))), fetch_offsets(vec![]));
    assert_eq!(single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new())))), Action::Assign { partitions: vec![] });
    assert!(sim.member.is_stable());
    assert!(sim.member.assigned().is_empty());
}

#[test]
fn assigned_topics_the_member_did_not_subscribe_to_are_dropped() {
    let mut sim = Sim::to_syncing(config());
    let bytes = assignment_bytes(&[(TOPIC, &[1]), ("not-subscribed", &[0, 1])]);
    assert_eq!(single(sim.on(Event::Synced(Ok(bytes)))), fetch_offsets(vec![tp(1)]));
}

#[test]
fn unreadable_assignment_is_taken_as_empty_not_a_panic() {
    let mut sim = Sim::to_syncing(config());
    let garbage = Bytes::from_static(&[0, 3, 0xff, 0xff, 0xff]);
    assert_eq!(single(sim.on(Event::Synced(Ok(garbage)))), fetch_offsets(vec![]));
}

/// Drives a fresh member to the leader's JoinGroup response with three members:
/// m-1 (us) on `demo`, m-2 on `demo` + `other`, m-3 on `other`.
fn leader_joined() -> (Sim, Vec<Action>) {
    let mut sim = Sim::to_second_join(config());
    let members = vec![
        JoinedMember { member_id: "m-3".into(), group_instance_id: None, metadata: subscription_bytes(&["other"]) },
        JoinedMember { member_id: MEMBER.into(), group_instance_id: None, metadata: subscription_bytes(&[TOPIC]) },
        JoinedMember {
            member_id: "m-2".into(),
            group_instance_id: None,
            metadata: subscription_bytes(&[TOPIC, "other"]),
        },
    ];
    let actions = sim.on(Event::Joined(Ok(JoinResult {
        generation_id: 4,
        member_id: MEMBER.into(),
        leader: MEMBER.into(),
        protocol_name: Some("range".into()),
        members,
    })));
    (sim, actions)
}

#[test]
fn leader_fetches_metadata_for_every_subscribed_topic() {
    let (_, actions) = leader_joined();
    // The leader assigns for the union of all members' subscriptions, not just its own.
    assert_eq!(single(actions), fetch_metadata(&["demo", "other"]));
}

#[test]
fn leader_syncs_one_range_assignment_per_member() {
    let (mut sim, _) = leader_joined();
    let counts = BTreeMap::from([("demo".to_string(), 5), ("other".to_string(), 3)]);
    let (generation_id, member_id, protocol_name, assignments) = match single(sim.on(Event::Metadata(Ok(counts)))) {
        Action::Send(Request::Sync { generation_id, member_id, protocol_name, assignments, .. }) => {
            (generation_id, member_id, protocol_name, assignments)
        }
        other => panic!("expected Sync, got {other:?}"),
    };
    assert_eq!((generation_id, member_id.as_str(), protocol_name.as_str()), (4, MEMBER, "range"));

    let decoded: BTreeMap<String, BTreeMap<String, Vec<i32>>> = assignments
        .iter()
        .map(|(m, b)| (m.clone(), Assignment::decode(b).expect("leader's assignment decodes").partitions))
        .collect();
    assert_eq!(assignments.len(), 3, "exactly one assignment per member: {assignments:?}");
    // Range: per topic, subscribers sorted by member id; n / m each, the first n % m one more.
    // demo (5): m-1, m-2 -> [0,1,2], [3,4]. other (3): m-2, m-3 -> [0,1], [2].
    let expected = BTreeMap::from([
        (MEMBER.to_string(), BTreeMap::from([("demo".to_string(), vec![0, 1, 2])])),
        ("m-2".to_string(), BTreeMap::from([("demo".to_string(), vec![3, 4]), ("other".to_string(), vec![0, 1])])),
        ("m-3".to_string(), BTreeMap::from([("other".to_string(), vec![2])])),
    ]);
    assert_eq!(decoded, expected);

    // The coordinator hands the leader its own share back, like any member.
    let own = assignments.iter().find(|(m, _)| m == MEMBER).map(|(_, b)| b.clone()).expect("own assignment");
    assert_eq!(single(sim.on(Event::Synced(Ok(own)))), fetch_offsets(vec![tp(0), tp(1), tp(2)]));
}

#[test]
fn leader_metadata_failure_rejoins_after_backoff() {
    let (mut sim, _) = leader_joined();
    assert_eq!(sim.on(Event::Metadata(Err(Failure::Transport("reset".into())))), vec![]);
    assert_eq!(sim.deadline_ms(), Some(BACKOFF_MS));
    assert_eq!(sim.tick_at(BACKOFF_MS - 1), vec![]);
    assert_eq!(expect_join(sim.tick_at(BACKOFF_MS)), MEMBER);
}

#[test]
fn every_request_carries_what_the_driver_sends() {
    // The driver builds each request from the action alone: ids, generation,
    // instance id and timeouts all come from the member.
    let config = GroupConfig {
        session_timeout: Duration::from_millis(10_000),
        rebalance_timeout: Duration::from_millis(60_000),
        ..static_config()
    };
    let mut sim = Sim::to_first_join(config);
    let instance = Some("instance-a".to_string());
    match single(sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into()))))) {
        Action::Send(Request::Join {
            group_id,
            member_id,
            group_instance_id,
            session_timeout,
            rebalance_timeout,
            protocols,
        }) => {
            assert_eq!((group_id.as_str(), member_id.as_str()), (GROUP, MEMBER));
            assert_eq!(group_instance_id, instance, "KIP-345: a static member names its instance");
            assert_eq!(session_timeout, Duration::from_millis(10_000));
            assert_eq!(rebalance_timeout, Duration::from_millis(60_000));
            assert_eq!(protocols.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>(), ["range"]);
        }
        other => panic!("expected Join, got {other:?}"),
    }
    match single(sim.on(Event::Joined(Ok(follower_join(GEN, MEMBER))))) {
        Action::Send(Request::Sync { group_id, group_instance_id, rebalance_timeout, .. }) => {
            assert_eq!(group_id, GROUP);
            assert_eq!(group_instance_id, instance);
            assert_eq!(rebalance_timeout, Duration::from_millis(60_000));
        }
        other => panic!("expected Sync, got {other:?}"),
    }
    assert_eq!(single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0])]))))), fetch_offsets(vec![tp(0)]));
    sim.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    assert_eq!(
        sim.tick_at(HB_MS),
        vec![Action::Send(Request::Heartbeat {
            group_id: GROUP.into(),
            generation_id: GEN,
            member_id: MEMBER.into(),
            group_instance_id: instance.clone(),
            session_timeout: Duration::from_millis(10_000),
        })]
    );
    sim.on(Event::Heartbeat(Ok(())));
    sim.on(consumed(0, 3));
    let commits: Vec<Action> =
        sim.tick_at(COMMIT_MS).into_iter().filter(|a| matches!(a, Action::Send(Request::Commit { .. }))).collect();
    assert_eq!(
        commits,
        vec![Action::Send(Request::Commit {
            group_id: GROUP.into(),
            generation_id: GEN,
            member_id: MEMBER.into(),
            group_instance_id: instance,
            offsets: offsets(&[(0, 3)]),
            reply: None,
        })]
    );
}

// ---- FindCoordinator and JoinGroup errors -----------------------------------------------------------

#[test]
fn find_coordinator_not_available_retries_only_after_backoff() {
    let mut sim = Sim::new(config());
    sim.member.start();
    // GROUP-PROTOCOL: retry FindCoordinator with backoff on COORDINATOR_NOT_AVAILABLE (15).
    assert_eq!(sim.on(Event::CoordinatorFound(Err(broker(E::CoordinatorNotAvailable)))), vec![]);
    assert_eq!(sim.deadline_ms(), Some(BACKOFF_MS));
    assert_eq!(sim.tick(), vec![], "no immediate resend");
    assert_eq!(sim.tick_at(BACKOFF_MS - 1), vec![]);
    assert_eq!(sim.tick_at(BACKOFF_MS), vec![find_coordinator()]);

    // A second failure backs off exponentially: 200 ms.
    assert_eq!(sim.on(Event::CoordinatorFound(Err(broker(E::CoordinatorNotAvailable)))), vec![]);
    assert_eq!(sim.deadline_ms(), Some(BACKOFF_MS + 2 * BACKOFF_MS));
    assert_eq!(sim.tick_at(BACKOFF_MS + 2 * BACKOFF_MS - 1), vec![]);
    assert_eq!(sim.tick_at(BACKOFF_MS + 2 * BACKOFF_MS), vec![find_coordinator()]);

    // And once found, the first join goes out.
    assert_eq!(expect_join(sim.on(Event::CoordinatorFound(Ok(3)))), "");
    assert_eq!(sim.member.coordinator(), Some(3));
}

#[test]
fn find_coordinator_transport_failure_retries_after_backoff() {
    let mut sim = Sim::new(config());
    sim.member.start();
    assert_eq!(sim.on(Event::CoordinatorFound(Err(Failure::Transport("refused".into())))), vec![]);
    assert_eq!(sim.tick_at(BACKOFF_MS), vec![find_coordinator()]);
}

#[test]
fn join_group_fatal_errors_stop_the_member_with_an_explanation() {
    // GROUP-PROTOCOL: these JoinGroup errors are fatal, with a message naming the setting.
    for error in [
        E::InconsistentGroupProtocol,
        E::InvalidSessionTimeout,
        E::GroupAuthorizationFailed,
        E::InvalidGroupId,
        E::GroupMaxSizeReached,
    ] {
        let mut sim = Sim::to_first_join(config());
        let fatal = expect_fatal(sim.on(Event::Joined(Err((broker(error), String::new())))));
        assert_eq!(fatal.group, "cafe-group-clean", "{error:?}");
        assert_eq!(fatal.error, error);
        assert_eq!(fatal.explanation, explain(error));
        assert!(fatal.explanation.is_some(), "{error:?} deserves a specific explanation");
        assert!(fatal.to_string().contains("cafe-group-clean"), "{fatal}");
        assert!(sim.member.is_closed(), "{error:?}");
        assert_eq!(sim.member.next_deadline(), None, "{error:?}: nothing more to do");
        assert_eq!(sim.tick_at(60_000), vec![], "{error:?}: a failed member stays quiet");
    }
}

#[test]
fn join_coordinator_load_in_progress_retries_same_join_after_backoff() {
    let mut sim = Sim::to_second_join(config());
    assert_eq!(sim.on(Event::Joined(Err((broker(E::CoordinatorLoadInProgress), MEMBER.into())))), vec![]);
    assert_eq!(sim.tick_at(BACKOFF_MS - 1), vec![]);
    assert_eq!(expect_join(sim.tick_at(BACKOFF_MS)), MEMBER);
}

#[test]
fn join_not_coordinator_rediscovers_then_joins_again() {
    let mut sim = Sim::to_second_join(config());
    assert_eq!(sim.on(Event::Joined(Err((broker(E::NotCoordinator), MEMBER.into())))), vec![find_coordinator()]);
    assert_eq!(sim.member.coordinator(), None);
    assert_eq!(expect_join(sim.on(Event::CoordinatorFound(Ok(2)))), MEMBER);
}

#[test]
fn join_unknown_member_id_forgets_the_member_id() {
    let mut sim = Sim::to_second_join(config());
    assert_eq!(sim.on(Event::Joined(Err((broker(E::UnknownMemberId), MEMBER.into())))), vec![]);
    assert_eq!(sim.member.member_id(), "");
    assert_eq!(expect_join(sim.tick_at(BACKOFF_MS)), "");
}

// ---- SyncGroup and OffsetFetch -------------------------------------------------------------------

#[test]
fn sync_rebalance_in_progress_rejoins_with_the_same_member_id() {
    let mut sim = Sim::to_syncing(config());
    assert_eq!(expect_join(sim.on(Event::Synced(Err(broker(E::RebalanceInProgress))))), MEMBER);
    assert!(sim.member.assigned().is_empty());
}

#[test]
fn sync_illegal_generation_rejoins_with_the_same_member_id() {
    let mut sim = Sim::to_syncing(config());
    assert_eq!(expect_join(sim.on(Event::Synced(Err(broker(E::IllegalGeneration))))), MEMBER);
    assert_eq!(sim.member.generation_id(), -1);
}

#[test]
fn sync_unknown_member_id_rejoins_from_scratch() {
    let mut sim = Sim::to_syncing(config());
    assert_eq!(expect_join(sim.on(Event::Synced(Err(broker(E::UnknownMemberId))))), "");
    assert_eq!(sim.member.generation_id(), -1);
}

#[test]
fn offset_fetch_unstable_offset_commit_retries_after_backoff() {
    let mut sim = Sim::to_fetching_offsets(config(), &[0, 1]);
    // GROUP-PROTOCOL: UNSTABLE_OFFSET_COMMIT (88) -> retry shortly, not at once.
    assert_eq!(sim.on(Event::OffsetsFetched(Err(broker(E::UnstableOffsetCommit)))), vec![]);
    assert_eq!(sim.deadline_ms(), Some(BACKOFF_MS));
    assert_eq!(sim.tick_at(BACKOFF_MS - 1), vec![]);
    assert_eq!(single(sim.tick_at(BACKOFF_MS)), fetch_offsets(vec![tp(0), tp(1)]));
    let assign = single(sim.on(Event::OffsetsFetched(Ok(offsets(&[(0, 5), (1, 6)])))));
    assert_eq!(assign, Action::Assign { partitions: vec![(tp(0), Some(5)), (tp(1), Some(6))] });
}

#[test]
fn assign_carries_committed_offsets_and_none_where_there_is_none() {
    let mut sim = Sim::to_fetching_offsets(config(), &[0, 1, 2]);
    // -1 = no committed offset -> None (auto.offset.reset decides); a partition the
    // response leaves out is also None; offsets for partitions we do not own are ignored.
    let fetched = offsets(&[(0, 42), (1, -1), (9, 100)]);
    let assign = single(sim.on(Event::OffsetsFetched(Ok(fetched))));
    assert_eq!(assign, Action::Assign { partitions: vec![(tp(0), Some(42)), (tp(1), None), (tp(2), None)] });
    assert_eq!(sim.member.committed(), &offsets(&[(0, 42)]));
}

// ---- heartbeats ---------------------------------------------------------------------------------

#[test]
fn heartbeats_are_due_every_heartbeat_interval() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    assert_eq!(sim.deadline_ms(), Some(HB_MS));
    assert_eq!(sim.tick_at(HB_MS - 1), vec![]);
    assert_eq!(sim.tick_at(HB_MS), vec![heartbeat(GEN)]);
    // The next one is timed from the response.
    sim.at(HB_MS + 20);
    assert_eq!(sim.on(Event::Heartbeat(Ok(()))), vec![]);
    assert_eq!(sim.deadline_ms(), Some(2 * HB_MS + 20));
    assert_eq!(sim.tick_at(2 * HB_MS + 19), vec![]);
    assert_eq!(sim.tick_at(2 * HB_MS + 20), vec![heartbeat(GEN)]);
}

#[test]
fn next_deadline_is_the_earlier_of_heartbeat_and_auto_commit() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    assert_eq!(sim.deadline_ms(), Some(HB_MS));
    assert_eq!(sim.tick_at(HB_MS), vec![heartbeat(GEN)]);
    // Heartbeat in flight: only the auto-commit timer remains.
    assert_eq!(sim.deadline_ms(), Some(COMMIT_MS));
}

#[test]
fn no_second_heartbeat_while_one_is_in_flight() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    assert_eq!(sim.tick_at(HB_MS), vec![heartbeat(GEN)]);
    // Only the metadata refresh (metadata.max.age.ms) remains: no heartbeat timer.
    assert_eq!(sim.deadline_ms(), Some(100 * HOUR_MS), "no heartbeat timer while one is in flight");
    assert_eq!(sim.tick_at(2 * HB_MS), vec![]);
    assert_eq!(sim.tick_at(10 * HB_MS), vec![]);
    assert_eq!(sim.on(Event::Heartbeat(Ok(()))), vec![]);
    assert_eq!(sim.tick_at(11 * HB_MS), vec![heartbeat(GEN)]);
}

#[test]
fn no_heartbeats_before_the_member_has_a_generation() {
    let mut sim = Sim::to_second_join(config());
    assert_eq!(sim.member.next_deadline(), None);
    assert_eq!(sim.tick_at(10 * HB_MS), vec![]);
}

#[test]
fn heartbeat_rebalance_in_progress_revokes_commits_then_rejoins_with_same_id() {
    let mut sim = Sim::stable(config(), &[0, 1], &[(0, 10)]);
    sim.tick_at(HB_MS);
    // Eager protocol: give up everything before rejoining.
    let revoke = expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    assert_eq!(revoke, vec![tp(0), tp(1)]);
    // The consumer hands out what it had already fetched, then confirms.
    assert_eq!(sim.on(consumed(0, 15)), vec![]);
    assert_eq!(sim.on(consumed(1, 3)), vec![]);
    // GROUP-PROTOCOL: REBALANCE_IN_PROGRESS -> commit if allowed (the generation is still valid).
    let (generation_id, member_id, committed) = expect_commit(sim.on(Event::Revoked));
    assert_eq!((generation_id, member_id.as_str()), (GEN, MEMBER), "commit with the unchanged generation");
    assert_eq!(committed, offsets(&[(0, 15), (1, 3)]));
    // Only after the commit answer does the member rejoin, with the same id.
    assert_eq!(expect_join(sim.on(committed_ok(&[(0, 15), (1, 3)]))), MEMBER);
    assert!(sim.member.assigned().is_empty());
    assert_eq!(sim.member.committed(), &offsets(&[(0, 15), (1, 3)]));
}

#[test]
fn heartbeat_rebalance_in_progress_with_nothing_consumed_rejoins_without_commit() {
    let mut sim = Sim::stable(config(), &[0], &[(0, 10)]);
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    assert_eq!(expect_join(sim.on(Event::Revoked)), MEMBER);
}

#[test]
fn heartbeat_rebalance_with_no_partitions_rejoins_at_once() {
    let mut sim = Sim::stable(config(), &[], &[]);
    sim.tick_at(HB_MS);
    // Nothing to revoke: no Revoke round trip with the consumer.
    assert_eq!(expect_join(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress))))), MEMBER);
}

#[test]
fn heartbeat_illegal_generation_revokes_and_rejoins_without_commit() {
    let mut sim = Sim::stable(config(), &[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    assert_eq!(expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::IllegalGeneration))))), vec![tp(0), tp(1)]);
    sim.on(consumed(1, 8));
    // The generation is gone: a commit would be refused (and could move offsets back).
    let join = sim.on(Event::Revoked);
    assert_no_commit(&join);
    assert_eq!(expect_join(join), MEMBER, "ILLEGAL_GENERATION keeps the member id");
    assert_eq!(sim.member.generation_id(), -1);
}

#[test]
fn heartbeat_unknown_member_id_revokes_and_rejoins_with_empty_member_id() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    assert_eq!(expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::UnknownMemberId))))), vec![tp(0)]);
    let join = sim.on(Event::Revoked);
    assert_no_commit(&join);
    assert_eq!(expect_join(join), "", "UNKNOWN_MEMBER_ID: forget the member id, rejoin from scratch");
    assert_eq!(sim.member.generation_id(), -1);
}

#[test]
fn heartbeat_fenced_instance_id_is_fatal_with_an_explanation() {
    let mut sim = Sim::stable(static_config(), &[0], &[]);
    sim.tick_at(HB_MS);
    // KIP-345: another process runs with our group.instance.id.
    let fatal = expect_fatal(sim.on(Event::Heartbeat(Err(broker(E::FencedInstanceId)))));
    assert_eq!(fatal.error, E::FencedInstanceId);
    // The CLI phrases this as the flag to change: see `error.rs`.
    assert_eq!(fatal.explanation, Some("another member uses the same group.instance.id"));
    assert!(sim.member.is_closed());
    assert_eq!(sim.tick_at(10 * HB_MS), vec![]);
}

/// Coordinator loss while Stable: find it again and carry on heartbeating, no rejoin.
fn assert_rediscovers_and_resumes_heartbeats(failure: Failure) {
    let mut sim = Sim::stable(config(), &[0, 1], &[(0, 3)]);
    sim.tick_at(HB_MS);
    assert_eq!(sim.on(Event::Heartbeat(Err(failure.clone()))), vec![find_coordinator()], "{failure:?}");
    assert_eq!(sim.member.coordinator(), None);
    assert!(!sim.member.is_stable());

    sim.at(HB_MS + 50);
    let found = sim.on(Event::CoordinatorFound(Ok(2)));
    assert!(
        found.iter().all(|a| !matches!(a, Action::Send(Request::Join { .. }) | Action::Revoke { .. })),
        "{found:?}"
    );
    assert!(sim.member.is_stable(), "{failure:?}: a Stable member keeps its partitions");
    assert_eq!(sim.member.coordinator(), Some(2));
    assert_eq!(sim.member.generation_id(), GEN);
    assert_eq!(sim.member.assigned().len(), 2);
    // The group may have moved on without us: heartbeat at once to find out.
    let mut actions = found;
    actions.extend(sim.tick());
    assert_eq!(actions, vec![heartbeat(GEN)], "{failure:?}");
}

#[test]
fn heartbeat_coordinator_not_available_rediscovers_and_resumes() {
    assert_rediscovers_and_resumes_heartbeats(broker(E::CoordinatorNotAvailable));
}

#[test]
fn heartbeat_not_coordinator_rediscovers_and_resumes() {
    assert_rediscovers_and_resumes_heartbeats(broker(E::NotCoordinator));
}

#[test]
fn heartbeat_transport_failure_rediscovers_and_resumes() {
    assert_rediscovers_and_resumes_heartbeats(Failure::Transport("connection reset".into()));
}

#[test]
fn rediscovery_retries_with_backoff_and_still_resumes_stable() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.tick_at(HB_MS);
    assert_eq!(sim.on(Event::Heartbeat(Err(broker(E::NotCoordinator)))), vec![find_coordinator()]);
    assert_eq!(sim.on(Event::CoordinatorFound(Err(broker(E::CoordinatorNotAvailable)))), vec![]);
    assert_eq!(sim.tick_at(HB_MS + BACKOFF_MS - 1), vec![]);
    assert_eq!(sim.tick_at(HB_MS + BACKOFF_MS), vec![find_coordinator()]);
    let mut actions = sim.on(Event::CoordinatorFound(Ok(5)));
    actions.extend(sim.tick());
    assert_eq!(actions, vec![heartbeat(GEN)]);
}

#[test]
fn heartbeat_coordinator_load_in_progress_retries_after_backoff() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.tick_at(HB_MS);
    // GROUP-PROTOCOL: COORDINATOR_LOAD_IN_PROGRESS -> same coordinator, after backoff.
    assert_eq!(sim.on(Event::Heartbeat(Err(broker(E::CoordinatorLoadInProgress)))), vec![]);
    assert!(sim.member.is_stable());
    assert_eq!(sim.member.coordinator(), Some(COORDINATOR));
    assert_eq!(sim.tick(), vec![], "no immediate resend");
    assert_eq!(sim.deadline_ms(), Some(HB_MS + BACKOFF_MS));
    assert_eq!(sim.tick_at(HB_MS + BACKOFF_MS - 1), vec![]);
    assert_eq!(sim.tick_at(HB_MS + BACKOFF_MS), vec![heartbeat(GEN)]);
}

#[test]
fn heartbeat_error_during_a_rebalance_is_ignored() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.tick_at(HB_MS);
    // Rebalance starts via a failed commit while the heartbeat is in flight.
    sim.on(consumed(0, 4));
    let commit = sim.tick_at(COMMIT_MS);
    expect_commit(commit);
    expect_revoke(sim.on(Event::Committed { offsets: offsets(&[(0, 4)]), result: Err(broker(E::IllegalGeneration)) }));
    // The heartbeat's own (now stale) error must not start a second recovery.
    assert_eq!(sim.on(Event::Heartbeat(Err(broker(E::IllegalGeneration)))), vec![]);
    assert_eq!(sim.on(Event::Heartbeat(Err(broker(E::NotCoordinator)))), vec![]);
    assert_eq!(expect_join(sim.on(Event::Revoked)), MEMBER);
}

// ---- commits ------------------------------------------------------------------------------------

#[test]
fn auto_commit_waits_for_the_interval_and_commits_only_advanced_positions() {
    let mut sim = Sim::stable(config(), &[0, 1, 2, 3], &[(0, 10), (1, 20)]);
    sim.on(consumed(0, 15)); // advanced past the commit
    sim.on(consumed(1, 20)); // equal to the commit: nothing new
    sim.on(consumed(2, 5)); // no commit yet: anything consumed is new
    // partition 3: nothing consumed, nothing committed -> nothing to say
    sim.tick_at(HB_MS); // heartbeat, not a commit
    assert_eq!(sim.tick_at(COMMIT_MS - 1), vec![]);
    let (generation_id, member_id, committed) = expect_commit(sim.tick_at(COMMIT_MS));
    assert_eq!((generation_id, member_id.as_str()), (GEN, MEMBER));
    assert_eq!(committed, offsets(&[(0, 15), (2, 5)]));
}

#[test]
fn auto_commit_repeats_every_interval_with_only_new_progress() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.on(consumed(1, 7));
    let (_, _, first) = expect_commit(sim.tick_at(COMMIT_MS));
    assert_eq!(first, offsets(&[(0, 5), (1, 7)]));
    sim.at(COMMIT_MS + 10);
    assert_eq!(sim.on(committed_ok(&[(0, 5), (1, 7)])), vec![]);
    assert_eq!(sim.member.committed(), &offsets(&[(0, 5), (1, 7)]));
    // Nothing new by the next interval: no commit.
    assert_eq!(sim.tick_at(2 * COMMIT_MS), vec![]);
    // Progress on one partition: only that one is committed, one interval later.
    sim.on(consumed(1, 9));
    assert_eq!(sim.tick_at(3 * COMMIT_MS - 1), vec![]);
    let (_, _, third) = expect_commit(sim.tick_at(3 * COMMIT_MS));
    assert_eq!(third, offsets(&[(1, 9)]));
}

#[test]
fn never_commits_an_offset_at_or_below_the_committed_one() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[(0, 10)]);
    sim.on(consumed(0, 20));
    let (_, _, c) = expect_commit(sim.tick_at(COMMIT_MS));
    assert_eq!(c, offsets(&[(0, 20)]));
    sim.on(committed_ok(&[(0, 20)]));
    // A lower (or equal) position after the commit is never committed: offsets must not go back.
    sim.on(consumed(0, 12));
    assert_eq!(sim.tick_at(2 * COMMIT_MS), vec![]);
    sim.on(consumed(0, 20));
    assert_eq!(sim.tick_at(3 * COMMIT_MS), vec![]);
    // Not before revoking either.
    sim.on(consumed(0, 15));
    expect_revoke(sim.on(Event::Close));
    assert_eq!(single(sim.on(Event::Revoked)), leave());
}

#[test]
fn never_commits_below_the_offset_fetched_at_assignment() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[(0, 100)]);
    sim.on(consumed(0, 50));
    assert_eq!(sim.tick_at(COMMIT_MS), vec![]);
}

#[test]
fn no_auto_commit_while_one_is_in_flight() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_commit(sim.tick_at(COMMIT_MS));
    sim.on(consumed(0, 9));
    assert_eq!(sim.deadline_ms(), Some(HOUR_MS), "no commit timer while a commit is in flight");
    assert_eq!(sim.tick_at(2 * COMMIT_MS), vec![]);
    sim.at(2 * COMMIT_MS + 1);
    assert_eq!(sim.on(committed_ok(&[(0, 5)])), vec![]);
    let (_, _, c) = expect_commit(sim.tick());
    assert_eq!(c, offsets(&[(0, 9)]));
}

#[test]
fn auto_commit_disabled_never_commits() {
    let mut sim = Sim::stable(manual_commit_config(), &[0, 1], &[(0, 1)]);
    sim.on(consumed(0, 50));
    sim.on(consumed(1, 60));
    // Not on a timer...
    for ms in (1..=20).map(|i| i * COMMIT_MS) {
        let actions = sim.tick_at(ms);
        assert_no_commit(&actions);
        if actions.contains(&heartbeat(GEN)) {
            sim.on(Event::Heartbeat(Ok(())));
        }
    }
    // ...nor before a rebalance...
    let now = 20 * COMMIT_MS + HB_MS;
    let hb = sim.tick_at(now);
    assert_eq!(hb, vec![heartbeat(GEN)]);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    assert_eq!(expect_join(sim.on(Event::Revoked)), MEMBER);
    assert!(sim.member.committed().get(&tp(1)).is_none());
}

#[test]
fn auto_commit_disabled_closes_without_commit() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(0, 50));
    expect_revoke(sim.on(Event::Close));
    assert_eq!(single(sim.on(Event::Revoked)), leave());
}

#[test]
fn consumed_for_a_partition_not_assigned_is_ignored() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
    sim.on(Event::Consumed { tp: tp(7), next_offset: 70 });
    sim.on(Event::Consumed { tp: TopicPartition::new("other", 0), next_offset: 80 });
    assert_eq!(sim.tick_at(COMMIT_MS), vec![]);
    sim.on(consumed(0, 3));
    let (_, _, c) = expect_commit(sim.tick_at(2 * COMMIT_MS));
    assert_eq!(c, offsets(&[(0, 3)]));
}

#[test]
fn consumed_before_assignment_is_ignored() {
    let mut sim = Sim::to_syncing(config());
    sim.on(consumed(0, 99));
    sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0])]))));
    sim.on(Event::OffsetsFetched(Ok(BTreeMap::new())));
    assert_eq!(sim.tick_at(COMMIT_MS).iter().filter(|a| matches!(a, Action::Send(Request::Commit { .. }))).count(), 0);
}

#[test]

fn commit_rebalance_in_progress_is_not_retried_with_the_old_generation() {
    // GROUP-PROTOCOL: "An OffsetCommit that fails with a rebalance error must not be
    // retried with the old generation; after the rejoin the member commits only
    // partitions it still owns."
    for result in [Ok(vec![(tp(0), E::RebalanceInProgress)]), Err(broker(E::RebalanceInProgress))] {
        let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
        sim.on(consumed(0, 5));
        expect_commit(sim.tick_at(COMMIT_MS));
        let next = sim.on(Event::Committed { offsets: offsets(&[(0, 5)]), result: result.clone() });
        assert_no_commit(&next);
        assert_eq!(expect_revoke(next), vec![tp(0)], "{result:?}");
        let after = sim.on(Event::Revoked);
        assert_no_commit(&after);
        assert_eq!(expect_join(after), MEMBER, "{result:?}");
    }
}

#[test]
fn commit_rebalance_in_progress_starts_the_rebalance_not_a_commit() {
    // The part of the rule above that holds today: the immediate reaction is a Revoke.
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_commit(sim.tick_at(COMMIT_MS));
    let next =
        sim.on(Event::Committed { offsets: offsets(&[(0, 5)]), result: Ok(vec![(tp(0), E::RebalanceInProgress)]) });
    assert_eq!(expect_revoke(next), vec![tp(0)]);
    assert!(sim.member.committed().is_empty(), "a failed partition is not recorded as committed");
}

#[test]
fn commit_illegal_generation_revokes_and_rejoins_without_commit() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_commit(sim.tick_at(COMMIT_MS));
    let next = sim.on(Event::Committed { offsets: offsets(&[(0, 5)]), result: Err(broker(E::IllegalGeneration)) });
    expect_revoke(next);
    let after = sim.on(Event::Revoked);
    assert_no_commit(&after);
    assert_eq!(expect_join(after), MEMBER);
}

#[test]
fn commit_transport_failure_rediscovers_and_commits_again_later() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_commit(sim.tick_at(COMMIT_MS));
    let next = sim.on(Event::Committed { offsets: offsets(&[(0, 5)]), result: Err(Failure::Transport("eof".into())) });
    assert_eq!(next, vec![find_coordinator()]);
    sim.on(Event::CoordinatorFound(Ok(2)));
    assert!(sim.member.is_stable());
    // The position was not committed, so the next interval carries it again.
    let actions = sim.tick_at(2 * COMMIT_MS);
    let commits: Vec<_> = actions.iter().filter(|a| matches!(a, Action::Send(Request::Commit { .. }))).collect();
    assert_eq!(commits, vec![&auto_commit(GEN, offsets(&[(0, 5)]))]);
}

#[test]
fn partial_commit_failure_keeps_the_failed_partition_pending() {
    let mut sim = Sim::stable(without_heartbeats(config()), &[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.on(consumed(1, 6));
    expect_commit(sim.tick_at(COMMIT_MS));
    // A retriable per-partition error: partition 0 stored, partition 1 not.
    sim.on(Event::Committed {
        offsets: offsets(&[(0, 5), (1, 6)]),
        result: Ok(vec![(tp(1), E::CoordinatorLoadInProgress)]),
    });
    assert_eq!(sim.member.committed(), &offsets(&[(0, 5)]));
    let (_, _, c) = expect_commit(sim.tick_at(2 * COMMIT_MS));
    assert_eq!(c, offsets(&[(1, 6)]));
}

#[test]

fn revocation_commit_waits_for_its_own_response_not_an_earlier_auto_commit() {
    // GROUP-PROTOCOL known failure: "Duplicates when a rebalance lands during an async commit".
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    let (_, _, auto) = expect_commit(sim.tick_at(COMMIT_MS)); // auto-commit A: {0: 5}, in flight
    assert_eq!(auto, offsets(&[(0, 5)]));
    sim.on(consumed(0, 9));
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    // The revocation commit (B) must carry the newest position. Sending it while A is
    // in flight is fine; joining before B is answered is not.
    let revoked = sim.on(Event::Revoked);
    let b = match revoked.as_slice() {
        [] => None,
        [Action::Send(Request::Commit { offsets, .. })] => Some(offsets.clone()),
        other => panic!("expected nothing or a Commit, got {other:?}"),
    };
    // A's answer arrives first.
    let after_a = sim.on(committed_ok(&[(0, 5)]));
    let b = match (b, after_a.as_slice()) {
        (Some(b), []) => b,
        (None, [Action::Send(Request::Commit { offsets, .. })]) => offsets.clone(),
        (b, other) => {
            panic!("A's response must not end the revocation (B sent: {b:?}); got {other:?}")
        }
    };
    assert_eq!(b, offsets(&[(0, 9)]));
    assert_eq!(expect_join(sim.on(committed_ok(&[(0, 9)]))), MEMBER);
}

#[test]
fn after_a_rebalance_commits_use_the_new_generation_and_only_owned_partitions() {
    let mut sim = Sim::stable(config(), &[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.on(consumed(1, 6));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    expect_commit(sim.on(Event::Revoked));
    expect_join(sim.on(committed_ok(&[(0, 5), (1, 6)])));
    // Generation 2 gives this member partition 1 only.
    sim.on(Event::Joined(Ok(follower_join(2, MEMBER))));
    sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[1])]))));
    let assign = single(sim.on(Event::OffsetsFetched(Ok(offsets(&[(0, 5), (1, 6)])))));
    assert_eq!(assign, Action::Assign { partitions: vec![(tp(1), Some(6))] });
    // A late position for the partition now owned by someone else is ignored.
    sim.on(consumed(0, 50));
    sim.on(consumed(1, 8));
    let actions = sim.tick_at(HB_MS + 2 * COMMIT_MS);
    let commit = actions.iter().find(|a| matches!(a, Action::Send(Request::Commit { .. }))).expect("a commit");
    assert_eq!(commit, &auto_commit(2, offsets(&[(1, 8)])));
}

// ---- close ---------------------------------------------------------------------------------------

#[test]
fn close_from_stable_revokes_commits_leaves_and_closes() {
    let mut sim = Sim::stable(config(), &[0, 1], &[(1, 4)]);
    sim.on(consumed(0, 5));
    sim.on(consumed(1, 4)); // no progress: not committed again
    assert_eq!(expect_revoke(sim.on(Event::Close)), vec![tp(0), tp(1)]);
    let (generation_id, member_id, c) = expect_commit(sim.on(Event::Revoked));
    assert_eq!((generation_id, member_id.as_str(), c), (GEN, MEMBER, offsets(&[(0, 5)])));
    assert_eq!(single(sim.on(committed_ok(&[(0, 5)]))), leave());
    assert!(!sim.member.is_closed(), "not closed until LeaveGroup is answered");
    assert_eq!(sim.on(Event::Left), vec![Action::Closed]);
    assert!(sim.member.is_closed());
    assert!(sim.member.assigned().is_empty());
}

#[test]
fn close_sends_no_heartbeats_or_commits_while_leaving() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    expect_revoke(sim.on(Event::Close));
    assert_eq!(sim.tick_at(10 * COMMIT_MS), vec![]);
    assert_eq!(single(sim.on(Event::Revoked)), leave());
    assert_eq!(sim.tick_at(20 * COMMIT_MS), vec![]);
    assert_eq!(sim.on(Event::Close), vec![], "a second Close while leaving does nothing");
    assert_eq!(sim.on(Event::Left), vec![Action::Closed]);
    assert_eq!(sim.on(Event::Close), vec![], "closing a closed member does nothing");
}

#[test]
fn close_commit_failure_still_leaves() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_revoke(sim.on(Event::Close));
    expect_commit(sim.on(Event::Revoked));
    let next = sim.on(Event::Committed { offsets: offsets(&[(0, 5)]), result: Err(Failure::Transport("eof".into())) });
    assert_eq!(single(next), leave());
}

#[test]
fn static_member_closes_without_leave_group() {
    // KIP-345: a static member does not leave on close, so a quick restart is no rebalance.
    let mut sim = Sim::stable(static_config(), &[0], &[]);
    sim.on(consumed(0, 5));
    expect_revoke(sim.on(Event::Close));
    expect_commit(sim.on(Event::Revoked));
    assert_eq!(sim.on(committed_ok(&[(0, 5)])), vec![Action::Closed]);
    assert!(sim.member.is_closed());
}

#[test]
fn close_before_any_coordinator_closes_at_once() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.on(Event::Close), vec![Action::Closed], "never started");
    assert!(sim.member.is_closed());

    let mut sim = Sim::new(config());
    sim.member.start();
    assert_eq!(sim.on(Event::Close), vec![Action::Closed], "coordinator not found yet");
    // The FindCoordinator answer that was in flight changes nothing.
    assert_eq!(sim.on(Event::CoordinatorFound(Ok(1))), vec![]);
}

#[test]
fn close_while_joining_with_a_member_id_leaves() {
    let mut sim = Sim::to_second_join(config());
    assert_eq!(single(sim.on(Event::Close)), leave());
    // The JoinGroup answer that was in flight is ignored.
    assert_eq!(sim.on(Event::Joined(Ok(follower_join(GEN, MEMBER)))), vec![]);
    assert_eq!(sim.on(Event::Left), vec![Action::Closed]);
}

#[test]
fn close_during_revoke_leaves_after_the_commit() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    assert_eq!(sim.on(Event::Close), vec![], "wait for the consumer to stop first");
    expect_commit(sim.on(Event::Revoked));
    assert_eq!(single(sim.on(committed_ok(&[(0, 5)]))), leave());
    assert_eq!(sim.on(Event::Left), vec![Action::Closed]);
}

#[test]
fn close_during_revocation_commit_leaves_instead_of_rejoining() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    expect_commit(sim.on(Event::Revoked));
    assert_eq!(sim.on(Event::Close), vec![]);
    assert_eq!(single(sim.on(committed_ok(&[(0, 5)]))), leave());
}

#[test]
fn close_after_unknown_member_id_closes_without_leave() {
    // No member id to leave with once the coordinator forgot us.
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::UnknownMemberId)))));
    assert_eq!(sim.on(Event::Close), vec![]);
    assert_eq!(sim.on(Event::Revoked), vec![Action::Closed]);
}

// ---- responses in the wrong phase --------------------------------------------------------------

#[test]
fn late_responses_while_stable_are_ignored() {
    let mut sim = Sim::stable(config(), &[0], &[(0, 3)]);
    let late = [
        Event::CoordinatorFound(Ok(9)),
        Event::Joined(Ok(follower_join(7, "m-other"))),
        Event::Joined(Err((broker(E::MemberIdRequired), "m-other".into()))),
        Event::Metadata(Ok(BTreeMap::from([("demo".to_string(), 3)]))),
        Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0, 1, 2])]))),
        Event::Synced(Err(broker(E::RebalanceInProgress))),
        Event::OffsetsFetched(Ok(offsets(&[(0, 0)]))),
        Event::OffsetsFetched(Err(broker(E::UnknownMemberId))),
        Event::Revoked,
    ];
    for event in late {
        assert_eq!(sim.on(event.clone()), vec![], "{event:?}");
        assert!(sim.member.is_stable(), "{event:?}");
    }
    assert_eq!(sim.member.coordinator(), Some(COORDINATOR));
    assert_eq!(sim.member.generation_id(), GEN);
    assert_eq!(sim.member.member_id(), MEMBER);
    assert_eq!(sim.member.assigned().iter().cloned().collect::<Vec<_>>(), vec![tp(0)]);
    assert_eq!(sim.member.committed(), &offsets(&[(0, 3)]));
    assert_eq!(sim.tick_at(HB_MS), vec![heartbeat(GEN)]);
}

#[test]

fn stray_left_while_stable_is_ignored() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    assert_eq!(sim.on(Event::Left), vec![]);
    assert!(sim.member.is_stable());
}

#[test]
fn late_responses_while_joining_are_ignored() {
    let mut sim = Sim::to_second_join(config());
    for event in [
        Event::CoordinatorFound(Ok(9)),
        Event::Metadata(Ok(BTreeMap::new())),
        Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0])]))),
        Event::OffsetsFetched(Ok(offsets(&[(0, 1)]))),
        Event::Heartbeat(Err(broker(E::UnknownMemberId))),
        Event::Revoked,
    ] {
        assert_eq!(sim.on(event.clone()), vec![], "{event:?}");
    }
    assert_eq!(sim.member.member_id(), MEMBER);
    assert!(sim.member.assigned().is_empty());
    // The real answer still works.
    assert!(matches!(
        single(sim.on(Event::Joined(Ok(follower_join(GEN, MEMBER))))),
        Action::Send(Request::Sync { .. })
    ));
}

#[test]
fn late_responses_after_a_fatal_error_are_ignored() {
    let mut sim = Sim::to_first_join(config());
    expect_fatal(sim.on(Event::Joined(Err((broker(E::GroupAuthorizationFailed), String::new())))));
    for event in [
        Event::Joined(Ok(follower_join(GEN, MEMBER))),
        Event::Synced(Ok(Bytes::new())),
        Event::Heartbeat(Ok(())),
        Event::Close,
    ] {
        assert_eq!(sim.on(event.clone()), vec![], "{event:?}");
    }
}

#[test]
fn late_responses_after_close_are_ignored() {
    let mut sim = Sim::stable(config(), &[0], &[]);
    expect_revoke(sim.on(Event::Close));
    sim.on(Event::Revoked);
    sim.on(Event::Left);
    assert!(sim.member.is_closed());
    for event in [
        Event::Heartbeat(Err(broker(E::RebalanceInProgress))),
        Event::Committed { offsets: offsets(&[(0, 1)]), result: Err(broker(E::RebalanceInProgress)) },
        Event::CoordinatorFound(Ok(1)),
        Event::Joined(Ok(follower_join(GEN, MEMBER))),
        Event::Synced(Ok(Bytes::new())),
        Event::Revoked,
        Event::Left,
        Event::Tick,
    ] {
        assert_eq!(sim.on(event.clone()), vec![], "{event:?}");
    }
}

// ---- metadata.max.age.ms: new partitions, pattern subscriptions ----------------------------

const AGE_MS: u64 = 1_000;

fn refreshing(config: GroupConfig) -> GroupConfig {
    GroupConfig { metadata_max_age: Duration::from_millis(AGE_MS), ..without_heartbeats(manual_commit(config)) }
}

fn manual_commit(config: GroupConfig) -> GroupConfig {
    GroupConfig { enable_auto_commit: false, ..config }
}

fn view(counts: &[(&str, i32)], matching: Option<&[&str]>) -> Event {
    Event::TopicsRefreshed(Ok(TopicsView {
        counts: counts.iter().map(|(t, n)| (t.to_string(), *n)).collect(),
        matching: matching.map(|m| m.iter().map(|t| t.to_string()).collect()),
    }))
}

#[test]
fn metadata_is_refreshed_every_max_age_while_stable() {
    let mut sim = Sim::stable(refreshing(config()), &[0], &[]);
    assert_eq!(sim.deadline_ms(), Some(AGE_MS));
    assert_eq!(single(sim.tick_at(AGE_MS)), refresh_topics(&[TOPIC]));
    assert_eq!(sim.tick_at(2 * AGE_MS), vec![], "one refresh in flight at a time");
    assert_eq!(sim.on(view(&[(TOPIC, 1)], None)), vec![], "a follower does not rebalance on counts");
    assert_eq!(single(sim.tick_at(3 * AGE_MS)), refresh_topics(&[TOPIC]));
}

#[test]
fn the_leader_rebalances_when_a_topic_grows_partitions() {
    let (mut sim, _) = leader_joined();
    let sync = sim.on(Event::Metadata(Ok([("demo".into(), 2), ("other".into(), 1)].into())));
    assert!(matches!(single(sync), Action::Send(Request::Sync { .. })));
    let bytes = assignment_bytes(&[(TOPIC, &[0])]);
    single(sim.on(Event::Synced(Ok(bytes))));
    single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new()))));
    let refresh = sim.tick_at(100 * HOUR_MS);
    assert!(refresh.contains(&refresh_topics(&["demo", "other"])), "{refresh:?}");
    // Same counts: nothing; `demo` grew from 2 to 3: revoke (eager) and rejoin.
    assert_eq!(sim.on(view(&[("demo", 2), ("other", 1)], None)), vec![]);
    let revoke = sim.member.handle(
        Event::TopicsRefreshed(Ok(TopicsView {
            counts: [("demo".into(), 3), ("other".into(), 1)].into(),
            matching: None,
        })),
        sim.now,
    );
    assert_eq!(expect_revoke(revoke), vec![tp(0)]);
}

#[test]
fn a_pattern_member_learns_its_topics_before_the_first_join_and_rejoins_when_they_change() {
    let cfg = GroupConfig { topics: Vec::new(), topic_pattern: Some("de.*".into()), ..refreshing(config()) };
    let mut sim = Sim::new(cfg);
    assert_eq!(sim.member.start(), vec![refresh_topics(&[])]);
    assert_eq!(single(sim.on(view(&[(TOPIC, 1)], Some(&[TOPIC])))), find_coordinator());
    assert_eq!(sim.member.config().topics, vec![TOPIC.to_string()]);
    let join = sim.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    assert_eq!(expect_join(join), "");
    single(sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into())))));
    single(sim.on(Event::Joined(Ok(follower_join(GEN, MEMBER)))));
    single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0])])))));
    single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new()))));
    assert_eq!(single(sim.tick_at(AGE_MS)), refresh_topics(&[TOPIC]));
    // A new topic matches: revoke, then rejoin subscribing to both.
    let revoke = sim.on(view(&[(TOPIC, 1), ("delta", 2)], Some(&["delta", TOPIC])));
    assert_eq!(expect_revoke(revoke), vec![tp(0)]);
    match single(sim.on(Event::Revoked)) {
        Action::Send(Request::Join { protocols, .. }) => {
            let sub = Subscription::decode(&protocols[0].1).unwrap();
            assert_eq!(sub.topics, vec!["delta".to_string(), TOPIC.to_string()]);
        }
        other => panic!("expected Join, got {other:?}"),
    }
}

#[test]
fn a_failed_refresh_changes_nothing() {
    let mut sim = Sim::stable(refreshing(config()), &[0], &[]);
    single(sim.tick_at(AGE_MS));
    assert_eq!(sim.on(Event::TopicsRefreshed(Err(Failure::Transport("gone".into())))), vec![]);
    assert!(sim.member.is_stable());
    assert_eq!(single(sim.tick_at(2 * AGE_MS)), refresh_topics(&[TOPIC]));
}

// ---- commits the user asks for (Consumer::commit / commit_offsets) --------------------------------

#[test]
fn manual_commit_sends_consumed_positions_with_auto_commit_off() {
    let mut sim = Sim::stable(manual_commit_config(), &[0, 1], &[(1, 3)]);
    sim.on(consumed(0, 10));
    sim.on(consumed(1, 3)); // no progress past the commit: not sent again
    // enable.auto.commit=false: no timer ever commits.
    assert_no_commit(&sim.tick_at(10 * COMMIT_MS));
    let (generation_id, sent) = expect_user_commit(sim.on(commit_requested(7, None)), 7);
    assert_eq!((generation_id, sent.clone()), (GEN, offsets(&[(0, 10)])));
    // The answer goes to the caller, and the member now holds it as committed.
    assert_eq!(expect_answer(sim.on(commit_answered(7, &[(0, 10)], Ok(Vec::new()))), 7), Ok(()));
    assert_eq!(sim.member.committed(), &offsets(&[(0, 10), (1, 3)]));
}

#[test]
fn manual_commit_with_nothing_new_answers_at_once_without_a_request() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[(0, 4)]);
    sim.on(consumed(0, 4));
    assert_eq!(expect_answer(sim.on(commit_requested(1, None)), 1), Ok(()));
}

#[test]
fn explicit_offsets_are_sent_as_given_even_backwards() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[(0, 9)]);
    let (_, sent) = expect_user_commit(sim.on(commit_requested(2, Some(&[(0, 5)]))), 2);
    assert_eq!(sent, offsets(&[(0, 5)]));
    assert_eq!(expect_answer(sim.on(commit_answered(2, &[(0, 5)], Ok(Vec::new()))), 2), Ok(()));
    assert_eq!(sim.member.committed(), &offsets(&[(0, 5)]), "what the coordinator holds now");
}

#[test]
fn explicit_offsets_for_partitions_not_assigned_are_refused_without_a_request() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    let result = expect_answer(sim.on(commit_requested(3, Some(&[(0, 5), (4, 1)]))), 3);
    assert_eq!(result, Err(CommitError::NotAssigned(vec![tp(4)])));
    assert!(!result.unwrap_err().is_retriable());
}

#[test]
fn consumed_positions_of_partitions_not_assigned_are_never_committed() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(5, 10)); // not ours: ignored
    sim.on(consumed(0, 2));
    let (_, sent) = expect_user_commit(sim.on(commit_requested(1, None)), 1);
    assert_eq!(sent, offsets(&[(0, 2)]));
}

#[test]
fn manual_commit_during_a_rebalance_is_a_retriable_rebalance_in_progress() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(0, 2));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    expect_join(sim.on(Event::Revoked));
    // Rejoining: nothing is sent, the caller is told to try again.
    let result = expect_answer(sim.on(commit_requested(4, None)), 4);
    assert_eq!(result, Err(CommitError::RebalanceInProgress));
    assert!(result.unwrap_err().is_retriable());
}

#[test]
fn manual_commit_while_the_consumer_holds_a_revocation_open_uses_the_old_generation() {
    let mut sim = Sim::stable(manual_commit_config(), &[0, 1], &[]);
    sim.on(consumed(0, 6));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    // The user's revocation handler commits before the consumer answers Revoked.
    let (generation_id, sent) = expect_user_commit(sim.on(commit_requested(9, None)), 9);
    assert_eq!((generation_id, sent), (GEN, offsets(&[(0, 6)])));
    assert_eq!(expect_answer(sim.on(commit_answered(9, &[(0, 6)], Ok(Vec::new()))), 9), Ok(()));
    assert_eq!(expect_join(sim.on(Event::Revoked)), MEMBER);
    assert_eq!(sim.member.committed(), &offsets(&[(0, 6)]));
}

#[test]
fn the_rejoin_waits_for_a_user_commit_still_in_flight_at_revocation() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(0, 6));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    expect_user_commit(sim.on(commit_requested(1, None)), 1);
    // commit_async, then the consumer answers at once: no JoinGroup yet.
    assert_eq!(sim.on(Event::Revoked), vec![]);
    // A second commit now would race the rejoin: refused.
    assert_eq!(expect_answer(sim.on(commit_requested(2, None)), 2), Err(CommitError::RebalanceInProgress));
    let actions = sim.on(commit_answered(1, &[(0, 6)], Ok(Vec::new())));
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0], Action::AnswerCommit { id: 1, result: Ok(()) });
    assert!(matches!(&actions[1], Action::Send(Request::Join { member_id, .. }) if member_id == MEMBER), "{actions:?}");
}

#[test]
fn manual_commit_when_the_generation_is_gone_is_refused_during_revocation() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(0, 6));
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::IllegalGeneration)))));
    assert_eq!(expect_answer(sim.on(commit_requested(1, None)), 1), Err(CommitError::RebalanceInProgress));
}

#[test]
fn per_partition_refusals_reach_the_caller_and_a_rebalance_error_rejoins() {
    let mut sim = Sim::stable(manual_commit_config(), &[0, 1], &[]);
    sim.on(consumed(0, 3));
    sim.on(consumed(1, 4));
    expect_user_commit(sim.on(commit_requested(5, None)), 5);
    let actions = sim.on(commit_answered(5, &[(0, 3), (1, 4)], Ok(vec![(tp(1), E::IllegalGeneration)])));
    assert_eq!(
        actions[0],
        Action::AnswerCommit { id: 5, result: Err(CommitError::Refused(vec![(tp(1), E::IllegalGeneration)])) }
    );
    // The generation is gone: revoke (no commit), then rejoin.
    assert!(matches!(&actions[1..], [Action::Revoke { .. }]), "{actions:?}");
    assert_eq!(sim.member.committed(), &offsets(&[(0, 3)]), "partition 0 was accepted");
}

#[test]
fn a_lost_connection_is_a_retriable_transport_error() {
    let mut sim = Sim::stable(manual_commit_config(), &[0], &[]);
    sim.on(consumed(0, 3));
    expect_user_commit(sim.on(commit_requested(1, None)), 1);
    let actions = sim.on(commit_answered(1, &[(0, 3)], Err(Failure::Transport("reset".into()))));
    assert_eq!(actions[0], Action::AnswerCommit { id: 1, result: Err(CommitError::Transport("reset".into())) });
    assert_eq!(&actions[1..], [find_coordinator()], "{actions:?}");
    // Meanwhile: no coordinator, nothing sent.
    let result = expect_answer(sim.on(commit_requested(2, None)), 2);
    assert_eq!(result, Err(CommitError::CoordinatorUnavailable));
    assert!(result.unwrap_err().is_retriable());
}

#[test]
fn a_user_commit_answer_does_not_end_the_revocation_commit() {
    // Auto-commit on: the revocation commits itself; a user commit of the same
    // offsets answered meanwhile must not be taken for it.
    let mut sim = Sim::stable(config(), &[0], &[]);
    sim.on(consumed(0, 6));
    expect_user_commit(sim.on(commit_requested(1, None)), 1);
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    // The user's commit is in flight: the revocation waits for it.
    assert_eq!(sim.on(Event::Revoked), vec![]);
    let actions = sim.on(commit_answered(1, &[(0, 6)], Ok(Vec::new())));
    // Answered, and nothing new to commit: straight to the rejoin.
    assert_eq!(actions[0], Action::AnswerCommit { id: 1, result: Ok(()) });
    assert!(matches!(&actions[1..], [Action::Send(Request::Join { .. })]), "{actions:?}");
}

#[test]
fn commit_after_close_is_closed() {
    let mut sim = Sim::stable(manual_commit_config(), &[], &[]);
    sim.on(Event::Close);
    sim.on(Event::Left);
    assert_eq!(expect_answer(sim.on(commit_requested(1, None)), 1), Err(CommitError::Closed));
}

// ---- cooperative rebalancing (KIP-429) -------------------------------------------------------

fn coop_config() -> GroupConfig {
    GroupConfig { assignors: vec![Assignor::CooperativeSticky], ..base_config() }
}

/// Asserts a single Join offering exactly `names`; its member id and first subscription.
#[track_caller]
fn expect_join_offering(actions: Vec<Action>, names: &[&str]) -> (String, Subscription) {
    match single(actions) {
        Action::Send(Request::Join { member_id, protocols, .. }) => {
            assert_eq!(protocols.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), names, "offered in order");
            (member_id, Subscription::decode(&protocols[0].1).expect("JoinGroup metadata decodes"))
        }
        other => panic!("expected Join, got {other:?}"),
    }
}

#[track_caller]
fn expect_coop_join(actions: Vec<Action>) -> (String, Subscription) {
    expect_join_offering(actions, &["cooperative-sticky"])
}

/// The partitions of [`TOPIC`] a subscription lists as owned.
fn owned_of(sub: &Subscription) -> Vec<i32> {
    sub.owned_partitions.iter().filter(|t| t.topic == TOPIC).flat_map(|t| t.partitions.clone()).collect()
}

fn coop_follower_join(generation_id: i32) -> JoinResult {
    JoinResult { protocol_name: Some("cooperative-sticky".into()), ..follower_join(generation_id, MEMBER) }
}

#[track_caller]
fn expect_sync(actions: Vec<Action>) {
    match single(actions) {
        Action::Send(Request::Sync { member_id, .. }) => assert_eq!(member_id, MEMBER),
        other => panic!("expected Sync, got {other:?}"),
    }
}

fn tps(partitions: &[i32]) -> Vec<TopicPartition> {
    partitions.iter().map(|&p| tp(p)).collect()
}

impl Sim {
    /// A Stable cooperative follower of generation [`GEN`] owning `partitions`.
    fn coop_stable(partitions: &[i32], committed: &[(i32, i64)]) -> Self {
        let mut sim = Self::new(coop_config());
        assert_eq!(sim.member.start(), vec![find_coordinator()]);
        let (id, first) = expect_coop_join(sim.on(Event::CoordinatorFound(Ok(COORDINATOR))));
        assert_eq!((id.as_str(), owned_of(&first), first.generation_id), ("", vec![], -1));
        let (id, _) = expect_coop_join(sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into())))));
        assert_eq!(id, MEMBER);
        expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(GEN)))));
        let fetch = sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, partitions)]))));
        assert_eq!(single(fetch), fetch_offsets(tps(partitions)));
        let assign = single(sim.on(Event::OffsetsFetched(Ok(offsets(committed)))));
        let expected = partitions.iter().map(|&p| (tp(p), committed.iter().find(|(q, _)| *q == p).map(|(_, o)| *o)));
        assert_eq!(assign, Action::Assign { partitions: expected.collect() });
        assert!(sim.member.is_stable());
        sim
    }

    /// From Stable with nothing uncommitted: the heartbeat at `ms` learns of a
    /// rebalance; the member rejoins at once, keeping its partitions.
    fn coop_rebalance_at(&mut self, ms: u64) -> Subscription {
        assert_eq!(self.tick_at(ms), vec![heartbeat(self.member.generation_id())]);
        let (_, sub) = expect_coop_join(self.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
        sub
    }
}

#[test]
fn the_protocol_is_cooperative_only_when_every_assignor_is() {
    assert_eq!(GroupMember::new(coop_config()).protocol(), RebalanceProtocol::Cooperative);
    assert_eq!(GroupMember::new(config()).protocol(), RebalanceProtocol::Eager);
    // Java's default list: eager until range is removed.
    let java_default = GroupConfig { assignors: vec![Assignor::Range, Assignor::CooperativeSticky], ..base_config() };
    assert_eq!(GroupMember::new(java_default.clone()).protocol(), RebalanceProtocol::Eager);
    // Both are offered, in the configured order.
    let mut sim = Sim::new(java_default);
    sim.member.start();
    let (_, sub) =
        expect_join_offering(sim.on(Event::CoordinatorFound(Ok(COORDINATOR))), &["range", "cooperative-sticky"]);
    assert_eq!(sub.topics, vec![TOPIC.to_string()]);
}

#[test]
fn range_then_cooperative_sticky_rebalances_eagerly_even_when_the_coordinator_picks_cooperative_sticky() {
    let config = GroupConfig { assignors: vec![Assignor::Range, Assignor::CooperativeSticky], ..base_config() };
    let mut sim = Sim::new(config);
    sim.member.start();
    let names = ["range", "cooperative-sticky"];
    expect_join_offering(sim.on(Event::CoordinatorFound(Ok(COORDINATOR))), &names);
    expect_join_offering(sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into())))), &names);
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(GEN)))));
    single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0, 1])])))));
    single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new()))));
    sim.tick_at(HB_MS);
    // Eager: everything goes before JoinGroup.
    assert_eq!(expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress))))), tps(&[0, 1]));
    let (_, sub) = expect_join_offering(sim.on(Event::Revoked), &names);
    assert!(owned_of(&sub).is_empty(), "an eager member owns nothing when it joins: {sub:?}");
}

#[test]
fn the_leader_runs_the_assignor_the_coordinator_selected_and_withholds_owned_partitions() {
    // This member lists range first; the coordinator picked cooperative-sticky
    // (all members support it), so the leader must run that one.
    let config = GroupConfig { assignors: vec![Assignor::Range, Assignor::CooperativeSticky], ..base_config() };
    let mut sim = Sim::new(config);
    sim.member.start();
    sim.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into()))));
    let owning = |partitions: Vec<i32>| {
        Subscription {
            owned_partitions: vec![TopicPartitions { topic: TOPIC.into(), partitions }],
            generation_id: 3,
            ..Subscription::new([TOPIC])
        }
        .encode(3)
        .expect("encodes")
    };
    let members = vec![
        JoinedMember { member_id: MEMBER.into(), group_instance_id: None, metadata: subscription_bytes(&[TOPIC]) },
        JoinedMember { member_id: "m-2".into(), group_instance_id: None, metadata: owning(vec![0, 1, 2]) },
        JoinedMember { member_id: "m-3".into(), group_instance_id: None, metadata: subscription_bytes(&[TOPIC]) },
    ];
    let joined = JoinResult {
        generation_id: 4,
        member_id: MEMBER.into(),
        leader: MEMBER.into(),
        protocol_name: Some("cooperative-sticky".into()),
        members,
    };
    assert_eq!(single(sim.on(Event::Joined(Ok(joined)))), fetch_metadata(&[TOPIC]));
    let counts = BTreeMap::from([(TOPIC.to_string(), 3)]);
    let (protocol_name, assignments) = match single(sim.on(Event::Metadata(Ok(counts)))) {
        Action::Send(Request::Sync { protocol_name, assignments, .. }) => (protocol_name, assignments),
        other => panic!("expected Sync, got {other:?}"),
    };
    assert_eq!(protocol_name, "cooperative-sticky");
    let decoded: BTreeMap<String, Vec<i32>> = assignments
        .iter()
        .map(|(m, b)| (m.clone(), Assignment::decode(b).expect("decodes").partitions.remove(TOPIC).unwrap_or_default()))
        .collect();
    // m-2 keeps p0; p1 and p2 are still m-2's, so nobody gets them this round
    // (range would have given p0 to m-1).
    let expected: BTreeMap<String, Vec<i32>> =
        [(MEMBER.to_string(), vec![]), ("m-2".to_string(), vec![0]), ("m-3".to_string(), vec![])].into();
    assert_eq!(decoded, expected);
}

#[test]
fn cooperative_join_lists_owned_partitions_and_their_generation_without_revoking() {
    let mut sim = Sim::coop_stable(&[0, 1], &[(0, 3)]);
    // Nothing consumed: no commit, no Revoke, straight to JoinGroup.
    let sub = sim.coop_rebalance_at(HB_MS);
    assert_eq!(owned_of(&sub), vec![0, 1]);
    assert_eq!(sub.generation_id, GEN);
    assert_eq!(sim.member.assigned(), &tps(&[0, 1]).into_iter().collect());
}

#[test]
fn cooperative_rebalance_commits_first_then_joins_and_keeps_counting_positions() {
    let mut sim = Sim::coop_stable(&[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    let commit = sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress))));
    assert_eq!(expect_commit(commit), (GEN, MEMBER.to_string(), offsets(&[(0, 5)])), "no Revoke before it");
    let (_, sub) = expect_coop_join(sim.on(committed_ok(&[(0, 5)])));
    assert_eq!(owned_of(&sub), vec![0, 1]);
    // The consumer goes on during the rebalance; its positions count.
    sim.on(consumed(1, 7));
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    assert_eq!(single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0, 1])]))))), fetch_offsets(vec![]));
    assert_eq!(single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new())))), Action::Assign { partitions: vec![] });
    let actions = sim.tick_at(HB_MS + COMMIT_MS);
    assert!(actions.contains(&auto_commit(2, offsets(&[(1, 7)]))), "{actions:?}");
}

#[test]
fn cooperative_sync_revokes_only_what_moved_starts_what_was_added_and_rejoins_at_once() {
    let mut sim = Sim::coop_stable(&[0, 1], &[(0, 2), (1, 3)]);
    sim.coop_rebalance_at(HB_MS);
    sim.on(consumed(0, 5));
    sim.on(consumed(1, 6));
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    // Generation 2: 0 moves away, 1 stays, 2 is new.
    let revoke = sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[1, 2])]))));
    assert_eq!(expect_revoke(revoke), tps(&[0]), "revoked = owned - assigned");
    // The revoked partition's progress (and the kept one's) is committed with the new generation.
    let (generation, _, committed) = expect_commit(sim.on(Event::Revoked));
    assert_eq!((generation, committed.clone()), (2, offsets(&[(0, 5), (1, 6)])));
    let fetch = sim.on(Event::Committed { offsets: committed, result: Ok(Vec::new()) });
    assert_eq!(single(fetch), fetch_offsets(tps(&[2])), "added = assigned - owned");
    let actions = sim.on(Event::OffsetsFetched(Ok(offsets(&[(2, 9)]))));
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert_eq!(actions[0], Action::Assign { partitions: vec![(tp(2), Some(9))] });
    // KIP-429: something was revoked, so rejoin at once for the second round.
    let (_, sub) = expect_coop_join(vec![actions[1].clone()]);
    assert_eq!(owned_of(&sub), vec![1, 2]);
    assert_eq!(sub.generation_id, 2);
    // Second round: same assignment, nothing revoked, no further rejoin.
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(3)))));
    assert_eq!(single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[1, 2])]))))), fetch_offsets(vec![]));
    assert_eq!(single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new())))), Action::Assign { partitions: vec![] });
    assert!(sim.member.is_stable());
    assert_eq!(sim.member.committed(), &offsets(&[(1, 6), (2, 9)]));
}

#[test]
fn cooperative_sync_that_only_adds_neither_revokes_nor_rejoins() {
    let mut sim = Sim::coop_stable(&[0], &[]);
    sim.coop_rebalance_at(HB_MS);
    sim.on(consumed(0, 4));
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    assert_eq!(single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0, 1])]))))), fetch_offsets(tps(&[1])));
    // The committed offset of the kept partition is not read again: its position stands.
    let assign = single(sim.on(Event::OffsetsFetched(Ok(offsets(&[(0, 1), (1, -1)])))));
    assert_eq!(assign, Action::Assign { partitions: vec![(tp(1), None)] });
    assert!(sim.member.is_stable());
    let actions = sim.tick_at(HB_MS + COMMIT_MS);
    assert!(actions.contains(&auto_commit(2, offsets(&[(0, 4)]))), "{actions:?}");
}

#[test]
fn cooperative_illegal_generation_loses_partitions_without_commit() {
    let mut sim = Sim::coop_stable(&[0, 1], &[]);
    sim.on(consumed(0, 5));
    sim.tick_at(HB_MS);
    let revoke = sim.on(Event::Heartbeat(Err(broker(E::IllegalGeneration))));
    assert_eq!(expect_revoke(revoke), tps(&[0, 1]), "a lost generation loses everything");
    let join = sim.on(Event::Revoked);
    assert_no_commit(&join);
    let (id, sub) = expect_coop_join(join);
    assert_eq!((id.as_str(), owned_of(&sub), sub.generation_id), (MEMBER, vec![], -1));
}

#[test]
fn cooperative_unknown_member_on_sync_loses_partitions_and_joins_afresh() {
    let mut sim = Sim::coop_stable(&[0], &[]);
    sim.coop_rebalance_at(HB_MS);
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    assert_eq!(expect_revoke(sim.on(Event::Synced(Err(broker(E::UnknownMemberId))))), tps(&[0]));
    let join = sim.on(Event::Revoked);
    assert_no_commit(&join);
    let (id, sub) = expect_coop_join(join);
    assert_eq!((id.as_str(), owned_of(&sub)), ("", vec![]));
}

#[test]
fn cooperative_rebalance_in_progress_on_sync_rejoins_keeping_partitions() {
    let mut sim = Sim::coop_stable(&[0], &[]);
    sim.coop_rebalance_at(HB_MS);
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    let (_, sub) = expect_coop_join(sim.on(Event::Synced(Err(broker(E::RebalanceInProgress)))));
    assert_eq!(owned_of(&sub), vec![0]);
}

#[test]
fn cooperative_fenced_instance_is_fatal() {
    let config = GroupConfig { group_instance_id: Some("instance-a".into()), ..coop_config() };
    let mut sim = Sim::new(config);
    sim.member.start();
    sim.on(Event::CoordinatorFound(Ok(COORDINATOR)));
    sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into()))));
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(GEN)))));
    single(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[0])])))));
    single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new()))));
    sim.tick_at(HB_MS);
    assert_eq!(expect_fatal(sim.on(Event::Heartbeat(Err(broker(E::FencedInstanceId))))).error, E::FencedInstanceId);
}

#[test]
fn cooperative_close_revokes_everything_commits_and_leaves() {
    let mut sim = Sim::coop_stable(&[0, 1], &[]);
    sim.on(consumed(1, 3));
    assert_eq!(expect_revoke(sim.on(Event::Close)), tps(&[0, 1]));
    assert_eq!(expect_commit(sim.on(Event::Revoked)).2, offsets(&[(1, 3)]));
    assert_eq!(single(sim.on(committed_ok(&[(1, 3)]))), leave());
}

#[test]
fn cooperative_close_while_joining_revokes_what_it_owns() {
    let mut sim = Sim::coop_stable(&[0], &[]);
    sim.coop_rebalance_at(HB_MS);
    assert_eq!(expect_revoke(sim.on(Event::Close)), tps(&[0]));
    assert_eq!(single(sim.on(Event::Revoked)), leave());
    // The JoinGroup answer that comes late changes nothing.
    assert_eq!(sim.on(Event::Joined(Ok(coop_follower_join(2)))), vec![]);
}

#[test]
fn cooperative_close_during_a_partial_revocation_revokes_the_rest_too() {
    let mut sim = Sim::coop_stable(&[0, 1], &[]);
    sim.coop_rebalance_at(HB_MS);
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(2)))));
    assert_eq!(expect_revoke(sim.on(Event::Synced(Ok(assignment_bytes(&[(TOPIC, &[1, 2])]))))), tps(&[0]));
    assert_eq!(sim.on(Event::Close), vec![]);
    // Nothing consumed: no commit. The kept partition goes now, then LeaveGroup;
    // the added one was never started.
    assert_eq!(expect_revoke(sim.on(Event::Revoked)), tps(&[1]));
    assert_eq!(single(sim.on(Event::Revoked)), leave());
}

#[test]
fn eager_joins_still_list_nothing_owned() {
    let mut sim = Sim::stable(config(), &[0, 1], &[]);
    sim.tick_at(HB_MS);
    expect_revoke(sim.on(Event::Heartbeat(Err(broker(E::RebalanceInProgress)))));
    match single(sim.on(Event::Revoked)) {
        Action::Send(Request::Join { protocols, .. }) => {
            let sub = Subscription::decode(&protocols[0].1).expect("decodes");
            assert!(sub.owned_partitions.is_empty(), "{sub:?}");
        }
        other => panic!("expected Join, got {other:?}"),
    }
}

#[test]
fn cooperative_pattern_change_revokes_only_the_topics_no_longer_matched() {
    let config = GroupConfig { topic_pattern: Some("d.*".into()), topics: vec![], ..refreshing(coop_config()) };
    let mut sim = Sim::new(config);
    assert_eq!(sim.member.start(), vec![refresh_topics(&[])]);
    assert_eq!(single(sim.on(view(&[(TOPIC, 2), ("delta", 1)], Some(&["delta", TOPIC])))), find_coordinator());
    expect_coop_join(sim.on(Event::CoordinatorFound(Ok(COORDINATOR))));
    expect_coop_join(sim.on(Event::Joined(Err((broker(E::MemberIdRequired), MEMBER.into())))));
    expect_sync(sim.on(Event::Joined(Ok(coop_follower_join(GEN)))));
    let both = assignment_bytes(&[(TOPIC, &[0]), ("delta", &[0])]);
    single(sim.on(Event::Synced(Ok(both))));
    single(sim.on(Event::OffsetsFetched(Ok(BTreeMap::new()))));
    assert_eq!(single(sim.tick_at(AGE_MS)), refresh_topics(&["delta", TOPIC]));
    // `delta` is gone: only its partition is revoked; demo-0 keeps fetching.
    let revoke = sim.on(view(&[(TOPIC, 2)], Some(&[TOPIC])));
    assert_eq!(expect_revoke(revoke), vec![TopicPartition::new("delta", 0)]);
    let (_, sub) = expect_coop_join(sim.on(Event::Revoked));
    assert_eq!((sub.topics.clone(), owned_of(&sub)), (vec![TOPIC.to_string()], vec![0]));
}
