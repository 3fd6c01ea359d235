//! `/ui/session`: signing in to the console, resuming after a reload, and
//! signing out.
//!
//! - `POST` signs in: the token comes in `Authorization: Bearer`, as on
//!   every `/v1` route, so the same layer authenticates it, counts a failure
//!   against the source's budget and records the attempt in the activity
//!   audit. A request that rode a session cannot open another one.
//! - `GET` is the console's bootstrap: with a live session cookie it answers
//!   who is signed in and the session's CSRF token (which no other origin
//!   can read). Changes nothing.
//! - `DELETE` signs out: a session request like any other (cookie and CSRF
//!   header), recorded in the activity audit.

use axum::Json;
use axum::extract::{Extension, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::api::app_state::AppState;
use crate::api::console::session_book::{ActiveSession, CsrfCheck};
use crate::api::console::session_cookie::{self, SessionCookie};
use crate::api::layers::authenticate_and_audit::activity_record;
use crate::api::extractors::caller::Caller;
use crate::api::layers::authentication::remote_address;
use crate::api::layers::failure_limiter::SourceKey;
use crate::api::problem::Problem;

pub const PATH: &str = "/ui/session";

/// Who is signed in, and what the console needs to act for them.
#[derive(Debug, Serialize)]
pub struct SessionInfo {
    /// Send as `X-Latch-Csrf` with every API request.
    pub csrf: String,
    pub account_id: String,
    pub account_name: String,
    pub role: String,
    pub token_id: String,
    pub token_name: String,
    /// When the token expires (`null`: never).
    pub token_expires_at: Option<DateTime<Utc>>,
    /// What the token may do now (its scopes ∩ the account's role).
    pub permissions: Vec<String>,
    /// The session ends at the latest at this time...
    pub ends_at: DateTime<Utc>,
    /// ...or after this long without a request.
    pub idle_timeout_seconds: u64,
}

fn info(app: &AppState, caller: &Caller, session: &ActiveSession) -> Result<SessionInfo, Problem> {
    let state = app.commands.state();
    let token = state
        .token(caller.token_id)
        .ok_or_else(|| Problem::internal("the session's token is not in the state"))?;
    let account = state
        .account(caller.account_id)
        .ok_or_else(|| Problem::internal("the session's account is not in the state"))?;
    let ends_at = match token.expires_at {
        Some(expires) if expires < session.ends_at => expires,
        _ => session.ends_at,
    };
    Ok(SessionInfo {
        csrf: session.csrf.clone(),
        account_id: account.id.to_string(),
        account_name: account.name.to_string(),
        role: account.role.to_string(),
        token_id: token.id.to_string(),
        token_name: token.name.clone(),
        token_expires_at: token.expires_at,
        permissions: caller.permissions.iter().map(ToString::to_string).collect(),
        ends_at,
        idle_timeout_seconds: app.console.settings().idle.as_secs(),
    })
}

/// Sign in with the token in `Authorization: Bearer`.
pub async fn sign_in(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    if !headers.contains_key(header::AUTHORIZATION) {
        return Err(Problem::bad_request(
            "sign in with the token in Authorization: Bearer <token>; a console session cannot open another",
        ));
    }
    let digest = app
        .commands
        .state()
        .token(caller.token_id)
        .map(|t| t.digest)
        .ok_or_else(|| Problem::internal("the token is not in the state"))?;
    let now = app.clock.now();
    let opened = app.console.open(digest, caller.account_id, now);
    let body = info(&app, &caller, &opened.session)?;
    tracing::info!(account = %caller.account_id, token = %caller.token_id, "console session opened");
    let settings = app.console.settings();
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        session_cookie::set(&opened.id, settings.max_age.as_secs(), settings.secure_cookie),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The signed-in session, for a console that was (re)loaded. Answered only
/// to the console's own page (`Sec-Fetch-Site` same-origin, or none from
/// an older browser): a same-site page cannot even keep a session from
/// idling out. Each answer to a request with a session cookie is in the
/// activity audit.
pub async fn resume(State(app): State<AppState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let source = remote_address(&request).ip();
    let secure = app.console.settings().secure_cookie;
    let refuse = |problem: Problem| {
        let mut response = problem.into_response();
        response
            .headers_mut()
            .insert(header::SET_COOKIE, session_cookie::clear(secure));
        response
    };
    let fetched_from = request
        .headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok());
    if fetched_from.is_some_and(|site| site != "same-origin" && site != "none") {
        return Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the console session is read by the console's own page only",
        )
        .into_response();
    }
    let id = match app.console.cookie(request.headers()) {
        SessionCookie::One(id) => id,
        SessionCookie::None => return refuse(Problem::unauthenticated("not signed in")),
        SessionCookie::Several => {
            return refuse(Problem::unauthenticated(
                crate::api::layers::authentication::SEVERAL_COOKIES,
            ));
        }
    };
    let outcome = crate::api::layers::authentication::authenticate_session(
        &app,
        id,
        CsrfCheck::NotRequired,
        source,
    );
    let mut record = activity_record(
        &app,
        &request,
        PATH.to_owned(),
        source.to_string(),
        &outcome.as_ref().map(|(caller, _)| caller.clone()).map_err(Clone::clone),
    );
    let response = match outcome {
        Ok((caller, session)) => match info(&app, &caller, &session) {
            Ok(body) => {
                let mut response = Json(body).into_response();
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
            Err(problem) => problem.into_response(),
        },
        Err(refused) => {
            if let Err(wait) = app.failures.take(SourceKey::of(source), std::time::Instant::now()) {
                return crate::api::layers::authenticate_and_audit::rate_limited(wait);
            }
            refuse(refused.problem)
        }
    };
    record.status = Some(response.status().as_u16());
    record.duration_us = Some(started.elapsed().as_micros() as u64);
    match crate::api::layers::authenticate_and_audit::write(&app, &record) {
        Ok(()) => response,
        Err(problem) => problem.into_response(),
    }
}

/// Sign out: the session ends now.
pub async fn sign_out(State(app): State<AppState>, headers: HeaderMap) -> Response {
    if let SessionCookie::One(id) = app.console.cookie(&headers) {
        app.console.close(id);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session_cookie::clear(app.console.settings().secure_cookie),
    );
    response
}
