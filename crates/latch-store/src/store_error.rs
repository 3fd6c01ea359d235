//! `StoreError`: infrastructure failures. Never a business rejection.

use latch_core::Position;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("RocksDB: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("stored event at position {position} is corrupt: {problem}")]
    Corrupt { position: Position, problem: String },
    /// The hash chain does not hold here: the log was altered.
    #[error("the hash chain is broken at position {position}: {problem}")]
    ChainBroken { position: Position, problem: String },
    /// A replicated append or a commit did not fit this log.
    #[error("replication: {0}")]
    Replication(String),
    #[error("the store was opened read-only")]
    ReadOnly,
    #[error("{0}")]
    Io(#[from] std::io::Error),
}
