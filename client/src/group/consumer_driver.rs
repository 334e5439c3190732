//! The async driver of a KIP-848 [`ConsumerMember`]: performs its requests
//! (ConsumerGroupHeartbeat v1, Metadata for topic ids, OffsetFetch and
//! OffsetCommit v9 with the member epoch) and hands the consumer the same
//! [`GroupHandle`] and [`Control`]s as the classic driver, so `Consumer` works
//! the same with either protocol.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use kafka_protocol::messages::{ConsumerGroupHeartbeatRequest, GroupId, OffsetFetchRequest, TopicName};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::config::GroupConfig;
use super::consumer_member::{ConsumerMember, Event, Heartbeat, HeartbeatAnswer, Request, new_member_id};
use super::driver::{
    Control, GroupHandle, Input, broker_err, commit, commit_request, find_coordinator, ms, s, sleep_until, transport,
};
use super::error::CommitError;
use super::io::{self, Failure};
use crate::cluster::Cluster;
use crate::types::TopicPartition;
use crate::wire::Connection;

/// v1: the client makes the member id (KIP-1082) and may subscribe by regex.
const HEARTBEAT_VERSION: i16 = 1;
/// OffsetFetch and OffsetCommit v9 carry the member id and epoch; v10 addresses
/// topics by id, which the classic path does not track either.
const OFFSETS_VERSION: i16 = 9;

/// Starts a consumer-protocol member on its own task.
pub fn spawn(cluster: Arc<Cluster>, config: GroupConfig) -> GroupHandle {
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let assignor = config.remote_assignor.clone();
    let session_timeout = config.session_timeout;
    let driver = Driver {
        member: ConsumerMember::new(config, new_member_id(Uuid::new_v4()), assignor),
        cluster,
        session_timeout,
        responses: events_tx,
        control: control_tx,
        replies: BTreeMap::new(),
        next_reply: 0,
    };
    let task = tokio::spawn(driver.run(input_rx, events_rx));
    GroupHandle { input: input_tx, control: control_rx, task }
}

struct Driver {
    member: ConsumerMember,
    cluster: Arc<Cluster>,
    /// How long a heartbeat's answer may take.
    session_timeout: Duration,
    responses: mpsc::UnboundedSender<Event>,
    control: mpsc::UnboundedSender<Control>,
    replies: BTreeMap<u64, oneshot::Sender<Result<(), CommitError>>>,
    next_reply: u64,
}

impl Driver {
    async fn run(mut self, mut input: mpsc::UnboundedReceiver<Input>, mut responses: mpsc::UnboundedReceiver<Event>) {
        let actions = self.member.start(Instant::now());
        self.execute(actions);
        let mut consumer_gone = false;
        while !self.member.is_closed() {
            let deadline = self.member.next_deadline();
            let event = tokio::select! {
                i = input.recv(), if !consumer_gone => match i {
                    Some(Input::Event(e)) => match from_consumer(e) {
                        Some(e) => e,
                        None => continue,
                    },
                    Some(Input::Commit { offsets, reply }) => {
                        let id = self.next_reply;
                        self.next_reply += 1;
                        self.replies.insert(id, reply);
                        Event::CommitRequested { id, offsets }
                    }
                    // As in the classic driver: only after a close that timed out.
                    None => {
                        consumer_gone = true;
                        continue;
                    }
                },
                Some(e) = responses.recv() => e,
                _ = sleep_until(deadline) => Event::Tick,
            };
            let actions = self.member.handle(event, Instant::now());
            self.execute(actions);
        }
    }

    fn execute(&mut self, actions: Vec<super::consumer_member::Action>) {
        use super::consumer_member::Action;
        for action in actions {
            tracing::debug!(?action, "consumer-protocol action");
            match action {
                Action::Assign { partitions } => {
                    let (generation, member_id) = (self.member.member_epoch(), self.member.member_id().to_owned());
                    self.tell(Control::Assign { generation, member_id, partitions })
                }
                Action::Revoke { partitions } => self.tell(Control::Revoke(partitions)),
                Action::Fatal(e) => self.tell(Control::Fatal(e)),
                Action::Closed => self.tell(Control::Closed),
                Action::AnswerCommit { id, result } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        let _ = reply.send(result);
                    }
                }
                Action::Send(request) => {
                    let cluster = Arc::clone(&self.cluster);
                    let coordinator = self.member.coordinator();
                    let tx = self.responses.clone();
                    let timeout = self.session_timeout;
                    tokio::spawn(async move {
                        let event = perform(&cluster, coordinator, timeout, request).await;
                        let _ = tx.send(event);
                    });
                }
            }
        }
    }

    fn tell(&self, c: Control) {
        let _ = self.control.send(c);
    }
}

/// The consumer speaks the classic member's events; these are the ones that apply.
fn from_consumer(e: io::Event) -> Option<Event> {
    Some(match e {
        io::Event::Consumed { tp, next_offset } => Event::Consumed { tp, next_offset },
        io::Event::Revoked => Event::Revoked,
        io::Event::Polled => Event::Polled,
        io::Event::Close => Event::Close,
        io::Event::CommitRequested { id, offsets } => Event::CommitRequested { id, offsets },
        _ => return None,
    })
}

