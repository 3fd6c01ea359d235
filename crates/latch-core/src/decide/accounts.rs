//! Decisions on service accounts: create, update, disable, enable, delete.

use crate::account::{AccountName, AccountStatus};
use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::AccountId;
use crate::permission::Permission;
use crate::role::RoleName;
use crate::state::State;

use super::authority::Authority;
use super::free_text::check_text;
use super::last_admin::refuse_last_admin;
use super::state_lookups::role_permissions;

const REASON_ACCOUNT_DELETED: &str = "account deleted";

pub(super) fn create_account(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
    name: &AccountName,
    role: &RoleName,
    description: &str,
) -> Result<Vec<Event>, DomainError> {
    if state.account(account_id).is_some() {
        return Err(DomainError::AccountIdTaken(account_id));
    }
    if state.account_by_name(name).is_some() {
        return Err(DomainError::AccountNameTaken(name.clone()));
    }
    check_text("description", description, false)?;
    let permissions = role_permissions(state, role)?;
    authority.may_grant(permissions)?;
    Ok(vec![Event::AccountCreated {
        account_id,
        name: name.clone(),
        role: role.clone(),
        description: description.to_owned(),
    }])
}

pub(super) fn update_account(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
    role: Option<&RoleName>,
    description: Option<&str>,
) -> Result<Vec<Event>, DomainError> {
    let account = authority.account_to_act_on(state, account_id)?;
    let role = role.filter(|r| **r != account.role);
    let description = description.filter(|d| *d != account.description);
    if let Some(role) = role {
        let granted = role_permissions(state, role)?;
        authority.may_grant(granted)?;
        if !granted.covers(&Permission::all()) {
            refuse_last_admin(state, account)?;
        }
    }
    if let Some(description) = description {
        check_text("description", description, false)?;
    }
    if role.is_none() && description.is_none() {
        return Ok(Vec::new());
    }
    Ok(vec![Event::AccountUpdated {
        account_id,
        role: role.cloned(),
        description: description.map(str::to_owned),
    }])
}

pub(super) fn disable_account(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
    reason: &str,
) -> Result<Vec<Event>, DomainError> {
    let account = authority.account_to_act_on(state, account_id)?;
    check_text("reason", reason, true)?;
    if let AccountStatus::Disabled { .. } = account.status {
        return Err(DomainError::AccountDisabled(account_id));
    }
    refuse_last_admin(state, account)?;
    Ok(vec![Event::AccountDisabled {
        account_id,
        reason: reason.to_owned(),
    }])
}

pub(super) fn enable_account(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
) -> Result<Vec<Event>, DomainError> {
    let account = authority.account_to_act_on(state, account_id)?;
    if account.is_active() {
        return Err(DomainError::AccountNotDisabled(account_id));
    }
    Ok(vec![Event::AccountEnabled { account_id }])
}

/// Final; revokes every live token of the account in the same append.
pub(super) fn delete_account(
    state: &State,
    authority: &Authority<'_>,
    account_id: AccountId,
) -> Result<Vec<Event>, DomainError> {
    let account = authority.account_to_act_on(state, account_id)?;
    refuse_last_admin(state, account)?;
    let mut events: Vec<Event> = state
        .tokens_of(account_id)
        .filter(|t| t.revoked.is_none())
        .map(|t| Event::TokenRevoked {
            token_id: t.id,
            account_id,
            reason: REASON_ACCOUNT_DELETED.to_owned(),
        })
        .collect();
    events.push(Event::AccountDeleted { account_id });
    Ok(events)
}
