//! A KIP-227 incremental fetch session with one broker, pure.
//!
//! The first Fetch is full (session id 0, epoch 0: "create a session") and lists
//! every partition. If the broker answers with a session id, later Fetches are
//! incremental: they carry the id and the next epoch and list only partitions
//! that are new or whose fetch state changed, plus the ones to forget; the
//! broker remembers the rest. The broker answers only for partitions with news.
//! Any session error, or a lost connection, makes the next Fetch full again.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;

use crate::types::TopicPartition;

/// KIP-227: epoch 0 asks for a new session.
pub const INITIAL_EPOCH: i32 = 0;
/// KIP-227: epoch -1 closes the session (or asks for a sessionless fetch).
pub const FINAL_EPOCH: i32 = -1;

/// What one partition's entry in a Fetch says. Two equal ones need not be resent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionFetch {
    pub fetch_offset: i64,
    /// Sent as `current_leader_epoch` (KIP-320), -1 when unknown.
    pub leader_epoch: i32,
    pub max_bytes: i32,
}

/// One Fetch request, before it is encoded for a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchPlan {
    pub session_id: i32,
    pub epoch: i32,
    /// Partitions listed in the request (all of them when `full`).
    pub partitions: Vec<(TopicPartition, PartitionFetch)>,
    /// Partitions the broker's session holds that we no longer want.
    pub forgotten: Vec<TopicPartition>,
    pub full: bool,
}

/// The session with one broker.
#[derive(Debug, Clone, Default)]
pub struct FetchSession {
    /// 0 while there is no session.
    id: i32,
    /// The epoch the next incremental Fetch carries.
    epoch: i32,
    /// What the broker's session holds, as of the last Fetch it accepted.
    held: BTreeMap<TopicPartition, PartitionFetch>,
    /// The Fetch in flight and what the session will hold once it is accepted.
    pending: Option<(bool, BTreeMap<TopicPartition, PartitionFetch>)>,
}

impl FetchSession {
    #[cfg(test)]
    fn new() -> Self {
        Self::default()
    }

    /// The next Fetch for the partitions we want from this broker now.
    pub fn plan(&mut self, wanted: &BTreeMap<TopicPartition, PartitionFetch>) -> FetchPlan {
        let full = self.id == 0;
        let plan = if full {
            FetchPlan {
                session_id: 0,
                epoch: INITIAL_EPOCH,
                partitions: wanted.iter().map(|(tp, f)| (tp.clone(), *f)).collect(),
                forgotten: Vec::new(),
                full,
            }
        } else {
            FetchPlan {
                session_id: self.id,
                epoch: self.epoch,
                partitions: wanted
                    .iter()
                    .filter(|(tp, f)| self.held.get(*tp) != Some(*f))
                    .map(|(tp, f)| (tp.clone(), *f))
                    .collect(),
                forgotten: self.held.keys().filter(|tp| !wanted.contains_key(*tp)).cloned().collect(),
                full,
            }
        };
        self.pending = Some((full, wanted.clone()));
        plan
    }

    /// The broker answered the Fetch from the last [`plan`](Self::plan) with this
    /// top-level error and session id.
    pub fn on_response(&mut self, error: Option<ResponseError>, session_id: i32) {
        let Some((full, wanted)) = self.pending.take() else { return };
        if let Some(e) = error {
            if is_session_error(e) {
                tracing::debug!(session = self.id, error = ?e, "fetch session lost; the next fetch is full");
            }
            // Whatever the error, the broker did not take this request's changes.
            return self.reset();
        }
        if full {
            // 0: the broker keeps no session (e.g. its cache is full); fetch in full again.
            self.id = session_id;
            self.epoch = 1;
        } else {
            // KIP-227: epochs run 1..=i32::MAX, then wrap to 1.
            self.epoch = if self.epoch == i32::MAX { 1 } else { self.epoch + 1 };
        }
        self.held = if self.id == 0 { BTreeMap::new() } else { wanted };
    }

    /// The Fetch got no answer (connection lost, timeout): start over with a full one.
    pub fn on_failure(&mut self) {
        self.pending = None;
        self.reset();
    }

    /// The session id and epoch that close the session on the broker, if there is one.
    pub fn close(&mut self) -> Option<(i32, i32)> {
        let id = std::mem::take(&mut self.id);
        self.reset();
        (id != 0).then_some((id, FINAL_EPOCH))
    }

