//! The group consumer: a `group` member decides which partitions are ours, one
//! rskafka fetch task per partition reads them, and `poll` hands records to the
//! user. A record's offset counts as consumed only once the user asks for more
//! (or closes), so a crash never commits records the user did not see.

mod fetcher;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use fetcher::Fetched;
pub use fetcher::{FetchSettings, FetchedRecord, OffsetReset};

use crate::cluster::{self, Cluster};
use crate::error::exit;
use crate::group::driver::{self, Control, GroupHandle};
use crate::group::state::{Event, GroupConfig, GroupError, Tp};

#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    pub group: GroupConfig,
    pub fetch: FetchSettings,
    /// How long `close` may take for its final commit and LeaveGroup.
    pub close_timeout: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        Self {
            group: GroupConfig::default(),
            fetch: FetchSettings {
                reset: OffsetReset::Earliest,
                max_bytes: 1_048_576,
                max_wait: Duration::from_millis(500),
            },
            close_timeout: Duration::from_secs(5),
        }
    }
}

impl ConsumerConfig {
    pub fn validate(&self) -> Result<(), Error> {
        let g = &self.group;
        let bad = |s: &str| Err(Error::Config(s.to_owned()));
        if g.group_id.trim().is_empty() {
            return bad("group.id must not be empty; pass --group NAME");
        }
        if g.topics.is_empty() || g.topics.iter().any(|t| t.trim().is_empty()) {
            return bad("give at least one non-empty --topic");
        }
        if g.heartbeat_interval >= g.session_timeout {
            return bad("heartbeat.interval.ms must be lower than session.timeout.ms");
        }
        if g.auto_commit_interval.is_zero() {
            return bad("auto.commit.interval.ms must be positive");
        }
        if g.group_instance_id.as_deref().is_some_and(|i| i.trim().is_empty()) {
            return bad("group.instance.id must not be empty when given");
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("invalid consumer setting: {0}")]
    Config(String),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("{0}")]
    Group(#[from] GroupError),
    #[error("{0}")]
    Fetch(String),
    #[error("topic `{0}` does not exist (or was deleted); create it with `cafe topic create {0}`")]
    UnknownTopic(String),
    #[error("could not set up fetching: {0}")]
    Setup(String),
}

impl Error {
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Config(_) => exit::USAGE,
            Error::Cluster(e) => crate::error::cluster_code(e),
            Error::Group(_) => exit::GROUP,
            Error::UnknownTopic(_) => exit::UNKNOWN_TOPIC,
            Error::Fetch(_) | Error::Setup(_) => exit::FAILURE,
        }
    }
}

/// A record handed to the user.
#[derive(Debug, Clone)]
pub struct ConsumedRecord {
    pub topic: String,
    pub partition: i32,
    pub record: FetchedRecord,
}

pub struct Consumer {
    group: GroupHandle,
    rs: Arc<rskafka::client::Client>,
    config: ConsumerConfig,
    fetchers: HashMap<Tp, JoinHandle<()>>,
    data_tx: mpsc::Sender<Fetched>,
    data_rx: mpsc::Receiver<Fetched>,
    /// Bumped at every revocation; batches from older epochs are dropped.
    epoch: u64,
    /// Next offsets of the batch handed out last: consumed once the user comes back.
    handed: BTreeMap<Tp, i64>,
    /// Fetched records not handed out yet (a batch larger than the caller's limit).
    buffered: Option<(Tp, std::collections::VecDeque<FetchedRecord>)>,
    assigned: Vec<Tp>,
    closed: bool,
}

impl Consumer {
    /// Joins the group (in the background) and prepares fetching.
    pub async fn new(cluster: Arc<Cluster>, config: ConsumerConfig) -> Result<Self, Error> {
        config.validate()?;
        for t in &config.group.topics {
            cluster.topic_or_fetch(t).await?;
        }
        let rs = cluster::rskafka_client(cluster.bootstrap(), cluster.client_id(), Duration::from_secs(30))
            .await
            .map_err(|e| Error::Setup(e.to_string()))?;
        let group = driver::spawn(cluster, config.group.clone());
        // A few batches per partition in flight is enough to hide fetch latency.
        let (data_tx, data_rx) = mpsc::channel(16);
        Ok(Self {
            group,
            rs: Arc::new(rs),
            config,
            fetchers: HashMap::new(),
            data_tx,
            data_rx,
            epoch: 0,
            handed: BTreeMap::new(),
            buffered: None,
            assigned: Vec::new(),
            closed: false,
        })
    }

