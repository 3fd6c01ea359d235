//! Commands: requests to change state. `decide` turns each into events or a
//! rejection. Everything random or time-dependent (ids, the new token's
//! digest, the clock) is made at the edge and carried in, so `decide` is a
//! pure function.

use std::collections::BTreeMap;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::account::AccountName;
use crate::api_permission;
use crate::event::StreamName;
use crate::id::{AccountId, TokenId, TrustPolicyId};
use crate::leak_report::LeakReport;
use crate::permission::Permission;
use crate::permission_set::PermissionSet;
use crate::policy::PolicySettings;
use crate::role::RoleName;
use crate::span::Span;
use crate::token_digest::TokenDigest;
use crate::trust_policy::ClaimPattern;
use crate::ttl::Ttl;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "command")]
pub enum Command {
    CreateAccount {
        account_id: AccountId,
        name: AccountName,
        role: RoleName,
        description: String,
    },
    UpdateAccount {
        account_id: AccountId,
        role: Option<RoleName>,
        description: Option<String>,
    },
    DisableAccount {
        account_id: AccountId,
        reason: String,
    },
    EnableAccount {
        account_id: AccountId,
    },
    /// Final; revokes every live token of the account in the same append.
    DeleteAccount {
        account_id: AccountId,
    },
    IssueToken {
        account_id: AccountId,
        token_id: TokenId,
        name: String,
        /// `None`: the role's permissions as they are now.
        scopes: Option<PermissionSet>,
        /// `None`: the policy's `default_ttl`; `Ttl::Never` only where the
        /// policy allows tokens that never expire.
        ttl: Option<Ttl>,
        allowed_cidrs: Vec<IpNet>,
        digest: TokenDigest,
    },
    RevokeToken {
        token_id: TokenId,
        reason: String,
    },
    /// Revokes the token and every live token of its rotation family: the
    /// tokens it was rotated from and to, transitively. What a leak calls
    /// for: a leaked token may have rotated itself to mint successors.
    RevokeTokenFamily {
        token_id: TokenId,
        reason: String,
    },
    /// Issues `successor_id` with the same scopes and cuts the old token to
    /// `now + grace` (policy's `rotation_grace` when `None`).
    RotateToken {
        token_id: TokenId,
        successor_id: TokenId,
        successor_digest: TokenDigest,
        grace: Option<Span>,
    },
    /// A token trades itself for a short-lived child (`POST
    /// /v1/token-exchange` with a Latch subject token): at most its own
    /// effective permissions, expiring no later than it, revoked with it.
    /// Only the parent token itself may ask.
    ExchangeToken {
        parent_id: TokenId,
        token_id: TokenId,
        digest: TokenDigest,
        /// `None`: `child of <parent's name>`.
        name: Option<String>,
        /// `None`: the parent's effective permissions now.
        scopes: Option<PermissionSet>,
        /// `None`: 15 minutes, or less if the parent expires sooner.
        ttl: Option<Span>,
    },
    /// Lets OIDC tokens of `issuer` for `audience` whose claims match
    /// `claims` be exchanged for a token of the account.
    AddTrustPolicy {
        account_id: AccountId,
        policy_id: TrustPolicyId,
        issuer: String,
        audience: String,
        claims: BTreeMap<String, ClaimPattern>,
        /// `None`: the role's permissions as they are now.
        scopes: Option<PermissionSet>,
        /// `None`: 15 minutes.
        max_ttl: Option<Span>,
    },
    RemoveTrustPolicy {
        account_id: AccountId,
        policy_id: TrustPolicyId,
    },
    /// latchd only, after it verified the OIDC token's signature, issuer,
    /// audience and times (`POST /v1/token-exchange`): its claims (as text)
    /// are matched against the policy here.
    ExchangeOidcToken {
        policy_id: TrustPolicyId,
        token_id: TokenId,
        digest: TokenDigest,
        /// `None`: the policy's scopes (within the role now).
        scopes: Option<PermissionSet>,
        /// `None`: the policy's `max_ttl`, at most 15 minutes.
        ttl: Option<Span>,
        issuer: String,
        audiences: Vec<String>,
        subject: String,
        jti: String,
        token_expires_at: chrono::DateTime<chrono::Utc>,
        claims: BTreeMap<String, String>,
    },
    /// Tokens found where they should not be: each live one is revoked with
    /// everything rotated or exchanged from it, after a
    /// `token.leak_reported`. Unknown and already revoked tokens change
    /// nothing (the caller is told the same either way), so a report is
    /// idempotent.
    ReportLeaks {
        reports: Vec<LeakReport>,
    },
    /// latchd only: the token was presented at `service` at `seen_at`
    /// after it was rotated out or revoked.
    NoteTokenReuse {
        token_id: TokenId,
        seen_at: chrono::DateTime<chrono::Utc>,
        source_address: Option<std::net::IpAddr>,
        service: String,
    },
    DefineRole {
        name: RoleName,
        permissions: PermissionSet,
        description: String,
    },
    DeleteRole {
        name: RoleName,
    },
    /// Replaces the global layer (`role: None`) or one role's override.
    SetPolicy {
        role: Option<RoleName>,
        settings: PolicySettings,
    },
    /// latchd only (`latchd key rotate`): sign the feed with a new key.
    RotateSigningKey {
        /// `ed25519:<base64url>`.
        public_key: String,
    },
    /// Scheduler only.
    NoteTokenExpiring {
        token_id: TokenId,
    },
    /// Scheduler only.
    NoteTokenExpired {
        token_id: TokenId,
    },
    /// Scheduler only.
    NoteTokenRotationDue {
        token_id: TokenId,
    },
}

