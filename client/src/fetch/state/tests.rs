use std::time::Duration;

use super::*;
use crate::fetch::IsolationLevel;

const T: &str = "t";

fn tp(p: i32) -> TopicPartition {
    TopicPartition::new(T, p)
}

fn leader(node: i32) -> Option<Leader> {
    Some(Leader { node, epoch: 3, topic_id: Uuid::from_u128(7) })
}

fn state() -> FetchState {
    FetchState::new(FetchConfig::default(), BackoffPolicy::default())
}

/// Encoded batches, one per offset given, each holding one record.
fn batches(offsets: &[i64]) -> bytes::BytesMut {
    let mut buf = bytes::BytesMut::new();
    for &offset in offsets {
        let r = kafka_protocol::records::Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: kafka_protocol::records::TimestampType::Creation,
            offset,
            sequence: offset as i32,
            timestamp: 0,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        };
        crate::producer::encode_batch(&mut buf, &[r], crate::compression::Codec::None).unwrap();
    }
    buf
}

fn reader_of(data: bytes::BytesMut, fetch_offset: i64) -> BatchReader {
    let opts = super::super::decode::DecodeOptions {
        fetch_offset,
        isolation: IsolationLevel::ReadCommitted,
        aborted: &[],
        check_crcs: true,
    };
    BatchReader::new(data.freeze(), &opts)
}

fn ok(tp: TopicPartition, offsets: &[i64], fetch_offset: i64) -> PartitionResult {
    PartitionResult { tp, error: None, reader: Some(reader_of(batches(offsets), fetch_offset)) }
}

fn err(tp: TopicPartition, e: ResponseError) -> PartitionResult {
    PartitionResult { tp, error: Some(e), reader: None }
}

/// Takes every record of a `Ready::Records` and tells the state; the offsets taken
/// and the error it reported, if any.
fn drain(s: &mut FetchState, ready: Ready) -> (Vec<i64>, Option<PartitionError>) {
    let Ready::Records { tp, mut reader } = ready else { panic!("expected records, got {ready:?}") };
    let mut got = Vec::new();
    while let Some(r) = reader.next_record() {
        got.push(r.offset);
    }
    let e = s.drained(&tp, &reader);
    (got, e)
}

fn fetched(broker: i32, results: Vec<PartitionResult>) -> FetchEvent {
    FetchEvent::Fetched { broker, result: Ok((None, 11, results)) }
}

/// The brokers fetched from, and the partitions each Fetch lists (in the plan).
fn fetches(actions: &[FetchAction]) -> Vec<(i32, Vec<(TopicPartition, i64)>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            FetchAction::Fetch { broker, plan, .. } => {
                Some((*broker, plan.partitions.iter().map(|(tp, f)| (tp.clone(), f.fetch_offset)).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn one_fetch_per_broker_covering_all_its_partitions() {
    let mut s = state();
    let now = Instant::now();
    for p in 0..6 {
        s.assign(tp(p), Some(p as i64 * 10), leader(p % 2 + 1));
    }
    let a = s.actions(now);
    assert_eq!(
        fetches(&a),
        vec![(1, vec![(tp(0), 0), (tp(2), 20), (tp(4), 40)]), (2, vec![(tp(1), 10), (tp(3), 30), (tp(5), 50)])]
    );
    // Both in flight: nothing more until an answer.
    assert!(s.actions(now).is_empty());
    s.handle(fetched(1, vec![]), now);
    let a = fetches(&s.actions(now));
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, 1, "broker 1 again; broker 2 still has its Fetch in flight");
}

#[test]
fn records_are_handed_over_and_the_partition_waits_until_drained() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(5), leader(1));
    s.assign(tp(1), Some(0), leader(1));
    s.actions(now);
    let mut ready = s.handle(fetched(1, vec![ok(tp(0), &[5, 6, 7], 5)]), now);
    assert_eq!(ready.len(), 1);
    let chunk = ready.pop().unwrap();
    assert_eq!(s.position(&tp(0)), Some(5), "the position moves once the records are taken");
    // Partition 0 is buffered in the consumer: the next Fetch leaves it out (the
    // session forgets it), partition 1 is unchanged so the incremental Fetch lists nothing.
    let a = s.actions(now);
    let FetchAction::Fetch { plan, offsets, .. } = &a[0] else { panic!("{a:?}") };
    assert!(plan.partitions.is_empty());
    assert_eq!(plan.forgotten, vec![tp(0)]);
    assert_eq!(offsets.keys().cloned().collect::<Vec<_>>(), vec![tp(1)]);
    s.handle(fetched(1, vec![]), now);
    assert_eq!(drain(&mut s, chunk), (vec![5, 6, 7], None));
    assert_eq!(s.position(&tp(0)), Some(8));
    assert_eq!(fetches(&s.actions(now)), vec![(1, vec![(tp(0), 8)])]);
}

#[test]
fn a_stale_answer_after_a_seek_or_unassign_is_dropped() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(5), leader(1));
    s.assign(tp(1), Some(0), leader(1));
    s.actions(now);
    s.seek(&tp(0), 100);
    s.unassign(&tp(1));
    let ready = s.handle(fetched(1, vec![ok(tp(0), &[5], 5), ok(tp(1), &[0], 0)]), now);
    assert!(ready.is_empty());
    assert_eq!(s.position(&tp(0)), Some(100));
    assert_eq!(fetches(&s.actions(now)), vec![(1, vec![(tp(0), 100)])]);
}

