//! The producer: partitions records by key, gathers them into per-partition batches,
//! sends Produce requests with the configured `acks` (rskafka only sends acks=-1,
//! hence our own path over `wire`), retries what Kafka calls retriable within
//! `delivery.timeout.ms`, and reports the outcome of every single record.
//!
//! [`Producer`] is a cheap handle (clone it into every task that sends). `send`
//! appends the record to its partition's batch in the caller's task, as the Java
//! client's `RecordAccumulator` does, waiting only when `buffer.memory` is full; one
//! background task per producer (`sender`) sends what is ready and settles what
//! comes back. Every decision is taken by the sans-IO core in `accumulator` (with
//! `idempotence`), unit-tested on a virtual clock; `pending` keeps who waits for
//! which record.

mod accumulator;
mod batch;
mod config;
mod delivery;
mod encode;
mod enqueue;
mod idempotence;
mod pending;
mod record;
mod sender;
mod transaction;
mod transactional;
mod txn;

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use kafka_protocol::error::ResponseError;
use tokio::sync::{Notify, oneshot};

pub use accumulator::{DeliveryError, ProduceSummary};
#[cfg(test)]
pub(crate) use batch::encode_batch;
pub use config::{Acks, Compression, ConfigError, ProducerConfig};
pub(crate) use delivery::{Completion, Reports};
pub use delivery::{DeliveryFuture, DeliveryHandler};
pub use record::{Delivery, ProducerRecord, RecordMetadata};
use transaction::Transaction;
pub use transaction::TransactionError;
pub use txn::GroupMetadata;

use crate::cluster::{self, Cluster};
use crate::partitioner::NullKeyPicker;
use accumulator::{Accumulator, BATCH_OVERHEAD};
use pending::Pending;

/// Errors that keep a producer from starting.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    /// A setting was refused by `ProducerConfig::validate`.
    Config(#[from] ConfigError),
    #[error(transparent)]
    /// The cluster could not be reached.
    Cluster(#[from] cluster::Error),
    #[error("InitProducerId failed: {0}; idempotence needs Kafka 0.11+ and IDEMPOTENT_WRITE permission")]
    /// No producer id could be had for idempotence.
    InitProducerId(String),
}

/// Why [`Producer::send`] did not take a record. The record comes back, so nothing
/// is lost: it can be sent again or reported.
#[derive(Debug)]
pub struct SendError {
    /// What went wrong.
    pub kind: SendErrorKind,
    /// The record, as it was given.
    pub record: Box<ProducerRecord>,
}

/// What kept [`Producer::send`] from taking a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendErrorKind {
    /// `close` was called, or every handle was dropped.
    #[error("the producer is closed")]
    Closed,
    /// The topic's metadata could not be had (unknown topic, no broker reachable).
    #[error(transparent)]
    Metadata(cluster::Error),
    /// The record names a partition the topic does not have.
    #[error("topic {topic} has no partition {partition} (it has {partitions})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: i32,
        /// How many it has.
        partitions: i32,
    },
    /// The producer is transactional and no transaction is open, or the open one
    /// failed (it can only be aborted), or the producer was fenced.
    #[error(transparent)]
    Transaction(TransactionError),
    /// [`send_tagged`](Producer::send_tagged) on a producer made without a
    /// delivery handler: there would be no one to tell of the record's delivery.
    #[error("send_tagged needs a producer made with Producer::with_delivery_handler")]
    NoDeliveryHandler,
    /// `buffer.memory` stayed full (the brokers take records slower than they come)
    /// for `max.block.ms`, or the topic's metadata took that long.
    #[error("no room for the record within max.block.ms={max_block_ms} (buffer.memory={buffer_memory} bytes)")]
    Timeout {
        /// `max.block.ms`.
        max_block_ms: u64,
        /// `buffer.memory`.
        buffer_memory: usize,
    },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record for topic {} not sent: {}", self.record.topic, self.kind)
    }
}

impl std::error::Error for SendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// A producer bound to a cluster: clone it freely; every clone feeds the same
/// batches. Dropping the last clone lets the background task deliver what is
/// buffered and stop; [`close`](Self::close) does that and waits for it.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use cafe_kafka::{Cluster, ConnectionConfig, Producer, ProducerConfig, ProducerRecord};
///
/// let cluster = Cluster::connect(vec!["127.0.0.1:9092".into()], ConnectionConfig::default()).await?;
/// let producer = Producer::new(cluster, ProducerConfig::default()).await?;
/// // `send` returns once the record is batched; the future it gives resolves on delivery.
/// let delivery = producer.send(ProducerRecord::new("orders", "latte").with_key("alice")).await?;
/// let meta = delivery.await?;
/// println!("{}[{}]@{:?}", meta.topic, meta.partition, meta.offset);
/// producer.close().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// The clones' shared part; dropping the last one starts a close.
struct Handle {
    shared: Arc<Shared>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.wake.notify_one();
    }
}

