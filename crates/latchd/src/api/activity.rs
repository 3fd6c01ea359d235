//! API activity audit and authentication, one layer on every `/v1` route.
//!
//! Each request is authenticated (401 when it cannot be) and recorded —
//! allowed or denied — with time, request id, account and token (when
//! known), method, route, status and remote address. The record is written
//! before the request is processed and completed after it; if it cannot be
//! written the request fails (fail closed, as Vault does).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use latch_core::{AccountId, TokenId};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::caller::Caller;
use crate::api::problem::Problem;
use crate::api::request_id::RequestId;

/// One API request, or one verifier's report of a token's accepted uses
/// (`method` `VERIFY`, `route` `verifier`, `path` the verifier's name,
/// `verifier_uses` the count, `at` the last use), as `GET /v1/audit`
/// returns it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ActivityRecord {
    pub id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    /// The route template, e.g. `/v1/tokens/{id}/revoke`.
    pub route: String,
    pub path: String,
    pub remote_addr: String,
    #[schema(value_type = Option<String>)]
    pub account_id: Option<AccountId>,
    #[schema(value_type = Option<String>)]
    pub token_id: Option<TokenId>,
    /// `None` while the request is being processed (or if latchd died during it).
    pub status: Option<u16>,
    pub duration_us: Option<u64>,
    /// For a verifier's report: how many accepted uses it covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verifier_uses: Option<u64>,
}

impl ActivityRecord {
    /// The audit record of a verifier's report of one token's uses.
    pub fn verifier_use(verifier: &str, account_id: AccountId, used: &latch_bus::TokenUse) -> Self {
        ActivityRecord {
            id: uuid::Uuid::now_v7(),
            at: used.last_at,
            request_id: String::new(),
            method: "VERIFY".into(),
            route: "verifier".into(),
            path: verifier.to_owned(),
            remote_addr: used.last_from.map(|a| a.to_string()).unwrap_or_default(),
            account_id: Some(account_id),
            token_id: Some(used.token_id),
            status: Some(200),
            duration_us: None,
            verifier_uses: Some(used.count),
        }
    }

    /// Writes the record to the store's activity column family.
    pub fn store(&self, store: &latch_store::EventStore) -> Result<(), latch_store::StoreError> {
        store.put_activity(
            *self.id.as_bytes(),
            &serde_json::to_vec(self).expect("activity records serialise"),
        )
    }
}

pub async fn layer(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |c| {
            c.0
        });
    let authenticated = authenticate(&app, request.headers(), remote.ip());
    let mut record = ActivityRecord {
        id: uuid::Uuid::now_v7(),
        at: app.clock.now(),
        request_id: request
            .extensions()
            .get::<RequestId>()
            .map(|r| r.0.clone())
            .unwrap_or_default(),
        method: request.method().to_string(),
        route: request.extensions().get::<MatchedPath>().map_or_else(
            || request.uri().path().to_owned(),
            |m| m.as_str().to_owned(),
        ),
        path: request.uri().path().to_owned(),
        remote_addr: remote.ip().to_string(),
        account_id: authenticated.as_ref().ok().map(|c| c.account_id),
        token_id: authenticated.as_ref().ok().map(|c| c.token_id),
        status: None,
        duration_us: None,
        verifier_uses: None,
    };
    if let Err(problem) = write(&app, &record) {
        return problem.into_response();
    }
    let response = match authenticated {
        Ok(caller) => {
            app.usage
                .record(caller.token_id, record.at, record.at, Some(remote.ip()), 1);
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => {
            tracing::info!(route = %record.route, reason = %problem.detail, "request not authenticated");
            problem.into_response()
        }
    };
    record.status = Some(response.status().as_u16());
    record.duration_us = Some(started.elapsed().as_micros() as u64);
    match write(&app, &record) {
        Ok(()) => response,
        Err(problem) => problem.into_response(),
    }
}

fn write(app: &AppState, record: &ActivityRecord) -> Result<(), Problem> {
    record.store(app.commands.store()).map_err(|error| {
        tracing::error!(%error, "could not write the API activity record; refusing the request");
        Problem::unavailable("the audit trail cannot be written, so the request was refused")
    })
}

fn authenticate(app: &AppState, headers: &HeaderMap, source: IpAddr) -> Result<Caller, Problem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthenticated("missing Authorization: Bearer <token>"))?;
    let value = value
        .to_str()
        .map_err(|_| Problem::unauthenticated("the Authorization header is not text"))?;
    let token = value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .ok_or_else(|| {
            Problem::unauthenticated("the Authorization header must be: Bearer <token>")
        })?
        .trim();
    let state = app.commands.state();
    let principal = latch_core::authenticate(&state, token, app.clock.now(), Some(source))
        .map_err(|rejection| Problem::unauthenticated(rejection.to_string()))?;
    Ok(Caller {
        account_id: principal.account_id,
        token_id: principal.token_id,
        permissions: principal.effective_permissions(),
    })
}
