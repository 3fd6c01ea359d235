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
/// The batch an event was signed in, `<first position>-<last position>`:
/// `Latch-Signature` is then over the batch's Merkle root (see
/// `feed_signing::batch_message`).
pub const LATCH_BATCH: &str = "Latch-Batch";
/// The event's inclusion proof in its batch: the sibling hashes from its
/// leaf up, hex, comma-separated; absent for a batch of one.
pub const LATCH_PROOF: &str = "Latch-Proof";

/// HA mode only, on the last event of a command sent with an idempotency
/// key: `<index key> <first position> <count> <fingerprint>`, the record a
/// standby writes so that a retry on the next leader is answered, not run
/// again. The index key is the SHA-256 of the caller-scoped key, never the
/// key (see `latch_store::idempotency_index_key`).
pub const LATCH_IDEMPOTENCY: &str = "Latch-Idempotency";
/// What a leader sets on each publish: the stream sequence it expects the
/// stream to be at, so a deposed leader can never append (JetStream
/// refuses the message).
pub const NATS_EXPECTED_LAST_SEQUENCE: &str = "Nats-Expected-Last-Sequence";
/// What a leader sets on each publish that follows one of its own: the
/// `Nats-Msg-Id` the stream's last message must have. It chains a batch's
/// messages (and a batch to the one published before it), so that once one
/// is refused every later one is too: a message can never land after a
/// gap (a foreign message in between moves the sequence, and the
/// sequence check alone would let the message after the refused one
/// through).
pub const NATS_EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";

/// The headers of an event message: `Nats-Msg-Id` and `Latch-Position`,
/// and `signed`'s (`SignedEvent::headers()`) when it is signed.
pub fn event_headers<'a>(
    recorded: &latch_core::RecordedEvent,
    signed: impl IntoIterator<Item = (&'static str, &'a str)>,
) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in signed {
        map.insert(name, value);
    }
    map.insert(NATS_MSG_ID, recorded.envelope.id.to_string().as_str());
    map.insert(LATCH_POSITION, recorded.position.to_string().as_str());
    map
}