async fn perform(cluster: &Cluster, coordinator: Option<i32>, timeout: Duration, request: Request) -> Event {
    let conn = async {
        match coordinator {
            Some(node) => cluster.broker(node).await.map_err(transport),
            None => Err(Failure::Transport("coordinator unknown".into())),
        }
    };
    match request {
        Request::FindCoordinator { group_id } => Event::CoordinatorFound(find_coordinator(cluster, &group_id).await),
        Request::Heartbeat(hb) => {
            let r = async { heartbeat(&*conn.await?, &hb, timeout).await }.await;
            Event::Heartbeat(r)
        }
        Request::ResolveTopics { ids } => Event::TopicsResolved(
            cluster
                .list_topics()
                .await
                .map(|ts| ts.into_iter().filter(|t| ids.contains(&t.topic_id)).map(|t| (t.topic_id, t.name)).collect())
                .map_err(transport),
        ),
        Request::FetchOffsets { group_id, member_id, member_epoch, partitions } => {
            let r =
                async { fetch_offsets(&*conn.await?, &group_id, &member_id, member_epoch, &partitions).await }.await;
            Event::OffsetsFetched(r)
        }
        Request::Commit { group_id, member_id, member_epoch, offsets, reply } => {
            // OffsetCommit v9: GenerationIdOrMemberEpoch is the member epoch.
            let req = commit_request(&group_id, member_epoch, &member_id, None, &offsets);
            let r = async { commit(&*conn.await?, &req).await }.await;
            match reply {
                Some(id) => Event::CommitAnswered { id, offsets, result: r },
                None => Event::Committed { offsets, result: r },
            }
        }
    }
}

/// The wire request of `hb`: `None` fields are null ("unchanged").
fn heartbeat_request(hb: &Heartbeat) -> ConsumerGroupHeartbeatRequest {
    ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(s(&hb.group_id)))
        .with_member_id(s(&hb.member_id))
        .with_member_epoch(hb.member_epoch)
        .with_instance_id(hb.instance_id.as_deref().map(s))
        .with_rack_id(hb.rack_id.as_deref().map(s))
        // -1: unchanged.
        .with_rebalance_timeout_ms(hb.rebalance_timeout.map_or(-1, ms))
        .with_subscribed_topic_names(
            hb.subscribed_topic_names.as_ref().map(|ts| ts.iter().map(|t| TopicName(s(t))).collect()),
        )
        .with_subscribed_topic_regex(hb.subscribed_topic_regex.as_deref().map(s))
        .with_server_assignor(hb.server_assignor.as_deref().map(s))
        .with_topic_partitions(hb.topic_partitions.as_ref().map(|owned| {
            owned
                .iter()
                .map(|(id, ps)| TopicPartitions::default().with_topic_id(*id).with_partitions(ps.clone()))
                .collect()
        }))
}

async fn heartbeat(conn: &Connection, hb: &Heartbeat, timeout: Duration) -> Result<HeartbeatAnswer, Failure> {
    let version = conn.version::<ConsumerGroupHeartbeatRequest>().map_err(transport)?;
    if version < HEARTBEAT_VERSION {
        return Err(Failure::Broker(kafka_protocol::error::ResponseError::UnsupportedVersion));
    }
    let req = heartbeat_request(hb);
    let resp = conn.request_within(&req, HEARTBEAT_VERSION, timeout).await.map_err(transport)?;
    if let Some(f) = broker_err(resp.error_code) {
        if let Some(m) = &resp.error_message {
            tracing::debug!(failure = ?f, message = %m.as_str(), "ConsumerGroupHeartbeat refused");
        }
        return Err(f);
    }
    Ok(HeartbeatAnswer {
        member_id: resp.member_id.map(|m| m.to_string()),
        member_epoch: resp.member_epoch,
        heartbeat_interval_ms: resp.heartbeat_interval_ms,
        assignment: resp.assignment.map(|a| {
            let mut by_id: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for t in a.topic_partitions {
                by_id.entry(t.topic_id).or_default().extend(t.partitions);
            }
            by_id
        }),
    })
}

/// OffsetFetch v9 naming the member, so the coordinator checks its epoch.
async fn fetch_offsets(
    conn: &Connection,
    group_id: &str,
    member_id: &str,
    member_epoch: i32,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, Failure> {
    let version = conn.version::<OffsetFetchRequest>().map_err(transport)?.min(OFFSETS_VERSION);
    if version < OFFSETS_VERSION {
        return Err(Failure::Broker(kafka_protocol::error::ResponseError::UnsupportedVersion));
    }
    super::driver::offset_fetch(conn, version, group_id, Some((member_id, member_epoch)), partitions).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_heartbeat_fields_are_null_on_the_wire() {
        let hb = Heartbeat {
            group_id: "g".into(),
            member_id: "m".into(),
            member_epoch: 3,
            instance_id: None,
            rack_id: None,
            rebalance_timeout: None,
            subscribed_topic_names: None,
            subscribed_topic_regex: None,
            server_assignor: None,
            topic_partitions: None,
        };
        let req = heartbeat_request(&hb);
        assert_eq!((req.member_epoch, req.rebalance_timeout_ms), (3, -1));
        assert!(req.subscribed_topic_names.is_none() && req.topic_partitions.is_none() && req.rack_id.is_none());
        let id = Uuid::from_u128(7);
        let full = Heartbeat {
            rack_id: Some("rack-a".into()),
            rebalance_timeout: Some(Duration::from_secs(300)),
            subscribed_topic_names: Some(vec!["t".into()]),
            server_assignor: Some("range".into()),
            topic_partitions: Some([(id, vec![0, 2])].into()),
            ..hb
        };
        let req = heartbeat_request(&full);
        assert_eq!(req.rebalance_timeout_ms, 300_000);
        assert_eq!(req.server_assignor.as_deref(), Some("range"));
        assert_eq!(req.rack_id.as_deref(), Some("rack-a"));
        let tps = req.topic_partitions.expect("owned partitions sent");
        assert_eq!((tps[0].topic_id, tps[0].partitions.clone()), (id, vec![0, 2]));
    }
}
