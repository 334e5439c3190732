//! The group consumer: a `group` member decides which partitions are ours, the
//! [`fetch`](crate::fetch) path reads them (one Fetch per broker, fetch sessions,
//! our own batch decoder), and `poll` hands records to the user. A record's
//! offset counts as consumed only once the user asks for more (or closes), so a
//! crash never commits records the user did not see.
//!
//! Beside it: the settings (`config`), the `Stream` adapter (`stream`) and the
//! handle of a commit not waited for (`pending_commit`).

mod config;
mod pending_commit;
mod poll_notice;
mod stream;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub use config::ConsumerConfig;
pub use pending_commit::PendingCommit;
pub use stream::RecordStream;

pub use crate::fetch::state::PartitionError;
pub use crate::fetch::{FetchConfig, Header, IsolationLevel, OffsetReset, Record as FetchedRecord};
pub use crate::group::CommitError;

use crate::cluster::{self, Cluster};
use crate::fetch::decode::BatchReader;
use crate::fetch::fetcher::Fetcher;
use crate::fetch::state::Ready;
use crate::group::consumer_driver;
use crate::group::driver::{self, Control, GroupHandle};
use crate::group::io::Event;
use crate::group::{GroupError, GroupProtocol};
use crate::producer::GroupMetadata;
use crate::types::TopicPartition;

/// Why the consumer cannot go on (a commit's own failures are `CommitError`s).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid consumer setting: {0}")]
    /// A setting was refused by `ConsumerConfig::validate`.
    Config(String),
    /// `group.id` is empty. Its own variant (as `NoTopics`), so an application can
    /// name the flag or field its user sets it with.
    #[error("invalid consumer setting: group.id must not be empty")]
    NoGroupId,
    /// No topic (and no pattern) to subscribe to, or an empty topic name.
    #[error("invalid consumer setting: give at least one non-empty topic")]
    NoTopics,
    /// A classic-protocol setting given with `group.protocol=consumer`, where the
    /// broker decides it: refused, as the Java client refuses it, rather than
    /// silently ignored.
    #[error("invalid consumer setting: `{key}` is not supported with group.protocol=consumer ({instead})")]
    ClassicOnly {
        /// The setting (`session.timeout.ms`, `heartbeat.interval.ms`,
        /// `partition.assignment.strategy`).
        key: &'static str,
        /// What sets it with the consumer protocol.
        instead: &'static str,
    },
    #[error(transparent)]
    /// The cluster could not be reached, or metadata failed.
    Cluster(#[from] cluster::Error),
    #[error("{0}")]
    /// The group refused the member for good (fenced, bad settings).
    Group(#[from] GroupError),
    /// A partition stopped: unreadable data, no offset to start from, a refusal.
    /// Everything before it was handed out; nothing past it is committed.
    #[error(transparent)]
    Partition(PartitionError),
    #[error("topic `{0}` does not exist (or was deleted)")]
    /// A subscribed topic does not exist, or was deleted while consuming.
    UnknownTopic(String),
    #[error("could not set up fetching: {0}")]
    /// The consumer's own tasks stopped.
    Setup(String),
    /// A commit failed (from [`Consumer::commit`] and friends, through `?`).
    #[error("commit failed: {0}")]
    Commit(#[from] CommitError),
}

/// A record handed to the user.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    /// The topic it came from (shared by the records of a fetch: a `String` per
    /// record was an allocation and a copy each, a sixth of `bench consume`'s CPU).
    pub topic: Arc<str>,
    /// The partition it came from.
    pub partition: i32,
    /// Offset, timestamp, key, value and headers.
    pub record: FetchedRecord,
}

/// What [`Consumer::next_event`] returns: records, or a change of assignment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ConsumerEvent {
    /// The next batch, as [`Consumer::poll`] returns it.
    Records(Vec<ConsumedRecord>),
    /// These partitions are now this member's; records of them follow. With
    /// cooperative rebalancing only those added: the others stay assigned.
    Assigned(Vec<TopicPartition>),
    /// These partitions are being taken away: nothing of them is returned any
    /// more, and the member rejoins the group only at the next call to
    /// `next_event`, `poll` or `close`, so a [`Consumer::commit`] made now is
    /// what the next owner starts from (Java's `onPartitionsRevoked`).
    Revoked(Vec<TopicPartition>),
}

