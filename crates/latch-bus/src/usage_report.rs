//! `UsageReport`: what a verifier tells latchd about the tokens it accepted,
//! in batches on `latch.usage.<account_id>` every few seconds, so latchd can
//! show when and from where each token was last used (and which tokens have
//! gone unused).

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use latch_core::{AccountId, TokenId};
use serde::{Deserialize, Serialize};

/// One token's accepted uses at one verifier since its last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUse {
    pub token_id: TokenId,
    pub count: u64,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    /// The source address of the last use, when the service knew it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_from: Option<IpAddr>,
}

/// A batch for one account, from one verifier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageReport {
    /// Names the reporting verifier (its service name and instance).
    pub verifier: String,
    pub account_id: AccountId,
    pub uses: Vec<TokenUse>,
    /// Known tokens the verifier refused because they were revoked or had
    /// expired (`count`, times and last address as in `uses`): latchd tells
    /// a rotated-out or revoked token presented again as
    /// `token.reuse_detected`. Absent from older verifiers' reports.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refused: Vec<TokenUse>,
}

impl UsageReport {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a usage report serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
