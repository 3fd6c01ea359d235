//! `RequestLimits`: what one request may cost latchd before and after it
//! is authenticated (set by `ServeLimits`, latchd's command-line flags).

use std::time::Duration;

use crate::api::layers::failure_limiter::FailureBudget;

/// A request without a valid token may make latchd read (and drop) at most
/// this much of its body; a larger one is answered and the connection
/// closed. Authenticated requests may send `json_body::MAX_BODY_BYTES`.
pub const UNAUTHENTICATED_BODY_BYTES: usize = 4 * 1024;
/// A token exchange (`POST /v1/token-exchange`) carries its credential in
/// its body, so latchd reads up to this much of it without a valid
/// `Authorization` header (an OIDC token is a few KiB).
pub const EXCHANGE_BODY_BYTES: usize = 16 * 1024;

/// A leak report (`POST /v1/leaks` and GitHub's and GitLab's endpoints)
/// may be this large: 5,000 tokens with their locations.
pub const LEAK_BODY_BYTES: usize = 1024 * 1024;

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Failed (401, 403) requests each source may make.
    pub failures: FailureBudget,
    /// The most time a request body may take to arrive (408 after).
    pub body_read_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            failures: FailureBudget::default(),
            body_read_timeout: Duration::from_secs(10),
        }
    }
}
