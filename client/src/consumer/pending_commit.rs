//! [`PendingCommit`]: the future [`Consumer::commit_async`] and
//! [`Consumer::commit_offsets_async`] return.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

#[cfg(doc)]
use super::Consumer;
use crate::group::CommitError;
use crate::group::driver::CommitReply;

/// A commit sent to the coordinator, not waited for ([`Consumer::commit_async`]).
/// Await it for the answer; dropping it does not cancel the commit.
#[derive(Debug)]
#[must_use = "the commit is sent either way; await the handle to learn whether it landed"]
pub struct PendingCommit {
    answer: CommitReply,
}

impl PendingCommit {
    pub(super) fn new(answer: CommitReply) -> Self {
        Self { answer }
    }
}

impl Future for PendingCommit {
    type Output = Result<(), CommitError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A dropped reply channel means the group member stopped.
        Pin::new(&mut self.answer).poll(cx).map(|r| r.unwrap_or(Err(CommitError::Closed)))
    }
}
