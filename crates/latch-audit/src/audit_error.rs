//! `AuditError`: why an investigation could not be answered.

use latch_core::{Position, TokenId};
use latch_store::StoreError;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum AuditError {
    /// The log does not reach the position asked for.
    #[error("the log ends at position {head}; there is no position {asked}")]
    BeyondHead { asked: Position, head: Position },
    #[error("no token {0} was ever issued in this log")]
    UnknownToken(TokenId),
    /// Replays check the hash chain as they read: an answer never rests on
    /// an altered record.
    #[error(
        "the log's hash chain is broken at position {position}: {problem}; the log was altered after it was written (run `latch audit verify`)"
    )]
    BrokenChain { position: Position, problem: String },
    /// The index names an event the log does not hold: the index is
    /// damaged (`latch audit verify` says so; `latch audit reindex` mends it).
    #[error(
        "the log's index points at position {0}, which the log does not hold; the index is damaged (run `latch audit reindex`)"
    )]
    IndexPointsNowhere(Position),
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for AuditError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::ChainBroken { position, problem } => {
                AuditError::BrokenChain { position, problem }
            }
            other => AuditError::Store(other),
        }
    }
}
