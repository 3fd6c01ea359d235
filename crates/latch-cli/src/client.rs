//! The HTTP client: one request at a time to latchd, problem+json turned
//! into a `CliError` with the server's detail and an exit code.

use serde_json::Value;
use std::path::Path;

use crate::exit_code;
use crate::ordered_json::OrderedJson;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// latchd answered with an error.
    #[error("{title} ({status}): {detail}{}", request_id.as_deref().map(|r| format!(" [request {r}]")).unwrap_or_default())]
    Api {
        status: u16,
        title: String,
        detail: String,
        request_id: Option<String>,
    },
    #[error("cannot reach latchd at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    #[error("{0}")]
    Usage(String),
    /// Offline: no such account or token in the log.
    #[error("{0}")]
    NotFound(String),
    /// The request cannot be answered as asked (e.g. a position past the log's end).
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Other(String),
    /// `latch audit verify` found the chain broken (already reported).
    #[error("the hash chain is broken (at position {0}): the log or export was altered")]
    Tampered(u64),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Api { status, .. } => exit_code::for_status(*status),
            CliError::Unreachable { .. } => exit_code::UNAVAILABLE,
            CliError::Usage(_) => exit_code::USAGE,
            CliError::NotFound(_) => exit_code::NOT_FOUND,
            CliError::Invalid(_) => exit_code::INVALID,
            CliError::Other(_) => exit_code::FAILURE,
            CliError::Tampered(_) => exit_code::TAMPERED,
        }
    }
}

pub struct Client {
    /// latchd's URL, or several: the nodes of an HA cluster (`LATCH_URL` is
    /// a comma-separated list). Requests go to the node that last answered,
    /// then to the others when a node is unreachable or a standby without a
    /// leader; a standby's redirect (307) to its leader is followed only to
    /// one of these URLs, so no node can send the token anywhere else.
    bases: Vec<String>,
    /// Index in `bases` of the node that answered last.
    preferred: std::cell::Cell<usize>,
    token: Option<String>,
    agent: ureq::Agent,
    /// `Some` with `--transport nats`: requests go to latchd's NATS command
    /// service instead.
    nats: Option<crate::nats_transport::NatsCommands>,
}

/// Extra request headers a command may set.
#[derive(Default)]
pub struct Headers {
    pub idempotency_key: Option<String>,
    pub if_match: Option<String>,
}

