//! `AccountNames`: account id → name, to name the actors of events. Names
//! are never reused, so one table serves every moment of the log.

use std::collections::HashMap;

use latch_core::{AccountId, Event, EventEnvelope, State};
use latch_store::EventStore;

use crate::audit_error::AuditError;

#[derive(Debug, Clone, Default)]
pub struct AccountNames(HashMap<AccountId, String>);

impl AccountNames {
    /// Every account `state` knows (latchd's live state knows every account
    /// ever created, deleted ones too).
    pub fn of_state(state: &State) -> Self {
        Self(
            state
                .accounts()
                .map(|account| (account.id, account.name.to_string()))
                .collect(),
        )
    }

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
}
