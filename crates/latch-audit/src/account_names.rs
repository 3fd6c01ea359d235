//! `AccountNames`: account id ↔ name, read from the log, for offline
//! readers (latchd answers from its state). Names are never reused, so one
//! table serves every moment of the log.

use std::collections::HashMap;

use latch_core::{AccountId, AccountName, Event, EventEnvelope, StreamName};
use latch_store::EventStore;

use crate::audit_error::AuditError;

#[derive(Debug, Clone, Default)]
pub struct AccountNames(HashMap<AccountId, String>);

impl AccountNames {
    /// Every account in the log, from the first event of each account
    /// stream: one read an account, not a scan of the log (but a read of
    /// every account: for a few names, `name_in`).
    pub fn read(store: &EventStore) -> Result<Self, AuditError> {
        let mut names = HashMap::new();
        for stream in store.stream_names("account-")? {
            if let Some((account_id, name)) = created(store, &stream)? {
                names.insert(account_id, name);
            }
        }
        Ok(Self(names))
    }

    /// The name account `id` was created with, from its stream's first
    /// event alone; `None` for an account the log does not hold.
    pub fn name_in(store: &EventStore, id: AccountId) -> Result<Option<String>, AuditError> {
        Ok(created(store, StreamName::account(id).as_str())?
            .filter(|(created_id, _)| *created_id == id)
            .map(|(_, name)| name))
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

/// The id and name in the `account.created` that opens `stream`.
fn created(store: &EventStore, stream: &str) -> Result<Option<(AccountId, String)>, AuditError> {
    for stored in store.read_stream(stream, 1, 1)? {
        let envelope: EventEnvelope = stored.decode()?;
        if let Event::AccountCreated {
            account_id, name, ..
        } = envelope.event
        {
            return Ok(Some((account_id, name.to_string())));
        }
    }
    Ok(None)
}
