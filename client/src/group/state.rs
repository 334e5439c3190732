//! The consumer-group member as a sans-IO state machine (classic protocol, eager
//! or cooperative rebalancing, KIP-429). `handle(event, now)` takes what happened (a response, a timer, a
//! position from the consumer, a close request) and returns what to do; time is
//! an argument, so tests walk rebalances and timeouts without sockets or sleeps.
//! The events and actions are in [`io`](super::io).
//!
//! Eager: every rebalance revokes everything before JoinGroup. Cooperative (every
//! configured assignor supports it, see [`RebalanceProtocol::of`]): the member
//! keeps its partitions through JoinGroup and SyncGroup (they are listed as
//! `owned_partitions`), then revokes only owned − assigned, starts assigned −
//! owned, and rejoins at once if it revoked anything, so the partitions it gave
//! up reach their new owner in a second round.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;

use super::assign::{Assignor, MemberSubscription, RebalanceProtocol};
use super::config::GroupConfig;
use super::consumer_protocol::{Assignment, LATEST_VERSION, Subscription, TopicPartitions};
use super::error::{CommitError, GroupError};
use super::io::{Action, Event, Failure, JoinResult, JoinedMember, Request, TopicsView};
use super::recovery::{Recovery, explain, recovery};
use crate::types::TopicPartition;

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
    /// Committing what the revoked partitions consumed, then on to `next`.
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
    /// Cooperative, after SyncGroup: start the newly assigned partitions.
    StartAdded,
}

/// A member of one consumer group.
#[derive(Debug)]
pub struct GroupMember {
    config: GroupConfig,
    protocol: RebalanceProtocol,
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
    /// What this member owns: the consumer fetches these (and, eager, those of
    /// the generation whose offsets are being fetched).
    assigned: BTreeSet<TopicPartition>,
    /// Assigned by the last SyncGroup and not started yet: their offsets are
    /// fetched next, then they join `assigned`.
    adding: BTreeSet<TopicPartition>,
    /// The partitions of the revocation under way.
    revoking: BTreeSet<TopicPartition>,
    /// Cooperative: this generation revoked something, so rejoin once the added
    /// partitions are started (KIP-429's second round).
    rejoin_when_started: bool,
    positions: BTreeMap<TopicPartition, i64>,
    committed: BTreeMap<TopicPartition, i64>,
    /// Whether revocation commits consumed positions (not when the generation is gone).
    commit_before: bool,
    /// OffsetCommits awaiting an answer (an auto-commit may overlap the revocation's).
    commits_in_flight: u32,
    /// The offsets of the commit that ends a revocation; only its answer moves on.
    revocation_commit: Option<BTreeMap<TopicPartition, i64>>,
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
            protocol: RebalanceProtocol::of(&config.assignors),
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
            adding: BTreeSet::new(),
            revoking: BTreeSet::new(),
            rejoin_when_started: false,
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