#[test]
fn a_corrupt_batch_delivers_what_came_before_then_stops_the_partition() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.assign(tp(1), Some(0), leader(1));
    s.actions(now);
    let mut data = batches(&[0, 1, 2]);
    let n = data.len();
    data[n - 2] ^= 0xff; // inside the third batch's record
    let result = PartitionResult { tp: tp(0), error: None, reader: Some(reader_of(data, 0)) };
    let mut ready = s.handle(fetched(1, vec![result]), now);
    let (got, e) = drain(&mut s, ready.pop().unwrap());
    assert_eq!(got, vec![0, 1]);
    let e = e.expect("the corrupt batch is reported");
    assert!(e.to_string().starts_with("unreadable record batch at t[0]@2: CRC-32C mismatch"), "{e}");
    // Never fetched again; the other partition goes on.
    let a = s.actions(now);
    let FetchAction::Fetch { offsets, .. } = &a[0] else { panic!("{a:?}") };
    assert_eq!(offsets.keys().cloned().collect::<Vec<_>>(), vec![tp(1)]);
}

#[test]
fn leader_errors_refresh_metadata_and_back_off_only_that_partition() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.assign(tp(1), Some(0), leader(1));
    s.actions(now);
    let ready = s.handle(fetched(1, vec![err(tp(0), ResponseError::NotLeaderOrFollower)]), now);
    assert!(ready.is_empty());
    let a = s.actions(now);
    assert!(a.contains(&FetchAction::RefreshMetadata { topics: vec![T.into()] }));
    // Partition 1 is fetched again at once; partition 0 waits out its backoff.
    let FetchAction::Fetch { offsets, .. } = a.iter().find(|a| matches!(a, FetchAction::Fetch { .. })).unwrap() else {
        panic!()
    };
    assert!(!offsets.contains_key(&tp(0)));
    // Metadata moves partition 0 to broker 2, with a newer epoch.
    let leaders = [(tp(0), Leader { node: 2, epoch: 4, topic_id: Uuid::from_u128(7) }), (tp(1), leader(1).unwrap())];
    s.handle(FetchEvent::Metadata(Ok(leaders.into_iter().collect())), now);
    let later = now + Duration::from_secs(2);
    assert!(s.next_deadline().is_some_and(|d| d <= later));
    let a = s.actions(later);
    let FetchAction::Fetch { broker: 2, plan, .. } = &a[0] else { panic!("{a:?}") };
    assert_eq!(plan.partitions[0].1.leader_epoch, 4, "current_leader_epoch sent (KIP-320)");
}

#[test]
fn offset_out_of_range_applies_auto_offset_reset_and_reports_the_position() {
    let mut s = FetchState::new(
        FetchConfig { reset: OffsetReset::Latest, isolation: IsolationLevel::ReadCommitted, ..FetchConfig::default() },
        BackoffPolicy::default(),
    );
    let now = Instant::now();
    s.assign(tp(0), Some(999), leader(1));
    s.actions(now);
    s.handle(fetched(1, vec![err(tp(0), ResponseError::OffsetOutOfRange)]), now);
    let a = s.actions(now);
    assert_eq!(a, vec![FetchAction::ListOffsets { broker: 1, partitions: vec![(tp(0), -1, 3)] }]);
    let ready = s.handle(FetchEvent::OffsetsListed { broker: 1, result: Ok(vec![(tp(0), Ok(40))]) }, now);
    assert!(matches!(&ready[..], [Ready::Reset { offset: 40, .. }]));
    assert_eq!(fetches(&s.actions(now)), vec![(1, vec![(tp(0), 40)])]);
}

#[test]
fn no_committed_offset_resets_earliest_and_reports_it() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), None, leader(1));
    s.assign(tp(1), None, leader(1));
    let a = s.actions(now);
    assert_eq!(a, vec![FetchAction::ListOffsets { broker: 1, partitions: vec![(tp(0), -2, 3), (tp(1), -2, 3)] }]);
    let ready = s.handle(
        FetchEvent::OffsetsListed {
            broker: 1,
            result: Ok(vec![(tp(0), Ok(0)), (tp(1), Err(ResponseError::NotLeaderOrFollower))]),
        },
        now,
    );
    assert_eq!(ready.len(), 1, "partition 1 retries after a metadata refresh");
    let a = s.actions(now);
    assert!(a.contains(&FetchAction::RefreshMetadata { topics: vec![T.into()] }));
    assert_eq!(fetches(&a), vec![(1, vec![(tp(0), 0)])]);
}

