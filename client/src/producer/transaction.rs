//! A transactional producer's state, pure (KIP-98): where in a transaction it is,
//! the partitions already added to the current one (a batch may reach a partition
//! only after AddPartitionsToTxn named it), and the errors that decide what may come
//! next. The driver (`producer::txn`) does the coordinator I/O and reports back here.
//!
//! Transaction protocol version 1: partitions are added explicitly, EndTxn keeps the
//! epoch, and Produce stays at v11 (v12 tells a Kafka 4 broker the client speaks
//! version 2, KIP-890, whose implicit adds and per-transaction epoch bumps this
//! client does not do yet).

use std::collections::HashSet;
use std::sync::Arc;

/// Why a transaction call was refused, or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The call does not fit the state (e.g. `commit_transaction` with none begun).
    #[error("{call} is not possible now: {state}")]
    InvalidState {
        /// The call.
        call: &'static str,
        /// Where the producer is.
        state: &'static str,
    },
    /// Something in the transaction failed (a record was not delivered, a
    /// coordinator call failed): it can only be aborted.
    #[error("the transaction must be aborted: {0}")]
    Abortable(String),
    /// Another producer with the same `transactional.id` took over (PRODUCER_FENCED,
    /// INVALID_PRODUCER_EPOCH), or the coordinator refused for good: this producer
    /// can do nothing more; close it.
    #[error("the transactional producer cannot go on: {0}")]
    Fatal(String),
}

/// Where a transactional producer is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// `init_transactions` not done yet.
    Uninitialized,
    /// Initialized; no transaction open.
    Ready,
    /// Between `begin_transaction` and its end.
    InTransaction,
    /// A failure inside the transaction: only an abort is possible.
    Abortable(String),
    /// Fenced or refused for good.
    Fatal(String),
}

/// The transaction state machine.
#[derive(Debug)]
pub(crate) struct Transaction {
    state: State,
    /// Partitions added to the open transaction.
    partitions: HashSet<(Arc<str>, i32)>,
    /// A group's offsets were added (AddOffsetsToTxn) to the open transaction.
    groups: HashSet<String>,
}

impl Transaction {
    pub(crate) fn new() -> Self {
        Self { state: State::Uninitialized, partitions: HashSet::new(), groups: HashSet::new() }
    }

