//! Unit tests of the producer core: records and responses in, requests and delivery
//! reports out, no sockets. Time is virtual: a base `Instant` plus milliseconds.
use super::*;

use kafka_protocol::error::ResponseError as E;
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::produce_response::TopicProduceResponse;
use kafka_protocol::protocol::StrBytes;
use std::time::Duration;

use crate::producer::batch::Idempotence;
use crate::producer::config::Acks;
use crate::producer::record::ProducerRecord;

// ---- fixtures -------------------------------------------------------------------------

const PID: (i64, i16) = (1000, 0);

fn config() -> ProducerConfig {
    ProducerConfig { linger: Duration::from_millis(5), enable_idempotence: Some(false), ..ProducerConfig::default() }
}

fn idempotent() -> ProducerConfig {
    ProducerConfig { enable_idempotence: Some(true), acks: Acks::All, ..config() }
}

struct Sim {
    core: Accumulator,
    base: Instant,
    now_ms: u64,
    next_id: u64,
}

impl Sim {
    fn new(config: ProducerConfig) -> Self {
        let pid = config.idempotent().then_some(PID);
        Self { core: Accumulator::new(config, pid), base: Instant::now(), now_ms: 0, next_id: 0 }
    }

    fn now(&self) -> Instant {
        self.base + Duration::from_millis(self.now_ms)
    }

    fn advance(&mut self, ms: u64) {
        self.now_ms += ms;
    }

    /// Appends one record of `value_len` bytes to `topic[partition]`; returns its id.
    fn send(&mut self, topic: &str, partition: i32, value_len: usize) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let r = OutRecord::new(id, ProducerRecord::new(topic, vec![b'x'; value_len]), || 0).2;
        let now = self.now();
        self.core.append(&Arc::from(topic), r, || now, |_| partition);
        id
    }

    /// Seals everything and takes one request; leaders: partition % 2 + 1 (so 1 or 2).
    fn request(&mut self) -> Request {
        self.core.seal_all();
        self.core.next_request(by_parity).expect("a request")
    }

    fn respond(&mut self, req: Request, resp: Response) -> Settled {
        let now = self.now();
        self.core.on_response(req, resp, now)
    }

    /// The outcomes since the last call, one per record.
    fn deliveries(&mut self) -> Vec<Report> {
        let outcomes: Vec<Outcome> = self.core.deliveries().collect();
        outcomes
            .iter()
            .flat_map(|o| {
                o.ids.iter().enumerate().map(|(i, &id)| {
                    let Delivery { topic, partition, result } = o.delivery(i);
                    Report { id, topic, partition, result }
                })
            })
            .collect()
    }
}

/// One record's outcome, as the tests look at it.
#[derive(Debug, Clone, PartialEq)]
struct Report {
    id: u64,
    topic: Arc<str>,
    partition: i32,
    result: Result<Option<i64>, DeliveryError>,
}

fn by_parity(_: &str, p: i32) -> i32 {
    p % 2 + 1
}

/// A response giving every batch of `req` the error (or success at offset 100 * partition).
fn answer(req: &Request, error: impl Fn(&SealedBatch) -> Option<E>) -> Response {
    let mut topics: Vec<TopicProduceResponse> = Vec::new();
    for b in &req.batches {
        let p = PartitionProduceResponse::default()
            .with_index(b.partition)
            .with_error_code(error(b).map_or(0, |e| e.code()))
            .with_base_offset(100 * b.partition as i64);
        match topics.iter_mut().find(|t| *t.name.0 == *b.topic) {
            Some(t) => t.partition_responses.push(p),
            None => topics.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_string(b.topic.to_string())))
                    .with_partition_responses(vec![p]),
            ),
        }
    }
    Response::Produced(ProduceResponse::default().with_responses(topics))
}

fn ok(req: &Request) -> Response {
    answer(req, |_| None)
}

