//! `IssuerKeys`: each trusted OIDC issuer's published keys (JWKS), from its
//! discovery document, cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{Jwk, JwkSet};

use super::oidc_error::OidcError;

/// Least time between two fetches of one issuer's keys: tokens naming an
/// unknown key cannot make latchd hammer the issuer (one fetch at a time,
/// at most one a second; the others wait for it).
pub const MIN_REFETCH: Duration = Duration::from_secs(1);
/// How long a fetch (discovery, then keys) may take in all.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest discovery document or key set read.
const MAX_DOCUMENT_BYTES: u64 = 256 * 1024;

struct Cached {
    keys: Arc<JwkSet>,
    fetched_at: Instant,
}

#[derive(Default)]
pub struct IssuerKeys {
    cache: Mutex<HashMap<String, Cached>>,
    /// One fetch at a time: concurrent requests for an unknown key wait for
    /// it and read the cache after.
    fetching: tokio::sync::Mutex<()>,
    /// When a fetch of each issuer last failed: within `MIN_REFETCH` of it
    /// requests fail at once instead of queueing behind another timeout.
    failed_at: Mutex<HashMap<String, Instant>>,
}

impl IssuerKeys {
    /// The key `kid` of `issuer`: from the cache, or fetched once more when
    /// the cached set lacks it (the issuer rotated its keys) and the last
    /// fetch is older than `MIN_REFETCH`. A fetch that fails is
    /// `IssuerUnavailable`; the cached keys stay.
    pub async fn key(&self, issuer: &str, kid: &str) -> Result<Jwk, OidcError> {
        let cached = |this: &Self| {
            let cache = this.cache.lock().expect("key cache lock");
            cache.get(issuer).map(|c| (c.keys.clone(), c.fetched_at))
        };
        let seen = cached(self);
        if let Some((keys, fetched_at)) = &seen {
            if let Some(jwk) = keys.find(kid) {
                return Ok(jwk.clone());
            }
            // The issuer may have just rotated: fetch again once the last
            // fetch is `MIN_REFETCH` old.
            tokio::time::sleep(MIN_REFETCH.saturating_sub(fetched_at.elapsed())).await;
        }
        let _fetching = self.fetching.lock().await;
        if let Some((keys, fetched_at)) = cached(self)
            && seen.as_ref().is_none_or(|(_, seen_at)| fetched_at > *seen_at)
        {
            // Fetched by someone else meanwhile: that answer stands.
            return keys
                .find(kid)
                .cloned()
                .ok_or_else(|| OidcError::UnknownKey(kid.to_owned()));
        }
        let failed_recently = |this: &Self| {
            this.failed_at
                .lock()
                .expect("failure lock")
                .get(issuer)
                .is_some_and(|at| at.elapsed() < MIN_REFETCH)
        };
        if failed_recently(self) {
            return Err(OidcError::IssuerUnavailable(
                "its keys could not be fetched a moment ago".into(),
            ));
        }
        let owned = issuer.to_owned();
        let fetched = tokio::task::spawn_blocking(move || fetch(&owned))
            .await
            .map_err(|e| OidcError::IssuerUnavailable(e.to_string()))
            .and_then(|fetched| fetched);
        let keys = match fetched {
            Ok(keys) => keys,
            Err(error) => {
                self.failed_at
                    .lock()
                    .expect("failure lock")
                    .insert(issuer.to_owned(), Instant::now());
                return Err(error);
            }
        };
        let keys = Arc::new(keys);
        self.cache.lock().expect("key cache lock").insert(
            issuer.to_owned(),
            Cached {
                keys: keys.clone(),
                fetched_at: Instant::now(),
            },
        );
        keys.find(kid)
            .cloned()
            .ok_or_else(|| OidcError::UnknownKey(kid.to_owned()))
    }
}

/// Whether latchd may fetch from `url`: https, or http on loopback.
fn fetchable(url: &str) -> bool {
    if url.starts_with("https://") {
        return true;
    }
    url.strip_prefix("http://")
        .and_then(|rest| rest.split(['/', ':']).next())
        .is_some_and(|host| matches!(host, "127.0.0.1" | "localhost" | "[::1]"))
}

/// The issuer's discovery document, then the key set it points to.
fn fetch(issuer: &str) -> Result<JwkSet, OidcError> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        OidcError::IssuerUnavailable(format!("{what}: {e}"))
    };
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(FETCH_TIMEOUT))
        .max_redirects(0)
        .build()
        .into();
    let discovery_url = format!("{issuer}/.well-known/openid-configuration");
    let discovery: serde_json::Value = agent
        .get(&discovery_url)
        .call()
        .map_err(|e| unavailable(&discovery_url, &e))?
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_json()
        .map_err(|e| unavailable(&discovery_url, &e))?;
    if discovery["issuer"].as_str() != Some(issuer) {
        return Err(OidcError::IssuerUnavailable(format!(
            "{discovery_url} names another issuer"
        )));
    }
    let jwks_uri = discovery["jwks_uri"]
        .as_str()
        .ok_or_else(|| OidcError::IssuerUnavailable(format!("{discovery_url} has no jwks_uri")))?;
    if !fetchable(jwks_uri) {
        return Err(OidcError::IssuerUnavailable(format!(
            "jwks_uri {jwks_uri:?} is not https"
        )));
    }
    agent
        .get(jwks_uri)
        .call()
        .map_err(|e| unavailable(jwks_uri, &e))?
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_json()
        .map_err(|e| unavailable(jwks_uri, &e))
}
