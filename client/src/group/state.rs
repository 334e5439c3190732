//! The consumer-group member as a sans-IO state machine (classic protocol, eager
//! rebalancing). `handle(event, now)` takes what happened (a response, a timer, a
//! position from the consumer, a close request) and returns what to do; time is
//! an argument, so tests walk rebalances and timeouts without sockets or sleeps.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::assign::{Assignor, MemberSubscription};
use super::consumer_protocol::{Assignment, LATEST_VERSION, Subscription};
use super::recovery::{Recovery, explain, recovery};
use crate::backoff::BackoffPolicy;

pub use crate::types::Tp;

/// Group settings with the Java client's names and defaults.
#[derive(Debug, Clone)]
pub struct GroupConfig {
    /// `group.id` (no default: it must be set).
    pub group_id: String,
    /// `group.instance.id` (KIP-345 static membership).
    pub group_instance_id: Option<String>,
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
            group_id: String::new(),
            group_instance_id: None,
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

/// What happened, fed to [`GroupMember::handle`].
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

/// What to do, returned by [`GroupMember::handle`].
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
    NotAssigned(Vec<Tp>),
    /// The coordinator refused these partitions (the others were committed).
    #[error("the coordinator refused the commit of {}", describe(.0))]
    Refused(Vec<(Tp, ResponseError)>),
    /// The request got no answer (connection lost, time-out): it may or may not
    /// have been applied.
    #[error("the commit got no answer: {0}")]
    Transport(String),
    /// The consumer is closed (or its group member stopped).
    #[error("the consumer is closed")]
    Closed,
}

fn describe(refused: &[(Tp, ResponseError)]) -> String {
    refused.iter().map(|((t, p), e)| format!("{t}[{p}]: {e:?}")).collect::<Vec<_>>().join(", ")
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

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    FindingCoordinator,
    Joining,
    AwaitingMetadata,
    Syncing,
    FetchingOffsets,
    Stable,
    /// Waiting for the consumer to stop the revoked partitions.
    Revoking,
    /// Committing what the revoked partitions consumed, then `after`.
    CommittingBefore,
    Leaving,
    Closed,
    Failed,
}

/// Where to go after revocation (and its commit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Rejoin,
    Leave,
}

/// A member of one consumer group.
#[derive(Debug)]
pub struct GroupMember {
    config: GroupConfig,
    phase: Phase,
    /// What to resume once a lost coordinator is found again.
    resume: Phase,
    next: Next,
    coordinator: Option<i32>,
    member_id: String,
    generation_id: i32,
    protocol_name: Option<String>,
    join_members: Vec<JoinedMember>,
    /// As the leader: partition counts the current assignment was made from
    /// (a change means the group must rebalance, as in the Java client).
    assigned_counts: Option<BTreeMap<String, i32>>,
    next_refresh: Option<Instant>,
    refresh_in_flight: bool,
    assigned: BTreeSet<Tp>,
    positions: BTreeMap<Tp, i64>,
    committed: BTreeMap<Tp, i64>,
    /// Whether revocation commits consumed positions (not when the generation is gone).
    commit_before: bool,
    /// OffsetCommits awaiting an answer (an auto-commit may overlap the revocation's).
    commits_in_flight: u32,
    /// The offsets of the commit that ends a revocation; only its answer moves on.
    revocation_commit: Option<BTreeMap<Tp, i64>>,
    /// Commits the user asked for, awaiting the coordinator's answer.
    user_commits_in_flight: u32,
    /// The consumer answered a revocation while a user's commit was in flight:
    /// the revocation goes on once that commit is answered (the rejoin must not
    /// overtake the commit of the generation it ends).
    revoked_waiting: bool,
    heartbeat_in_flight: bool,
    next_heartbeat: Option<Instant>,
    next_commit: Option<Instant>,
    retry_at: Option<Instant>,
    attempts: u32,
}