fn seqs(req: &Request) -> Vec<(i32, i64, i32)> {
    req.batches
        .iter()
        .map(|b| b.idem.map_or((b.partition, -1, -1), |i| (b.partition, i.producer_id, i.base_sequence)))
        .collect()
}

// ---- batching -----------------------------------------------------------------------------

#[test]
fn a_batch_seals_at_batch_size() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 1000, ..config() });
    // 61 header + 6 * (21 + 100) = 787: room for one more record like these.
    for _ in 0..6 {
        sim.send("t", 0, 100);
    }
    assert_eq!(sim.core.ready_len(), 0, "still under batch.size");
    sim.send("t", 0, 100);
    assert_eq!(sim.core.ready_len(), 1, "908 bytes: another record like the last would pass batch.size");
    let req = sim.core.next_request(by_parity).unwrap();
    assert_eq!(req.batches[0].ids, (0..7).collect::<Vec<_>>());
    // Records of another size: one that does not fit seals the batch before it.
    sim.send("t", 0, 10);
    sim.send("t", 0, 10); // 61 + 2 * 31 = 123
    assert_eq!(sim.core.ready_len(), 0);
    sim.send("t", 0, 900);
    assert_eq!(sim.core.ready_len(), 2, "the 900-byte record did not fit, and fills a batch of its own");
    let ids: Vec<Vec<u64>> = (0..2).map(|_| sim.core.next_request(by_parity).unwrap().batches[0].ids.clone()).collect();
    assert_eq!(ids, [vec![7, 8], vec![9]]);
}

#[test]
fn a_batch_seals_after_linger() {
    let mut sim = Sim::new(config());
    assert_eq!(sim.core.next_deadline(sim.now()), None, "nothing open, no timer");
    sim.send("t", 0, 10);
    sim.advance(2);
    sim.send("t", 1, 10);
    assert_eq!(sim.core.next_deadline(sim.now()), Some(sim.base + Duration::from_millis(5)), "the oldest batch's");
    sim.advance(2);
    let now = sim.now();
    sim.core.seal_aged(now);
    assert_eq!(sim.core.ready_len(), 0, "younger than linger.ms");
    sim.advance(1);
    let now = sim.now();
    sim.core.seal_aged(now);
    assert_eq!(sim.core.ready_len(), 1, "partition 0's batch, 5 ms old; partition 1's is 3 ms old");
    assert!(sim.core.request_due(sim.now()), "half a request's worth, but it has waited linger.ms");
    let seven = Some(sim.base + Duration::from_millis(7));
    assert_eq!(sim.core.next_deadline(sim.now()), seven, "partition 1's linger: the sealed one is due now");
    let _ = sim.core.next_request(by_parity).expect("the sealed batch");
    assert_eq!(sim.core.next_deadline(sim.now()), seven, "partition 1's linger");
}

#[test]
fn a_sealed_batch_waiting_for_a_slot_sets_no_timer() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, max_in_flight: 1, ..config() });
    sim.send("t", 0, 100);
    let _in_flight = sim.core.next_request(by_parity).unwrap();
    sim.send("t", 1, 100);
    assert_eq!(sim.core.next_deadline(sim.now()), Some(sim.base + Duration::from_millis(5)));
    sim.advance(6);
    assert!(!sim.core.request_due(sim.now()), "no free slot");
    assert_eq!(sim.core.next_deadline(sim.now()), None, "only a response can let it go: no timer in the past");
}

#[test]
fn a_request_is_due_once_a_batch_per_partition_is_sealed_or_the_oldest_waited_linger() {
    // With a request in flight already (partition 2's); each 100-byte record fills its batch at once.
    let busy = || {
        let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..config() });
        sim.send("t", 2, 100);
        let _in_flight = sim.core.next_request(by_parity).unwrap();
        sim
    };
    let mut sim = busy();
    assert!(!sim.core.request_due(sim.now()), "nothing sealed");
    sim.send("t", 0, 100);
    sim.send("t", 1, 10);
    assert!(!sim.core.request_due(sim.now()), "one of three partitions sealed, and it is young");
    sim.send("t", 1, 100);
    sim.send("t", 2, 100);
    assert!(sim.core.request_due(sim.now()), "a batch for each partition: a full request");
    let mut sim = busy();
    sim.send("t", 0, 100);
    sim.advance(5);
    assert!(sim.core.request_due(sim.now()), "the sealed one waited linger.ms");
}

