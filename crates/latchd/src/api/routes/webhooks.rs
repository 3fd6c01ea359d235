//! `/v1/webhooks`: endpoints latchd delivers events to (`webhooks:write`
//! to add, remove and redeliver; `webhooks:read` to list and inspect).
//!
//! What an attacker can do here: with `webhooks:write`, make latchd POST
//! events to a URL of its choosing (so only administrators should hold it;
//! the URL must be http(s), redirects are not followed, answers are not
//! read); without it, nothing. A caller with only `webhooks:read` sees each
//! URL's origin, not its path (a Slack webhook's path is its secret); the
//! signing secret is shown once, in the answer that adds the endpoint.

use axum::Json;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use latch_core::{AccountId, api_permission};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::api::app_state::AppState;
use crate::api::extractors::caller::Caller;
use crate::api::extractors::json_body::JsonBody;
use crate::api::extractors::submit::Acting;
use crate::api::problem::Problem;
use crate::webhooks::{Delivery, DeliveryStatus, PayloadFormat, WebhookBook, WebhookEndpoint, new_secret};

/// The most endpoints one latchd delivers to.
const MAX_ENDPOINTS: usize = 100;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddWebhook {
    /// Where to POST deliveries: `https://…` (or `http://…`).
    #[schema(max_length = 2048, pattern = "^https?://")]
    pub url: String,
    /// Event types (`token.leak_reported`), families (`token.*`) or `*`.
    #[schema(min_items = 1, max_items = 32)]
    pub events: Vec<String>,
    /// Only events about these accounts (ids); default: every account.
    #[serde(default)]
    #[schema(max_items = 100)]
    pub accounts: Vec<String>,
    /// `standard` (default: Standard Webhooks `{type, timestamp, data}`)
    /// or `slack` (`{text}`, for a Slack incoming webhook).
    #[serde(default)]
    #[schema(pattern = "^(standard|slack)$")]
    pub format: Option<String>,
}

/// An endpoint as listed: never its secret.
#[derive(Serialize, ToSchema)]
pub struct WebhookView {
    pub id: String,
    /// The whole URL for a caller with `webhooks:write`; else its origin.
    pub url: String,
    pub events: Vec<String>,
    pub accounts: Vec<String>,
    pub format: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// The answer that adds an endpoint: its secret, shown this once. No `Debug`.
#[derive(Serialize, ToSchema)]
pub struct AddedWebhook {
    #[serde(flatten)]
    pub webhook: WebhookView,
    /// `whsec_…`: the key of the `webhook-signature` HMAC.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<WebhookView>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryView {
    pub position: u64,
    /// The `webhook-id` every attempt carried.
    pub webhook_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `dead`.
    pub status: String,
    pub attempts: u32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    pub deliveries: Vec<DeliveryView>,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DeliveryQuery {
    /// `pending`, `delivered` or `dead`.
    #[param(pattern = "^(pending|delivered|dead)$")]
    pub status: Option<String>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
}

fn view(endpoint: &WebhookEndpoint, full_url: bool) -> WebhookView {
    WebhookView {
        id: endpoint.id.to_string(),
        url: if full_url { endpoint.url.clone() } else { endpoint.url_origin() },
        events: endpoint.events.clone(),
        accounts: endpoint.accounts.iter().map(ToString::to_string).collect(),
        format: match endpoint.format {
            PayloadFormat::Standard => "standard",
            PayloadFormat::Slack => "slack",
        }
        .to_owned(),
        created_at: endpoint.created_at,
        created_by: endpoint.created_by.clone(),
    }
}

fn delivery_view(delivery: Delivery) -> DeliveryView {
    DeliveryView {
        position: delivery.position,
        webhook_id: delivery.message_id,
        event_type: delivery.event_type,
        status: match delivery.status {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Dead => "dead",
        }
        .to_owned(),
        attempts: delivery.attempts,
        next_attempt_at: delivery.next_attempt_at,
        last_attempt_at: delivery.last_attempt_at,
        last_status: delivery.last_status,
        last_error: delivery.last_error,
        delivered_at: delivery.delivered_at,
    }
}

fn book(app: &AppState) -> WebhookBook {
    WebhookBook::new(app.commands.store().clone())
}

fn stored<T>(result: Result<T, latch_store::StoreError>) -> Result<T, Problem> {
    result.map_err(|error| Problem::internal(format!("webhook records: {error}")))
}

fn parse_id(id: &str) -> Result<Uuid, Problem> {
    Uuid::parse_str(id).map_err(|_| Problem::not_found(format!("no webhook {id:?}")))
}

/// Deliver events to a URL, signed (Standard Webhooks). The answer holds
/// the signing secret, shown this once.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = AddWebhook,
    params(("Idempotency-Key" = Option<String>, Header)),
    responses((status = 201, body = AddedWebhook), (status = 400, body = Problem), (status = 403, body = Problem),
        (status = 409, body = Problem), (status = 422, body = Problem)),
    security(("bearer" = [])))]
