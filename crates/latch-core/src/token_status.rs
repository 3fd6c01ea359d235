//! `TokenStatus`: what a token was at a given moment, from the state alone.
//! latchd's views, the audit replay and `who-can` all ask the state the same
//! way, so "active at 14:02" means one thing everywhere.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenStatus {
    /// Would be accepted (source address aside).
    Active,
    /// Past its `expires_at` (a rotated token: past its grace).
    Expired,
    Revoked,
    /// Its account is disabled or deleted.
    Suspended,
}

impl TokenStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenStatus::Active => "active",
            TokenStatus::Expired => "expired",
            TokenStatus::Revoked => "revoked",
            TokenStatus::Suspended => "suspended",
        }
    }
}

impl fmt::Display for TokenStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