#[test]
fn with_nothing_in_flight_one_sealed_batch_goes_at_once() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..config() });
    sim.send("t", 1, 10);
    sim.send("t", 0, 100);
    assert!(sim.core.request_due(sim.now()), "waiting for partition 1 would only add latency");
}

#[test]
fn append_says_when_the_driver_has_something_new() {
    // Room for three 121-byte records after the 61-byte header.
    let mut sim = Sim::new(ProducerConfig { batch_size: 500, max_in_flight: 1, ..config() });
    let append = |sim: &mut Sim, p: i32| {
        let r = OutRecord::new(99, ProducerRecord::new("t", vec![b'x'; 100]), || 0).2;
        let now = sim.now();
        sim.core.append(&Arc::from("t"), r, || now, |_| p)
    };
    assert!(append(&mut sim, 0), "the first open batch: a linger timer to set");
    assert!(!append(&mut sim, 0), "added to an open batch");
    assert!(!append(&mut sim, 1), "another batch opened, but an earlier timer is set");
    assert!(append(&mut sim, 0), "partition 0's batch full and nothing in flight: it can go");
    let req = sim.core.next_request(by_parity).expect("partition 0's batch");
    for _ in 0..2 {
        append(&mut sim, 1);
    }
    assert_eq!(sim.core.ready_len(), 1);
    assert!(!sim.core.has_free_slot());
    for _ in 0..2 {
        append(&mut sim, 0);
    }
    assert!(!append(&mut sim, 0), "a request's worth sealed, but no request slot is free: nothing to do yet");
    assert_eq!(sim.core.ready_len(), 2);
    sim.respond(req, Response::Sent);
    assert!(sim.core.has_free_slot());
}

#[test]
fn one_batch_per_partition_per_request_and_requests_grouped_by_leader() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 200, ..config() });
    // Two batches for partition 0 (leader 1), one each for 1 (leader 2) and 2 (leader 1).
    for p in [0, 0, 1, 2] {
        sim.send("t", p, 150);
    }
    sim.core.seal_all();
    let first = sim.core.next_request(by_parity).unwrap();
    assert_eq!(first.leader, 1);
    assert_eq!(first.batches.iter().map(|b| b.partition).collect::<Vec<_>>(), vec![0, 2]);
    // Oldest first: partition 0's second batch, then partition 1's on its own leader.
    let second = sim.core.next_request(by_parity).unwrap();
    assert_eq!((second.leader, second.batches.len(), second.batches[0].ids.clone()), (1, 1, vec![1]));
    let third = sim.core.next_request(by_parity).unwrap();
    assert_eq!((third.leader, third.batches.len(), third.batches[0].partition), (2, 1, 1));
    assert!(sim.core.next_request(by_parity).is_none());
}

#[test]
fn batches_of_two_topics_share_a_request_to_their_leader() {
    let mut sim = Sim::new(config());
    sim.send("a", 0, 10);
    sim.send("b", 0, 10);
    let req = sim.request();
    assert_eq!(req.batches.len(), 2, "same partition index, different topics: one request");
    let resp = ok(&req);
    sim.respond(req, resp);
    let d = sim.deliveries();
    assert_eq!(
        d.iter().map(|d| (&*d.topic, d.result.clone())).collect::<Vec<_>>(),
        vec![("a", Ok(Some(0))), ("b", Ok(Some(0)))]
    );
}

