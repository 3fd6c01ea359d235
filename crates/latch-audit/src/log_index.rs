//! `LogIndexer`: the keys each event of a Latch log is indexed under, so an
//! investigation reads only the events it needs (ADR 0026).
//!
//! - by token: events whose token is it, and those that name it as the
//!   token they rotated from or to or as their parent;
//! - by account: every event of the account, its tokens' included;
//! - by actor: the account and the token that caused it, or the system;
//! - by time: the event's time (microseconds), so the first event at or
//!   after a moment is one seek (the log's times never go backwards: one
//!   writer stamps them in position order).
//!
//! latchd installs it on its store (`EventStore::index_with`); readers ask
//! `LogIndex::open`, which answers only while the index is whole.

use chrono::{DateTime, Utc};
use latch_core::{AccountId, Actor, Position, TokenId};
use serde::Deserialize;
use latch_store::{EventIndexer, EventStore, IndexKey};

use crate::audit_error::AuditError;

const BY_TOKEN: u8 = b't';
const BY_ACCOUNT: u8 = b'a';
const BY_ACTOR_ACCOUNT: u8 = b'A';
const BY_ACTOR_TOKEN: u8 = b'T';
const BY_ACTOR_SYSTEM: u8 = b'S';
const BY_TIME: u8 = b'@';

/// Derives an event's index keys from its stored envelope.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogIndexer;

impl LogIndexer {
    /// Bumped whenever the keys change: an index of another version is
    /// rebuilt when latchd starts.
    pub const VERSION: u32 = 1;
}

/// What the keys are made of, read from an envelope without the rest of
/// it (no permission, digest or name is parsed: every append pays this).
/// The names are the events' own: `token_id` and `account_id` wherever an
/// event has them, `rotated_from` and `parent` on `token.issued`,
/// `successor_id` on `token.rotated` and `token.reuse_detected`.
#[derive(Deserialize)]
struct Keyed {
    at: DateTime<Utc>,
    actor: Actor,
    data: KeyedData,
}

#[derive(Deserialize)]
struct KeyedData {
    token_id: Option<TokenId>,
    account_id: Option<AccountId>,
    rotated_from: Option<TokenId>,
    parent: Option<TokenId>,
    successor_id: Option<TokenId>,
}

impl EventIndexer for LogIndexer {
    fn version(&self) -> u32 {
        Self::VERSION
    }

    fn keys(&self, data: &str, keys: &mut Vec<IndexKey>) -> Result<(), String> {
        let keyed: Keyed = serde_json::from_str(data).map_err(|e| e.to_string())?;
        let named = &keyed.data;
        let tokens = [named.token_id, named.rotated_from, named.parent, named.successor_id];
        for token in tokens.into_iter().flatten() {
            keys.push(token_key(token));
        }
        if let Some(account) = named.account_id {
            keys.push(account_key(account));
        }
        match keyed.actor {
            Actor::System => keys.push(IndexKey::new(BY_ACTOR_SYSTEM, Vec::new())),
            Actor::Token {
                account_id,
                token_id,
            } => {
                keys.push(IndexKey::new(BY_ACTOR_ACCOUNT, account_id.as_uuid().as_bytes().to_vec()));
                keys.push(IndexKey::new(BY_ACTOR_TOKEN, token_id.as_uuid().as_bytes().to_vec()));
            }
        }
        keys.push(IndexKey::new(BY_TIME, time_key(keyed.at).to_vec()));
        Ok(())
    }
}

fn token_key(token: TokenId) -> IndexKey {
    IndexKey::new(BY_TOKEN, token.as_uuid().as_bytes().to_vec())
}

fn account_key(account: AccountId) -> IndexKey {
    IndexKey::new(BY_ACCOUNT, account.as_uuid().as_bytes().to_vec())
}

/// A time as 8 bytes that sort as the times do (microseconds since the
/// epoch, sign bit flipped, big-endian).
fn time_key(at: DateTime<Utc>) -> [u8; 8] {
    ((at.timestamp_micros() as u64) ^ (1 << 63)).to_be_bytes()
}

/// Which events a question is about, as the index knows them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexedBy {
    /// Events that name the token (see `LogIndexer`).
    Token(TokenId),
    /// Every event of the account.
    Account(AccountId),
    /// Events caused by any token of the account.
    ActorAccount(AccountId),
    /// Events caused by the token.
    ActorToken(TokenId),
    /// Events Latch caused itself.
    ActorSystem,
}

impl IndexedBy {
    fn key(self) -> IndexKey {
        match self {
            IndexedBy::Token(token) => token_key(token),
            IndexedBy::Account(account) => account_key(account),
            IndexedBy::ActorAccount(account) => {
                IndexKey::new(BY_ACTOR_ACCOUNT, account.as_uuid().as_bytes().to_vec())
            }
            IndexedBy::ActorToken(token) => {
                IndexKey::new(BY_ACTOR_TOKEN, token.as_uuid().as_bytes().to_vec())
            }
            IndexedBy::ActorSystem => IndexKey::new(BY_ACTOR_SYSTEM, Vec::new()),
        }
    }
}

/// The index of a log, while it answers for the whole log: as of the
/// head it was opened at.
#[derive(Debug, Clone, Copy)]
pub struct LogIndex<'s> {
    store: &'s EventStore,
    head: Position,
}

impl<'s> LogIndex<'s> {
    /// `None` when the index is missing, behind the log or of another
    /// version: then only a scan of the log answers (latchd rebuilds the
    /// index when it starts; offline, `latch audit reindex`).
    pub fn open(store: &'s EventStore) -> Result<Option<Self>, AuditError> {
        // The head first: whatever the index holds past it is not read.
        let head = store.head().position;
        if !store.index_status(LogIndexer::VERSION)?.is_fresh() {
            return Ok(None);
        }
        Ok(Some(Self { store, head }))
    }

    /// The head the index answers for.
    pub fn head(&self) -> Position {
        self.head
    }

    /// The positions of the events `by` finds, after `after`, in order.
    pub fn positions(
        &self,
        by: IndexedBy,
        after: Position,
    ) -> impl Iterator<Item = Result<Position, AuditError>> + use<'s> {
        self.store
            .indexed_positions(&by.key(), after, self.head)
            .map(|p| p.map_err(AuditError::from))
    }

    /// The first position whose event was recorded at or after `at`;
    /// `None` when every event is older.
    pub fn first_at_or_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, AuditError> {
        Ok(self
            .store
            .first_indexed_at_least(BY_TIME, &time_key(at))?
            .filter(|position| *position <= self.head))
    }

    /// The first position whose event was recorded after `at`.
    pub fn first_after(&self, at: DateTime<Utc>) -> Result<Option<Position>, AuditError> {
        match at.checked_add_signed(chrono::TimeDelta::microseconds(1)) {
            Some(next) => self.first_at_or_after(next),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_keys_sort_as_the_times_do_either_side_of_the_epoch() {
        let times = [
            DateTime::<Utc>::MIN_UTC,
            DateTime::from_timestamp(-1, 0).unwrap(),
            DateTime::from_timestamp(0, 0).unwrap(),
            DateTime::from_timestamp(0, 1_000).unwrap(),
            DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
        ];
        for pair in times.windows(2) {
            assert!(time_key(pair[0]) < time_key(pair[1]), "{pair:?}");
        }
    }
}
