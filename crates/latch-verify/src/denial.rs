//! Why a verifier refused a token.

use latch_core::Rejection;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Denial {
    /// The verifier cannot prove it is current (no heartbeat or event it
    /// could vouch for within `max_staleness`): every token is refused.
    #[error("verifier stale: it cannot prove it has every revocation")]
    Stale,
    /// The token itself is not acceptable (401).
    #[error(transparent)]
    Rejected(#[from] Rejection),
    /// The token is fine but lacks the permission (403).
    #[error("missing permission")]
    MissingPermission,
}
