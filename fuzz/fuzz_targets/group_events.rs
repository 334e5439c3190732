//! Arbitrary event sequences into the sans-IO group member: responses with any
//! error code or content, in any order, at any time, with timers firing between.
//! The member may answer with any actions; it must never panic.
#![no_main]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use bytes::Bytes;
use cafe_kafka::TopicPartition;
use cafe_kafka::group::GroupConfig;
use cafe_kafka::group::assign::Assignor;
use cafe_kafka::group::consumer_protocol::Assignment;
use cafe_kafka::group::io::{Event, Failure, JoinResult, JoinedMember};
use cafe_kafka::group::state::GroupMember;
use kafka_protocol::error::ResponseError;
use libfuzzer_sys::fuzz_target;

const TOPICS: [&str; 3] = ["demo", "other", "x"];
const MEMBERS: [&str; 3] = ["m0", "m1", ""];

fn topic(i: u8) -> String {
    TOPICS[i as usize % TOPICS.len()].to_owned()
}

fn tp(t: u8, partition: i32) -> TopicPartition {
    TopicPartition::new(topic(t), partition)
}

fn member(i: u8) -> String {
    MEMBERS[i as usize % MEMBERS.len()].to_owned()
}

#[derive(Arbitrary, Debug)]
enum F {
    Broker(i16),
    Transport,
}

impl F {
    fn failure(&self) -> Failure {
        match self {
            F::Broker(code) => match ResponseError::try_from_code(*code) {
                Some(e) => Failure::Broker(e),
                None => Failure::Transport("unknown code".into()),
            },
            F::Transport => Failure::Transport("connection reset".into()),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Op {
    Advance(u16),
    Tick,
    Coordinator(Result<i32, F>),
    Joined {
        result: Result<(), (F, u8)>,
        generation: i32,
        member: u8,
        leader: u8,
        range: bool,
        members: Vec<(u8, Option<u8>, Vec<u8>)>,
    },
    JoinedMemberRequired(u8),
    Metadata(Result<Vec<(u8, i32)>, F>),
    SyncedBytes(Result<Vec<u8>, F>),
    SyncedAssignment(Vec<(u8, Vec<i32>)>),
    OffsetsFetched(Result<Vec<(u8, i32, i64)>, F>),
    Heartbeat(Result<(), F>),
    Committed {
        offsets: Vec<(u8, i32, i64)>,
        result: Result<Vec<(u8, i32, i16)>, F>,
    },
    Left,
    Consumed {
        topic: u8,
        partition: i32,
        next_offset: i64,
    },
    Revoked,
    Close,
}

#[derive(Arbitrary, Debug)]
struct Input {
    static_member: bool,
    auto_commit: bool,
    roundrobin: bool,
    ops: Vec<Op>,
}

fn event(op: Op) -> Option<Event> {
    Some(match op {
        Op::Advance(_) => return None,
        Op::Tick => Event::Tick,
        Op::Coordinator(r) => Event::CoordinatorFound(r.map_err(|f| f.failure())),
        Op::Joined { result, generation, member: m, leader, range, members } => Event::Joined(match result {
            Err((f, id)) => Err((f.failure(), member(id))),
            Ok(()) => Ok(JoinResult {
                generation_id: generation,
                member_id: member(m),
                leader: member(leader),
                protocol_name: Some(if range { "range" } else { "roundrobin" }.into()),
                members: members
                    .into_iter()
                    .map(|(id, instance, meta)| JoinedMember {
                        member_id: member(id),
                        group_instance_id: instance.map(member),
                        metadata: Bytes::from(meta),
                    })
                    .collect(),
            }),
        }),
        Op::JoinedMemberRequired(id) => {
            Event::Joined(Err((Failure::Broker(ResponseError::MemberIdRequired), member(id))))
        }
        Op::Metadata(r) => {
            Event::Metadata(r.map(|ts| ts.into_iter().map(|(t, n)| (topic(t), n)).collect()).map_err(|f| f.failure()))
        }
        Op::SyncedBytes(r) => Event::Synced(r.map(Bytes::from).map_err(|f| f.failure())),
        Op::SyncedAssignment(parts) => {
            let mut a = Assignment::default();
            for (t, ps) in parts {
                a.partitions.entry(topic(t)).or_default().extend(ps);
            }
            match a.encode(1) {
                Ok(bytes) => Event::Synced(Ok(bytes)),
                Err(_) => return None,
            }
        }
        Op::OffsetsFetched(r) => Event::OffsetsFetched(
            r.map(|v| v.into_iter().map(|(t, p, o)| (tp(t, p), o)).collect::<BTreeMap<_, _>>())
                .map_err(|f| f.failure()),
        ),
        Op::Heartbeat(r) => Event::Heartbeat(r.map_err(|f| f.failure())),
        Op::Committed { offsets, result } => Event::Committed {
            offsets: offsets.into_iter().map(|(t, p, o)| (tp(t, p), o)).collect(),
            result: result
                .map(|v| {
                    v.into_iter()
                        .filter_map(|(t, p, code)| ResponseError::try_from_code(code).map(|e| (tp(t, p), e)))
                        .collect()
                })
                .map_err(|f| f.failure()),
        },
        Op::Left => Event::Left,
        Op::Consumed { topic: t, partition, next_offset } => Event::Consumed { tp: tp(t, partition), next_offset },
        Op::Revoked => Event::Revoked,
        Op::Close => Event::Close,
    })
}

fuzz_target!(|input: Input| {
    let config = GroupConfig {
        group_id: "fuzz".into(),
        group_instance_id: input.static_member.then(|| "static-1".into()),
        topics: vec!["demo".into(), "other".into()],
        assignors: vec![if input.roundrobin { Assignor::RoundRobin } else { Assignor::Range }],
        enable_auto_commit: input.auto_commit,
        ..GroupConfig::default()
    };
    let mut member = GroupMember::new(config);
    let mut now = Instant::now();
    let _ = member.start();
    for op in input.ops {
        if let Op::Advance(ms) = op {
            // Big steps too: session time-outs, commit intervals, backoffs.
            now += Duration::from_millis(u64::from(ms) * 10);
            continue;
        }
        if let Some(e) = event(op) {
            let _ = member.handle(e, now);
            let _ = member.next_deadline();
        }
    }
});
