//! The envelope every stored event carries, and a recorded event as
//! projections consume it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::event::Event;
use crate::id::EventId;
use crate::idempotency_key_digest::IdempotencyKeyDigest;
use crate::position::Position;

/// Who did what, when, under which request. This is what the log stores
/// as each event's data (the log adds position, stream, version and hashes).
///
/// Serialised flat: `{"id","at","actor",["request_id"],
/// ["idempotency_key_sha256"],"type","data"}`. Deserialised by hand (`envelope_deserialize`), without
/// the buffering `#[serde(flatten)]` costs, because every replay decodes
/// every envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventEnvelope {
    pub id: EventId,
    pub at: DateTime<Utc>,
    pub actor: Actor,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// The SHA-256 of the request's `Idempotency-Key`, never the key: a
    /// key is a capability to replay the request. (Logs written before this
    /// field held the key itself; they read back as its digest.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key_sha256: Option<IdempotencyKeyDigest>,
    #[serde(flatten)]
    pub event: Event,
}

/// An event at its place in the log: what `evolve` folds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub version: u64,
    #[serde(flatten)]
    pub envelope: EventEnvelope,
}
