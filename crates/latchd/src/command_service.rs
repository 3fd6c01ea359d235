//! latchd's commands over NATS: a NATS service (`$SRV` discovery, name
//! `latch`) with an endpoint per `latch.cmd.<command>` subject, in queue
//! group `latch` so several latchd processes share the load.
//!
//! A request is turned into the HTTP request its route names and run
//! through the same router HTTP clients reach: authentication, permission
//! checks, idempotency, validation, problem replies and the activity audit
//! are the HTTP API's own, not a copy. The reply carries the HTTP response
//! body, its status in `Latch-Status`, and for errors the NATS service
//! error headers (`Nats-Service-Error`, `Nats-Service-Error-Code`).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_nats::HeaderMap;
use async_nats::service::ServiceExt;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use futures::StreamExt;
use http_body_util::BodyExt;
use latch_bus::command_route::{
    COMMAND_PREFIX, COMMAND_ROUTES, CommandRoute, QUEUE_GROUP, SERVICE_NAME, STATUS_HEADER,
};
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use crate::api::{NatsTransport, Problem};

/// Request headers passed on to the HTTP request, as HTTP names them.
const PASSED_HEADERS: [&str; 4] = [
    "Authorization",
    "Idempotency-Key",
    "If-Match",
    "X-Request-Id",
];
/// Response headers passed back in the reply.
const RETURNED_HEADERS: [&str; 2] = ["X-Request-Id", "ETag"];
/// The queue group of the catch-all that answers unknown commands (its own
/// group, so it never takes a known command from an endpoint).
const UNKNOWN_QUEUE_GROUP: &str = "latch-unknown";

pub struct CommandService {
    pub nats: latch_bus::NatsConnection,
    /// latchd's HTTP router (`api::router`).
    pub router: Router,
    /// Told once every endpoint is subscribed (latchd waits for it, a
    /// little, before it says it is ready).
    pub serving: Option<tokio::sync::oneshot::Sender<()>>,
}

impl CommandService {
    /// Serves commands until `shutdown`; connects (and reconnects) in the
    /// background, so latchd starts without NATS.
    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        let options = match self.nats.options().await {
            Ok(options) => options,
            Err(error) => {
                tracing::error!(%error, "command service: commands over NATS are off");
                return;
            }
        };
        let client = match options
            .name("latchd command service")
            .retry_on_initial_connect()
            .connect(self.nats.url.as_str())
            .await
        {
            Ok(client) => client,
            Err(error) => {
                tracing::error!(%error, "command service: cannot connect to NATS; commands over NATS are off");
                return;
            }
        };
        let errors: Arc<HashMap<String, AtomicU64>> = Arc::new(
            COMMAND_ROUTES
                .iter()
                .map(|r| (r.subject(), AtomicU64::new(0)))
                .collect(),
        );
        let stats_errors = errors.clone();
        let service = match client
            .service_builder()
            .description("Latch commands: the HTTP API's commands as request/reply")
            .queue_group(QUEUE_GROUP)
            .stats_handler(move |endpoint, _| {
                let failed = stats_errors
                    .get(&endpoint)
                    .map_or(0, |n| n.load(Ordering::Relaxed));
                serde_json::json!({ "error_replies": failed })
            })
            .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
            .await
        {
            Ok(service) => service,
            Err(error) => {
                tracing::error!(%error, "command service: could not start; commands over NATS are off");
                return;
            }
        };
        let router = self.router;
        let mut tasks = Vec::new();
        for route in COMMAND_ROUTES {
            let endpoint = match service.endpoint(route.subject()).await {
                Ok(endpoint) => endpoint,
                Err(error) => {
                    tracing::error!(%error, subject = %route.subject(), "command service: endpoint failed");
                    continue;
                }
            };
            tasks.push(tokio::spawn(serve(
                endpoint,
                router.clone(),
                errors.clone(),
            )));
        }
        match service
            .endpoint_builder()
            .name("unknown")
            .queue_group(UNKNOWN_QUEUE_GROUP)
            .add(format!("{COMMAND_PREFIX}.>"))
            .await
        {
            Ok(endpoint) => tasks.push(tokio::spawn(answer_unknown(endpoint))),
            Err(error) => {
                tracing::warn!(%error, "command service: no catch-all for unknown commands")
            }
        }
        if let Err(error) = client.flush().await {
            tracing::warn!(%error, "command service: could not flush its subscriptions");
        }
        tracing::info!(
            commands = COMMAND_ROUTES.len(),
            "commands served over NATS on {COMMAND_PREFIX}.*"
        );
        if let Some(serving) = self.serving {
            let _ = serving.send(());
        }
        let _ = shutdown.changed().await;
        for task in tasks {
            task.abort();
        }
        let _ = service.stop().await;
    }
}

async fn serve(
    mut endpoint: async_nats::service::endpoint::Endpoint,
    router: Router,
    errors: Arc<HashMap<String, AtomicU64>>,
) {
    while let Some(request) = endpoint.next().await {
        let router = router.clone();
        let errors = errors.clone();
        // Each on its own task: concurrent commands commit in groups.
        tokio::spawn(async move {
            let subject = request.message.subject.to_string();
            let Some(route) = CommandRoute::for_subject(&subject) else {
                return;
            };
            let (status, headers, body) = run(route, &request.message, router).await;
            if status >= 400
                && let Some(count) = errors.get(&subject)
            {
                count.fetch_add(1, Ordering::Relaxed);
            }
            if let Err(error) = request.respond_with_headers(Ok(body), headers).await {
                tracing::warn!(%error, %subject, "command service: could not reply");
            }
        });
    }
}

