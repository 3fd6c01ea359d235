//! Token metadata as the projection holds it. No secret: only its digest.

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::actor::Actor;
use crate::id::{AccountId, TokenId};
use crate::permission_set::PermissionSet;
use crate::policy::Policy;
use crate::token_digest::TokenDigest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revocation {
    #[serde(with = "crate::serde_time")]
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
    #[serde(with = "crate::serde_time")]
    pub issued_at: DateTime<Utc>,
    pub issued_by: Actor,
    /// Cut to `now + grace` when the token is rotated; `None`: never
    /// expires.
    #[serde(with = "crate::serde_time::option")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Empty: any source address.
    pub allowed_cidrs: Vec<IpNet>,
    /// Boxed: most tokens are never revoked, and every token would
    /// otherwise carry the room for a reason and who gave it.
    pub revoked: Option<Box<Revocation>>,
    pub rotated_from: Option<TokenId>,
    pub rotated_to: Option<TokenId>,
    /// The token it was exchanged from: revoking or rotating that one (or
    /// any token it descends from) revokes this one in the same append.
    /// (Always serialised: state snapshots are postcard, which cannot skip
    /// a field.)
    #[serde(default)]
    pub parent: Option<TokenId>,
    /// The trust policy it was exchanged under (for an OIDC token).
    #[serde(default)]
    pub trust_policy: Option<crate::id::TrustPolicyId>,
    /// Which time-based events the scheduler has already appended, so each
    /// appears exactly once.
    pub expiring_noted: bool,
    pub expired_noted: bool,
    pub rotation_due_noted: bool,
    /// When `token.reuse_detected` was last appended for it.
    #[serde(default, with = "crate::serde_time::option")]
    pub reuse_detected_at: Option<DateTime<Utc>>,
    pub version: u64,
}

impl Token {
    pub fn is_expired_at(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|at| now >= at)
    }

    /// When `token.expiring` is due under `policy`: `expiry_warning` before
    /// expiry. `None` for a token that never expires, was rotated (its
    /// successor carries on) or lives no longer than the warning itself.
    pub fn expiring_due(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        let expires_at = self.expires_at?;
        let warning = policy.expiry_warning.to_chrono();
        (self.rotated_to.is_none() && expires_at - self.issued_at > warning)
            .then(|| expires_at - warning)
    }

    /// When `token.rotation_due` is due under `policy`: `rotation_period`
    /// after issue. `None` without a rotation period.
    pub fn rotation_due(&self, policy: &Policy) -> Option<DateTime<Utc>> {
        policy
            .rotation_period
            .map(|period| self.issued_at + period.to_chrono())
    }

    /// Whether presenting this token at `seen_at` is reuse: it was revoked
    /// by then, or rotated and past its grace by at least `slack`.
    pub fn presented_after_its_end(&self, seen_at: DateTime<Utc>, slack: chrono::TimeDelta) -> bool {
        let revoked = self.revoked.as_ref().is_some_and(|r| r.at <= seen_at);
        let rotated_out = self.rotated_to.is_some()
            && self.expires_at.is_some_and(|at| seen_at >= at + slack);
        revoked || rotated_out
    }

    /// Whether `addr` may use this token.
    pub fn allows_source(&self, addr: std::net::IpAddr) -> bool {
        // An IPv4 client seen through an IPv6 socket arrives as ::ffff:a.b.c.d.
        let addr = addr.to_canonical();
        self.allowed_cidrs.is_empty() || self.allowed_cidrs.iter().any(|net| net.contains(&addr))
    }
}