#[test]
fn requests_stay_within_max_request_size_and_max_in_flight() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 700, max_request_size: 1500, max_in_flight: 2, ..config() });
    for p in [0, 2, 4] {
        sim.send("t", p, 600);
    }
    sim.core.seal_all();
    let first = sim.core.next_request(by_parity).unwrap();
    assert_eq!(first.batches.len(), 2, "a third ~690-byte batch would pass max.request.size");
    let _second = sim.core.next_request(by_parity).unwrap();
    sim.send("t", 6, 10);
    sim.core.seal_all();
    assert!(sim.core.next_request(by_parity).is_none(), "max.in.flight=2 reached");
    sim.respond(first, Response::Sent);
    assert!(sim.core.next_request(by_parity).is_some(), "a settled request frees its slot");
}

#[test]
fn a_record_over_max_request_size_fails_alone() {
    let mut sim = Sim::new(ProducerConfig { max_request_size: 1024, ..config() });
    sim.send("t", 0, 10);
    let big = sim.send("t", 0, 2000);
    sim.send("t", 0, 10);
    let d = sim.deliveries();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].id, big);
    assert_eq!(d[0].partition, -1);
    assert_eq!(
        d[0].result,
        Err(DeliveryError::RecordTooLarge { size: 2000 + 21 + 61, max: 1024, setting: "max.request.size" })
    );
    let req = sim.request();
    assert_eq!(req.batches[0].ids, vec![0, 2], "its neighbours are batched as usual");
}

// ---- outcomes -----------------------------------------------------------------------------

#[test]
fn offsets_count_from_the_base_offset() {
    let mut sim = Sim::new(config());
    for _ in 0..3 {
        sim.send("t", 1, 10);
    }
    let req = sim.request();
    let resp = ok(&req);
    assert_eq!(sim.respond(req, resp), Settled::default());
    let offsets: Vec<_> = sim.deliveries().into_iter().map(|d| (d.id, d.partition, d.result)).collect();
    assert_eq!(offsets, vec![(0, 1, Ok(Some(100))), (1, 1, Ok(Some(101))), (2, 1, Ok(Some(102)))]);
    assert_eq!(sim.core.summary(), ProduceSummary { delivered: 3, failed: 0, retries: 0, requests: 1, batches: 1 });
    assert!(sim.core.is_idle());
}

#[test]
fn acks_0_gives_no_offset() {
    let mut sim = Sim::new(ProducerConfig { acks: Acks::None, ..config() });
    sim.send("t", 0, 10);
    sim.send("t", 2, 10);
    let req = sim.request();
    sim.respond(req, Response::Sent);
    let d = sim.deliveries();
    assert_eq!(d.len(), 2);
    assert!(d.iter().all(|d| d.result == Ok(None)));
}

#[test]
fn message_too_large_fails_only_that_batch() {
    let mut sim = Sim::new(config());
    sim.send("t", 0, 10);
    sim.send("t", 2, 10);
    let req = sim.request();
    let resp = answer(&req, |b| (b.partition == 0).then_some(E::MessageTooLarge));
    assert_eq!(sim.respond(req, resp), Settled::default(), "nothing to retry, no new producer id");
    let d = sim.deliveries();
    assert_eq!(d[0].result, Err(DeliveryError::BrokerTooLarge));
    assert_eq!(d[1].result, Ok(Some(200)));
    assert_eq!(sim.core.summary(), ProduceSummary { delivered: 1, failed: 1, retries: 0, requests: 1, batches: 2 });
}

#[test]
fn a_fatal_error_fails_the_batch_with_the_brokers_message() {
    let mut sim = Sim::new(config());
    sim.send("t", 0, 10);
    let req = sim.request();
    let Response::Produced(mut resp) = answer(&req, |_| Some(E::TopicAuthorizationFailed)) else { unreachable!() };
    resp.responses[0].partition_responses[0].error_message = Some(StrBytes::from_static_str("no"));
    sim.respond(req, Response::Produced(resp));
    let d = sim.deliveries();
    assert_eq!(
        d[0].result,
        Err(DeliveryError::Rejected { error: E::TopicAuthorizationFailed, message: Some("no".into()) })
    );
}

