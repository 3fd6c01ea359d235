//! Investigations over the log: the state at a moment
//! (`GET /v1/audit/state`), who held a permission then
//! (`GET /v1/audit/who-can`) and one token's story
//! (`GET /v1/audit/tokens/{id}`). Each replays the log with latch-audit, the
//! same code `latch audit … --data-dir` runs offline, and streams NDJSON.

use axum::extract::{Extension, Query, State};
use latch_core::api_permission;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::ndjson;
use crate::api::problem::Problem;

/// When to look: an RFC 3339 time or a log position; now when absent.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct StateQuery {
    /// `2026-11-03T14:02:00Z` or a position such as `1042`; absent: now.
    pub at: Option<String>,
    /// Only active accounts and tokens.
    #[serde(default)]
    pub active_only: bool,
}

/// The state as it was at a moment, replayed from the log with the same
/// fold latchd runs (checking the hash chain on the way): NDJSON lines
/// tagged `kind`: the `moment`, then each `role`, `account` and `token`,
/// tokens with their status and effective permissions then. Replays the
/// log up to the moment: seconds per million events.
#[utoipa::path(get, path = "/v1/audit/state", tag = "audit", params(StateQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = latch_audit::StateEntry),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn state(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<StateQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let moment = moment(&app, query.at.as_deref())?;
    let replayed = replay(&app, moment).await?;
    let scope = latch_audit::StateScope {
        active_only: query.active_only,
    };
    Ok(ndjson::stream(move |out| {
        latch_audit::state_entries(&replayed, scope, |entry| ndjson::line(out, &entry));
        Ok(())
    }))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct WhoCanQuery {
    /// e.g. `certificates:issue`.
    pub permission: String,
    /// `2026-11-03T14:02:00Z` or a position such as `1042`; absent: now.
    pub at: Option<String>,
}

/// Every account and token that held a permission at a moment, and why
/// (the role's and the token's grants covering it): NDJSON lines tagged
/// `kind`: the `moment`, then each `account`, then each `token`.
#[utoipa::path(get, path = "/v1/audit/who-can", tag = "audit", params(WhoCanQuery),
    responses((status = 200, content_type = "application/x-ndjson", body = latch_audit::Holder),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn who_can(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<WhoCanQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<axum::response::Response, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let permission = latch_core::Permission::parse(&query.permission)
        .map_err(|e| Problem::bad_request(format!("permission: {e}")))?;
    let moment = moment(&app, query.at.as_deref())?;
    let replayed = replay(&app, moment).await?;
    Ok(ndjson::stream(move |out| {
        latch_audit::who_can(&replayed, &permission, |holder| ndjson::line(out, &holder));
        Ok(())
    }))
}

/// One token's story: NDJSON lines tagged `kind`: the `token` as it is now
/// (with its usage), then in time order every `event` that changed it or
/// what it may do, every `request` made to latchd with it (accepted or
/// refused) and every `verifier_use` report.
#[utoipa::path(get, path = "/v1/audit/tokens/{id}", tag = "audit", params(("id" = String, Path)),
    responses((status = 200, content_type = "application/x-ndjson", body = latch_audit::StoryEntry),
        (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn token_story(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Result<axum::response::Response, Problem> {
    caller.require(&api_permission::AUDIT_READ)?;
    let token_id: latch_core::TokenId = id
        .parse()
        .map_err(|_| Problem::bad_request(format!("{id:?} is not a token id")))?;
    let store = app.commands.store().clone();
    let now = app.clock.now();
    let story = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            latch_audit::TokenStory::read(&store, token_id, now, &mut |_, _| {})
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(audit_problem)?
    };
    Ok(ndjson::stream(move |out| {
        story
            .tell(&store, |entry| ndjson::line(out, &entry))
            .map_err(|e| e.to_string())
    }))
}

/// The moment `at` names, or now (latchd's clock) when it is absent.
fn moment(app: &AppState, at: Option<&str>) -> Result<latch_audit::Moment, Problem> {
    match at {
        None => Ok(latch_audit::Moment::Time(app.clock.now())),
        Some(text) => text
            .parse()
            .map_err(|e: String| Problem::bad_request(format!("at: {e}"))),
    }
}

async fn replay(
    app: &AppState,
    moment: latch_audit::Moment,
) -> Result<latch_audit::Replayed, Problem> {
    let store = app.commands.store().clone();
    let replayed =
        tokio::task::spawn_blocking(move || latch_audit::replay(&store, moment, &mut |_, _| {}))
            .await
            .map_err(|e| Problem::internal(e.to_string()))?
            .map_err(audit_problem)?;
    for position in &replayed.refused_checkpoints {
        tracing::error!(%position, "a checkpoint disagrees with the log's hash chain there; it was not used (altered?)");
    }
    Ok(replayed)
}

fn audit_problem(error: latch_audit::AuditError) -> Problem {
    use latch_audit::AuditError;
    match error {
        AuditError::BeyondHead { .. } => Problem::invalid(error.to_string()),
        AuditError::UnknownToken(_) => Problem::not_found(error.to_string()),
        AuditError::BrokenChain { .. }
        | AuditError::IndexPointsNowhere(_)
        | AuditError::Store(_) => {
            tracing::error!(%error, "an audit read failed");
            Problem::internal(error.to_string())
        }
    }
}
