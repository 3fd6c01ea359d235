//! The payload of every event message: a CloudEvents 1.0 JSON event.
//!
//! `id` is the event id, `type` is `latch.<event_type>`, `source` is
//! `latchd`, `subject` the token (or else account, role, `policy`) it is
//! about, `sequence` the log position as a decimal string, `time` when it
//! was recorded, and `data` the event body, which names `account_id` and
//! `token_id` wherever they apply. Extension attributes carry the rest of
//! the envelope, so a verifier can fold exactly what latchd folded:
//! `latchversion` (the event's version in its stream), `latchactor`
//! (`system` or `token/<account_id>/<token_id>`), and, when present,
//! `latchrequestid` and `latchidempotencykeysha256` (the SHA-256 of the
//! request's idempotency key: never the key, which would let a reader
//! replay the request).

use chrono::{DateTime, Utc};
use latch_core::{
    AccountId, Actor, Event, EventEnvelope, EventId, IdempotencyKeyDigest, Position, RecordedEvent,
    TokenId,
};
use serde::{Deserialize, Serialize};
use thiserror::Error;

const SPEC_VERSION: &str = "1.0";
const SOURCE: &str = "latchd";
const TYPE_PREFIX: &str = "latch.";
const JSON: &str = "application/json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CloudEvent {
    pub specversion: String,
    pub id: String,
    pub source: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub subject: String,
    pub time: DateTime<Utc>,
    pub datacontenttype: String,
    pub sequence: String,
    pub data: serde_json::Value,
    pub latchversion: String,
    pub latchactor: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latchrequestid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latchidempotencykeysha256: Option<IdempotencyKeyDigest>,
    /// The stored record, exactly as the log hashed it: what a follower
    /// checks the signature and chain against (see `signed_feed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latchrecord: Option<String>,
}

#[derive(Debug, Error)]
pub enum CodecError {
    #[error("not a CloudEvents JSON event: {0}")]
    Json(#[from] serde_json::Error),
    #[error("not a Latch event: {0}")]
    Foreign(String),
}

/// What the event is about: its token, else its account, else the role or `policy`.
pub fn subject_of(event: &Event) -> String {
    if let Some(token) = event.token_id() {
        return token.to_string();
    }
    if let Some(account) = event.account_id() {
        return account.to_string();
    }
    match event {
        Event::RoleDefined { name, .. } | Event::RoleDeleted { name } => name.to_string(),
        Event::SigningKeyRotated { .. } => "signing-key".to_owned(),
        _ => "policy".to_owned(),
    }
}

fn actor_text(actor: Actor) -> String {
    match actor {
        Actor::System => "system".to_owned(),
        Actor::Token {
            account_id,
            token_id,
        } => format!("token/{account_id}/{token_id}"),
    }
}

fn parse_actor(text: &str) -> Option<Actor> {
    if text == "system" {
        return Some(Actor::System);
    }
    let rest = text.strip_prefix("token/")?;
    let (account, token) = rest.split_once('/')?;
    Some(Actor::Token {
        account_id: account.parse::<AccountId>().ok()?,
        token_id: token.parse::<TokenId>().ok()?,
    })
}

impl CloudEvent {
    pub fn from_recorded(recorded: &RecordedEvent) -> Self {
        let envelope = &recorded.envelope;
        CloudEvent {
            specversion: SPEC_VERSION.to_owned(),
            id: envelope.id.to_string(),
            source: SOURCE.to_owned(),
            kind: format!("{TYPE_PREFIX}{}", envelope.event.event_type()),
            subject: subject_of(&envelope.event),
            time: envelope.at,
            datacontenttype: JSON.to_owned(),
            sequence: recorded.position.get().to_string(),
            data: envelope.event.body(),
            latchversion: recorded.version.to_string(),
            latchactor: actor_text(envelope.actor),
            latchrequestid: envelope.request_id.clone(),
            latchidempotencykeysha256: envelope.idempotency_key_sha256,
            latchrecord: None,
        }
    }

    pub fn into_recorded(self) -> Result<RecordedEvent, CodecError> {
        let foreign = |what: &str| CodecError::Foreign(what.to_owned());
        if self.specversion != SPEC_VERSION || self.source != SOURCE {
            return Err(foreign("specversion or source is not Latch's"));
        }
        let event_type = self
            .kind
            .strip_prefix(TYPE_PREFIX)
            .ok_or_else(|| foreign("type is not latch.*"))?;
        let event: Event =
            serde_json::from_value(serde_json::json!({ "type": event_type, "data": self.data }))?;
        let position = self
            .sequence
            .parse::<u64>()
            .map_err(|_| foreign("sequence is not a position"))?;
        Ok(RecordedEvent {
            position: Position::new(position),
            version: self
                .latchversion
                .parse()
                .map_err(|_| foreign("latchversion is not a number"))?,
            envelope: EventEnvelope {
                id: self
                    .id
                    .parse::<EventId>()
                    .map_err(|_| foreign("id is not an event id"))?,
                at: self.time,
                actor: parse_actor(&self.latchactor)
                    .ok_or_else(|| foreign("latchactor is malformed"))?,
                request_id: self.latchrequestid,
                idempotency_key_sha256: self.latchidempotencykeysha256,
                event,
            },
        })
    }
}

/// The message body for an event.
pub fn encode(recorded: &RecordedEvent) -> Vec<u8> {
    serde_json::to_vec(&CloudEvent::from_recorded(recorded)).expect("cloud events serialise")
}

/// An event back from a message body.
pub fn decode(bytes: &[u8]) -> Result<RecordedEvent, CodecError> {
    serde_json::from_slice::<CloudEvent>(bytes)?.into_recorded()
}