pub async fn add_webhook(acting: Acting, body: JsonBody<AddWebhook>) -> Result<(StatusCode, Json<AddedWebhook>), Problem> {
    acting.caller.require(&api_permission::WEBHOOKS_WRITE)?;
    let request = body.value;
    let url = request.url.trim().to_owned();
    let well_formed = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() <= 2048
        && url.parse::<axum::http::Uri>().is_ok_and(|uri| uri.host().is_some_and(|h| !h.is_empty()));
    if !well_formed {
        return Err(Problem::invalid("url: an http:// or https:// URL with a host"));
    }
    let authority = url.split("://").nth(1).unwrap_or("").split(['/', '?', '#']).next().unwrap_or("");
    if authority.contains('@') {
        return Err(Problem::invalid(
            "url: no user or password in the URL (it would be shown and logged); put a secret in the path or rely on webhook-signature",
        ));
    }
    if acting.app.ha.get().is_some() {
        return Err(Problem::conflict(
            "webhooks are not delivered in HA mode yet (deliveries are kept per node); run a single latchd to use them",
        ));
    }
    if request.events.is_empty() || request.events.len() > 32 {
        return Err(Problem::invalid("events: 1 to 32 event types, families (token.*) or *"));
    }
    for wanted in &request.events {
        if wanted != "*" {
            latch_audit::TypeMatch::parse(wanted).map_err(|e| Problem::invalid(format!("events: {e}")))?;
        }
    }
    if request.accounts.len() > 100 {
        return Err(Problem::invalid("accounts: at most 100"));
    }
    let accounts = request
        .accounts
        .iter()
        .map(|a| a.parse::<AccountId>().map_err(|_| Problem::invalid(format!("accounts: {a:?} is not an account id"))))
        .collect::<Result<Vec<_>, _>>()?;
    let format = match request.format.as_deref() {
        None | Some("standard") => PayloadFormat::Standard,
        Some("slack") => PayloadFormat::Slack,
        Some(other) => return Err(Problem::invalid(format!("format: {other:?} is neither standard nor slack"))),
    };
    let book = book(&acting.app);
    if stored(book.endpoints())?.len() >= MAX_ENDPOINTS {
        return Err(Problem::conflict(format!("latchd delivers to at most {MAX_ENDPOINTS} endpoints; remove one first")));
    }
    let endpoint = WebhookEndpoint {
        id: Uuid::now_v7(),
        url,
        secret: new_secret(),
        events: request.events,
        accounts,
        format,
        created_at: acting.app.clock.now(),
        created_by: format!("{}/{}", acting.caller.account_id, acting.caller.token_id),
        // Events from now on.
        cursor: acting.app.commands.state().position().get(),
    };
    stored(book.put_endpoint(&endpoint))?;
    tracing::info!(webhook = %endpoint.id, origin = %endpoint.url_origin(), "webhook added");
    Ok((
        StatusCode::CREATED,
        Json(AddedWebhook {
            webhook: view(&endpoint, true),
            secret: endpoint.secret.clone(),
        }),
    ))
}

