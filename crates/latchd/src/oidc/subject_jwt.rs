//! `SubjectJwt`: an OIDC identity token, verified.

use std::collections::{BTreeMap, HashSet};

use base64::Engine;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::issuer_keys::IssuerKeys;
use super::oidc_error::OidcError;

/// Clock skew allowed on `exp`, `nbf` and `iat`, in seconds.
pub const LEEWAY_SECONDS: u64 = 60;
/// Most claims kept for matching, and the longest claim value.
const MAX_CLAIMS: usize = 64;
const MAX_CLAIM_VALUE: usize = 1024;

/// A verified OIDC token: what a trust policy is matched against. The
/// token itself is not kept.
#[derive(Debug, Clone)]
pub struct SubjectJwt {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub subject: String,
    pub jti: String,
    pub expires_at: DateTime<Utc>,
    /// Every string, boolean and number claim, as text.
    pub claims: BTreeMap<String, String>,
}

/// The `iss` a token claims, unverified: only to pick which issuer's keys
/// verify it (and to refuse at once an issuer no policy trusts).
pub fn unverified_issuer(token: &str) -> Result<String, OidcError> {
    let mut parts = token.split('.');
    let (Some(_), Some(payload), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(OidcError::Malformed("not three dot-separated parts".into()));
    };
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| OidcError::Malformed("the payload is not base64url".into()))?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| OidcError::Malformed("the payload is not JSON".into()))?;
    claims["iss"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| OidcError::Malformed("no iss claim".into()))
}

/// Whether `jwk` is a key of the kind `alg` needs (never a shared secret).
fn fits(jwk: &Jwk, alg: Algorithm) -> bool {
    if let Some(declared) = jwk.common.key_algorithm
        && format!("{declared:?}") != format!("{alg:?}")
    {
        return false;
    }
    match (&jwk.algorithm, alg) {
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512,
        ) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => ec.curve == EllipticCurve::P256,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES384) => ec.curve == EllipticCurve::P384,
        (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA) => true,
        _ => false,
    }
}

impl SubjectJwt {
    /// Verifies `token` as issued by `issuer` (one a trust policy names)
    /// for one of `audiences` (the audiences of the policies trusting the
    /// issuer), with the issuer's published key.
    pub async fn verify(
        token: &str,
        issuer: &str,
        audiences: &[String],
        keys: &IssuerKeys,
        now: DateTime<Utc>,
    ) -> Result<Self, OidcError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| OidcError::Malformed(format!("its header: {e}")))?;
        let alg = header.alg;
        if !matches!(
            alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        ) {
            return Err(OidcError::Algorithm(format!("{alg:?}")));
        }
        let kid = header.kid.ok_or(OidcError::NoKeyId)?;
        let jwk = keys.key(issuer, &kid).await?;
        if !fits(&jwk, alg) {
            return Err(OidcError::KeyMismatch {
                kid,
                alg: format!("{alg:?}"),
            });
        }
        let key = DecodingKey::from_jwk(&jwk).map_err(|e| OidcError::Invalid(format!("the issuer's key: {e}")))?;
        let mut validation = Validation::new(alg);
        validation.leeway = LEEWAY_SECONDS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_issuer(&[issuer]);
        validation.set_audience(audiences);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(token, &key, &validation)
            .map_err(|e| OidcError::Invalid(e.to_string()))?;
        let claims = data.claims;
        if let Some(iat) = claims.get("iat").and_then(serde_json::Value::as_i64)
            && iat > now.timestamp() + LEEWAY_SECONDS as i64
        {
            return Err(OidcError::Invalid("it was issued in the future (iat)".into()));
        }
        let expires_at = claims
            .get("exp")
            .and_then(serde_json::Value::as_i64)
            .and_then(|exp| DateTime::from_timestamp(exp, 0))
            .ok_or_else(|| OidcError::Invalid("exp is not a time".into()))?;
        let audiences: Vec<String> = match claims.get("aud") {
            Some(serde_json::Value::String(aud)) => vec![aud.clone()],
            Some(serde_json::Value::Array(auds)) => auds
                .iter()
                .filter_map(|a| a.as_str().map(str::to_owned))
                .collect::<HashSet<_>>()
                .into_iter()
                .collect(),
            _ => Vec::new(),
        };
        let text = |name: &str| claims.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        let subject = text("sub").ok_or_else(|| OidcError::Invalid("no sub".into()))?;
        let jti = text("jti").ok_or_else(|| {
            OidcError::Invalid("no jti: Latch refuses tokens it cannot tell apart from a replay".into())
        })?;
        let mut as_text = BTreeMap::new();
        for (name, value) in claims.iter().take(MAX_CLAIMS) {
            let value = match value {
                serde_json::Value::String(s) => s.clone(),
                serde_json::Value::Bool(b) => b.to_string(),
                serde_json::Value::Number(n) => n.to_string(),
                _ => continue,
            };
            if value.len() <= MAX_CLAIM_VALUE {
                as_text.insert(name.clone(), value);
            }
        }
        Ok(SubjectJwt {
            issuer: issuer.to_owned(),
            audiences,
            subject,
            jti,
            expires_at,
            claims: as_text,
        })
    }
}
