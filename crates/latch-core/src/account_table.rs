//! `AccountTable`: every account the state knows (deleted ones too:
//! their names stay reserved, so a name in the audit trail always means
//! one account), by id and by name.
//!
//! Only the accounts are written; the lookup by name is rebuilt when a
//! table is read.

use std::collections::HashMap;
use std::fmt;

use serde::de::{self, Deserialize, Deserializer, SeqAccess, Visitor};
use serde::ser::{Serialize, Serializer};

use crate::account::{Account, AccountName};
use crate::id::AccountId;
use crate::random_key_hasher::RandomKeys;

/// The most accounts reserved before any is read (4M, about 1 GB of
/// tables): a checkpoint is latchd's own file, its lengths trusted up to a
/// bound; past it the tables grow as they are filled.
const MOST_RESERVED: usize = 1 << 22;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AccountTable {
    by_id: HashMap<AccountId, Account, RandomKeys>,
    by_name: HashMap<AccountName, AccountId>,
}

impl AccountTable {
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    pub(crate) fn get(&self, id: &AccountId) -> Option<&Account> {
        self.by_id.get(id)
    }

    pub(crate) fn get_mut(&mut self, id: &AccountId) -> Option<&mut Account> {
        self.by_id.get_mut(id)
    }

    pub(crate) fn by_name(&self, name: &AccountName) -> Option<&Account> {
        self.by_name.get(name).and_then(|id| self.by_id.get(id))
    }

    /// Every account, in no particular order.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Account> {
        self.by_id.values()
    }

    /// Adds a newly created account. `decide` never creates one whose id
    /// or name is taken; should a log hold one anyway, the first keeps
    /// them and the second is skipped, as `evolve` skips what it cannot
    /// apply.
    pub(crate) fn insert(&mut self, account: Account) {
        self.add(account);
    }

    /// Adds `account` unless its id or name is taken; whether it did.
    fn add(&mut self, account: Account) -> bool {
        if self.by_id.contains_key(&account.id) || self.by_name.contains_key(&account.name) {
            return false;
        }
        self.by_name.insert(account.name.clone(), account.id);
        self.by_id.insert(account.id, account);
        true
    }
}

impl Serialize for AccountTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.by_id.values())
    }
}

impl<'de> Deserialize<'de> for AccountTable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Accounts;
        impl<'de> Visitor<'de> for Accounts {
            type Value = AccountTable;
            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a sequence of accounts")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<AccountTable, A::Error> {
                let reserved = seq.size_hint().unwrap_or(0).min(MOST_RESERVED);
                let mut table = AccountTable {
                    by_id: HashMap::with_capacity_and_hasher(reserved, RandomKeys::default()),
                    by_name: HashMap::with_capacity(reserved),
                };
                while let Some(account) = seq.next_element::<Account>()? {
                    if !table.add(account) {
                        return Err(de::Error::custom("two accounts with one id or one name"));
                    }
                }
                Ok(table)
            }
        }
        deserializer.deserialize_seq(Accounts)
    }
}
