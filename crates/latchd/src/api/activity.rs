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
use latch_audit::ActivityRecord;
use latch_core::{AccountId, TokenId};

use crate::api::NatsTransport;
use crate::api::app_state::AppState;
use crate::api::caller::Caller;
use crate::api::problem::Problem;
use crate::api::request_id::RequestId;

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
        remote_addr: if request.extensions().get::<NatsTransport>().is_some() {
            "nats".to_owned()
        } else {
            remote.ip().to_string()
        },
        account_id: match &authenticated {
            Ok(caller) => Some(caller.account_id),
            Err(refused) => refused.presented.map(|(account, _)| account),
        },
        token_id: match &authenticated {
            Ok(caller) => Some(caller.token_id),
            Err(refused) => refused.presented.map(|(_, token)| token),
        },
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
        Err(Refused { problem, .. }) => {
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

/// A request that could not be authenticated, and the token it presented
/// when latch knows it (revoked, expired, suspended, or from a source it may
/// not be used from): investigators want those attempts on the token's record.
struct Refused {
    problem: Problem,
    presented: Option<(AccountId, TokenId)>,
}

impl From<Problem> for Refused {
    fn from(problem: Problem) -> Self {
        Refused {
            problem,
            presented: None,
        }
    }
}

fn authenticate(app: &AppState, headers: &HeaderMap, source: IpAddr) -> Result<Caller, Refused> {
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
        .map_err(|rejection| Refused {
            problem: Problem::unauthenticated(rejection.to_string()),
            presented: latch_core::identify(&state, token)
                .ok()
                .map(|t| (t.account_id, t.id)),
        })?;
    Ok(Caller {
        account_id: principal.account_id,
        token_id: principal.token_id,
        permissions: principal.effective_permissions(),
    })
}