    fn reset(&mut self) {
        self.id = 0;
        self.epoch = INITIAL_EPOCH;
        self.held.clear();
    }
}

/// Errors that mean the broker no longer knows this session as we do.
pub fn is_session_error(e: ResponseError) -> bool {
    matches!(
        e,
        ResponseError::FetchSessionIdNotFound
            | ResponseError::InvalidFetchSessionEpoch
            | ResponseError::FetchSessionTopicIdError
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn pf(offset: i64) -> PartitionFetch {
        PartitionFetch { fetch_offset: offset, leader_epoch: 0, max_bytes: 1024 }
    }

    fn wanted(items: &[(i32, i64)]) -> BTreeMap<TopicPartition, PartitionFetch> {
        items.iter().map(|(p, o)| (tp(*p), pf(*o))).collect()
    }

    #[test]
    fn first_fetch_is_full_then_incremental_with_only_changes() {
        let mut s = FetchSession::new();
        let p = s.plan(&wanted(&[(0, 0), (1, 0), (2, 0)]));
        assert!(p.full);
        assert_eq!((p.session_id, p.epoch, p.partitions.len()), (0, 0, 3));
        s.on_response(None, 77);
        // Partition 1 advanced; 0 and 2 are unchanged and stay in the broker's session.
        let p = s.plan(&wanted(&[(0, 0), (1, 5), (2, 0)]));
        assert!(!p.full);
        assert_eq!((p.session_id, p.epoch), (77, 1));
        assert_eq!(p.partitions, vec![(tp(1), pf(5))]);
        assert!(p.forgotten.is_empty());
        s.on_response(None, 77);
        let p = s.plan(&wanted(&[(0, 0), (1, 5), (2, 0)]));
        assert_eq!(p.epoch, 2);
        assert!(p.partitions.is_empty(), "nothing changed: an empty incremental fetch");
    }

    #[test]
    fn removed_partitions_are_forgotten_and_readded_in_full() {
        let mut s = FetchSession::new();
        s.plan(&wanted(&[(0, 0), (1, 0)]));
        s.on_response(None, 5);
        let p = s.plan(&wanted(&[(1, 0)]));
        assert_eq!(p.forgotten, vec![tp(0)]);
        assert!(p.partitions.is_empty());
        s.on_response(None, 5);
        let p = s.plan(&wanted(&[(0, 3), (1, 0)]));
        assert_eq!(p.partitions, vec![(tp(0), pf(3))]);
        assert!(p.forgotten.is_empty());
    }

    #[test]
    fn a_session_error_or_a_lost_connection_makes_the_next_fetch_full() {
        let mut s = FetchSession::new();
        s.plan(&wanted(&[(0, 0), (1, 0)]));
        s.on_response(None, 9);
        s.plan(&wanted(&[(0, 1), (1, 0)]));
        s.on_response(Some(ResponseError::FetchSessionIdNotFound), 0);
        let p = s.plan(&wanted(&[(0, 1), (1, 0)]));
        assert!(p.full);
        assert_eq!((p.session_id, p.epoch, p.partitions.len()), (0, 0, 2));
        s.on_response(None, 10);
        s.plan(&wanted(&[(0, 1), (1, 0)]));
        s.on_failure();
        assert!(s.plan(&wanted(&[(0, 1)])).full);
    }

    #[test]
    fn a_broker_without_a_session_gets_full_fetches() {
        let mut s = FetchSession::new();
        s.plan(&wanted(&[(0, 0)]));
        s.on_response(None, 0);
        let p = s.plan(&wanted(&[(0, 4)]));
        assert!(p.full);
        assert_eq!(p.epoch, INITIAL_EPOCH);
    }

    #[test]
    fn epochs_wrap_to_one() {
        let mut s = FetchSession::new();
        s.plan(&wanted(&[(0, 0)]));
        s.on_response(None, 3);
        s.epoch = i32::MAX;
        assert_eq!(s.plan(&wanted(&[(0, 0)])).epoch, i32::MAX);
        s.on_response(None, 3);
        assert_eq!(s.plan(&wanted(&[(0, 0)])).epoch, 1);
    }

    #[test]
    fn close_names_the_session_once() {
        let mut s = FetchSession::new();
        assert_eq!(s.close(), None);
        s.plan(&wanted(&[(0, 0)]));
        s.on_response(None, 12);
        assert_eq!(s.close(), Some((12, FINAL_EPOCH)));
        assert_eq!(s.close(), None);
    }
}
