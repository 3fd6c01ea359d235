//! `AccountNames`: account id ↔ name, read from the log, for offline
//! readers (latchd answers from its state). Names are never reused, so one
//! table serves every moment of the log.

use std::collections::HashMap;

use latch_core::{AccountId, AccountName, Event, EventEnvelope};
use latch_store::EventStore;

use crate::audit_error::AuditError;

#[derive(Debug, Clone, Default)]
pub struct AccountNames(HashMap<AccountId, String>);

impl AccountNames {
    /// Every account in the log, from the first event of each account
    /// stream: one read an account, not a scan of the log.
    pub fn read(store: &EventStore) -> Result<Self, AuditError> {
        let mut names = HashMap::new();
        for stream in store.stream_names("account-")? {
            for stored in store.read_stream(&stream, 1, 1)? {
                let envelope: EventEnvelope = stored.decode()?;
                if let Event::AccountCreated {
                    account_id, name, ..
                } = envelope.event
                {
                    names.insert(account_id, name.to_string());
                }
            }
        }
        Ok(Self(names))
    }

    pub fn get(&self, id: AccountId) -> Option<&str> {
        self.0.get(&id).map(String::as_str)
    }

    /// The account that was created with `name`, if any.
    pub fn id_of(&self, name: &AccountName) -> Option<AccountId> {
        self.0
            .iter()
            .find(|(_, known)| known.as_str() == name.as_str())
            .map(|(id, _)| *id)
    }
}
