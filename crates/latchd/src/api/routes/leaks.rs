//! Leak reports: a token found where it should not be is revoked at once,
//! with every token rotated or exchanged from it
//! (`latch_core::Command::ReportLeaks`). Three ways in:
//!
//! - `POST /v1/leaks`: internal scanners and people (`latch leak report`),
//!   with a token holding `leaks:report`.
//! - `POST /v1/leaks/github`: GitHub's secret scanning partner program.
//!   No token: the body must carry GitHub's ECDSA signature
//!   (`Github-Public-Key-Signature` by the key `Github-Public-Key-Identifier`
//!   names), checked over the raw body before it is parsed. Served only
//!   with `--github-secret-scanning-keys`.
//! - `GET /v1/leaks/gitlab/revocable_token_types` and
//!   `POST /v1/leaks/gitlab/revoke_tokens`: GitLab's token revocation API,
//!   authenticated by the token in `--gitlab-revocation-token-file`.
//!
//! What an attacker can do here: send reports without a valid signature or
//! GitLab token (401, charged to the source's failure budget: 429 once
//! spent; nothing appended), replay a genuine report (it appends nothing
//! the second time), or report tokens to learn whether they exist — the
//! answer is the same for a live, revoked or unknown token (only the shape
//! and checksum, which anyone can check, show). A reported token's text
//! reaches no log or event: it is hashed at once (`FoundToken`). Each
//! channel may report `TOKENS_PER_MINUTE` tokens a minute (429 beyond), and
//! a body is read up to `LEAK_BODY_BYTES` only from a caller that may send
//! one.

use std::time::Instant;

use axum::Json;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use latch_core::{Actor, Command, LeakReport};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::api::app_state::AppState;
use crate::api::extractors::command_headers::IdempotencyKey;
use crate::api::extractors::json_body::JsonBody;
use crate::api::extractors::submit::{Acting, standby_answer};
use crate::api::layers::authentication::remote_address;
use crate::api::layers::failure_limiter::SourceKey;
use crate::api::layers::request_id::RequestId;
use crate::api::problem::Problem;
use crate::api::request_limits::LEAK_BODY_BYTES;
use crate::command_handler::CommandRequest;
use crate::leaks::{FoundToken, LeakError};

pub const PATH: &str = "/v1/leaks";
pub const GITHUB_PATH: &str = "/v1/leaks/github";
pub const GITLAB_REVOKE_PATH: &str = "/v1/leaks/gitlab/revoke_tokens";
pub const GITHUB_KEY_ID: &str = "github-public-key-identifier";
pub const GITHUB_SIGNATURE: &str = "github-public-key-signature";
/// The most tokens one `POST /v1/leaks` may carry.
pub const MAX_TOKENS_PER_REQUEST: usize = 1000;
/// The token type Latch registers with GitHub and GitLab.
pub const TOKEN_TYPE: &str = "latch_api_token";

/// A scanner's findings. No `Debug`: it holds token texts.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportLeaks {
    /// The scanner that found them (`gitleaks`, `trufflehog`…), recorded
    /// as the source `scanner:<name>`; default `scanner`.
    #[serde(default)]
    #[schema(pattern = "^[A-Za-z0-9._-]{1,48}$")]
    pub scanner: Option<String>,
    #[schema(max_items = 1000)]
    pub tokens: Vec<ReportedToken>,
}

/// One finding. No `Debug`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportedToken {
    /// The token text as found (a Latch token is 44 characters).
    #[schema(max_length = 64)]
    pub token: String,
    /// Where it was found (a URL, a file and line).
    #[serde(default)]
    #[schema(max_length = 512)]
    pub location: Option<String>,
}

/// The same for live, revoked and unknown tokens: a report is no oracle.
#[derive(Serialize, ToSchema)]
pub struct LeaksReceived {
    /// Tokens in the report.
    pub received: usize,
    /// Those with a Latch token's shape and checksum: each is revoked if
    /// it was live.
    pub well_formed: usize,
}

/// Report leaked tokens: each live one is revoked at once, with every token
/// rotated or exchanged from it. The answer is the same whether or not a
/// token existed or was live.
#[utoipa::path(post, path = "/v1/leaks", tag = "leaks", request_body = ReportLeaks,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 200, body = LeaksReceived), (status = 400, body = Problem),
        (status = 403, body = Problem), (status = 413, body = Problem), (status = 429, body = Problem)),
    security(("bearer" = [])))]
