//! The verifier library: a service embeds it to check Latch tokens locally
//! in microseconds, following revocations over NATS and failing closed when
//! it cannot prove it is current.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use latch_verify::{NatsConnection, Permission, Verifier, VerifierConfig};
//!
//! let verifier = Verifier::connect(VerifierConfig::new(NatsConnection::new(
//!     "nats://127.0.0.1:4222",
//! )))
//! .await?;
//! let issue: Permission = "certificates:issue".parse()?;
//! # let token = "";
//! match verifier.verify(token, &issue) {
//!     Ok(who) => println!("token {} of account {}", who.token_id, who.account_id),
//!     Err(denial) => println!("refused: {denial}"),
//! }
//! # Ok(())
//! # }
//! ```
//!
//! `Verifier::verify_from` also checks a token bound to source addresses
//! against the caller's address (`verify` refuses such tokens).
//!
//! A verifier is current while it has proved, within `max_staleness`, that
//! it has every event latchd published: by latchd's heartbeats, or, while
//! they are missing (latchd down), by asking JetStream for the stream's
//! last Latch event (`VerifierConfig::stream_probe`, on by default). When
//! it can prove neither, every check answers `Denial::Stale`.
//!
//! # Features
//!
//! - `axum` (default): `RequirePermission`, a tower layer that answers
//!   401/403/503 for axum services.
//! - `snapshot` (default): `SnapshotSource`, starting from latchd's
//!   `GET /v1/snapshot` (an HTTP client) instead of the whole stream.
//!
//! With neither (`default-features = false`), the verifier depends on the
//! domain, the bus contract and a NATS client only.
#![forbid(unsafe_code)]

mod denial;
#[cfg(feature = "axum")]
mod refused_uses;
mod require_permission;
#[cfg(feature = "snapshot")]
mod snapshot;
mod stats;
mod stream_probe;
mod usage_slots;
mod verifier;
mod verifier_config;

pub use denial::Denial;
#[cfg(feature = "axum")]
pub use require_permission::{RequirePermission, RequirePermissionService};
#[cfg(feature = "snapshot")]
pub use snapshot::SnapshotSource;
pub use stats::VerifierStats;
pub use verifier::{ConnectError, Verified, Verifier};
pub use verifier_config::{Follow, VerifierConfig};

// The types the API above is written in, so that a service needs no other
// Latch crate to use it.
pub use latch_bus::{NatsConnectError, NatsConnection, PublicKey, TrustedKeys};
pub use latch_core::{AccountId, Permission, PermissionSet, Position, Rejection, TokenId};
