//! The last admin: no command may leave Latch without an active account
//! holding `*`.

use crate::account::Account;
use crate::domain_error::DomainError;
use crate::permission::Permission;
use crate::role::RoleName;
use crate::state::State;

/// Whether an account is active and its role grants `*`.
fn is_admin(state: &State, account: &Account) -> bool {
    account.is_active()
        && state
            .role(&account.role)
            .is_some_and(|r| r.permissions.covers(&Permission::all()))
}

/// Refuses to take `*` from `account` when it is the last active account
/// holding it.
pub(super) fn refuse_last_admin(state: &State, account: &Account) -> Result<(), DomainError> {
    if is_admin(state, account)
        && !state
            .accounts()
            .any(|other| other.id != account.id && is_admin(state, other))
    {
        return Err(DomainError::LastAdmin(account.name.clone()));
    }
    Ok(())
}

/// An active account holding `role` when every active account that holds
/// `*` holds it through `role`: redefining the role without `*` would
/// leave nobody able to administer Latch.
pub(super) fn last_admin_holding<'s>(state: &'s State, role: &RoleName) -> Option<&'s Account> {
    let mut admins = state.accounts().filter(|a| is_admin(state, a)).peekable();
    admins.peek()?;
    let mut holder = None;
    for admin in admins {
        if admin.role != *role {
            return None;
        }
        holder = Some(admin);
    }
    holder
}
