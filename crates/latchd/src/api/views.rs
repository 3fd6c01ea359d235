//! What the API returns for accounts, tokens and actors: plain JSON views
//! of the projection, never a secret.

use chrono::{DateTime, Utc};
use latch_core::{Account, AccountStatus, Actor, State, Token};
use serde::Serialize;
use utoipa::ToSchema;

use crate::usage_book::TokenUsage;

#[derive(Debug, Serialize, ToSchema)]
pub struct ActorView {
    /// `token` or `system`.
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
}

impl From<Actor> for ActorView {
    fn from(actor: Actor) -> Self {
        match actor {
            Actor::System => ActorView {
                kind: "system",
                account_id: None,
                token_id: None,
            },
            Actor::Token {
                account_id,
                token_id,
            } => ActorView {
                kind: "token",
                account_id: Some(account_id.to_string()),
                token_id: Some(token_id.to_string()),
            },
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountView {
    pub id: String,
    pub name: String,
    pub role: String,
    pub description: String,
    /// `active`, `disabled` or `deleted`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub created_by: ActorView,
    pub updated_at: DateTime<Utc>,
    /// For `If-Match`.
    pub version: u64,
    /// What the role grants now.
    pub permissions: Vec<String>,
}

impl AccountView {
    pub fn of(account: &Account, state: &State) -> Self {
        let (status, disabled_reason, status_since) = match &account.status {
            AccountStatus::Active => ("active", None, None),
            AccountStatus::Disabled { reason, since } => {
                ("disabled", Some(reason.clone()), Some(*since))
            }
            AccountStatus::Deleted { since } => ("deleted", None, Some(*since)),
        };
        AccountView {
            id: account.id.to_string(),
            name: account.name.to_string(),
            role: account.role.to_string(),
            description: account.description.clone(),
            status,
            disabled_reason,
            status_since,
            created_at: account.created_at,
            created_by: account.created_by.into(),
            updated_at: account.updated_at,
            version: account.version,
            permissions: state
                .role(&account.role)
                .map(|r| r.permissions.iter().map(ToString::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Scopes ∩ the account's role now; empty unless the token is active.
    pub effective_permissions: Vec<String>,
    /// `active`, `expired`, `revoked` or `suspended` (account disabled or deleted).
    pub status: &'static str,
    pub issued_at: DateTime<Utc>,
    pub issued_by: ActorView,
    /// `null`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_cidrs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_by: Option<ActorView>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoke_reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_to: Option<String>,
    /// Last accepted use, at latchd or at any verifier that reports usage
    /// (verifiers report every few seconds); `null`: never used.
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
    /// Accepted uses recorded.
    pub use_count: u64,
    pub version: u64,
}

impl TokenView {
    pub fn of(token: &Token, state: &State, now: DateTime<Utc>, usage: Option<TokenUsage>) -> Self {
        let account_active = state
            .account(token.account_id)
            .is_some_and(Account::is_active);
        let status = if token.revoked.is_some() {
            "revoked"
        } else if token.is_expired_at(now) {
            "expired"
        } else if !account_active {
            "suspended"
        } else {
            "active"
        };
        let effective = if status == "active" {
            state
                .account(token.account_id)
                .and_then(|a| state.role(&a.role))
                .map(|role| {
                    token
                        .scopes
                        .intersect(&role.permissions)
                        .iter()
                        .map(ToString::to_string)
                        .collect()
                })
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        TokenView {
            id: token.id.to_string(),
            account_id: token.account_id.to_string(),
            name: token.name.clone(),
            scopes: token.scopes.iter().map(ToString::to_string).collect(),
            effective_permissions: effective,
            status,
            issued_at: token.issued_at,
            issued_by: token.issued_by.into(),
            expires_at: token.expires_at,
            allowed_cidrs: token
                .allowed_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
            revoked_at: token.revoked.as_ref().map(|r| r.at),
            revoked_by: token.revoked.as_ref().map(|r| r.by.into()),
            revoke_reason: token.revoked.as_ref().map(|r| r.reason.clone()),
            rotated_from: token.rotated_from.map(|t| t.to_string()),
            rotated_to: token.rotated_to.map(|t| t.to_string()),
            last_used_at: usage.map(|u| u.last_used_at),
            last_used_from: usage.and_then(|u| u.last_used_from).map(|a| a.to_string()),
            use_count: usage.map_or(0, |u| u.count),
            version: token.version,
        }
    }
}
