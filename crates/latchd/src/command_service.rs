//! latchd's commands over NATS: a NATS micro service (`$SRV` discovery,
//! name `latch`, see `nats_micro`) with an endpoint per
//! `latch.cmd.<command>` subject, in queue group `latch` so several latchd
//! processes share the load.
//!
//! A request is turned into the HTTP request its route names and run
//! through the same router HTTP clients reach: authentication, permission
//! checks, idempotency, validation, problem replies and the activity audit
//! are the HTTP API's own, not a copy. The reply carries the HTTP response
//! body, its status in `Latch-Status`, and for errors the NATS service
//! error headers (`Nats-Service-Error`, `Nats-Service-Error-Code`).
//!
//! Two rules keep the replies safe. Every reply, discovery included, goes
//! only to an inbox subject (`reply_guard`): a request naming any other
//! reply subject is dropped before anything runs. And a request that sends
//! `Latch-Reply-Key` gets its reply body sealed to that key
//! (`latch_bus::sealed_reply`); the commands whose reply carries a token
//! secret are refused (400) without one, before anything is decided, so a
//! secret never crosses NATS in clear.

use std::sync::Arc;
use std::time::Instant;

use async_nats::HeaderMap;
use axum::Router;
use axum::body::Body;
use axum::http::Request;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use http_body_util::BodyExt;
use latch_bus::ReplySubject;
use latch_bus::command_route::{
    COMMAND_PREFIX, COMMAND_ROUTES, CommandRoute, QUEUE_GROUP, SERVICE_NAME, STATUS_HEADER,
};
use latch_bus::sealed_reply::{self, REPLY_KEY_HEADER, SEALED_KEY_HEADER};
use serde_json::{Map, Value};
use tower::ServiceExt as _;

use crate::api::{NatsTransport, Problem};
use crate::nats_client_claim::{CLIENT_HEADER, NatsClientClaim};
use crate::nats_micro::{Endpoint, MicroService, Verb};
use crate::reply_guard;

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
/// The NATS service error headers.
const SERVICE_ERROR: &str = "Nats-Service-Error";
const SERVICE_ERROR_CODE: &str = "Nats-Service-Error-Code";
const DESCRIPTION: &str = "Latch commands: the HTTP API's commands as request/reply";

pub struct CommandService {
    pub nats: latch_bus::NatsConnection,
    /// latchd's HTTP router (`api::router`).
    pub router: Router,
    /// Told once every endpoint is subscribed (latchd waits for it, a
    /// little, before it says it is ready).
    pub serving: Option<tokio::sync::oneshot::Sender<()>>,
}

/// What a subscription delivers.
#[derive(Debug, Clone, Copy)]
enum Incoming {
    Command,
    Unknown,
    Discovery(Verb),
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
            .connect(self.nats.server_urls())
            .await
        {
            Ok(client) => client,
            Err(error) => {
                let error = latch_bus::redact_url(&error.to_string());
                tracing::error!(%error, "command service: cannot connect to NATS; commands over NATS are off");
                return;
            }
        };
        let mut endpoints: Vec<Endpoint> = COMMAND_ROUTES
            .iter()
            .map(|r| Endpoint::new(r.subject(), r.subject(), QUEUE_GROUP))
            .collect();
        endpoints.push(Endpoint::new(
            "unknown",
            format!("{COMMAND_PREFIX}.>"),
            UNKNOWN_QUEUE_GROUP,
        ));
        let service = Arc::new(MicroService::new(
            SERVICE_NAME,
            env!("CARGO_PKG_VERSION"),
            DESCRIPTION,
            endpoints,
        ));
        let mut subscriptions: Vec<BoxStream<'static, (Incoming, async_nats::Message)>> =
            Vec::new();
        for endpoint in &service.endpoints {
            let kind = if endpoint.queue_group == UNKNOWN_QUEUE_GROUP {
                Incoming::Unknown
            } else {
                Incoming::Command
            };
            match client
                .queue_subscribe(endpoint.subject.clone(), endpoint.queue_group.clone())
                .await
            {
                Ok(subscriber) => {
                    subscriptions.push(subscriber.map(move |m| (kind, m)).boxed());
                }
                Err(error) => {
                    tracing::error!(%error, subject = %endpoint.subject, "command service: cannot subscribe");
                }
            }
        }
        for (subject, verb) in service.verb_subjects() {
            match client.subscribe(subject.clone()).await {
                Ok(subscriber) => subscriptions.push(
                    subscriber
                        .map(move |m| (Incoming::Discovery(verb), m))
                        .boxed(),
                ),
                Err(error) => {
                    tracing::warn!(%error, %subject, "command service: no discovery on this subject");
                }
            }
        }
        let mut incoming = futures::stream::select_all(subscriptions);
        if let Err(error) = client.flush().await {
            tracing::warn!(%error, "command service: could not flush its subscriptions");
        }
        tracing::info!(
            commands = COMMAND_ROUTES.len(),
            service_id = %service.id,
            "commands served over NATS on {COMMAND_PREFIX}.*"
        );
        if let Some(serving) = self.serving {
            let _ = serving.send(());
        }
        let router = self.router;
        loop {
            tokio::select! {
                next = incoming.next() => {
                    let Some((kind, message)) = next else { break };
                    // The catch-all leaves known commands to their endpoints.
                    if matches!(kind, Incoming::Unknown) && CommandRoute::for_subject(&message.subject).is_some() {
                        continue;
                    }
                    // Nothing is answered, or run, for a reply subject that
                    // is not an inbox.
                    let Some(reply) = reply_guard::reply_to(&message.subject, message.reply.as_deref()) else {
                        continue;
                    };
                    let client = client.clone();
                    let service = service.clone();
                    let router = router.clone();
                    // Each on its own task: concurrent commands commit in groups.
                    tokio::spawn(async move {
                        let (headers, body) = match kind {
                            Incoming::Command => command(&service, &message, &reply, router).await,
                            Incoming::Unknown => unknown(&service, &message),
                            Incoming::Discovery(verb) => (HeaderMap::new(), Bytes::from(service.answer(verb))),
                        };
                        send(&client, reply, headers, body).await;
                    });
                }
                _ = shutdown.changed() => break,
            }
        }
    }
}

