//! Authenticating a request's bearer token, once, before its body is read:
//! the `read_body` layer authenticates and leaves the outcome in the
//! request's extensions (`Authentication`); on `/v1` routes,
//! `authenticate_and_audit` records it and refuses or serves the request.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderMap, header};
use latch_core::{AccountId, Rejection, TokenId};

use crate::api::app_state::AppState;
use crate::api::console::{ActiveSession, CsrfCheck, SessionCookie, session_cookie};
use crate::api::extractors::caller::Caller;
use crate::api::problem::Problem;

/// The outcome of authenticating a request, kept in its extensions.
#[derive(Clone)]
pub struct Authentication(pub Result<Caller, Refused>);

/// A request that could not be authenticated, and the token it presented
/// when latch knows it (revoked, expired, suspended, or from a source it may
/// not be used from): investigators want those attempts on the token's record.
#[derive(Clone)]
pub struct Refused {
    pub problem: Problem,
    pub presented: Option<(AccountId, TokenId)>,
}

impl From<Problem> for Refused {
    fn from(problem: Problem) -> Self {
        Refused {
            problem,
            presented: None,
        }
    }
}

/// The peer's address; `0.0.0.0:0` when there is none (NATS).
pub fn remote_address(request: &Request) -> SocketAddr {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0), |c| {
            c.0
        })
}

/// Authenticates a request by its `Authorization: Bearer` token or, without
/// one, by its web console session (cookie and `X-Latch-Csrf` header).
/// Requests over NATS carry neither cookie nor CSRF header (the command
/// service passes only the headers it names), so a session is a browser's.
pub fn authenticate(
    app: &AppState,
    headers: &HeaderMap,
    source: IpAddr,
) -> Result<Caller, Refused> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        match app.console.cookie(headers) {
            SessionCookie::One(session) => {
                let csrf = CsrfCheck::Presented(session_cookie::csrf(headers));
                return authenticate_session(app, session, csrf, source).map(|(caller, _)| caller);
            }
            SessionCookie::Several => return Err(Problem::unauthenticated(SEVERAL_COOKIES).into()),
            SessionCookie::None => {}
        }
        return Err(Problem::unauthenticated("missing Authorization: Bearer <token>").into());
    };
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
    authenticate_token(app, token, source)
}

/// What a request carrying two console session cookies is told.
pub const SEVERAL_COOKIES: &str =
    "the request carries more than one console session cookie (another site may have planted one); sign in again";

/// Authenticates a web console session: the session must be live (and
/// the request carry its CSRF token, unless `csrf` says otherwise), and the
/// token it was opened with must pass `latch_core::authenticate_digest`
/// now, from `source`, exactly as if presented. A session whose token no
/// longer passes is closed.
pub fn authenticate_session(
    app: &AppState,
    id: &str,
    csrf: CsrfCheck<'_>,
    source: IpAddr,
) -> Result<(Caller, ActiveSession), Refused> {
    let now = app.clock.now();
    let session = app
        .console
        .touch(id, csrf, now)
        .map_err(|refusal| Problem::unauthenticated(refusal.to_string()))?;
    let state = app.commands.state();
    match latch_core::authenticate_digest(&state, &session.token, now, Some(source)) {
        Ok(principal) => Ok((
            Caller {
                account_id: principal.account_id,
                token_id: principal.token_id,
                permissions: principal.effective_permissions(),
            },
            session,
        )),
        Err(rejection) => {
            app.console.close(id);
            Err(Refused {
                problem: Problem::unauthenticated(format!(
                    "the console session ended: its {rejection}; sign in again"
                )),
                presented: state
                    .token_by_digest(&session.token)
                    .map(|t| (t.account_id, t.id)),
            })
        }
    }
}

/// Authenticates a presented token (from a header, or the subject token of
/// a token exchange) used from `source`.
pub fn authenticate_token(app: &AppState, token: &str, source: IpAddr) -> Result<Caller, Refused> {
    let state = app.commands.state();
    let now = app.clock.now();
    let principal = latch_core::authenticate(&state, token, now, Some(source)).map_err(|rejection| {
        let presented = latch_core::identify(&state, token).ok();
        // A revoked or rotated-out token presented again: `token.reuse_detected`.
        if let (Rejection::Revoked | Rejection::Expired, Some(token)) = (rejection, presented) {
            app.reuse.sighted(
                &app.commands,
                token,
                crate::leaks::Sighting {
                    seen_at: now,
                    source_address: (!source.is_unspecified()).then_some(source),
                    service: "latchd",
                    slack: latch_core::REUSE_SLACK,
                },
            );
        }
        Refused {
            problem: Problem::unauthenticated(rejection.to_string()),
            presented: presented.map(|t| (t.account_id, t.id)),
        }
    })?;
    Ok(Caller {
        account_id: principal.account_id,
        token_id: principal.token_id,
        permissions: principal.effective_permissions(),
    })
}
