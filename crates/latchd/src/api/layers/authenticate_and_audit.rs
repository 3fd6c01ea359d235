//! API activity audit, one layer on every `/v1` route.
//!
//! Each request is recorded — allowed or denied — with time, request id,
//! account and token (when known), method, route, status and remote
//! address; the request path is kept to `MAX_PATH_BYTES` (a longer one is
//! cut and marked). The record is written before the request is processed
//! and completed after it (a request refused at authentication: once,
//! complete); if it cannot be written the request fails (fail closed, as
//! Vault does).
//!
//! Requests that fail authentication (401) or authorization (403) draw on
//! their source's failure budget (`FailureLimiter`); once it is spent, a
//! request without a valid token is answered 429 with `Retry-After` and
//! nothing is stored for it.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use latch_audit::ActivityRecord;

use crate::api::NatsTransport;
use crate::api::app_state::AppState;
use crate::api::layers::authentication::{Authentication, Refused, authenticate, remote_address};
use crate::api::layers::failure_limiter::SourceKey;
use crate::api::problem::Problem;
use crate::api::layers::request_id::RequestId;
use crate::bounded_text::{MAX_NAME_BYTES, MAX_PATH_BYTES, bounded};

pub async fn layer(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let started = Instant::now();
    let remote = remote_address(&request);
    let over_nats = request.extensions().get::<NatsTransport>().is_some();
    let source = if over_nats {
        SourceKey::Nats
    } else {
        SourceKey::of(remote.ip())
    };
    let authenticated = match request.extensions_mut().remove::<Authentication>() {
        Some(Authentication(outcome)) => outcome,
        None => authenticate(&app, request.headers(), remote.ip()),
    };
    let route = request.extensions().get::<MatchedPath>().map_or_else(
        || bounded(request.uri().path(), MAX_PATH_BYTES).into_owned(),
        |m| m.as_str().to_owned(),
    );
    if authenticated.is_err()
        && let Err(wait) = app.failures.take(source, Instant::now())
    {
        tracing::debug!(%route, remote = %remote.ip(), "too many failed requests from this source: 429, not recorded");
        return rate_limited(wait);
    }
    // Over NATS: the transport and, labelled as claims, the client's reply
    // inbox and name (NATS does not say who sent a message).
    let remote_addr = if over_nats {
        request
            .extensions()
            .get::<crate::nats_client_claim::NatsClientClaim>()
            .map_or_else(|| "nats".to_owned(), |claim| claim.audit_text())
    } else {
        remote.ip().to_string()
    };
    let mut record = activity_record(&app, &request, route, remote_addr, &authenticated);
    let caller = match authenticated {
        Ok(caller) => caller,
        Err(Refused { problem, .. }) => {
            // Refused before anything runs: one complete record, written once.
            tracing::info!(route = %record.route, reason = %problem.detail, "request not authenticated");
            record.status = Some(problem.status);
            record.duration_us = Some(started.elapsed().as_micros() as u64);
            return match write(&app, &record) {
                Ok(()) => problem.into_response(),
                Err(unwritten) => unwritten.into_response(),
            };
        }
    };
    if let Err(problem) = write(&app, &record) {
        return problem.into_response();
    }
    app.usage.record(
        caller.token_id,
        record.at,
        record.at,
        Some(remote.ip()),
        1,
        None,
    );
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    if response.status() == StatusCode::FORBIDDEN {
        app.failures.charge(source, Instant::now());
    }
    record.status = Some(response.status().as_u16());
    record.duration_us = Some(started.elapsed().as_micros() as u64);
    match write(&app, &record) {
        Ok(()) => response,
        Err(problem) => problem.into_response(),
    }
}

/// The record of `request` (not yet answered: no status or duration), made
/// by whoever presented what `authenticated` says.
pub(crate) fn activity_record(
    app: &AppState,
    request: &Request,
    route: String,
    remote_addr: String,
    authenticated: &Result<crate::api::extractors::caller::Caller, Refused>,
) -> ActivityRecord {
    let (account_id, token_id) = match authenticated {
        Ok(caller) => (Some(caller.account_id), Some(caller.token_id)),
        Err(refused) => refused.presented.map_or((None, None), |(a, t)| (Some(a), Some(t))),
    };
    ActivityRecord {
        id: uuid::Uuid::now_v7(),
        at: app.clock.now(),
        request_id: request
            .extensions()
            .get::<RequestId>()
            .map(|r| bounded(&r.0, MAX_NAME_BYTES).into_owned())
            .unwrap_or_default(),
        method: bounded(request.method().as_str(), MAX_NAME_BYTES).into_owned(),
        route,
        path: bounded(request.uri().path(), MAX_PATH_BYTES).into_owned(),
        remote_addr,
        account_id,
        token_id,
        status: None,
        duration_us: None,
        verifier_uses: None,
    }
}

/// Stores an activity record; a request whose record cannot be written is
/// refused (fail closed).
pub(crate) fn write(app: &AppState, record: &ActivityRecord) -> Result<(), Problem> {
    record.store(app.commands.store()).map_err(|error| {
        tracing::error!(%error, "could not write the API activity record; refusing the request");
        Problem::unavailable("the audit trail cannot be written, so the request was refused")
    })
}

/// 429 with `Retry-After` (whole seconds, at least 1).
pub(crate) fn rate_limited(wait: std::time::Duration) -> Response {
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let mut response = Problem::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate-limited",
        format!(
            "too many failed (401/403) requests from this address; retry in {seconds} s with a valid token (requests with a valid token are not limited)"
        ),
    )
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
        response.headers_mut().insert(header::RETRY_AFTER, value);
    }
    response
}
