//! Decisions on trust policies and OIDC token exchange: an account trusts
//! some CI platform's identity tokens, and such a token is traded for a
//! short-lived token of the account.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::{AccountId, TokenId, TrustPolicyId};
use crate::permission_set::PermissionSet;
use crate::span::Span;
use crate::state::State;
use crate::token_digest::TokenDigest;
use crate::trust_policy::{
    ClaimPattern, EXCHANGE_DEFAULT_TTL, EXCHANGE_MAX_TTL, MAX_PATTERN, OidcExchange,
};

use super::authority::Authority;
use super::permission_list::listed;
use super::state_lookups::{role_permissions, usable_account};
use super::granted_scopes::granted_scopes;
use super::token_limit::within_token_limit;

/// The issuer as tokens name it: an https URL (http only on loopback, for
/// tests), without a trailing slash, no query or fragment.
fn check_issuer(issuer: &str) -> Result<(), DomainError> {
    let invalid = |why: &str| Err(DomainError::InvalidTrustPolicy(format!("issuer {issuer:?}: {why}")));
    if issuer.len() > MAX_PATTERN {
        return invalid("too long");
    }
    let rest = if let Some(rest) = issuer.strip_prefix("https://") {
        rest
    } else if let Some(rest) = issuer.strip_prefix("http://") {
        let host = rest.split(['/', ':']).next().unwrap_or("");
        if !matches!(host, "127.0.0.1" | "localhost" | "[::1]") {
            return invalid("must be an https:// URL (http:// only on loopback)");
        }
        rest
    } else {
        return invalid("must be an https:// URL, exactly as the tokens' iss");
    };
    if rest.is_empty() || rest.contains(['?', '#', ' ']) || issuer.ends_with('/') {
        return invalid("must be a plain URL without a trailing slash, query or fragment");
    }
    Ok(())
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of Command::AddTrustPolicy"
)]
pub(super) fn add_trust_policy(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
    policy_id: TrustPolicyId,
    issuer: &str,
    audience: &str,
    claims: &BTreeMap<String, ClaimPattern>,
    scopes: Option<&PermissionSet>,
    max_ttl: Option<Span>,
) -> Result<Vec<Event>, DomainError> {
    let account = authority.account_to_act_on(state, account_id)?;
    usable_account(state, account_id)?;
    if state.trust_policy(policy_id).is_some() {
        return Err(DomainError::InvalidTrustPolicy(format!("policy {policy_id} exists")));
    }
    check_issuer(issuer)?;
    if audience.trim().is_empty() || audience.len() > MAX_PATTERN {
        return Err(DomainError::InvalidTrustPolicy(
            "audience must be given (the aud the tokens are made for)".into(),
        ));
    }
    // The audience is often the requester's choice (GitHub Actions lets a
    // workflow pick it): the claims are the boundary. A policy must pin at
    // least one of them to something narrower than "anything".
    if claims.values().all(ClaimPattern::is_wildcard) {
        return Err(DomainError::InvalidTrustPolicy(
            "name at least one claim to match (e.g. sub = repo:acme/deploy:ref:refs/heads/main) that is not just *: any token of the issuer would do otherwise".into(),
        ));
    }
    if let Some(name) = claims.keys().find(|name| name.is_empty() || name.len() > 128) {
        return Err(DomainError::InvalidTrustPolicy(format!("claim name {name:?}")));
    }
    // Whoever may mint through the policy gets these scopes: no more than
    // the one who sets it may grant.
    let scopes = granted_scopes(state, authority, account, scopes)?;
    let max_ttl = max_ttl.unwrap_or(EXCHANGE_DEFAULT_TTL);
    if max_ttl > EXCHANGE_MAX_TTL {
        return Err(DomainError::InvalidTrustPolicy(format!(
            "max_ttl {max_ttl} is longer than {EXCHANGE_MAX_TTL}: exchanged tokens are short-lived"
        )));
    }
    let policy = state.effective_policy(&account.role);
    if let Some(limit) = policy.max_ttl
        && max_ttl > limit
    {
        return Err(DomainError::PolicyViolation {
            policy: "max_ttl",
            value: limit.to_string(),
            layer: format!("for role {}", account.role),
            detail: format!("max_ttl {max_ttl} is longer than allowed"),
        });
    }
    Ok(vec![Event::TrustPolicyAdded {
        policy_id,
        account_id,
        issuer: issuer.to_owned(),
        audience: audience.to_owned(),
        claims: claims.clone(),
        scopes,
        max_ttl,
    }])
}

