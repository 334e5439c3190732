//! The KIP-848 consumer-protocol member, sans IO: ConsumerGroupHeartbeat (v1) with
//! member epochs, the target assignment the coordinator computes reconciled
//! (revoke, commit, assign, acknowledge in the next heartbeat), commits carrying
//! the member epoch. Same shape as the classic member in `state`:
//! `handle(event, now) -> actions` and `next_deadline()`, time passed in.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError as E;
use uuid::Uuid;

use super::config::GroupConfig;
use super::error::{CommitError, GroupError};
use super::io::Failure;
use crate::types::TopicPartition;

/// KIP-848 member epochs with a meaning of their own.
pub const JOIN_EPOCH: i32 = 0;
/// A dynamic member leaving for good.
pub const LEAVE_EPOCH: i32 = -1;
/// A static member (KIP-345) leaving for now: it keeps its assignment for the session timeout.
pub const STATIC_LEAVE_EPOCH: i32 = -2;

/// A ConsumerGroupHeartbeat to send; `None` fields are "unchanged since the last
/// heartbeat" (null on the wire).
#[derive(Debug, Clone, PartialEq)]
pub struct Heartbeat {
    pub group_id: String,
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    /// `client.rack`.
    pub rack_id: Option<String>,
    /// `max.poll.interval.ms`.
    pub rebalance_timeout: Option<Duration>,
    pub subscribed_topic_names: Option<Vec<String>>,
    pub subscribed_topic_regex: Option<String>,
    /// `group.remote.assignor`.
    pub server_assignor: Option<String>,
    /// The partitions this member owns now (the acknowledgement), by topic id.
    pub topic_partitions: Option<BTreeMap<Uuid, Vec<i32>>>,
}

/// What a successful ConsumerGroupHeartbeat answered.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeartbeatAnswer {
    pub member_id: Option<String>,
    pub member_epoch: i32,
    /// Ignored when not positive.
    pub heartbeat_interval_ms: i32,
    /// The target assignment, only when it changed.
    pub assignment: Option<BTreeMap<Uuid, Vec<i32>>>,
}

/// A request for the driver to send; its answer comes back as the event named.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Answered by [`Event::CoordinatorFound`].
    FindCoordinator { group_id: String },
    /// Answered by [`Event::Heartbeat`].
    Heartbeat(Heartbeat),
    /// Topic names of these ids (Metadata); answered by [`Event::TopicsResolved`].
    ResolveTopics { ids: Vec<Uuid> },
    /// OffsetFetch v9 of newly assigned partitions; answered by [`Event::OffsetsFetched`].
    FetchOffsets { group_id: String, member_id: String, member_epoch: i32, partitions: Vec<TopicPartition> },
    /// OffsetCommit v9: answered by [`Event::CommitAnswered`] with `reply: Some(id)`,
    /// else by [`Event::Committed`].
    Commit {
        group_id: String,
        member_id: String,
        member_epoch: i32,
        offsets: BTreeMap<TopicPartition, i64>,
        reply: Option<u64>,
    },
}

/// Per-partition commit failures, or one failure for the whole request.
pub type CommitResult = Result<Vec<(TopicPartition, E)>, Failure>;

/// What happened, fed to [`ConsumerMember::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Check timers.
    Tick,
    CoordinatorFound(Result<i32, Failure>),
    Heartbeat(Result<HeartbeatAnswer, Failure>),
    /// Names of the topic ids asked for (ids unknown to the cluster are missing).
    TopicsResolved(Result<BTreeMap<Uuid, String>, Failure>),
    OffsetsFetched(Result<BTreeMap<TopicPartition, i64>, Failure>),
    Committed {
        offsets: BTreeMap<TopicPartition, i64>,
        result: CommitResult,
    },
    CommitAnswered {
        id: u64,
        offsets: BTreeMap<TopicPartition, i64>,
        result: CommitResult,
    },
    /// The consumer handed out every record of `tp` before `next_offset`.
    Consumed {
        tp: TopicPartition,
        next_offset: i64,
    },
    /// The consumer stopped fetching what [`Action::Revoke`] named.
    Revoked,
    /// The user is polling (see `consumer::poll_notice`): restarts the
    /// `max.poll.interval.ms` timer, and rejoins a member that it expired.
    Polled,
    Close,
    /// The user asks to commit `offsets` (`None`: what was consumed).
    CommitRequested {
        id: u64,
        offsets: Option<BTreeMap<TopicPartition, i64>>,
    },
}

/// What to do, returned by [`ConsumerMember::handle`].
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Send(Request),
    /// Start fetching: committed offset, or None for `auto.offset.reset`.
    Assign {
        partitions: Vec<(TopicPartition, Option<i64>)>,
    },
    /// Stop fetching these and answer with [`Event::Revoked`].
    Revoke {
        partitions: Vec<TopicPartition>,
    },
    AnswerCommit {
        id: u64,
        result: Result<(), CommitError>,
    },
    Fatal(GroupError),
    Closed,
}

