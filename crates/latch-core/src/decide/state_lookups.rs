//! What a command is about, looked up in the state: found and fit for the
//! command, or the rejection that says why not.

use crate::account::{Account, AccountStatus};
use crate::domain_error::DomainError;
use crate::id::{AccountId, TokenId};
use crate::permission_set::PermissionSet;
use crate::role::RoleName;
use crate::state::State;
use crate::token::Token;

pub(super) fn role_permissions<'s>(
    state: &'s State,
    role: &RoleName,
) -> Result<&'s PermissionSet, DomainError> {
    state
        .role(role)
        .map(|r| &r.permissions)
        .ok_or_else(|| DomainError::UnknownRole(role.clone()))
}

/// An account that exists and is not deleted.
pub(super) fn live_account(state: &State, id: AccountId) -> Result<&Account, DomainError> {
    let account = state.account(id).ok_or(DomainError::AccountNotFound(id))?;
    if let AccountStatus::Deleted { .. } = account.status {
        return Err(DomainError::AccountDeleted(id));
    }
    Ok(account)
}

/// An account that may receive new tokens: exists, not deleted, not disabled.
pub(super) fn usable_account(state: &State, id: AccountId) -> Result<&Account, DomainError> {
    let account = live_account(state, id)?;
    if !account.is_active() {
        return Err(DomainError::AccountDisabled(id));
    }
    Ok(account)
}

pub(super) fn existing_token(state: &State, id: TokenId) -> Result<&Token, DomainError> {
    state.token(id).ok_or(DomainError::TokenNotFound(id))
}
