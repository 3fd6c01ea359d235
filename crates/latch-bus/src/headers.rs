//! NATS headers on every event message.

/// JetStream's de-duplication id: the event id. A republished event is
/// dropped by the stream inside its duplicate window.
pub const NATS_MSG_ID: &str = "Nats-Msg-Id";
/// The event's position in latchd's log, as a decimal string.
pub const LATCH_POSITION: &str = "Latch-Position";