    fn state_name(&self) -> &'static str {
        match self.state {
            State::Uninitialized => "init_transactions has not been called",
            State::Ready => "no transaction is open (call begin_transaction)",
            State::InTransaction => "a transaction is open",
            State::Abortable(_) => "the transaction failed and must be aborted",
            State::Fatal(_) => "the producer was fenced or failed for good",
        }
    }

    fn refuse<T>(&self, call: &'static str) -> Result<T, TransactionError> {
        match &self.state {
            State::Fatal(reason) => Err(TransactionError::Fatal(reason.clone())),
            _ => Err(TransactionError::InvalidState { call, state: self.state_name() }),
        }
    }

    /// `init_transactions` may run now (again after a failed attempt).
    pub(crate) fn check_init(&self) -> Result<(), TransactionError> {
        match self.state {
            State::Uninitialized => Ok(()),
            _ => self.refuse("init_transactions"),
        }
    }

    /// The producer id and epoch are in place.
    pub(crate) fn initialized(&mut self) {
        self.state = State::Ready;
    }

    pub(crate) fn begin(&mut self) -> Result<(), TransactionError> {
        match self.state {
            State::Ready => {
                self.state = State::InTransaction;
                Ok(())
            }
            _ => self.refuse("begin_transaction"),
        }
    }

    /// A record may be sent now (a transaction is open and has not failed).
    pub(crate) fn check_send(&self) -> Result<(), TransactionError> {
        match &self.state {
            State::InTransaction => Ok(()),
            State::Abortable(reason) => Err(TransactionError::Abortable(reason.clone())),
            _ => self.refuse("send"),
        }
    }

    /// True when `topic[partition]` must be added before a record of it is batched.
    pub(crate) fn needs_partition(&self, topic: &Arc<str>, partition: i32) -> bool {
        !self.partitions.contains(&(Arc::clone(topic), partition))
    }

    /// AddPartitionsToTxn succeeded for these.
    pub(crate) fn partition_added(&mut self, topic: Arc<str>, partition: i32) {
        self.partitions.insert((topic, partition));
    }

    /// True when `group`'s offsets still need AddOffsetsToTxn in this transaction.
    pub(crate) fn needs_group(&self, group: &str) -> bool {
        !self.groups.contains(group)
    }

    pub(crate) fn group_added(&mut self, group: &str) {
        self.groups.insert(group.to_owned());
    }

    /// A record of the open transaction was not delivered, or a coordinator call
    /// failed: the transaction can only be aborted now.
    pub(crate) fn failed(&mut self, reason: impl Into<String>) {
        if matches!(self.state, State::InTransaction) {
            self.state = State::Abortable(reason.into());
        }
    }

    /// Fenced, or refused for good: nothing more is possible.
    pub(crate) fn fatal(&mut self, reason: impl Into<String>) {
        self.state = State::Fatal(reason.into());
    }

    /// `commit_transaction` may start (after its records are delivered, the
    /// caller checks [`check_commit`](Self::check_commit) again).
    pub(crate) fn check_commit(&self) -> Result<(), TransactionError> {
        match &self.state {
            State::InTransaction => Ok(()),
            State::Abortable(reason) => Err(TransactionError::Abortable(reason.clone())),
            _ => self.refuse("commit_transaction"),
        }
    }

    /// `abort_transaction` may start.
    pub(crate) fn check_abort(&self) -> Result<(), TransactionError> {
        match self.state {
            State::InTransaction | State::Abortable(_) => Ok(()),
            _ => self.refuse("abort_transaction"),
        }
    }

    /// True when the open transaction has anything the coordinator must end (a
    /// transaction with no partition and no offsets was never started there).
    pub(crate) fn started_at_coordinator(&self) -> bool {
        !self.partitions.is_empty() || !self.groups.is_empty()
    }

    /// EndTxn succeeded (or there was nothing to end): ready for the next one.
    pub(crate) fn ended(&mut self) {
        self.partitions.clear();
        self.groups.clear();
        if !matches!(self.state, State::Fatal(_)) {
            self.state = State::Ready;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> Transaction {
        let mut t = Transaction::new();
        t.check_init().unwrap();
        t.initialized();
        t
    }

    #[test]
    fn nothing_before_init_and_no_second_init() {
        let mut t = Transaction::new();
        assert!(matches!(t.begin(), Err(TransactionError::InvalidState { call: "begin_transaction", .. })));
        assert!(t.check_send().is_err());
        t.initialized();
        assert!(t.check_init().is_err());
    }

    #[test]
    fn a_transaction_adds_each_partition_once_and_starts_clean_after_its_end() {
        let mut t = ready();
        assert!(t.check_send().is_err(), "no transaction open");
        t.begin().unwrap();
        assert!(t.begin().is_err(), "one at a time");
        let topic: Arc<str> = "t".into();
        assert!(!t.started_at_coordinator());
        assert!(t.needs_partition(&topic, 0));
        t.partition_added(topic.clone(), 0);
        assert!(!t.needs_partition(&topic, 0) && t.needs_partition(&topic, 1));
        assert!(t.started_at_coordinator());
        t.check_commit().unwrap();
        t.ended();
        assert!(t.check_commit().is_err(), "committed: none open");
        t.begin().unwrap();
        assert!(t.needs_partition(&topic, 0), "a new transaction adds its partitions again");
    }

    #[test]
    fn a_failure_inside_leaves_only_abort() {
        let mut t = ready();
        t.begin().unwrap();
        t.failed("record 3 not delivered");
        assert_eq!(t.check_send(), Err(TransactionError::Abortable("record 3 not delivered".into())));
        assert!(matches!(t.check_commit(), Err(TransactionError::Abortable(_))));
        t.check_abort().unwrap();
        t.ended();
        t.begin().unwrap();
    }

    #[test]
    fn fenced_is_the_end() {
        let mut t = ready();
        t.begin().unwrap();
        t.fatal("PRODUCER_FENCED");
        assert_eq!(t.check_abort(), Err(TransactionError::Fatal("PRODUCER_FENCED".into())));
        t.ended();
        assert!(matches!(t.begin(), Err(TransactionError::Fatal(_))));
    }

    #[test]
    fn offsets_add_their_group_once() {
        let mut t = ready();
        t.begin().unwrap();
        assert!(t.needs_group("g"));
        t.group_added("g");
        assert!(!t.needs_group("g") && t.started_at_coordinator());
    }
}
