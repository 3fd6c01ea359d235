//! `ChainVerdict`: what a walk of the hash chain found.

use latch_core::Position;

use crate::chain_hash::ChainHash;

/// Serialised as `{"verdict": "intact", "checked", "head", "head_hash"}` or
/// `{"verdict": "broken", "position", "problem"}`: what `latch audit verify`
/// prints, online and offline alike.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
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
