//! The headers that shape a command: `Idempotency-Key` and `If-Match`.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use crate::api::problem::Problem;

/// `Idempotency-Key`: 1–255 visible ASCII characters. A retry with the same
/// key (and the same request) returns the original result and appends
/// nothing.
pub struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("idempotency-key") else {
            return Ok(Self(None));
        };
        let key = value
            .to_str()
            .ok()
            .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
            .ok_or_else(|| {
                Problem::bad_request("Idempotency-Key must be 1-255 visible ASCII characters")
            })?;
        Ok(Self(Some(key.to_owned())))
    }
}

/// `If-Match: "<version>"`: the version the caller last read (the `ETag`
/// of a GET). A mismatch is 412.
pub struct IfMatch(pub Option<u64>);

impl<S: Send + Sync> FromRequestParts<S> for IfMatch {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get("if-match") else {
            return Ok(Self(None));
        };
        let version = value
            .to_str()
            .ok()
            .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| {
                Problem::bad_request("If-Match must be a version as returned in ETag, e.g. \"3\"")
            })?;
        Ok(Self(Some(version)))
    }
}

/// The `ETag` for a version.
pub fn etag(version: u64) -> String {
    format!("\"{version}\"")
}
