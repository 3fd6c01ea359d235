//! The HTTP client: one request at a time to latchd, problem+json turned
//! into a `CliError` with the server's detail and an exit code.

use serde_json::Value;
use std::path::Path;

use crate::exit_code;

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
    base: String,
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
            .tls_config(tls.build())
            .build()
            .into();
        Ok(Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
            nats: None,
        })
    }

    /// Sends requests over NATS to latchd's command service at `url`.
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
        mut each: impl FnMut(Value) -> Result<bool, CliError>,
    ) -> Result<(), CliError> {
        use std::io::BufRead;
        let body = std::io::BufReader::new(self.get_stream(path)?);
        for line in body.lines() {
            let line =
                line.map_err(|e| CliError::Other(format!("reading latchd's answer: {e}")))?;
            if line.trim().is_empty() {
                continue;
            }
            let value = serde_json::from_str(&line).map_err(|e| {
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
        let url = format!("{}{}", self.base, path);
        let token = self.token.as_deref().ok_or_else(|| {
            CliError::Usage("no token: set LATCH_TOKEN, or pass --token-file".into())
        })?;
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let mut response = self
            .agent
            .get(&url)
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .map_err(unreachable)?;
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
        let url = format!("{}{}", self.base, path);
        let token = self.token.as_deref().ok_or_else(|| {
            CliError::Usage("no token: set LATCH_TOKEN, or pass --token-file (the admin token is in <data-dir>/admin.token)".into())
        })?;
        if let Some(nats) = &self.nats {
            let (status, value) = nats.send(token, method, path, body, headers)?;
            return if (200..300).contains(&status) {
                Ok(value)
            } else {
                Err(api_error(status, &value))
            };
        }
        let auth = format!("Bearer {token}");
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(&url)
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if let Some(key) = &headers.idempotency_key {
            request = request.header("Idempotency-Key", key);
        }
        if let Some(version) = &headers.if_match {
            request = request.header("If-Match", format!("\"{}\"", version.trim_matches('"')));
        }
        let body_bytes = match body {
            Some(value) => {
                request = request.header("Content-Type", "application/json");
                serde_json::to_vec(value).map_err(|e| CliError::Other(e.to_string()))?
            }
            None => Vec::new(),
        };
        let request = request
            .body(body_bytes)
            .map_err(|e| CliError::Usage(format!("bad request for {url}: {e}")))?;
        let unreachable = |e: ureq::Error| CliError::Unreachable {
            url: self.base.clone(),
            reason: e.to_string(),
        };
        let mut response = self.agent.run(request).map_err(unreachable)?;
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
