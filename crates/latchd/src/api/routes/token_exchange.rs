//! `POST /v1/token-exchange`: trade a credential for a short-lived Latch
//! token, shaped after RFC 8693 (OAuth 2.0 Token Exchange). No
//! `Authorization` header: the subject token in the body is the only
//! credential.
//!
//! With a Latch token as the subject token
//! (`urn:ietf:params:oauth:token-type:access_token`), the answer is a child
//! token: at most the parent's effective permissions (`scope`), expiring no
//! later than the parent (`ttl`, a Latch extension; default 15 minutes), and
//! revoked with it (`latch_core::Command::ExchangeToken`).
//!
//! With an OIDC identity token (`urn:ietf:params:oauth:token-type:jwt` or
//! `…:id_token`), latchd verifies it against its issuer's published keys
//! (`crate::oidc`; only issuers a trust policy names are ever fetched),
//! picks the one trust policy whose audience and claims it matches
//! (`audience` names the policy when several do), and `decide` matches the
//! claims again against the policy as it is then, refuses a replayed `jti`,
//! and issues a token of the policy's account
//! (`latch_core::Command::ExchangeOidcToken`). Failures draw on the source
//! address's budget and, once the token verified, on its issuer/subject's
//! (`SubjectLimiter`): 429 once spent. An issuer whose keys cannot be
//! fetched is 503.
//!
//! What an attacker can do here: present guessed, revoked or stolen-and-
//! revoked tokens (each refusal is recorded and draws on the source
//! address's failure budget: 429 once spent, as on every route), or a
//! valid token asking for more than it has (refused by `decide`, nothing
//! appended). The body is read without a valid header only up to
//! `EXCHANGE_BODY_BYTES`. The request type has no `Debug`: the subject
//! token never reaches a log line.

use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use latch_audit::ActivityRecord;
use latch_core::{Actor, Command, Event, PermissionSet, Span, TokenId, TokenSecret, TrustPolicy};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::extractors::submit::Submission;
use crate::api::layers::authentication::{Refused, authenticate_token, remote_address};
use crate::api::layers::failure_limiter::SourceKey;
use crate::api::layers::request_id::RequestId;
use crate::api::problem::Problem;
use crate::api::request_limits::EXCHANGE_BODY_BYTES;
use crate::bounded_text::{MAX_NAME_BYTES, bounded};
use crate::command_handler::CommandRequest;
use crate::oidc::{OidcError, SubjectJwt, unverified_issuer};

/// The route's path (the body-reading layer reads its body without a
/// header).
pub const PATH: &str = "/v1/token-exchange";

/// RFC 8693's grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// A Latch token as subject token, and the type of every issued token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// An OIDC identity token as subject token (either name).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

/// The request, as JSON or `application/x-www-form-urlencoded`. No `Debug`:
/// it holds the subject token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenExchangeRequest {
    /// `urn:ietf:params:oauth:grant-type:token-exchange`.
    pub grant_type: String,
    /// The credential traded: a Latch token, or an OIDC identity token.
    pub subject_token: String,
    /// `urn:ietf:params:oauth:token-type:access_token` for a Latch token;
    /// `urn:ietf:params:oauth:token-type:jwt` (or `…:id_token`) for an OIDC
    /// token.
    pub subject_token_type: String,
    /// OIDC only: the trust policy (its id) to exchange under, when the
    /// token matches several.
    #[serde(default)]
    pub audience: Option<String>,
    /// Space-separated permissions, at most the subject's; default: all of
    /// the subject's effective permissions.
    #[serde(default)]
    pub scope: Option<String>,
    /// Only `urn:ietf:params:oauth:token-type:access_token`.
    #[serde(default)]
    pub requested_token_type: Option<String>,
    /// Latch extension: lifetime such as `10m`, at most the subject's
    /// remaining life; default 15 minutes (cut to the subject's expiry).
    #[serde(default)]
    pub ttl: Option<String>,
    /// Latch extension: the new token's name; default `child of <name>`.
    #[serde(default)]
    pub name: Option<String>,
}

/// RFC 8693's response, plus the new token's id. No `Debug`: it holds the
/// secret, shown here once.
#[derive(Serialize, ToSchema)]
pub struct TokenExchangeResponse {
    pub access_token: String,
    pub issued_token_type: &'static str,
    pub token_type: &'static str,
    /// Seconds until it expires.
    pub expires_in: i64,
    /// Space-separated permissions it carries.
    pub scope: String,
    /// Latch extension: the new token's id (log and reference this).
    pub token_id: String,
}

