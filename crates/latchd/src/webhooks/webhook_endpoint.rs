//! `WebhookEndpoint`: where latchd delivers events, which ones, and the
//! secret it signs them with. Kept in latchd's side records, never in the
//! event log or on NATS: the secret signs deliveries, and a URL may itself
//! be a capability (a Slack incoming webhook).

use std::fmt;

use chrono::{DateTime, Utc};
use latch_audit::TypeMatch;
use latch_core::{AccountId, RecordedEvent};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a delivery's body looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PayloadFormat {
    /// Standard Webhooks: `{type, timestamp, data}`.
    Standard,
    /// A Slack incoming webhook's `{text}`.
    Slack,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    pub id: Uuid,
    pub url: String,
    /// `whsec_<base64>`: shown once, when the endpoint is added.
    pub secret: String,
    /// Event types (`token.expiring`) or families (`token.*`); `*`: all.
    pub events: Vec<String>,
    /// Only events about these accounts; empty: every account (and events
    /// about none, such as roles and policy).
    pub accounts: Vec<AccountId>,
    pub format: PayloadFormat,
    pub created_at: DateTime<Utc>,
    /// The token that added it (`<account id>/<token id>`).
    pub created_by: String,
    /// Events up to this position were looked at: each matching one has a
    /// delivery.
    pub cursor: u64,
}

impl fmt::Debug for WebhookEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookEndpoint")
            .field("id", &self.id)
            .field("events", &self.events)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

impl WebhookEndpoint {
    /// Whether `event` is delivered to this endpoint.
    pub fn wants(&self, event: &RecordedEvent) -> bool {
        let event_type = event.envelope.event.event_type();
        let typed = self.events.iter().any(|wanted| {
            wanted == "*" || TypeMatch::parse(wanted).is_ok_and(|m| m.matches(event_type))
        });
        typed
            && (self.accounts.is_empty()
                || event
                    .envelope
                    .event
                    .account_id()
                    .is_some_and(|account| self.accounts.contains(&account)))
    }

    /// The URL without its path and query: what callers that may not change
    /// webhooks see (a Slack webhook's path is its secret).
    pub fn url_origin(&self) -> String {
        match self.url.find("://") {
            Some(scheme_end) => {
                let rest = &self.url[scheme_end + 3..];
                let host_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
                format!("{}{}/…", &self.url[..scheme_end + 3], &rest[..host_end])
            }
            None => "…".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use latch_core::{Actor, Event, EventEnvelope, EventId, Position, TokenId};

    fn endpoint(events: &[&str], accounts: Vec<AccountId>) -> WebhookEndpoint {
        WebhookEndpoint {
            id: Uuid::now_v7(),
            url: "https://hooks.slack.com/services/T0/B0/secret-path?x=1".into(),
            secret: "whsec_x".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            accounts,
            format: PayloadFormat::Standard,
            created_at: Utc::now(),
            created_by: String::new(),
            cursor: 0,
        }
    }

    fn recorded(event: Event) -> RecordedEvent {
        RecordedEvent {
            position: Position::new(1),
            version: 1,
            envelope: EventEnvelope {
                id: EventId::new(),
                at: Utc::now(),
                actor: Actor::System,
                request_id: None,
                idempotency_key_sha256: None,
                event,
            },
        }
    }

    #[test]
    fn an_endpoint_wants_its_types_families_and_accounts_only() {
        let mine = AccountId::new();
        let revoked = |account| {
            recorded(Event::TokenRevoked {
                token_id: TokenId::new(),
                account_id: account,
                reason: String::new(),
            })
        };
        let role = recorded(Event::RoleDeleted {
            name: latch_core::RoleName::parse("ops").unwrap(),
        });
        assert!(endpoint(&["token.revoked"], vec![]).wants(&revoked(mine)));
        assert!(endpoint(&["token.*"], vec![]).wants(&revoked(mine)));
        assert!(endpoint(&["*"], vec![]).wants(&role));
        assert!(!endpoint(&["token.expiring"], vec![]).wants(&revoked(mine)));
        assert!(endpoint(&["*"], vec![mine]).wants(&revoked(mine)));
        assert!(!endpoint(&["*"], vec![mine]).wants(&revoked(AccountId::new())));
        assert!(!endpoint(&["*"], vec![mine]).wants(&role), "an account filter keeps out events about none");
    }

    #[test]
    fn the_origin_hides_the_path_and_query() {
        assert_eq!(endpoint(&["*"], vec![]).url_origin(), "https://hooks.slack.com/…");
    }
}
