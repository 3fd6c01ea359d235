//! `latch audit state --at`: the replayed state as a stream of entries
//! (the moment, then roles, accounts and tokens), each token judged at that
//! moment: its status and its effective permissions then.

use chrono::{DateTime, Utc};
use latch_core::{Role, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::AccountView;
use crate::replay::Replayed;
use crate::views::TokenView;

/// One line of `GET /v1/audit/state` (NDJSON) and of
/// `latch audit state --output ndjson`, tagged by `kind`.
// Entries are handed out one at a time and serialised at once: the size
// of the largest variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StateEntry {
    /// First: the moment the state is at.
    Moment {
        at: DateTime<Utc>,
        /// The last event folded in (0: none yet).
        position: u64,
        events: u64,
    },
    Role(RoleView),
    Account(AccountView),
    Token(TokenAt),
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RoleView {
    pub name: String,
    pub builtin: bool,
    pub permissions: Vec<String>,
    pub description: String,
}

impl RoleView {
    pub fn of(role: &Role) -> Self {
        RoleView {
            name: role.name.to_string(),
            builtin: role.builtin,
            permissions: role.permissions.iter().map(ToString::to_string).collect(),
            description: role.description.clone(),
        }
    }
}

/// A token at the moment, with its account's name.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenAt {
    pub account_name: String,
    #[serde(flatten)]
    pub token: TokenView,
}

/// Which entries to give.
#[derive(Debug, Clone, Copy, Default)]
pub struct StateScope {
    /// Only active tokens (and only active accounts).
    pub active_only: bool,
}

/// Hands each entry of the replayed state to `each`, in order: the moment,
/// roles by name, accounts by creation, each account's tokens by issue.
/// Stops when `each` says so.
pub fn state_entries(
    replayed: &Replayed,
    scope: StateScope,
    mut each: impl FnMut(StateEntry) -> bool,
) {
    let state = &replayed.state;
    let at = replayed.at;
    let go_on = each(StateEntry::Moment {
        at,
        position: replayed.position.get(),
        events: replayed.events,
    }) && state
        .roles()
        .all(|role| each(StateEntry::Role(RoleView::of(role))))
        && state
            .accounts()
            .filter(|a| !scope.active_only || a.is_active())
            .all(|account| each(StateEntry::Account(AccountView::of(account, state))));
    if !go_on {
        return;
    }
    for account in state.accounts() {
        for token in state.tokens_of(account.id) {
            if scope.active_only && !state.token_is_live(token, at) {
                continue;
            }
            if !each(StateEntry::Token(token_at(state, token, at))) {
                return;
            }
        }
    }
}

fn token_at(state: &State, token: &latch_core::Token, at: DateTime<Utc>) -> TokenAt {
    TokenAt {
        account_name: state
            .account(token.account_id)
            .map(|a| a.name.to_string())
            .unwrap_or_default(),
        token: TokenView::of(token, state, at, None),
    }
}