impl GroupMember {
    pub fn new(config: GroupConfig) -> Self {
        Self {
            config,
            phase: Phase::Idle,
            resume: Phase::Joining,
            next: Next::Rejoin,
            coordinator: None,
            member_id: String::new(),
            generation_id: -1,
            protocol_name: None,
            join_members: Vec::new(),
            assigned_counts: None,
            next_refresh: None,
            refresh_in_flight: false,
            assigned: BTreeSet::new(),
            positions: BTreeMap::new(),
            committed: BTreeMap::new(),
            commit_before: false,
            commits_in_flight: 0,
            revocation_commit: None,
            user_commits_in_flight: 0,
            revoked_waiting: false,
            heartbeat_in_flight: false,
            next_heartbeat: None,
            next_commit: None,
            retry_at: None,
            attempts: 0,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }
    pub fn coordinator(&self) -> Option<i32> {
        self.coordinator
    }
    /// The generation of the group this member last joined (-1 when none).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }

    /// The earliest instant at which `handle(Event::Tick, _)` has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.retry_at;
        if self.heartbeats_due() && !self.heartbeat_in_flight {
            d = earliest(d, self.next_heartbeat);
        }
        if self.phase == Phase::Stable && self.config.enable_auto_commit && self.commits_in_flight == 0 {
            d = earliest(d, self.next_commit);
        }
        if self.phase == Phase::Stable && !self.refresh_in_flight {
            d = earliest(d, self.next_refresh);
        }
        d
    }

