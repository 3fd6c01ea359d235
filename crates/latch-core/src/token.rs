//! Token metadata as the projection holds it. No secret: only its digest.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::id::{AccountId, TokenId};
use crate::permission_set::PermissionSet;
use crate::token_digest::TokenDigest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    pub at: DateTime<Utc>,
    pub by: Actor,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Token {
    pub id: TokenId,
    pub account_id: AccountId,
    pub name: String,
    pub scopes: PermissionSet,
    pub digest: TokenDigest,
    pub issued_at: DateTime<Utc>,
    pub issued_by: Actor,
    /// Cut to `now + grace` when the token is rotated.
    pub expires_at: DateTime<Utc>,
    /// Empty: any source address.
    pub allowed_cidrs: Vec<IpNet>,
    pub revoked: Option<Revocation>,
    pub rotated_from: Option<TokenId>,
    pub rotated_to: Option<TokenId>,
    /// Which time-based events the scheduler has already appended, so each
    /// appears exactly once.
    pub expiring_noted: bool,
    pub expired_noted: bool,
    pub rotation_due_noted: bool,
    pub version: u64,
}

impl Token {
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// Whether `addr` may use this token.
    pub fn allows_source(&self, addr: std::net::IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let addr = addr.to_canonical();
        self.allowed_cidrs.is_empty() || self.allowed_cidrs.iter().any(|net| net.contains(&addr))
    }
}