/// What the member does about an error of a KIP-848 group request: one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The same request after backoff.
    Retry,
    /// Find the coordinator again (with backoff), then heartbeat in full.
    Rediscover,
    /// The member's epoch is gone: its partitions are lost (no commit); rejoin at
    /// epoch 0 with the same member id (Java 4.x, KIP-1082).
    Fenced,
    /// A commit or offset fetch with an old epoch: retry after the next heartbeat.
    AfterHeartbeat,
    /// Nothing a retry fixes.
    Fatal,
}

/// The recovery for `error`, as the Java client's heartbeat and commit managers do.
pub fn recovery(error: E) -> Recovery {
    match error {
        E::FencedMemberEpoch | E::UnknownMemberId => Recovery::Fenced,
        E::StaleMemberEpoch => Recovery::AfterHeartbeat,
        E::UnstableOffsetCommit => Recovery::Retry,
        E::CoordinatorNotAvailable
        | E::NotCoordinator
        | E::CoordinatorLoadInProgress
        | E::NetworkException
        | E::RequestTimedOut => Recovery::Rediscover,
        // KIP-848: a static member back while its old incarnation still runs. Fatal in
        // Java and librdkafka; retrying would go on, unseen, as long as the other lives.
        E::UnreleasedInstanceId
        | E::FencedInstanceId
        | E::GroupMaxSizeReached
        | E::UnsupportedAssignor
        | E::InvalidRequest
        | E::InvalidRegularExpression
        | E::GroupAuthorizationFailed
        | E::TopicAuthorizationFailed
        | E::UnsupportedVersion
        | E::InvalidGroupId => Recovery::Fatal,
        e if e.is_retriable() => Recovery::Retry,
        _ => Recovery::Fatal,
    }
}

/// What a fatal KIP-848 error means, in Kafka's setting names.
pub fn explain(error: E) -> Option<&'static str> {
    Some(match error {
        // KIP-848: the member that comes second is fenced (classic fenced the first).
        E::FencedInstanceId => "another member already uses this group.instance.id",
        E::UnreleasedInstanceId => {
            "another member with this group.instance.id is still in the group; stop it, or wait for its session to expire"
        }
        E::UnsupportedAssignor => "the broker has no such assignor (group.remote.assignor, group.consumer.assignors)",
        E::InvalidRegularExpression => "the broker refused the topic pattern (RE2J syntax)",
        E::InvalidRequest => "the broker refused the heartbeat as invalid",
        E::UnsupportedVersion => {
            "the broker does not serve the consumer protocol (group.coordinator.rebalance.protocols)"
        }
        e => return super::recovery::explain(e),
    })
}

/// Kafka's member id: a random UUID written as Java's `Uuid.toString()` does
/// (URL-safe base64 of its 16 bytes, unpadded: 22 characters).
pub fn new_member_id(uuid: Uuid) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let bytes = uuid.as_bytes();
    let mut out = String::with_capacity(22);
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}

/// The heartbeat fields last sent, for partial requests.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    rack: Option<String>,
    rebalance_timeout: Duration,
    topics: Vec<String>,
    regex: Option<String>,
    assignor: Option<String>,
    owned: BTreeSet<TopicPartition>,
}

/// One reconciliation step under way.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Idle,
    /// Waiting for the names of the target's topic ids.
    Resolving,
    /// Waiting for [`Event::Revoked`]; `lost`: no commit (fenced).
    Revoking {
        partitions: BTreeSet<TopicPartition>,
        lost: bool,
    },
    /// The revoked partitions' last auto-commit.
    CommittingRevoked {
        partitions: BTreeSet<TopicPartition>,
        offsets: BTreeMap<TopicPartition, i64>,
    },
    /// Committed offsets of the partitions to assign.
    FetchingOffsets {
        partitions: BTreeSet<TopicPartition>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Active,
    /// Closing: the leave heartbeat is sent (or will be once none is in flight).
    Leaving,
    /// `max.poll.interval.ms` passed without a poll: the member leaves (as
    /// closing does, but its partitions are lost, not committed) and rejoins at
    /// epoch 0 at the next poll, as Java's "stale" member does.
    Stale,
    Closed,
    Failed,
}