/// Trade a token for a short-lived child token (RFC 8693 shape).
#[utoipa::path(post, path = "/v1/token-exchange", tag = "tokens", request_body = TokenExchangeRequest,
    responses((status = 201, body = TokenExchangeResponse), (status = 400, body = Problem),
        (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem, description = "The OIDC issuer's keys could not be fetched")))]
pub async fn token_exchange(State(app): State<AppState>, request: Request) -> axum::response::Response {
    use axum::response::IntoResponse;
    let started = Instant::now();
    let remote = remote_address(&request);
    if let Some(elsewhere) = crate::api::extractors::submit::standby_answer(&app, request.uri()) {
        return elsewhere.into_response();
    }
    let source = SourceKey::of(remote.ip());
    let request_id = request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string()));
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match axum::body::to_bytes(request.into_body(), EXCHANGE_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => return Problem::bad_request(format!("the body is larger than {EXCHANGE_BODY_BYTES} bytes")).into_response(),
    };
    let mut record = ActivityRecord {
        id: uuid::Uuid::now_v7(),
        at: app.clock.now(),
        request_id: bounded(&request_id.0, MAX_NAME_BYTES).into_owned(),
        method: "POST".into(),
        route: PATH.into(),
        path: PATH.into(),
        remote_addr: remote.ip().to_string(),
        account_id: None,
        token_id: None,
        status: None,
        duration_us: None,
        verifier_uses: None,
    };
    let outcome = run(&app, &request_id, remote.ip(), &content_type, &body, &mut record).await;
    let response = match outcome {
        Ok(response) => response.into_response(),
        Err(Failure { problem, charged }) => {
            if charged && let Err(wait) = app.failures.take(source, Instant::now()) {
                record.status = Some(429);
                record.duration_us = Some(started.elapsed().as_micros() as u64);
                let _ = record.store(app.commands.store());
                return crate::api::layers::authenticate_and_audit::rate_limited(wait);
            }
            problem.into_response()
        }
    };
    record.status = Some(response.status().as_u16());
    record.duration_us = Some(started.elapsed().as_micros() as u64);
    if let Err(error) = record.store(app.commands.store()) {
        tracing::error!(%error, "could not write the API activity record of a token exchange");
        return Problem::unavailable("the audit trail cannot be written, so the request was refused").into_response();
    }
    response
}

/// A refused exchange, and whether it draws on the source's failure
/// budget (a credential that did not authenticate, or asked beyond itself).
struct Failure {
    problem: Problem,
    charged: bool,
}

impl From<Problem> for Failure {
    fn from(problem: Problem) -> Self {
        let charged = matches!(problem.status, 401 | 403);
        Failure { problem, charged }
    }
}

