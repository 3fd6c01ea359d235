//! Decisions on tokens: issue, revoke (one or a rotation family), rotate.

use chrono::{DateTime, Utc};

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::{AccountId, TokenId};
use crate::permission_set::PermissionSet;
use crate::policy::PolicySettings;
use crate::role::RoleName;
use crate::span::Span;
use crate::state::State;
use crate::token::Token;
use crate::token_digest::TokenDigest;
use crate::ttl::Ttl;
use ipnet::IpNet;

use super::authority::Authority;
use super::free_text::check_text;
use super::granted_scopes::granted_scopes;
use super::state_lookups::{existing_token, usable_account};
use super::token_limit::within_token_limit;

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of Command::IssueToken"
)]
pub(super) fn issue_token(
    state: &State,
    authority: &Authority<'_>,
    now: DateTime<Utc>,
    account_id: AccountId,
    token_id: TokenId,
    name: &str,
    scopes: Option<&PermissionSet>,
    ttl: Option<Ttl>,
    allowed_cidrs: &[IpNet],
    digest: &TokenDigest,
) -> Result<Vec<Event>, DomainError> {
    let account = usable_account(state, account_id)?;
    if state.token(token_id).is_some() {
        return Err(DomainError::TokenIdTaken(token_id));
    }
    if state.token_by_digest(digest).is_some() {
        // A CSPRNG collision or a replayed digest: refuse either way.
        return Err(DomainError::TokenIdTaken(token_id));
    }
    check_text("name", name, true)?;
    let scopes = granted_scopes(state, authority, account, scopes)?;
    let policy = state.effective_policy(&account.role);
    let layer = |pick: fn(&PolicySettings) -> bool| policy_layer(state, &account.role, pick);
    let expires_at = match ttl.unwrap_or(Ttl::For(policy.default_ttl)) {
        Ttl::For(ttl) => {
            if let Some(max_ttl) = policy.max_ttl
                && ttl > max_ttl
            {
                return Err(DomainError::PolicyViolation {
                    policy: "max_ttl",
                    value: max_ttl.to_string(),
                    layer: layer(|p| p.max_ttl.is_some()),
                    detail: format!("ttl {ttl} is longer than allowed"),
                });
            }
            Some(now + ttl.to_chrono())
        }
        Ttl::Never => {
            if policy.require_expiry {
                return Err(DomainError::PolicyViolation {
                    policy: "require_expiry",
                    value: "true".into(),
                    layer: layer(|p| p.require_expiry.is_some()),
                    detail: "a token that never expires is not allowed".into(),
                });
            }
            if let Some(max_ttl) = policy.max_ttl {
                return Err(DomainError::PolicyViolation {
                    policy: "max_ttl",
                    value: max_ttl.to_string(),
                    layer: layer(|p| p.max_ttl.is_some()),
                    detail: "a token that never expires is longer than allowed".into(),
                });
            }
            None
        }
    };
    within_token_limit(state, account, &policy, now, || {
        layer(|p| p.max_tokens_per_account.is_some())
    })?;
    Ok(vec![Event::TokenIssued {
        token_id,
        account_id,
        name: name.to_owned(),
        scopes,
        digest: *digest,
        expires_at,
        allowed_cidrs: allowed_cidrs.to_vec(),
        rotated_from: None,
        parent: None,
        oidc: None,
    }])
}

pub(super) fn revoke_token(
    state: &State,
    authority: &Authority<'_>,
    token_id: TokenId,
    reason: &str,
) -> Result<Vec<Event>, DomainError> {
    revoke(state, authority, token_id, reason, |token| vec![token])
}

/// Revokes the token and every live token of its rotation family: what a
/// leak calls for.
pub(super) fn revoke_token_family(
    state: &State,
    authority: &Authority<'_>,
    token_id: TokenId,
    reason: &str,
) -> Result<Vec<Event>, DomainError> {
    revoke(state, authority, token_id, reason, |token| {
        rotation_family(state, token)
    })
}

/// Revokes the live ones of `tokens(token)`; an error if none is live.
fn revoke<'s>(
    state: &'s State,
    authority: &Authority<'_>,
    token_id: TokenId,
    reason: &str,
    tokens: impl FnOnce(&'s Token) -> Vec<&'s Token>,
) -> Result<Vec<Event>, DomainError> {
    let token = authority.token_to_act_on(state, token_id)?;
    check_text("reason", reason, false)?;
    let revoked = tokens(token);
    if revoked.iter().all(|t| t.revoked.is_some()) {
        return Err(DomainError::TokenRevoked(token_id));
    }
    let mut events: Vec<Event> = revoked
        .iter()
        .filter(|t| t.revoked.is_none())
        .map(|t| Event::TokenRevoked {
            token_id: t.id,
            account_id: t.account_id,
            reason: reason.to_owned(),
        })
        .collect();
    for token in &revoked {
        events.extend(revoke_descendants(state, token.id));
    }
    Ok(events)
}

/// `token.revoked` for every live token exchanged from `parent`, its
/// children's children included (each naming `parent`, the token whose end
/// ends them): a child never outlives what it came from.
pub(super) fn revoke_descendants(state: &State, parent: TokenId) -> Vec<Event> {
    state
        .descendants(parent)
        .into_iter()
        .filter(|t| t.revoked.is_none())
        .map(|t| Event::TokenRevoked {
            token_id: t.id,
            account_id: t.account_id,
            reason: format!("exchanged from token {parent}, which was revoked or rotated"),
        })
        .collect()
}

