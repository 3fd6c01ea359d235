//! Between the domain's events and the log's records: an `EventEnvelope`
//! is stored as the record's JSON data, in the event's aggregate stream.

use latch_core::{EventEnvelope, RecordedEvent};
use latch_store::{NewEvent, RawValue, StoreError, StoredEvent};

pub fn to_new_event(envelope: &EventEnvelope) -> NewEvent {
    let json = serde_json::to_string(envelope).expect("events serialise");
    NewEvent {
        stream: envelope.event.stream().into_string(),
        data: RawValue::from_string(json).expect("serde_json output is JSON"),
    }
}

pub fn to_recorded(stored: &StoredEvent) -> Result<RecordedEvent, StoreError> {
    Ok(RecordedEvent {
        position: stored.position,
        version: stored.version,
        envelope: stored.decode()?,
    })
}
