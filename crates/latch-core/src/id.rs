//! Identifiers: UUIDv7 newtypes so an account id can never be passed where a
//! token id is expected. UUIDv7 sorts by creation time, which keeps RocksDB
//! keys and listings in a useful order.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        // No `Default`: a default that mints a fresh id would hide where
        // ids are made. Call `new()` where one is meant to be made.
        #[expect(
            clippy::new_without_default,
            reason = "a fresh id is made on purpose, with new(), never by default"
        )]
        impl $name {
            /// A new, time-ordered id. Ids are made at the edge (latchd) and
            /// carried in commands, so `decide` stays deterministic.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// The id of a service account.
    AccountId
);
uuid_id!(
    /// The public handle of a token (like Vault's accessor). Safe to log.
    TokenId
);
uuid_id!(
    /// The id of one event; NATS uses it as `Nats-Msg-Id` for de-duplication.
    EventId
);
uuid_id!(
    /// The id of a trust policy: which OIDC tokens may be exchanged for a
    /// token of an account.
    TrustPolicyId
);
uuid_id!(
    /// The id of one event log, created with it: what latchd signs every
    /// published event and heartbeat over, so events of another log (an old
    /// data directory, a second environment on the same NATS) never verify.
    /// A backup keeps its log's id: it is the same log.
    LogId
);

impl LogId {
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(Uuid::from_bytes(bytes))
    }
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }
}
