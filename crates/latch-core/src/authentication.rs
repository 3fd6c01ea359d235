//! Checking a presented token: the one procedure latchd and every verifier
//! run, so they can never disagree about who is who.

use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use crate::account::AccountStatus;
use crate::id::{AccountId, TokenId};
use crate::permission::Permission;
use crate::permission_set::PermissionSet;
use crate::state::State;
use crate::token::Token;
use crate::token_digest::TokenDigest;
use crate::token_secret::{self, TokenFormatError};

/// An authenticated caller. Borrows from the state: building one allocates
/// nothing.
#[derive(Clone, Copy)]
pub struct Principal<'a> {
    pub account_id: AccountId,
    pub token_id: TokenId,
    /// `None`: never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub(crate) scopes: &'a PermissionSet,
    pub(crate) role_permissions: &'a PermissionSet,
}

impl<'a> Principal<'a> {
    /// Whether the caller may do `permission` now: the token's scopes and
    /// the account's role *now* must both grant it.
    pub fn allows(&self, permission: &Permission) -> bool {
        self.scopes.covers(permission) && self.role_permissions.covers(permission)
    }

    /// The effective permissions, materialised (allocates; for display).
    pub fn effective_permissions(&self) -> PermissionSet {
        self.scopes.intersect(self.role_permissions)
    }
}

impl fmt::Debug for Principal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Principal")
            .field("account_id", &self.account_id)
            .field("token_id", &self.token_id)
            .finish_non_exhaustive()
    }
}

/// Why a token was not accepted. Says nothing about the token's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("malformed token: {0}")]
    Malformed(TokenFormatError),
    #[error("unknown token")]
    Unknown,
    #[error("token revoked")]
    Revoked,
    #[error("token expired")]
    Expired,
    #[error("account disabled")]
    AccountDisabled,
    #[error("account deleted")]
    AccountDeleted,
    #[error("source address not allowed for this token")]
    SourceNotAllowed,
}

/// Which token was presented, whatever its status: shape and checksum
/// first (no lookup for garbage), then the digest index and a constant-time
/// comparison of the digests. For `authenticate`, and for the audit trail,
/// which names the token a refused request presented.
pub fn identify<'s>(state: &'s State, presented: &str) -> Result<&'s Token, Rejection> {
    token_secret::check(presented).map_err(Rejection::Malformed)?;
    let digest = TokenDigest::of(presented);
    let token = state.token_by_digest(&digest).ok_or(Rejection::Unknown)?;
    if !token.digest.ct_eq(&digest) {
        return Err(Rejection::Unknown);
    }
    Ok(token)
}

/// Shape and checksum first (no lookup for garbage), then the digest index,
/// then a constant-time comparison of the digests, then the token's and
/// account's status at `now`, then the source address when one is given.
pub fn authenticate<'s>(
    state: &'s State,
    presented: &str,
    now: DateTime<Utc>,
    source: Option<IpAddr>,
) -> Result<Principal<'s>, Rejection> {
    token_secret::check(presented).map_err(Rejection::Malformed)?;
    authenticate_digest(state, &TokenDigest::of(presented), now, source)
}

/// `authenticate` for a presented token whose format was checked and whose
/// digest was computed.
pub fn authenticate_digest<'s>(
    state: &'s State,
    digest: &TokenDigest,
    now: DateTime<Utc>,
    source: Option<IpAddr>,
) -> Result<Principal<'s>, Rejection> {
    let token = state.token_by_digest(digest).ok_or(Rejection::Unknown)?;
    if !token.digest.ct_eq(digest) {
        return Err(Rejection::Unknown);
    }
    let account = state.account(token.account_id).ok_or(Rejection::Unknown)?;
    match account.status {
        AccountStatus::Active => {}
        AccountStatus::Disabled { .. } => return Err(Rejection::AccountDisabled),
        AccountStatus::Deleted { .. } => return Err(Rejection::AccountDeleted),
    }
    if token.revoked.is_some() {
        return Err(Rejection::Revoked);
    }
    if token.is_expired_at(now) {
        return Err(Rejection::Expired);
    }
    if let Some(addr) = source
        && !token.allows_source(addr)
    {
        return Err(Rejection::SourceNotAllowed);
    }
    let role = state.role(&account.role).ok_or(Rejection::Unknown)?;
    Ok(Principal {
        account_id: account.id,
        token_id: token.id,
        expires_at: token.expires_at,
        scopes: &token.scopes,
        role_permissions: &role.permissions,
    })
}
