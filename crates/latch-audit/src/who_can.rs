//! `latch audit who-can <permission> --at <time>`: every account and token
//! that held a permission at a moment, and why: which of its role's
//! permissions and which of the token's scopes grant it.

use chrono::{DateTime, Utc};
use latch_core::{Account, Permission, PermissionSet, Token};
use serde::Serialize;
use utoipa::ToSchema;

use crate::replay::Replayed;

/// One line of `GET /v1/audit/who-can` (NDJSON), tagged by `kind`: the
/// moment first, then accounts, then tokens.
#[derive(Debug, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Holder {
    Moment {
        at: DateTime<Utc>,
        position: u64,
        permission: String,
    },
    /// An active account whose role grants the permission: any of its
    /// tokens scoped for it can use it, and an admin can issue one that is.
    Account {
        account_id: String,
        account_name: String,
        role: String,
        /// The role's permissions that cover the one asked about.
        role_grants: Vec<String>,
        /// How many of its tokens could use the permission then.
        holding_tokens: usize,
    },
    /// An active token that could use the permission then.
    Token {
        token_id: String,
        token_name: String,
        account_id: String,
        account_name: String,
        role: String,
        role_grants: Vec<String>,
        /// The token's scopes that cover the permission.
        scope_grants: Vec<String>,
        issued_at: DateTime<Utc>,
        expires_at: Option<DateTime<Utc>>,
        /// Empty: from any source address.
        allowed_cidrs: Vec<String>,
    },
}

/// Hands the holders of `permission` in the replayed state to `each`:
/// the moment, every active account whose role grants it, then every
/// active token whose scopes and role both grant it. Stops when `each`
/// says so.
pub fn who_can(replayed: &Replayed, permission: &Permission, mut each: impl FnMut(Holder) -> bool) {
    let state = &replayed.state;
    let at = replayed.at;
    if !each(Holder::Moment {
        at,
        position: replayed.position.get(),
        permission: permission.to_string(),
    }) {
        return;
    }
    let granting = |account: &Account| {
        account
            .is_active()
            .then(|| state.role(&account.role))
            .flatten()
            .map(|role| grants(&role.permissions, permission))
            .filter(|grants| !grants.is_empty())
    };
    // As `Principal::allows` decides a request: the token's scopes and its
    // account's role must both cover the permission (the role is known to).
    let holds = |token: &Token| token.scopes.covers(permission) && state.token_is_live(token, at);
    // Each granting account with its holding tokens, found once: the
    // accounts are printed first, each with how many, then the tokens.
    let mut tokens: Vec<&Token> = Vec::new();
    let mut accounts: Vec<(&Account, Vec<String>, std::ops::Range<usize>)> = Vec::new();
    for account in state.accounts() {
        let Some(role_grants) = granting(account) else {
            continue;
        };
        let first = tokens.len();
        tokens.extend(state.tokens_of(account.id).filter(|t| holds(t)));
        accounts.push((account, role_grants, first..tokens.len()));
    }
    for (account, role_grants, holding) in &accounts {
        if !each(Holder::Account {
            account_id: account.id.to_string(),
            account_name: account.name.to_string(),
            role: account.role.to_string(),
            role_grants: role_grants.clone(),
            holding_tokens: holding.len(),
        }) {
            return;
        }
    }
    for (account, role_grants, holding) in &accounts {
        for token in &tokens[holding.clone()] {
            if !each(token_holder(account, token, permission, role_grants)) {
                return;
            }
        }
    }
}

fn token_holder(
    account: &Account,
    token: &Token,
    permission: &Permission,
    role_grants: &[String],
) -> Holder {
    Holder::Token {
        token_id: token.id.to_string(),
        token_name: token.name.clone(),
        account_id: account.id.to_string(),
        account_name: account.name.to_string(),
        role: account.role.to_string(),
        role_grants: role_grants.to_vec(),
        scope_grants: grants(&token.scopes, permission),
        issued_at: token.issued_at,
        expires_at: token.expires_at,
        allowed_cidrs: token
            .allowed_cidrs
            .iter()
            .map(ToString::to_string)
            .collect(),
    }
}

/// The members of `set` that cover `permission`.
fn grants(set: &PermissionSet, permission: &Permission) -> Vec<String> {
    set.iter()
        .filter(|held| held.covers(permission))
        .map(ToString::to_string)
        .collect()
}
