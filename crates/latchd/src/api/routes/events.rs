//! `GET /v1/events`: the log itself, filtered, for audit and for followers;
//! with `wait`, a long poll that answers as soon as a matching event is
//! appended (what `latch audit events --follow` uses).

use std::time::Duration;

use axum::Json;
use axum::extract::{Extension, Query, State};
use chrono::{DateTime, Utc};
use latch_audit::{ActorMatch, AuditEvent, EventFilter, TypeMatch};
use latch_core::{AccountId, AccountName, Position, Span, TokenId, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::problem::Problem;

/// Most events one page returns.
const MAX_LIMIT: usize = 1000;
/// Most events one page reads while filtering.
const MAX_READ: u64 = 100_000;
/// Longest `wait`.
const MAX_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Events after this position (default 0: from the start).
    pub after: Option<u64>,
    /// Events up to and including this position.
    pub to: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only events about this account (id or name): its own and its tokens'.
    pub account: Option<String>,
    /// Only events about this token (id).
    pub token: Option<String>,
    /// Only events caused by `system` or by any token of this account (id or name).
    pub actor: Option<String>,
    /// Only events caused with this token (id).
    pub actor_token: Option<String>,
    /// Only events of these types, comma-separated: `token.revoked`, or a
    /// family: `token.*`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
    /// Only events recorded at or after this time (RFC 3339).
    pub since: Option<DateTime<Utc>>,
    /// Only events recorded before this time (RFC 3339).
    pub until: Option<DateTime<Utc>>,
    /// When nothing matches yet, wait up to this long (e.g. `30s`, at most
    /// 60s) for a matching event to be appended.
    pub wait: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<AuditEvent>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// The log's head position now.
    pub head: u64,
    /// No later event can match (`to` or `until` was passed): stop paging.
    pub complete: bool,
}

/// Read the event log, oldest first, filtered.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<EventQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventPage>, Problem> {
    caller.require(&api_permission::EVENTS_READ)?;
    let Query(query) =
        query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let wait = query
        .wait
        .as_deref()
        .map(|text| {
            Span::parse(text)
                .map(|span| span.to_chrono().to_std().unwrap_or(MAX_WAIT).min(MAX_WAIT))
                .map_err(|e| Problem::bad_request(format!("wait: {e}")))
        })
        .transpose()?;
    let filter = filter_of(&app, &query)?;
    let mut after = Position::new(query.after.unwrap_or(0));
    let deadline = wait.map(|wait| tokio::time::Instant::now() + wait);
    let mut head_moved = app.commands.store().subscribe();
    loop {
        head_moved.mark_unchanged();
        let store = app.commands.store().clone();
        let filter = filter.clone();
        // Actors are named from latchd's state, which knows every account
        // ever created: a lookup per event returned, not a table per request.
        let commands = app.commands.clone();
        let (events, end) = tokio::task::spawn_blocking(move || {
            let mut events = Vec::new();
            let name_of = |id| commands.state().account(id).map(|a| a.name.to_string());
            latch_audit::scan_events(&store, &filter, after, MAX_READ, &name_of, |event| {
                events.push(event);
                events.len() < limit
            })
            .map(|end| (events, end))
        })
        .await
        .map_err(|e| Problem::internal(e.to_string()))?
        .map_err(|e| Problem::internal(e.to_string()))?;
        let head = app.commands.store().head().position;
        let caught_up = end.last_read >= head;
        after = end.last_read;
        let waiting = deadline.filter(|_| events.is_empty() && caught_up && !end.complete);
        let Some(deadline) = waiting else {
            return Ok(Json(EventPage {
                events,
                next_after: end.last_read.get(),
                head: head.get(),
                complete: end.complete,
            }));
        };
        // Nothing yet: wait for the head to move (or the time to run out).
        if tokio::time::timeout_at(deadline, head_moved.changed())
            .await
            .is_err()
        {
            return Ok(Json(EventPage {
                events,
                next_after: end.last_read.get(),
                head: app.commands.store().head().position.get(),
                complete: false,
            }));
        }
    }
}

/// The query's conditions, names resolved against latchd's state.
fn filter_of(app: &AppState, query: &EventQuery) -> Result<EventFilter, Problem> {
    let account = query
        .account
        .as_deref()
        .map(|text| account_by_id_or_name(app, "account", text))
        .transpose()?;
    let actor = match (query.actor.as_deref(), query.actor_token.as_deref()) {
        (Some(_), Some(_)) => {
            return Err(Problem::bad_request("give actor or actor_token, not both"));
        }
        (Some("system"), None) => Some(ActorMatch::System),
        (Some(text), None) => Some(ActorMatch::Account(account_by_id_or_name(
            app, "actor", text,
        )?)),
        (None, Some(text)) => Some(ActorMatch::Token(token_id("actor_token", text)?)),
        (None, None) => None,
    };
    let types = query
        .event_type
        .as_deref()
        .map(|list| {
            list.split(',')
                .map(|t| TypeMatch::parse(t.trim()).map_err(Problem::bad_request))
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(EventFilter {
        account,
        token: query
            .token
            .as_deref()
            .map(|text| token_id("token", text))
            .transpose()?,
        actor,
        types,
        since: query.since,
        until: query.until,
        from: None,
        to: query.to.map(Position::new),
    })
}

fn account_by_id_or_name(app: &AppState, field: &str, text: &str) -> Result<AccountId, Problem> {
    if let Ok(id) = text.parse::<AccountId>() {
        return Ok(id);
    }
    let name = AccountName::parse(text).map_err(|_| {
        Problem::bad_request(format!("{field} must be an account id or an account name"))
    })?;
    app.commands
        .state()
        .account_by_name(&name)
        .map(|account| account.id)
        .ok_or_else(|| {
            Problem::not_found(format!("{field}: no account named {name} was ever created"))
        })
}

fn token_id(field: &str, text: &str) -> Result<TokenId, Problem> {
    text.parse::<TokenId>()
        .map_err(|_| Problem::bad_request(format!("{field} must be a token id")))
}
