//! The async driver of a [`GroupMember`]: turns its actions into group requests to
//! the coordinator, feeds responses and timers back in, and passes assignment
//! changes to the consumer. It runs on its own task, so heartbeats keep going
//! however slowly the user processes records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, OffsetCommitRequest, OffsetFetchRequest,
    SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::{mpsc, oneshot};

use super::config::GroupConfig;
use super::error::{CommitError, GroupError};
use super::io::{Action, Event, Failure, JoinResult, JoinedMember, Request, TopicsView};
use super::state::GroupMember;
use crate::cluster::Cluster;
use crate::types::TopicPartition;
use crate::wire::{ApiRequest, Connection};

/// Versions above these address topics by id (KIP-516), which we do not track.
const MAX_OFFSET_FETCH_VERSION: i16 = 9;
const MAX_OFFSET_COMMIT_VERSION: i16 = 9;
/// How much longer than the rebalance timeout to wait for JoinGroup and SyncGroup answers.
const REBALANCE_SLACK: Duration = Duration::from_secs(5);
/// LeaveGroup is best effort on the way out: the coordinator expires the member otherwise.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(5);

/// What the driver tells the consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    /// Start these partitions (at their committed offset, if any), as the
    /// assignment of group generation `generation` to member `member_id`.
    Assign {
        generation: i32,
        member_id: String,
        partitions: Vec<(TopicPartition, Option<i64>)>,
    },
    /// Stop these partitions, report positions, then send `Event::Revoked`.
    Revoke(Vec<TopicPartition>),
    Fatal(GroupError),
    Closed,
}

/// The answer to a commit the user asked for.
pub type CommitReply = oneshot::Receiver<Result<(), CommitError>>;

/// What the consumer sends the driver: an event for the member, or a commit
/// request whose reply channel the driver keeps (the member sees only its id).
pub enum Input {
    Event(Event),
    Commit { offsets: Option<BTreeMap<TopicPartition, i64>>, reply: oneshot::Sender<Result<(), CommitError>> },
}

/// The consumer's end of a running group member.
pub struct GroupHandle {
    pub input: mpsc::UnboundedSender<Input>,
    pub control: mpsc::UnboundedReceiver<Control>,
    pub task: tokio::task::JoinHandle<()>,
}

impl GroupHandle {
    /// Passes `event` to the member (in order with commit requests).
    pub fn send(&self, event: Event) {
        // The task is gone only after Closed or Fatal, which the consumer sees.
        let _ = self.input.send(Input::Event(event));
    }

    /// Asks the member to commit `offsets` (`None`: what was consumed); the
    /// receiver gets the coordinator's answer, or is dropped if the member stopped.
    pub fn commit(&self, offsets: Option<BTreeMap<TopicPartition, i64>>) -> CommitReply {
        let (reply, answer) = oneshot::channel();
        // A failed send drops `reply`: the receiver then reports the member gone.
        let _ = self.input.send(Input::Commit { offsets, reply });
        answer
    }
}

/// Starts the member on its own task. Fails only on a topic pattern that is not
/// a valid regular expression.
pub fn spawn(cluster: Arc<Cluster>, config: GroupConfig) -> Result<GroupHandle, String> {
    let pattern = config.topic_pattern.as_deref().map(whole_name_pattern).transpose()?.map(Arc::new);
    let (input_tx, input_rx) = mpsc::unbounded_channel();
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let driver = Driver {
        member: GroupMember::new(config),
        cluster,
        pattern,
        responses: events_tx,
        control: control_tx,
        replies: BTreeMap::new(),
        next_reply: 0,
    };
    let task = tokio::spawn(driver.run(input_rx, events_rx));
    Ok(GroupHandle { input: input_tx, control: control_rx, task })
}

/// Java's `subscribe(Pattern)` matches a topic only when the whole name matches
/// (`Matcher.matches()`), so the expression is anchored at both ends.
pub fn whole_name_pattern(p: &str) -> Result<regex::Regex, String> {
    regex::Regex::new(&format!("^(?:{p})$"))
        .map_err(|e| format!("the topic pattern `{p}` is not a valid regular expression: {e}"))
}

struct Driver {
    member: GroupMember,
    cluster: Arc<Cluster>,
    pattern: Option<Arc<regex::Regex>>,
    /// Responses of spawned requests come back as events on their own queue.
    responses: mpsc::UnboundedSender<Event>,
    control: mpsc::UnboundedSender<Control>,
    /// Reply channels of the user's commits, by the id the member was given.
    replies: BTreeMap<u64, oneshot::Sender<Result<(), CommitError>>>,
    next_reply: u64,
}

