//! The group consumer: a `group` member decides which partitions are ours, the
//! [`fetch`](crate::fetch) path reads them (one Fetch per broker, fetch sessions,
//! our own batch decoder), and `poll` hands records to the user. A record's
//! offset counts as consumed only once the user asks for more (or closes), so a
//! crash never commits records the user did not see.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

pub use crate::fetch::state::PartitionError;
pub use crate::fetch::{FetchConfig, Header, IsolationLevel, OffsetReset, Record as FetchedRecord};

use crate::cluster::{self, Cluster};
use crate::fetch::decode::BatchReader;
use crate::fetch::fetcher::Fetcher;
use crate::fetch::state::Ready;
use crate::group::driver::{self, Control, GroupHandle};
use crate::group::state::{Event, GroupConfig, GroupError, Tp};

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub group: GroupConfig,
    pub fetch: FetchConfig,
    /// `max.poll.records`: the most records one `poll` returns, so the caller
    /// comes back (and the member reacts to a rebalance) often enough.
    pub max_poll_records: usize,
    /// How long `close` may take for its final commit and LeaveGroup.
    pub close_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: GroupConfig::default(),
            fetch: FetchConfig::default(),
            max_poll_records: 500,
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl ConsumerConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let g = &self.group;
        let bad = |s: &str| Err(Error::Config(s.to_owned()));
        if g.group_id.trim().is_empty() {
            return Err(Error::NoGroupId);
        }
        match &g.topic_pattern {
            Some(p) if p.is_empty() => return bad("the topic pattern must not be empty"),
            Some(_) => {}
            None if g.topics.is_empty() || g.topics.iter().any(|t| t.trim().is_empty()) => {
                return Err(Error::NoTopics);
            }
            None => {}
        }
        if g.heartbeat_interval >= g.session_timeout {
            return bad("heartbeat.interval.ms must be lower than session.timeout.ms");
        }
        if g.auto_commit_interval.is_zero() {
            return bad("auto.commit.interval.ms must be positive");
        }
        if self.max_poll_records == 0 {
            return Err(Error::Config("max.poll.records must be at least 1".into()));
        }
        if g.metadata_max_age.is_zero() {
            return bad("metadata.max.age.ms must be positive");
        }
        if g.group_instance_id.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return bad("group.instance.id must not be empty when given");
        }
        self.fetch.validate().map_err(Error::Config)
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid consumer setting: {0}")]
    Config(String),
    /// `group.id` is empty. Its own variant (as `NoTopics`), so an application can
    /// name the flag or field its user sets it with.
    #[error("invalid consumer setting: group.id must not be empty")]
    NoGroupId,
    /// No topic (and no pattern) to subscribe to, or an empty topic name.
    #[error("invalid consumer setting: give at least one non-empty topic")]
    NoTopics,
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("{0}")]
    Group(#[from] GroupError),
    /// A partition stopped: unreadable data, no offset to start from, a refusal.
    /// Everything before it was handed out; nothing past it is committed.
    #[error(transparent)]
    Partition(PartitionError),
    #[error("topic `{0}` does not exist (or was deleted)")]
    UnknownTopic(String),
    #[error("could not set up fetching: {0}")]
    Setup(String),
}

/// A record handed to the user.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub record: FetchedRecord,
}

/// Fetched batches of one partition not handed out yet, decoded as they are taken.
struct Chunk {
    tp: Tp,
    reader: BatchReader,
}