async fn run(
    app: &AppState,
    request_id: &RequestId,
    source: std::net::IpAddr,
    content_type: &str,
    body: &Bytes,
    record: &mut ActivityRecord,
) -> Result<(StatusCode, HeaderMap, Json<TokenExchangeResponse>), Failure> {
    let request = parse(content_type, body)?;
    if request.grant_type != GRANT_TYPE {
        return Err(Problem::bad_request(format!(
            "grant_type must be {GRANT_TYPE}"
        ))
        .into());
    }
    if request
        .requested_token_type
        .as_deref()
        .is_some_and(|t| t != ACCESS_TOKEN_TYPE)
    {
        return Err(Problem::bad_request(format!(
            "requested_token_type: only {ACCESS_TOKEN_TYPE} is issued"
        ))
        .into());
    }
    let oidc = match request.subject_token_type.as_str() {
        ACCESS_TOKEN_TYPE => false,
        JWT_TOKEN_TYPE | ID_TOKEN_TYPE => true,
        _ => {
            return Err(Problem::bad_request(format!(
                "subject_token_type: {ACCESS_TOKEN_TYPE} (a Latch token) or {JWT_TOKEN_TYPE} (an OIDC token) are accepted"
            ))
            .into());
        }
    };
    let scopes = request
        .scope
        .as_deref()
        .map(|scope| {
            let listed: Vec<&str> = scope.split_whitespace().collect();
            PermissionSet::parse(&listed).map_err(|e| Problem::invalid(format!("scope: {e}")))
        })
        .transpose()?;
    let ttl = request
        .ttl
        .as_deref()
        .map(|t| Span::parse(t).map_err(|e| Problem::invalid(format!("ttl: {e}"))))
        .transpose()?;
    if oidc {
        return exchange_oidc(app, request_id, request, scopes, ttl, record).await;
    }
    if request.audience.is_some() {
        return Err(Problem::bad_request("audience names a trust policy: only for OIDC subject tokens").into());
    }
    let caller = authenticate_token(app, &request.subject_token, source).map_err(
        |Refused { problem, presented }| {
            if let Some((account, token)) = presented {
                record.account_id = Some(account);
                record.token_id = Some(token);
            }
            Failure {
                problem,
                charged: true,
            }
        },
    )?;
    record.account_id = Some(caller.account_id);
    record.token_id = Some(caller.token_id);
    let secret = TokenSecret::generate(&mut rand::rng());
    let command = Command::ExchangeToken {
        parent_id: caller.token_id,
        token_id: TokenId::new(),
        digest: secret.digest(),
        name: request.name,
        scopes,
        ttl,
    };
    let submission = Submission {
        caller: &caller,
        request_id,
        key: None,
        fingerprint: String::new(),
        expected_version: None,
    };
    let receipt = submission.submit(app, command).await?;
    let Some((token_id, scopes, expires_at)) = receipt.events.iter().find_map(|e| match &e.envelope.event {
        Event::TokenIssued {
            token_id,
            scopes,
            expires_at,
            ..
        } => Some((*token_id, scopes.clone(), *expires_at)),
        _ => None,
    }) else {
        return Err(Problem::internal("the exchange recorded no token.issued event").into());
    };
    tracing::info!(%token_id, parent = %caller.token_id, "child token secret handed out");
    Ok(issued(app, &secret, token_id, &scopes, expires_at))
}

/// The 201 answer that carries the new secret.
fn issued(
    app: &AppState,
    secret: &TokenSecret,
    token_id: TokenId,
    scopes: &PermissionSet,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
) -> (StatusCode, HeaderMap, Json<TokenExchangeResponse>) {
    let now = app.clock.now();
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&format!("/v1/tokens/{token_id}")).expect("ascii"),
    );
    (
        StatusCode::CREATED,
        headers,
        Json(TokenExchangeResponse {
            access_token: secret.expose().to_owned(),
            issued_token_type: ACCESS_TOKEN_TYPE,
            token_type: "Bearer",
            expires_in: expires_at.map_or(0, |at| (at - now).num_seconds().max(0)),
            scope: scopes.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            token_id: token_id.to_string(),
        }),
    )
}

