//! `ActivityRecordIndexer`: the keys API activity records are indexed
//! under (the account and the token a record is about), and `ActivityOf`,
//! which of them a question reads (ADR 0029).
//!
//! latchd installs the indexer on its store
//! (`EventStore::index_activity_with`); `ActivityRecord::scan_of` reads
//! the index while it is whole and scans every record otherwise, and
//! hands out only records about what was asked either way.

use latch_core::{AccountId, TokenId};
use latch_store::{ActivityIndexer, IndexKey};
use serde::Deserialize;

const BY_ACCOUNT: u8 = b'a';
const BY_TOKEN: u8 = b't';

/// Derives an activity record's index keys from its stored JSON.
#[derive(Debug, Clone, Copy, Default)]
pub struct ActivityRecordIndexer;

impl ActivityRecordIndexer {
    /// Bumped whenever the keys change: an index of another version is
    /// rebuilt when latchd starts.
    pub const VERSION: u32 = 1;
}

/// What the keys are made of, read without the rest of the record.
#[derive(Deserialize)]
struct Keyed {
    account_id: Option<AccountId>,
    token_id: Option<TokenId>,
}

impl ActivityIndexer for ActivityRecordIndexer {
    fn version(&self) -> u32 {
        Self::VERSION
    }

    fn keys(&self, record: &[u8], keys: &mut Vec<IndexKey>) {
        let Ok(keyed) = serde_json::from_slice::<Keyed>(record) else {
            return;
        };
        if let Some(account) = keyed.account_id {
            keys.push(ActivityOf::Account(account).key());
        }
        if let Some(token) = keyed.token_id {
            keys.push(ActivityOf::Token(token).key());
        }
    }
}

/// Which activity records a question is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActivityOf {
    /// Requests made by the account's tokens (or refused while presenting
    /// one), and its tokens' uses verifiers reported.
    Account(AccountId),
    /// Requests made with the token (accepted or refused), and its uses
    /// verifiers reported.
    Token(TokenId),
}

impl ActivityOf {
    pub(crate) fn key(self) -> IndexKey {
        match self {
            ActivityOf::Account(account) => {
                IndexKey::new(BY_ACCOUNT, account.as_uuid().as_bytes().to_vec())
            }
            ActivityOf::Token(token) => IndexKey::new(BY_TOKEN, token.as_uuid().as_bytes().to_vec()),
        }
    }

    /// Whether the record is one this question is about.
    pub fn matches(self, account_id: Option<AccountId>, token_id: Option<TokenId>) -> bool {
        match self {
            ActivityOf::Account(account) => account_id == Some(account),
            ActivityOf::Token(token) => token_id == Some(token),
        }
    }
}
