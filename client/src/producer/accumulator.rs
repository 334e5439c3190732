//! The producer's core, sans-IO: records in, batches per topic-partition (sealed by
//! `batch.size` and `linger.ms`), requests out (one batch per partition, grouped by
//! leader, within `max.request.size` and `max.in.flight`), responses in, one
//! an [`Outcome`] per batch out. Retries, `delivery.timeout.ms` and idempotence
//! (sequences, DUPLICATE_SEQUENCE_NUMBER, moving to a new producer id after a gap)
//! are decided here; time is passed in, and the driver (`sender`) does the I/O
//! the core asks for in [`Settled`]: a metadata refresh, a new producer id.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::ProduceResponse;
use kafka_protocol::messages::produce_response::PartitionProduceResponse;

use super::batch::{OpenBatch, OutRecord, SealedBatch};
use super::config::ProducerConfig;
use super::idempotence::{PartitionKey, ProducerIds};
use super::record::Delivery;

/// The record batch header: what an open batch starts at, counted against
/// `batch.size` and `max.request.size` with the records.
pub(crate) use super::encode::HEADER_LEN as BATCH_OVERHEAD;

/// Why one record was not delivered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DeliveryError {
    /// The record alone is larger than `max.request.size` (or `buffer.memory`); it
    /// was never sent.
    #[error("record of {size} bytes exceeds {setting}={max}")]
    RecordTooLarge {
        /// Its size with the batch overhead, in bytes.
        size: usize,
        /// The limit it passes.
        max: usize,
        /// The setting of that limit: `max.request.size` or `buffer.memory`.
        setting: &'static str,
    },
    /// The broker answered MESSAGE_TOO_LARGE or RECORD_LIST_TOO_LARGE for its batch.
    #[error("broker refused the record: MESSAGE_TOO_LARGE (its message.max.bytes is smaller than this batch)")]
    BrokerTooLarge,
    /// The broker answered a non-retriable error for its batch.
    #[error("broker refused the record: {error}{}", .message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Rejected {
        /// The broker's error code.
        error: ResponseError,
        /// The broker's message and per-record errors (KIP-467), where it sent any.
        message: Option<String>,
    },
    /// Retriable errors went on until `delivery.timeout.ms` was spent.
    #[error("not delivered within delivery.timeout.ms={timeout_ms} after {attempts} attempts; last error: {last}")]
    TimedOut {
        /// `delivery.timeout.ms`.
        timeout_ms: u64,
        /// How many times the batch was sent.
        attempts: u32,
        /// The last error it got.
        last: String,
    },
    /// The record batch could not be encoded (not expected).
    #[error("{0}")]
    Encode(String),
    /// The producer stopped before the record was settled: its async runtime shut
    /// down (the record may or may not have been written).
    #[error("the producer stopped before the record was settled; it may or may not have been written")]
    Stopped,
}

/// The outcome the core decided for some records, all alike: every record of a
/// batch, or one refused alone. One per batch, not per record: the driver matches
/// them to their waiters and builds each record's [`Delivery`] outside the lock.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Outcome {
    /// The records' ids, in offset order.
    pub ids: Vec<u64>,
    pub topic: Arc<str>,
    /// -1 for a record refused before partitioning (too large).
    pub partition: i32,
    /// `Ok(Some(base))`: record `i` is at offset `base + i`; `Ok(None)`: delivered
    /// with no offset known (acks=0, or a duplicate the broker already had).
    pub result: Result<Option<i64>, DeliveryError>,
}

impl Outcome {
    /// The delivery of `ids[i]`.
    pub(crate) fn delivery(&self, i: usize) -> Delivery {
        let result = match &self.result {
            Ok(base) => Ok(base.map(|b| b + i as i64)),
            Err(e) => Err(e.clone()),
        };
        Delivery { topic: self.topic.clone(), partition: self.partition, result }
    }

    /// Makes `d`, a delivery of this outcome, the one of `ids[i]`: only the offset differs.
    pub(crate) fn move_to(&self, d: &mut Delivery, i: usize) {
        if let Ok(base) = &self.result {
            d.result = Ok(base.map(|b| b + i as i64));
        }
    }
}