#[test]
fn a_retriable_error_resends_the_same_bytes_after_a_metadata_refresh() {
    let mut sim = Sim::new(config());
    sim.send("t", 0, 10);
    let req = sim.request();
    let bytes = req.batches[0].bytes.clone();
    let resp = answer(&req, |_| Some(E::NotLeaderOrFollower));
    let settled = sim.respond(req, resp);
    assert_eq!(settled.refresh, vec![Arc::<str>::from("t")]);
    assert!(sim.deliveries().is_empty());
    let again = sim.core.next_request(by_parity).unwrap();
    assert_eq!((again.batches[0].bytes.clone(), again.batches[0].attempts), (bytes, 1));
    assert_eq!(sim.core.summary().retries, 1);
}

#[test]
fn a_transport_error_retries_every_batch_of_the_request() {
    let mut sim = Sim::new(config());
    sim.send("t", 0, 10);
    sim.send("t", 2, 10);
    let req = sim.request();
    sim.respond(req, Response::Failed("connection reset".into()));
    let again = sim.core.next_request(by_parity).unwrap();
    assert_eq!(again.batches.len(), 2);
}

#[test]
fn a_partition_missing_from_the_response_is_retried() {
    let mut sim = Sim::new(config());
    sim.send("t", 0, 10);
    let req = sim.request();
    sim.respond(req, Response::Produced(ProduceResponse::default()));
    assert_eq!(sim.core.ready_len(), 1);
}

#[test]
fn delivery_timeout_expires_batches_that_keep_failing() {
    let mut sim = Sim::new(ProducerConfig { delivery_timeout: Duration::from_secs(60), ..config() });
    sim.send("t", 0, 10);
    let mut req = sim.request();
    // Retries go on while age + retry.backoff.max.ms (1 s) stays under 60 s.
    for attempt in 0..3 {
        sim.advance(19_000);
        let resp = answer(&req, |_| Some(E::RequestTimedOut));
        sim.respond(req, resp);
        assert!(sim.deliveries().is_empty(), "attempt {attempt} is retried");
        req = sim.core.next_request(by_parity).unwrap();
    }
    sim.advance(2_000); // 59 s old: one more backoff would pass 60 s
    let resp = answer(&req, |_| Some(E::RequestTimedOut));
    sim.respond(req, resp);
    let d = sim.deliveries();
    let Err(DeliveryError::TimedOut { timeout_ms, attempts, last }) = &d[0].result else { panic!("{d:?}") };
    assert_eq!((*timeout_ms, *attempts), (60_000, 4));
    assert_eq!(*last, E::RequestTimedOut.to_string());
    assert!(sim.core.is_idle());
}

// ---- idempotence ----------------------------------------------------------------------------

#[test]
fn sequences_advance_per_partition() {
    let mut sim = Sim::new(idempotent());
    sim.send("t", 0, 10);
    sim.send("t", 0, 10);
    sim.core.seal_all();
    sim.send("t", 1, 10);
    sim.core.seal_all();
    sim.send("t", 0, 10);
    sim.core.seal_all();
    let first = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&first), vec![(0, 1000, 0)]);
    let second = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&second), vec![(1, 1000, 0)]);
    assert!(
        sim.core.next_request(by_parity).is_none(),
        "partition 0 has nothing acknowledged yet: one batch in flight"
    );
    let resp = ok(&first);
    sim.respond(first, resp);
    sim.send("t", 0, 10);
    sim.core.seal_all();
    let third = sim.core.next_request(by_parity).expect("partition 0 acknowledged: its next batch goes");
    assert_eq!(seqs(&third), vec![(0, 1000, 2)]);
    let fourth = sim.core.next_request(by_parity).expect("a second batch of partition 0 in flight, same leader");
    assert_eq!(seqs(&fourth), vec![(0, 1000, 3)]);
    for req in [second, third, fourth] {
        let resp = ok(&req);
        sim.respond(req, resp);
    }
    assert!(sim.core.is_idle());
}

