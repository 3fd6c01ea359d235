//! `--transport nats`: the CLI's requests sent as NATS commands to
//! latchd's command service (`latch.cmd.<command>`) instead of HTTP. The
//! route table in latch-bus turns each HTTP request into its subject and
//! body; the reply is the HTTP response, its status in `Latch-Status`.
//!
//! Every request carries a fresh ephemeral X25519 key (`Latch-Reply-Key`)
//! and latchd seals the reply body to it (`latch_bus::sealed_reply`), so a
//! token secret in a reply is readable by this process only, whoever else
//! may subscribe to the inbox. `--nats-inbox-prefix` gives the CLI its own
//! inboxes, so NATS permissions can keep other users out of them too.

use std::time::Duration;

use latch_bus::command_route::{CommandRoute, STATUS_HEADER};
use latch_bus::sealed_reply::{REPLY_KEY_HEADER, ReplyOpener, SEALED_KEY_HEADER};
use serde_json::{Map, Value};

use crate::client::{CliError, Headers};

/// How long to wait for latchd's reply.
const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

pub struct NatsCommands {
    nats: latch_bus::NatsConnection,
    url: String,
    runtime: tokio::runtime::Runtime,
    client: std::cell::OnceCell<async_nats::Client>,
}

impl NatsCommands {
    pub fn new(nats: latch_bus::NatsConnection) -> Result<Self, CliError> {
        Ok(Self {
            // Errors show where, never credentials in the URL.
            url: nats.redacted_url(),
            nats,
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| CliError::Other(e.to_string()))?,
            client: std::cell::OnceCell::new(),
        })
    }

    /// Sends what would be `method path` with `body` over HTTP: `(status, body)`.
    pub fn send(
        &self,
        token: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &Headers,
    ) -> Result<(u16, Value), CliError> {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let (route, param) = CommandRoute::for_request(method, path).ok_or_else(|| {
            CliError::Usage(format!(
                "{method} {path} has no NATS command; use --transport http for it"
            ))
        })?;
        let mut fields: Map<String, Value> = match body {
            Some(Value::Object(fields)) => fields.clone(),
            _ => Map::new(),
        };
        if let (Some(name), Some(value)) = (route.param, param) {
            fields.insert(name.to_owned(), Value::String(value));
        }
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            fields.insert(name.to_owned(), Value::String(value.to_owned()));
        }
        let mut nats_headers = async_nats::HeaderMap::new();
        nats_headers.insert("Authorization", format!("Bearer {token}").as_str());
        // Names this program in latchd's audit records (a claim, labelled so).
        nats_headers.insert("Latch-Client", concat!("latch ", env!("CARGO_PKG_VERSION")));
        if let Some(key) = &headers.idempotency_key {
            nats_headers.insert("Idempotency-Key", key.as_str());
        }
        if let Some(version) = &headers.if_match {
            nats_headers.insert(
                "If-Match",
                format!("\"{}\"", version.trim_matches('"')).as_str(),
            );
        }
        let opener = ReplyOpener::new().map_err(|e| CliError::Other(e.to_string()))?;
        nats_headers.insert(REPLY_KEY_HEADER, opener.public_key().as_str());
        let payload = serde_json::to_vec(&Value::Object(fields))
            .map_err(|e| CliError::Other(e.to_string()))?;
        let unreachable = |reason: String| CliError::Unreachable {
            url: self.url.clone(),
            reason,
        };
        let reply = self.runtime.block_on(async {
            let client = match self.client.get() {
                Some(client) => client.clone(),
                None => {
                    let client = self
                        .nats
                        .connect()
                        .await
                        .map_err(|e| unreachable(e.to_string()))?;
                    let _ = self.client.set(client.clone());
                    client
                }
            };
            tokio::time::timeout(
                REPLY_TIMEOUT,
                client.request_with_headers(route.subject(), nats_headers, payload.into()),
            )
            .await
            .map_err(|_| {
                unreachable(format!(
                    "no reply on {} within {REPLY_TIMEOUT:?}",
                    route.subject()
                ))
            })?
            .map_err(|e| {
                unreachable(format!(
                    "{e} (is latchd serving commands on {}?)",
                    route.subject()
                ))
            })
        })?;
        let header = |name: &str| {
            reply
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let status: u16 = header(STATUS_HEADER)
            .or_else(|| header(async_nats::service::NATS_SERVICE_ERROR_CODE))
            .and_then(|s| s.parse().ok())
            .unwrap_or(200);
        let body = match header(SEALED_KEY_HEADER) {
            Some(sealed_key) => opener.open(&sealed_key, &reply.payload).map_err(|e| {
                CliError::Other(format!("latchd's reply on {}: {e}", route.subject()))
            })?,
            // Only a refusal may come unsealed (a request latchd could not
            // read, e.g. an older latchd): never trust a success in clear.
            None if status >= 400 => reply.payload.to_vec(),
            None => {
                return Err(CliError::Other(format!(
                    "latchd's reply on {} was not sealed to this request's key; is latchd older than this latch?",
                    route.subject()
                )));
            }
        };
        let text = String::from_utf8_lossy(&body);
        let value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text.into_owned()))
        };
        Ok((status, value))
    }
}
