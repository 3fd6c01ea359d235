//! OIDC subject tokens for `POST /v1/token-exchange`: a CI platform's
//! identity token (GitHub Actions, GitLab CI, …) checked against the
//! issuer's published keys before any trust policy is consulted.
//!
//! - `IssuerKeys`: each trusted issuer's JWKS, from its discovery
//!   document, cached and fetched again (at most once a second) when a token
//!   names a key it does not hold. Only issuers some trust policy names are
//!   ever fetched: a token cannot make latchd call an address of its
//!   choosing.
//! - `SubjectJwt`: the token's signature (asymmetric algorithms only, the
//!   key's type matching the algorithm), `iss`, `aud`, `exp`/`nbf`/`iat`
//!   with a minute of leeway; its claims as text for the policy to match.
//! - `SubjectLimiter`: failed exchanges per issuer and subject.

mod issuer_keys;
mod oidc_error;
mod subject_jwt;
mod subject_limiter;

pub use issuer_keys::IssuerKeys;
pub use oidc_error::OidcError;
pub use subject_jwt::{SubjectJwt, unverified_issuer};
pub use subject_limiter::SubjectLimiter;
