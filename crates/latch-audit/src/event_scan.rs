//! Reading the log through an `EventFilter`, a page or all of it.

use latch_core::{EventEnvelope, Position};
use latch_store::EventStore;

use crate::audit_error::AuditError;
use crate::audit_event::{AuditEvent, NameOf};
use crate::event_filter::{EventFilter, Verdict};

/// Where a scan stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanEnd {
    /// The last position read: the next scan goes on after it.
    pub last_read: Position,
    /// No later event can match: the filter's position or time range ended.
    pub complete: bool,
}

/// Reads events after `after` (and from the filter's first position),
/// handing those that match to `each` until it says stop, the log ends, the
/// filter's range ends, or `read_limit` events were read. Actors are
/// named by `name_of`.
pub fn scan_events(
    store: &EventStore,
    filter: &EventFilter,
    after: Position,
    read_limit: u64,
    name_of: &NameOf<'_>,
    mut each: impl FnMut(AuditEvent) -> bool,
) -> Result<ScanEnd, AuditError> {
    let start = after.next().max(filter.first_position());
    let mut end = ScanEnd {
        last_read: Position::new(start.get() - 1).max(after),
        complete: false,
    };
    for stored in store.iter_from(start).take(read_limit as usize) {
        let stored = stored?;
        let envelope: EventEnvelope = stored.decode()?;
        match filter.check(stored.position, &envelope) {
            Verdict::PastTheEnd => {
                end.complete = true;
                break;
            }
            Verdict::Skip => end.last_read = stored.position,
            Verdict::Matches => {
                end.last_read = stored.position;
                if !each(AuditEvent::of(&stored, &envelope, name_of)) {
                    break;
                }
            }
        }
    }
    Ok(end)
}