pub async fn report_leaks(
    acting: Acting,
    IdempotencyKey(key): IdempotencyKey,
    request: Request,
) -> Result<Json<LeaksReceived>, Problem> {
    acting.caller.require(&latch_core::api_permission::LEAKS_REPORT)?;
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, LEAK_BODY_BYTES)
        .await
        .map_err(|_| too_large())?;
    let body = JsonBody::<ReportLeaks>::parse(&parts.method, parts.uri.path(), &parts.headers, &bytes)?;
    if body.value.tokens.len() > MAX_TOKENS_PER_REQUEST {
        return Err(Problem::invalid(format!(
            "tokens: at most {MAX_TOKENS_PER_REQUEST} in one report; send several"
        )));
    }
    for reported in &body.value.tokens {
        if reported.token.len() > 64 {
            return Err(Problem::invalid("tokens: a token is at most 64 characters (a Latch token is 44)"));
        }
        if reported.location.as_ref().is_some_and(|l| l.len() > latch_core::MAX_LEAK_LOCATION) {
            return Err(Problem::invalid(format!(
                "tokens: a location is at most {} bytes",
                latch_core::MAX_LEAK_LOCATION
            )));
        }
    }
    let source = match body.value.scanner.as_deref() {
        None => "scanner".to_owned(),
        Some(scanner)
            if (1..=48).contains(&scanner.len())
                && scanner.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)) =>
        {
            format!("scanner:{scanner}")
        }
        Some(_) => {
            return Err(Problem::invalid(
                "scanner: 1 to 48 letters, digits, '.', '_' or '-'",
            ));
        }
    };
    let found: Vec<FoundToken> = body
        .value
        .tokens
        .iter()
        .map(|t| FoundToken::new(&t.token, &source, t.location.as_deref().unwrap_or("")))
        .collect();
    let reports: Vec<LeakReport> = found.iter().filter_map(|f| f.report.clone()).collect();
    let well_formed = reports.len();
    // Each caller has its own budget: one scanner cannot spend another's.
    take_budget(&acting.app, &format!("internal:{}", acting.caller.token_id), well_formed)?;
    if !reports.is_empty() {
        let submission = acting.submission(key, body.fingerprint, None);
        submission
            .submit(&acting.app, Command::ReportLeaks { reports })
            .await?;
    }
    tracing::info!(received = found.len(), well_formed, source = %source, "leak report taken");
    Ok(Json(LeaksReceived {
        received: found.len(),
        well_formed,
    }))
}

/// One match GitHub found, as its secret scanning partner program sends it.
/// No `Debug`.
#[derive(Deserialize, ToSchema)]
pub struct GithubMatch {
    pub token: String,
    /// The token type registered with GitHub (`latch_api_token`).
    #[serde(rename = "type", default)]
    pub token_type: String,
    /// Where GitHub found it. (GitHub also sends `source`: what it
    /// scanned, `content`, `commit`, `npm`…)
    #[serde(default)]
    pub url: String,
}

/// GitHub's per-token feedback: `true_positive` for every token with a
/// Latch token's shape and checksum, live or not (no oracle).
#[derive(Serialize, ToSchema)]
pub struct GithubFeedback {
    /// SHA-256 of the token as reported, hex.
    pub token_hash: String,
    pub token_type: String,
    #[schema(example = "true_positive")]
    pub label: &'static str,
}

/// GitHub secret scanning partner endpoint: revokes each reported token.
/// Authenticated by GitHub's ECDSA signature over the raw body.
#[utoipa::path(post, path = "/v1/leaks/github", tag = "leaks", request_body = Vec<GithubMatch>,
    params(("Github-Public-Key-Identifier" = String, Header, description = "The key GitHub signed with"),
        ("Github-Public-Key-Signature" = String, Header, description = "Base64 of the DER ECDSA P-256 SHA-256 signature over the body")),
    responses((status = 200, body = Vec<GithubFeedback>), (status = 400, body = Problem),
        (status = 401, body = Problem, description = "No valid signature, or not configured (--github-secret-scanning-keys)"),
        (status = 413, body = Problem), (status = 429, body = Problem),
        (status = 503, body = Problem, description = "GitHub's keys could not be fetched")))]
pub async fn github_report(State(app): State<AppState>, request: Request) -> Response {
    let source = SourceKey::of(remote_address(&request).ip());
    match github(&app, request).await {
        Ok(feedback) => Json(feedback).into_response(),
        Err(failure) => failure.answer(&app, source),
    }
}

