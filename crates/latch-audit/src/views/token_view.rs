//! `TokenView`: a token's metadata as the API and the audit tools print
//! it, at a given moment. Never its secret.

use chrono::{DateTime, Utc};
use latch_core::{State, Token};
use serde::Serialize;
use utoipa::ToSchema;

use crate::views::ActorView;
use crate::token_usage::TokenUsage;

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    pub id: String,
    pub account_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// Scopes ∩ the account's role at that moment; empty unless the token
    /// is active.
    pub effective_permissions: Vec<String>,
    /// `active`, `expired`, `revoked` or `suspended` (account disabled or deleted).
    pub status: &'static str,
    pub issued_at: DateTime<Utc>,
    pub issued_by: ActorView,
    /// `null`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// When policy wants it rotated (`rotation_period` after issue), for a
    /// live token not yet rotated under a policy with a rotation period.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_due_at: Option<DateTime<Utc>>,
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
    /// The token it was exchanged from (`POST /v1/token-exchange`): it is
    /// revoked with it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// The trust policy it was exchanged under, for an OIDC workload
    /// identity token.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trust_policy: Option<String>,
    /// How the token was used (absent from a replayed past state: usage
    /// is recorded as it happens, not as events).
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub usage: Option<UsageView>,
    pub version: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageView {
    /// Last accepted use, at latchd or at any verifier that reports usage
    /// (verifiers report every few seconds); `null`: never used.
    pub last_used_at: Option<DateTime<Utc>>,
    pub last_used_from: Option<String>,
    /// The verifier that reported the last use, as it names itself
    /// (absent when latchd itself accepted the token).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_reported_by: Option<String>,
    /// Accepted uses recorded.
    pub use_count: u64,
}

impl UsageView {
    pub fn of(usage: Option<TokenUsage>) -> Self {
        UsageView {
            last_used_at: usage.map(|u| u.last_used_at),
            last_used_from: usage.and_then(|u| u.last_used_from).map(|a| a.to_string()),
            last_reported_by: usage
                .and_then(|u| u.last_reported_by)
                .map(|r| r.to_string()),
            use_count: usage.map_or(0, |u| u.count),
        }
    }
}

impl TokenView {
    /// The token as `state` holds it, its status and effective permissions
    /// judged at `at`; with its usage when `usage` is `Some` (holding the
    /// token's record, `None` if it was never used).
    pub fn of(
        token: &Token,
        state: &State,
        at: DateTime<Utc>,
        usage: Option<Option<TokenUsage>>,
    ) -> Self {
        let status = state.token_status(token, at);
        TokenView {
            id: token.id.to_string(),
            account_id: token.account_id.to_string(),
            name: token.name.clone(),
            scopes: token.scopes.iter().map(ToString::to_string).collect(),
            effective_permissions: state
                .effective_permissions(token, at)
                .iter()
                .map(ToString::to_string)
                .collect(),
            status: status.as_str(),
            issued_at: token.issued_at,
            issued_by: ActorView::named(token.issued_by, state),
            expires_at: token.expires_at,
            rotation_due_at: state.rotation_due_at(token, at),
            allowed_cidrs: token
                .allowed_cidrs
                .iter()
                .map(ToString::to_string)
                .collect(),
            revoked_at: token.revoked.as_ref().map(|r| r.at),
            revoked_by: token
                .revoked
                .as_ref()
                .map(|r| ActorView::named(r.by, state)),
            revoke_reason: token.revoked.as_ref().map(|r| r.reason.clone()),
            rotated_from: token.rotated_from.map(|t| t.to_string()),
            rotated_to: token.rotated_to.map(|t| t.to_string()),
            parent: token.parent.map(|t| t.to_string()),
            trust_policy: token.trust_policy.map(|p| p.to_string()),
            usage: usage.map(UsageView::of),
            version: token.version,
        }
    }
}