/// Fetched batches of one partition not handed out yet, decoded as they are taken.
struct Chunk {
    tp: TopicPartition,
    reader: BatchReader,
}

/// A member of a consumer group that fetches, hands out and commits records.
pub struct Consumer {
    group: GroupHandle,
    fetcher: Fetcher,
    config: ConsumerConfig,
    /// Next offsets of the batch handed out last: consumed once the user comes back.
    handed: BTreeMap<TopicPartition, i64>,
    /// Fetched chunks in arrival order; at most one per partition (a partition
    /// with a chunk here is not fetched again until it is handed out).
    buffered: VecDeque<Chunk>,
    /// An error to return once the records before it were handed out.
    pending_error: Option<Error>,
    assigned: Vec<TopicPartition>,
    /// The group generation `assigned` was given in and the member id it was
    /// given to; `None` before the first assignment.
    generation: Option<(i32, String)>,
    /// Partitions the user paused: neither fetched nor handed out.
    paused: std::collections::BTreeSet<TopicPartition>,
    /// Assignment changes not yet returned by `next_event`.
    rebalance_events: VecDeque<ConsumerEvent>,
    /// A revocation returned by `next_event`: the member waits for the answer
    /// (`Event::Revoked`) until the user calls the consumer again.
    revocation_open: bool,
    /// When to tell the member the user is polling (`max.poll.interval.ms`).
    poll_notice: poll_notice::PollNotice,
    closed: bool,
}

impl Consumer {
    /// Joins the group (in the background) and prepares fetching.
    pub async fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Result<Self, Error> {
        config.validate()?;
        if config.group.topic_pattern.is_none() {
            for t in &config.group.topics {
                cluster.topic_or_fetch(t).await?;
            }
        }
        let fetcher = Fetcher::new(Arc::clone(&cluster), config.fetch, config.group.backoff);
        let group = match config.group.protocol {
            GroupProtocol::Classic => driver::spawn(cluster, config.group.clone()).map_err(Error::Config)?,
            GroupProtocol::Consumer => consumer_driver::spawn(cluster, config.group.clone()),
        };
        let poll_notice = poll_notice::PollNotice::new(config.group.rebalance_timeout);
        Ok(Self {
            group,
            fetcher,
            config,
            handed: BTreeMap::new(),
            buffered: VecDeque::new(),
            pending_error: None,
            assigned: Vec::new(),
            generation: None,
            paused: Default::default(),
            rebalance_events: VecDeque::new(),
            revocation_open: false,
            poll_notice,
            closed: false,
        })
    }

    /// Partitions currently assigned to this member.
    pub fn assignment(&self) -> &[TopicPartition] {
        &self.assigned
    }

    /// The group generation of the latest assignment (Java's
    /// `groupMetadata().generationId()`), `None` before the first. Each
    /// rebalance starts a new generation; a static member (KIP-345) that comes
    /// back within the session timeout rejoins the one it left. With
    /// `group.protocol=consumer` (KIP-848) it is the member epoch.
    pub fn generation_id(&self) -> Option<i32> {
        self.generation.as_ref().map(|(g, _)| *g)
    }

    /// The member as a transaction commits offsets for it (Java's
    /// `groupMetadata()`, for `Producer::send_offsets_to_transaction`, KIP-447):
    /// group id, generation (the member epoch with `group.protocol=consumer`),
    /// member id and `group.instance.id`. The coordinator refuses the offsets of a
    /// member that is no longer in this generation, so a zombie's transaction
    /// cannot commit them. Before the first assignment generation and member id
    /// are -1 and "", which the coordinator does not check.
    pub fn group_metadata(&self) -> GroupMetadata {
        let (generation_id, member_id) = self.generation.clone().unwrap_or((-1, String::new()));
        GroupMetadata {
            group_id: self.config.group.group_id.clone(),
            generation_id,
            member_id,
            group_instance_id: self.config.group.group_instance_id.clone(),
        }
    }

