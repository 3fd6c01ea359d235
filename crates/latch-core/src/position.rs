//! `Position`: the place of an event in the global log.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Global log position. The first event is at 1; `Position::ZERO` means
/// "nothing yet" (an empty log, or a follower that has applied nothing).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(u64);

impl Position {
    pub const ZERO: Position = Position(0);
    pub const FIRST: Position = Position(1);

    pub const fn new(value: u64) -> Self {
        Self(value)
    }
    pub const fn get(self) -> u64 {
        self.0
    }
    pub const fn next(self) -> Self {
        Self(self.0 + 1)
    }
    /// Big-endian bytes, so RocksDB's byte order is position order.
    pub const fn to_key(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }
    pub fn from_key(key: &[u8]) -> Option<Self> {
        Some(Self(u64::from_be_bytes(key.try_into().ok()?)))
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}", self.0)
    }
}
