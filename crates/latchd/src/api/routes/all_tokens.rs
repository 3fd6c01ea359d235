//! `GET /v1/tokens`: tokens across every account, for the clean-up and
//! the watch an administrator keeps: stale tokens, tokens about to expire,
//! tokens overdue for rotation.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Extension, Query, State};
use latch_core::{Span, TokenStatus, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::problem::Problem;
use latch_audit::{TokenAt, TokenView};

/// Most tokens one answer lists.
const MAX_LIMIT: usize = 1000;

/// Filters; a token must pass every one given.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AllTokensQuery {
    /// Only this account's tokens (its id; 404 if there is none).
    pub account: Option<String>,
    /// Only live tokens (not revoked, expired or suspended) issued before
    /// and not used within this span, e.g. `30d`: stale tokens.
    pub unused_since: Option<String>,
    /// Only live tokens, not rotated, that expire within this span, e.g.
    /// `7d`.
    pub expiring_within: Option<String>,
    /// Only live tokens whose policy rotation is due now.
    pub rotation_due: Option<bool>,
    /// Only tokens with this status: `active`, `expired`, `revoked`,
    /// `suspended`.
    pub status: Option<String>,
    /// At most this many (default and most: 1000), soonest to expire first.
    pub limit: Option<usize>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AllTokens {
    /// Each with its account's name.
    pub tokens: Vec<TokenAt>,
    /// More tokens matched than `limit`.
    pub truncated: bool,
}

/// List tokens of every account (metadata only), filtered.
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens", params(AllTokensQuery),
    responses((status = 200, body = AllTokens), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 404, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_all(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AllTokensQuery>, QueryRejection>,
) -> Result<Json<AllTokens>, Problem> {
    caller.require(&api_permission::ACCOUNTS_READ)?;
    caller.require(&api_permission::TOKENS_READ)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let span = |field: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                Span::parse(text)
                    .map(|span| span.to_chrono())
                    .map_err(|e| Problem::invalid(format!("{field}: {e}")))
            })
            .transpose()
    };
    let unused_since = span("unused_since", &query.unused_since)?;
    let expiring_within = span("expiring_within", &query.expiring_within)?;
    let status = query
        .status
        .as_deref()
        .map(|text| match text {
            "active" => Ok(TokenStatus::Active),
            "expired" => Ok(TokenStatus::Expired),
            "revoked" => Ok(TokenStatus::Revoked),
            "suspended" => Ok(TokenStatus::Suspended),
            other => Err(Problem::invalid(format!(
                "status {other:?} is not one of active, expired, revoked, suspended"
            ))),
        })
        .transpose()?;
    let only_account = query
        .account
        .as_deref()
        .map(crate::api::routes::accounts::parse_account_id)
        .transpose()?;
    let limit = query.limit.unwrap_or(MAX_LIMIT).clamp(1, MAX_LIMIT);
    let now = app.clock.now();
    let state = app.commands.state();
    let mut matched = Vec::new();
    for account in state
        .accounts()
        .filter(|a| only_account.is_none_or(|id| a.id == id))
    {
        for token in state.tokens_of(account.id) {
            let token_status = state.token_status(token, now);
            let live = state.token_is_live(token, now);
            if status.is_some_and(|s| s != token_status) {
                continue;
            }
            if let Some(within) = expiring_within
                && !(live
                    && token.rotated_to.is_none()
                    && token.expires_at.is_some_and(|at| at <= now + within))
            {
                continue;
            }
            if query.rotation_due == Some(true)
                && !state.rotation_due_at(token, now).is_some_and(|due| due <= now)
            {
                continue;
            }
            let usage = app.usage.get(token.id);
            if let Some(span) = unused_since {
                let cutoff = now - span;
                let stale = live
                    && token.issued_at <= cutoff
                    && usage.is_none_or(|u| u.last_used_at < cutoff);
                if !stale {
                    continue;
                }
            }
            matched.push(TokenAt {
                account_name: account.name.to_string(),
                token: TokenView::of(token, &state, now, Some(usage)),
            });
        }
    }
    // Soonest to expire first; tokens that never expire last.
    matched.sort_by_key(|entry| (entry.token.expires_at.is_none(), entry.token.expires_at));
    let truncated = matched.len() > limit;
    matched.truncate(limit);
    Ok(Json(AllTokens {
        tokens: matched,
        truncated,
    }))
}
