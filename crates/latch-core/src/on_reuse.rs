//! `OnReuse`: what Latch does when a token is presented after it was
//! rotated out (past its grace) or revoked.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The policy `on_reuse`. Either way `token.reuse_detected` is appended
/// (at most once per token per `REUSE_ALERT_WINDOW`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnReuse {
    /// Only tell (the default): a pipeline that retries with the token it
    /// had before a rotation must not lose the new one for it.
    #[default]
    Alert,
    /// Also revoke the live tokens rotated from it (its successors): whoever
    /// holds the old secret may have rotated it, as RFC 9700 advises for
    /// rotated refresh tokens.
    Revoke,
}

impl OnReuse {
    pub fn as_str(&self) -> &'static str {
        match self {
            OnReuse::Alert => "alert",
            OnReuse::Revoke => "revoke",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "alert" => Some(OnReuse::Alert),
            "revoke" => Some(OnReuse::Revoke),
            _ => None,
        }
    }
}

impl fmt::Display for OnReuse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
