//! Decisions on policy: replace the global layer or one role's override.

use crate::domain_error::DomainError;
use crate::event::Event;
use crate::policy::{Policy, PolicySettings};
use crate::role::RoleName;
use crate::state::State;

use super::state_lookups::role_permissions;

pub(super) fn set_policy(
    state: &State,
    role: Option<&RoleName>,
    settings: &PolicySettings,
) -> Result<Vec<Event>, DomainError> {
    let resolved = match role {
        Some(role) => {
            role_permissions(state, role)?;
            Policy::resolve(&settings.or(state.global_policy()))
        }
        None => Policy::resolve(settings),
    };
    if let Some(problem) = resolved.inconsistency() {
        return Err(DomainError::InconsistentPolicy(problem));
    }
    if role.is_none() {
        // A new global layer must not make any role's override
        // inconsistent either.
        for (name, layer) in &state.role_policies {
            if let Some(problem) = Policy::resolve(&layer.or(settings)).inconsistency() {
                return Err(DomainError::InconsistentPolicy(format!(
                    "for role {name}: {problem}"
                )));
            }
        }
    }
    Ok(vec![Event::PolicyUpdated {
        role: role.cloned(),
        settings: settings.clone(),
    }])
}
