//! Decisions on child tokens: a live token trades itself for a short-lived
//! token of its own account that can do no more than it, lives no longer,
//! and is revoked with it (`tokens::revoke_token`, `tokens::rotate_token`
//! revoke every descendant in the same append).

use chrono::{DateTime, Utc};

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::TokenId;
use crate::permission_set::PermissionSet;
use crate::span::Span;
use crate::state::State;
use crate::token_digest::TokenDigest;

use super::free_text::check_text;
use super::permission_list::listed;
use super::state_lookups::existing_token;
use super::token_limit::within_token_limit;

/// How long a child token lives when the caller does not say.
pub const CHILD_DEFAULT_TTL: Span = Span::minutes(15);
/// The most live tokens exchanged from one token, its children's children
/// included (counted from the token no other was exchanged from): any token
/// may exchange itself, so without a bound one leaked read-only token could
/// fill the log with children, and children with grandchildren.
pub const MAX_LIVE_DESCENDANTS: usize = 1000;

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of Command::ExchangeToken"
)]
pub(super) fn exchange_token(
    state: &State,
    now: DateTime<Utc>,
    parent_id: TokenId,
    token_id: TokenId,
    digest: &TokenDigest,
    name: Option<&str>,
    scopes: Option<&PermissionSet>,
    ttl: Option<Span>,
) -> Result<Vec<Event>, DomainError> {
    // The actor is the parent (`Requirement::Itself`), and `Authority::of`
    // found it live: revoked, expired or suspended parents never get here.
    let parent = existing_token(state, parent_id)?;
    if state.token(token_id).is_some() || state.token_by_digest(digest).is_some() {
        return Err(DomainError::TokenIdTaken(token_id));
    }
    let name = match name {
        Some(name) => {
            check_text("name", name, true)?;
            name.to_owned()
        }
        None => format!("child of {}", parent.name),
    };
    let mut root = parent;
    while let Some(up) = root.parent.and_then(|id| state.token(id)) {
        root = up;
    }
    let live = state
        .descendants(root.id)
        .into_iter()
        .filter(|t| t.revoked.is_none() && !t.is_expired_at(now))
        .count();
    if live >= MAX_LIVE_DESCENDANTS {
        return Err(DomainError::PolicyViolation {
            policy: "max_live_descendants",
            value: MAX_LIVE_DESCENDANTS.to_string(),
            layer: "built in".into(),
            detail: format!(
                "token {} already has {live} live tokens exchanged from it; revoke some or let them expire",
                root.id
            ),
        });
    }
    let allowed = state.effective_permissions(parent, now);
    let scopes = match scopes {
        Some(scopes) => scopes.clone(),
        None => allowed.clone(),
    };
    if scopes.is_empty() {
        return Err(DomainError::EmptyScopes);
    }
    if !allowed.covers_all(&scopes) {
        return Err(DomainError::ScopeBeyondParent {
            beyond: listed(allowed.not_covered(&scopes)),
        });
    }
    let account = state
        .account(parent.account_id)
        .ok_or(DomainError::AccountNotFound(parent.account_id))?;
    let policy = state.effective_policy(&account.role);
    let asked = ttl.is_some();
    let ttl = ttl.unwrap_or(CHILD_DEFAULT_TTL);
    if let Some(max_ttl) = policy.max_ttl
        && ttl > max_ttl
    {
        return Err(DomainError::PolicyViolation {
            policy: "max_ttl",
            value: max_ttl.to_string(),
            layer: "for this account's role".into(),
            detail: format!("ttl {ttl} is longer than allowed"),
        });
    }
    let mut expires_at = now + ttl.to_chrono();
    if let Some(parent_expires_at) = parent.expires_at
        && expires_at > parent_expires_at
    {
        if asked {
            return Err(DomainError::OutlivesParent { parent_expires_at });
        }
        expires_at = parent_expires_at;
    }
    within_token_limit(state, account, &policy, now, || {
        format!("for role {}", account.role)
    })?;
    Ok(vec![Event::TokenIssued {
        token_id,
        account_id: parent.account_id,
        name,
        scopes,
        digest: *digest,
        expires_at: Some(expires_at),
        // Bound where the parent is: a child never escapes a binding.
        allowed_cidrs: parent.allowed_cidrs.clone(),
        rotated_from: None,
        parent: Some(parent_id),
        oidc: None,
    }])
}