/// An OIDC identity token: verified, matched to one trust policy, then
/// decided (claims, `jti`, scopes and ttl against the policy as it is).
async fn exchange_oidc(
    app: &AppState,
    request_id: &RequestId,
    request: TokenExchangeRequest,
    scopes: Option<PermissionSet>,
    ttl: Option<Span>,
    record: &mut ActivityRecord,
) -> Result<(StatusCode, HeaderMap, Json<TokenExchangeResponse>), Failure> {
    let refused = |error: OidcError| match error {
        OidcError::IssuerUnavailable(_) => Failure {
            problem: Problem::unavailable(format!("{error}; try again shortly")),
            charged: false,
        },
        other => Failure {
            problem: Problem::unauthenticated(other.to_string()),
            charged: true,
        },
    };
    let issuer = unverified_issuer(&request.subject_token).map_err(refused)?;
    // Only an issuer a policy names is ever fetched from.
    let candidates: Vec<TrustPolicy> = app
        .commands
        .state()
        .trust_policies()
        .filter(|p| p.issuer == issuer)
        .cloned()
        .collect();
    if candidates.is_empty() {
        return Err(refused(OidcError::UntrustedIssuer(issuer)));
    }
    let mut audiences: Vec<String> = candidates.iter().map(|p| p.audience.clone()).collect();
    audiences.sort();
    audiences.dedup();
    let jwt = SubjectJwt::verify(&request.subject_token, &issuer, &audiences, &app.oidc_keys, app.clock.now())
        .await
        .map_err(refused)?;
    if let Err(wait) = app.oidc_failures.check(&jwt.issuer, &jwt.subject, Instant::now()) {
        return Err(Failure {
            problem: Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "too many failed exchanges for this OIDC subject; retry in {} s",
                    wait.as_secs().max(1)
                ),
            ),
            charged: false,
        });
    }
    let subject_failed = |problem: Problem| {
        app.oidc_failures.fail(&jwt.issuer, &jwt.subject, Instant::now());
        Failure {
            charged: matches!(problem.status, 401 | 403),
            problem,
        }
    };
    let fitting: Vec<&TrustPolicy> = candidates
        .iter()
        .filter(|p| jwt.audiences.contains(&p.audience))
        .filter(|p| request.audience.as_deref().is_none_or(|named| named == p.id.to_string()))
        .collect();
    let matching: Vec<&TrustPolicy> = fitting
        .iter()
        .copied()
        .filter(|p| p.mismatch(&jwt.claims).is_none())
        .collect();
    let policy = match matching.as_slice() {
        [one] => *one,
        [] => {
            let why = match fitting.as_slice() {
                [only] => format!(
                    "the token's claim {:?} does not match trust policy {}",
                    only.mismatch(&jwt.claims).unwrap_or("?"),
                    only.id
                ),
                _ => format!("no trust policy of {issuer} for this token's audience matches its claims"),
            };
            return Err(subject_failed(Problem::new(StatusCode::FORBIDDEN, "forbidden", why)));
        }
        several => {
            let ids: Vec<String> = several.iter().map(|p| p.id.to_string()).collect();
            return Err(Problem::bad_request(format!(
                "several trust policies match this token ({}); name one with audience=<policy id>",
                ids.join(", ")
            ))
            .into());
        }
    };
    record.account_id = Some(policy.account_id);
    let secret = TokenSecret::generate(&mut rand::rng());
    let token_id = TokenId::new();
    let command = Command::ExchangeOidcToken {
        policy_id: policy.id,
        token_id,
        digest: secret.digest(),
        scopes,
        ttl,
        issuer: jwt.issuer.clone(),
        audiences: jwt.audiences.clone(),
        subject: jwt.subject.clone(),
        jti: jwt.jti.clone(),
        token_expires_at: jwt.expires_at,
        claims: jwt.claims.clone(),
    };
    let outcome = app
        .commands
        .submit(CommandRequest {
            command,
            actor: Actor::System,
            request_id: Some(request_id.0.clone()),
            idempotency: None,
            expected_version: None,
        })
        .await;
    let receipt = match outcome {
        Ok(Ok(receipt)) => receipt,
        Ok(Err(rejection)) => return Err(subject_failed(rejection.into())),
        Err(failure) => return Err(Problem::from(failure).into()),
    };
    let Some((scopes, expires_at)) = receipt.events.iter().find_map(|e| match &e.envelope.event {
        Event::TokenIssued { scopes, expires_at, .. } => Some((scopes.clone(), *expires_at)),
        _ => None,
    }) else {
        return Err(Problem::internal("the exchange recorded no token.issued event").into());
    };
    record.token_id = Some(token_id);
    tracing::info!(%token_id, policy = %policy.id, issuer = %jwt.issuer, subject = %jwt.subject, "token exchanged for an OIDC token");
    Ok(issued(app, &secret, token_id, &scopes, expires_at))
}

/// JSON, or `application/x-www-form-urlencoded` as OAuth clients send.
fn parse(content_type: &str, body: &Bytes) -> Result<TokenExchangeRequest, Problem> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    match media {
        "application/json" => serde_json::from_slice(body)
            .map_err(|e| Problem::bad_request(format!("the JSON body: {}", without_values(&e.to_string())))),
        "application/x-www-form-urlencoded" => serde_urlencoded::from_bytes(body)
            .map_err(|e| Problem::bad_request(format!("the form body: {}", without_values(&e.to_string())))),
        _ => Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "send application/json or application/x-www-form-urlencoded",
        )),
    }
}

/// A parse error's text, cut before anything it quotes from the input (it
/// may quote the subject token).
fn without_values(error: &str) -> String {
    match error.find(['`', '"']) {
        Some(at) => format!("{}…", error[..at].trim_end()),
        None => error.to_owned(),
    }
}
