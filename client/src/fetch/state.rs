//! What the consumer fetches, from whom, and what each answer means, as a pure
//! state machine: positions and leaders per assigned partition, one fetch
//! session and at most one Fetch in flight per broker, per-partition backoff,
//! and the one table that maps a partition error to a recovery.
//!
//! The driver ([`super::fetcher`]) asks [`FetchState::actions`] what to send,
//! performs it, and feeds the answers back; time is an argument throughout.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use uuid::Uuid;

use super::decode::{BatchReader, DecodeError};
use super::session::{FetchPlan, FetchSession, PartitionFetch};
use super::{FetchConfig, OffsetReset};
use crate::backoff::BackoffPolicy;
use crate::types::TopicPartition;

/// Where a partition's leader is, as metadata says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Leader {
    /// -1 while the partition has none.
    pub node: i32,
    pub epoch: i32,
    pub topic_id: Uuid,
}

/// What to do next.
#[derive(Debug, Clone, PartialEq)]
pub enum FetchAction {
    /// `offsets` has every partition the broker's session covers, listed in the
    /// plan or not: an incremental answer may carry any of them.
    Fetch {
        broker: i32,
        plan: FetchPlan,
        topic_ids: BTreeMap<Arc<str>, Uuid>,
        offsets: BTreeMap<TopicPartition, i64>,
    },
    /// Resolve `auto.offset.reset` (timestamp -2 earliest, -1 latest) at the leader.
    ListOffsets {
        broker: i32,
        partitions: Vec<(TopicPartition, i64, i32)>,
    },
    RefreshMetadata {
        topics: Vec<String>,
    },
}

/// One partition of a Fetch response: its error, or a reader over its batches.
#[derive(Debug)]
pub struct PartitionResult {
    pub tp: TopicPartition,
    pub error: Option<ResponseError>,
    pub reader: Option<BatchReader>,
}

/// The answer to a ListOffsets: each partition's offset or error, or why the
/// request failed as a whole.
pub type ListedOffsets = Result<Vec<(TopicPartition, Result<i64, ResponseError>)>, String>;

/// An answer to a [`FetchAction`].
#[derive(Debug)]
pub enum FetchEvent {
    Fetched {
        broker: i32,
        result: Result<(Option<ResponseError>, i32, Vec<PartitionResult>), String>,
    },
    OffsetsListed {
        broker: i32,
        result: ListedOffsets,
    },
    /// Leaders of the asked topics; `Err` names a topic the cluster does not have.
    Metadata(Result<BTreeMap<TopicPartition, Leader>, MetadataError>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    TopicGone(String),
    Other(String),
}

/// Why a partition stopped being fetched.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PartitionError {
    /// A record batch could not be decoded (bad CRC, unknown codec, counts that
    /// do not fit the bytes). The records before it were handed out; nothing at
    /// or past `error.offset` is committed.
    #[error("unreadable record batch at {partition}@{}: {}", .error.offset, .error.reason)]
    Corrupt {
        /// The partition.
        partition: TopicPartition,
        /// Where and why decoding stopped.
        error: DecodeError,
    },
    /// There is no committed offset, or it is out of range, and
    /// `auto.offset.reset` is `none`/`error`.
    #[error("{partition}: no committed offset (or it is out of range) and auto.offset.reset=error")]
    NoOffset {
        /// The partition.
        partition: TopicPartition,
    },
    /// Metadata no longer lists the topic: it was deleted while assigned, or
    /// never existed.
    #[error("topic `{0}` does not exist (or was deleted)")]
    TopicGone(String),
    /// Fetch or ListOffsets answered an error no retry helps with
    /// (TOPIC_AUTHORIZATION_FAILED, CORRUPT_MESSAGE, any non-retriable code).
    #[error("fetching {partition} failed: {error}")]
    Broker {
        /// The partition.
        partition: TopicPartition,
        /// The broker's error code.
        error: ResponseError,
    },
}

/// What the consumer gets out of an event.
#[derive(Debug)]
pub enum Ready {
    /// Batches to hand to the user, read as they are taken; the partition is
    /// not fetched again until they are [`drained`](FetchState::drained).
    Records { tp: TopicPartition, reader: BatchReader },
    /// A partition error with no records before it.
    Failed { tp: TopicPartition, error: PartitionError },
    /// `auto.offset.reset` put the partition here: a position worth committing,
    /// so a later run does not reset again past records written in between.
    Reset { tp: TopicPartition, offset: i64 },
}