pub struct Consumer {
    group: GroupHandle,
    fetcher: Fetcher,
    config: ConsumerConfig,
    /// Next offsets of the batch handed out last: consumed once the user comes back.
    handed: BTreeMap<Tp, i64>,
    /// Fetched chunks in arrival order; at most one per partition (a partition
    /// with a chunk here is not fetched again until it is handed out).
    buffered: VecDeque<Chunk>,
    /// An error to return once the records before it were handed out.
    pending_error: Option<Error>,
    assigned: Vec<Tp>,
    /// Partitions the user paused: neither fetched nor handed out.
    paused: std::collections::BTreeSet<Tp>,
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
        let group = driver::spawn(cluster, config.group.clone()).map_err(Error::Config)?;
        Ok(Self {
            group,
            fetcher,
            config,
            handed: BTreeMap::new(),
            buffered: VecDeque::new(),
            pending_error: None,
            assigned: Vec::new(),
            paused: Default::default(),
            closed: false,
        })
    }

    /// Partitions currently assigned to this member.
    pub fn assignment(&self) -> &[Tp] {
        &self.assigned
    }

    /// The offset the next record of `tp` comes from, if `tp` is assigned and
    /// its start is known (`None` while `auto.offset.reset` is being applied).
    /// Records already fetched but not yet returned by `poll` come first.
    pub fn position(&self, tp: &Tp) -> Option<i64> {
        self.fetcher.state.position(tp)
    }

    /// Reads `tp` from `offset` next (Java's `seek`): records of `tp` fetched
    /// before are dropped. What was handed out before stays consumed, so
    /// auto-commit never moves a committed offset backwards.
    pub fn seek(&mut self, tp: &Tp, offset: i64) {
        self.buffered.retain(|c| c.tp != *tp);
        self.fetcher.state.seek(tp, offset);
    }

    /// Stops returning and fetching records of `partitions` until [`resume`](Self::resume)
    /// (Java's `pause`); the member keeps them and heartbeats go on.
    pub fn pause(&mut self, partitions: &[Tp]) {
        for tp in partitions {
            self.paused.insert(tp.clone());
            self.fetcher.state.set_paused(tp, true);
        }
    }

    /// Undoes [`pause`](Self::pause).
    pub fn resume(&mut self, partitions: &[Tp]) {
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
        self.mark_consumed();
        let max = max.clamp(1, self.config.max_poll_records.max(1));
        loop {
            // Group decisions first, even with records buffered: a revocation must
            // not wait until a backlog is handed out (the rebalance would stall
            // every other member until then), and revoked records are never returned.
            while let Ok(c) = self.group.control.try_recv() {
                self.on_control(c)?;
            }
            if let Some(batch) = self.take_buffered(max) {
                return Ok(batch);
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
                    self.on_control(c)?;
                }
                ready = self.fetcher.next() => self.accept(ready),
            }
        }
    }

    /// Commits what was consumed, leaves the group, stops fetching. Bounded by
    /// `close_timeout`; past it the coordinator times the member out instead.
    pub async fn close(mut self) -> Result<(), Error> {
        self.mark_consumed();
        self.closed = true;
        let _ = self.group.events.send(Event::Close);
        let timeout = self.config.close_timeout;
        let drained = tokio::time::timeout(timeout, async {
            while let Some(c) = self.group.control.recv().await {
                match c {
                    Control::Closed => return Ok(()),
                    Control::Fatal(e) => return Err(Error::Group(e)),
                    other => self.on_control(other)?,
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
            let _ = self.group.events.send(Event::Consumed { tp, next_offset });
        }
    }

    fn on_control(&mut self, c: Control) -> Result<(), Error> {
        match c {
            Control::Assign(partitions) => {
                tracing::info!(partitions = ?partitions.iter().map(|(tp, _)| tp).collect::<Vec<_>>(), "assigned");
                for (tp, start) in partitions {
                    let leader = self.fetcher.cached_leader(&tp);
                    self.fetcher.state.assign(tp.clone(), start, leader);
                    self.assigned.push(tp);
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
                let _ = self.group.events.send(Event::Revoked);
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
            let mut out = Vec::new();
            while out.len() < max {
                match chunk.reader.next_record() {
                    Some(record) => {
                        out.push(ConsumedRecord { topic: chunk.tp.0.clone(), partition: chunk.tp.1, record })
                    }
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
                    tracing::debug!(topic = %tp.0, partition = tp.1, "partition failed");
                    self.fail(error)
                }
                // Worth committing even if nothing is ever read from it: the next
                // member starts here instead of resetting again (as the Java consumer does).
                Ready::Reset { tp, offset } => {
                    let _ = self.group.events.send(Event::Consumed { tp, next_offset: offset });
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
