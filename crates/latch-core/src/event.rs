//! Events: the only way state changes. Each names `account_id` and
//! `token_id` wherever they apply, so a subscriber on NATS needs nothing
//! else. None holds a token secret, only its digest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use std::net::IpAddr;

use crate::account::AccountName;
use crate::id::{AccountId, TokenId, TrustPolicyId};
use crate::span::Span;
use crate::trust_policy::{ClaimPattern, OidcExchange};
use crate::on_reuse::OnReuse;
use crate::permission_set::PermissionSet;
use crate::policy::PolicySettings;
use crate::role::RoleName;
use crate::token_digest::TokenDigest;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum Event {
    #[serde(rename = "account.created")]
    AccountCreated {
        account_id: AccountId,
        name: AccountName,
        role: RoleName,
        description: String,
    },
    /// Only the fields that changed are present.
    #[serde(rename = "account.updated")]
    AccountUpdated {
        account_id: AccountId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<RoleName>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        description: Option<String>,
    },
    #[serde(rename = "account.disabled")]
    AccountDisabled {
        account_id: AccountId,
        reason: String,
    },
    #[serde(rename = "account.enabled")]
    AccountEnabled { account_id: AccountId },
    /// Preceded, in the same append, by a `token.revoked` for each of the
    /// account's live tokens.
    #[serde(rename = "account.deleted")]
    AccountDeleted { account_id: AccountId },
    #[serde(rename = "token.issued")]
    TokenIssued {
        token_id: TokenId,
        account_id: AccountId,
        name: String,
        scopes: PermissionSet,
        digest: TokenDigest,
        /// `None`: the token never expires (policy `require_expiry = false`).
        #[serde(default, with = "crate::serde_time::text::option")]
        expires_at: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        allowed_cidrs: Vec<IpNet>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rotated_from: Option<TokenId>,
        /// The token this one was exchanged from (`POST /v1/token-exchange`
        /// with a Latch token): it ends with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        parent: Option<TokenId>,
        /// The OIDC token it was exchanged for (issuer, subject, `jti`,
        /// trust policy), never the token itself.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        oidc: Option<OidcExchange>,
    },
    #[serde(rename = "token.revoked")]
    TokenRevoked {
        token_id: TokenId,
        account_id: AccountId,
        reason: String,
    },
    /// The old token now expires at `expires_at` (its grace); appended with
    /// the successor's `token.issued` in one atomic write.
    #[serde(rename = "token.rotated")]
    TokenRotated {
        token_id: TokenId,
        account_id: AccountId,
        successor_id: TokenId,
        #[serde(with = "crate::serde_time::text")]
        expires_at: DateTime<Utc>,
    },
    #[serde(rename = "token.expiring")]
    TokenExpiring {
        token_id: TokenId,
        account_id: AccountId,
        #[serde(with = "crate::serde_time::text")]
        expires_at: DateTime<Utc>,
    },
    #[serde(rename = "token.expired")]
    TokenExpired {
        token_id: TokenId,
        account_id: AccountId,
        #[serde(with = "crate::serde_time::text")]
        expires_at: DateTime<Utc>,
    },
    #[serde(rename = "token.rotation_due")]
    TokenRotationDue {
        token_id: TokenId,
        account_id: AccountId,
        #[serde(with = "crate::serde_time::text")]
        issued_at: DateTime<Utc>,
    },
    /// Someone found the token where it should not be (GitHub or GitLab
    /// secret detection, a scanner): appended with the `token.revoked` of
    /// it and of every token rotated or exchanged from it.
    #[serde(rename = "token.leak_reported")]
    TokenLeakReported {
        token_id: TokenId,
        account_id: AccountId,
        /// `github`, `gitlab` or `scanner:<name>`.
        source: String,
        /// Where it was found, as the reporter said.
        location: String,
    },
    /// The token was presented after it was rotated out (past its grace)
    /// or revoked: whoever presented it holds a secret that should be
    /// gone. At most once per token per hour.
    #[serde(rename = "token.reuse_detected")]
    TokenReuseDetected {
        token_id: TokenId,
        account_id: AccountId,
        /// When it was presented (by the reporter's clock, never later
        /// than latchd's).
        #[serde(with = "crate::serde_time::text")]
        seen_at: DateTime<Utc>,
        /// The presenter's address, when the service knew it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        source_address: Option<IpAddr>,
        /// Where: `latchd`, or the verifier's name as it reports itself.
        service: String,
        /// The newest token rotated from it, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        successor_id: Option<TokenId>,
        /// The policy applied: `revoke` means its live successors are
        /// revoked in the same append.
        on_reuse: OnReuse,
    },
    #[serde(rename = "role.defined")]
    RoleDefined {
        name: RoleName,
        permissions: PermissionSet,
        description: String,
    },
    #[serde(rename = "role.deleted")]
    RoleDeleted { name: RoleName },
    /// The whole layer: global when `role` is absent, else that role's override.
    #[serde(rename = "policy.updated")]
    PolicyUpdated {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<RoleName>,
        settings: PolicySettings,
    },
    /// latchd signs what it publishes with a new key from the next
    /// position on. This event itself is signed with the old key, so a
    /// verifier that trusts the old key learns the new one from the feed,
    /// and stops trusting the old one.
    #[serde(rename = "signing_key.rotated")]
    SigningKeyRotated {
        /// `ed25519:<base64url>`, as verifiers are configured with it.
        public_key: String,
    },
    /// OIDC tokens matching it may be exchanged for a token of the account.
    #[serde(rename = "trust_policy.added")]
    TrustPolicyAdded {
        policy_id: TrustPolicyId,
        account_id: AccountId,
        issuer: String,
        audience: String,
        claims: BTreeMap<String, ClaimPattern>,
        scopes: PermissionSet,
        max_ttl: Span,
    },
    #[serde(rename = "trust_policy.removed")]
    TrustPolicyRemoved {
        policy_id: TrustPolicyId,
        account_id: AccountId,
    },
}