/// Sends one record of `topic[partition]` and has it acknowledged, so the broker
/// holds the producer's state there (several batches may then be in flight).
fn establish(sim: &mut Sim, topic: &str, partition: i32) {
    sim.send(topic, partition, 10);
    let req = sim.request();
    let resp = ok(&req);
    sim.respond(req, resp);
}

#[test]
fn a_batch_overtaken_by_a_later_one_moves_to_a_new_producer_id() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    establish(&mut sim, "t", 0);
    sim.send("t", 0, 60);
    sim.send("t", 0, 60);
    let (b, c) = (sim.core.next_request(by_parity).unwrap(), sim.core.next_request(by_parity).unwrap());
    assert_eq!((seqs(&b), seqs(&c)), (vec![(0, 1000, 1)], vec![(0, 1000, 2)]));
    // A broker that lost the producer's state refuses seq 1 (retriable) and writes seq 2.
    let resp = answer(&b, |_| Some(E::NotEnoughReplicas));
    sim.respond(b, resp);
    let resp = ok(&c);
    sim.respond(c, resp);
    let retry = sim.core.next_request(by_parity).unwrap();
    let resp = answer(&retry, |_| Some(E::OutOfOrderSequenceNumber));
    let settled = sim.respond(retry, resp);
    assert!(settled.new_producer_id, "seq 1 can never be written under producer 1000");
    sim.core.producer_id_renewed(Ok((2000, 0)));
    let retry = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&retry), vec![(0, 1000, 1)], "already on its way back under the old id");
    let resp = answer(&retry, |_| Some(E::OutOfOrderSequenceNumber));
    let settled = sim.respond(retry, resp);
    assert!(!settled.new_producer_id, "the new id is there");
    let moved = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&moved), vec![(0, 2000, 0)]);
    let resp = ok(&moved);
    sim.respond(moved, resp);
    assert!(sim.core.is_idle());
    assert_eq!(sim.core.summary().delivered, 3);
}

#[test]
fn a_partition_in_flight_to_one_leader_sends_nothing_to_another() {
    let mut sim = Sim::new(idempotent());
    sim.send("t", 0, 10);
    sim.core.seal_all();
    let first = sim.core.next_request(by_parity).unwrap();
    sim.send("t", 0, 10);
    sim.core.seal_all();
    // Partition 0's leader moved (to 7) meanwhile: seq 1 would reach a broker that may
    // have no state for this producer before seq 0 is settled.
    assert!(sim.core.next_request(|_, _| 7).is_none());
    let resp = ok(&first);
    sim.respond(first, resp);
    let next = sim.core.next_request(|_, _| 7).expect("nothing in flight any more");
    assert_eq!((next.leader, seqs(&next)), (7, vec![(0, 1000, 1)]));
}

#[test]
fn a_retry_waits_for_its_partition_in_flight_and_goes_alone() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    establish(&mut sim, "t", 0);
    for _ in 0..3 {
        sim.send("t", 0, 60);
    }
    let reqs: Vec<Request> = (0..3).map(|_| sim.core.next_request(by_parity).unwrap()).collect();
    assert_eq!(reqs.iter().map(seqs).collect::<Vec<_>>(), [[(0, 1000, 1)], [(0, 1000, 2)], [(0, 1000, 3)]]);
    let mut reqs = reqs.into_iter();
    let (a, b, c) = (reqs.next().unwrap(), reqs.next().unwrap(), reqs.next().unwrap());
    // Answers come back in any order: seq 2 refused first, then seq 1, then seq 3 is fine.
    let resp = answer(&b, |_| Some(E::NotEnoughReplicas));
    sim.respond(b, resp);
    sim.send("t", 0, 60);
    assert!(sim.core.next_request(by_parity).is_none(), "seq 2 waits for seq 1 and 3; seq 4 waits behind it");
    let resp = answer(&a, |_| Some(E::NotEnoughReplicas));
    sim.respond(a, resp);
    let resp = ok(&c);
    sim.respond(c, resp);
    let retry = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&retry), vec![(0, 1000, 1)], "the lowest sequence first");
    assert!(sim.core.next_request(by_parity).is_none(), "a retry goes alone");
    let resp = ok(&retry);
    sim.respond(retry, resp);
    let retry = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&retry), vec![(0, 1000, 2)]);
    let resp = ok(&retry);
    sim.respond(retry, resp);
    let next = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&next), vec![(0, 1000, 4)]);
}