/// Counts of one produce run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProduceSummary {
    /// Records the broker has (or, with acks=0, was sent).
    pub delivered: u64,
    /// Records that failed for good.
    pub failed: u64,
    /// Batches sent again after a retriable error.
    pub retries: u64,
    /// Produce requests sent (Java's `request-total` for produce).
    pub requests: u64,
    /// Batches those requests carried, retries included: `batches / requests` is
    /// how full requests were (at most one batch per partition each).
    pub batches: u64,
}

/// One Produce request to send: batches of distinct partitions, all led by `leader`.
#[derive(Debug)]
pub(crate) struct Request {
    pub leader: i32,
    pub batches: Vec<SealedBatch>,
}

/// What a Produce request came back with, as the core needs it: `Sent` for acks=0
/// (no response), the broker's response, or why the request failed on the way.
#[derive(Debug)]
pub(crate) enum Response {
    Sent,
    Produced(ProduceResponse),
    Failed(String),
}

/// The I/O a settled response asks of the driver, in this order.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Settled {
    /// Batches are retried: refresh metadata of these topics (leaders may have moved).
    pub refresh: Vec<Arc<str>>,
    /// A batch failed for good under the current producer id: get a new one and call
    /// [`Accumulator::producer_id_renewed`].
    pub new_producer_id: bool,
}

/// Open batches of one topic; topics are few, so a record finds its own by comparing
/// names in a short list, with no hashing.
#[derive(Debug)]
struct TopicBatches {
    topic: Arc<str>,
    open: OpenBatches,
    /// Partitions of this topic records went to, ever (for [`Accumulator::backlog_full`]).
    seen: Vec<bool>,
}

/// One topic's open batches, indexed by partition: a record finds its batch without
/// hashing (partitions are dense, 0..count, and checked before they get here).
#[derive(Debug, Default)]
struct OpenBatches {
    by_partition: Vec<Option<OpenBatch>>,
    len: usize,
}

impl OpenBatches {
    fn slot(&mut self, p: i32) -> &mut Option<OpenBatch> {
        let i = usize::try_from(p).expect("partitions are checked before append");
        if i >= self.by_partition.len() {
            self.by_partition.resize_with(i + 1, || None);
        }
        &mut self.by_partition[i]
    }

    /// The open batch of `p`, opened with `open` if it has none.
    fn get_or_open(&mut self, p: i32, open: impl FnOnce() -> OpenBatch) -> &mut OpenBatch {
        if self.slot(p).is_none() {
            self.len += 1;
        }
        self.slot(p).get_or_insert_with(open)
    }

    fn remove(&mut self, p: i32) -> Option<OpenBatch> {
        let b = self.slot(p).take();
        self.len -= usize::from(b.is_some());
        b
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn values(&self) -> impl Iterator<Item = &OpenBatch> {
        self.by_partition.iter().flatten()
    }

    /// Takes out the batches `take` picks, in partition order.
    fn take_if(&mut self, mut take: impl FnMut(&OpenBatch) -> bool) -> Vec<OpenBatch> {
        let mut out = Vec::new();
        for slot in &mut self.by_partition {
            if slot.as_ref().is_some_and(&mut take) {
                out.extend(slot.take());
            }
        }
        self.len -= out.len();
        out
    }
}

/// One partition's batches in flight (idempotence): where, how many, and whether
/// they are a retry (which goes alone).
#[derive(Debug)]
struct PartitionInFlight {
    leader: i32,
    batches: usize,
    retrying: bool,
}

/// The pure producer: accumulates, seals, chooses requests, settles responses.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: ProducerConfig,
    ids: ProducerIds,
    topics: Vec<TopicBatches>,
    ready: VecDeque<SealedBatch>,
    /// Partitions with batches in flight (tracked with idempotence only).
    partitions_in_flight: HashMap<PartitionKey, PartitionInFlight>,
    in_flight: usize,
    /// Distinct topic-partitions records went to.
    partitions_seen: usize,
    deliveries: Vec<Outcome>,
    summary: ProduceSummary,
}

impl Accumulator {
    /// A core for `config`, sealing under `producer_id` (idempotence) when given.
    pub(crate) fn new(config: ProducerConfig, producer_id: Option<(i64, i16)>) -> Self {
        Self {
            config,
            ids: ProducerIds::new(producer_id),
            topics: Vec::new(),
            ready: VecDeque::new(),
            partitions_in_flight: HashMap::new(),
            in_flight: 0,
            partitions_seen: 0,
            deliveries: Vec::new(),
            summary: ProduceSummary::default(),
        }
    }