/// A member of a consumer-protocol (KIP-848) group.
#[derive(Debug)]
pub struct ConsumerMember {
    config: GroupConfig,
    /// `group.remote.assignor`; None lets the broker choose.
    server_assignor: Option<String>,
    member_id: String,
    epoch: i32,
    phase: Phase,
    coordinator: Option<i32>,
    finding: bool,
    find_at: Option<Instant>,
    attempts: u32,
    heartbeat_interval: Duration,
    heartbeat_in_flight: bool,
    /// What the heartbeat in flight carries, kept once it succeeds.
    in_flight: Option<Sent>,
    /// None: the next heartbeat is a full one (joining, after an error).
    last_sent: Option<Sent>,
    next_heartbeat: Option<Instant>,
    leave_sent: bool,
    /// The latest target assignment, by topic id.
    target: BTreeMap<Uuid, BTreeSet<i32>>,
    names: BTreeMap<Uuid, String>,
    owned: BTreeSet<TopicPartition>,
    step: Step,
    /// Fenced while a step was under way: lose everything once it ends.
    lost_pending: bool,
    closing: bool,
    reconcile_at: Option<Instant>,
    positions: BTreeMap<TopicPartition, i64>,
    committed: BTreeMap<TopicPartition, i64>,
    next_auto_commit: Option<Instant>,
    /// Commits refused with STALE_MEMBER_EPOCH, sent again after the next heartbeat.
    stale_commits: Vec<(Option<u64>, BTreeMap<TopicPartition, i64>)>,
    /// When the user last polled, for `max.poll.interval.ms` (None before start).
    last_poll: Option<Instant>,
    /// Stale, and the user polled since: rejoin once the leave is done.
    polled_while_stale: bool,
}

impl ConsumerMember {
    /// A member with `member_id` (see [`new_member_id`]) and `server_assignor`
    /// (`group.remote.assignor`).
    pub fn new(config: GroupConfig, member_id: String, server_assignor: Option<String>) -> Self {
        Self {
            config,
            server_assignor,
            member_id,
            epoch: JOIN_EPOCH,
            phase: Phase::Active,
            coordinator: None,
            finding: false,
            find_at: None,
            attempts: 0,
            // Until the broker says (group.consumer.heartbeat.interval.ms).
            heartbeat_interval: Duration::from_secs(5),
            heartbeat_in_flight: false,
            in_flight: None,
            last_sent: None,
            next_heartbeat: None,
            leave_sent: false,
            target: BTreeMap::new(),
            names: BTreeMap::new(),
            owned: BTreeSet::new(),
            step: Step::Idle,
            lost_pending: false,
            closing: false,
            reconcile_at: None,
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            next_auto_commit: None,
            stale_commits: Vec::new(),
            last_poll: None,
            polled_while_stale: false,
        }
    }

