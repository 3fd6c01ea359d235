//! NATS headers on every event message.

/// JetStream's de-duplication id: the event id. A republished event is
/// dropped by the stream inside its duplicate window.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The event's position in latchd's log, as a decimal string.
pub const LATCH_POSITION: &str = "Latch-Position";
/// The id of the log the event belongs to (see `latch_core::LogId`).
pub const LATCH_LOG_ID: &str = "Latch-Log-Id";
/// The event's chain hash, hex: SHA-256 of its stored record.
pub const LATCH_HASH: &str = "Latch-Hash";
/// latchd's signature, `<key id>:<base64url>` (see `feed_signing`).
pub const LATCH_SIGNATURE: &str = "Latch-Signature";