/// What the handles and the background task share.
pub(crate) struct Shared {
    cluster: Arc<Cluster>,
    config: ProducerConfig,
    state: Mutex<State>,
    /// Wakes the background task: a batch sealed or opened, a flush, a close.
    wake: Notify,
    /// Wakes `send`s waiting for room in `buffer.memory` or behind a full backlog
    /// (`Accumulator::backlog_full`).
    room: Notify,
    /// Told of every record sent with `send_tagged`.
    on_delivery: Option<DeliveryHandler>,
}

/// Everything behind the lock: the pure core and who waits for what. Held only for
/// pure work, never across an await.
pub(crate) struct State {
    core: Accumulator,
    pending: Pending<Completion, oneshot::Sender<()>>,
    /// Each topic's sticky partition for records without a key (as Java keeps one per topic).
    null_keys: Vec<(Arc<str>, NullKeyPicker)>,
    /// Partition counts of the topics sent to, valid for one `Cluster::topics_generation`:
    /// a short list to scan, where the cluster's map costs a lock and a hash per record.
    partition_counts: (u64, Vec<(Arc<str>, i32)>),
    /// The transaction state of a producer with a `transactional.id`.
    txn: Option<Transaction>,
    closing: bool,
    /// The background task has finished; `close` returns at once.
    stopped: bool,
    closers: Vec<oneshot::Sender<()>>,
}

impl State {
    /// The partition count of `topic`, from the cache, else from the cluster's
    /// metadata (`None` when it has none yet).
    fn partitions_of(&mut self, topic: &Arc<str>, cluster: &Cluster) -> Option<i32> {
        let generation = cluster.topics_generation();
        let (valid_for, counts) = &mut self.partition_counts;
        if *valid_for != generation {
            counts.clear();
            *valid_for = generation;
        }
        if let Some((_, n)) = counts.iter().find(|(t, _)| **t == **topic) {
            return Some(*n);
        }
        let n = cluster.partition_count(topic)?;
        counts.push((Arc::clone(topic), n));
        Some(n)
    }

    /// The partition of a record of `size` bytes with `key` for `topic`: by key, or
    /// from the topic's sticky null-key picker in `pickers` (`State::null_keys`).
    fn partition_of(
        pickers: &mut Vec<(Arc<str>, NullKeyPicker)>,
        config: &ProducerConfig,
        topic: &Arc<str>,
        key: Option<&[u8]>,
        partitions: i32,
        size: usize,
    ) -> i32 {
        let at = match pickers.iter().position(|(t, _)| **t == **topic) {
            Some(at) => at,
            None => {
                pickers.push((
                    Arc::from(&**topic),
                    NullKeyPicker::sticky(None, config.batch_size.saturating_sub(BATCH_OVERHEAD)),
                ));
                pickers.len() - 1
            }
        };
        config.partitioner.partition_sized(key, partitions, size, &mut pickers[at].1)
    }

    /// The core's reports matched to their waiters.
    fn reports(&mut self) -> Reports {
        let mut out = Reports::default();
        for outcome in self.core.deliveries() {
            if let (Some(txn), Err(e)) = (&mut self.txn, &outcome.result) {
                let reason = format!("records to {}[{}] were not delivered: {e}", outcome.topic, outcome.partition);
                match e {
                    // Another producer took over the transactional.id.
                    DeliveryError::Rejected {
                        error: ResponseError::ProducerFenced | ResponseError::InvalidProducerEpoch,
                        ..
                    } => txn.fatal(reason),
                    _ => txn.failed(reason),
                }
            }
            let before = out.completions.len();
            for (i, &id) in outcome.ids.iter().enumerate() {
                if let Some(c) = self.pending.settle(id, &mut out.flushed) {
                    out.completions.push((i, c));
                }
            }
            let n = out.completions.len() - before;
            out.outcomes.push((outcome, n));
        }
        out
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves the core as it was mid-decision; the
        // producer cannot go on correctly, and every later call panics too.
        self.state.lock().expect("producer state poisoned by an earlier panic")
    }
}

