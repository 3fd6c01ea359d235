//! `TokenUsage`: when, from where and how often a token was accepted, as
//! latchd keeps it in the store's `usage` column family (one JSON record a
//! token). Usage informs people (stale tokens, leak investigations); it
//! never decides access.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use latch_core::TokenId;
use latch_store::{EventStore, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    pub first_used_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub last_used_from: Option<IpAddr>,
    pub count: u64,
}

impl TokenUsage {
    /// Both records as one: the earliest first use, the latest last use
    /// (and where from), the counts added.
    pub fn merge(self, other: TokenUsage) -> TokenUsage {
        let (last_used_at, last_used_from) = if other.last_used_at >= self.last_used_at {
            (
                other.last_used_at,
                other.last_used_from.or(self.last_used_from),
            )
        } else {
            (
                self.last_used_at,
                self.last_used_from.or(other.last_used_from),
            )
        };
        TokenUsage {
            first_used_at: self.first_used_at.min(other.first_used_at),
            last_used_at,
            last_used_from,
            count: self.count + other.count,
        }
    }

    /// The token's stored record, if it was ever used (an unreadable record
    /// counts as none: usage is informative).
    pub fn stored(store: &EventStore, token_id: TokenId) -> Result<Option<TokenUsage>, StoreError> {
        let Some(bytes) = store.usage(*token_id.as_uuid().as_bytes())? else {
            return Ok(None);
        };
        Ok(serde_json::from_slice(&bytes).ok())
    }

    /// Writes the token's record (replacing the stored one).
    pub fn store(&self, store: &EventStore, token_id: TokenId) -> Result<(), StoreError> {
        store.put_usage(
            *token_id.as_uuid().as_bytes(),
            &serde_json::to_vec(self).expect("usage records serialise"),
        )
    }
}