    /// Adds `r` to its partition's open batch; `partition` is asked only for a record
    /// that fits in a request (one that does not fails alone, unpartitioned). A batch
    /// that reaches `batch.size`, or would pass it with `r`, is sealed. True when the
    /// driver should look now: a request's worth is sealed while a request slot is
    /// free (see [`request_due`](Self::request_due)), or the only open batch was
    /// opened (a `linger.ms` timer to set; with other batches open, an earlier timer
    /// is set already). Waking it for less costs a thread wake-up for nothing.
    pub(crate) fn append(
        &mut self,
        topic: &Arc<str>,
        r: OutRecord,
        now: impl Fn() -> Instant,
        partition: impl FnOnce(&OutRecord) -> i32,
    ) -> bool {
        let size = r.approx_size() + BATCH_OVERHEAD;
        let max = self.config.max_request_size;
        if size > max {
            let err = DeliveryError::RecordTooLarge { size, max, setting: "max.request.size" };
            self.report(vec![r.id], topic.clone(), -1, Err(err));
            return false;
        }
        let p = partition(&r);
        let batch_size = self.config.batch_size;
        let t = match self.topics.iter().position(|t| *t.topic == **topic) {
            Some(i) => i,
            None => {
                // Our own copy of the name: batches and reports clone this `Arc` on the
                // driver's task, the caller clones its own in its task; sharing one would
                // bounce its count between the two threads on every record.
                self.topics.push(TopicBatches {
                    topic: Arc::from(&**topic),
                    open: OpenBatches::default(),
                    seen: Vec::new(),
                });
                self.topics.len() - 1
            }
        };
        let first_open = self.topics.iter().all(|t| t.open.is_empty());
        let TopicBatches { topic, open, seen } = &mut self.topics[t];
        let i = p as usize; // checked by `OpenBatches`
        if i >= seen.len() {
            seen.resize(i + 1, false);
        }
        if !seen[i] {
            seen[i] = true;
            self.partitions_seen += 1;
        }
        // The clock is read only for a new batch: that is all `now` is for (a clock
        // read per record costs more than the rest of `append`).
        let batch = open.get_or_open(p, || OpenBatch::new(topic.clone(), p, now()));
        let mut sealed = Vec::new();
        if !batch.is_empty() && batch.size() + r.approx_size() > batch_size {
            sealed.push(std::mem::replace(batch, OpenBatch::new(topic.clone(), p, now())));
        }
        let record_size = r.approx_size();
        if batch.is_empty() {
            batch.reserve_for(batch_size, record_size);
        }
        batch.push(r);
        // Full when another record like this one would not fit: it goes now, as
        // Java sends a batch an append did not fit in, not at the next record (the
        // sticky partitioner sends that one elsewhere, see `NullKeyPicker::sticky`)
        // nor after `linger.ms`.
        if batch.size() + record_size > batch_size {
            sealed.extend(open.remove(p));
        }
        let news = first_open || (!sealed.is_empty() && self.has_free_slot() && self.worth_sending());
        for b in sealed {
            self.seal(b);
        }
        news
    }

