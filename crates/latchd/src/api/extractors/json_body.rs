//! `JsonBody<T>`: a JSON request body with clear errors (malformed JSON,
//! unknown fields, wrong types, too large, not declared as JSON) as
//! problem+json, and the digest of the exact bytes, which is the request's
//! idempotency fingerprint.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use crate::api::extractors::json_media_type;
use crate::api::problem::Problem;

/// Bodies larger than this are refused with 413.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub struct JsonBody<T> {
    pub value: T,
    /// SHA-256 of method, path and body bytes: what a retry must repeat.
    pub fingerprint: String,
    /// Whether a body was sent at all (an empty or blank body reads as `{}`,
    /// which a route whose every field is optional may still refuse).
    pub present: bool,
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let headers = request.headers().clone();
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    Problem::bad_request(format!("could not read the request body: {rejection}"))
                }
            })?;
        Self::parse(&method, &path, &headers, &bytes)
    }
}

impl<T: DeserializeOwned> JsonBody<T> {
    /// The body of a request to `path`, read by the route itself (one that
    /// takes more than `MAX_BODY_BYTES`).
    pub fn parse(
        method: &axum::http::Method,
        path: &str,
        headers: &axum::http::HeaderMap,
        bytes: &[u8],
    ) -> Result<Self, Problem> {
        let mut hasher = Sha256::new();
        hasher.update(method.as_str());
        hasher.update(b" ");
        hasher.update(path);
        hasher.update(b"\n");
        hasher.update(bytes);
        // An empty body is an empty object: `POST .../enable` needs none.
        let present = !bytes.iter().all(u8::is_ascii_whitespace);
        if present && !json_media_type::declares_json(headers) {
            return Err(json_media_type::unsupported(headers));
        }
        let text: &[u8] = if present { bytes } else { b"{}" };
        // Every body of the API is an object; serde would also read a
        // struct from an array (`[null, null]`), which the document does
        // not allow.
        if text.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(Problem::bad_request(
                "invalid request body: it must be a JSON object".to_owned(),
            ));
        }
        let value = serde_json::from_slice(text).map_err(|error| {
            let what = match error.classify() {
                serde_json::error::Category::Data => "invalid request body",
                _ => "malformed JSON",
            };
            // serde quotes the value it did not expect: never a token.
            let said = error.to_string();
            if said.contains(latch_core::TOKEN_PREFIX) {
                Problem::bad_request(format!(
                    "{what} at line {}, column {} (the value is not repeated: it may be a token)",
                    error.line(),
                    error.column()
                ))
            } else {
                Problem::bad_request(format!("{what}: {said}"))
            }
        })?;
        Ok(Self {
            value,
            fingerprint: hex::encode(hasher.finalize()),
            present,
        })
    }
}

pub fn too_large() -> Problem {
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "too-large",
        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
    )
}