/// The time now in milliseconds since the Unix epoch: a record's default timestamp.
fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// A producer on `cluster`; with idempotence it gets its producer id first.
    /// Starts the background task, so it must be called inside a Tokio runtime.
    pub async fn new(cluster: Arc<Cluster>, config: ProducerConfig) -> Result<Self, Error> {
        Self::start(cluster, config, None).await
    }

    /// Like [`new`](Self::new), with a handler that hears of the delivery of every
    /// record sent with [`send_tagged`](Self::send_tagged), by its tag.
    ///
    /// ```no_run
    /// # async fn demo(cluster: std::sync::Arc<cafe_kafka::Cluster>) -> Result<(), Box<dyn std::error::Error>> {
    /// use cafe_kafka::{Producer, ProducerConfig, ProducerRecord};
    /// let on_delivery = |tag: u64, d: &cafe_kafka::Delivery| {
    ///     if let Err(e) = &d.result {
    ///         eprintln!("order {tag} not delivered: {e}");
    ///     }
    /// };
    /// let producer =
    ///     Producer::with_delivery_handler(cluster, ProducerConfig::default(), Box::new(on_delivery)).await?;
    /// for order in 0..1000u64 {
    ///     producer.send_tagged(ProducerRecord::new("orders", order.to_string()), order).await?;
    /// }
    /// producer.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn with_delivery_handler(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        handler: DeliveryHandler,
    ) -> Result<Self, Error> {
        Self::start(cluster, config, Some(handler)).await
    }

    async fn start(
        cluster: Arc<Cluster>,
        config: ProducerConfig,
        on_delivery: Option<DeliveryHandler>,
    ) -> Result<Self, Error> {
        config.validate()?;
        // A transactional producer gets its id from init_transactions.
        let producer_id = match config.idempotent() && config.transactional_id.is_none() {
            true => Some(sender::init_producer_id(&cluster, &config).await?),
            false => None,
        };
        let state = State {
            core: Accumulator::new(config.clone(), producer_id),
            pending: Pending::new(config.buffer_memory),
            null_keys: Vec::new(),
            partition_counts: (u64::MAX, Vec::new()),
            closing: false,
            stopped: false,
            closers: Vec::new(),
            txn: config.transactional_id.is_some().then(Transaction::new),
        };
        let (state, wake, room) = (Mutex::new(state), Notify::new(), Notify::new());
        let shared = Arc::new(Shared { cluster, config, state, wake, room, on_delivery });
        tokio::spawn(sender::run(Arc::clone(&shared)));
        Ok(Self { handle: Arc::new(Handle { shared }) })
    }

    /// Batches `record` and returns once it is in the buffer, waiting up to
    /// `max.block.ms` for room (and for the topic's metadata, the first time a topic
    /// is seen). Room means: the records not yet delivered hold less than
    /// `buffer.memory`, and sealed batches do not already wait for two rounds of
    /// requests (more could not go out sooner: they would only wait longer). The returned future resolves when the record is delivered or has
    /// failed for good.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, SendError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(record, Completion::Future(tx), &mut || None).await?;
        Ok(DeliveryFuture { rx })
    }

    /// Like [`send`](Self::send), but `on_delivery` is called with the outcome
    /// instead of a future being returned: cheaper when sending many records. It
    /// runs on the producer's background task (or at once, in this task, for a
    /// record refused before batching), so it should be quick and must not block.
    pub async fn send_with_callback<F>(&self, record: ProducerRecord, on_delivery: F) -> Result<(), SendError>
    where
        F: FnOnce(Delivery) + Send + 'static,
    {
        self.enqueue(record, Completion::Callback(Box::new(on_delivery)), &mut || None).await.map(drop)
    }

    /// Like [`send_with_callback`](Self::send_with_callback), but the outcome goes
    /// to the producer's [`DeliveryHandler`] with `tag`, which can be anything the
    /// caller needs to match it up (an index, a send time): the cheapest way to
    /// send many records. Fails with [`SendErrorKind::NoDeliveryHandler`] unless the
    /// producer was made with [`with_delivery_handler`](Self::with_delivery_handler).
    pub async fn send_tagged(&self, record: ProducerRecord, tag: u64) -> Result<(), SendError> {
        // A run of one: `send_tagged_all` holds the handler check and the loop.
        self.send_tagged_all(&mut std::iter::once((record, tag))).await
    }

    /// Sends every record batched so far without waiting for `linger.ms`, and returns
    /// when each of them is delivered or has failed (records sent meanwhile by other
    /// tasks are not waited for).
    pub async fn flush(&self) {
        let shared = &self.handle.shared;
        let (tx, rx) = oneshot::channel();
        if shared.lock().pending.flush(tx).is_err() {
            return;
        }
        shared.wake.notify_one();
        // An error means the background task stopped; its records were failed then.
        let _ = rx.await;
    }

    /// Stops taking records (`send` then fails with [`SendErrorKind::Closed`], in
    /// every clone), delivers or fails everything buffered, and returns when the
    /// background task has finished. Records still being retried are bounded by
    /// `delivery.timeout.ms`.
    pub async fn close(&self) {
        let shared = &self.handle.shared;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = shared.lock();
            st.closing = true;
            if st.stopped {
                return;
            }
            st.closers.push(tx);
        }
        shared.wake.notify_one();
        let _ = rx.await;
    }

    /// Counts of delivered, failed and retried so far.
    pub fn summary(&self) -> ProduceSummary {
        self.handle.shared.lock().core.summary()
    }

    /// The settings it runs with.
    pub fn config(&self) -> &ProducerConfig {
        &self.handle.shared.config
    }
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.handle.shared.lock();
        f.debug_struct("Producer")
            .field("pending", &st.pending.len())
            .field("buffered_bytes", &st.pending.buffered())
            .field("closing", &st.closing)
            .finish_non_exhaustive()
    }
}
