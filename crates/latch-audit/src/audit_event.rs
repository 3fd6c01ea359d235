//! `AuditEvent`: one event of the log as `GET /v1/events` and
//! `latch audit events` show it: the envelope (who, when, which request),
//! the event body, and the record's place in the hash chain.

use chrono::{DateTime, Utc};
use latch_core::{AccountId, Actor, EventEnvelope, IdempotencyKeyDigest};
use latch_store::StoredEvent;
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::ActorView;
use crate::event_summary::summary;

/// Names an account by id: latchd from its state, offline readers from
/// `AccountNames`.
pub type NameOf<'a> = dyn Fn(AccountId) -> Option<String> + 'a;

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEvent {
    pub position: u64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor: ActorView,
    pub stream: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    /// The SHA-256 of the request's `Idempotency-Key` (never the key).
    #[schema(value_type = Option<String>)]
    pub idempotency_key_sha256: Option<IdempotencyKeyDigest>,
    /// One line a person reads: what changed.
    pub summary: String,
    /// The event body; names `account_id` and `token_id` where they apply.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditEvent {
    /// The event as stored, its actor's account named by `name_of`.
    pub fn of(stored: &StoredEvent, envelope: &EventEnvelope, name_of: &NameOf<'_>) -> Self {
        let mut actor = ActorView::from(envelope.actor);
        if let Actor::Token { account_id, .. } = envelope.actor {
            actor.account_name = name_of(account_id);
        }
        AuditEvent {
            position: stored.position.get(),
            id: envelope.id.to_string(),
            event_type: envelope.event.event_type().to_owned(),
            at: envelope.at,
            actor,
            stream: stored.stream.clone(),
            version: stored.version,
            request_id: envelope.request_id.clone(),
            idempotency_key_sha256: envelope.idempotency_key_sha256,
            summary: summary(&envelope.event),
            data: envelope.event.body(),
            prev_hash: stored.prev_hash.to_hex(),
            hash: stored.hash.to_hex(),
        }
    }
}