    pub fn coordinator(&self) -> Option<i32> {
        self.coordinator
    }
    /// The generation of the group this member last joined (-1 when none).
    pub fn generation_id(&self) -> i32 {
        self.generation_id
    }
    /// The id the coordinator gave this member ("" before it has one).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed | Phase::Failed)
    }
    fn cooperative(&self) -> bool {
        self.protocol == RebalanceProtocol::Cooperative
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
            // The classic member sends max.poll.interval.ms as the rebalance
            // timeout only; leaving when it passes is the KIP-848 member's.
            Event::Polled => {}
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
            out.push(Action::Send(Request::Heartbeat {
                group_id: self.config.group_id.clone(),
                generation_id: self.generation_id,
                member_id: self.member_id.clone(),
                group_instance_id: self.config.group_instance_id.clone(),
                session_timeout: self.config.session_timeout,
            }));
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
        out.push(Action::Send(Request::RefreshTopics { topics: topics.into_iter().collect() }));
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
                    return self.rebalance(out);
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
                self.rebalance(out);
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
        out.push(Action::Send(Request::FindCoordinator { group_id: self.config.group_id.clone() }));
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

    /// Handles what every group API's failures share (transport, rediscover,
    /// fatal, retry); `Some(recovery)` when the caller must decide, `None` when done.
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
        // KIP-429: what we own (nothing, eager: it was revoked) and since which
        // generation, so a cooperative leader leaves it where it is.
        let mut owned: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in &self.assigned {
            owned.entry(&tp.topic).or_default().push(tp.partition);
        }
        let sub = Subscription {
            topics: self.config.topics.clone(),
            owned_partitions: owned
                .into_iter()
                .map(|(topic, partitions)| TopicPartitions { topic: topic.to_owned(), partitions })
                .collect(),
            generation_id: self.generation_id,
            rack_id: self.config.client_rack.clone(),
            ..Subscription::default()
        };
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
        out.push(Action::Send(Request::Join {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            session_timeout: self.config.session_timeout,
            rebalance_timeout: self.config.rebalance_timeout,
            protocols: self.protocols(),
        }));
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
                    Some(Recovery::Reset) if !self.assigned.is_empty() => {
                        // Cooperative, owning partitions: they are lost (Java's
                        // onPartitionsLost), then join from scratch.
                        self.member_id.clear();
                        self.generation_id = -1;
                        self.begin_revoke(Next::Rejoin, false, out);
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
            out.push(Action::Send(Request::FetchMetadata { topics: topics.into_iter().collect() }));
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
        out.push(Action::Send(Request::Sync {
            group_id: self.config.group_id.clone(),
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            protocol_name: self.protocol_name.clone().unwrap_or_default(),
            assignments,
            rebalance_timeout: self.config.rebalance_timeout,
        }));
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
                let new: BTreeSet<TopicPartition> = assignment
                    .partitions
                    .into_iter()
                    .filter(|(t, _)| self.config.topics.contains(t))
                    .flat_map(|(t, ps)| {
                        let topic: Arc<str> = t.into();
                        ps.into_iter().map(move |p| TopicPartition { topic: Arc::clone(&topic), partition: p })
                    })
                    .collect();
                tracing::info!(generation = self.generation_id, partitions = ?new, "joined group");
                // Heartbeats start as soon as we are a member of this generation.
                self.next_heartbeat = Some(now + self.config.heartbeat_interval);
                if !self.cooperative() {
                    self.assigned = new.clone();
                    self.adding = new;
                    return self.send_fetch_offsets(out);
                }
                // KIP-429: give up only what moved away; what stays keeps fetching.
                let revoked: BTreeSet<TopicPartition> = self.assigned.difference(&new).cloned().collect();
                self.adding = new.difference(&self.assigned).cloned().collect();
                if revoked.is_empty() {
                    return self.send_fetch_offsets(out);
                }
                tracing::info!(?revoked, added = ?self.adding, "cooperative rebalance: revoking, then rejoining");
                self.rejoin_when_started = true;
                self.begin_revoke_of(revoked, Next::StartAdded, true, out);
            }
            Err(f) => self.rejoin_after(&f, now, out),
        }
    }

    /// A rebalance-type failure of SyncGroup: rejoin as the table says. Eager, we
    /// own nothing here; cooperative, a lost generation loses what we own.
    fn rejoin_after(&mut self, f: &Failure, now: Instant, out: &mut Vec<Action>) {
        match self.common_failure(f, now, out) {
            Some(rec @ (Recovery::Reset | Recovery::RejoinLost)) if !self.assigned.is_empty() => {
                self.lose_partitions(rec, false, now, out)
            }
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
        out.push(Action::Send(Request::FetchOffsets {
            group_id: self.config.group_id.clone(),
            partitions: self.adding.iter().cloned().collect(),
        }));
    }

    fn on_offsets(&mut self, r: Result<BTreeMap<TopicPartition, i64>, Failure>, now: Instant, out: &mut Vec<Action>) {
        if self.phase != Phase::FetchingOffsets {
            return;
        }
        match r {
            Ok(committed) => {
                // Only the started partitions' offsets are read here; those kept
                // through a cooperative rebalance keep their positions.
                let adding = std::mem::take(&mut self.adding);
                self.assigned.extend(adding.iter().cloned());
                let kept = |tp: &TopicPartition| self.assigned.contains(tp) && !adding.contains(tp);
                self.committed.retain(|tp, _| kept(tp));
                self.positions.retain(|tp, _| kept(tp));
                for (tp, o) in committed {
                    if o >= 0 && adding.contains(&tp) {
                        self.committed.insert(tp.clone(), o);
                        self.positions.insert(tp, o);
                    }
                }
                let partitions = adding.iter().map(|tp| (tp.clone(), self.committed.get(tp).copied())).collect();
                out.push(Action::Assign { partitions });
                self.phase = Phase::Stable;
                self.next_heartbeat.get_or_insert(now + self.config.heartbeat_interval);
                self.next_commit = Some(now + self.config.auto_commit_interval);
                self.next_refresh = Some(now + self.config.metadata_max_age);
                if std::mem::take(&mut self.rejoin_when_started) {
                    // KIP-429: we revoked something; rejoin at once so it is handed on.
                    self.send_join(out);
                }
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
        // Partitions assigned but not started are simply dropped: the next
        // assignment says again what is ours.
        if self.cooperative() {
            self.adding.clear();
            self.rejoin_when_started = false;
        }
        match rec {
            // Cooperative: keep everything; commit what was consumed (Java's
            // onJoinPrepare) and rejoin.
            Recovery::Rejoin if self.cooperative() => {
                self.begin_revoke_of(BTreeSet::new(), Next::Rejoin, may_commit, out)
            }
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

    /// A Stable member must rebalance (subscription or partition counts changed).
    /// Eager: revoke everything first. Cooperative: revoke only the partitions of
    /// topics no longer subscribed (Java's onJoinPrepare), commit, rejoin.
    fn rebalance(&mut self, out: &mut Vec<Action>) {
        if !self.cooperative() {
            return self.begin_revoke(Next::Rejoin, true, out);
        }
        let gone = self.assigned.iter().filter(|tp| !self.config.topics.iter().any(|t| **t == *tp.topic)).cloned();
        self.begin_revoke_of(gone.collect(), Next::Rejoin, true, out);
    }

    /// Revokes everything this member owns (eager rebalances, lost partitions, close).
    fn begin_revoke(&mut self, next: Next, commit: bool, out: &mut Vec<Action>) {
        self.adding.clear();
        self.rejoin_when_started = false;
        self.begin_revoke_of(self.assigned.clone(), next, commit, out);
    }

    /// Stops `partitions` (none: just commit), commits what was consumed if
    /// `commit`, then goes on to `next`.
    fn begin_revoke_of(
        &mut self,
        partitions: BTreeSet<TopicPartition>,
        next: Next,
        commit: bool,
        out: &mut Vec<Action>,
    ) {
        self.next = next;
        self.commit_before = commit;
        self.next_heartbeat = None;
        self.phase = Phase::Revoking;
        self.revoking = partitions;
        if self.revoking.is_empty() {
            return self.on_revoked_inner(out);
        }
        out.push(Action::Revoke { partitions: self.revoking.iter().cloned().collect() });
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
            out.push(self.commit_request(pending, None));
            return;
        }
        self.after_revoke_commit(out);
    }

    fn after_revoke_commit(&mut self, out: &mut Vec<Action>) {
        for tp in std::mem::take(&mut self.revoking) {
            self.assigned.remove(&tp);
            self.positions.remove(&tp);
            if self.cooperative() {
                self.committed.remove(&tp);
            }
        }
        match self.next {
            // A close during a cooperative revocation: the kept partitions go too.
            Next::Leave if !self.assigned.is_empty() => self.begin_revoke(Next::Leave, true, out),
            Next::Rejoin => self.send_join(out),
            Next::Leave => self.send_leave(out),
            Next::StartAdded => self.send_fetch_offsets(out),
        }
    }

    // ---- commits -----------------------------------------------------------------

    /// Positions ahead of what this member committed: never lower, never equal.
    fn uncommitted(&self) -> BTreeMap<TopicPartition, i64> {
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
        out.push(self.commit_request(offsets, None));
    }

    /// A commit the user asked for: only of partitions this member owns, only
    /// with a generation the coordinator still accepts (while stable, or while
    /// the consumer holds a revocation open: the last chance before the
    /// partitions go), never overtaking the revocation's rejoin.
    fn on_commit_requested(&mut self, id: u64, offsets: Option<BTreeMap<TopicPartition, i64>>, out: &mut Vec<Action>) {
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
        let offsets = match super::io::user_commit_offsets(offsets, &self.assigned, || self.uncommitted()) {
            Ok(offsets) => offsets,
            Err(e) => return out.push(Action::AnswerCommit { id, result: Err(e) }),
        };
        if offsets.is_empty() {
            return out.push(Action::AnswerCommit { id, result: Ok(()) });
        }
        self.commits_in_flight += 1;
        self.user_commits_in_flight += 1;
        out.push(self.commit_request(offsets, Some(id)));
    }

    /// OffsetCommit of `offsets` with this member's generation.
    fn commit_request(&self, offsets: BTreeMap<TopicPartition, i64>, reply: Option<u64>) -> Action {
        Action::Send(Request::Commit {
            group_id: self.config.group_id.clone(),
            generation_id: self.generation_id,
            member_id: self.member_id.clone(),
            group_instance_id: self.config.group_instance_id.clone(),
            offsets,
            reply,
        })
    }

    fn on_committed(
        &mut self,
        offsets: BTreeMap<TopicPartition, i64>,
        result: Result<Vec<(TopicPartition, ResponseError)>, Failure>,
        may_end_revocation: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        self.commits_in_flight = self.commits_in_flight.saturating_sub(1);
        let failed: BTreeMap<TopicPartition, ResponseError> = match &result {
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
            // Cooperative members own partitions while they join and sync, too.
            Phase::Stable
            | Phase::FetchingOffsets
            | Phase::FindingCoordinator
            | Phase::Joining
            | Phase::AwaitingMetadata
            | Phase::Syncing
                if !self.assigned.is_empty() =>
            {
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
        out.push(Action::Send(Request::Leave {
            group_id: self.config.group_id.clone(),
            member_id: self.member_id.clone(),
        }));
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
    pub fn config(&self) -> &GroupConfig {
        &self.config
    }
    pub fn assigned(&self) -> &BTreeSet<TopicPartition> {
        &self.assigned
    }
    pub fn committed(&self) -> &BTreeMap<TopicPartition, i64> {
        &self.committed
    }
    pub fn is_stable(&self) -> bool {
        self.phase == Phase::Stable
    }
    /// Eager or cooperative, from the configured assignors.
    pub fn protocol(&self) -> RebalanceProtocol {
        self.protocol
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