impl Driver {
    async fn run(mut self, mut input: mpsc::UnboundedReceiver<Input>, mut responses: mpsc::UnboundedReceiver<Event>) {
        let actions = self.member.start();
        self.execute(actions);
        let mut consumer_gone = false;
        while !self.member.is_closed() {
            let deadline = self.member.next_deadline();
            let event = tokio::select! {
                i = input.recv(), if !consumer_gone => match i {
                    Some(Input::Event(e)) => e,
                    Some(Input::Commit { offsets, reply }) => {
                        let id = self.next_reply;
                        self.next_reply += 1;
                        self.replies.insert(id, reply);
                        Event::CommitRequested { id, offsets }
                    }
                    // The consumer is gone. That happens only after a close that timed
                    // out (a consumer dropped without close aborts this task), so the
                    // member is closing already: stop reading the closed channel and
                    // let it finish.
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

    fn execute(&mut self, actions: Vec<Action>) {
        for action in actions {
            tracing::debug!(?action, "group action");
            match action {
                Action::Assign { partitions } => {
                    let (generation, member_id) = (self.member.generation_id(), self.member.member_id().to_owned());
                    self.tell(Control::Assign { generation, member_id, partitions })
                }
                Action::Revoke { partitions } => self.tell(Control::Revoke(partitions)),
                Action::Fatal(e) => self.tell(Control::Fatal(e)),
                Action::Closed => self.tell(Control::Closed),
                Action::AnswerCommit { id, result } => {
                    if let Some(reply) = self.replies.remove(&id) {
                        // The user may have stopped waiting (a dropped commit handle).
                        let _ = reply.send(result);
                    }
                }
                Action::Send(request) => self.spawn_request(request),
            }
        }
    }

    fn tell(&self, c: Control) {
        // The consumer may already be gone (dropped, or a close that timed out); nothing to tell then.
        let _ = self.control.send(c);
    }

    /// Sends `request` on its own task; its answer comes back on `responses`.
    fn spawn_request(&self, request: Request) {
        let cluster = Arc::clone(&self.cluster);
        let coordinator = self.member.coordinator();
        let tx = self.responses.clone();
        let pattern = self.pattern.clone();
        tokio::spawn(async move {
            let event = perform(&cluster, coordinator, pattern.as_deref(), request).await;
            // The driver is gone only once the member closed; nobody waits for the answer then.
            let _ = tx.send(event);
        });
    }
}

pub(crate) async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub(crate) fn broker_err(code: i16) -> Option<Failure> {
    ResponseError::try_from_code(code).map(Failure::Broker)
}

pub(crate) fn transport(e: impl std::fmt::Display) -> Failure {
    Failure::Transport(e.to_string())
}

/// Sends one request, built from `request` alone; the answer as the event the
/// state machine expects. Coordinator requests go to `coordinator`; `pattern` is
/// the subscription's compiled topic pattern, for [`Request::RefreshTopics`].
async fn perform(
    cluster: &Cluster,
    coordinator: Option<i32>,
    pattern: Option<&regex::Regex>,
    request: Request,
) -> Event {
    let conn = async {
        match coordinator {
            Some(node) => cluster.broker(node).await.map_err(transport),
            None => Err(Failure::Transport("coordinator unknown".into())),
        }
    };
    match request {
        Request::FindCoordinator { group_id } => Event::CoordinatorFound(find_coordinator(cluster, &group_id).await),
        Request::Join { group_id, member_id, group_instance_id, session_timeout, rebalance_timeout, protocols } => {
            let req = JoinGroupRequest::default()
                .with_group_id(GroupId(s(&group_id)))
                .with_session_timeout_ms(ms(session_timeout))
                .with_rebalance_timeout_ms(ms(rebalance_timeout))
                .with_member_id(s(&member_id))
                .with_group_instance_id(group_instance_id.as_deref().map(s))
                .with_protocol_type(StrBytes::from_static_str("consumer"))
                .with_protocols(
                    protocols
                        .into_iter()
                        .map(|(name, meta)| JoinGroupRequestProtocol::default().with_name(s(&name)).with_metadata(meta))
                        .collect(),
                );
            // The broker holds JoinGroup until every member rejoined (up to the rebalance timeout).
            let timeout = rebalance_timeout + REBALANCE_SLACK;
            let r = async { call(&*conn.await?, &req, timeout).await }.await;
            Event::Joined(match r {
                Err(f) => Err((f, member_id)),
                Ok(resp) => match broker_err(resp.error_code) {
                    Some(f) => Err((f, resp.member_id.to_string())),
                    None => Ok(JoinResult {
                        generation_id: resp.generation_id,
                        member_id: resp.member_id.to_string(),
                        leader: resp.leader.to_string(),
                        protocol_name: resp.protocol_name.map(|p| p.to_string()),
                        members: resp
                            .members
                            .into_iter()
                            .map(|m| JoinedMember {
                                member_id: m.member_id.to_string(),
                                group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                                metadata: m.metadata,
                            })
                            .collect(),
                    }),
                },
            })
        }
        Request::FetchMetadata { topics } => {
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            Event::Metadata(
                cluster
                    .refresh(&refs)
                    .await
                    .map(|ts| ts.into_iter().map(|t| (t.name.clone(), t.partition_count())).collect())
                    .map_err(transport),
            )
        }
        Request::RefreshTopics { topics } => {
            Event::TopicsRefreshed(refresh_topics(cluster, &topics, pattern).await.map_err(transport))
        }
        Request::Sync {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
            protocol_name,
            assignments,
            rebalance_timeout,
        } => {
            let req = SyncGroupRequest::default()
                .with_group_id(GroupId(s(&group_id)))
                .with_generation_id(generation_id)
                .with_member_id(s(&member_id))
                .with_group_instance_id(group_instance_id.as_deref().map(s))
                .with_protocol_type(Some(StrBytes::from_static_str("consumer")))
                .with_protocol_name(Some(s(&protocol_name)))
                .with_assignments(
                    assignments
                        .into_iter()
                        .map(|(m, a)| SyncGroupRequestAssignment::default().with_member_id(s(&m)).with_assignment(a))
                        .collect(),
                );
            let timeout = rebalance_timeout + REBALANCE_SLACK;
            let r = async { call(&*conn.await?, &req, timeout).await }.await;
            Event::Synced(r.and_then(|resp| match broker_err(resp.error_code) {
                Some(f) => Err(f),
                None => Ok(resp.assignment),
            }))
        }
        Request::FetchOffsets { group_id, partitions } => {
            let r = async { fetch_offsets(&*conn.await?, &group_id, &partitions).await }.await;
            Event::OffsetsFetched(r)
        }
        Request::Heartbeat { group_id, generation_id, member_id, group_instance_id, session_timeout } => {
            let req = HeartbeatRequest::default()
                .with_group_id(GroupId(s(&group_id)))
                .with_generation_id(generation_id)
                .with_member_id(s(&member_id))
                .with_group_instance_id(group_instance_id.as_deref().map(s));
            let r = async { call(&*conn.await?, &req, session_timeout).await }.await;
            Event::Heartbeat(r.and_then(|resp| broker_err(resp.error_code).map_or(Ok(()), Err)))
        }
        Request::Commit { group_id, generation_id, member_id, group_instance_id, offsets, reply } => {
            let req = commit_request(&group_id, generation_id, &member_id, group_instance_id.as_deref(), &offsets);
            let r = async { commit(&*conn.await?, &req).await }.await;
            match reply {
                Some(id) => Event::CommitAnswered { id, offsets, result: r },
                None => Event::Committed { offsets, result: r },
            }
        }
        Request::Leave { group_id, member_id } => {
            let req = LeaveGroupRequest::default().with_group_id(GroupId(s(&group_id))).with_members(vec![
                MemberIdentity::default()
                    .with_member_id(s(&member_id))
                    .with_reason(Some(StrBytes::from_static_str("the consumer is closing"))),
            ]);
            match conn.await {
                Ok(c) => {
                    if let Err(e) = call(&c, &req, LEAVE_TIMEOUT).await {
                        tracing::warn!(failure = ?e, "LeaveGroup failed; the coordinator will expire the member");
                    }
                }
                Err(f) => tracing::warn!(failure = ?f, "no coordinator to leave"),
            }
            Event::Left
        }
    }
}

/// Partition counts of `topics` (those that exist) and, with a pattern, of every
/// non-internal topic it matches.
async fn refresh_topics(
    cluster: &Cluster,
    topics: &[String],
    pattern: Option<&regex::Regex>,
) -> Result<TopicsView, crate::cluster::Error> {
    let all = cluster.list_topics().await?;
    let mut view = TopicsView::default();
    let mut matching = std::collections::BTreeSet::new();
    for t in all {
        if pattern.is_some_and(|p| !t.internal && p.is_match(&t.name)) {
            matching.insert(t.name.clone());
            view.counts.insert(t.name.clone(), t.partition_count());
        } else if topics.contains(&t.name) {
            view.counts.insert(t.name.clone(), t.partition_count());
        }
    }
    view.matching = pattern.map(|_| matching);
    Ok(view)
}

async fn call<R: ApiRequest>(conn: &Connection, req: &R, timeout: Duration) -> Result<R::Response, Failure> {
    let version = conn.version::<R>().map_err(transport)?;
    conn.request_within(req, version, timeout).await.map_err(transport)
}

pub(crate) async fn find_coordinator(cluster: &Cluster, group: &str) -> Result<i32, Failure> {
    match cluster.find_coordinator(group, 0).await.map_err(transport)? {
        Ok(node) => Ok(node),
        Err(code) => Err(broker_err(code).unwrap_or_else(|| transport(format!("FindCoordinator error {code}")))),
    }
}

async fn fetch_offsets(
    conn: &Connection,
    group_id: &str,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, Failure> {
    if partitions.is_empty() {
        return Ok(BTreeMap::new());
    }
    let version = conn.version::<OffsetFetchRequest>().map_err(transport)?.min(MAX_OFFSET_FETCH_VERSION);
    if version < 8 {
        return Err(Failure::Transport("OffsetFetch v8+ needed (Kafka 3.0 or newer)".into()));
    }
    offset_fetch(conn, version, group_id, None, partitions).await
}

/// The committed offsets of `partitions`: one OffsetFetch at `version` (v8+, one
/// group), as a classic member (`member` None: epoch -1) or as a KIP-848 member
/// (its id and epoch, which the coordinator checks).
pub(crate) async fn offset_fetch(
    conn: &Connection,
    version: i16,
    group_id: &str,
    member: Option<(&str, i32)>,
    partitions: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, i64>, Failure> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for tp in partitions {
        by_topic.entry(&tp.topic).or_default().push(tp.partition);
    }
    let topics = by_topic
        .iter()
        .map(|(t, ps)| {
            OffsetFetchRequestTopics::default().with_name(TopicName(s(t))).with_partition_indexes(ps.clone())
        })
        .collect();
    let req = OffsetFetchRequest::default()
        .with_groups(vec![
            OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group_id)))
                .with_member_id(member.map(|(id, _)| s(id)))
                .with_member_epoch(member.map_or(-1, |(_, epoch)| epoch))
                .with_topics(Some(topics)),
        ])
        // Wait for pending transactional commits rather than read an offset about to change.
        .with_require_stable(true);
    let resp = conn.request_at(&req, version).await.map_err(transport)?;
    let mut out = BTreeMap::new();
    for g in resp.groups {
        if let Some(f) = broker_err(g.error_code) {
            return Err(f);
        }
        for t in g.topics {
            for p in t.partitions {
                if let Some(f) = broker_err(p.error_code) {
                    return Err(f);
                }
                out.insert(TopicPartition::new(t.name.as_str(), p.partition_index), p.committed_offset);
            }
        }
    }
    Ok(out)
}

/// The OffsetCommit of `offsets`, grouped by topic.
pub(crate) fn commit_request(
    group_id: &str,
    generation_id: i32,
    member_id: &str,
    group_instance_id: Option<&str>,
    offsets: &BTreeMap<TopicPartition, i64>,
) -> OffsetCommitRequest {
    let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
    for (tp, off) in offsets {
        by_topic.entry(&tp.topic).or_default().push(
            OffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(*off)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(StrBytes::from_static_str(""))),
        );
    }
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(s(member_id))
        .with_group_instance_id(group_instance_id.map(s))
        .with_topics(
            by_topic
                .into_iter()
                .map(|(t, ps)| OffsetCommitRequestTopic::default().with_name(TopicName(s(t))).with_partitions(ps))
                .collect(),
        )
}

/// Sends `req`; the partitions the coordinator refused, with its error for each.
pub(crate) async fn commit(
    conn: &Connection,
    req: &OffsetCommitRequest,
) -> Result<Vec<(TopicPartition, ResponseError)>, Failure> {
    let version = conn.version::<OffsetCommitRequest>().map_err(transport)?.min(MAX_OFFSET_COMMIT_VERSION);
    let resp = conn.request_at(req, version).await.map_err(transport)?;
    let mut errors = Vec::new();
    for t in resp.topics {
        for p in t.partitions {
            if let Some(e) = ResponseError::try_from_code(p.error_code) {
                errors.push((TopicPartition::new(t.name.as_str(), p.partition_index), e));
            }
        }
    }
    Ok(errors)
}

pub(crate) fn ms(d: Duration) -> i32 {
    d.as_millis().min(i32::MAX as u128) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_commit_request_groups_offsets_by_topic_and_names_the_member() {
        let offsets: BTreeMap<TopicPartition, i64> =
            [(TopicPartition::new("a", 1), 7), (TopicPartition::new("b", 0), 3), (TopicPartition::new("a", 0), 5)]
                .into();
        let req = commit_request("g", 4, "m-1", Some("instance-a"), &offsets);
        assert_eq!(
            (req.group_id.0.as_str(), req.generation_id_or_member_epoch, req.member_id.as_str()),
            ("g", 4, "m-1")
        );
        assert_eq!(req.group_instance_id.as_deref(), Some("instance-a"));
        let topics: Vec<(&str, Vec<(i32, i64)>)> = req
            .topics
            .iter()
            .map(|t| {
                (t.name.0.as_str(), t.partitions.iter().map(|p| (p.partition_index, p.committed_offset)).collect())
            })
            .collect();
        assert_eq!(topics, vec![("a", vec![(0, 5), (1, 7)]), ("b", vec![(0, 3)])]);
    }
}