    /// The offset the next record of `tp` comes from, if `tp` is assigned and
    /// its start is known (`None` while `auto.offset.reset` is being applied).
    /// Records already fetched but not yet returned by `poll` come first.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.fetcher.state.position(tp)
    }

    /// Reads `tp` from `offset` next (Java's `seek`): records of `tp` fetched
    /// before are dropped. What was handed out before stays consumed, so
    /// auto-commit never moves a committed offset backwards.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        self.buffered.retain(|c| c.tp != *tp);
        self.fetcher.state.seek(tp, offset);
    }

    /// Stops returning and fetching records of `partitions` until [`resume`](Self::resume)
    /// (Java's `pause`); the member keeps them and heartbeats go on.
    pub fn pause(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.insert(tp.clone());
            self.fetcher.state.set_paused(tp, true);
        }
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            self.paused.remove(tp);
            self.fetcher.state.set_paused(tp, false);
        }
    }

    /// The next batch of records, waiting as long as it takes. Calling it again
    /// marks the previous batch consumed (eligible for the next commit).
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, Error> {
        self.poll_max(usize::MAX).await
    }

    /// Like [`poll`](Self::poll) with at most `max` records (and never more than
    /// `max.poll.records`); the rest stay buffered and are not consumed, so a
    /// caller that stops after `max` commits nothing it did not see.
    ///
    /// A partition that fails (an unreadable batch, say) hands out every record
    /// before the failure first; then one call returns the error, and the other
    /// partitions go on if the caller keeps polling.
    pub async fn poll_max(&mut self, max: usize) -> Result<Vec<ConsumedRecord>, Error> {
        // Callers of `poll` do not see assignment changes.
        self.rebalance_events.clear();
        match self.next_inner(max, false).await? {
            ConsumerEvent::Records(records) => Ok(records),
            // Only returned when asked for; never here.
            _ => Err(Error::Setup("an assignment change reached poll".into())),
        }
    }

    /// The next batch of records or change of assignment, waiting as long as it
    /// takes: [`poll`](Self::poll) that also tells of rebalances. After
    /// [`ConsumerEvent::Revoked`] the member waits until this consumer is called
    /// again, so the caller can [`commit`](Self::commit) the revoked partitions'
    /// progress first.
    pub async fn next_event(&mut self) -> Result<ConsumerEvent, Error> {
        self.next_event_max(usize::MAX).await
    }

    /// [`next_event`](Self::next_event) with at most `max` records in a batch.
    pub async fn next_event_max(&mut self, max: usize) -> Result<ConsumerEvent, Error> {
        self.next_inner(max, true).await
    }

    /// The records as a [`Stream`](futures_core::Stream), one at a time (each
    /// counts as consumed once the next one is asked for). Errors are items; the
    /// stream goes on after them and never ends by itself.
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream::new(self)
    }

    /// Commits every position handed out so far (the records of the last batch
    /// included) that is ahead of this member's last commit, and waits for the
    /// coordinator's answer. Works with `enable.auto.commit` off. Never moves a
    /// committed offset back: use [`commit_offsets`](Self::commit_offsets) for that.
    ///
    /// During a rebalance this fails with the retriable
    /// [`CommitError::RebalanceInProgress`], except right after
    /// [`ConsumerEvent::Revoked`], when it is the revoked partitions' last commit.
    pub async fn commit(&mut self) -> Result<(), CommitError> {
        self.commit_async().await
    }

    /// [`commit`](Self::commit) without waiting: the request is on its way when
    /// this returns; await the handle for the answer, or drop it.
    pub fn commit_async(&mut self) -> PendingCommit {
        self.mark_consumed();
        PendingCommit::new(self.group.commit(None))
    }

    /// Commits `offsets` (for each partition the offset of the next record to
    /// read) and waits for the answer. Every partition must be assigned to this
    /// member, or nothing is sent ([`CommitError::NotAssigned`]).
    pub async fn commit_offsets(&mut self, offsets: BTreeMap<TopicPartition, i64>) -> Result<(), CommitError> {
        self.commit_offsets_async(offsets).await
    }

    /// [`commit_offsets`](Self::commit_offsets) without waiting.
    pub fn commit_offsets_async(&mut self, offsets: BTreeMap<TopicPartition, i64>) -> PendingCommit {
        PendingCommit::new(self.group.commit(Some(offsets)))
    }

    async fn next_inner(&mut self, max: usize, events: bool) -> Result<ConsumerEvent, Error> {
        self.mark_consumed();
        self.finish_revocation();
        let max = max.clamp(1, self.config.max_poll_records.max(1));
        loop {
            // Waiting here for records is polling too (Java's poll timer runs
            // between calls only).
            if self.poll_notice.due(std::time::Instant::now()) {
                self.group.send(Event::Polled);
            }
            // Group decisions first, even with records buffered: a revocation must
            // not wait until a backlog is handed out (the rebalance would stall
            // every other member until then), and revoked records are never returned.
            while !self.revocation_open {
                match self.group.control.try_recv() {
                    Ok(c) => self.on_control(c, events)?,
                    Err(_) => break,
                }
            }
            if let Some(e) = self.rebalance_events.pop_front() {
                return Ok(e);
            }
            if let Some(batch) = self.take_buffered(max) {
                return Ok(ConsumerEvent::Records(batch));
            }
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            self.fetcher.dispatch();
            tokio::select! {
                // Group decisions first: never hand out records of a revoked partition.
                biased;
                c = self.group.control.recv() => {
                    let Some(c) = c else { return Err(Error::Setup("the group task stopped".into())) };
                    self.on_control(c, events)?;
                }
                ready = self.fetcher.next() => self.accept(ready),
                // Only to renew the poll notice at the top of the loop.
                _ = tokio::time::sleep(self.poll_notice.every()) => {}
            }
        }
    }

    /// Lets the member go on with a revocation the user was told of.
    fn finish_revocation(&mut self) {
        if std::mem::take(&mut self.revocation_open) {
            self.group.send(Event::Revoked);
        }
    }

    /// Commits what was consumed, leaves the group, stops fetching. Bounded by
    /// `close_timeout`; past it the coordinator times the member out instead.
    pub async fn close(self) -> Result<(), Error> {
        self.close_with(|_| {}).await
    }

    /// [`close`](Self::close) that tells `on_change` of the assignment changes
    /// made while closing: a member that owns partitions revokes them all
    /// ([`ConsumerEvent::Revoked`]) before its final commit and LeaveGroup, as
    /// the Java client calls `onPartitionsRevoked` from `close`. Closing does not
    /// wait for the caller there: the final commit is its own.
    pub async fn close_with(mut self, mut on_change: impl FnMut(ConsumerEvent)) -> Result<(), Error> {
        // Changes queued before the close were never asked for; they are stale now.
        self.rebalance_events.clear();
        self.mark_consumed();
        self.closed = true;
        self.group.send(Event::Close);
        // After Close: a revocation left open then ends in LeaveGroup, not a rejoin.
        self.finish_revocation();
        let timeout = self.config.close_timeout;
        let drained = tokio::time::timeout(timeout, async {
            while let Some(c) = self.group.control.recv().await {
                match c {
                    Control::Closed => return Ok(()),
                    Control::Fatal(e) => return Err(Error::Group(e)),
                    other => {
                        self.on_control(other, true)?;
                        for change in self.rebalance_events.drain(..) {
                            on_change(change);
                        }
                        self.finish_revocation();
                    }
                }
            }
            Ok(())
        })
        .await;
        self.fetcher.close_sessions(Duration::from_millis(500)).await;
        match drained {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(?timeout, "close timed out; the final commit or LeaveGroup may not have landed");
                Ok(())
            }
        }
    }

    fn mark_consumed(&mut self) {
        for (tp, next_offset) in std::mem::take(&mut self.handed) {
            self.group.send(Event::Consumed { tp, next_offset });
        }
    }

    /// Applies a group decision; with `events`, assignment changes are queued for
    /// the user and a revocation stays open until the user calls again.
    fn on_control(&mut self, c: Control, events: bool) -> Result<(), Error> {
        match c {
            Control::Assign { generation, member_id, partitions } => {
                tracing::info!(generation, partitions = ?partitions.iter().map(|(tp, _)| tp).collect::<Vec<_>>(), "assigned");
                self.generation = Some((generation, member_id));
                let mut added = Vec::with_capacity(partitions.len());
                for (tp, start) in partitions {
                    let leader = self.fetcher.cached_leader(&tp);
                    self.fetcher.state.assign(tp.clone(), start, leader);
                    self.assigned.push(tp.clone());
                    added.push(tp);
                }
                if events {
                    self.rebalance_events.push_back(ConsumerEvent::Assigned(added));
                }
            }
            Control::Revoke(partitions) => {
                tracing::info!(?partitions, "revoking");
                self.paused.retain(|tp| !partitions.contains(tp));
                for tp in &partitions {
                    self.fetcher.state.unassign(tp);
                }
                self.assigned.retain(|tp| !partitions.contains(tp));
                self.buffered.retain(|c| !partitions.contains(&c.tp));
                // Positions of what the user already has are in; now let the commit happen.
                self.mark_consumed();
                if events {
                    // The user hears of it first and may commit; the next call answers.
                    self.rebalance_events.push_back(ConsumerEvent::Revoked(partitions));
                    self.revocation_open = true;
                } else {
                    self.group.send(Event::Revoked);
                }
            }
            Control::Fatal(e) => return Err(Error::Group(e)),
            Control::Closed => {}
        }
        Ok(())
    }

    /// Hands out up to `max` records of the oldest chunk and notes their next
    /// offset; a drained chunk lets its partition be fetched again (or reports
    /// the batch that stopped it, after every record before it).
    fn take_buffered(&mut self, max: usize) -> Option<Vec<ConsumedRecord>> {
        // Chunks of paused partitions wait at the back until they are resumed.
        if let Some(i) = self.buffered.iter().position(|c| !self.paused.contains(&c.tp)) {
            self.buffered.rotate_left(i);
        }
        while let Some(chunk) = self.buffered.front_mut().filter(|c| !self.paused.contains(&c.tp)) {
            // Sized for a poll up front (max.poll.records is 500 by default): growing
            // by doubling copied the records again and again.
            let mut out = Vec::with_capacity(max.min(1024));
            while out.len() < max {
                match chunk.reader.next_record() {
                    Some(record) => out.push(ConsumedRecord {
                        topic: Arc::clone(&chunk.tp.topic),
                        partition: chunk.tp.partition,
                        record,
                    }),
                    None => break,
                }
            }
            if let Some(last) = out.last() {
                self.handed.insert(chunk.tp.clone(), last.record.offset + 1);
            }
            if chunk.reader.is_exhausted() {
                if let Some(chunk) = self.buffered.pop_front() {
                    match self.fetcher.state.drained(&chunk.tp, &chunk.reader) {
                        Some(e) => self.fail(e),
                        // Past trailing transaction markers and aborted batches too,
                        // as the Java consumer's position is (so lag reaches 0).
                        None if chunk.reader.next_offset() > chunk.reader.fetch_offset() => {
                            let next = self.handed.entry(chunk.tp.clone()).or_insert(0);
                            *next = (*next).max(chunk.reader.next_offset());
                        }
                        None => {}
                    }
                }
            }
            if !out.is_empty() {
                return Some(out);
            }
        }
        None
    }

    fn accept(&mut self, ready: Vec<Ready>) {
        for r in ready {
            match r {
                Ready::Records { tp, reader } => self.buffered.push_back(Chunk { tp, reader }),
                Ready::Failed { tp, error } => {
                    tracing::debug!(topic = %tp.topic, partition = tp.partition, "partition failed");
                    self.fail(error)
                }
                // Worth committing even if nothing is ever read from it: the next
                // member starts here instead of resetting again (as the Java consumer does).
                Ready::Reset { tp, offset } => {
                    self.group.send(Event::Consumed { tp, next_offset: offset });
                }
            }
        }
    }

    fn fail(&mut self, e: PartitionError) {
        let e = match e {
            // An explicitly subscribed topic that is gone ends the consumer; with a
            // pattern the group's next metadata refresh drops it instead.
            PartitionError::TopicGone(t) if self.config.group.topic_pattern.is_some() => {
                tracing::info!(topic = %t, "a topic matching the pattern is gone");
                return;
            }
            PartitionError::TopicGone(t) => Error::UnknownTopic(t),
            e => Error::Partition(e),
        };
        tracing::warn!(error = %e, "partition stopped");
        self.pending_error.get_or_insert(e);
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        if !self.closed {
            self.group.task.abort();
        }
    }
}