/// Issues the successor with the same scopes and cuts the old token to
/// `now + grace`.
pub(super) fn rotate_token(
    state: &State,
    authority: &Authority<'_>,
    now: DateTime<Utc>,
    token_id: TokenId,
    successor_id: TokenId,
    successor_digest: &TokenDigest,
    grace: Option<Span>,
) -> Result<Vec<Event>, DomainError> {
    let token = existing_token(state, token_id)?;
    if let Some(successor) = token.rotated_to {
        return Err(DomainError::TokenAlreadyRotated {
            token: token_id,
            successor,
        });
    }
    if token.revoked.is_some() {
        return Err(DomainError::TokenRevoked(token_id));
    }
    if token.parent.is_some() {
        // Its successor could outlive the parent; a child is short-lived:
        // its holder exchanges the parent again.
        return Err(DomainError::NotApplicable {
            token: token_id,
            event: "token.rotated",
            why: "a child token is not rotated: exchange its parent again",
        });
    }
    if let Some(at) = token.expires_at
        && now >= at
    {
        return Err(DomainError::TokenExpired {
            token: token_id,
            at,
        });
    }
    let account = usable_account(state, token.account_id)?;
    if state.token(successor_id).is_some() || state.token_by_digest(successor_digest).is_some() {
        return Err(DomainError::TokenIdTaken(successor_id));
    }
    // Rotating someone else's token hands the caller a fresh secret
    // with that token's scopes: no escalation that way either.
    authority.may_act_on_token(token)?;
    let policy = state.effective_policy(&account.role);
    let layer = |pick: fn(&PolicySettings) -> bool| policy_layer(state, &account.role, pick);
    // A longer grace would let a leaked token keep itself alive
    // after rotating: the policy's grace is the most there is.
    if let Some(grace) = grace
        && grace.to_chrono() > policy.rotation_grace.to_chrono()
    {
        return Err(DomainError::PolicyViolation {
            policy: "rotation_grace",
            value: policy.rotation_grace.to_string(),
            layer: layer(|p| p.rotation_grace.is_some()),
            detail: format!("grace {grace} is longer than allowed"),
        });
    }
    // The account's token limit holds for rotations too. A token in
    // its rotation grace counts with its successor (one family, one
    // token): the successor replaces it, so a rotation never adds a
    // token, but an account already over its limit must shed one
    // before it rotates.
    if let Some(limit) = policy.max_tokens_per_account {
        let others = state
            .tokens_of(token.account_id)
            .filter(|t| t.id != token_id && t.rotated_to.is_none())
            .filter(|t| t.revoked.is_none() && !t.is_expired_at(now))
            .count();
        if others + 1 > limit as usize {
            return Err(DomainError::PolicyViolation {
                policy: "max_tokens_per_account",
                value: limit.to_string(),
                layer: layer(|p| p.max_tokens_per_account.is_some()),
                detail: format!(
                    "account {} holds {} other live token(s); revoke one before rotating",
                    account.name, others
                ),
            });
        }
    }
    // At most one generation of a family in grace: rotating a
    // successor while its predecessor's grace still runs ends that
    // grace now. Otherwise a leaked token could rotate itself again
    // and again and leave a trail of live tokens behind.
    let superseded = token
        .rotated_from
        .and_then(|id| state.token(id))
        .filter(|p| p.revoked.is_none() && !p.is_expired_at(now))
        .map(|p| Event::TokenRevoked {
            token_id: p.id,
            account_id: p.account_id,
            reason: format!(
                "rotation grace ended early: its successor {token_id} was rotated again"
            ),
        });
    let grace = grace.unwrap_or(policy.rotation_grace);
    // The successor lives as long as the original was meant to,
    // within today's policy (a token that never expired gets the
    // default ttl once policy requires expiry).
    let lifetime = match token.expires_at {
        Some(at) => Some(at - token.issued_at),
        None if policy.require_expiry || policy.max_ttl.is_some() => {
            Some(policy.default_ttl.to_chrono())
        }
        None => None,
    };
    let lifetime = match (lifetime, policy.max_ttl) {
        (Some(lifetime), Some(max_ttl)) => Some(lifetime.min(max_ttl.to_chrono())),
        (lifetime, _) => lifetime,
    };
    let mut events = vec![
        Event::TokenIssued {
            token_id: successor_id,
            account_id: token.account_id,
            name: token.name.clone(),
            scopes: token.scopes.clone(),
            digest: *successor_digest,
            expires_at: lifetime.map(|lifetime| now + lifetime),
            allowed_cidrs: token.allowed_cidrs.clone(),
            rotated_from: Some(token_id),
            parent: None,
            oidc: None,
        },
        Event::TokenRotated {
            token_id,
            account_id: token.account_id,
            successor_id,
            expires_at: token.expires_at.map_or(now + grace.to_chrono(), |at| {
                at.min(now + grace.to_chrono())
            }),
        },
    ];
    events.extend(superseded);
    // Children of the rotated-out token end now, not at the end of its
    // grace: a pipeline exchanges its new token for new children.
    events.extend(revoke_descendants(state, token_id));
    Ok(events)
}

/// Where a policy value comes from, for error messages.
fn policy_layer(state: &State, role: &RoleName, set_in: fn(&PolicySettings) -> bool) -> String {
    match state.role_policy(role) {
        Some(layer) if set_in(layer) => format!("for role {role}"),
        _ if set_in(state.global_policy()) => "globally".to_owned(),
        _ => "by default".to_owned(),
    }
}

/// The token's rotation family: every token it was rotated from or to,
/// transitively, itself included, oldest first.
fn rotation_family<'s>(state: &'s State, token: &'s Token) -> Vec<&'s Token> {
    let mut oldest = token;
    while let Some(earlier) = oldest.rotated_from.and_then(|id| state.token(id)) {
        oldest = earlier;
    }
    super::leaks::successors_from(state, oldest)
}