/// What an actor must hold to run a command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    Permission(&'static Permission),
    /// The permission, unless the actor is the token the command is about:
    /// a token may always revoke or rotate itself.
    PermissionOrSelf(&'static Permission, TokenId),
    /// Only Latch's own scheduler.
    System,
    /// Only this token itself.
    Itself(TokenId),
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateAccount { .. } => "create_account",
            Command::UpdateAccount { .. } => "update_account",
            Command::DisableAccount { .. } => "disable_account",
            Command::EnableAccount { .. } => "enable_account",
            Command::DeleteAccount { .. } => "delete_account",
            Command::IssueToken { .. } => "issue_token",
            Command::RevokeToken { .. } => "revoke_token",
            Command::RevokeTokenFamily { .. } => "revoke_token_family",
            Command::RotateToken { .. } => "rotate_token",
            Command::ExchangeToken { .. } => "exchange_token",
            Command::AddTrustPolicy { .. } => "add_trust_policy",
            Command::RemoveTrustPolicy { .. } => "remove_trust_policy",
            Command::ExchangeOidcToken { .. } => "exchange_oidc_token",
            Command::ReportLeaks { .. } => "report_leaks",
            Command::NoteTokenReuse { .. } => "note_token_reuse",
            Command::DefineRole { .. } => "define_role",
            Command::DeleteRole { .. } => "delete_role",
            Command::SetPolicy { .. } => "set_policy",
            Command::RotateSigningKey { .. } => "rotate_signing_key",
            Command::NoteTokenExpiring { .. } => "note_token_expiring",
            Command::NoteTokenExpired { .. } => "note_token_expired",
            Command::NoteTokenRotationDue { .. } => "note_token_rotation_due",
        }
    }

    pub fn requirement(&self) -> Requirement {
        match self {
            Command::CreateAccount { .. }
            | Command::UpdateAccount { .. }
            | Command::DisableAccount { .. }
            | Command::EnableAccount { .. }
            | Command::DeleteAccount { .. } => {
                Requirement::Permission(&api_permission::ACCOUNTS_WRITE)
            }
            Command::IssueToken { .. } => Requirement::Permission(&api_permission::TOKENS_WRITE),
            Command::RevokeToken { token_id, .. }
            | Command::RevokeTokenFamily { token_id, .. }
            | Command::RotateToken { token_id, .. } => {
                Requirement::PermissionOrSelf(&api_permission::TOKENS_WRITE, *token_id)
            }
            Command::ExchangeToken { parent_id, .. } => Requirement::Itself(*parent_id),
            Command::AddTrustPolicy { .. } | Command::RemoveTrustPolicy { .. } => {
                Requirement::Permission(&api_permission::TOKENS_WRITE)
            }
            Command::ExchangeOidcToken { .. } | Command::NoteTokenReuse { .. } => {
                Requirement::System
            }
            Command::ReportLeaks { .. } => Requirement::Permission(&api_permission::LEAKS_REPORT),
            Command::DefineRole { .. } | Command::DeleteRole { .. } => {
                Requirement::Permission(&api_permission::ROLES_WRITE)
            }
            Command::SetPolicy { .. } => Requirement::Permission(&api_permission::POLICY_WRITE),
            Command::NoteTokenExpiring { .. }
            | Command::NoteTokenExpired { .. }
            | Command::NoteTokenRotationDue { .. }
            | Command::RotateSigningKey { .. } => Requirement::System,
        }
    }

    /// The stream the command is addressed to: where an `If-Match` version
    /// applies.
    pub fn target_stream(&self) -> StreamName {
        match self {
            Command::CreateAccount { account_id, .. }
            | Command::UpdateAccount { account_id, .. }
            | Command::DisableAccount { account_id, .. }
            | Command::EnableAccount { account_id }
            | Command::DeleteAccount { account_id }
            | Command::AddTrustPolicy { account_id, .. }
            | Command::RemoveTrustPolicy { account_id, .. } => StreamName::account(*account_id),
            Command::IssueToken { token_id, .. }
            | Command::RevokeToken { token_id, .. }
            | Command::RevokeTokenFamily { token_id, .. }
            | Command::RotateToken { token_id, .. }
            | Command::ExchangeToken { token_id, .. }
            | Command::ExchangeOidcToken { token_id, .. }
            | Command::NoteTokenExpiring { token_id }
            | Command::NoteTokenExpired { token_id }
            | Command::NoteTokenRotationDue { token_id }
            | Command::NoteTokenReuse { token_id, .. } => StreamName::token(*token_id),
            Command::ReportLeaks { .. } => StreamName::leak_reports(),
            Command::DefineRole { name, .. } | Command::DeleteRole { name } => {
                StreamName::role(name)
            }
            Command::SetPolicy { .. } => StreamName::policy(),
            Command::RotateSigningKey { .. } => StreamName::signing_key(),
        }
    }
}
