//! `/v1/accounts/{id}/tokens`, `/v1/tokens/...`: API tokens.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use chrono::{DateTime, Utc};
use latch_core::{
    Command, Event, IpNet, PermissionSet, Span, TokenId, TokenSecret, Ttl, api_permission,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::routes::accounts::parse_account_id;
use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::command_headers::IdempotencyKey;
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;
use crate::api::extractors::submit::{Acting, Submission};
use crate::command_outcome::CommandReceipt;
use latch_audit::TokenView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueToken {
    pub name: String,
    /// A subset of the account's role; default: the role's permissions now.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Lifetime such as `30d`, or `never` where policy allows tokens that
    /// do not expire; default: the policy's `default_ttl`.
    #[serde(default)]
    pub ttl: Option<String>,
    /// Source addresses allowed to use the token (IPv4/IPv6 CIDRs); default: any.
    #[serde(default)]
    pub allowed_cidrs: Option<Vec<String>>,
}

/// The one response that ever contains a token secret. No `Debug`, so it
/// cannot end up in a log line by accident.
#[derive(Serialize, ToSchema)]
pub struct IssuedToken {
    /// The token's public handle: log and reference this.
    pub id: String,
    /// The secret, shown once: store it now.
    pub token: String,
    pub account_id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `null`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub allowed_cidrs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotated_from: Option<String>,
    /// For a rotation: when the old token stops working.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeToken {
    #[serde(default)]
    pub reason: Option<String>,
    /// Also revoke every live token of its rotation family (the tokens it
    /// was rotated from and to): what a leak calls for, since a leaked
    /// token may have rotated itself.
    #[serde(default)]
    pub family: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateToken {
    /// How long the old token keeps working, e.g. `1h`; default: the policy's `rotation_grace`.
    #[serde(default)]
    pub grace: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenList {
    pub tokens: Vec<TokenView>,
}

pub fn parse_token_id(text: &str) -> Result<TokenId, Problem> {
    text.parse()
        .map_err(|_| Problem::not_found(format!("no token {text:?}: token ids are UUIDs")))
}

fn parse_span(field: &str, text: &str) -> Result<Span, Problem> {
    Span::parse(text).map_err(|e| Problem::invalid(format!("{field}: {e}")))
}

fn token_view(app: &AppState, id: TokenId) -> Result<TokenView, Problem> {
    let state = app.commands.state();
    let token = state
        .token(id)
        .ok_or_else(|| Problem::not_found(format!("token {id} not found")))?;
    Ok(TokenView::of(
        token,
        &state,
        app.clock.now(),
        Some(app.usage.get(id)),
    ))
}

/// Turns a receipt holding a `token.issued` into the response, with the
/// secret: fresh, or remembered for an idempotent retry.
fn issued_response(
    app: &AppState,
    submission: &Submission<'_>,
    receipt: &CommandReceipt,
    fresh: TokenSecret,
) -> Result<(StatusCode, HeaderMap, Json<IssuedToken>), Problem> {
    let mut issued = None;
    let mut previous_expires_at = None;
    for event in &receipt.events {
        match &event.envelope.event {
            Event::TokenIssued {
                token_id,
                account_id,
                name,
                scopes,
                expires_at,
                allowed_cidrs,
                rotated_from,
                ..
            } => {
                issued = Some((
                    *token_id,
                    *account_id,
                    name.clone(),
                    scopes.clone(),
                    *expires_at,
                    allowed_cidrs.clone(),
                    *rotated_from,
                ));
            }
            Event::TokenRotated { expires_at, .. } => previous_expires_at = Some(*expires_at),
            _ => {}
        }
    }
    let (token_id, account_id, name, scopes, expires_at, allowed_cidrs, rotated_from) =
        issued.ok_or_else(|| Problem::internal("the command recorded no token.issued event"))?;
    let secret = if receipt.replayed {
        let remembered = submission
            .scoped_key()
            .and_then(|key| app.secrets.recall(&key, token_id));
        remembered.ok_or_else(|| {
            Problem::conflict(format!(
                "token {token_id} was already issued for this Idempotency-Key and its secret is no longer held; \
                 rotate it (POST /v1/tokens/{token_id}/rotate) to get a new secret"
            ))
        })?
    } else {
        if let Some(key) = submission.scoped_key() {
            app.secrets.remember(key, token_id, fresh.clone());
        }
        fresh
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/tokens/{token_id}")).expect("ascii"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    let status = if receipt.replayed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let body = IssuedToken {
        id: token_id.to_string(),
        token: secret.expose().to_owned(),
        account_id: account_id.to_string(),
        name,
        scopes: scopes.iter().map(ToString::to_string).collect(),
        expires_at,
        allowed_cidrs: allowed_cidrs.iter().map(ToString::to_string).collect(),
        rotated_from: rotated_from.map(|t| t.to_string()),
        previous_expires_at,
    };
    tracing::info!(token_id = %body.id, account_id = %body.account_id, replayed = receipt.replayed, "token secret handed out");
    Ok((status, headers, Json(body)))
}

/// Issue a token for an account. The secret is in this response only.
#[utoipa::path(post, path = "/v1/accounts/{id}/tokens", tag = "tokens", request_body = IssueToken,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = IssuedToken), (status = 200, body = IssuedToken, description = "Idempotent retry, secret still held"),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn issue(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<IssueToken>,
) -> Result<(StatusCode, HeaderMap, Json<IssuedToken>), Problem> {
    let account_id = parse_account_id(&id)?;
    let request = body.value;
    let scopes = request
        .scopes
        .map(|s| PermissionSet::parse(&s).map_err(|e| Problem::invalid(format!("scopes: {e}"))))
        .transpose()?;
    let ttl = request
        .ttl
        .as_deref()
        .map(|t| {
            t.parse::<Ttl>()
                .map_err(|e| Problem::invalid(format!("ttl: {e}, or \"never\"")))
        })
        .transpose()?;
    let allowed_cidrs = request
        .allowed_cidrs
        .unwrap_or_default()
        .iter()
        .map(|c| {
            c.parse::<IpNet>().map_err(|_| {
                Problem::invalid(format!(
                    "allowed_cidrs: {c:?} is not a CIDR such as 10.0.0.0/8 or 2001:db8::/32"
                ))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let secret = TokenSecret::generate(&mut rand::rng());
    let command = Command::IssueToken {
        account_id,
        token_id: TokenId::new(),
        name: request.name,
        scopes,
        ttl,
        allowed_cidrs,
        digest: secret.digest(),
    };
    let submission = acting.submission(key, body.fingerprint, None);
    let receipt = submission.submit(&acting.app, command).await?;
    issued_response(&acting.app, &submission, &receipt, secret)
}

/// Filters for listing tokens.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListTokens {
    /// Only live tokens (not revoked or expired) issued before and not used
    /// within this span, e.g. `30d`: stale tokens to clean up.
    pub unused_since: Option<String>,
}

/// List an account's tokens (metadata only).
#[utoipa::path(get, path = "/v1/accounts/{id}/tokens", tag = "tokens", params(("id" = String, Path), ListTokens),
    responses((status = 200, body = TokenList), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ListTokens>, QueryRejection>,
) -> Result<Json<TokenList>, Problem> {
    caller.require(&api_permission::TOKENS_READ)?;
    let Query(filter) = query.map_err(|e| Problem::invalid(format!("query: {}", e.body_text())))?;
    let now = app.clock.now();
    let cutoff = filter
        .unused_since
        .as_deref()
        .map(|s| parse_span("unused_since", s))
        .transpose()?
        .map(|span| now - span.to_chrono());
    let account_id = parse_account_id(&id)?;
    let state = app.commands.state();
    if state.account(account_id).is_none() {
        return Err(Problem::not_found(format!(
            "account {account_id} not found"
        )));
    }
    let tokens = state
        .tokens_of(account_id)
        .filter_map(|token| {
            let usage = app.usage.get(token.id);
            let keep = cutoff.is_none_or(|cutoff| {
                token.revoked.is_none()
                    && !token.is_expired_at(now)
                    && token.issued_at <= cutoff
                    && usage.is_none_or(|u| u.last_used_at < cutoff)
            });
            keep.then(|| TokenView::of(token, &state, now, Some(usage)))
        })
        .collect();
    Ok(Json(TokenList { tokens }))
}

/// Read a token's metadata. A token may always read itself.
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens", params(("id" = String, Path)),
    responses((status = 200, body = TokenView), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<TokenView>, Problem> {
    let token_id = if id == "self" {
        caller.token_id
    } else {
        parse_token_id(&id)?
    };
    caller.require_or_self(&api_permission::TOKENS_READ, token_id)?;
    Ok(Json(token_view(&app, token_id)?))
}

/// Revoke a token (with `family: true`, also every token it was rotated
/// from or to): every verifier rejects it from now on. A token may revoke
/// itself; revoking another needs its scopes.
#[utoipa::path(post, path = "/v1/tokens/{id}/revoke", tag = "tokens", request_body = RevokeToken,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = TokenView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn revoke(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<RevokeToken>,
) -> Result<Json<TokenView>, Problem> {
    let token_id = if id == "self" {
        acting.caller.token_id
    } else {
        parse_token_id(&id)?
    };
    let reason = body.value.reason.unwrap_or_default();
    let command = if body.value.family.unwrap_or(false) {
        Command::RevokeTokenFamily { token_id, reason }
    } else {
        Command::RevokeToken { token_id, reason }
    };
    let submission = acting.submission(key, body.fingerprint, None);
    submission.submit(&acting.app, command).await?;
    Ok(Json(token_view(&acting.app, token_id)?))
}

async fn rotate_token(
    acting: &Acting,
    token_id: TokenId,
    key: Option<String>,
    body: JsonBody<RotateToken>,
) -> Result<(StatusCode, HeaderMap, Json<IssuedToken>), Problem> {
    let grace = body
        .value
        .grace
        .as_deref()
        .map(|g| parse_span("grace", g))
        .transpose()?;
    let secret = TokenSecret::generate(&mut rand::rng());
    let command = Command::RotateToken {
        token_id,
        successor_id: TokenId::new(),
        successor_digest: secret.digest(),
        grace,
    };
    let submission = acting.submission(key, body.fingerprint, None);
    let receipt = submission.submit(&acting.app, command).await?;
    issued_response(&acting.app, &submission, &receipt, secret)
}

/// Rotate a token: a successor with the same scopes, and the old token cut
/// to `now + grace`, in one atomic append.
#[utoipa::path(post, path = "/v1/tokens/{id}/rotate", tag = "tokens", request_body = RotateToken,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = IssuedToken), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<RotateToken>,
) -> Result<(StatusCode, HeaderMap, Json<IssuedToken>), Problem> {
    let token_id = parse_token_id(&id)?;
    rotate_token(&acting, token_id, key, body).await
}

/// Rotate the calling token itself: what a pipeline runs on a schedule.
#[utoipa::path(post, path = "/v1/tokens/self/rotate", tag = "tokens", request_body = RotateToken,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = IssuedToken), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn rotate_self(
    acting: Acting,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<RotateToken>,
) -> Result<(StatusCode, HeaderMap, Json<IssuedToken>), Problem> {
    let token_id = acting.caller.token_id;
    rotate_token(&acting, token_id, key, body).await
}
