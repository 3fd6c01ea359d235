//! `ChainVerdict`: what a walk of the hash chain found.

use latch_core::Position;

use crate::chain_hash::ChainHash;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainVerdict {
    /// Every event checked out; `head_hash` anchors the whole log.
    Intact {
        checked: u64,
        head: Position,
        head_hash: ChainHash,
    },
    /// The first position where the chain does not hold.
    Broken { position: Position, problem: String },
}