impl Client {
    /// A client of latchd at `base`; `ca_file` adds a CA (PEM) to trust for
    /// HTTPS beside the public roots.
    pub fn new(
        base: &str,
        token: Option<String>,
        ca_file: Option<&Path>,
    ) -> Result<Self, CliError> {
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = ca_file {
            let pem = std::fs::read(ca)
                .map_err(|e| CliError::Usage(format!("reading --ca-file {}: {e}", ca.display())))?;
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            if certs.is_empty() {
                return Err(CliError::Usage(format!(
                    "--ca-file {} holds no PEM certificate",
                    ca.display()
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            // Redirects are followed here, and only to the URLs given.
            .max_redirects(0)
            .tls_config(tls.build())
            .build()
            .into();
        let bases: Vec<String> = base
            .split(',')
            .map(|b| b.trim().trim_end_matches('/').to_owned())
            .filter(|b| !b.is_empty())
            .collect();
        if bases.is_empty() {
            return Err(CliError::Usage("--url (LATCH_URL) names no latchd".into()));
        }
        Ok(Self {
            bases,
            preferred: std::cell::Cell::new(0),
            token,
            agent,
            nats: None,
        })
    }

    /// Sends requests over NATS to latchd's command service at `url`.
    /// The token requests carry, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// Sends requests with `token` when no other was given (a token
    /// exchange: the subject token is the only credential there is).
    pub fn set_token_if_none(&mut self, token: &str) {
        if self.token.is_none() {
            self.token = Some(token.to_owned());
        }
    }

    pub fn over_nats(mut self, nats: latch_bus::NatsConnection) -> Result<Self, CliError> {
        self.nats = Some(crate::nats_transport::NatsCommands::new(nats)?);
        Ok(self)
    }

    pub fn get(&self, path: &str) -> Result<Value, CliError> {
        self.send("GET", path, None, &Headers::default())
    }

    /// GETs `path` and copies a successful response body to `out` as it
    /// arrives (for exports), without holding it in memory.
    pub fn get_to(&self, path: &str, out: &mut impl std::io::Write) -> Result<(), CliError> {
        let mut body = self.get_stream(path)?;
        std::io::copy(&mut body, out)
            .map_err(|e| CliError::Other(format!("reading latchd's answer: {e}")))?;
        Ok(())
    }

    /// GETs `path` (an NDJSON answer) and hands each line to `each` as it
    /// arrives, for as long as `each` says to go on.
    pub fn get_lines(
        &self,
        path: &str,
        mut each: impl FnMut(OrderedJson) -> Result<bool, CliError>,
    ) -> Result<(), CliError> {
        use std::io::BufRead;
        let body = std::io::BufReader::new(self.get_stream(path)?);
        for line in body.lines() {
            let line =
                line.map_err(|e| CliError::Other(format!("reading latchd's answer: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let value: OrderedJson = serde_json::from_str(&line).map_err(|e| {
                CliError::Other(format!("latchd sent a line that is not JSON ({e}): {line}"))
            })?;
            if !each(value)? {
                break;
            }
        }
        Ok(())
    }

    /// A successful response's body as a reader (no size limit); an error
    /// answer as a `CliError`.
    fn get_stream(&self, path: &str) -> Result<ureq::BodyReader<'static>, CliError> {
        if self.nats.is_some() {
            return Err(CliError::Usage(
                "this command streams its answer over HTTP; use --transport http for it".into(),
            ));
        }
        let token = self.token.as_deref().ok_or_else(|| {
            CliError::Usage("no token: set LATCH_TOKEN, or pass --token-file".into())
        })?;
        let (base, mut response) = self.each_node(|base| {
            self.agent
                .get(format!("{base}{path}"))
                .header("Authorization", format!("Bearer {token}"))
                .call()
        })?;
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: base.clone(),
            reason: e.to_string(),
        };
        let status = response.status().as_u16();
        if !(200..300).contains(&status) {
            let text = response.body_mut().read_to_string().map_err(unreachable)?;
            let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Err(api_error(status, &value));
        }
        Ok(response
            .into_body()
            .into_with_config()
            .limit(u64::MAX)
            .reader())
    }

    pub fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &Headers,
    ) -> Result<Value, CliError> {
        // A token exchange carries its credential in the body.
        let exchange = path == "/v1/token-exchange";
        let token = match self.token.as_deref() {
            Some(token) => token,
            None if exchange && self.nats.is_none() => "",
            None => {
                return Err(CliError::Usage("no token: set LATCH_TOKEN, or pass --token-file (the admin token is in <data-dir>/admin.token)".into()));
            }
        };
        if let Some(nats) = &self.nats {
            let (status, value) = nats.send(token, method, path, body, headers)?;
            return if (200..300).contains(&status) {
                Ok(value)
            } else {
                Err(api_error(status, &value))
            };
        }
        let auth = format!("Bearer {token}");
        // With several nodes a write may be sent twice (a node that fails
        // over mid-request): a key makes the second an answer, not a rerun.
        let generated;
        let idempotency_key = match (&headers.idempotency_key, method) {
            (Some(key), _) => Some(key.as_str()),
            (None, "POST" | "PUT" | "PATCH" | "DELETE") if self.bases.len() > 1 => {
                generated = format!("latch-cli-{}", latch_core::EventId::new());
                Some(generated.as_str())
            }
            (None, _) => None,
        };
        let body_bytes = match body {
            Some(value) => serde_json::to_vec(value).map_err(|e| CliError::Other(e.to_string()))?,
            None => Vec::new(),
        };
        let (base, mut response) = self.each_node(|base| {
            let url = format!("{base}{path}");
            let mut request = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Accept", "application/json");
            if !token.is_empty() {
                request = request.header("Authorization", &auth);
            }
            if let Some(key) = idempotency_key {
                request = request.header("Idempotency-Key", key);
            }
            if let Some(version) = &headers.if_match {
                request = request.header("If-Match", format!("\"{}\"", version.trim_matches('"')));
            }
            if body.is_some() {
                request = request.header("Content-Type", "application/json");
            }
            let request = request
                .body(body_bytes.clone())
                .map_err(|e| ureq::Error::BadUri(format!("{url}: {e}")))?;
            self.agent.run(request)
        })?;
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: base.clone(),
            reason: e.to_string(),
        };
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().map_err(unreachable)?;
        let value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        if (200..300).contains(&status) {
            return Ok(value);
        }
        Err(api_error(status, &value))
    }

    /// Sends a request (made by `call` for a node's base URL) to the node
    /// that answered last, then to the others: on to the next when a node
    /// is unreachable or answers 503 (a standby without a leader, a node
    /// shutting down); a 307 to the leader is followed when the leader is
    /// one of the URLs given, and refused otherwise.
    fn each_node(
        &self,
        call: impl Fn(&str) -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(String, ureq::http::Response<ureq::Body>), CliError> {
        let count = self.bases.len();
        let first = self.preferred.get();
        let mut last_failure = None;
        for step in 0..count {
            let index = (first + step) % count;
            let base = &self.bases[index];
            let response = match call(base) {
                Ok(response) => response,
                Err(error) => {
                    last_failure = Some(CliError::Unreachable {
                        url: base.clone(),
                        reason: error.to_string(),
                    });
                    continue;
                }
            };
            let status = response.status().as_u16();
            if status == 307 {
                let location = response
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let Some(leader) = self.bases.iter().position(|b| same_origin(b, &location)) else {
                    return Err(CliError::Other(format!(
                        "latchd at {base} redirected to {location}, which is not one of the URLs in --url (LATCH_URL); not following it with your token. Add the leader's URL to LATCH_URL if it is yours"
                    )));
                };
                match call(&self.bases[leader]) {
                    Ok(response) => {
                        self.preferred.set(leader);
                        return Ok((self.bases[leader].clone(), response));
                    }
                    Err(error) => {
                        last_failure = Some(CliError::Unreachable {
                            url: self.bases[leader].clone(),
                            reason: error.to_string(),
                        });
                        continue;
                    }
                }
            }
            if status == 503 && step + 1 < count {
                last_failure = Some(CliError::Unreachable {
                    url: base.clone(),
                    reason: "503: not serving this request now".into(),
                });
                continue;
            }
            self.preferred.set(index);
            return Ok((base.clone(), response));
        }
        Err(last_failure.unwrap_or_else(|| CliError::Unreachable {
            url: self.bases.join(","),
            reason: "no node answered".into(),
        }))
    }
}

/// Whether `location` is on the node at `base` (same scheme, host and
/// port: what the path of a redirect may change and nothing else).
fn same_origin(base: &str, location: &str) -> bool {
    location
        .strip_prefix(base)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
}

/// latchd's problem+json answer (or whatever came instead) as an error.
fn api_error(status: u16, value: &Value) -> CliError {
    let field = |name: &str| value.get(name).and_then(Value::as_str).map(str::to_owned);
    CliError::Api {
        status,
        title: field("title").unwrap_or_else(|| format!("HTTP {status}")),
        detail: field("detail").unwrap_or_else(|| value.to_string()),
        request_id: field("request_id"),
    }
}