    /// Starts the member: find the coordinator.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        self.find_at = Some(now);
        self.last_poll = Some(now);
        let mut out = Vec::new();
        self.drive(now, &mut out);
        out
    }

    pub fn coordinator(&self) -> Option<i32> {
        self.coordinator
    }
    pub fn member_epoch(&self) -> i32 {
        self.epoch
    }
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
    #[cfg(test)]
    pub fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// When the member wants a [`Event::Tick`] next.
    pub fn next_deadline(&self) -> Option<Instant> {
        if self.is_closed() {
            return None;
        }
        // Exactly the timers `drive` acts on now: one it would skip would wake
        // the driver in a loop.
        if self.coordinator.is_none() {
            return if self.finding { None } else { self.find_at };
        }
        let mut d = self.reconcile_at;
        if self.phase == Phase::Active {
            if !self.heartbeat_in_flight {
                d = earliest(d, self.next_heartbeat);
            }
            if self.epoch > 0 && self.config.enable_auto_commit {
                d = earliest(d, self.next_auto_commit);
            }
            if self.epoch > 0 {
                d = earliest(d, self.poll_deadline());
            }
        }
        d
    }

    /// When `max.poll.interval.ms` runs out without a poll.
    fn poll_deadline(&self) -> Option<Instant> {
        self.last_poll.map(|t| t + self.config.rebalance_timeout)
    }

    /// Feeds one event in; the actions to perform come out.
    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.is_closed() {
            if let Event::CommitRequested { id, .. } = event {
                out.push(Action::AnswerCommit { id, result: Err(CommitError::Closed) });
            }
            return out;
        }
        match event {
            Event::Tick => {}
            Event::CoordinatorFound(r) => self.on_coordinator(r, now, &mut out),
            Event::Heartbeat(r) => self.on_heartbeat(r, now, &mut out),
            Event::TopicsResolved(r) => self.on_resolved(r, now, &mut out),
            Event::OffsetsFetched(r) => self.on_offsets(r, now, &mut out),
            Event::Committed { offsets, result } => self.on_committed(None, offsets, result, now, &mut out),
            Event::CommitAnswered { id, offsets, result } => {
                self.on_committed(Some(id), offsets, result, now, &mut out)
            }
            Event::Consumed { tp, next_offset } => {
                if self.owned.contains(&tp) {
                    self.positions.insert(tp, next_offset);
                }
            }
            Event::Revoked => self.on_revoked(now, &mut out),
            Event::Polled => {
                self.last_poll = Some(now);
                self.polled_while_stale = self.phase == Phase::Stale;
            }
            Event::Close => {
                self.closing = true;
                if self.step == Step::Idle {
                    self.idle(now, &mut out);
                }
            }
            Event::CommitRequested { id, offsets } => self.on_commit_requested(id, offsets, &mut out),
        }
        self.drive(now, &mut out);
        out
    }

    // ---- timers --------------------------------------------------------------------

    /// Sends what is due: FindCoordinator, the heartbeat, the leave, an auto-commit.
    fn drive(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.is_closed() {
            return;
        }
        let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
        if self.coordinator.is_none() {
            if self.phase == Phase::Leaving {
                // Nobody to leave: the coordinator expires the member.
                return self.finish_close(out);
            }
            if !self.finding && due(self.find_at) {
                self.finding = true;
                self.find_at = None;
                out.push(Action::Send(Request::FindCoordinator { group_id: self.config.group_id.clone() }));
            }
            return;
        }
        if self.phase == Phase::Stale && self.polled_while_stale && self.left() {
            self.rejoin(now);
        }
        if self.phase == Phase::Active && self.epoch > 0 && due(self.poll_deadline()) {
            self.go_stale(now, out);
        }
        match self.phase {
            Phase::Active if !self.heartbeat_in_flight && due(self.next_heartbeat) => self.send_heartbeat(out),
            Phase::Leaving | Phase::Stale if !self.heartbeat_in_flight && !self.leave_sent => self.send_leave(out),
            _ => {}
        }
        if self.phase == Phase::Active && self.config.enable_auto_commit && self.epoch > 0 && due(self.next_auto_commit)
        {
            self.next_auto_commit = Some(now + self.config.auto_commit_interval);
            self.auto_commit(out);
        }
        if due(self.reconcile_at) {
            self.reconcile_at = None;
            self.reconcile(now, out);
        }
    }

    fn backoff(&mut self, now: Instant) -> Instant {
        let at = now + self.config.backoff.delay(self.attempts, 0.5);
        self.attempts = self.attempts.saturating_add(1);
        at
    }

    // ---- coordinator ---------------------------------------------------------------

    fn on_coordinator(&mut self, r: Result<i32, Failure>, now: Instant, out: &mut Vec<Action>) {
        self.finding = false;
        match r {
            Ok(node) => {
                self.coordinator = Some(node);
                self.attempts = 0;
                self.last_sent = None;
                self.next_heartbeat = Some(now);
            }
            Err(Failure::Broker(e)) if recovery(e) == Recovery::Fatal => self.fail(e, out),
            Err(f) => {
                tracing::debug!(failure = ?f, "FindCoordinator failed; retrying");
                self.find_at = Some(self.backoff(now));
            }
        }
    }

    /// The coordinator moved or is unreachable: find it again after backoff.
    fn rediscover(&mut self, now: Instant) {
        self.coordinator = None;
        self.last_sent = None;
        self.find_at = Some(self.backoff(now));
    }

    // ---- heartbeats ----------------------------------------------------------------

    fn subscription(&self) -> Sent {
        let (topics, regex) = match &self.config.topic_pattern {
            Some(p) => (Vec::new(), Some(p.clone())),
            None => (self.config.topics.clone(), None),
        };
        Sent {
            rack: self.config.client_rack.clone(),
            rebalance_timeout: self.config.rebalance_timeout,
            topics,
            regex,
            assignor: self.server_assignor.clone(),
            owned: self.owned.clone(),
        }
    }

    fn owned_by_id(&self, owned: &BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
        let ids: BTreeMap<&str, Uuid> = self.names.iter().map(|(id, n)| (n.as_str(), *id)).collect();
        let mut out: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in owned {
            if let Some(id) = ids.get(tp.topic.as_ref() as &str) {
                out.entry(*id).or_default().push(tp.partition);
            }
        }
        out
    }

    /// A heartbeat with only what changed since the last one that succeeded; a
    /// full one when joining, after an error, or while owning nothing (a lost
    /// answer must not leave the broker thinking an assignment was acknowledged).
    fn send_heartbeat(&mut self, out: &mut Vec<Action>) {
        let now_sent = self.subscription();
        let full = self.epoch == JOIN_EPOCH || self.owned.is_empty();
        let last = if full { None } else { self.last_sent.as_ref() };
        let changed = |f: &dyn Fn(&Sent) -> bool| last.is_none_or(|l| !f(l));
        let hb = Heartbeat {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            instance_id: self.config.group_instance_id.clone(),
            rack_id: now_sent.rack.clone().filter(|r| changed(&|l| l.rack.as_ref() == Some(r))),
            rebalance_timeout: changed(&|l| l.rebalance_timeout == now_sent.rebalance_timeout)
                .then_some(now_sent.rebalance_timeout),
            subscribed_topic_names: (now_sent.regex.is_none() && changed(&|l| l.topics == now_sent.topics))
                .then(|| now_sent.topics.clone()),
            subscribed_topic_regex: now_sent.regex.clone().filter(|r| changed(&|l| l.regex.as_ref() == Some(r))),
            server_assignor: now_sent.assignor.clone().filter(|a| changed(&|l| l.assignor.as_ref() == Some(a))),
            topic_partitions: changed(&|l| l.owned == now_sent.owned).then(|| self.owned_by_id(&now_sent.owned)),
        };
        self.heartbeat_in_flight = true;
        self.in_flight = Some(now_sent);
        self.next_heartbeat = None;
        out.push(Action::Send(Request::Heartbeat(hb)));
    }

    /// Heartbeat as soon as none is in flight (an acknowledgement, a rejoin).
    fn expedite(&mut self, now: Instant) {
        self.next_heartbeat = Some(now);
    }

    fn on_heartbeat(&mut self, r: Result<HeartbeatAnswer, Failure>, now: Instant, out: &mut Vec<Action>) {
        self.heartbeat_in_flight = false;
        let sent = self.in_flight.take();
        if self.phase == Phase::Stale {
            // The leave's answer, or that of a heartbeat sent before the timer
            // expired: the member is out of the group until the next poll.
            if let Err(f) = &r {
                tracing::debug!(failure = ?f, "heartbeat failed while stale");
            }
            return;
        }
        if self.phase == Phase::Leaving && self.leave_sent {
            if let Err(f) = &r {
                tracing::warn!(failure = ?f, "the leave heartbeat failed; the coordinator will expire the member");
            }
            return self.finish_close(out);
        }
        let answer = match r {
            Ok(a) => a,
            Err(f) => return self.on_heartbeat_failure(f, now, out),
        };
        self.attempts = 0;
        self.last_sent = sent;
        if let Some(id) = answer.member_id.filter(|id| !id.is_empty()) {
            self.member_id = id;
        }
        let joined = self.epoch <= 0 && answer.member_epoch > 0;
        self.epoch = answer.member_epoch;
        if answer.heartbeat_interval_ms > 0 {
            self.heartbeat_interval = Duration::from_millis(answer.heartbeat_interval_ms as u64);
        }
        if self.next_heartbeat.is_none() {
            self.next_heartbeat = Some(now + self.heartbeat_interval);
        }
        if joined && self.next_auto_commit.is_none() {
            self.next_auto_commit = Some(now + self.config.auto_commit_interval);
        }
        if let Some(a) = answer.assignment {
            self.target = a.into_iter().map(|(id, ps)| (id, ps.into_iter().collect())).collect();
        }
        // STALE_MEMBER_EPOCH commits go again with the epoch just learned, for
        // the partitions still held: another member may own the others by now,
        // and an old position committed over its progress would move it back.
        for (reply, mut offsets) in std::mem::take(&mut self.stale_commits) {
            offsets.retain(|tp, _| self.owned.contains(tp));
            match reply {
                Some(id) if offsets.is_empty() => {
                    out.push(Action::AnswerCommit { id, result: Err(CommitError::RebalanceInProgress) })
                }
                None if offsets.is_empty() => {}
                _ => self.send_commit(offsets, reply, out),
            }
        }
        self.reconcile(now, out);
    }

    fn on_heartbeat_failure(&mut self, f: Failure, now: Instant, out: &mut Vec<Action>) {
        // Java resets its sent fields after any error: the next heartbeat is full.
        self.last_sent = None;
        let rec = match &f {
            Failure::Broker(e) => recovery(*e),
            Failure::Transport(_) => Recovery::Rediscover,
        };
        tracing::debug!(failure = ?f, ?rec, "ConsumerGroupHeartbeat failed");
        match rec {
            // Java: fenced on the way out, there is nothing left to leave.
            Recovery::Fenced if self.phase == Phase::Leaving => self.finish_close(out),
            Recovery::Fenced => self.fenced(now, out),
            Recovery::Retry | Recovery::AfterHeartbeat => self.next_heartbeat = Some(self.backoff(now)),
            Recovery::Rediscover => self.rediscover(now),
            Recovery::Fatal => match f {
                Failure::Broker(e) => self.fail(e, out),
                Failure::Transport(_) => self.rediscover(now),
            },
        }
    }

    /// FENCED_MEMBER_EPOCH / UNKNOWN_MEMBER_ID: the partitions are lost (no
    /// commit: it would be refused, or move offsets back); rejoin at epoch 0 with
    /// the same member id, without backoff.
    fn fenced(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.epoch = JOIN_EPOCH;
        self.expedite(now);
        self.lose_assignment(now, out);
    }

    /// Fenced or stale: the target and the commits waiting for an epoch are
    /// gone, and what is owned is lost (once the step under way ends).
    fn lose_assignment(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.target.clear();
        for (reply, _) in std::mem::take(&mut self.stale_commits) {
            if let Some(id) = reply {
                out.push(Action::AnswerCommit { id, result: Err(CommitError::RebalanceInProgress) });
            }
        }
        // A revocation's last commit waiting to be sent again will not be: the
        // partitions are lost instead.
        if let Step::CommittingRevoked { partitions, .. } = &self.step {
            for tp in partitions.clone() {
                self.owned.remove(&tp);
                self.positions.remove(&tp);
            }
            self.step = Step::Idle;
        }
        self.lost_pending = true;
        if self.step == Step::Idle {
            // Lose what is owned, then close if that was asked for.
            self.idle(now, out);
        }
    }

    /// `max.poll.interval.ms` passed without a poll (Java: "consumer poll
    /// timeout has expired"): leave with the leave epoch, lose the partitions
    /// without committing (the user may still be working on records handed out,
    /// and their next owner starts from the last commit), rejoin at the next poll.
    fn go_stale(&mut self, now: Instant, out: &mut Vec<Action>) {
        tracing::warn!(
            max_poll_interval = ?self.config.rebalance_timeout,
            "no poll within max.poll.interval.ms: leaving the group (partitions lost, not committed); \
             rejoining at the next poll"
        );
        self.phase = Phase::Stale;
        self.epoch = LEAVE_EPOCH;
        self.leave_sent = false;
        self.polled_while_stale = false;
        self.lose_assignment(now, out);
    }

    /// Stale, the leave sent and answered, nothing owned any more.
    fn left(&self) -> bool {
        self.leave_sent && !self.heartbeat_in_flight && self.step == Step::Idle && !self.lost_pending
    }

    /// Back from stale: join again at epoch 0 with the same member id, in full.
    fn rejoin(&mut self, now: Instant) {
        tracing::info!("polled again after max.poll.interval.ms expired: rejoining the group");
        self.phase = Phase::Active;
        self.epoch = JOIN_EPOCH;
        self.leave_sent = false;
        self.polled_while_stale = false;
        self.last_sent = None;
        self.expedite(now);
    }

    fn lose_all(&mut self, out: &mut Vec<Action>) {
        self.lost_pending = false;
        if self.owned.is_empty() {
            return;
        }
        let partitions = std::mem::take(&mut self.owned);
        self.positions.clear();
        out.push(Action::Revoke { partitions: partitions.iter().cloned().collect() });
        self.step = Step::Revoking { partitions, lost: true };
    }

    // ---- reconciliation ------------------------------------------------------------

    /// Moves the owned partitions one step towards the target: names first, then
    /// revoke what is no longer assigned, then assign what is new.
    fn reconcile(&mut self, _now: Instant, out: &mut Vec<Action>) {
        if self.step != Step::Idle || self.closing || self.phase != Phase::Active || self.epoch <= 0 {
            return;
        }
        let unknown: Vec<Uuid> = self.target.keys().filter(|id| !self.names.contains_key(*id)).copied().collect();
        if !unknown.is_empty() && self.reconcile_at.is_none() {
            self.step = Step::Resolving;
            return out.push(Action::Send(Request::ResolveTopics { ids: unknown }));
        }
        let target: BTreeSet<TopicPartition> = self
            .target
            .iter()
            .filter_map(|(id, ps)| self.names.get(id).map(|n| (n, ps)))
            .flat_map(|(n, ps)| ps.iter().map(move |p| TopicPartition::new(n.as_str(), *p)))
            .collect();
        let revoke: BTreeSet<TopicPartition> = self.owned.difference(&target).cloned().collect();
        if !revoke.is_empty() {
            out.push(Action::Revoke { partitions: revoke.iter().cloned().collect() });
            self.step = Step::Revoking { partitions: revoke, lost: false };
            return;
        }
        let assign: BTreeSet<TopicPartition> = target.difference(&self.owned).cloned().collect();
        if !assign.is_empty() {
            out.push(Action::Send(Request::FetchOffsets {
                group_id: self.config.group_id.clone(),
                member_id: self.member_id.clone(),
                member_epoch: self.epoch,
                partitions: assign.iter().cloned().collect(),
            }));
            self.step = Step::FetchingOffsets { partitions: assign };
        }
    }

    /// A step ended: lose everything if fenced meanwhile, close if asked, or go on.
    fn idle(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.step = Step::Idle;
        if self.lost_pending {
            self.lose_all(out);
            if self.step != Step::Idle {
                return; // waiting for the consumer to drop what was lost
            }
        }
        if self.closing {
            return self.close_now(out);
        }
        self.reconcile(now, out);
    }

    fn on_resolved(&mut self, r: Result<BTreeMap<Uuid, String>, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.step != Step::Resolving {
            return;
        }
        match r {
            Ok(names) => {
                self.names.extend(names);
                if self.target.keys().any(|id| !self.names.contains_key(id)) {
                    // A topic too new for this broker's metadata: assign the rest, ask again later.
                    self.reconcile_at = Some(self.backoff(now));
                }
            }
            Err(f) => {
                tracing::debug!(failure = ?f, "resolving topic ids failed; retrying");
                self.reconcile_at = Some(self.backoff(now));
                self.step = Step::Idle;
                if self.lost_pending || self.closing {
                    return self.idle(now, out);
                }
                return;
            }
        }
        self.idle(now, out);
    }

    fn on_revoked(&mut self, now: Instant, out: &mut Vec<Action>) {
        let Step::Revoking { partitions, lost } = std::mem::replace(&mut self.step, Step::Idle) else {
            return;
        };
        // Fenced meanwhile: the partitions are lost, whatever epoch the rejoin got.
        if !lost && !self.lost_pending && self.config.enable_auto_commit && self.epoch > 0 {
            let offsets: BTreeMap<TopicPartition, i64> =
                self.uncommitted().into_iter().filter(|(tp, _)| partitions.contains(tp)).collect();
            if !offsets.is_empty() {
                self.send_commit(offsets.clone(), None, out);
                self.step = Step::CommittingRevoked { partitions, offsets };
                return;
            }
        }
        if lost {
            // Already acknowledged: the rejoin heartbeat owned nothing.
            return self.idle(now, out);
        }
        self.finish_revoke(partitions, now, out);
    }

    /// The revoked partitions are gone: acknowledge at once (Java heartbeats as
    /// soon as the owned set changed), so the next owner gets them sooner.
    fn finish_revoke(&mut self, partitions: BTreeSet<TopicPartition>, now: Instant, out: &mut Vec<Action>) {
        for tp in &partitions {
            self.owned.remove(tp);
            self.positions.remove(tp);
        }
        self.expedite(now);
        self.idle(now, out);
    }

    fn on_offsets(&mut self, r: Result<BTreeMap<TopicPartition, i64>, Failure>, now: Instant, out: &mut Vec<Action>) {
        let Step::FetchingOffsets { partitions } = std::mem::replace(&mut self.step, Step::Idle) else {
            return;
        };
        if self.lost_pending || self.closing || self.epoch <= 0 {
            return self.idle(now, out);
        }
        match r {
            Ok(committed) => {
                let assigned: Vec<(TopicPartition, Option<i64>)> =
                    partitions.iter().map(|tp| (tp.clone(), committed.get(tp).copied().filter(|o| *o >= 0))).collect();
                for (tp, off) in &assigned {
                    if let Some(o) = off {
                        self.committed.insert(tp.clone(), *o);
                    }
                }
                self.owned.extend(partitions);
                out.push(Action::Assign { partitions: assigned });
                self.expedite(now);
                self.idle(now, out);
            }
            Err(f) => {
                tracing::debug!(failure = ?f, "OffsetFetch failed; retrying");
                match &f {
                    // The next heartbeat's answer starts the step again.
                    Failure::Broker(e) if recovery(*e) == Recovery::AfterHeartbeat => self.expedite(now),
                    Failure::Broker(e) if recovery(*e) == Recovery::Fatal => self.fail(*e, out),
                    Failure::Broker(e) if recovery(*e) == Recovery::Rediscover => {
                        self.rediscover(now);
                        self.reconcile_at = Some(now);
                    }
                    _ => self.reconcile_at = Some(self.backoff(now)),
                }
            }
        }
    }

    // ---- commits -------------------------------------------------------------------

    /// Positions ahead of the last commit, of owned partitions.
    fn uncommitted(&self) -> BTreeMap<TopicPartition, i64> {
        self.positions
            .iter()
            .filter(|(tp, pos)| self.owned.contains(*tp) && self.committed.get(*tp).is_none_or(|c| **pos > *c))
            .map(|(tp, pos)| (tp.clone(), *pos))
            .collect()
    }

    fn auto_commit(&mut self, out: &mut Vec<Action>) {
        if self.lost_pending {
            return;
        }
        let offsets = self.uncommitted();
        if !offsets.is_empty() {
            self.send_commit(offsets, None, out);
        }
    }

    fn send_commit(&self, offsets: BTreeMap<TopicPartition, i64>, reply: Option<u64>, out: &mut Vec<Action>) {
        out.push(Action::Send(Request::Commit {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: self.epoch,
            offsets,
            reply,
        }));
    }

    fn on_commit_requested(&mut self, id: u64, offsets: Option<BTreeMap<TopicPartition, i64>>, out: &mut Vec<Action>) {
        let refuse = if self.phase == Phase::Stale {
            Some(CommitError::RebalanceInProgress)
        } else if self.phase != Phase::Active {
            Some(CommitError::Closed)
        } else if self.coordinator.is_none() {
            Some(CommitError::CoordinatorUnavailable)
        } else if self.epoch <= 0 || self.lost_pending || matches!(self.step, Step::Revoking { lost: true, .. }) {
            Some(CommitError::RebalanceInProgress)
        } else {
            None
        };
        if let Some(e) = refuse {
            return out.push(Action::AnswerCommit { id, result: Err(e) });
        }
        let offsets = match super::io::user_commit_offsets(offsets, &self.owned, || self.uncommitted()) {
            Ok(offsets) => offsets,
            Err(e) => return out.push(Action::AnswerCommit { id, result: Err(e) }),
        };
        if offsets.is_empty() {
            return out.push(Action::AnswerCommit { id, result: Ok(()) });
        }
        self.send_commit(offsets, Some(id), out);
    }

    fn on_committed(
        &mut self,
        reply: Option<u64>,
        offsets: BTreeMap<TopicPartition, i64>,
        result: CommitResult,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let failed: BTreeMap<TopicPartition, E> = match &result {
            Ok(errs) => errs.iter().cloned().collect(),
            Err(_) => offsets.keys().map(|tp| (tp.clone(), E::UnknownServerError)).collect(),
        };
        for (tp, off) in &offsets {
            if !failed.contains_key(tp) {
                if reply.is_some() {
                    // An explicit commit may move the committed offset back.
                    self.committed.insert(tp.clone(), *off);
                } else {
                    let c = self.committed.entry(tp.clone()).or_insert(*off);
                    *c = (*c).max(*off);
                }
            }
        }
        let stale = !failed.is_empty() && failed.values().all(|e| recovery(*e) == Recovery::AfterHeartbeat);
        if stale && self.phase == Phase::Active && self.epoch > 0 {
            // KIP-848: the epoch moved on; learn it from a heartbeat, then commit again.
            let again: BTreeMap<TopicPartition, i64> =
                offsets.iter().filter(|(tp, _)| failed.contains_key(*tp)).map(|(tp, o)| (tp.clone(), *o)).collect();
            self.stale_commits.push((reply, again));
            self.expedite(now);
            return;
        }
        if let Some(e) = failed.values().find(|e| recovery(**e) == Recovery::Rediscover) {
            tracing::debug!(error = ?e, "commit: the coordinator moved");
            if self.coordinator.is_some() {
                self.rediscover(now);
            }
        }
        if let Some(id) = reply {
            let answer = match result {
                Ok(errs) if errs.is_empty() => Ok(()),
                Ok(errs) => Err(CommitError::Refused(errs)),
                Err(Failure::Transport(t)) => Err(CommitError::Transport(t)),
                Err(Failure::Broker(e)) => {
                    Err(CommitError::Refused(offsets.keys().map(|tp| (tp.clone(), e)).collect()))
                }
            };
            out.push(Action::AnswerCommit { id, result: answer });
        }
        if let Step::CommittingRevoked { partitions, offsets: sent } = &self.step {
            if reply.is_none() && *sent == offsets {
                if !failed.is_empty() {
                    tracing::warn!(
                        ?failed,
                        "commit before revoking failed; the next owner re-reads from the last commit"
                    );
                }
                let partitions = partitions.clone();
                self.finish_revoke(partitions, now, out);
            }
        }
    }

    // ---- close ---------------------------------------------------------------------

    /// With nothing under way: revoke what is owned (committing it), then leave.
    fn close_now(&mut self, out: &mut Vec<Action>) {
        if self.phase == Phase::Stale {
            // Out of the group already, or about to be: leave (again) and close.
            self.phase = Phase::Leaving;
            if self.leave_sent && !self.heartbeat_in_flight {
                return self.finish_close(out);
            }
            if !self.heartbeat_in_flight {
                self.send_leave(out);
            }
            return;
        }
        if self.phase != Phase::Active {
            return;
        }
        if !self.owned.is_empty() {
            let partitions = self.owned.clone();
            out.push(Action::Revoke { partitions: partitions.iter().cloned().collect() });
            self.step = Step::Revoking { partitions, lost: false };
            return;
        }
        if self.coordinator.is_none() || (self.epoch <= 0 && !self.heartbeat_in_flight) {
            return self.finish_close(out);
        }
        self.phase = Phase::Leaving;
        if !self.heartbeat_in_flight {
            self.send_leave(out);
        }
    }

    fn send_leave(&mut self, out: &mut Vec<Action>) {
        self.leave_sent = true;
        // KIP-848: a static member leaves "for now" and keeps its assignment for
        // the session timeout, so a restart gets its partitions back.
        let epoch = if self.config.group_instance_id.is_some() { STATIC_LEAVE_EPOCH } else { LEAVE_EPOCH };
        self.heartbeat_in_flight = true;
        out.push(Action::Send(Request::Heartbeat(Heartbeat {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            member_epoch: epoch,
            instance_id: self.config.group_instance_id.clone(),
            rack_id: None,
            rebalance_timeout: None,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            topic_partitions: None,
        })));
    }

    fn finish_close(&mut self, out: &mut Vec<Action>) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        self.owned.clear();
        out.push(Action::Closed);
    }

    fn fail(&mut self, e: E, out: &mut Vec<Action>) {
        self.phase = Phase::Failed;
        out.push(Action::Fatal(GroupError { group: self.config.group_id.clone(), error: e, explanation: explain(e) }));
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests;
