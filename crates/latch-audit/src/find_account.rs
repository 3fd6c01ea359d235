//! Finding an account id by name in the log, for offline filters given a
//! name. (latchd answers from its state; offline there is only the log.)

use latch_core::{AccountId, AccountName, Event, EventEnvelope, Position};
use latch_store::EventStore;

use crate::audit_error::AuditError;

/// The account that was created with `name` (names are never reused), or
/// `None`. Reads the log from the start, decoding only account creations.
pub fn find_account(
    store: &EventStore,
    name: &AccountName,
) -> Result<Option<AccountId>, AuditError> {
    for stored in store.iter_from(Position::FIRST) {
        let stored = stored?;
        if !stored.stream.starts_with("account-") || stored.version != 1 {
            continue;
        }
        let envelope: EventEnvelope = stored.decode()?;
        if let Event::AccountCreated {
            account_id,
            name: created,
            ..
        } = envelope.event
            && created == *name
        {
            return Ok(Some(account_id));
        }
    }
    Ok(None)
}