/// The endpoints events are delivered to (never their secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, body = WebhookList), (status = 403, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_webhooks(State(app): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Json<WebhookList>, Problem> {
    caller.require(&api_permission::WEBHOOKS_READ)?;
    let full = caller.holds(&api_permission::WEBHOOKS_WRITE);
    let webhooks = stored(book(&app).endpoints())?.iter().map(|e| view(e, full)).collect();
    Ok(Json(WebhookList { webhooks }))
}

/// Stop delivering to an endpoint (its deliveries' records go too).
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = String, Path)),
    responses((status = 204), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn remove_webhook(acting: Acting, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    acting.caller.require(&api_permission::WEBHOOKS_WRITE)?;
    let id = parse_id(&id)?;
    let book = book(&acting.app);
    if stored(book.endpoint(id))?.is_none() {
        return Err(Problem::not_found(format!("no webhook {id}")));
    }
    stored(book.remove_endpoint(id))?;
    tracing::info!(webhook = %id, "webhook removed");
    Ok(StatusCode::NO_CONTENT)
}

/// An endpoint's deliveries, newest first: attempts, answers, dead ones.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = String, Path), DeliveryQuery),
    responses((status = 200, body = DeliveryList), (status = 400, body = Problem), (status = 403, body = Problem), (status = 404, body = Problem)),
    security(("bearer" = [])))]
pub async fn list_deliveries(
    State(app): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<DeliveryQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryList>, Problem> {
    caller.require(&api_permission::WEBHOOKS_READ)?;
    let Query(query) = query.map_err(|e| Problem::bad_request(format!("query: {}", e.body_text())))?;
    let id = parse_id(&id)?;
    let status = query
        .status
        .as_deref()
        .map(|s| DeliveryStatus::parse(s).ok_or_else(|| Problem::bad_request("status: pending, delivered or dead")))
        .transpose()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1000).contains(&limit) {
        return Err(Problem::bad_request("limit: 1 to 1000"));
    }
    let book = book(&app);
    if stored(book.endpoint(id))?.is_none() {
        return Err(Problem::not_found(format!("no webhook {id}")));
    }
    let deliveries = stored(book.deliveries(id))?
        .into_iter()
        .filter(|d| status.is_none_or(|s| d.status == s))
        .take(limit)
        .map(delivery_view)
        .collect();
    Ok(Json(DeliveryList { deliveries }))
}

/// Deliver an event again (a dead or delivered one): it goes before the
/// endpoint's next new delivery, with the same `webhook-id`.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{position}/redeliver", tag = "webhooks",
    params(("id" = String, Path), ("position" = u64, Path)),
    responses((status = 200, body = DeliveryView), (status = 403, body = Problem), (status = 404, body = Problem), (status = 409, body = Problem)),
    security(("bearer" = [])))]
pub async fn redeliver(acting: Acting, Path((id, position)): Path<(String, String)>) -> Result<Json<DeliveryView>, Problem> {
    acting.caller.require(&api_permission::WEBHOOKS_WRITE)?;
    let id = parse_id(&id)?;
    let position: u64 = position
        .parse()
        .map_err(|_| Problem::not_found(format!("no delivery at position {position:?}")))?;
    let book = book(&acting.app);
    let Some(mut delivery) = stored(book.delivery(id, position))? else {
        return Err(Problem::not_found(format!("webhook {id} has no delivery of position {position}")));
    };
    if delivery.status == DeliveryStatus::Pending {
        return Err(Problem::conflict("that delivery is still pending: it is attempted again on its own"));
    }
    delivery.status = DeliveryStatus::Pending;
    delivery.attempts = 0;
    delivery.next_attempt_at = Some(acting.app.clock.now());
    stored(book.put_delivery(&delivery))?;
    Ok(Json(delivery_view(delivery)))
}
