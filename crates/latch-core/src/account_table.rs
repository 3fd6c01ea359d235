//! `AccountTable`: every account the state knows (deleted ones too:
//! their names stay reserved, so a name in the audit trail always means
//! one account), by id and by name.
//!
//! Only the accounts are written, in the order added; the lookups by id
//! and by name are rebuilt when a table is read.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
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

#[derive(Debug, Clone, Default)]
pub(crate) struct AccountTable {
    /// Every account, in the order added (accounts are never removed): an
    /// account's slot is its place. Read from a checkpoint, each is
    /// written in turn, not into a random bucket of a table of accounts.
    accounts: Vec<Account>,
    by_id: HashMap<AccountId, u32, RandomKeys>,
    by_name: HashMap<AccountName, u32>,
}

impl AccountTable {
    pub(crate) fn len(&self) -> usize {
        self.accounts.len()
    }

    pub(crate) fn get(&self, id: &AccountId) -> Option<&Account> {
        self.by_id.get(id).map(|&slot| &self.accounts[slot as usize])
    }

    pub(crate) fn get_mut(&mut self, id: &AccountId) -> Option<&mut Account> {
        let slot = *self.by_id.get(id)?;
        self.accounts.get_mut(slot as usize)
    }

    pub(crate) fn by_name(&self, name: &AccountName) -> Option<&Account> {
        self.by_name.get(name).map(|&slot| &self.accounts[slot as usize])
    }

    /// Every account, in the order added.
    pub(crate) fn values(&self) -> impl Iterator<Item = &Account> {
        self.accounts.iter()
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
        let Ok(slot) = u32::try_from(self.accounts.len()) else {
            return false;
        };
        // One probe of each table (a checkpoint adds every account).
        let Entry::Vacant(by_id) = self.by_id.entry(account.id) else {
            return false;
        };
        let Entry::Vacant(by_name) = self.by_name.entry(account.name.clone()) else {
            return false;
        };
        by_name.insert(slot);
        by_id.insert(slot);
        self.accounts.push(account);
        true
    }
}

impl PartialEq for AccountTable {
    /// The same accounts, in whatever order they were added (a table read
    /// from a checkpoint written before accounts had an order holds them
    /// in the order of the table it was written from).
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len()
            && self.accounts.iter().all(|account| other.get(&account.id) == Some(account))
    }
}

impl Eq for AccountTable {}

impl Serialize for AccountTable {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(&self.accounts)
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
                    accounts: Vec::with_capacity(reserved),
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

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use uuid::Uuid;

    use super::*;
    use crate::account::AccountStatus;
    use crate::actor::Actor;
    use crate::role::RoleName;

    fn account(n: u128, name: &str) -> Account {
        let at = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        Account {
            id: AccountId::from_uuid(Uuid::from_u128(n)),
            name: AccountName::parse(name).unwrap(),
            role: RoleName::parse("auditor").unwrap(),
            description: String::new(),
            status: AccountStatus::Active,
            created_at: at,
            created_by: Actor::System,
            updated_at: at,
            version: 1,
        }
    }

    #[test]
    fn accounts_are_found_by_id_and_name_and_read_back() {
        let mut table = AccountTable::default();
        table.insert(account(2, "deploy"));
        table.insert(account(1, "backup"));
        // A taken id, a taken name: skipped, the first keeps them.
        table.insert(account(2, "other"));
        table.insert(account(3, "backup"));
        assert_eq!(table.len(), 2);
        let id = |n| AccountId::from_uuid(Uuid::from_u128(n));
        assert_eq!(table.get(&id(2)).map(|a| a.name.as_str()), Some("deploy"));
        assert_eq!(table.by_name(&AccountName::parse("backup").unwrap()).map(|a| a.id), Some(id(1)));
        assert!(table.get(&id(3)).is_none());
        assert!(table.by_name(&AccountName::parse("other").unwrap()).is_none());
        table.get_mut(&id(1)).unwrap().version = 5;
        assert_eq!(table.get(&id(1)).unwrap().version, 5);
        assert_eq!(table.values().map(|a| a.id).collect::<Vec<_>>(), [id(2), id(1)]);

        let read: AccountTable = postcard::from_bytes(&postcard::to_stdvec(&table).unwrap()).unwrap();
        assert_eq!(read, table);
        assert_eq!(read.by_name(&AccountName::parse("deploy").unwrap()).map(|a| a.id), Some(id(2)));
        let json: AccountTable = serde_json::from_str(&serde_json::to_string(&table).unwrap()).unwrap();
        assert_eq!(json, table);
    }

    #[test]
    fn tables_of_the_same_accounts_are_equal_in_any_order_and_duplicates_are_refused() {
        let mut one = AccountTable::default();
        let mut other = AccountTable::default();
        for n in 1..=5 {
            one.insert(account(n, &format!("svc-{n}")));
            other.insert(account(6 - n, &format!("svc-{}", 6 - n)));
        }
        assert_eq!(one, other);
        other.get_mut(&AccountId::from_uuid(Uuid::from_u128(3))).unwrap().version = 2;
        assert_ne!(one, other);

        let twice = postcard::to_stdvec(&[account(1, "a"), account(1, "b")]).unwrap();
        assert!(postcard::from_bytes::<AccountTable>(&twice).is_err());
        let twice = postcard::to_stdvec(&[account(1, "a"), account(2, "a")]).unwrap();
        assert!(postcard::from_bytes::<AccountTable>(&twice).is_err());
    }
}
