//! `DomainError`: a business rejection. Nothing was written. Kept apart
//! from infrastructure failures (the store's errors), which say nothing
//! about whether the command was acceptable.

use chrono::{DateTime, Utc};
use thiserror::Error;

use crate::account::AccountName;
use crate::id::{AccountId, TokenId, TrustPolicyId};
use crate::role::RoleName;

/// How an edge should classify a rejection (latchd maps these to HTTP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectionKind {
    /// The actor may not do this (403).
    Forbidden,
    /// The thing named does not exist (404).
    NotFound,
    /// The request contradicts current state (409).
    Conflict,
    /// The request breaks a rule regardless of state, e.g. policy (422).
    Invalid,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DomainError {
    #[error("the calling token is no longer active")]
    ActorInactive,
    #[error("missing permission {0}")]
    MissingPermission(String),
    #[error("only Latch's scheduler may do this")]
    SystemOnly,
    #[error("cannot grant what the caller does not hold: {0}")]
    Escalation(String),
    /// Acting on an account or token needs at least the permissions it
    /// holds: nobody below admin can disable, delete or change an admin.
    #[error("{target} holds permissions the caller does not: {lacking}")]
    Outranked { target: String, lacking: String },
    /// The last active account holding `*` would lose it: nobody could
    /// administer Latch any more.
    #[error(
        "account {0} is the last active account holding * (admin); \
         make another account admin first (or use `latchd recover-admin` on the host)"
    )]
    LastAdmin(AccountName),
    #[error("not a signing key: {0:?} (expected ed25519:<base64url>)")]
    InvalidSigningKey(String),
    #[error("account {0} not found")]
    AccountNotFound(AccountId),
    #[error("an account named {0} already exists")]
    AccountNameTaken(AccountName),
    #[error("account {0} already exists")]
    AccountIdTaken(AccountId),
    #[error("account {0} is deleted")]
    AccountDeleted(AccountId),
    #[error("account {0} is disabled")]
    AccountDisabled(AccountId),
    #[error("account {0} is not disabled")]
    AccountNotDisabled(AccountId),
    #[error("role {0} does not exist")]
    UnknownRole(RoleName),
    #[error("role {0} not found")]
    RoleNotFound(RoleName),
    #[error("role {0} is built in and cannot be changed")]
    BuiltinRole(RoleName),
    #[error("role {role} is still held by {accounts} account(s)")]
    RoleInUse { role: RoleName, accounts: usize },
    #[error("a role needs at least one permission")]
    EmptyRole,
    #[error("scopes beyond the account's role {role}: {beyond}")]
    ScopeBeyondRole { role: RoleName, beyond: String },
    #[error("a token needs at least one scope")]
    EmptyScopes,
    #[error("token {0} not found")]
    TokenNotFound(TokenId),
    #[error("token {0} already exists")]
    TokenIdTaken(TokenId),
    #[error("token {0} is revoked")]
    TokenRevoked(TokenId),
    #[error("token {token} expired at {at}")]
    TokenExpired { token: TokenId, at: DateTime<Utc> },
    #[error("token {token} was already rotated to {successor}")]
    TokenAlreadyRotated { token: TokenId, successor: TokenId },
    #[error("only the token itself may exchange itself for a child token")]
    OnlyItself,
    #[error("trust policy {0} not found")]
    TrustPolicyNotFound(TrustPolicyId),
    #[error("invalid trust policy: {0}")]
    InvalidTrustPolicy(String),
    #[error("the OIDC token does not fit the trust policy: {0}")]
    NotTrusted(String),
    #[error("the OIDC token's claim {claim:?} is missing or does not match the trust policy")]
    ClaimMismatch { claim: String },
    #[error("this OIDC token (its jti) was already exchanged; ask the CI platform for a new one")]
    JtiReplayed,
    #[error("scopes beyond the trust policy: {beyond}")]
    ScopeBeyondPolicy { beyond: String },
    #[error("scopes beyond what the parent token may do: {beyond}")]
    ScopeBeyondParent { beyond: String },
    #[error("a child token may not outlive its parent, which expires at {parent_expires_at}")]
    OutlivesParent { parent_expires_at: DateTime<Utc> },
    /// A token request beyond policy: which policy, its value, and where
    /// it is set (for role X, globally, or by default).
    #[error("{detail}: policy {policy} is {value} ({layer})")]
    PolicyViolation {
        policy: &'static str,
        value: String,
        layer: String,
        detail: String,
    },
    #[error("policy is inconsistent: {0}")]
    InconsistentPolicy(String),
    #[error("{field} must not be empty")]
    Empty { field: &'static str },
    #[error("{field} is longer than {max} characters")]
    TooLong { field: &'static str, max: usize },
    #[error("{field}: at most {max} in one request")]
    TooMany { field: &'static str, max: usize },
    #[error("token {token}: {event} is not due until {due}")]
    NotDue {
        token: TokenId,
        event: &'static str,
        due: DateTime<Utc>,
    },
    #[error("token {token}: {event} was already recorded")]
    AlreadyNoted { token: TokenId, event: &'static str },
    #[error("token {token}: {event} does not apply: {why}")]
    NotApplicable {
        token: TokenId,
        event: &'static str,
        why: &'static str,
    },
}

impl DomainError {
    pub fn kind(&self) -> RejectionKind {
        use DomainError::*;
        match self {
            ActorInactive | MissingPermission(_) | SystemOnly | OnlyItself | Escalation(_)
            | Outranked { .. } | NotTrusted(_) | ClaimMismatch { .. } | JtiReplayed => {
                RejectionKind::Forbidden
            }
            AccountNotFound(_) | TokenNotFound(_) | RoleNotFound(_) | TrustPolicyNotFound(_) => {
                RejectionKind::NotFound
            }
            AccountNameTaken(_)
            | AccountIdTaken(_)
            | AccountDeleted(_)
            | AccountDisabled(_)
            | AccountNotDisabled(_)
            | RoleInUse { .. }
            | LastAdmin(_)
            | TokenIdTaken(_)
            | TokenRevoked(_)
            | TokenExpired { .. }
            | TokenAlreadyRotated { .. }
            | AlreadyNoted { .. }
            | NotDue { .. }
            | NotApplicable { .. } => RejectionKind::Conflict,
            UnknownRole(_)
            | BuiltinRole(_)
            | EmptyRole
            | ScopeBeyondRole { .. }
            | ScopeBeyondParent { .. }
            | ScopeBeyondPolicy { .. }
            | InvalidTrustPolicy(_)
            | OutlivesParent { .. }
            | EmptyScopes
            | PolicyViolation { .. }
            | InconsistentPolicy(_)
            | Empty { .. }
            | TooLong { .. }
            | TooMany { .. }
            | InvalidSigningKey(_) => RejectionKind::Invalid,
        }
    }
}