    /// When the driver must look again after `now`: the oldest open batch will be
    /// `linger.ms` old (due for sealing), or the oldest sealed one (due for sending,
    /// see [`request_due`](Self::request_due)). Never `now` or earlier: a sealed batch
    /// already due that is still here waits for a free slot (or, with idempotence,
    /// for its partition's batch in flight), so for a response, which wakes the
    /// driver anyway; a timer in the past would spin it until then.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let linger = self.config.linger;
        let open = self.topics.iter().flat_map(|t| t.open.values()).map(|b| b.created() + linger);
        open.chain(self.ready.front().map(|b| b.created + linger)).filter(|&at| at > now).min()
    }

    /// True when a request should go now: a slot is free, and a request's worth is
    /// sealed (a batch per partition written to, what one request can carry), or
    /// nothing is in flight, or the oldest sealed batch has waited `linger.ms` (a
    /// retry has always waited). Sending at every sealed batch while requests are in
    /// flight fills the `max.in.flight` slots with requests of one batch each, and the
    /// broker's per-request cost caps the rate; but an idle pipeline gains nothing by
    /// waiting, and at a moderate rate (the sticky partitioner fills one partition at
    /// a time) waiting for a batch of every partition added up to `linger.ms` to
    /// every record's latency.
    pub(crate) fn request_due(&self, now: Instant) -> bool {
        let Some(oldest) = self.ready.front() else { return false };
        self.has_free_slot()
            && (self.worth_sending() || now.saturating_duration_since(oldest.created) >= self.config.linger)
    }

    /// A request's worth is sealed, or nothing is in flight (see [`request_due`](Self::request_due)).
    fn worth_sending(&self) -> bool {
        self.in_flight == 0 || self.ready.len() >= self.partitions_seen.max(1)
    }

    /// The topics records were appended to, so far.
    pub(crate) fn topics(&self) -> impl Iterator<Item = &Arc<str>> {
        self.topics.iter().map(|t| &t.topic)
    }

    /// Seals every open batch at least `linger.ms` old.
    pub(crate) fn seal_aged(&mut self, now: Instant) {
        let linger = self.config.linger;
        let mut aged = Vec::new();
        for t in &mut self.topics {
            aged.extend(t.open.take_if(|b| !b.is_empty() && now.duration_since(b.created()) >= linger));
        }
        for b in aged {
            self.seal(b);
        }
    }

    /// Seals every open batch (end of input, flush), by topic, then partition.
    pub(crate) fn seal_all(&mut self) {
        let mut open = Vec::new();
        for t in &mut self.topics {
            open.extend(t.open.take_if(|_| true));
        }
        for b in open {
            self.seal(b);
        }
    }

    fn seal(&mut self, batch: OpenBatch) {
        if batch.is_empty() {
            return;
        }
        let (topic, partition) = (batch.topic.clone(), batch.partition);
        let idem = self.ids.next(&topic, partition, batch.len());
        match batch.seal(self.config.compression, idem, self.config.transactional_id.is_some()) {
            Ok(sealed) => self.ready.push_back(sealed),
            // Not expected (only a codec can fail), but if it
            // happens every record in it is reported, never dropped.
            Err((ids, reason)) => self.report(ids, topic, partition, Err(DeliveryError::Encode(reason))),
        }
    }

    /// Sealed batches waiting to be sent (retries included).
    pub(crate) fn ready_len(&self) -> usize {
        self.ready.len()
    }

    /// True when sealed batches are waiting for two rounds of requests already (two
    /// per partition written to): more could not go out sooner, they would only
    /// wait longer, so the producer holds `send` back until some go out. One round
    /// keeps every request full (a request carries one batch per partition); the
    /// second covers the time until the driver dispatches again.
    pub(crate) fn backlog_full(&self) -> bool {
        self.ready.len() >= 2 * self.partitions_seen.max(1)
    }

    /// True when at most one round of sealed batches waits: the point at which the
    /// driver wakes `send`s held back by [`backlog_full`](Self::backlog_full). Waking
    /// them at every dispatch instead costs a thread wake-up per request for a
    /// record or two each time.
    pub(crate) fn backlog_drained(&self) -> bool {
        self.ready.len() <= self.partitions_seen.max(1)
    }

    /// True while a request slot is free (`max.in.flight`).
    pub(crate) fn has_free_slot(&self) -> bool {
        self.in_flight < self.config.max_in_flight
    }

    /// True when nothing is open, waiting or in flight: every record is reported.
    pub(crate) fn is_idle(&self) -> bool {
        self.in_flight == 0 && self.ready.is_empty() && self.topics.iter().all(|t| t.open.is_empty())
    }

    /// The next request, if a slot is free and a batch may go: the first ready batch
    /// plus others for the same leader, one batch per partition, within
    /// `max.request.size`; retries and first sends never share a request. With
    /// idempotence each partition's sequences must reach the broker in order: a
    /// broker with no state for a producer accepts whatever sequence comes first (seq
    /// 75 before seq 0 would leave seq 0 refused for ever). The driver writes each
    /// leader's requests in the order they are taken here, so several batches of a
    /// partition may be in flight (up to `max.in.flight`, as Java does), provided
    /// they all went to the same leader and none of them is a retry. A partition's
    /// retry goes only when nothing of it is in flight, and alone: then it is the
    /// lowest sequence not yet written, and nothing of its partition can overtake it
    /// while it waits out its backoff. `leader_of` gives a partition's leader (-1
    /// when unknown).
    pub(crate) fn next_request(&mut self, leader_of: impl Fn(&str, i32) -> i32) -> Option<Request> {
        if !self.has_free_slot() {
            return None;
        }
        let ordered = self.ids.enabled();
        let ids = &self.ids;
        let in_flight = &mut self.partitions_in_flight;
        // A partition the broker has acknowledged nothing of under this producer id
        // gets one batch in flight: if that one were refused with a retriable error
        // (NOT_LEADER_OR_FOLLOWER from a partition just created) and the next taken,
        // the first could never be written (OUT_OF_ORDER_SEQUENCE_NUMBER for ever).
        let eligible = |b: &SealedBatch, leader: i32, in_flight: &HashMap<PartitionKey, PartitionInFlight>| {
            if !ordered {
                return true;
            }
            match in_flight.get(&(b.topic.clone(), b.partition)) {
                None => true,
                Some(f) => b.attempts == 0 && !f.retrying && f.leader == leader && ids.established(b),
            }
        };
        // Only a partition's first batch in the queue may go (the lowest sequence):
        // partitions whose first one was passed over are skipped after it.
        let mut passed: Vec<(Arc<str>, i32)> = Vec::new();
        let was_passed = |passed: &[(Arc<str>, i32)], b: &SealedBatch| {
            passed.iter().any(|(t, p)| *p == b.partition && **t == *b.topic)
        };
        let mut at = None;
        for (i, b) in self.ready.iter().enumerate() {
            if was_passed(&passed, b) {
                continue;
            }
            if eligible(b, leader_of(&b.topic, b.partition), in_flight) {
                at = Some(i);
                break;
            }
            passed.push((b.topic.clone(), b.partition));
        }
        let first = self.ready.remove(at?).expect("index in range");
        let leader = leader_of(&first.topic, first.partition);
        let retries = first.attempts > 0;
        let mut size = first.bytes.len();
        let mut batches = vec![first];
        let mut i = 0;
        while i < self.ready.len() {
            let b = &self.ready[i];
            let key_passed = was_passed(&passed, b);
            let fits = size + b.bytes.len() <= self.config.max_request_size;
            let new_partition = batches.iter().all(|x| x.partition != b.partition || x.topic != b.topic);
            if !key_passed
                && fits
                && new_partition
                && (b.attempts > 0) == retries
                && leader_of(&b.topic, b.partition) == leader
                && eligible(b, leader, in_flight)
            {
                size += b.bytes.len();
                batches.push(self.ready.remove(i).expect("index in range"));
            } else {
                if !key_passed {
                    passed.push((b.topic.clone(), b.partition));
                }
                i += 1;
            }
        }
        if ordered {
            for b in &batches {
                let f = in_flight.entry((b.topic.clone(), b.partition)).or_insert(PartitionInFlight {
                    leader,
                    batches: 0,
                    retrying: false,
                });
                f.batches += 1;
                f.retrying |= retries;
            }
        }
        self.in_flight += 1;
        self.summary.requests += 1;
        self.summary.batches += batches.len() as u64;
        Some(Request { leader, batches })
    }

    /// Settles what `request` came back with at `now`: delivers, fails, or queues
    /// batches again (a partition's lowest sequence first), and says what I/O that needs.
    pub(crate) fn on_response(&mut self, request: Request, response: Response, now: Instant) -> Settled {
        let Request { leader, batches } = request;
        self.in_flight -= 1;
        if self.ids.enabled() {
            for b in &batches {
                let key = (b.topic.clone(), b.partition);
                if let Some(f) = self.partitions_in_flight.get_mut(&key) {
                    f.batches -= 1;
                    if f.batches == 0 {
                        self.partitions_in_flight.remove(&key);
                    }
                }
            }
        }
        let mut retry: Vec<(SealedBatch, String)> = Vec::new();
        // (producer id, topic, partition) where a sequence can never be filled under
        // that id: an idempotent batch failed for good, or was overtaken.
        let mut gaps: Vec<(i64, Arc<str>, i32)> = Vec::new();
        match response {
            Response::Sent => {
                for b in batches {
                    self.settle_batch(b, Ok(None));
                }
            }
            Response::Produced(resp) => {
                // By partition index, then topic: requests rarely carry more than one topic.
                let mut by_partition: HashMap<i32, Vec<(&str, &PartitionProduceResponse)>> = HashMap::new();
                for t in &resp.responses {
                    for p in &t.partition_responses {
                        by_partition.entry(p.index).or_default().push((&t.name.0, p));
                    }
                }
                for b in batches {
                    let found = by_partition.get_mut(&b.partition).and_then(|v| {
                        let at = v.iter().position(|(t, _)| *t == &*b.topic)?;
                        Some(v.swap_remove(at).1)
                    });
                    let Some(p) = found else {
                        retry.push((b, "partition missing from the Produce response".into()));
                        continue;
                    };
                    match ResponseError::try_from_code(p.error_code) {
                        None => {
                            self.ids.acked(&b);
                            self.settle_batch(b, Ok(Some(p.base_offset)))
                        }
                        // The broker already has this batch: a retry of something that landed.
                        Some(ResponseError::DuplicateSequenceNumber) => {
                            self.ids.acked(&b);
                            self.settle_batch(b, Ok(None))
                        }
                        Some(ResponseError::MessageTooLarge) | Some(ResponseError::RecordListTooLarge) => {
                            self.fail(b, DeliveryError::BrokerTooLarge, &mut gaps)
                        }
                        // Refused, so certainly not written. Either an earlier batch is still
                        // being retried (resend the same bytes after it), or an earlier one
                        // failed for good and this one must move to a new producer id, or a
                        // later one was written first: then it too can only go under a new
                        // id (the gap asks for one; once there is one, the batch moves to it
                        // when it is refused again), and in a transaction it fails it.
                        Some(error @ ResponseError::OutOfOrderSequenceNumber) => {
                            let mut last = error.to_string();
                            if self.ids.overtaken(&b) {
                                let why = "a later batch of the partition was written before it";
                                if self.config.transactional_id.is_some() {
                                    let message = Some(why.into());
                                    self.fail(b, DeliveryError::Rejected { error, message }, &mut gaps);
                                    continue;
                                }
                                gaps.extend(b.idem.map(|i| (i.producer_id, b.topic.clone(), b.partition)));
                                last = format!("{error}: {why}");
                            }
                            let b = if self.ids.is_gapped(&b) { self.ids.move_to_current(b) } else { b };
                            retry.push((b, last))
                        }
                        Some(e) if e.is_retriable() => retry.push((b, e.to_string())),
                        Some(error) => {
                            let message = rejection_message(p);
                            self.fail(b, DeliveryError::Rejected { error, message }, &mut gaps)
                        }
                    }
                }
            }
            Response::Failed(reason) => {
                tracing::warn!(leader, error = %reason, "produce request failed; will retry");
                retry.extend(batches.into_iter().map(|b| (b, reason.clone())));
            }
        }
        let mut settled = Settled::default();
        for (b, _) in &retry {
            if !settled.refresh.contains(&b.topic) {
                settled.refresh.push(b.topic.clone());
            }
        }
        // Resend in sequence order: a partition's lowest sequence first, or the broker
        // answers the later ones with OUT_OF_ORDER_SEQUENCE_NUMBER once more.
        retry.sort_by(|(a, _), (b, _)| {
            let key = |x: &SealedBatch| (x.partition, x.idem.map(|i| (i.producer_id, i.base_sequence)));
            key(a).cmp(&key(b)).then_with(|| a.topic.cmp(&b.topic))
        });
        let mut requeue = Vec::with_capacity(retry.len());
        for (mut b, last) in retry {
            if now.saturating_duration_since(b.created) + self.config.backoff.max >= self.config.delivery_timeout {
                let err = DeliveryError::TimedOut {
                    timeout_ms: self.config.delivery_timeout.as_millis() as u64,
                    attempts: b.attempts + 1,
                    last,
                };
                self.fail(b, err, &mut gaps);
                continue;
            }
            let seq = b.idem.map(|i| i.base_sequence);
            tracing::debug!(topic = %b.topic, partition = b.partition, ?seq, records = b.len(), attempt = b.attempts, %last, "retrying batch");
            self.summary.retries += 1;
            b.attempts += 1;
            requeue.push(b);
        }
        self.requeue(requeue);
        // A transactional producer keeps its id: the failure fails the transaction,
        // and aborting it re-initializes the id (InitProducerId with its transactional.id).
        if !gaps.is_empty() && self.config.transactional_id.is_none() {
            settled.new_producer_id = self.ids.record_gaps(&gaps);
        }
        settled
    }

    /// Puts retried batches back (sorted by partition, then sequence): ahead of
    /// everything of other partitions (they are the oldest), but among their own
    /// partition's batches in the order they were sent (by first record id: the
    /// responses of a partition's batches in flight come back in any order), so
    /// sequences go out in order again.
    fn requeue(&mut self, batches: Vec<SealedBatch>) {
        let mut front = 0;
        for b in batches {
            let same = |x: &SealedBatch| x.partition == b.partition && x.topic == b.topic;
            let first_id = |x: &SealedBatch| x.ids.first().copied().unwrap_or(0);
            let later = self.ready.iter().position(|x| same(x) && first_id(x) > first_id(&b));
            let last_earlier = self.ready.iter().rposition(|x| same(x) && first_id(x) < first_id(&b));
            let at = match (later, last_earlier) {
                (Some(at), _) => at,
                (None, Some(at)) => at + 1,
                (None, None) => front,
            };
            self.ready.insert(at, b);
            if at <= front {
                front += 1;
            }
        }
    }

    /// The producer id of a transactional producer, from `init_transactions` (or
    /// again after an abort): later batches go under it, sequences from 0.
    pub(crate) fn set_producer_id(&mut self, id: (i64, i16)) {
        self.ids.renew(id);
    }

    /// The producer id and epoch batches are sealed under, if any.
    pub(crate) fn producer_id(&self) -> Option<(i64, i16)> {
        self.ids.current()
    }

    /// The driver's answer to [`Settled::new_producer_id`]: on success, later batches
    /// go under the new id (sequences from 0), and never-sent batches of a partition
    /// with a gap move now, in the same order. On failure nothing changes.
    pub(crate) fn producer_id_renewed(&mut self, id: Result<(i64, i16), String>) {
        let old = self.ids.current().map(|(id, _)| id);
        match id {
            Ok(id) => {
                tracing::info!(?old, new = id.0, "a batch failed for good; continuing under a new producer id");
                self.ids.renew(id);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not get a new producer id; later batches may fail");
                return;
            }
        }
        let mut kept = VecDeque::with_capacity(self.ready.len());
        for b in std::mem::take(&mut self.ready) {
            if b.attempts != 0 || !self.ids.is_gapped(&b) {
                kept.push_back(b);
                continue;
            }
            kept.push_back(self.ids.move_to_current(b));
        }
        self.ready = kept;
    }

    /// Outcomes since the last call, in the order they were decided.
    pub(crate) fn deliveries(&mut self) -> std::vec::Drain<'_, Outcome> {
        self.deliveries.drain(..)
    }

    /// Counts so far.
    pub(crate) fn summary(&self) -> ProduceSummary {
        self.summary
    }

    fn report(&mut self, ids: Vec<u64>, topic: Arc<str>, partition: i32, result: Result<Option<i64>, DeliveryError>) {
        let n = ids.len() as u64;
        match result {
            Ok(_) => self.summary.delivered += n,
            Err(_) => self.summary.failed += n,
        }
        self.deliveries.push(Outcome { ids, topic, partition, result });
    }

    fn fail(&mut self, b: SealedBatch, err: DeliveryError, failed: &mut Vec<(i64, Arc<str>, i32)>) {
        if let Some(i) = b.idem {
            failed.push((i.producer_id, b.topic.clone(), b.partition));
        }
        self.settle_batch(b, Err(err));
    }

    /// Reports every record of `b`: at `Ok(Some(base))` + its index, or all alike.
    fn settle_batch(&mut self, b: SealedBatch, result: Result<Option<i64>, DeliveryError>) {
        self.report(b.ids, b.topic, b.partition, result);
    }
}

/// The broker's message, and the bad records it names (KIP-467) where it can.
fn rejection_message(p: &PartitionProduceResponse) -> Option<String> {
    let detail = p
        .record_errors
        .iter()
        .map(|r| format!("record {}: {}", r.batch_index, r.batch_index_error_message.as_deref().unwrap_or("?")));
    let message = p.error_message.as_ref().map(|m| m.to_string()).into_iter().chain(detail).collect::<Vec<_>>();
    (!message.is_empty()).then(|| message.join("; "))
}

#[cfg(test)]
mod tests;
