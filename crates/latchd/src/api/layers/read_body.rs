//! Authenticates every request, then reads its body before routing — the
//! whole body (at most `MAX_BODY_BYTES`) only for a request with a valid
//! token.
//!
//! A response sent while the client is still sending its body makes hyper
//! drop the keep-alive connection, and a client that reuses it sees the peer
//! disconnect. Reading bodies first means no refusal (401, 404, a bad
//! header…) can race the body. But a request without a valid token must not
//! make latchd hold 64 KiB: its body is read and dropped up to
//! `UNAUTHENTICATED_BODY_BYTES`, never kept, and if it is longer (or
//! announced longer) latchd answers without reading it and closes the
//! connection. An announced oversize body is refused from its
//! `Content-Length` alone, so a client that sent `Expect: 100-continue`
//! never has to send it. A body that does not arrive within the body read
//! timeout is answered 408 and the connection closed.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;

use crate::api::app_state::AppState;
use crate::api::layers::authentication::{Authentication, authenticate, remote_address};
use crate::api::layers::failure_limiter::SourceKey;
use crate::api::extractors::json_body::{MAX_BODY_BYTES, too_large};
use crate::api::problem::Problem;
use crate::api::request_limits::{EXCHANGE_BODY_BYTES, LEAK_BODY_BYTES, UNAUTHENTICATED_BODY_BYTES};

pub async fn layer(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    let announced = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let source = remote_address(&request).ip();
    // GitHub's and GitLab's leak endpoints are proven by what they carry
    // (a signature over the body, a pre-shared token): a source that has
    // spent its failure budget is refused before its body is read.
    if is_leak_channel(request.uri().path())
        && let Some(wait) = app
            .failures
            .spent(SourceKey::of(source), std::time::Instant::now())
    {
        return closing(crate::api::layers::authenticate_and_audit::rate_limited(wait));
    }
    let authenticated = authenticate(&app, request.headers(), source);
    // A leak report may be large (a scanner's whole finding list): read up
    // to `LEAK_BODY_BYTES` for a caller that may send one (see
    // `leak_report_limit`).
    let leak_limit = leak_report_limit(&app, &request, &authenticated);
    if announced.is_some_and(|length| length > leak_limit.unwrap_or(MAX_BODY_BYTES)) {
        return closing(too_large().into_response());
    }
    // A token exchange carries its credential in the body: read it (at
    // most `EXCHANGE_BODY_BYTES`), the route authenticates it.
    let exchange = request.uri().path() == crate::api::routes::token_exchange::PATH;
    if exchange && announced.is_some_and(|length| length > EXCHANGE_BODY_BYTES) {
        return closing(too_large().into_response());
    }
    let accepted = authenticated.is_ok() || exchange || leak_limit.is_some();
    let limit = match leak_limit {
        Some(limit) => limit,
        None if authenticated.is_ok() => MAX_BODY_BYTES,
        None => EXCHANGE_BODY_BYTES,
    };
    request
        .extensions_mut()
        .insert(Authentication(authenticated));
    let timeout = app.limits.body_read_timeout;
    let (parts, body) = request.into_parts();
    if accepted {
        return match tokio::time::timeout(timeout, axum::body::to_bytes(body, limit)).await
        {
            Ok(Ok(bytes)) => {
                next.run(Request::from_parts(parts, Body::from(bytes)))
                    .await
            }
            Ok(Err(_)) => closing(too_large().into_response()),
            Err(_) => closing(too_slow(timeout).into_response()),
        };
    }
    // Not authenticated: the handlers that answer need no body.
    let drained = announced.is_none_or(|length| length <= UNAUTHENTICATED_BODY_BYTES)
        && tokio::time::timeout(timeout, drain(body, UNAUTHENTICATED_BODY_BYTES))
            .await
            .unwrap_or(false);
    let response = next.run(Request::from_parts(parts, Body::empty())).await;
    if drained { response } else { closing(response) }
}

/// How much of a leak report's body latchd reads: `LEAK_BODY_BYTES` for
/// `POST /v1/leaks` with a valid token, for GitHub's endpoint when it is
/// configured and the request carries its signature headers (the
/// signature is checked over the whole body, so it must be read), and for
/// GitLab's when the request presents GitLab's token. `None` otherwise.
fn leak_report_limit(
    app: &AppState,
    request: &Request,
    authenticated: &Result<crate::api::extractors::caller::Caller, crate::api::layers::authentication::Refused>,
) -> Option<usize> {
    use crate::api::routes::leaks;
    let path = request.uri().path();
    let headers = request.headers();
    // A header of a plausible size: a key id is a hex digest, a signature
    // about 100 base64 characters.
    let plausible = |name: &str, max: usize| headers.get(name).is_some_and(|v| v.len() <= max);
    let allowed = match path {
        // Any valid token: one without `leaks:report` is answered 403 by
        // the route, as on every route (the body is bounded either way).
        leaks::PATH => authenticated.is_ok(),
        leaks::GITHUB_PATH => {
            app.leak_channels().github.is_some()
                && plausible(leaks::GITHUB_KEY_ID, 128)
                && plausible(leaks::GITHUB_SIGNATURE, 256)
        }
        leaks::GITLAB_REVOKE_PATH => leaks::gitlab_bearer(headers)
            .is_some_and(|presented| app.leak_channels().is_gitlab(presented)),
        _ => false,
    };
    allowed.then_some(LEAK_BODY_BYTES)
}

/// GitHub's and GitLab's leak endpoints.
fn is_leak_channel(path: &str) -> bool {
    use crate::api::routes::leaks;
    path == leaks::GITHUB_PATH || path.starts_with("/v1/leaks/gitlab/")
}

/// Reads and drops the body; `true` when it ended within `limit` bytes.
async fn drain(mut body: Body, limit: usize) -> bool {
    let mut read = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { return false };
        if let Some(data) = frame.data_ref() {
            read = read.saturating_add(data.len());
            if read > limit {
                return false;
            }
        }
    }
    true
}

fn too_slow(timeout: std::time::Duration) -> Problem {
    Problem::new(
        StatusCode::REQUEST_TIMEOUT,
        "request-timeout",
        format!(
            "the request body did not arrive within {} s (the body read timeout); send it at once",
            timeout.as_secs_f64()
        ),
    )
}

/// The rest of the body was not read: the connection cannot be reused.
fn closing(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
