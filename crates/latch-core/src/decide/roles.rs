//! Decisions on roles: define (or redefine), delete.

use crate::account::AccountStatus;
use crate::domain_error::DomainError;
use crate::event::Event;
use crate::permission::Permission;
use crate::permission_set::PermissionSet;
use crate::role::{BuiltinRole, RoleName};
use crate::state::State;

use super::authority::Authority;
use super::free_text::check_text;
use super::last_admin::last_admin_holding;

pub(super) fn define_role(
    state: &State,
    authority: &Authority<'_>,
    name: &RoleName,
    permissions: &PermissionSet,
    description: &str,
) -> Result<Vec<Event>, DomainError> {
    if BuiltinRole::is_builtin(name) {
        return Err(DomainError::BuiltinRole(name.clone()));
    }
    if permissions.is_empty() {
        return Err(DomainError::EmptyRole);
    }
    check_text("description", description, false)?;
    authority.may_grant(permissions)?;
    if let Some(existing) = state.role(name)
        && existing.permissions.covers(&Permission::all())
        && !permissions.covers(&Permission::all())
        && let Some(last) = last_admin_holding(state, name)
    {
        return Err(DomainError::LastAdmin(last.name.clone()));
    }
    if let Some(existing) = state.role(name)
        && existing.permissions == *permissions
        && existing.description == *description
    {
        return Ok(Vec::new());
    }
    Ok(vec![Event::RoleDefined {
        name: name.clone(),
        permissions: permissions.clone(),
        description: description.to_owned(),
    }])
}

pub(super) fn delete_role(state: &State, name: &RoleName) -> Result<Vec<Event>, DomainError> {
    if BuiltinRole::is_builtin(name) {
        return Err(DomainError::BuiltinRole(name.clone()));
    }
    if state.role(name).is_none() {
        return Err(DomainError::RoleNotFound(name.clone()));
    }
    let holders = state
        .accounts
        .values()
        .filter(|a| a.role == *name && !matches!(a.status, AccountStatus::Deleted { .. }))
        .count();
    if holders > 0 {
        return Err(DomainError::RoleInUse {
            role: name.clone(),
            accounts: holders,
        });
    }
    Ok(vec![Event::RoleDeleted { name: name.clone() }])
}