#[test]
fn retries_keep_sequence_order() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    // Three batches of partition 0 (seq 0, 1, 2) and one of partition 2.
    for p in [0, 0, 0, 2] {
        sim.send("t", p, 60);
    }
    let req = sim.request();
    assert_eq!(seqs(&req), vec![(0, 1000, 0), (2, 1000, 0)]);
    let resp = answer(&req, |_| Some(E::NotEnoughReplicas));
    sim.respond(req, resp);
    // The retried batches go first, partition 0's lowest sequence before the rest.
    let again = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&again), vec![(0, 1000, 0), (2, 1000, 0)]);
    let resp = answer(&again, |b| (b.partition == 0).then_some(E::NotEnoughReplicas));
    sim.respond(again, resp);
    let third = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&third), vec![(0, 1000, 0)]);
    let resp = ok(&third);
    sim.respond(third, resp);
    for expected in [1, 2] {
        let next = sim.core.next_request(by_parity).unwrap();
        assert_eq!(seqs(&next), vec![(0, 1000, expected)]);
        let resp = ok(&next);
        sim.respond(next, resp);
    }
    assert!(sim.core.is_idle());
}

#[test]
fn out_of_order_behind_a_retry_is_resent_unchanged() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    sim.send("t", 0, 60);
    sim.send("t", 0, 60);
    sim.core.seal_all();
    let first = sim.core.next_request(by_parity).unwrap();
    let resp = answer(&first, |_| Some(E::OutOfOrderSequenceNumber));
    let settled = sim.respond(first, resp);
    assert!(!settled.new_producer_id, "no gap: an earlier batch is presumably still in the broker's way");
    let again = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&again), vec![(0, 1000, 0)]);
}

#[test]
fn duplicate_sequence_number_counts_as_delivered() {
    let mut sim = Sim::new(idempotent());
    sim.send("t", 0, 10);
    let req = sim.request();
    let resp = answer(&req, |_| Some(E::DuplicateSequenceNumber));
    sim.respond(req, resp);
    let d = sim.deliveries();
    assert_eq!(d[0].result, Ok(None), "delivered before; the broker does not repeat the offset");
    assert_eq!(sim.core.summary(), ProduceSummary { delivered: 1, failed: 0, retries: 0, requests: 1, batches: 1 });
}

#[test]
fn a_failed_batch_moves_later_ones_to_a_new_producer_id() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    // Partition 0: seq 0 (fails for good), then seq 1 and 2, not sent yet. Partition 1:
    // seq 0, in flight meanwhile.
    for p in [0, 1, 0, 0] {
        sim.send("t", p, 60);
    }
    let first = sim.request();
    assert_eq!(seqs(&first), vec![(0, 1000, 0)]);
    let other = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&other), vec![(1, 1000, 0)]);
    let resp = answer(&first, |_| Some(E::MessageTooLarge));
    let settled = sim.respond(first, resp);
    assert!(settled.new_producer_id, "seq 0 is a hole the broker will never see filled");
    sim.core.producer_id_renewed(Ok((2000, 0)));
    // The never-sent batches of partition 0 moved, in order, with sequences from 0.
    let next = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&next), vec![(0, 2000, 0)]);
    assert_eq!(next.batches[0].ids, vec![2]);
    let resp = ok(&next);
    sim.respond(next, resp);
    let last = sim.core.next_request(by_parity).unwrap();
    assert_eq!((seqs(&last), last.batches[0].ids.clone()), (vec![(0, 2000, 1)], vec![3]));
    // Partition 1's batch was sealed under the old id and sent: it settles as it is.
    let resp = ok(&other);
    sim.respond(other, resp);
    // A new batch of partition 1 goes under the new id from sequence 0.
    sim.send("t", 1, 10);
    sim.core.seal_all();
    let resp = ok(&last);
    sim.respond(last, resp);
    let new = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&new), vec![(1, 2000, 0)]);
}

