//! `/v1/accounts`: service accounts.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use latch_core::{AccountId, AccountName, Command, RoleName, api_permission};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::command_headers::{IdempotencyKey, IfMatch, etag};
use crate::api::extractors::json_body::JsonBody;
use crate::api::problem::Problem;
use crate::api::extractors::submit::Acting;
use latch_audit::AccountView;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccount {
    /// Unique; 1-64 of a-z, 0-9, '-', '_', '.'.
    pub name: String,
    pub role: String,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateAccount {
    #[serde(default)]
    pub role: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableAccount {
    /// Why: recorded in the event and shown to auditors.
    pub reason: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoBody {}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AccountQuery {
    /// Only accounts with this status (`active`, `disabled`, `deleted`).
    pub status: Option<String>,
    /// Only accounts with this role.
    pub role: Option<String>,
}

#[derive(Debug, serde::Serialize, ToSchema)]
pub struct AccountList {
    pub accounts: Vec<AccountView>,
}

pub fn parse_account_id(text: &str) -> Result<AccountId, Problem> {
    text.parse()
        .map_err(|_| Problem::not_found(format!("no account {text:?}: account ids are UUIDs")))
}

pub fn parse_role(text: &str) -> Result<RoleName, Problem> {
    RoleName::parse(text).map_err(|e| Problem::invalid(e.to_string()))
}

fn view_response(
    app: &AppState,
    caller: &Caller,
    id: AccountId,
    status: StatusCode,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let state = app.commands.state();
    let account = state
        .account(id)
        .ok_or_else(|| Problem::not_found(format!("account {id} not found")))?;
    let mut headers = HeaderMap::new();
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&etag(account.version)).expect("ascii"),
    );
    if status == StatusCode::CREATED {
        headers.insert(
            header::LOCATION,
            HeaderValue::from_str(&format!("/v1/accounts/{id}")).expect("ascii"),
        );
    }
    let mut view = AccountView::of(account, &state);
    if caller.holds(&api_permission::TOKENS_READ) {
        let last_use = |token| app.usage.get(token).map(|u| u.last_used_at);
        view = view.with_tokens(account, &state, app.clock.now(), last_use);
    }
    Ok((status, headers, Json(view)))
}

/// Create a service account.
#[utoipa::path(post, path = "/v1/accounts", tag = "accounts", request_body = CreateAccount,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes a retry safe")),
    responses((status = 201, body = AccountView), (status = 400, body = Problem), (status = 401, body = Problem),
        (status = 403, body = Problem), (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn create(
    acting: Acting,
    IdempotencyKey(key): IdempotencyKey,
    body: JsonBody<CreateAccount>,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let name = AccountName::parse(&body.value.name).map_err(|e| Problem::invalid(e.to_string()))?;
    let role = parse_role(&body.value.role)?;
    let submission = acting.submission(key, body.fingerprint, None);
    let command = Command::CreateAccount {
        account_id: AccountId::new(),
        name,
        role,
        description: body.value.description.unwrap_or_default(),
    };
    let receipt = submission.submit(&acting.app, command).await?;
    let id = receipt
        .events
        .first()
        .and_then(|e| e.envelope.event.account_id())
        .ok_or_else(|| Problem::internal("no event recorded"))?;
    view_response(&acting.app, &acting.caller, id, StatusCode::CREATED)
}

/// List service accounts.
#[utoipa::path(get, path = "/v1/accounts", tag = "accounts", params(AccountQuery),
    responses((status = 200, body = AccountList), (status = 401, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AccountQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AccountList>, Problem> {
    caller.require(&api_permission::ACCOUNTS_READ)?;
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    if let Some(status) = query.status.as_deref()
        && !["active", "disabled", "deleted"].contains(&status)
    {
        return Err(Problem::invalid(format!(
            "status {status:?} is not one of active, disabled, deleted"
        )));
    }
    if let Some(role) = query.role.as_deref() {
        parse_role(role)?;
    }
    let state = app.commands.state();
    let now = app.clock.now();
    // Token counts and last use are the tokens' business: `tokens:read`.
    let with_tokens = caller.holds(&api_permission::TOKENS_READ);
    let last_use = |token| app.usage.get(token).map(|u| u.last_used_at);
    let accounts = state
        .accounts()
        .map(|a| {
            let view = AccountView::of(a, &state);
            if with_tokens {
                view.with_tokens(a, &state, now, last_use)
            } else {
                view
            }
        })
        .filter(|a| query.status.as_deref().is_none_or(|s| a.status == s))
        .filter(|a| query.role.as_deref().is_none_or(|r| a.role == r))
        .collect();
    Ok(Json(AccountList { accounts }))
}

/// Read one service account. Any token may read its own account.
#[utoipa::path(get, path = "/v1/accounts/{id}", tag = "accounts", params(("id" = String, Path)),
    responses((status = 200, body = AccountView), (status = 401, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn show(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let id = parse_account_id(&id)?;
    if id != caller.account_id {
        caller.require(&api_permission::ACCOUNTS_READ)?;
    }
    view_response(&app, &caller, id, StatusCode::OK)
}

/// Change an account's role or description. `If-Match` guards against lost updates.
#[utoipa::path(patch, path = "/v1/accounts/{id}", tag = "accounts", request_body = UpdateAccount,
    params(("id" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag last read")),
    responses((status = 200, body = AccountView), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 404, body = Problem), (status = 409, body = Problem), (status = 412, body = Problem),
        (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn update(
    acting: Acting,
    Path(id): Path<String>,
    IfMatch(expected_version): IfMatch,
    body: JsonBody<UpdateAccount>,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let account_id = parse_account_id(&id)?;
    let role = body.value.role.as_deref().map(parse_role).transpose()?;
    let submission = acting.submission(None, body.fingerprint, expected_version);
    submission
        .submit(
            &acting.app,
            Command::UpdateAccount {
                account_id,
                role,
                description: body.value.description,
            },
        )
        .await?;
    view_response(&acting.app, &acting.caller, account_id, StatusCode::OK)
}

/// Suspend every token of the account until it is enabled again: the first
/// move when a leak is suspected.
#[utoipa::path(post, path = "/v1/accounts/{id}/disable", tag = "accounts", request_body = DisableAccount,
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AccountView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn disable(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected_version): IfMatch,
    body: JsonBody<DisableAccount>,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let account_id = parse_account_id(&id)?;
    let submission = acting.submission(key, body.fingerprint, expected_version);
    submission
        .submit(
            &acting.app,
            Command::DisableAccount {
                account_id,
                reason: body.value.reason,
            },
        )
        .await?;
    view_response(&acting.app, &acting.caller, account_id, StatusCode::OK)
}

/// Resume an account: its tokens that are neither revoked nor expired work again.
#[utoipa::path(post, path = "/v1/accounts/{id}/enable", tag = "accounts",
    params(("id" = String, Path), ("Idempotency-Key" = Option<String>, Header), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AccountView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn enable(
    acting: Acting,
    Path(id): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    IfMatch(expected_version): IfMatch,
    body: JsonBody<NoBody>,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let account_id = parse_account_id(&id)?;
    let submission = acting.submission(key, body.fingerprint, expected_version);
    submission
        .submit(&acting.app, Command::EnableAccount { account_id })
        .await?;
    view_response(&acting.app, &acting.caller, account_id, StatusCode::OK)
}

/// Delete an account: final, and revokes every token it has.
#[utoipa::path(delete, path = "/v1/accounts/{id}", tag = "accounts",
    params(("id" = String, Path), ("If-Match" = Option<String>, Header)),
    responses((status = 200, body = AccountView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn delete(
    acting: Acting,
    Path(id): Path<String>,
    IfMatch(expected_version): IfMatch,
) -> Result<(StatusCode, HeaderMap, Json<AccountView>), Problem> {
    let account_id = parse_account_id(&id)?;
    let submission = acting.submission(None, String::new(), expected_version);
    submission
        .submit(&acting.app, Command::DeleteAccount { account_id })
        .await?;
    view_response(&acting.app, &acting.caller, account_id, StatusCode::OK)
}