    /// Partitions currently assigned to this member.
    pub fn assignment(&self) -> &[Tp] {
        &self.assigned
    }

    /// The next batch of records, waiting as long as it takes. Calling it again
    /// marks the previous batch consumed (eligible for the next commit).
    pub async fn poll(&mut self) -> Result<Vec<ConsumedRecord>, Error> {
        self.poll_max(usize::MAX).await
    }

    /// Like [`poll`](Self::poll) with at most `max` records (Java's
    /// `max.poll.records`); the rest stay buffered and are not consumed, so a
    /// caller that stops after `max` commits nothing it did not see.
    pub async fn poll_max(&mut self, max: usize) -> Result<Vec<ConsumedRecord>, Error> {
        self.mark_consumed();
        let max = max.max(1);
        loop {
            if let Some(batch) = self.take_buffered(max) {
                return Ok(batch);
            }
            tokio::select! {
                // Group decisions first: never hand out records of a revoked partition.
                biased;
                c = self.group.control.recv() => {
                    let Some(c) = c else { return Err(Error::Setup("the group task stopped".into())) };
                    self.on_control(c)?;
                }
                Some(f) = self.data_rx.recv() => self.accept(f)?,
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
        self.stop_all();
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
                self.assigned = partitions.iter().map(|(tp, _)| tp.clone()).collect();
                tracing::info!(partitions = ?self.assigned, "assigned");
                for (tp, start) in partitions {
                    let task = fetcher::run(
                        Arc::clone(&self.rs),
                        tp.clone(),
                        start,
                        self.epoch,
                        self.config.fetch,
                        self.data_tx.clone(),
                    );
                    self.fetchers.insert(tp, tokio::spawn(task));
                }
            }
            Control::Revoke(partitions) => {
                tracing::info!(?partitions, "revoking");
                for tp in &partitions {
                    if let Some(h) = self.fetchers.remove(tp) {
                        h.abort();
                    }
                }
                self.epoch += 1;
                self.assigned.retain(|tp| !partitions.contains(tp));
                if self.buffered.as_ref().is_some_and(|(tp, _)| partitions.contains(tp)) {
                    self.buffered = None;
                }
                // Positions of what the user already has are in; now let the commit happen.
                self.mark_consumed();
                let _ = self.group.events.send(Event::Revoked);
            }
            Control::Fatal(e) => {
                self.stop_all();
                return Err(Error::Group(e));
            }
            Control::Closed => {
                self.stop_all();
            }
        }
        Ok(())
    }

    /// Hands out up to `max` buffered records and notes their next offset.
    fn take_buffered(&mut self, max: usize) -> Option<Vec<ConsumedRecord>> {
        let (tp, records) = self.buffered.as_mut()?;
        let n = max.min(records.len());
        let out: Vec<ConsumedRecord> =
            records.drain(..n).map(|record| ConsumedRecord { topic: tp.0.clone(), partition: tp.1, record }).collect();
        if let Some(last) = out.last() {
            self.handed.insert(tp.clone(), last.record.offset + 1);
        }
        if records.is_empty() {
            self.buffered = None;
        }
        (!out.is_empty()).then_some(out)
    }

    /// Buffers a fetched batch (only when the buffer is empty: `poll_max` drains it first).
    fn accept(&mut self, f: Fetched) -> Result<(), Error> {
        match f {
            Fetched::Records { tp, epoch, records } => {
                if epoch == self.epoch && self.fetchers.contains_key(&tp) && !records.is_empty() {
                    self.buffered = Some((tp, records.into()));
                }
                Ok(())
            }
            Fetched::Failed { tp, epoch, reason, unknown_topic } => {
                if epoch != self.epoch {
                    return Ok(());
                }
                if unknown_topic {
                    return Err(Error::UnknownTopic(tp.0));
                }
                Err(Error::Fetch(reason))
            }
        }
    }

    fn stop_all(&mut self) {
        for (_, h) in self.fetchers.drain() {
            h.abort();
        }
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        self.stop_all();
        if !self.closed {
            self.group.task.abort();
        }
    }
}