async fn github(app: &AppState, request: Request) -> Result<Vec<GithubFeedback>, Failure> {
    if let Some(elsewhere) = standby_answer(app, request.uri()) {
        return Err(Failure::free(elsewhere));
    }
    // Without GitHub's keys no signature verifies: 401, as for a bad one
    // (an anonymous caller learns nothing about latchd's set-up).
    let Some(keys) = &app.leak_channels().github else {
        return Err(Failure::charged(Problem::unauthenticated(
            "no GitHub signature verifies here (latchd verifies GitHub's reports only with --github-secret-scanning-keys)",
        )));
    };
    let request_id = request_id(&request);
    let headers = request.headers().clone();
    let header_text = |name: &'static str| -> Result<String, Failure> {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| Failure::charged(Problem::unauthenticated(LeakError::MissingHeader(name).to_string())))
    };
    let key_id = header_text(GITHUB_KEY_ID)?;
    let signature = header_text(GITHUB_SIGNATURE)?;
    let bytes = axum::body::to_bytes(request.into_body(), LEAK_BODY_BYTES)
        .await
        .map_err(|_| Failure::free(too_large()))?;
    keys.verify(&key_id, &signature, &bytes)
        .await
        .map_err(|error| match error {
            LeakError::KeysUnavailable(_) => Failure::free(Problem::unavailable(format!("{error}; try again shortly"))),
            other => {
                tracing::warn!(error = %other, "refused a GitHub secret scanning report");
                Failure::charged(Problem::unauthenticated(other.to_string()))
            }
        })?;
    let matches: Vec<GithubMatch> = serde_json::from_slice(&bytes).map_err(|error| {
        Failure::free(Problem::bad_request(format!(
            "the body must be a JSON array of {{token, type, url, source}} (line {}, column {})",
            error.line(),
            error.column()
        )))
    })?;
    let found: Vec<(FoundToken, String)> = matches
        .into_iter()
        .map(|m| (FoundToken::new(&m.token, "github", &m.url), m.token_type))
        .collect();
    let reports: Vec<LeakReport> = found.iter().filter_map(|(f, _)| f.report.clone()).collect();
    take_budget(app, "github", reports.len()).map_err(Failure::free)?;
    submit_as_system(app, reports, &request_id).await.map_err(Failure::free)?;
    Ok(found
        .into_iter()
        .map(|(found, token_type)| GithubFeedback {
            label: if found.report.is_some() {
                "true_positive"
            } else {
                "false_positive"
            },
            token_hash: found.text_sha256,
            token_type,
        })
        .collect())
}

/// A token type GitLab may revoke here.
#[derive(Serialize, ToSchema)]
pub struct RevocableTokenType {
    #[serde(rename = "type")]
    pub token_type: &'static str,
    pub description: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct RevocableTokenTypes {
    pub types: Vec<RevocableTokenType>,
}

/// GitLab token revocation API: the token types it may report.
#[utoipa::path(get, path = "/v1/leaks/gitlab/revocable_token_types", tag = "leaks",
    responses((status = 200, body = RevocableTokenTypes), (status = 401, body = Problem, description = "Not GitLab's token, or not configured (--gitlab-revocation-token-file)"),
        (status = 429, body = Problem)),
    security(("gitlab_revocation" = [])))]
pub async fn gitlab_token_types(State(app): State<AppState>, request: Request) -> Response {
    let source = SourceKey::of(remote_address(&request).ip());
    match gitlab_authorized(&app, request.headers()) {
        Ok(()) => Json(RevocableTokenTypes {
            types: vec![RevocableTokenType {
                token_type: TOKEN_TYPE,
                description: "Latch API token: latch_ followed by 38 base62 characters (the last 6 a CRC-32 checksum)",
            }],
        })
        .into_response(),
        Err(failure) => failure.answer(&app, source),
    }
}

/// One token GitLab's secret detection found. No `Debug`.
#[derive(Deserialize, ToSchema)]
pub struct GitlabFinding {
    /// `latch_api_token` (GitLab sends it; any is taken).
    pub token: String,
    #[serde(default)]
    pub location: String,
}

/// GitLab token revocation API: revokes each reported token (204).
#[utoipa::path(post, path = "/v1/leaks/gitlab/revoke_tokens", tag = "leaks", request_body = Vec<GitlabFinding>,
    responses((status = 204, description = "Taken: each live token is revoked"), (status = 400, body = Problem),
        (status = 401, body = Problem, description = "Not GitLab's token, or not configured (--gitlab-revocation-token-file)"),
        (status = 413, body = Problem), (status = 429, body = Problem)),
    security(("gitlab_revocation" = [])))]
