//! `POST /v1/introspect`: RFC 7662 token introspection, for services that
//! check tokens remotely instead of embedding a verifier.

use axum::Json;
use axum::extract::{Extension, State};
use latch_core::api_permission;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;

/// Holds a token secret: no `Debug`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IntrospectRequest {
    pub token: String,
    /// The address the token was presented from, to apply its `allowed_cidrs`.
    #[serde(default)]
    pub source_ip: Option<String>,
}

/// RFC 7662: only `active` when the token is not active.
#[derive(Debug, Serialize, ToSchema)]
pub struct IntrospectResponse {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_id: Option<String>,
    /// Effective permissions, space-separated.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Expiry, seconds since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
}

/// Check a token as latchd sees it now.
#[utoipa::path(post, path = "/v1/introspect", tag = "tokens", request_body = IntrospectRequest,
    responses((status = 200, body = IntrospectResponse), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn introspect(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    body: JsonBody<IntrospectRequest>,
) -> Result<Json<IntrospectResponse>, Problem> {
    caller.require(&api_permission::TOKENS_INTROSPECT)?;
    let source = body
        .value
        .source_ip
        .as_deref()
        .map(|ip| {
            ip.parse()
                .map_err(|_| Problem::invalid(format!("source_ip {ip:?} is not an IP address")))
        })
        .transpose()?;
    let state = app.commands.state();
    let inactive = IntrospectResponse {
        active: false,
        account_id: None,
        token_id: None,
        scope: None,
        exp: None,
        token_type: None,
    };
    let response =
        match latch_core::authenticate(&state, &body.value.token, app.clock.now(), source) {
            Err(_) => inactive,
            Ok(principal) => IntrospectResponse {
                active: true,
                account_id: Some(principal.account_id.to_string()),
                token_id: Some(principal.token_id.to_string()),
                scope: Some(principal.effective_permissions().to_string()),
                exp: principal.expires_at.map(|at| at.timestamp()),
                token_type: Some("Bearer"),
            },
        };
    Ok(Json(response))
}
