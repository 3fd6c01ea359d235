//! The verifier library: a service embeds it to check Latch tokens locally
//! in microseconds, following revocations over NATS and failing closed when
//! it cannot prove it is current.
#![forbid(unsafe_code)]

mod denial;
mod require_permission;
mod usage_slots;
mod verifier;
mod verifier_config;

pub use denial::Denial;
pub use latch_core::Permission;
pub use require_permission::{RequirePermission, RequirePermissionService};
pub use verifier::{ConnectError, Verified, Verifier, VerifierStats};
pub use verifier_config::{Follow, SnapshotSource, VerifierConfig};
