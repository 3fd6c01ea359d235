//! `OidcError`: why an OIDC subject token was not accepted. Never quotes
//! the token.

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OidcError {
    #[error("the subject token is not a JWT: {0}")]
    Malformed(String),
    #[error("no trust policy trusts the issuer {0:?}")]
    UntrustedIssuer(String),
    #[error("the token's algorithm {0} is not accepted (RS256/384/512, PS256/384/512, ES256/384 and EdDSA are)")]
    Algorithm(String),
    #[error("the token names no key (kid)")]
    NoKeyId,
    #[error("the issuer publishes no key {0:?}")]
    UnknownKey(String),
    #[error("the issuer's key {kid:?} does not fit the token's algorithm {alg}")]
    KeyMismatch { kid: String, alg: String },
    #[error("the token does not verify: {0}")]
    Invalid(String),
    #[error("the issuer's keys could not be fetched: {0}")]
    IssuerUnavailable(String),
}