/// Answers commands no endpoint serves (and ignores the ones they do).
async fn answer_unknown(mut endpoint: async_nats::service::endpoint::Endpoint) {
    while let Some(request) = endpoint.next().await {
        if CommandRoute::for_subject(&request.message.subject).is_some() {
            continue;
        }
        let known: Vec<String> = COMMAND_ROUTES
            .iter()
            .map(|r| r.command.to_owned())
            .collect();
        let detail = format!(
            "no command on subject {}; the commands are {COMMAND_PREFIX}.<command> for: {}",
            request.message.subject,
            known.join(", ")
        );
        let (headers, body) = problem_reply(Problem::not_found(detail));
        let _ = request.respond_with_headers(Ok(body), headers).await;
    }
}

/// Runs one command through the router: `(status, reply headers, body)`.
async fn run(
    route: &CommandRoute,
    message: &async_nats::Message,
    router: Router,
) -> (u16, HeaderMap, Bytes) {
    let request = match http_request(route, message) {
        Ok(request) => request,
        Err(detail) => {
            let (headers, body) = problem_reply(Problem::bad_request(detail));
            return (400, headers, body);
        }
    };
    let response = match router.oneshot(request).await {
        Ok(response) => response,
        Err(never) => match never {},
    };
    let status = response.status();
    let mut headers = HeaderMap::new();
    headers.insert(STATUS_HEADER, status.as_str());
    for name in RETURNED_HEADERS {
        if let Some(value) = response.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name, value);
        }
    }
    let body = match response.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            tracing::warn!(%error, "command service: could not read a response body");
            Bytes::new()
        }
    };
    if status.is_client_error() || status.is_server_error() {
        let title = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|problem| problem["detail"].as_str().map(str::to_owned))
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("error").to_owned());
        headers.insert(
            async_nats::service::NATS_SERVICE_ERROR,
            one_line(&title).as_str(),
        );
        headers.insert(
            async_nats::service::NATS_SERVICE_ERROR_CODE,
            status.as_str(),
        );
    }
    (status.as_u16(), headers, body)
}

/// The HTTP request a command message stands for. A body that is not a
/// JSON object is passed on as it is when the route needs nothing from it
/// (the API then refuses it as it refuses any malformed body).
fn http_request(
    route: &CommandRoute,
    message: &async_nats::Message,
) -> Result<Request<Body>, String> {
    let payload = &message.payload;
    let parsed: Option<Map<String, Value>> = if payload.iter().all(u8::is_ascii_whitespace) {
        Some(Map::new())
    } else {
        serde_json::from_slice::<Value>(payload)
            .ok()
            .and_then(|v| v.as_object().cloned())
    };
    let (param, fields) = match (route.param, parsed) {
        (None, fields) => (None, fields),
        (Some(name), Some(mut fields)) => match fields.remove(name) {
            Some(Value::String(value)) if !value.is_empty() && !value.contains('/') => {
                (Some(value), Some(fields))
            }
            _ => {
                return Err(format!(
                    "{} needs the field {name:?}: a JSON object like {{\"{name}\": \"…\", …}}",
                    route.subject()
                ));
            }
        },
        (Some(name), None) => {
            return Err(format!(
                "the body must be a JSON object with {name:?} (and the HTTP body's fields)"
            ));
        }
    };
    let mut uri = route.path_with(param.as_deref());
    let body = if route.method == "GET" || route.method == "DELETE" {
        let query: Vec<String> = fields
            .unwrap_or_default()
            .into_iter()
            .map(|(name, value)| {
                let text = match value {
                    Value::String(text) => text,
                    other => other.to_string(),
                };
                format!("{}={}", encode(&name), encode(&text))
            })
            .collect();
        if !query.is_empty() {
            uri = format!("{uri}?{}", query.join("&"));
        }
        Body::empty()
    } else {
        match fields {
            Some(fields) => {
                Body::from(serde_json::to_vec(&Value::Object(fields)).unwrap_or_default())
            }
            None => Body::from(payload.clone()),
        }
    };
    let mut request = Request::builder()
        .method(route.method)
        .uri(uri)
        .header("Content-Type", "application/json");
    if let Some(headers) = &message.headers {
        for name in PASSED_HEADERS {
            if let Some(value) = headers.get(name) {
                request = request.header(name, value.as_str());
            }
        }
    }
    request
        .extension(NatsTransport)
        .body(body)
        .map_err(|e| format!("cannot make the request: {e}"))
}

/// A reply for a request that never reached the router: the API's own
/// problem shape.
fn problem_reply(problem: Problem) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let status = problem.status.to_string();
    headers.insert(STATUS_HEADER, status.as_str());
    headers.insert(
        async_nats::service::NATS_SERVICE_ERROR,
        one_line(&problem.detail).as_str(),
    );
    headers.insert(
        async_nats::service::NATS_SERVICE_ERROR_CODE,
        status.as_str(),
    );
    (
        headers,
        Bytes::from(serde_json::to_vec(&problem).unwrap_or_default()),
    )
}

/// Header values are one line.
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// Percent-encodes a query component.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