#[test]
fn out_of_order_after_a_gap_moves_the_refused_batch_to_the_new_producer_id() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    for p in [0, 0, 2] {
        sim.send("t", p, 60);
    }
    // Partition 0 seq 0 fails for good; partition 2's batch is in flight under the old id.
    let first = sim.request();
    assert_eq!(seqs(&first), vec![(0, 1000, 0), (2, 1000, 0)]);
    let resp = answer(&first, |b| (b.partition == 0).then_some(E::InvalidRecord));
    assert!(sim.respond(first, resp).new_producer_id);
    sim.core.producer_id_renewed(Ok((2000, 0)));
    let next = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&next), vec![(0, 2000, 0)]);
    // Had seq 1 gone out under the old id (say, before the failure was known), the broker
    // answers OUT_OF_ORDER: certainly not written, so it moves rather than retrying in vain.
    let mut old = next;
    old.batches[0] =
        old.batches[0].clone().reseal(Idempotence { producer_id: 1000, producer_epoch: 0, base_sequence: 1 });
    let resp = answer(&old, |_| Some(E::OutOfOrderSequenceNumber));
    sim.respond(old, resp);
    let moved = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&moved), vec![(0, 2000, 1)]);
}

#[test]
fn a_failed_batch_under_an_old_producer_id_asks_for_no_new_one() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    sim.send("t", 0, 60);
    sim.send("t", 1, 60);
    let a = sim.request();
    let b = sim.core.next_request(by_parity).unwrap();
    let resp = answer(&a, |_| Some(E::MessageTooLarge));
    assert!(sim.respond(a, resp).new_producer_id);
    sim.core.producer_id_renewed(Ok((2000, 0)));
    // Partition 1's batch, still under 1000, now fails too: 1000 is already replaced.
    let resp = answer(&b, |_| Some(E::MessageTooLarge));
    assert!(!sim.respond(b, resp).new_producer_id);
}

#[test]
fn without_a_new_producer_id_batches_stay_as_they_are() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..idempotent() });
    sim.send("t", 0, 60);
    sim.send("t", 0, 60);
    let first = sim.request();
    let resp = answer(&first, |_| Some(E::MessageTooLarge));
    sim.respond(first, resp);
    sim.core.producer_id_renewed(Err("coordinator unavailable".into()));
    let next = sim.core.next_request(by_parity).unwrap();
    assert_eq!(seqs(&next), vec![(0, 1000, 1)]);
}

#[test]
fn the_backlog_is_full_at_two_sealed_batches_per_partition_written_to() {
    let mut sim = Sim::new(ProducerConfig { batch_size: 100, ..config() });
    assert!(!sim.core.backlog_full());
    // Each 100-byte record fills its batch: one sealed batch per send.
    for p in [0, 1, 0] {
        sim.send("t", p, 100);
    }
    assert!(!sim.core.backlog_full(), "3 sealed, 2 partitions: room for 4");
    sim.send("t", 1, 100);
    assert!(sim.core.backlog_full(), "4 sealed for 2 partitions");
    assert!(!sim.core.backlog_drained());
    let req = sim.core.next_request(by_parity).expect("a request");
    assert!(!sim.core.backlog_full(), "a request took some out");
    assert!(!sim.core.backlog_drained(), "3 left: more than one round");
    let again = sim.core.next_request(by_parity).expect("another");
    assert!(sim.core.backlog_drained(), "2 left for 2 partitions: one round");
    sim.respond(req, Response::Sent);
    sim.respond(again, Response::Sent);
}
