//! The transactional half of [`Producer`]'s API (KIP-98): `init_transactions`,
//! `begin_transaction`, `send_offsets_to_transaction`, commit and abort. The
//! decisions are [`Transaction`]'s (sans-IO); the coordinator calls are `txn`'s.
//! `send` adds a record's partition to the open transaction through
//! `add_to_transaction` before the record is batched.

use std::sync::Arc;

use super::Producer;
use super::transaction::{Transaction, TransactionError};
use super::txn::{self, GroupMetadata};
use crate::types::TopicPartition;

impl Producer {
    /// The `transactional.id` and the producer's id and epoch, or why no
    /// transaction call is possible.
    fn transactional(&self) -> Result<(&str, (i64, i16)), TransactionError> {
        let shared = &self.handle.shared;
        let not = |state| TransactionError::InvalidState { call: "a transaction call", state };
        let id = shared.config.transactional_id.as_deref().ok_or(not("the producer has no transactional.id"))?;
        let pid = shared.lock().core.producer_id().ok_or(not("init_transactions has not been called"))?;
        Ok((id, pid))
    }

    /// Runs `f` on the transaction state (a producer without `transactional.id` has none).
    fn with_txn<T>(
        &self,
        f: impl FnOnce(&mut Transaction) -> Result<T, TransactionError>,
    ) -> Result<T, TransactionError> {
        let mut st = self.handle.shared.lock();
        let txn = st.txn.as_mut().ok_or(TransactionError::InvalidState {
            call: "a transaction call",
            state: "the producer has no transactional.id",
        })?;
        f(txn)
    }

    /// Remembers a coordinator call's failure in the transaction state.
    fn note(&self, result: Result<(), TransactionError>) -> Result<(), TransactionError> {
        if let Err(e) = &result {
            let _ = self.with_txn(|t| {
                match e {
                    TransactionError::Fatal(reason) => t.fatal(reason.clone()),
                    other => t.failed(other.to_string()),
                }
                Ok(())
            });
        }
        result
    }

    /// Gets the producer id for `transactional.id` from its coordinator (Java's
    /// `initTransactions`): fences any older producer with the same id, and has the
    /// coordinator finish (abort) what that one left open. Once per producer.
    pub async fn init_transactions(&self) -> Result<(), TransactionError> {
        let shared = &self.handle.shared;
        self.with_txn(|t| t.check_init())?;
        let txn_id = shared.config.transactional_id.as_deref().expect("checked by with_txn");
        let id = txn::init_producer_id(&shared.cluster, &shared.config, txn_id).await?;
        let mut st = shared.lock();
        st.core.set_producer_id(id);
        st.txn.as_mut().expect("transactional").initialized();
        Ok(())
    }

    /// Opens a transaction: records sent from now on commit or abort together.
    pub fn begin_transaction(&self) -> Result<(), TransactionError> {
        self.with_txn(|t| t.begin())
    }

    /// Adds `tp` to the open transaction (AddPartitionsToTxn), once.
    pub(super) async fn add_to_transaction(&self, tp: &TopicPartition) -> Result<(), TransactionError> {
        let shared = &self.handle.shared;
        let (txn_id, pid) = self.transactional()?;
        self.note(txn::add_partitions(&shared.cluster, &shared.config, txn_id, pid, std::slice::from_ref(tp)).await)?;
        self.with_txn(|t| {
            t.partition_added(Arc::clone(&tp.topic), tp.partition);
            Ok(())
        })
    }

    /// Commits `offsets` (the next offset to read, per partition) for `group` as
    /// part of the open transaction (KIP-98 consume-transform-produce): they count
    /// only if the transaction commits.
    pub async fn send_offsets_to_transaction(
        &self,
        offsets: &[(TopicPartition, i64)],
        group: &GroupMetadata,
    ) -> Result<(), TransactionError> {
        let shared = &self.handle.shared;
        let needs_group = self.with_txn(|t| t.check_send().map(|()| t.needs_group(&group.group_id)))?;
        let (txn_id, pid) = self.transactional()?;
        if needs_group {
            self.note(txn::add_offsets(&shared.cluster, &shared.config, txn_id, pid, &group.group_id).await)?;
            self.with_txn(|t| {
                t.group_added(&group.group_id);
                Ok(())
            })?;
        }
        self.note(txn::commit_offsets(&shared.cluster, &shared.config, txn_id, pid, group, offsets).await)
    }

    /// Delivers every record of the open transaction, then commits it (EndTxn).
    /// If a record was not delivered the transaction cannot commit: the error says
    /// so, and [`abort_transaction`](Self::abort_transaction) is what is left.
    pub async fn commit_transaction(&self) -> Result<(), TransactionError> {
        self.end_transaction(true).await
    }

    /// Delivers (or fails) what was sent in the open transaction, then aborts it:
    /// read_committed consumers never see its records. After a failed record, the
    /// producer id is initialized again (the failed batch left a gap in its sequences).
    pub async fn abort_transaction(&self) -> Result<(), TransactionError> {
        self.end_transaction(false).await
    }

    async fn end_transaction(&self, commit: bool) -> Result<(), TransactionError> {
        let shared = &self.handle.shared;
        let check = |t: &mut Transaction| if commit { t.check_commit() } else { t.check_abort() };
        self.with_txn(check)?;
        self.flush().await;
        // A record that failed meanwhile leaves only the abort.
        self.with_txn(check)?;
        let (txn_id, pid) = self.transactional()?;
        let (started, failed) = self.with_txn(|t| Ok((t.started_at_coordinator(), t.check_commit().is_err())))?;
        if started {
            self.note(txn::end(&shared.cluster, &shared.config, txn_id, pid, commit).await)?;
        }
        self.with_txn(|t| {
            t.ended();
            Ok(())
        })?;
        if !commit && failed {
            let id = txn::init_producer_id(&shared.cluster, &shared.config, txn_id).await;
            let id = self.note(id.map(|id| shared.lock().core.set_producer_id(id)));
            id?;
        }
        Ok(())
    }
}
