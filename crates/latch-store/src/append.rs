//! What an append asks for and what it gets.

use latch_core::Position;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::expected_version::ExpectedVersion;

/// One event to append.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub stream: String,
    pub data: Box<RawValue>,
}

/// One command's worth of events: appended all together or not at all.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    /// The events, in order. They get consecutive positions.
    pub events: Vec<NewEvent>,
    /// Version checks, each on one stream.
    pub expectations: Vec<(String, ExpectedVersion)>,
    /// A key that makes the append happen at most once, ever.
    pub idempotency: Option<IdempotencyKey>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdempotencyKey {
    /// Unique per caller; the caller scopes it (latchd prefixes the actor).
    pub key: String,
    /// What the original request was (e.g. a hash of its body), so a key
    /// reused for a different request can be told apart from a retry.
    pub fingerprint: String,
}

/// What the idempotency index remembers of an append, forever.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// First position of the append; `count` events follow from it. An
    /// append of no events records `count = 0` at the head it saw.
    pub first: Position,
    pub count: u64,
    pub fingerprint: String,
}

impl IdempotencyRecord {
    pub fn positions(&self) -> impl Iterator<Item = Position> + '_ {
        (0..self.count).map(move |i| Position::new(self.first.get() + i))
    }
}

/// The result for one accepted request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Newly written at these positions.
    Written { first: Position, count: u64 },
    /// The idempotency key was seen before: nothing written; this is what
    /// the original append recorded.
    Duplicate(IdempotencyRecord),
}

/// Why one request of a batch was refused. Nothing of it was written; the
/// other requests of the batch are unaffected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppendRejected {
    #[error("stream {stream} is at version {actual}, expected {expected}")]
    WrongExpectedVersion {
        stream: String,
        expected: ExpectedVersion,
        actual: u64,
    },
}
