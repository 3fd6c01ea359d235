//! Service accounts as the projection holds them.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::actor::Actor;
use crate::id::AccountId;
use crate::role::RoleName;

/// A unique, human-chosen account name such as `github-deploy`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountName(Box<str>);

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error(
    "account name {0:?} must be 1-64 characters of a-z, 0-9, '-', '_' or '.', starting with a letter or digit"
)]
pub struct AccountNameError(pub String);

impl AccountName {
    pub fn parse(text: &str) -> Result<Self, AccountNameError> {
        let bytes = text.as_bytes();
        let valid = !bytes.is_empty()
            && bytes.len() <= 64
            && bytes[0].is_ascii_alphanumeric()
            && bytes.iter().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
            });
        if valid {
            Ok(Self(text.into()))
        } else {
            Err(AccountNameError(text.to_owned()))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for AccountName {
    type Err = AccountNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Debug for AccountName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccountName({})", self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    /// Every token is suspended until the account is enabled again.
    Disabled {
        reason: String,
        #[serde(with = "crate::serde_time")]
        since: DateTime<Utc>,
    },
    /// Final: every token was revoked.
    Deleted {
        #[serde(with = "crate::serde_time")]
        since: DateTime<Utc>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: AccountId,
    pub name: AccountName,
    pub role: RoleName,
    pub description: String,
    pub status: AccountStatus,
    #[serde(with = "crate::serde_time")]
    pub created_at: DateTime<Utc>,
    pub created_by: Actor,
    #[serde(with = "crate::serde_time")]
    pub updated_at: DateTime<Utc>,
    /// How many events the account's stream holds: its optimistic
    /// concurrency version.
    pub version: u64,
}

impl Account {
    pub fn is_active(&self) -> bool {
        self.status == AccountStatus::Active
    }
}

crate::serde_as_text::serde_as_text!(AccountName);
