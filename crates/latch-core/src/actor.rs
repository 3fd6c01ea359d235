//! `Actor`: who caused an event. Every envelope records one.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::id::{AccountId, TokenId};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    /// Latch itself: the bootstrap, the scheduler.
    System,
    /// A caller authenticated by one of its tokens.
    Token {
        account_id: AccountId,
        token_id: TokenId,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::System => f.write_str("system"),
            Actor::Token {
                account_id,
                token_id,
            } => write!(f, "account {account_id} via token {token_id}"),
        }
    }
}