#[test]
fn reset_error_fails_partitions_without_an_offset() {
    let mut s =
        FetchState::new(FetchConfig { reset: OffsetReset::Error, ..FetchConfig::default() }, BackoffPolicy::default());
    s.assign(tp(0), None, leader(1));
    assert!(s.actions(Instant::now()).is_empty());
    let f = s.take_failures();
    assert!(matches!(&f[..], [Ready::Failed { error: PartitionError::NoOffset { .. }, .. }]));
}

#[test]
fn a_lost_connection_backs_off_refreshes_metadata_and_restarts_the_session() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.actions(now);
    s.handle(fetched(1, vec![]), now); // session 11 established
    s.actions(now);
    s.handle(FetchEvent::Fetched { broker: 1, result: Err("connection reset".into()) }, now);
    let a = s.actions(now);
    assert_eq!(a, vec![FetchAction::RefreshMetadata { topics: vec![T.into()] }]);
    s.handle(FetchEvent::Metadata(Ok([(tp(0), leader(1).unwrap())].into_iter().collect())), now);
    let a = s.actions(now + Duration::from_secs(2));
    let FetchAction::Fetch { plan, .. } = &a[0] else { panic!("{a:?}") };
    assert!(plan.full, "a full fetch after the connection was lost");
}

#[test]
fn a_deleted_topic_fails_its_partitions() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.actions(now);
    s.handle(fetched(1, vec![err(tp(0), ResponseError::UnknownTopicOrPartition)]), now);
    assert!(s.actions(now).contains(&FetchAction::RefreshMetadata { topics: vec![T.into()] }));
    let ready = s.handle(FetchEvent::Metadata(Err(MetadataError::TopicGone(T.into()))), now);
    assert!(matches!(&ready[..], [Ready::Failed { error: PartitionError::TopicGone(_), .. }]));
}

#[test]
fn fatal_errors_stop_the_partition_with_a_named_error() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.actions(now);
    let ready = s.handle(fetched(1, vec![err(tp(0), ResponseError::TopicAuthorizationFailed)]), now);
    assert!(matches!(&ready[..], [Ready::Failed { error: PartitionError::Broker { .. }, .. }]));
}

#[test]
fn recovery_table_covers_the_fetch_errors() {
    use ResponseError as E;
    for e in [E::NotLeaderOrFollower, E::FencedLeaderEpoch, E::UnknownTopicId, E::UnknownTopicOrPartition] {
        assert_eq!(recovery(e), Recovery::RefreshMetadata, "{e:?}");
    }
    assert_eq!(recovery(E::UnknownLeaderEpoch), Recovery::Retry);
    assert_eq!(recovery(E::OffsetOutOfRange), Recovery::ResetOffset);
    assert_eq!(recovery(E::RequestTimedOut), Recovery::Retry);
    assert_eq!(recovery(E::TopicAuthorizationFailed), Recovery::Fatal);
    assert_eq!(recovery(E::UnsupportedVersion), Recovery::Fatal);
}

#[test]
fn paused_partitions_are_not_fetched() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.assign(tp(1), Some(0), leader(1));
    s.set_paused(&tp(1), true);
    assert_eq!(fetches(&s.actions(now)), vec![(1, vec![(tp(0), 0)])]);
}

#[test]
fn a_seek_while_records_are_buffered_makes_them_stale() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.actions(now);
    let mut ready = s.handle(fetched(1, vec![ok(tp(0), &[0, 1], 0)]), now);
    s.seek(&tp(0), 50);
    assert_eq!(drain(&mut s, ready.pop().unwrap()).1, None);
    assert_eq!(s.position(&tp(0)), Some(50), "draining a stale reader does not move the position");
}

#[test]
fn a_response_with_only_a_partial_batch_is_not_buffered() {
    let mut s = state();
    let now = Instant::now();
    s.assign(tp(0), Some(0), leader(1));
    s.actions(now);
    let mut data = batches(&[0]);
    data.truncate(data.len() - 1);
    let result = PartitionResult { tp: tp(0), error: None, reader: Some(reader_of(data, 0)) };
    assert!(s.handle(fetched(1, vec![result]), now).is_empty());
    assert_eq!(
        fetches(&s.actions(now)),
        vec![(1, vec![])],
        "fetched again, from the same offset (unchanged in the session)"
    );
}