    pub fn handle(&mut self, event: Event, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Tick => self.on_tick(now, &mut out),
            Event::CoordinatorFound(r) => self.on_coordinator(r, now, &mut out),
            Event::Joined(r) => self.on_joined(r, now, &mut out),
            Event::Metadata(r) => self.on_metadata(r, now, &mut out),
            Event::TopicsRefreshed(r) => self.on_topics(r, now, &mut out),
            Event::Synced(r) => self.on_synced(r, now, &mut out),
            Event::OffsetsFetched(r) => self.on_offsets(r, now, &mut out),
            Event::Heartbeat(r) => self.on_heartbeat(r, now, &mut out),
            Event::Committed { offsets, result } => self.on_committed(offsets, result, true, now, &mut out),
            // Only the answer to our own LeaveGroup ends the member.
            Event::Left if self.phase == Phase::Leaving => self.finish_close(&mut out),
            Event::Left => {}
            Event::Consumed { tp, next_offset } => {
                if self.assigned.contains(&tp) {
                    let p = self.positions.entry(tp).or_insert(next_offset);
                    *p = (*p).max(next_offset);
                }
            }
            Event::Revoked => self.on_revoked(&mut out),
            Event::Close => self.on_close(&mut out),
            Event::CommitRequested { id, offsets } => self.on_commit_requested(id, offsets, &mut out),
            Event::CommitAnswered { id, offsets, result } => {
                self.user_commits_in_flight = self.user_commits_in_flight.saturating_sub(1);
                let answer = match &result {
                    Ok(refused) if refused.is_empty() => Ok(()),
                    Ok(refused) => Err(CommitError::Refused(refused.clone())),
                    Err(Failure::Broker(e)) => {
                        Err(CommitError::Refused(offsets.keys().map(|tp| (tp.clone(), *e)).collect()))
                    }
                    Err(Failure::Transport(reason)) => Err(CommitError::Transport(reason.clone())),
                };
                out.push(Action::AnswerCommit { id, result: answer });
                self.on_committed(offsets, result, false, now, &mut out);
                if self.revoked_waiting && self.user_commits_in_flight == 0 && self.phase == Phase::Revoking {
                    self.revoked_waiting = false;
                    self.on_revoked_inner(&mut out);
                }
            }
        }
        out
    }

    fn on_tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            match self.phase {
                Phase::Idle | Phase::FindingCoordinator => self.find_coordinator(out),
                Phase::Joining | Phase::AwaitingMetadata | Phase::Syncing => self.send_join(out),
                Phase::FetchingOffsets => self.send_fetch_offsets(out),
                _ => {}
            }
        }
        if self.heartbeats_due() && !self.heartbeat_in_flight && self.next_heartbeat.is_some_and(|t| t <= now) {
            self.heartbeat_in_flight = true;
            out.push(Action::Heartbeat { generation_id: self.generation_id, member_id: self.member_id.clone() });
        }
        if self.phase != Phase::Stable {
            return;
        }
        if self.config.enable_auto_commit && self.commits_in_flight == 0 && self.next_commit.is_some_and(|t| t <= now) {
            self.next_commit = Some(now + self.config.auto_commit_interval);
            self.commit(out);
        }
        if !self.refresh_in_flight && self.next_refresh.is_some_and(|t| t <= now) {
            self.next_refresh = Some(now + self.config.metadata_max_age);
            self.refresh_topics(out);
        }
    }

    // ---- subscription changes (metadata.max.age.ms) ---------------------------------

    fn refresh_topics(&mut self, out: &mut Vec<Action>) {
        self.refresh_in_flight = true;
        // The leader watches every topic of the group; a member its own.
        let mut topics: BTreeSet<String> = self.config.topics.iter().cloned().collect();
        if let Some(c) = &self.assigned_counts {
            topics.extend(c.keys().cloned());
        }
        out.push(Action::RefreshTopics { topics: topics.into_iter().collect() });
    }

    fn on_topics(&mut self, r: Result<TopicsView, Failure>, now: Instant, out: &mut Vec<Action>) {
        self.refresh_in_flight = false;
        let view = match r {
            Ok(v) => v,
            Err(f) => {
                tracing::debug!(failure = ?f, "metadata refresh failed; trying again at the next one");
                if self.phase == Phase::Idle {
                    self.retry_later(now);
                }
                return;
            }
        };
        if let Some(matching) = view.matching {
            let topics: Vec<String> = matching.into_iter().collect();
            if topics != self.config.topics {
                tracing::info!(?topics, "the topics matching the pattern changed");
                self.config.topics = topics;
                if self.phase == Phase::Stable {
                    return self.begin_revoke(Next::Rejoin, true, out);
                }
            }
        }
        if self.phase == Phase::Idle {
            // The first refresh of a pattern subscription: now join with what it matched.
            return self.find_coordinator(out);
        }
        if self.phase != Phase::Stable {
            return;
        }
        if let Some(assigned) = &self.assigned_counts {
            let changed = assigned.iter().any(|(t, n)| view.counts.get(t).is_some_and(|now| now != n));
            if changed {
                tracing::info!(counts = ?view.counts, "partition counts changed; rebalancing");
                self.begin_revoke(Next::Rejoin, true, out);
            }
        }
    }

    /// A member of a generation heartbeats from SyncGroup's answer on, while it
    /// fetches offsets too (as the Java client does), so slow offset fetches
    /// never cost it the session.
    fn heartbeats_due(&self) -> bool {
        matches!(self.phase, Phase::Stable | Phase::FetchingOffsets)
    }

    // ---- coordinator --------------------------------------------------------

    fn find_coordinator(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::FindingCoordinator && self.phase != Phase::Idle {
            self.resume = self.phase;
        }
        self.phase = Phase::FindingCoordinator;
        self.coordinator = None;
        out.push(Action::FindCoordinator);
    }

    fn on_coordinator(&mut self, r: Result<i32, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::FindingCoordinator {
            return;
        }
        match r {
            Ok(node) => {
                self.coordinator = Some(node);
                self.attempts = 0;
                match self.resume {
                    // A Stable member keeps its partitions; heartbeats tell it if the
                    // group moved on without it.
                    Phase::Stable => {
                        self.phase = Phase::Stable;
                        self.next_heartbeat = Some(now);
                    }
                    Phase::FetchingOffsets => self.send_fetch_offsets(out),
                    Phase::Leaving => self.send_leave(out),
                    Phase::CommittingBefore => self.after_revoke_commit(out),
                    _ => self.send_join(out),
                }
            }
            Err(f) => {
                if let Failure::Broker(e) = f {
                    if recovery(e) == Recovery::Fatal {
                        return self.fail(e, out);
                    }
                }
                self.retry_later(now);
            }
        }
    }

    /// Handles a failure every group API shares; false if the caller must decide.
    fn common_failure(&mut self, f: &Failure, now: Instant, out: &mut Vec<Action>) -> Option<Recovery> {
        let e = match f {
            Failure::Transport(reason) => {
                tracing::warn!(%reason, "lost the group coordinator connection; finding it again");
                self.find_coordinator(out);
                return None;
            }
            Failure::Broker(e) => *e,
        };
        match recovery(e) {
            Recovery::Rediscover => {
                self.find_coordinator(out);
                None
            }
            Recovery::Fatal => {
                self.fail(e, out);
                None
            }
            Recovery::Retry => {
                self.retry_later(now);
                None
            }
            other => Some(other),
        }
    }

    // ---- join / sync ----------------------------------------------------------

    fn protocols(&self) -> Vec<(String, Bytes)> {
        let sub = Subscription { topics: self.config.topics.clone(), ..Subscription::default() };
        self.config
            .assignors
            .iter()
            .filter_map(|a| {
                let s = Subscription { user_data: a.subscription_user_data(self.generation_id), ..sub.clone() };
                // Encoding our own subscription cannot fail; skip the assignor if it would.
                s.encode(LATEST_VERSION).ok().map(|b| (a.name().to_owned(), b))
            })
            .collect()
    }

    fn send_join(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::Joining;
        self.next_heartbeat = None;
        out.push(Action::Join { member_id: self.member_id.clone(), protocols: self.protocols() });
    }

    fn on_joined(&mut self, r: Result<JoinResult, (Failure, String)>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::Joining {
            return;
        }
        let j = match r {
            Ok(j) => j,
            Err((f, member_id)) => {
                match self.common_failure(&f, now, out) {
                    Some(Recovery::JoinWithMemberId) => {
                        // KIP-394: first JoinGroup returns MEMBER_ID_REQUIRED; rejoin with the given id.
                        self.member_id = member_id;
                        self.send_join(out);
                    }
                    Some(Recovery::Reset) => {
                        self.member_id.clear();
                        self.generation_id = -1;
                        self.retry_later(now);
                    }
                    Some(_) => self.retry_later(now),
                    None => {}
                }
                return;
            }
        };
        self.attempts = 0;
        self.generation_id = j.generation_id;
        self.member_id = j.member_id.clone();
        self.protocol_name = j.protocol_name.clone();
        if j.leader == j.member_id {
            let topics: BTreeSet<String> = j
                .members
                .iter()
                .filter_map(|m| Subscription::decode(&m.metadata).ok())
                .flat_map(|s| s.topics)
                .collect();
            self.join_members = j.members;
            self.phase = Phase::AwaitingMetadata;
            out.push(Action::FetchMetadata { topics: topics.into_iter().collect() });
        } else {
            self.assigned_counts = None;
            self.send_sync(Vec::new(), out);
        }
    }

    fn on_metadata(&mut self, r: Result<BTreeMap<String, i32>, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::AwaitingMetadata {
            return;
        }
        let counts = match r {
            Ok(c) => c,
            Err(_) => {
                // Without metadata the leader cannot assign; rejoining retries it.
                self.phase = Phase::Joining;
                self.retry_later(now);
                return;
            }
        };
        self.assigned_counts = Some(counts.clone());
        let assignor = self.protocol_name.as_deref().and_then(Assignor::from_name).unwrap_or(Assignor::Range);
        let members: Vec<MemberSubscription> = std::mem::take(&mut self.join_members)
            .into_iter()
            .map(|m| MemberSubscription {
                // A member whose metadata we cannot read subscribes to nothing.
                subscription: Subscription::decode(&m.metadata).unwrap_or_default(),
                member_id: m.member_id,
                group_instance_id: m.group_instance_id,
            })
            .collect();
        let assignments = assignor
            .assign(&members, &counts)
            .into_iter()
            .filter_map(|(member, a)| a.encode(LATEST_VERSION).ok().map(|b| (member, b)))
            .collect();
        self.send_sync(assignments, out);
    }

    fn send_sync(&mut self, assignments: Vec<(String, Bytes)>, out: &mut Vec<Action>) {
        self.phase = Phase::Syncing;
        out.push(Action::Sync {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            protocol_name: self.protocol_name.clone().unwrap_or_default(),
            assignments,
        });
    }

    fn on_synced(&mut self, r: Result<Bytes, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::Syncing {
            return;
        }
        match r {
            Ok(bytes) => {
                let assignment = Assignment::decode(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "unreadable assignment; taking none");
                    Assignment::default()
                });
                self.assigned = assignment
                    .partitions
                    .into_iter()
                    .flat_map(|(t, ps)| ps.into_iter().map(move |p| (t.clone(), p)))
                    .filter(|(t, _)| self.config.topics.contains(t))
                    .collect();
                tracing::info!(generation = self.generation_id, partitions = ?self.assigned, "joined group");
                self.send_fetch_offsets(out);
                // Heartbeats start as soon as we are a member of this generation.
                self.next_heartbeat = Some(now + self.config.heartbeat_interval);
            }
            Err(f) => self.rejoin_after(&f, now, out),
        }
    }

    /// A rebalance-type failure before we own anything: rejoin as the table says.
    fn rejoin_after(&mut self, f: &Failure, now: Instant, out: &mut Vec<Action>) {
        match self.common_failure(f, now, out) {
            Some(Recovery::Reset) => {
                self.member_id.clear();
                self.generation_id = -1;
                self.send_join(out);
            }
            Some(Recovery::RejoinLost) => {
                self.generation_id = -1;
                self.send_join(out);
            }
            Some(_) => self.send_join(out),
            None => {}
        }
    }

    // ---- offsets and steady state -----------------------------------------------

    fn send_fetch_offsets(&mut self, out: &mut Vec<Action>) {
        self.phase = Phase::FetchingOffsets;
        out.push(Action::FetchOffsets { partitions: self.assigned.iter().cloned().collect() });
    }

    fn on_offsets(&mut self, r: Result<BTreeMap<Tp, i64>, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::FetchingOffsets {
            return;
        }
        match r {
            Ok(committed) => {
                self.committed =
                    committed.into_iter().filter(|(tp, o)| *o >= 0 && self.assigned.contains(tp)).collect();
                self.positions = self.committed.clone();
                let partitions = self.assigned.iter().map(|tp| (tp.clone(), self.committed.get(tp).copied())).collect();
                out.push(Action::Assign { partitions });
                self.phase = Phase::Stable;
                self.next_heartbeat.get_or_insert(now + self.config.heartbeat_interval);
                self.next_commit = Some(now + self.config.auto_commit_interval);
                self.next_refresh = Some(now + self.config.metadata_max_age);
            }
            Err(f) => {
                if let Some(rec) = self.common_failure(&f, now, out) {
                    self.lose_partitions(rec, true, now, out);
                }
            }
        }
    }

    fn on_heartbeat(&mut self, r: Result<(), Failure>, now: Instant, out: &mut Vec<Action>) {
        self.heartbeat_in_flight = false;
        if !matches!(self.phase, Phase::Stable | Phase::FetchingOffsets | Phase::Revoking | Phase::CommittingBefore) {
            return;
        }
        match r {
            Ok(()) => {
                self.attempts = 0;
                self.next_heartbeat = Some(now + self.config.heartbeat_interval);
            }
            Err(f) => {
                if !self.heartbeats_due() {
                    return; // already rebalancing
                }
                // Whatever happens next, do not heartbeat again at once.
                self.next_heartbeat = Some(now + self.config.backoff.delay(self.attempts, 0.5));
                if let Some(rec) = self.common_failure(&f, now, out) {
                    self.lose_partitions(rec, true, now, out);
                } else if self.phase == Phase::FindingCoordinator {
                    self.next_heartbeat = Some(now);
                }
            }
        }
    }

    /// Starts a rebalance from Stable (or offset fetching): revoke, maybe commit,
    /// rejoin. `may_commit` is false when a commit itself was refused.
    fn lose_partitions(&mut self, rec: Recovery, may_commit: bool, now: Instant, out: &mut Vec<Action>) {
        match rec {
            Recovery::Rejoin => self.begin_revoke(Next::Rejoin, may_commit, out),
            Recovery::RejoinLost => {
                // The generation is gone: a commit would be refused, and committing
                // stale positions is how offsets go backwards.
                self.generation_id = -1;
                self.begin_revoke(Next::Rejoin, false, out);
            }
            Recovery::Reset => {
                self.member_id.clear();
                self.generation_id = -1;
                self.begin_revoke(Next::Rejoin, false, out);
            }
            _ => self.retry_later(now),
        }
    }

    fn begin_revoke(&mut self, next: Next, commit: bool, out: &mut Vec<Action>) {
        self.next = next;
        self.commit_before = commit;
        self.next_heartbeat = None;
        if self.assigned.is_empty() {
            self.phase = Phase::Revoking;
            return self.on_revoked_inner(out);
        }
        self.phase = Phase::Revoking;
        out.push(Action::Revoke { partitions: self.assigned.iter().cloned().collect() });
    }

    fn on_revoked(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::Revoking {
            return;
        }
        if self.user_commits_in_flight > 0 {
            self.revoked_waiting = true;
            return;
        }
        self.on_revoked_inner(out);
    }

    fn on_revoked_inner(&mut self, out: &mut Vec<Action>) {
        let pending = self.uncommitted();
        if self.commit_before && self.config.enable_auto_commit && !pending.is_empty() {
            self.phase = Phase::CommittingBefore;
            self.commits_in_flight += 1;
            self.revocation_commit = Some(pending.clone());
            out.push(Action::Commit {
                generation_id: self.generation_id,
                member_id: self.member_id.clone(),
                offsets: pending,
                reply: None,
            });
            return;
        }
        self.after_revoke_commit(out);
    }

    fn after_revoke_commit(&mut self, out: &mut Vec<Action>) {
        self.assigned.clear();
        self.positions.clear();
        match self.next {
            Next::Rejoin => self.send_join(out),
            Next::Leave => self.send_leave(out),
        }
    }

    // ---- commits -----------------------------------------------------------------

    /// Positions ahead of what this member committed: never lower, never equal.
    fn uncommitted(&self) -> BTreeMap<Tp, i64> {
        self.positions
            .iter()
            .filter(|(tp, pos)| self.assigned.contains(*tp) && self.committed.get(*tp).is_none_or(|c| **pos > *c))
            .map(|(tp, pos)| (tp.clone(), *pos))
            .collect()
    }

    fn commit(&mut self, out: &mut Vec<Action>) {
        let offsets = self.uncommitted();
        if offsets.is_empty() {
            return;
        }
        self.commits_in_flight += 1;
        out.push(Action::Commit {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            offsets,
            reply: None,
        });
    }

    /// A commit the user asked for: only of partitions this member owns, only
    /// with a generation the coordinator still accepts (while stable, or while
    /// the consumer holds a revocation open: the last chance before the
    /// partitions go), never overtaking the revocation's rejoin.
    fn on_commit_requested(&mut self, id: u64, offsets: Option<BTreeMap<Tp, i64>>, out: &mut Vec<Action>) {
        let refuse = match self.phase {
            Phase::Stable => None,
            Phase::Revoking if self.commit_before && !self.revoked_waiting => None,
            Phase::FindingCoordinator if self.resume == Phase::Stable => Some(CommitError::CoordinatorUnavailable),
            Phase::Closed | Phase::Failed | Phase::Leaving => Some(CommitError::Closed),
            _ => Some(CommitError::RebalanceInProgress),
        };
        if let Some(e) = refuse {
            return out.push(Action::AnswerCommit { id, result: Err(e) });
        }
        let offsets = match offsets {
            None => self.uncommitted(),
            Some(offsets) => {
                let foreign: Vec<Tp> = offsets.keys().filter(|tp| !self.assigned.contains(*tp)).cloned().collect();
                if !foreign.is_empty() {
                    return out.push(Action::AnswerCommit { id, result: Err(CommitError::NotAssigned(foreign)) });
                }
                offsets
            }
        };
        if offsets.is_empty() {
            return out.push(Action::AnswerCommit { id, result: Ok(()) });
        }
        self.commits_in_flight += 1;
        self.user_commits_in_flight += 1;
        out.push(Action::Commit {
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            offsets,
            reply: Some(id),
        });
    }

    fn on_committed(
        &mut self,
        offsets: BTreeMap<Tp, i64>,
        result: Result<Vec<(Tp, ResponseError)>, Failure>,
        may_end_revocation: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.commits_in_flight = self.commits_in_flight.saturating_sub(1);
        let failed: BTreeMap<Tp, ResponseError> = match &result {
            Ok(errs) => errs.iter().cloned().collect(),
            Err(_) => offsets.keys().map(|tp| (tp.clone(), ResponseError::UnknownServerError)).collect(),
        };
        for (tp, off) in &offsets {
            if !failed.contains_key(tp) {
                // What the coordinator holds now: an explicit commit may move it back.
                if may_end_revocation {
                    let c = self.committed.entry(tp.clone()).or_insert(*off);
                    *c = (*c).max(*off);
                } else {
                    self.committed.insert(tp.clone(), *off);
                }
            }
        }
        let first_error = match result {
            Ok(errs) => errs.first().map(|(_, e)| Failure::Broker(*e)),
            Err(f) => Some(f),
        };
        if self.phase == Phase::CommittingBefore && may_end_revocation {
            // An earlier auto-commit answering does not end the revocation: wait
            // for the revocation's own commit.
            if self.revocation_commit.as_ref() != Some(&offsets) {
                return;
            }
            self.revocation_commit = None;
            if let Some(f) = &first_error {
                tracing::warn!(failure = ?f, "commit before rebalance/close failed; the next owner re-reads from the last commit");
            }
            return self.after_revoke_commit(out);
        }
        let Some(f) = first_error else { return };
        if self.phase != Phase::Stable {
            return;
        }
        // An OffsetCommit failed by a rebalance must not be retried with the old
        // generation: rejoin, and commit only what we still own afterwards.
        if let Some(rec) = self.common_failure(&f, now, out) {
            self.lose_partitions(rec, false, now, out);
        }
    }

    // ---- close ----------------------------------------------------------------------

    fn on_close(&mut self, out: &mut Vec<Action>) {
        match self.phase {
            Phase::Closed | Phase::Failed | Phase::Leaving => {}
            // Owning partitions (also while re-finding a lost coordinator): revoke,
            // commit what was consumed, then leave.
            Phase::Stable | Phase::FetchingOffsets | Phase::FindingCoordinator if !self.assigned.is_empty() => {
                self.begin_revoke(Next::Leave, true, out)
            }
            Phase::Revoking | Phase::CommittingBefore => self.next = Next::Leave,
            _ if self.coordinator.is_some() && !self.member_id.is_empty() => self.send_leave(out),
            _ => self.finish_close(out),
        }
    }

    fn send_leave(&mut self, out: &mut Vec<Action>) {
        // KIP-345: a static member does not leave on close, so a restart within the
        // session timeout gets its partitions back without a rebalance.
        if self.config.group_instance_id.is_some() || self.member_id.is_empty() {
            return self.finish_close(out);
        }
        self.phase = Phase::Leaving;
        out.push(Action::Leave { member_id: self.member_id.clone() });
    }

    fn finish_close(&mut self, out: &mut Vec<Action>) {
        if self.is_closed() {
            return;
        }
        self.phase = Phase::Closed;
        self.assigned.clear();
        out.push(Action::Closed);
    }

    fn fail(&mut self, e: ResponseError, out: &mut Vec<Action>) {
        self.phase = Phase::Failed;
        out.push(Action::Fatal(GroupError { group: self.config.group_id.clone(), error: e, explanation: explain(e) }));
    }

    fn retry_later(&mut self, now: Instant) {
        let delay = self.config.backoff.delay(self.attempts, 0.5);
        self.attempts = self.attempts.saturating_add(1);
        self.retry_at = Some(now + delay);
        if self.phase == Phase::Idle {
            self.phase = Phase::FindingCoordinator;
        }
    }

    /// Starts the member: find the coordinator (with a pattern, first learn which
    /// topics it matches, so the first join already subscribes to them).
    pub fn start(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        if self.config.topic_pattern.is_some() {
            self.refresh_topics(&mut out);
        } else {
            self.find_coordinator(&mut out);
        }
        out
    }
}

/// What tests and the fuzz targets look at; the driver needs none of it.
#[cfg(any(test, feature = "fuzzing"))]
impl GroupMember {
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
    pub fn assigned(&self) -> &BTreeSet<Tp> {
        &self.assigned
    }
    pub fn committed(&self) -> &BTreeMap<Tp, i64> {
        &self.committed
    }
    pub fn is_stable(&self) -> bool {
        self.phase == Phase::Stable
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