async fn send(client: &async_nats::Client, reply: ReplySubject, headers: HeaderMap, body: Bytes) {
    if let Err(error) = client
        .publish_with_headers(reply.into_string(), headers, body)
        .await
    {
        tracing::warn!(%error, "command service: could not reply");
    }
}

/// Serves one command: the reply's headers and (sealed, when asked) body.
async fn command(
    service: &MicroService,
    message: &async_nats::Message,
    reply: &ReplySubject,
    router: Router,
) -> (HeaderMap, Bytes) {
    let started = Instant::now();
    let subject = message.subject.as_str();
    let Some(route) = CommandRoute::for_subject(subject) else {
        let (headers, body) = problem_reply(Problem::not_found(format!(
            "no command on subject {subject}"
        )));
        return (headers, body);
    };
    let reply_key = header(message, REPLY_KEY_HEADER);
    let (status, headers, body) = match &reply_key {
        Some(key) if sealed_reply::check_reply_key(key).is_err() => {
            let problem = Problem::bad_request(format!(
                "{REPLY_KEY_HEADER} must be an X25519 public key: 32 bytes, base64url without padding; nothing was done"
            ));
            let (headers, body) = problem_reply(problem);
            (400, headers, body)
        }
        None if route.reply_carries_secret() => {
            let problem = Problem::bad_request(format!(
                "{} replies with a token secret: send {REPLY_KEY_HEADER} (an ephemeral X25519 public key, base64url) so the reply is sealed to it; nothing was done",
                route.subject()
            ));
            let (headers, body) = problem_reply(problem);
            (400, headers, body)
        }
        _ => {
            let claim = NatsClientClaim::of(reply, header(message, CLIENT_HEADER).as_deref());
            run(route, message, claim, router).await
        }
    };
    if let Some(endpoint) = service.endpoint(&route.subject()) {
        let detail = headers
            .get(SERVICE_ERROR)
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        endpoint.record(
            started.elapsed(),
            (status >= 400).then_some((status, detail.as_str())),
        );
    }
    seal_if_asked(reply_key.as_deref(), headers, body)
}

/// Seals `body` to the requester's valid `Latch-Reply-Key`; a reply that
/// cannot be sealed is replaced by a problem without its body (which may
/// hold a secret).
fn seal_if_asked(
    reply_key: Option<&str>,
    mut headers: HeaderMap,
    body: Bytes,
) -> (HeaderMap, Bytes) {
    let Some(key) = reply_key.filter(|k| sealed_reply::check_reply_key(k).is_ok()) else {
        return (headers, body);
    };
    match sealed_reply::seal(key, &body) {
        Ok((sealed_key, sealed)) => {
            headers.insert(SEALED_KEY_HEADER, sealed_key.as_str());
            (headers, Bytes::from(sealed))
        }
        Err(error) => {
            tracing::error!(%error, "command service: could not seal a reply; sending a problem instead");
            problem_reply(Problem::internal(
                "latchd could not seal the reply; nothing secret was sent".to_owned(),
            ))
        }
    }
}

fn header(message: &async_nats::Message, name: &str) -> Option<String> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get(name))
        .map(|v| v.as_str().to_owned())
}

/// Answers a command no endpoint serves.
fn unknown(service: &MicroService, message: &async_nats::Message) -> (HeaderMap, Bytes) {
    let started = Instant::now();
    let known: Vec<String> = COMMAND_ROUTES
        .iter()
        .map(|r| r.command.to_owned())
        .collect();
    let detail = format!(
        "no command on subject {}; the commands are {COMMAND_PREFIX}.<command> for: {}",
        message.subject,
        known.join(", ")
    );
    let (headers, body) = problem_reply(Problem::not_found(detail));
    if let Some(endpoint) = service.endpoints.last() {
        endpoint.record(started.elapsed(), Some((404, "no such command")));
    }
    let reply_key = header(message, REPLY_KEY_HEADER);
    seal_if_asked(reply_key.as_deref(), headers, body)
}

/// Runs one command through the router: `(status, reply headers, body)`.
async fn run(
    route: &CommandRoute,
    message: &async_nats::Message,
    claim: NatsClientClaim,
    router: Router,
) -> (u16, HeaderMap, Bytes) {
    let request = match http_request(route, message, claim) {
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
        headers.insert(SERVICE_ERROR, one_line(&title).as_str());
        headers.insert(SERVICE_ERROR_CODE, status.as_str());
    }
    (status.as_u16(), headers, body)
}

/// The HTTP request a command message stands for. A body that is not a
/// JSON object is passed on as it is when the route needs nothing from it
/// (the API then refuses it as it refuses any malformed body).
fn http_request(
    route: &CommandRoute,
    message: &async_nats::Message,
    claim: NatsClientClaim,
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
        .extension(claim)
        .body(body)
        .map_err(|e| format!("cannot make the request: {e}"))
}

/// A reply for a request that never reached the router: the API's own
/// problem shape.
fn problem_reply(problem: Problem) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    let status = problem.status.to_string();
    headers.insert(STATUS_HEADER, status.as_str());
    headers.insert(SERVICE_ERROR, one_line(&problem.detail).as_str());
    headers.insert(SERVICE_ERROR_CODE, status.as_str());
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
