//! `EventFilter`: which events of the log an investigation wants. One
//! definition for `GET /v1/events` and `latch audit events --data-dir`, so
//! the same flags give the same events online and offline.

use chrono::{DateTime, Utc};
use latch_core::{AccountId, Actor, Event, EventEnvelope, Position, TokenId};

/// Every condition given must hold. Names are resolved to ids before a
/// filter is built (latchd from its state, the CLI offline by
/// `AccountNames`), so matching is a few comparisons an event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    /// Events about this account (its own and its tokens').
    pub account: Option<AccountId>,
    /// Events about this token.
    pub token: Option<TokenId>,
    /// Events caused by this actor.
    pub actor: Option<ActorMatch>,
    /// Events of these types (`token.revoked`, or a family: `token.*`);
    /// empty: any type.
    pub types: Vec<TypeMatch>,
    /// Recorded at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Recorded before this time.
    pub until: Option<DateTime<Utc>>,
    /// At or after this position.
    pub from: Option<Position>,
    /// At or before this position.
    pub to: Option<Position>,
}

/// Who caused an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActorMatch {
    /// Latch itself: the bootstrap and the scheduler.
    System,
    /// Any token of this account.
    Account(AccountId),
    /// This token.
    Token(TokenId),
}

/// An event type, or every type of a family (`token.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypeMatch {
    Exact(&'static str),
    Family(String),
}

/// What `EventFilter::check` says of one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Matches,
    Skip,
    /// This event and every later one are outside the filter's position or
    /// time range: stop reading. (The log's times never go backwards: one
    /// writer stamps them in position order.)
    PastTheEnd,
}

impl TypeMatch {
    /// `token.revoked` or `token.*`; anything else is refused with the list
    /// of types.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some(&exact) = Event::TYPES.iter().find(|t| **t == text) {
            return Ok(TypeMatch::Exact(exact));
        }
        if let Some(family) = text.strip_suffix(".*")
            && Event::TYPES
                .iter()
                .any(|t| t.split('.').next() == Some(family))
        {
            return Ok(TypeMatch::Family(format!("{family}.")));
        }
        Err(format!(
            "unknown event type {text:?}; one of: {}, or a family such as token.*",
            Event::TYPES.join(", ")
        ))
    }

    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            TypeMatch::Exact(exact) => *exact == event_type,
            TypeMatch::Family(prefix) => event_type.starts_with(prefix.as_str()),
        }
    }
}

impl ActorMatch {
    fn matches(self, actor: Actor) -> bool {
        match (self, actor) {
            (ActorMatch::System, Actor::System) => true,
            (ActorMatch::Account(wanted), Actor::Token { account_id, .. }) => wanted == account_id,
            (ActorMatch::Token(wanted), Actor::Token { token_id, .. }) => wanted == token_id,
            _ => false,
        }
    }
}

impl EventFilter {
    /// The position to start reading at.
    pub fn first_position(&self) -> Position {
        self.from.unwrap_or(Position::FIRST).max(Position::FIRST)
    }

    pub fn check(&self, position: Position, envelope: &EventEnvelope) -> Verdict {
        if self.to.is_some_and(|to| position > to)
            || self.until.is_some_and(|until| envelope.at >= until)
        {
            return Verdict::PastTheEnd;
        }
        let event = &envelope.event;
        let matches = self.from.is_none_or(|from| position >= from)
            && self.since.is_none_or(|since| envelope.at >= since)
            && self
                .account
                .is_none_or(|account| event.account_id() == Some(account))
            && self.token.is_none_or(|token| about_token(event, token))
            && self.actor.is_none_or(|actor| actor.matches(envelope.actor))
            && (self.types.is_empty() || self.types.iter().any(|t| t.matches(event.event_type())));
        if matches {
            Verdict::Matches
        } else {
            Verdict::Skip
        }
    }
}

/// Whether the event is about the token: its own, or the rotation that
/// made it (the predecessor's `token.rotated` names it as successor).
fn about_token(event: &Event, token: TokenId) -> bool {
    event.token_id() == Some(token)
        || matches!(event, Event::TokenRotated { successor_id, .. } if *successor_id == token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_type_is_exact_or_a_family_and_anything_else_lists_the_types() {
        assert_eq!(
            TypeMatch::parse("token.revoked"),
            Ok(TypeMatch::Exact("token.revoked"))
        );
        let family = TypeMatch::parse("token.*").unwrap();
        assert!(family.matches("token.rotation_due"));
        assert!(!family.matches("account.created"));
        let error = TypeMatch::parse("token.stolen").unwrap_err();
        assert!(error.contains("token.revoked"), "{error}");
        assert!(TypeMatch::parse("tok.*").is_err());
    }
}
