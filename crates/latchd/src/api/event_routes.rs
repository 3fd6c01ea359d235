//! `GET /v1/events`: the log itself, for audit and for followers.

use axum::Json;
use axum::extract::{Extension, Query, State};
use chrono::{DateTime, Utc};
use latch_core::{EventEnvelope, Position, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::app_state::AppState;
use crate::api::caller::Caller;
use crate::api::problem::Problem;
use crate::api::views::ActorView;

/// Most events one page returns.
const MAX_LIMIT: usize = 1000;
/// Most events one page looks at while filtering.
const MAX_SCAN: usize = 100_000;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct EventQuery {
    /// Events after this position (default 0: from the start).
    pub after: Option<u64>,
    /// At most this many (default 100, at most 1000).
    pub limit: Option<usize>,
    /// Only events about this account.
    pub account: Option<String>,
    /// Only events of this type, e.g. `token.revoked`.
    #[serde(rename = "type")]
    pub event_type: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventView {
    pub position: u64,
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub at: DateTime<Utc>,
    pub actor: ActorView,
    pub stream: String,
    pub version: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The event body; names `account_id` and `token_id` where they apply.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventView>,
    /// Pass as `after` for the next page.
    pub next_after: u64,
    /// The log's head position now.
    pub head: u64,
}

/// Read the event log, oldest first.
#[utoipa::path(get, path = "/v1/events", tag = "events", params(EventQuery),
    responses((status = 200, body = EventPage), (status = 400, body = Problem), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Query(query): Query<EventQuery>,
) -> Result<Json<EventPage>, Problem> {
    caller.require(api_permission::EVENTS_READ)?;
    let limit = query.limit.unwrap_or(100).clamp(1, MAX_LIMIT);
    let account = query
        .account
        .as_deref()
        .map(|a| a.parse::<latch_core::AccountId>())
        .transpose()
        .map_err(|_| Problem::bad_request("account must be an account id"))?;
    if let Some(event_type) = &query.event_type
        && !latch_core::Event::TYPES.contains(&event_type.as_str())
    {
        return Err(Problem::bad_request(format!(
            "unknown event type {event_type:?}; one of: {}",
            latch_core::Event::TYPES.join(", ")
        )));
    }
    let store = app.commands.store().clone();
    let after = Position::new(query.after.unwrap_or(0));
    let page = tokio::task::spawn_blocking(move || -> Result<EventPage, Problem> {
        let mut events = Vec::new();
        let mut next_after = after;
        for stored in store.iter_from(after.next()).take(MAX_SCAN) {
            let stored = stored.map_err(|e| Problem::internal(e.to_string()))?;
            next_after = stored.position;
            let envelope: EventEnvelope = stored
                .decode()
                .map_err(|e| Problem::internal(e.to_string()))?;
            let matches = account.is_none_or(|a| envelope.event.account_id() == Some(a))
                && query
                    .event_type
                    .as_deref()
                    .is_none_or(|t| envelope.event.event_type() == t);
            if matches {
                events.push(EventView {
                    position: stored.position.get(),
                    id: envelope.id.to_string(),
                    event_type: envelope.event.event_type().to_owned(),
                    at: envelope.at,
                    actor: envelope.actor.into(),
                    stream: stored.stream.clone(),
                    version: stored.version,
                    request_id: envelope.request_id.clone(),
                    idempotency_key: envelope.idempotency_key.clone(),
                    data: envelope.event.body(),
                    prev_hash: stored.prev_hash.to_hex(),
                    hash: stored.hash.to_hex(),
                });
                if events.len() >= limit {
                    break;
                }
            }
        }
        Ok(EventPage {
            events,
            next_after: next_after.get(),
            head: store.head().position.get(),
        })
    })
    .await
    .map_err(|e| Problem::internal(e.to_string()))??;
    Ok(Json(page))
}