pub async fn gitlab_revoke(State(app): State<AppState>, request: Request) -> Response {
    let source = SourceKey::of(remote_address(&request).ip());
    match gitlab(&app, request).await {
        Ok(()) => StatusCode::NO_CONTENT.into_response(),
        Err(failure) => failure.answer(&app, source),
    }
}

async fn gitlab(app: &AppState, request: Request) -> Result<(), Failure> {
    gitlab_authorized(app, request.headers())?;
    if let Some(elsewhere) = standby_answer(app, request.uri()) {
        return Err(Failure::free(elsewhere));
    }
    let request_id = request_id(&request);
    let bytes = axum::body::to_bytes(request.into_body(), LEAK_BODY_BYTES)
        .await
        .map_err(|_| Failure::free(too_large()))?;
    let findings: Vec<GitlabFinding> = serde_json::from_slice(&bytes).map_err(|error| {
        Failure::free(Problem::bad_request(format!(
            "the body must be a JSON array of {{type, token, location}} (line {}, column {})",
            error.line(),
            error.column()
        )))
    })?;
    let reports: Vec<LeakReport> = findings
        .iter()
        .filter_map(|f| FoundToken::new(&f.token, "gitlab", &f.location).report)
        .collect();
    take_budget(app, "gitlab", reports.len()).map_err(Failure::free)?;
    submit_as_system(app, reports, &request_id).await.map_err(Failure::free)
}

/// `Authorization: Bearer <token>`'s token, if the header has that shape.
pub fn gitlab_bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
        .map(str::trim)
}

fn gitlab_authorized(app: &AppState, headers: &HeaderMap) -> Result<(), Failure> {
    // Without GitLab's token the answer is 401 whether or not the API is
    // configured: an anonymous caller learns nothing about latchd's set-up.
    match gitlab_bearer(headers) {
        Some(presented) if app.leak_channels().is_gitlab(presented) => Ok(()),
        _ => Err(Failure::charged(Problem::unauthenticated(
            "GitLab's revocation token is required: Authorization: Bearer <token> (this API is served only with --gitlab-revocation-token-file)",
        ))),
    }
}

/// Appends what the reports call for, as `system` (the reporter proved
/// itself to latchd, not to `decide`).
async fn submit_as_system(app: &AppState, reports: Vec<LeakReport>, request_id: &RequestId) -> Result<(), Problem> {
    if reports.is_empty() {
        return Ok(());
    }
    let count = reports.len();
    let mut appended = 0;
    // `decide` takes at most MAX_LEAK_REPORTS at once.
    for chunk in reports.chunks(latch_core::MAX_LEAK_REPORTS) {
        let mut request = CommandRequest::new(Actor::System, Command::ReportLeaks { reports: chunk.to_vec() });
        request.request_id = Some(request_id.0.clone());
        appended += app.commands.submit(request).await??.events.len();
    }
    tracing::warn!(reported = count, appended, "leak report taken: reported live tokens are revoked");
    Ok(())
}

fn take_budget(app: &AppState, channel: &str, tokens: usize) -> Result<(), Problem> {
    app.leak_channels()
        .budget
        .take(channel, tokens as u64, Instant::now())
        .map_err(|wait| {
            Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                format!(
                    "this channel reported more than {} tokens this minute; retry in {} s",
                    crate::leaks::TOKENS_PER_MINUTE,
                    wait.as_secs().max(1)
                ),
            )
        })
}

fn request_id(request: &Request) -> RequestId {
    request
        .extensions()
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(uuid::Uuid::now_v7().to_string()))
}

fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("a leak report is at most {LEAK_BODY_BYTES} bytes; send several"),
    )
}

/// A refused report, and whether it draws on the source's failure budget
/// (it failed to prove who sent it).
struct Failure {
    problem: Problem,
    charged: bool,
}

impl Failure {
    fn free(problem: Problem) -> Self {
        Failure {
            problem,
            charged: false,
        }
    }

    fn charged(problem: Problem) -> Self {
        Failure {
            problem,
            charged: true,
        }
    }

    fn answer(self, app: &AppState, source: SourceKey) -> Response {
        if self.charged
            && let Err(wait) = app.failures.take(source, Instant::now())
        {
            return crate::api::layers::authenticate_and_audit::rate_limited(wait);
        }
        self.problem.into_response()
    }
}
