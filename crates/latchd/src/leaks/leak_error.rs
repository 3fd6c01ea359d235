//! `LeakError`: why a leak report from GitHub or GitLab was refused.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LeakError {
    #[error("missing header {0}")]
    MissingHeader(&'static str),
    #[error("{0} is not valid base64")]
    NotBase64(&'static str),
    #[error("no GitHub secret scanning key has identifier {0:?} (the keys were fetched again)")]
    UnknownKey(String),
    #[error("the signature does not verify against GitHub's key {0:?} over this body")]
    BadSignature(String),
    #[error("GitHub's secret scanning keys could not be fetched: {0}")]
    KeysUnavailable(String),
    #[error("the key {0:?} of the secret scanning keys is not a P-256 public key (PEM, SubjectPublicKeyInfo)")]
    BadKey(String),
}