/// The aggregate stream an event belongs to: `account-<id>`, `token-<id>`,
/// `role-<name>` or `policy`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(String);

impl StreamName {
    pub fn account(id: AccountId) -> Self {
        Self(format!("account-{id}"))
    }
    pub fn token(id: TokenId) -> Self {
        Self(format!("token-{id}"))
    }
    pub fn role(name: &RoleName) -> Self {
        Self(format!("role-{name}"))
    }
    pub fn policy() -> Self {
        Self("policy".to_owned())
    }
    /// What a leak report addresses (its events go to their tokens'
    /// streams; this stream holds none).
    pub fn leak_reports() -> Self {
        Self("leak-reports".to_owned())
    }
    pub fn signing_key() -> Self {
        Self("signing-key".to_owned())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

impl Event {
    /// The dotted type: `token.revoked`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Event::AccountCreated { .. } => "account.created",
            Event::AccountUpdated { .. } => "account.updated",
            Event::AccountDisabled { .. } => "account.disabled",
            Event::AccountEnabled { .. } => "account.enabled",
            Event::AccountDeleted { .. } => "account.deleted",
            Event::TokenIssued { .. } => "token.issued",
            Event::TokenRevoked { .. } => "token.revoked",
            Event::TokenRotated { .. } => "token.rotated",
            Event::TokenExpiring { .. } => "token.expiring",
            Event::TokenExpired { .. } => "token.expired",
            Event::TokenRotationDue { .. } => "token.rotation_due",
            Event::TokenLeakReported { .. } => "token.leak_reported",
            Event::TokenReuseDetected { .. } => "token.reuse_detected",
            Event::RoleDefined { .. } => "role.defined",
            Event::RoleDeleted { .. } => "role.deleted",
            Event::PolicyUpdated { .. } => "policy.updated",
            Event::SigningKeyRotated { .. } => "signing_key.rotated",
            Event::TrustPolicyAdded { .. } => "trust_policy.added",
            Event::TrustPolicyRemoved { .. } => "trust_policy.removed",
        }
    }

    /// The event's body as JSON (what CloudEvents carry as `data`), without
    /// the type tag.
    pub fn body(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut tagged)) => tagged.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// Every event type, for documentation and for checks that a codec
    /// or a route handles them all.
    pub const TYPES: [&'static str; 19] = [
        "account.created",
        "account.updated",
        "account.disabled",
        "account.enabled",
        "account.deleted",
        "token.issued",
        "token.revoked",
        "token.rotated",
        "token.expiring",
        "token.expired",
        "token.rotation_due",
        "token.leak_reported",
        "token.reuse_detected",
        "role.defined",
        "role.deleted",
        "policy.updated",
        "signing_key.rotated",
        "trust_policy.added",
        "trust_policy.removed",
    ];

    pub fn account_id(&self) -> Option<AccountId> {
        match self {
            Event::AccountCreated { account_id, .. }
            | Event::AccountUpdated { account_id, .. }
            | Event::AccountDisabled { account_id, .. }
            | Event::AccountEnabled { account_id }
            | Event::AccountDeleted { account_id }
            | Event::TokenIssued { account_id, .. }
            | Event::TokenRevoked { account_id, .. }
            | Event::TokenRotated { account_id, .. }
            | Event::TokenExpiring { account_id, .. }
            | Event::TokenExpired { account_id, .. }
            | Event::TokenRotationDue { account_id, .. }
            | Event::TokenLeakReported { account_id, .. }
            | Event::TokenReuseDetected { account_id, .. }
            | Event::TrustPolicyAdded { account_id, .. }
            | Event::TrustPolicyRemoved { account_id, .. } => Some(*account_id),
            Event::RoleDefined { .. }
            | Event::RoleDeleted { .. }
            | Event::PolicyUpdated { .. }
            | Event::SigningKeyRotated { .. } => None,
        }
    }

    pub fn token_id(&self) -> Option<TokenId> {
        match self {
            Event::TokenIssued { token_id, .. }
            | Event::TokenRevoked { token_id, .. }
            | Event::TokenRotated { token_id, .. }
            | Event::TokenExpiring { token_id, .. }
            | Event::TokenExpired { token_id, .. }
            | Event::TokenRotationDue { token_id, .. }
            | Event::TokenLeakReported { token_id, .. }
            | Event::TokenReuseDetected { token_id, .. } => Some(*token_id),
            _ => None,
        }
    }

    pub fn stream(&self) -> StreamName {
        if let Some(token_id) = self.token_id() {
            return StreamName::token(token_id);
        }
        if let Some(account_id) = self.account_id() {
            return StreamName::account(account_id);
        }
        match self {
            Event::RoleDefined { name, .. } | Event::RoleDeleted { name } => StreamName::role(name),
            Event::SigningKeyRotated { .. } => StreamName::signing_key(),
            _ => StreamName::policy(),
        }
    }
}
