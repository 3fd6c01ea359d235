//! `ChainedRecord`: one stored event as a replay reads it — checked
//! against the hash chain, its data not parsed yet (the reader parses it
//! once, into what it wants).

use std::ops::Range;

use latch_core::Position;

use crate::chain_hash::ChainHash;

#[derive(Debug, Clone)]
pub struct ChainedRecord {
    pub position: Position,
    /// The event's version within its stream (1-based).
    pub version: u64,
    pub hash: ChainHash,
    /// `hash ‖ record`, as stored.
    pub(crate) value: Box<[u8]>,
    /// Where the data lies in the record.
    pub(crate) data: Range<usize>,
}

impl ChainedRecord {
    /// The event's data as stored: JSON (for Latch, an `EventEnvelope`).
    pub fn data(&self) -> &[u8] {
        &self.value[32..][self.data.clone()]
    }
}
