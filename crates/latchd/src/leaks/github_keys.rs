//! `GithubKeys`: the ECDSA P-256 keys GitHub signs secret scanning reports
//! with, from the keys document (the shape of
//! `https://api.github.com/meta/public_keys/secret_scanning`:
//! `{"public_keys": [{"key_identifier", "key", "is_current"}]}`) at a URL
//! or in a file, cached and fetched again when a report names a key the
//! cache lacks (GitHub rotated), at most once per `MIN_REFETCH`.
//!
//! The signature (`Github-Public-Key-Signature`, base64 of an ASN.1 DER
//! ECDSA signature over the raw body with SHA-256) is checked before the
//! body is parsed. Every key of the document is accepted, current or not:
//! GitHub may deliver a report signed just before a rotation.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use serde::Deserialize;

use super::leak_error::LeakError;

/// Least time between two fetches of the keys document, by default:
/// reports naming unknown key ids cannot make latchd hammer GitHub (whose
/// unauthenticated API allows 60 requests an hour).
pub const MIN_REFETCH: Duration = Duration::from_secs(60);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_DOCUMENT_BYTES: u64 = 64 * 1024;
/// DER of a P-256 SubjectPublicKeyInfo up to its 65-byte point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
    0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// Where the keys document is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GithubKeySource {
    /// https (or http on loopback, for tests).
    Url(String),
    File(PathBuf),
}

impl GithubKeySource {
    /// A URL when it starts with `http://` or `https://`, else a file.
    pub fn parse(text: &str) -> Self {
        if text.starts_with("https://") || text.starts_with("http://") {
            GithubKeySource::Url(text.to_owned())
        } else {
            GithubKeySource::File(PathBuf::from(text))
        }
    }
}

#[derive(Deserialize)]
struct KeysDocument {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

struct Cached {
    /// Key identifier → uncompressed P-256 point.
    keys: HashMap<String, Vec<u8>>,
    fetched_at: Instant,
}

pub struct GithubKeys {
    source: GithubKeySource,
    min_refetch: Duration,
    cache: Mutex<Option<Cached>>,
    fetching: tokio::sync::Mutex<()>,
    failed_at: Mutex<Option<Instant>>,
}

impl GithubKeys {
    pub fn new(source: GithubKeySource, min_refetch: Duration) -> Self {
        Self {
            source,
            min_refetch,
            cache: Mutex::new(None),
            fetching: tokio::sync::Mutex::new(()),
            failed_at: Mutex::new(None),
        }
    }

    /// Checks `signature_b64` over `body` with the key `key_id`.
    pub async fn verify(&self, key_id: &str, signature_b64: &str, body: &[u8]) -> Result<(), LeakError> {
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature_b64.trim())
            .map_err(|_| LeakError::NotBase64("Github-Public-Key-Signature"))?;
        let point = self.key(key_id).await?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point)
            .verify(body, &signature)
            .map_err(|_| LeakError::BadSignature(key_id.to_owned()))
    }

    async fn key(&self, key_id: &str) -> Result<Vec<u8>, LeakError> {
        let cached = |this: &Self| {
            let cache = this.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache
                .as_ref()
                .map(|c| (c.keys.get(key_id).cloned(), c.fetched_at))
        };
        let seen = cached(self);
        if let Some((found, fetched_at)) = &seen {
            if let Some(point) = found {
                return Ok(point.clone());
            }
            // Within `min_refetch` of the last fetch an unknown id is
            // refused at once: nobody waits, GitHub is not asked.
            if fetched_at.elapsed() < self.min_refetch {
                return Err(LeakError::UnknownKey(key_id.to_owned()));
            }
        }
        let _fetching = self.fetching.lock().await;
        if let Some((found, fetched_at)) = cached(self)
            && seen.as_ref().is_none_or(|(_, seen_at)| fetched_at > *seen_at)
        {
            return found.ok_or_else(|| LeakError::UnknownKey(key_id.to_owned()));
        }
        if self
            .failed_at
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|at| at.elapsed() < self.min_refetch)
        {
            return Err(LeakError::KeysUnavailable("they could not be fetched a moment ago".into()));
        }
        let source = self.source.clone();
        let fetched = tokio::task::spawn_blocking(move || fetch(&source))
            .await
            .map_err(|e| LeakError::KeysUnavailable(e.to_string()))
            .and_then(|fetched| fetched);
        let keys = match fetched {
            Ok(keys) => keys,
            Err(error) => {
                *self.failed_at.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
                return Err(error);
            }
        };
        let found = keys.get(key_id).cloned();
        *self.cache.lock().unwrap_or_else(|e| e.into_inner()) = Some(Cached {
            keys,
            fetched_at: Instant::now(),
        });
        found.ok_or_else(|| LeakError::UnknownKey(key_id.to_owned()))
    }
}

fn fetch(source: &GithubKeySource) -> Result<HashMap<String, Vec<u8>>, LeakError> {
    let document: KeysDocument = match source {
        GithubKeySource::File(path) => {
            let text = std::fs::read(path)
                .map_err(|e| LeakError::KeysUnavailable(format!("{}: {e}", path.display())))?;
            serde_json::from_slice(&text)
                .map_err(|e| LeakError::KeysUnavailable(format!("{}: {e}", path.display())))?
        }
        GithubKeySource::Url(url) => {
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(FETCH_TIMEOUT))
                .max_redirects(0)
                .build()
                .into();
            agent
                .get(url)
                .header("Accept", "application/json")
                .call()
                .map_err(|e| LeakError::KeysUnavailable(format!("{url}: {e}")))?
                .body_mut()
                .with_config()
                .limit(MAX_DOCUMENT_BYTES)
                .read_json()
                .map_err(|e| LeakError::KeysUnavailable(format!("{url}: {e}")))?
        }
    };
    document
        .public_keys
        .into_iter()
        .map(|published| {
            let point = p256_point(&published.key)
                .ok_or_else(|| LeakError::BadKey(published.key_identifier.clone()))?;
            Ok((published.key_identifier, point))
        })
        .collect()
}

/// The uncompressed point of a PEM P-256 SubjectPublicKeyInfo.
pub fn p256_point(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body).ok()?;
    let point = der.strip_prefix(&P256_SPKI_PREFIX[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// The PEM SubjectPublicKeyInfo of an uncompressed P-256 point (what the
/// keys document holds; for tests and tools that make one).
pub fn p256_pem(point: &[u8]) -> String {
    let mut der = P256_SPKI_PREFIX.to_vec();
    der.extend_from_slice(point);
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

    #[test]
    fn a_pem_key_round_trips_and_other_keys_are_refused() {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let point = pair.public_key().as_ref().to_vec();
        assert_eq!(p256_point(&p256_pem(&point)), Some(point));
        assert_eq!(p256_point("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"), None);
        assert_eq!(p256_point("not pem at all"), None);
    }
}
