//! `LeakReport`: a token someone found where it should not be, as `decide`
//! sees it: its digest (never the token), who found it and where.

use serde::{Deserialize, Serialize};

use crate::token_digest::TokenDigest;

/// Longest `source` kept (`github`, `gitlab`, `scanner:gitleaks`…).
pub const MAX_LEAK_SOURCE: usize = 64;
/// Longest `location` kept (a URL, a file and line); the edge cuts longer
/// ones, so a report is never refused for a long URL.
pub const MAX_LEAK_LOCATION: usize = 512;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeakReport {
    pub digest: TokenDigest,
    /// Who reported it: `github`, `gitlab`, or `scanner:<name>` for a scanner
    /// run by a caller holding `leaks:report`.
    pub source: String,
    /// Where it was found, as the reporter said (may be empty).
    pub location: String,
}
