//! `/v1/accounts/{id}/trust-policies`: which OIDC tokens (a CI platform's
//! workload identity) may be exchanged for a token of the account at
//! `POST /v1/token-exchange`.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use latch_core::{
    ClaimPattern, Command, PermissionSet, Span, TrustPolicy, TrustPolicyId, api_permission,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::command_headers::IdempotencyKey;
use crate::api::extractors::json_body::JsonBody;
use crate::api::extractors::submit::Acting;
use crate::api::problem::Problem;
use crate::api::routes::accounts::parse_account_id;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTrustPolicy {
    /// The OIDC issuer exactly as tokens carry it in `iss`, e.g.
    /// `https://token.actions.githubusercontent.com` or `https://gitlab.com`.
    pub issuer: String,
    /// The audience tokens must be for (one of their `aud`).
    pub audience: String,
    /// Claim name → pattern (exact text, `*` for any run of characters);
    /// every one must match, and at least one must be more than `*`.
    pub claims: BTreeMap<String, String>,
    /// The most an exchanged token may carry; default: the account's role.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The longest an exchanged token may live, e.g. `15m` (the default),
    /// at most `12h`.
    #[serde(default)]
    pub max_ttl: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrustPolicyView {
    pub id: String,
    pub account_id: String,
    pub issuer: String,
    pub audience: String,
    pub claims: BTreeMap<String, String>,
    pub scopes: Vec<String>,
    pub max_ttl: String,
    pub added_at: DateTime<Utc>,
}

impl TrustPolicyView {
    fn of(policy: &TrustPolicy) -> Self {
        TrustPolicyView {
            id: policy.id.to_string(),
            account_id: policy.account_id.to_string(),
            issuer: policy.issuer.clone(),
            audience: policy.audience.clone(),
            claims: policy
                .claims
                .iter()
                .map(|(name, pattern)| (name.clone(), pattern.to_string()))
                .collect(),
            scopes: policy.scopes.iter().map(ToString::to_string).collect(),
            max_ttl: policy.max_ttl.to_string(),
            added_at: policy.added_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TrustPolicyList {
    pub policies: Vec<TrustPolicyView>,
}

fn parse_policy_id(text: &str) -> Result<TrustPolicyId, Problem> {
    text.parse()
        .map_err(|_| Problem::not_found(format!("no trust policy {text:?}: policy ids are UUIDs")))
}

/// Trust OIDC tokens matching a policy for this account's tokens.
#[utoipa::path(post, path = "/v1/accounts/{id}/trust-policies", tag = "tokens", request_body = AddTrustPolicy,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = TrustPolicyView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_trust_policy(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<AddTrustPolicy>,
) -> Result<(StatusCode, HeaderMap, Json<TrustPolicyView>), Problem> {
    let account_id = parse_account_id(&id)?;
    let request = body.value;
    let claims = request
        .claims
        .iter()
        .map(|(name, pattern)| {
            ClaimPattern::parse(pattern)
                .map(|pattern| (name.clone(), pattern))
                .map_err(|e| Problem::invalid(format!("claims.{name}: {e}")))
        })
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    let scopes = request
        .scopes
        .map(|s| PermissionSet::parse(&s).map_err(|e| Problem::invalid(format!("scopes: {e}"))))
        .transpose()?;
    let max_ttl = request
        .max_ttl
        .as_deref()
        .map(|t| Span::parse(t).map_err(|e| Problem::invalid(format!("max_ttl: {e}"))))
        .transpose()?;
    let policy_id = TrustPolicyId::new();
    let command = Command::AddTrustPolicy {
        account_id,
        policy_id,
        issuer: request.issuer,
        audience: request.audience,
        claims,
        scopes,
        max_ttl,
    };
    let submission = acting.submission(key, body.fingerprint, None);
    let receipt = submission.submit(&acting.app, command).await?;
    // A replay answers with the policy the first request added.
    let policy_id = receipt
        .events
        .iter()
        .find_map(|e| match &e.envelope.event {
            latch_core::Event::TrustPolicyAdded { policy_id, .. } => Some(*policy_id),
            _ => None,
        })
        .unwrap_or(policy_id);
    let state = acting.app.commands.state();
    let policy = state
        .trust_policy(policy_id)
        .ok_or_else(|| Problem::not_found(format!("trust policy {policy_id} was removed since")))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/accounts/{account_id}/trust-policies/{policy_id}"))
            .expect("ascii"),
    );
    let status = if receipt.replayed { StatusCode::OK } else { StatusCode::CREATED };
    Ok((status, headers, Json(TrustPolicyView::of(policy))))
}

/// An account's trust policies.
#[utoipa::path(get, path = "/v1/accounts/{id}/trust-policies", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TrustPolicyList), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_trust_policies(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TrustPolicyList>, Problem> {
    caller.require(&api_permission::TOKENS_READ)?;
    let account_id = parse_account_id(&id)?;
    let state = app.commands.state();
    if state.account(account_id).is_none() {
        return Err(Problem::not_found(format!("account {account_id} not found")));
    }
    let policies = state
        .trust_policies()
        .filter(|p| p.account_id == account_id)
        .map(TrustPolicyView::of)
        .collect();
    Ok(Json(TrustPolicyList { policies }))
}

/// Stop trusting a policy: exchanges under it are refused from now on
/// (tokens already exchanged live out their short lives, or revoke them).
#[utoipa::path(delete, path = "/v1/accounts/{id}/trust-policies/{policy_id}", tag = "tokens",
    params(("id" = String, Path), ("policy_id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_trust_policy(
    acting: Acting,
    Path((id, policy_id)): Path<(String, String)>,
) -> Result<StatusCode, Problem> {
    let account_id = parse_account_id(&id)?;
    let policy_id = parse_policy_id(&policy_id)?;
    let submission = acting.submission(None, String::new(), None);
    submission
        .submit(&acting.app, Command::RemoveTrustPolicy { account_id, policy_id })
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
