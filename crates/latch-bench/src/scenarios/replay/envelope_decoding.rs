//! The stored envelope decoded two ways over the same log, in the same run:
//! latch-core's hand-written `Deserialize` (what replay uses) and the
//! `#[serde(flatten)]` derive it replaced, kept here only to measure the
//! difference.

use std::time::Instant;

use chrono::{DateTime, Utc};
use latch_core::{Actor, Event, EventEnvelope, EventId, Position};
use latch_store::EventStore;
use serde::Deserialize;

/// The derived form `EventEnvelope` had before its deserializer was written
/// out: serde buffers each envelope into `Content` for `flatten`.
#[derive(Deserialize)]
#[allow(dead_code)]
struct FlattenedEnvelope {
    id: EventId,
    at: DateTime<Utc>,
    actor: Actor,
    #[serde(default)]
    request_id: Option<String>,
    #[serde(default)]
    idempotency_key_sha256: Option<String>,
    #[serde(flatten)]
    event: Event,
}

/// Events per second decoding the first `limit` events' data: (hand-written,
/// flattened derive).
pub fn compare(store: &EventStore, limit: usize) -> anyhow::Result<(f64, f64, usize)> {
    let mut data = Vec::with_capacity(limit);
    for stored in store.iter_from(Position::FIRST).take(limit) {
        data.push(stored?.data);
    }
    let started = Instant::now();
    for raw in &data {
        let envelope: EventEnvelope = serde_json::from_str(raw.get())?;
        std::hint::black_box(envelope);
    }
    let hand = data.len() as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for raw in &data {
        let envelope: FlattenedEnvelope = serde_json::from_str(raw.get())?;
        std::hint::black_box(envelope);
    }
    let flattened = data.len() as f64 / started.elapsed().as_secs_f64();
    Ok((hand, flattened, data.len()))
}
