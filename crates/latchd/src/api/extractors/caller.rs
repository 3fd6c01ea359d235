//! `Caller`: the authenticated token behind a request, checked exactly as a
//! verifier checks it (`latch_core::authenticate`).

use latch_core::{AccountId, Actor, Permission, PermissionSet, TokenId};

use crate::api::problem::Problem;

#[derive(Debug, Clone)]
pub struct Caller {
    pub account_id: AccountId,
    pub token_id: TokenId,
    /// Token scopes ∩ the account's role, at authentication.
    pub permissions: PermissionSet,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::Token {
            account_id: self.account_id,
            token_id: self.token_id,
        }
    }

    pub fn holds(&self, permission: &Permission) -> bool {
        self.permissions.covers(permission)
    }

    /// 403 naming the permission unless the caller holds it. Reads only:
    /// a command's permission is checked once, where it is decided
    /// (`latch_core::Command::requirement`), whichever way it arrived.
    pub fn require(&self, permission: &Permission) -> Result<(), Problem> {
        if self.holds(permission) {
            Ok(())
        } else {
            Err(Problem::forbidden(permission.as_str()))
        }
    }

    /// The permission, unless the request is about the caller's own token.
    pub fn require_or_self(&self, permission: &Permission, token: TokenId) -> Result<(), Problem> {
        if token == self.token_id {
            Ok(())
        } else {
            self.require(permission)
        }
    }
}
