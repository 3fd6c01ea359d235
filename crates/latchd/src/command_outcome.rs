//! What submitting a command can come to. Business rejections and
//! infrastructure failures are different types, nested as
//! `Result<Result<CommandReceipt, CommandRejection>, HandlerFailure>`:
//! a rejection means "this command is not acceptable, nothing was written";
//! a failure means "Latch could not say", and the caller may retry.

use std::sync::Arc;

use latch_core::{DomainError, RecordedEvent};
use latch_store::{ExpectedVersion, StoreError};
use thiserror::Error;

/// A command that was accepted (or had been, for an idempotent retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandReceipt {
    /// The events it appended, at their positions. Empty when the command
    /// changed nothing (e.g. an update to the same values).
    pub events: Vec<RecordedEvent>,
    /// `true` when this is the recorded outcome of an earlier submission
    /// with the same idempotency key; nothing new was appended.
    pub replayed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CommandRejection {
    #[error(transparent)]
    Domain(#[from] DomainError),
    #[error("{stream} is at version {actual}, not {expected}")]
    VersionConflict {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
    #[error("this Idempotency-Key was already used for a different request")]
    IdempotencyKeyReused,
}

#[derive(Debug, Clone, Error)]
pub enum HandlerFailure {
    #[error("event store: {0}")]
    Store(Arc<StoreError>),
    #[error("the writer and the store disagree: {0}")]
    Inconsistent(String),
    #[error("the command handler has stopped")]
    Stopped,
    /// HA mode: this node is a standby (or has just stepped down); the
    /// leader decides commands.
    #[error("this latchd is not the leader; send the command to the leader")]
    NotLeader,
    /// HA mode: the replicated stream did not acknowledge the command's
    /// events (this node was deposed, or NATS failed). Nothing is answered
    /// as written; the node steps down and follows the stream.
    #[error("the replicated stream did not acknowledge the command: {0}")]
    Replication(String),
}

impl From<StoreError> for HandlerFailure {
    fn from(error: StoreError) -> Self {
        HandlerFailure::Store(Arc::new(error))
    }
}

pub type CommandResult = Result<Result<CommandReceipt, CommandRejection>, HandlerFailure>;
