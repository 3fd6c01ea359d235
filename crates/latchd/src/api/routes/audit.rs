//! `GET /v1/audit`: API activity records; `GET /v1/audit/chain`: the
//! event log's hash chain, walked; `GET /v1/audit/export`: the log as a
//! self-verifying NDJSON file.

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use latch_audit::{ActivityOf, ActivityRecord};
use latch_core::{AccountId, TokenId, api_permission};

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::ndjson;
use crate::api::problem::Problem;

const MAX_LIMIT: usize = 1000;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Records after this record id (default: from the first).
    pub after: Option<uuid::Uuid>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only requests made by this account (or refused while presenting one of its tokens).
    #[param(value_type = Option<uuid::Uuid>)]
    pub account: Option<String>,
    /// Only requests made with this token (accepted or refused).
    #[param(value_type = Option<uuid::Uuid>)]
    pub token: Option<String>,
    /// Only responses with this status, e.g. 403.
    pub status: Option<u16>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub records: Vec<ActivityRecord>,
    /// Pass as `after` for the next page, when there may be one.
    pub next_after: Option<uuid::Uuid>,
}

/// Read API activity, oldest first: every /v1 request, allowed or denied.
#[utoipa::path(get, path = "/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = AuditPage), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let account = parsed_id::<AccountId>("account", query.account.as_deref())?;
    let token = parsed_id::<TokenId>("token", query.token.as_deref())?;
    let store = app.commands.store().clone();
    let page = tokio::task::spawn_blocking(move || {
        let mut records = Vec::new();
        let mut last = None;
        let mut each = |record: ActivityRecord| {
            last = Some(record.id);
            let matches = account.is_none_or(|a| record.account_id == Some(a))
                && token.is_none_or(|t| record.token_id == Some(t))
                && query.status.is_none_or(|s| record.status == Some(s));
            if matches {
                records.push(record);
            }
            records.len() < limit
        };
        // A token's or an account's records from the activity index: a
        // page reads only them, however many other records there are.
        let of = match (token, account) {
            (Some(token), _) => Some(ActivityOf::Token(token)),
            (None, account) => account.map(ActivityOf::Account),
        };
        match of {
            Some(of) => ActivityRecord::scan_of(&store, of, query.after, &mut each)?,
            None => ActivityRecord::scan(&store, query.after, &mut each)?,
        }
        let next_after = if records.len() >= limit { last } else { None };
        Ok::<_, latch_store::StoreError>(AuditPage {
            records,
            next_after,
        })
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))?
    .map_err(|e| Problem::internal(e.to_string()))?;
    Ok(Json(page))
}

/// A filter's id, or a problem that says which filter is not one.
fn parsed_id<T: std::str::FromStr>(filter: &str, text: Option<&str>) -> Result<Option<T>, Problem>
where
    T::Err: std::fmt::Display,
{
    text.map(|text| {
        text.parse().map_err(|error| {
            Problem::bad_request(format!("query: {filter}: not an id ({error})"))
        })
    })
    .transpose()
}

/// The hash chain walked from the first event: intact (with the count and
/// the head hash that anchors the log) or broken at its first bad position.
/// The same JSON `latch audit verify --data-dir` prints offline.
#[derive(Debug, Serialize, ToSchema)]
pub struct ChainReport {
    /// `intact` or `broken`.
    pub verdict: String,
    pub checked: Option<u64>,
    pub head: Option<u64>,
    pub head_hash: Option<String>,
    /// For `broken`: the first position where the chain does not hold.
    pub position: Option<u64>,
    pub problem: Option<String>,
}

/// Walk the event log's hash chain (reads every event: seconds per
/// million), and check that every checkpoint records the log's chain hash
/// at its position (`latch audit verify --data-dir --checkpoints` also
/// replays the log against each checkpoint's state).
#[utoipa::path(get, path = "/v1/audit/chain", tag = "audit",
    responses((status = 200, body = ChainReport), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn chain(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<latch_store::ChainVerdict>, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let store = app.commands.store().clone();
    let verdict =
        tokio::task::spawn_blocking(move || {
            latch_audit::verify_log(&store, latch_audit::CheckpointCheck::Headers, &mut |_, _| {})
        })
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(|e| Problem::internal(e.to_string()))?;
    Ok(Json(verdict))
}

/// Which events to export: recorded in `[since, until)` (RFC 3339), either
/// open.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExportQuery {
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub until: Option<chrono::DateTime<chrono::Utc>>,
}

/// Export the log as NDJSON that `latch audit verify --file` checks with no
/// access to Latch: a header with the chain anchor, each event with its hash
/// and its record as stored, and a closing line. Streamed.
#[utoipa::path(get, path = "/v1/audit/export", tag = "audit", params(ExportQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = String), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn export(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ExportQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let Query(query) = query.map_err(|e| Problem::invalid(format!("query: {}", e.body_text())))?;
    let store = app.commands.store().clone();
    let range = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            latch_store::positions_between(&store, query.since, query.until)
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| Problem::internal(e.to_string()))?
    };
    let Some((first, last)) = range else {
        return Err(Problem::not_found(
            "no events were recorded in that time range",
        ));
    };
    Ok(ndjson::stream(move |out| {
        let mut out = out;
        latch_store::write_export(&store, first, last, &mut out)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }))
}