pub(super) fn remove_trust_policy(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
    policy_id: TrustPolicyId,
) -> Result<Vec<Event>, DomainError> {
    authority.account_to_act_on(state, account_id)?;
    match state.trust_policy(policy_id) {
        Some(policy) if policy.account_id == account_id => Ok(vec![Event::TrustPolicyRemoved {
            policy_id,
            account_id,
        }]),
        _ => Err(DomainError::TrustPolicyNotFound(policy_id)),
    }
}

/// What an OIDC exchange carries besides the new token.
pub(super) struct Presented<'c> {
    pub issuer: &'c str,
    pub audiences: &'c [String],
    pub subject: &'c str,
    pub jti: &'c str,
    pub token_expires_at: DateTime<Utc>,
    pub claims: &'c BTreeMap<String, String>,
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per field of Command::ExchangeOidcToken"
)]
pub(super) fn exchange_oidc_token(
    state: &State,
    now: DateTime<Utc>,
    policy_id: TrustPolicyId,
    token_id: TokenId,
    digest: &TokenDigest,
    scopes: Option<&PermissionSet>,
    ttl: Option<Span>,
    presented: &Presented<'_>,
) -> Result<Vec<Event>, DomainError> {
    let policy = state
        .trust_policy(policy_id)
        .ok_or(DomainError::TrustPolicyNotFound(policy_id))?;
    if policy.issuer != presented.issuer {
        return Err(DomainError::NotTrusted(format!(
            "it was issued by {:?}, the policy trusts {:?}",
            presented.issuer, policy.issuer
        )));
    }
    if !presented.audiences.iter().any(|aud| *aud == policy.audience) {
        return Err(DomainError::NotTrusted(format!(
            "it is not for the audience {:?}",
            policy.audience
        )));
    }
    if let Some(claim) = policy.mismatch(presented.claims) {
        return Err(DomainError::ClaimMismatch {
            claim: claim.to_owned(),
        });
    }
    if presented.jti.is_empty() {
        return Err(DomainError::NotTrusted("it has no jti".into()));
    }
    if state.jti_used(presented.issuer, presented.jti, now) {
        return Err(DomainError::JtiReplayed);
    }
    if presented.token_expires_at <= now {
        return Err(DomainError::NotTrusted("it has expired".into()));
    }
    let account = usable_account(state, policy.account_id)?;
    if state.token(token_id).is_some() || state.token_by_digest(digest).is_some() {
        return Err(DomainError::TokenIdTaken(token_id));
    }
    let role = role_permissions(state, &account.role)?;
    // The policy's scopes as the role allows them today.
    let allowed = policy.scopes.intersect(role);
    let scopes = scopes.cloned().unwrap_or_else(|| allowed.clone());
    if scopes.is_empty() {
        return Err(DomainError::EmptyScopes);
    }
    if !allowed.covers_all(&scopes) {
        return Err(DomainError::ScopeBeyondPolicy {
            beyond: listed(allowed.not_covered(&scopes)),
        });
    }
    let ttl = ttl.unwrap_or(policy.max_ttl.min(EXCHANGE_DEFAULT_TTL));
    if ttl > policy.max_ttl {
        return Err(DomainError::PolicyViolation {
            policy: "max_ttl",
            value: policy.max_ttl.to_string(),
            layer: format!("trust policy {policy_id}"),
            detail: format!("ttl {ttl} is longer than allowed"),
        });
    }
    let limits = state.effective_policy(&account.role);
    if let Some(limit) = limits.max_ttl
        && ttl > limit
    {
        return Err(DomainError::PolicyViolation {
            policy: "max_ttl",
            value: limit.to_string(),
            layer: format!("for role {}", account.role),
            detail: format!("ttl {ttl} is longer than allowed"),
        });
    }
    within_token_limit(state, account, &limits, now, || {
        format!("for role {}", account.role)
    })?;
    let subject: String = presented.subject.chars().take(200).collect();
    Ok(vec![Event::TokenIssued {
        token_id,
        account_id: account.id,
        name: format!("oidc {subject}"),
        scopes,
        digest: *digest,
        expires_at: Some(now + ttl.to_chrono()),
        allowed_cidrs: Vec::new(),
        rotated_from: None,
        parent: None,
        oidc: Some(OidcExchange {
            policy_id,
            issuer: presented.issuer.to_owned(),
            subject,
            jti: presented.jti.chars().take(256).collect(),
            token_expires_at: presented.token_expires_at,
        }),
    }])
}