/// What a partition error means: the one recovery table of the fetch path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The leader moved or our view is stale: refresh metadata, then fetch again.
    RefreshMetadata,
    /// The broker is behind us or busy: back off and fetch again.
    Retry,
    /// Apply `auto.offset.reset`.
    ResetOffset,
    /// No retry helps.
    Fatal,
}

pub fn recovery(e: ResponseError) -> Recovery {
    use ResponseError as E;
    match e {
        E::NotLeaderOrFollower
        | E::LeaderNotAvailable
        | E::FencedLeaderEpoch
        | E::UnknownTopicOrPartition
        | E::UnknownTopicId
        | E::InconsistentTopicId
        | E::KafkaStorageError
        | E::ReplicaNotAvailable
        | E::OffsetNotAvailable => Recovery::RefreshMetadata,
        // KIP-320: the broker has not caught up with the leader epoch we know.
        E::UnknownLeaderEpoch => Recovery::Retry,
        E::OffsetOutOfRange => Recovery::ResetOffset,
        E::TopicAuthorizationFailed | E::ClusterAuthorizationFailed | E::CorruptMessage => Recovery::Fatal,
        e if e.is_retriable() => Recovery::Retry,
        _ => Recovery::Fatal,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Position {
    /// Fetch from here.
    At(i64),
    /// Needs `auto.offset.reset`.
    Reset,
    /// A ListOffsets for it is in flight.
    Resetting,
    /// Stopped for good (the error was reported).
    Failed,
}

#[derive(Debug, Clone)]
struct Partition {
    position: Position,
    leader: Option<Leader>,
    /// The consumer holds records of it not yet handed out: do not fetch more.
    buffered: bool,
    paused: bool,
    retry_at: Option<Instant>,
    attempts: u32,
}

impl Partition {
    fn fetch_offset(&self) -> Option<i64> {
        match self.position {
            Position::At(o) => Some(o),
            _ => None,
        }
    }
}

/// The fetch state of one consumer.
#[derive(Debug)]
pub struct FetchState {
    config: FetchConfig,
    backoff: BackoffPolicy,
    partitions: BTreeMap<TopicPartition, Partition>,
    sessions: BTreeMap<i32, FetchSession>,
    /// Brokers with a Fetch in flight, and which partitions (at which offsets) it asked for.
    fetching: BTreeMap<i32, BTreeMap<TopicPartition, i64>>,
    /// Brokers with a ListOffsets in flight.
    listing: BTreeSet<i32>,
    metadata_wanted: bool,
    metadata_in_flight: bool,
    metadata_retry_at: Option<Instant>,
    metadata_attempts: u32,
    /// Failures found while planning, for [`take_failures`](Self::take_failures).
    failures: Vec<Ready>,
}

impl FetchState {
    pub fn new(config: FetchConfig, backoff: BackoffPolicy) -> Self {
        Self {
            config,
            backoff,
            partitions: BTreeMap::new(),
            sessions: BTreeMap::new(),
            fetching: BTreeMap::new(),
            listing: BTreeSet::new(),
            metadata_wanted: false,
            metadata_in_flight: false,
            metadata_retry_at: None,
            metadata_attempts: 0,
            failures: Vec::new(),
        }
    }

    pub fn config(&self) -> &FetchConfig {
        &self.config
    }

    /// Starts fetching `tp` at `committed`, or at `auto.offset.reset` when `None`.
    pub fn assign(&mut self, tp: TopicPartition, committed: Option<i64>, leader: Option<Leader>) {
        if leader.is_none_or(|l| l.node < 0) {
            self.metadata_wanted = true;
        }
        let position = committed.map_or(Position::Reset, Position::At);
        self.partitions
            .insert(tp, Partition { position, leader, buffered: false, paused: false, retry_at: None, attempts: 0 });
    }

    /// Stops fetching `tp`; answers still in flight for it are dropped.
    pub fn unassign(&mut self, tp: &TopicPartition) {
        self.partitions.remove(tp);
    }

    /// The offset the next fetch of `tp` starts at, if known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions.get(tp).and_then(Partition::fetch_offset)
    }

    /// Moves `tp` to `offset` (a seek); records fetched before are the caller's to drop.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.position = Position::At(offset);
            p.buffered = false;
        }
    }

    pub fn set_paused(&mut self, tp: &TopicPartition, paused: bool) {
        if let Some(p) = self.partitions.get_mut(tp) {
            p.paused = paused;
        }
    }

    /// The consumer has taken every record of `reader` (from
    /// [`Ready::Records`]): move the position past its batches and fetch more,
    /// or stop the partition at the batch it could not read.
    pub fn drained(&mut self, tp: &TopicPartition, reader: &BatchReader) -> Option<PartitionError> {
        let p = self.partitions.get_mut(tp)?;
        // A seek (or a new assignment) since the fetch: this reader is stale.
        if p.position != Position::At(reader.fetch_offset()) || !p.buffered {
            return None;
        }
        p.buffered = false;
        if let Some(error) = reader.error() {
            p.position = Position::Failed;
            return Some(PartitionError::Corrupt { partition: tp.clone(), error: error.clone() });
        }
        p.position = Position::At(reader.next_offset().max(reader.fetch_offset()));
        None
    }

    /// When [`actions`](Self::actions) may have something new because a backoff ends.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut d = self.metadata_retry_at.filter(|_| self.metadata_wanted && !self.metadata_in_flight);
        for p in self.partitions.values() {
            if let Some(t) = p.retry_at {
                d = Some(d.map_or(t, |d| d.min(t)));
            }
        }
        d
    }

    /// Requests to send now: a metadata refresh if one is needed, ListOffsets for
    /// partitions that need a reset, and one Fetch per broker with no Fetch in
    /// flight covering all of its fetchable partitions.
    pub fn actions(&mut self, now: Instant) -> Vec<FetchAction> {
        let mut out = Vec::new();
        for p in self.partitions.values_mut() {
            if p.retry_at.is_some_and(|t| t <= now) {
                p.retry_at = None;
            }
        }
        if self.metadata_wanted && !self.metadata_in_flight && self.metadata_retry_at.is_none_or(|t| t <= now) {
            let topics: BTreeSet<String> = self.partitions.keys().map(|tp| tp.topic.to_string()).collect();
            if !topics.is_empty() {
                self.metadata_in_flight = true;
                out.push(FetchAction::RefreshMetadata { topics: topics.into_iter().collect() });
            }
        }
        // ListOffsets per leader for partitions that need auto.offset.reset.
        let mut resets: BTreeMap<i32, Vec<(TopicPartition, i64, i32)>> = BTreeMap::new();
        let timestamp = match self.config.reset {
            OffsetReset::Earliest => -2,
            OffsetReset::Latest => -1,
            OffsetReset::Error => 0, // never sent: such partitions fail below
        };
        let mut no_offset = Vec::new();
        for (tp, p) in &mut self.partitions {
            if p.position != Position::Reset || p.retry_at.is_some() {
                continue;
            }
            if self.config.reset == OffsetReset::Error {
                no_offset.push(tp.clone());
                continue;
            }
            let Some(l) = p.leader.filter(|l| l.node >= 0) else { continue };
            if self.listing.contains(&l.node) {
                continue;
            }
            resets.entry(l.node).or_default().push((tp.clone(), timestamp, l.epoch));
        }
        for tp in no_offset {
            if let Some(p) = self.partitions.get_mut(&tp) {
                p.position = Position::Failed;
            }
            // Reported through `take_failures`.
            self.failures.push(Ready::Failed { error: PartitionError::NoOffset { partition: tp.clone() }, tp });
        }
        for (broker, partitions) in resets {
            for (tp, _, _) in &partitions {
                if let Some(p) = self.partitions.get_mut(tp) {
                    p.position = Position::Resetting;
                }
            }
            self.listing.insert(broker);
            out.push(FetchAction::ListOffsets { broker, partitions });
        }
        // One Fetch per broker, for every partition it leads that we may fetch now.
        let mut wanted: BTreeMap<i32, BTreeMap<TopicPartition, PartitionFetch>> = BTreeMap::new();
        let mut topic_ids: BTreeMap<i32, BTreeMap<Arc<str>, Uuid>> = BTreeMap::new();
        for (tp, p) in &self.partitions {
            let (Some(offset), Some(l)) = (p.fetch_offset(), p.leader) else { continue };
            if l.node < 0 || p.buffered || p.paused || p.retry_at.is_some() || self.fetching.contains_key(&l.node) {
                continue;
            }
            let f = PartitionFetch {
                fetch_offset: offset,
                leader_epoch: l.epoch,
                max_bytes: self.config.max_partition_bytes,
            };
            wanted.entry(l.node).or_default().insert(tp.clone(), f);
            topic_ids.entry(l.node).or_default().insert(tp.topic.clone(), l.topic_id);
        }
        for (broker, wanted) in wanted {
            let plan = self.sessions.entry(broker).or_default().plan(&wanted);
            let offsets: BTreeMap<TopicPartition, i64> =
                wanted.iter().map(|(tp, f)| (tp.clone(), f.fetch_offset)).collect();
            self.fetching.insert(broker, offsets.clone());
            let topic_ids = topic_ids.remove(&broker).unwrap_or_default();
            out.push(FetchAction::Fetch { broker, plan, topic_ids, offsets });
        }
        out
    }

    /// The fetch sessions to close (broker, session id, final epoch), forgetting them:
    /// KIP-227 lets a client free its session on the broker instead of leaving it
    /// to expire.
    pub fn close_sessions(&mut self) -> Vec<(i32, i32, i32)> {
        let mut out = Vec::new();
        for (broker, s) in &mut self.sessions {
            if let Some((id, epoch)) = s.close() {
                out.push((*broker, id, epoch));
            }
        }
        out
    }

    /// Failures found while planning (e.g. `auto.offset.reset=error` with no offset).
    pub fn take_failures(&mut self) -> Vec<Ready> {
        std::mem::take(&mut self.failures)
    }

    /// Takes an answer in; returns what the consumer should see.
    pub fn handle(&mut self, event: FetchEvent, now: Instant) -> Vec<Ready> {
        match event {
            FetchEvent::Fetched { broker, result } => self.on_fetched(broker, result, now),
            FetchEvent::OffsetsListed { broker, result } => self.on_offsets(broker, result, now),
            FetchEvent::Metadata(result) => self.on_metadata(result, now),
        }
    }

    fn on_fetched(
        &mut self,
        broker: i32,
        result: Result<(Option<ResponseError>, i32, Vec<PartitionResult>), String>,
        now: Instant,
    ) -> Vec<Ready> {
        let asked = self.fetching.remove(&broker).unwrap_or_default();
        let session = self.sessions.entry(broker).or_default();
        let (top_error, session_id, results) = match result {
            Ok(r) => r,
            Err(reason) => {
                // Connection lost or timed out: the leader may have moved too.
                tracing::debug!(broker, %reason, "fetch failed; refreshing metadata");
                session.on_failure();
                self.back_off(asked.keys(), now);
                self.metadata_wanted = true;
                return Vec::new();
            }
        };
        session.on_response(top_error, session_id);
        if let Some(e) = top_error {
            // A session error is handled by the session (the next fetch is full);
            // anything else at the top level concerns every partition asked for.
            if !super::session::is_session_error(e) {
                tracing::warn!(broker, error = ?e, "fetch refused");
                self.back_off(asked.keys(), now);
                if recovery(e) == Recovery::RefreshMetadata {
                    self.metadata_wanted = true;
                }
            }
            return Vec::new();
        }
        let mut out = Vec::new();
        for r in results {
            let Some(asked_offset) = asked.get(&r.tp).copied() else { continue };
            let Some(p) = self.partitions.get_mut(&r.tp) else { continue };
            // Moved (seek, reset) while the fetch was out: its answer is stale.
            if p.position != Position::At(asked_offset) {
                continue;
            }
            if let Some(e) = r.error {
                match recovery(e) {
                    Recovery::RefreshMetadata => {
                        tracing::debug!(topic = %r.tp.topic, partition = r.tp.partition, error = ?e, "leader changed; refreshing metadata");
                        self.metadata_wanted = true;
                        p.retry_at = Some(now + self.backoff.delay(p.attempts, 0.5));
                        p.attempts = p.attempts.saturating_add(1);
                    }
                    Recovery::Retry => {
                        p.retry_at = Some(now + self.backoff.delay(p.attempts, 0.5));
                        p.attempts = p.attempts.saturating_add(1);
                    }
                    Recovery::ResetOffset => {
                        tracing::warn!(
                            topic = %r.tp.topic, partition = r.tp.partition, offset = asked_offset, reset = ?self.config.reset,
                            "offset out of range; applying auto.offset.reset"
                        );
                        p.position = Position::Reset;
                    }
                    Recovery::Fatal => {
                        p.position = Position::Failed;
                        out.push(Ready::Failed {
                            error: PartitionError::Broker { partition: r.tp.clone(), error: e },
                            tp: r.tp,
                        });
                    }
                }
                continue;
            }
            p.attempts = 0;
            if let Some(reader) = r.reader.filter(|r| !r.is_exhausted()) {
                p.buffered = true;
                out.push(Ready::Records { tp: r.tp, reader });
            }
        }
        out
    }

    fn on_offsets(&mut self, broker: i32, result: ListedOffsets, now: Instant) -> Vec<Ready> {
        self.listing.remove(&broker);
        let mut out = Vec::new();
        let answers = match result {
            Ok(a) => a,
            Err(reason) => {
                tracing::debug!(broker, %reason, "ListOffsets failed; refreshing metadata");
                self.metadata_wanted = true;
                let waiting: Vec<TopicPartition> = self
                    .partitions
                    .iter()
                    .filter(|(_, p)| p.position == Position::Resetting && p.leader.is_some_and(|l| l.node == broker))
                    .map(|(tp, _)| tp.clone())
                    .collect();
                for tp in &waiting {
                    if let Some(p) = self.partitions.get_mut(tp) {
                        p.position = Position::Reset;
                    }
                }
                self.back_off(waiting.iter(), now);
                return out;
            }
        };
        for (tp, answer) in answers {
            let Some(p) = self.partitions.get_mut(&tp) else { continue };
            if p.position != Position::Resetting {
                continue;
            }
            match answer {
                Ok(offset) => {
                    tracing::info!(topic = %tp.topic, partition = tp.partition, offset, reset = ?self.config.reset, "position reset");
                    p.position = Position::At(offset);
                    p.attempts = 0;
                    out.push(Ready::Reset { tp, offset });
                }
                Err(e) => {
                    p.position = Position::Reset;
                    match recovery(e) {
                        Recovery::Fatal => {
                            p.position = Position::Failed;
                            out.push(Ready::Failed {
                                error: PartitionError::Broker { partition: tp.clone(), error: e },
                                tp,
                            });
                        }
                        r => {
                            if r == Recovery::RefreshMetadata {
                                self.metadata_wanted = true;
                            }
                            p.retry_at = Some(now + self.backoff.delay(p.attempts, 0.5));
                            p.attempts = p.attempts.saturating_add(1);
                        }
                    }
                }
            }
        }
        // Partitions the answer left out go back to waiting for a reset.
        for p in self.partitions.values_mut() {
            if p.position == Position::Resetting && p.leader.is_some_and(|l| l.node == broker) {
                p.position = Position::Reset;
            }
        }
        out
    }

    fn on_metadata(
        &mut self,
        result: Result<BTreeMap<TopicPartition, Leader>, MetadataError>,
        now: Instant,
    ) -> Vec<Ready> {
        self.metadata_in_flight = false;
        match result {
            Ok(leaders) => {
                self.metadata_attempts = 0;
                self.metadata_retry_at = None;
                let mut missing = false;
                for (tp, p) in &mut self.partitions {
                    match leaders.get(tp) {
                        Some(l) => {
                            if l.node < 0 {
                                missing = true;
                            }
                            p.leader = Some(*l);
                        }
                        None => missing = true,
                    }
                }
                self.metadata_wanted = missing;
                if missing {
                    self.retry_metadata_later(now);
                }
                Vec::new()
            }
            Err(MetadataError::TopicGone(topic)) => {
                let mut out = Vec::new();
                for (tp, p) in &mut self.partitions {
                    if *tp.topic == *topic && p.position != Position::Failed {
                        p.position = Position::Failed;
                        out.push(Ready::Failed { tp: tp.clone(), error: PartitionError::TopicGone(topic.clone()) });
                    }
                }
                self.metadata_wanted = self.partitions.values().any(|p| p.position != Position::Failed);
                self.retry_metadata_later(now);
                out
            }
            Err(MetadataError::Other(reason)) => {
                tracing::debug!(%reason, "metadata refresh failed; trying again");
                self.retry_metadata_later(now);
                Vec::new()
            }
        }
    }

    fn retry_metadata_later(&mut self, now: Instant) {
        self.metadata_retry_at = Some(now + self.backoff.delay(self.metadata_attempts, 0.5));
        self.metadata_attempts = self.metadata_attempts.saturating_add(1);
    }

    fn back_off<'a>(&mut self, tps: impl Iterator<Item = &'a TopicPartition>, now: Instant) {
        for tp in tps {
            if let Some(p) = self.partitions.get_mut(tp) {
                p.retry_at = Some(now + self.backoff.delay(p.attempts, 0.5));
                p.attempts = p.attempts.saturating_add(1);
            }
        }
    }
}

#[cfg(test)]
mod tests;
