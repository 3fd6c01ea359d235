//! The scopes a caller grants a token of an account (issuing it, or letting
//! a trust policy mint it): the account's role by default, never beyond
//! the role, never beyond what the caller may grant.

use crate::account::Account;
use crate::domain_error::DomainError;
use crate::permission_set::PermissionSet;
use crate::state::State;

use super::authority::Authority;
use super::permission_list::listed;
use super::state_lookups::role_permissions;

pub(super) fn granted_scopes(
    state: &State,
    authority: &Authority<'_>,
    account: &Account,
    asked: Option<&PermissionSet>,
) -> Result<PermissionSet, DomainError> {
    let role = role_permissions(state, &account.role)?;
    let scopes = asked.cloned().unwrap_or_else(|| role.clone());
    if scopes.is_empty() {
        return Err(DomainError::EmptyScopes);
    }
    if !role.covers_all(&scopes) {
        return Err(DomainError::ScopeBeyondRole {
            role: account.role.clone(),
            beyond: listed(role.not_covered(&scopes)),
        });
    }
    authority.may_grant(&scopes)?;
    Ok(scopes)
}
