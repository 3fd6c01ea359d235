//! `decide`: a command against the current state becomes events or a
//! rejection. Pure: no clock, no randomness, no I/O.

use chrono::{DateTime, Utc};

use crate::account::{Account, AccountStatus};
use crate::actor::Actor;
use crate::command::{Command, Requirement};
use crate::domain_error::DomainError;
use crate::event::Event;
use crate::id::{AccountId, TokenId};
use crate::permission::Permission;
use crate::permission_set::PermissionSet;
use crate::policy::PolicySettings;
use crate::role::{BuiltinRole, RoleName};
use crate::state::State;
use crate::token::Token;
use crate::ttl::Ttl;

/// Who is asking, and when. Made at the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandContext {
    pub actor: Actor,
    pub now: DateTime<Utc>,
}

/// Longest free text (descriptions, reasons, token names) accepted.
pub const MAX_TEXT: usize = 1024;

const REASON_ACCOUNT_DELETED: &str = "account deleted";

pub fn decide(
    state: &State,
    ctx: &CommandContext,
    command: &Command,
) -> Result<Vec<Event>, DomainError> {
    let authority = Authority::of(state, ctx)?;
    authority.require(&command.requirement())?;
    let now = ctx.now;
    match command {
        Command::CreateAccount {
            account_id,
            name,
            role,
            description,
        } => {
            if state.account(*account_id).is_some() {
                return Err(DomainError::AccountIdTaken(*account_id));
            }
            if state.account_by_name(name).is_some() {
                return Err(DomainError::AccountNameTaken(name.clone()));
            }
            check_text("description", description, false)?;
            let permissions = role_permissions(state, role)?;
            authority.may_grant(permissions)?;
            Ok(vec![Event::AccountCreated {
                account_id: *account_id,
                name: name.clone(),
                role: role.clone(),
                description: description.clone(),
            }])
        }
        Command::UpdateAccount {
            account_id,
            role,
            description,
        } => {
            let account = live_account(state, *account_id)?;
            let role = role.as_ref().filter(|r| **r != account.role);
            let description = description.as_ref().filter(|d| **d != account.description);
            if let Some(role) = role {
                authority.may_grant(role_permissions(state, role)?)?;
            }
            if let Some(description) = description {
                check_text("description", description, false)?;
            }
            if role.is_none() && description.is_none() {
                return Ok(Vec::new());
            }
            Ok(vec![Event::AccountUpdated {
                account_id: *account_id,
                role: role.cloned(),
                description: description.cloned(),
            }])
        }
        Command::DisableAccount { account_id, reason } => {
            let account = live_account(state, *account_id)?;
            check_text("reason", reason, true)?;
            if let AccountStatus::Disabled { .. } = account.status {
                return Err(DomainError::AccountDisabled(*account_id));
            }
            Ok(vec![Event::AccountDisabled {
                account_id: *account_id,
                reason: reason.clone(),
            }])
        }
        Command::EnableAccount { account_id } => {
            let account = live_account(state, *account_id)?;
            if account.is_active() {
                return Err(DomainError::AccountNotDisabled(*account_id));
            }
            Ok(vec![Event::AccountEnabled {
                account_id: *account_id,
            }])
        }
        Command::DeleteAccount { account_id } => {
            live_account(state, *account_id)?;
            let mut events: Vec<Event> = state
                .tokens_of(*account_id)
                .filter(|t| t.revoked.is_none())
                .map(|t| Event::TokenRevoked {
                    token_id: t.id,
                    account_id: *account_id,
                    reason: REASON_ACCOUNT_DELETED.to_owned(),
                })
                .collect();
            events.push(Event::AccountDeleted {
                account_id: *account_id,
            });
            Ok(events)
        }
        Command::IssueToken {
            account_id,
            token_id,
            name,
            scopes,
            ttl,
            allowed_cidrs,
            digest,
        } => {
            let account = usable_account(state, *account_id)?;
            if state.token(*token_id).is_some() {
                return Err(DomainError::TokenIdTaken(*token_id));
            }
            if state.token_by_digest(digest).is_some() {
                // A CSPRNG collision or a replayed digest: refuse either way.
                return Err(DomainError::TokenIdTaken(*token_id));
            }
            check_text("name", name, true)?;
            let role = role_permissions(state, &account.role)?;
            let scopes = match scopes {
                Some(scopes) => scopes.clone(),
                None => role.clone(),
            };
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
            let policy = state.effective_policy(&account.role);
            let layer =
                |pick: fn(&PolicySettings) -> bool| policy_layer(state, &account.role, pick);
            let expires_at = match ttl.unwrap_or(Ttl::For(policy.default_ttl)) {
                Ttl::For(ttl) => {
                    if let Some(max_ttl) = policy.max_ttl
                        && ttl > max_ttl
                    {
                        return Err(DomainError::PolicyViolation {
                            policy: "max_ttl",
                            value: max_ttl.to_string(),
                            layer: layer(|p| p.max_ttl.is_some()),
                            detail: format!("ttl {ttl} is longer than allowed"),
                        });
                    }
                    Some(now + ttl.to_chrono())
                }
                Ttl::Never => {
                    if policy.require_expiry {
                        return Err(DomainError::PolicyViolation {
                            policy: "require_expiry",
                            value: "true".into(),
                            layer: layer(|p| p.require_expiry.is_some()),
                            detail: "a token that never expires is not allowed".into(),
                        });
                    }
                    if let Some(max_ttl) = policy.max_ttl {
                        return Err(DomainError::PolicyViolation {
                            policy: "max_ttl",
                            value: max_ttl.to_string(),
                            layer: layer(|p| p.max_ttl.is_some()),
                            detail: "a token that never expires is longer than allowed".into(),
                        });
                    }
                    None
                }
            };
            if let Some(limit) = policy.max_tokens_per_account {
                let live = state
                    .tokens_of(*account_id)
                    .filter(|t| t.revoked.is_none() && !t.is_expired_at(now))
                    .count();
                if live >= limit as usize {
                    return Err(DomainError::PolicyViolation {
                        policy: "max_tokens_per_account",
                        value: limit.to_string(),
                        layer: layer(|p| p.max_tokens_per_account.is_some()),
                        detail: format!(
                            "account {} already holds {live} live token(s); revoke one first",
                            account.name
                        ),
                    });
                }
            }
            Ok(vec![Event::TokenIssued {
                token_id: *token_id,
                account_id: *account_id,
                name: name.clone(),
                scopes,
                digest: *digest,
                expires_at,
                allowed_cidrs: allowed_cidrs.clone(),
                rotated_from: None,
            }])
        }
        Command::RevokeToken { token_id, reason } => {
            let token = existing_token(state, *token_id)?;
            check_text("reason", reason, false)?;
            if token.revoked.is_some() {
                return Err(DomainError::TokenRevoked(*token_id));
            }
            Ok(vec![Event::TokenRevoked {
                token_id: *token_id,
                account_id: token.account_id,
                reason: reason.clone(),
            }])
        }
        Command::RotateToken {
            token_id,
            successor_id,
            successor_digest,
            grace,
        } => {
            let token = existing_token(state, *token_id)?;
            if let Some(successor) = token.rotated_to {
                return Err(DomainError::TokenAlreadyRotated {
                    token: *token_id,
                    successor,
                });
            }
            if token.revoked.is_some() {
                return Err(DomainError::TokenRevoked(*token_id));
            }
            if let Some(at) = token.expires_at
                && now >= at
            {
                return Err(DomainError::TokenExpired {
                    token: *token_id,
                    at,
                });
            }
            let account = usable_account(state, token.account_id)?;
            if state.token(*successor_id).is_some()
                || state.token_by_digest(successor_digest).is_some()
            {
                return Err(DomainError::TokenIdTaken(*successor_id));
            }
            // Rotating someone else's token hands the caller a fresh secret
            // with that token's scopes: no escalation that way either.
            if !authority.is_token(*token_id) {
                authority.may_grant(&token.scopes)?;
            }
            let policy = state.effective_policy(&account.role);
            let grace = grace.unwrap_or(policy.rotation_grace);
            // The successor lives as long as the original was meant to,
            // within today's policy (a token that never expired gets the
            // default ttl once policy requires expiry).
            let lifetime = match token.expires_at {
                Some(at) => Some(at - token.issued_at),
                None if policy.require_expiry || policy.max_ttl.is_some() => {
                    Some(policy.default_ttl.to_chrono())
                }
                None => None,
            };
            let lifetime = match (lifetime, policy.max_ttl) {
                (Some(lifetime), Some(max_ttl)) => Some(lifetime.min(max_ttl.to_chrono())),
                (lifetime, _) => lifetime,
            };
            Ok(vec![
                Event::TokenIssued {
                    token_id: *successor_id,
                    account_id: token.account_id,
                    name: token.name.clone(),
                    scopes: token.scopes.clone(),
                    digest: *successor_digest,
                    expires_at: lifetime.map(|lifetime| now + lifetime),
                    allowed_cidrs: token.allowed_cidrs.clone(),
                    rotated_from: Some(*token_id),
                },
                Event::TokenRotated {
                    token_id: *token_id,
                    account_id: token.account_id,
                    successor_id: *successor_id,
                    expires_at: token.expires_at.map_or(now + grace.to_chrono(), |at| {
                        at.min(now + grace.to_chrono())
                    }),
                },
            ])
        }
        Command::DefineRole {
            name,
            permissions,
            description,
        } => {
            if BuiltinRole::is_builtin(name) {
                return Err(DomainError::BuiltinRole(name.clone()));
            }
            if permissions.is_empty() {
                return Err(DomainError::EmptyRole);
            }
            check_text("description", description, false)?;
            authority.may_grant(permissions)?;
            if let Some(existing) = state.role(name)
                && existing.permissions == *permissions
                && existing.description == *description
            {
                return Ok(Vec::new());
            }
            Ok(vec![Event::RoleDefined {
                name: name.clone(),
                permissions: permissions.clone(),
                description: description.clone(),
            }])
        }
        Command::DeleteRole { name } => {
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
        Command::SetPolicy { role, settings } => {
            let resolved = match role {
                Some(role) => {
                    role_permissions(state, role)?;
                    crate::policy::Policy::resolve(&settings.or(state.global_policy()))
                }
                None => crate::policy::Policy::resolve(settings),
            };
            if let Some(problem) = resolved.inconsistency() {
                return Err(DomainError::InconsistentPolicy(problem));
            }
            if role.is_none() {
                // A new global layer must not make any role's override
                // inconsistent either.
                for (name, layer) in &state.role_policies {
                    if let Some(problem) =
                        crate::policy::Policy::resolve(&layer.or(settings)).inconsistency()
                    {
                        return Err(DomainError::InconsistentPolicy(format!(
                            "for role {name}: {problem}"
                        )));
                    }
                }
            }
            Ok(vec![Event::PolicyUpdated {
                role: role.clone(),
                settings: settings.clone(),
            }])
        }
        Command::NoteTokenExpiring { token_id } => {
            const EVENT: &str = "token.expiring";
            let token = noteable_token(state, *token_id, EVENT)?;
            if token.expiring_noted {
                return Err(DomainError::AlreadyNoted {
                    token: *token_id,
                    event: EVENT,
                });
            }
            let Some(due) = token.expiring_due(&token_policy(state, token)) else {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "never expires, was rotated, or lives shorter than the expiry warning",
                });
            };
            if now < due {
                return Err(DomainError::NotDue {
                    token: *token_id,
                    event: EVENT,
                    due,
                });
            }
            let Some(expires_at) = token.expires_at.filter(|at| now < *at) else {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "already expired",
                });
            };
            Ok(vec![Event::TokenExpiring {
                token_id: *token_id,
                account_id: token.account_id,
                expires_at,
            }])
        }
        Command::NoteTokenExpired { token_id } => {
            const EVENT: &str = "token.expired";
            let token = noteable_token(state, *token_id, EVENT)?;
            if token.expired_noted {
                return Err(DomainError::AlreadyNoted {
                    token: *token_id,
                    event: EVENT,
                });
            }
            let Some(expires_at) = token.expires_at else {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "never expires",
                });
            };
            if now < expires_at {
                return Err(DomainError::NotDue {
                    token: *token_id,
                    event: EVENT,
                    due: expires_at,
                });
            }
            Ok(vec![Event::TokenExpired {
                token_id: *token_id,
                account_id: token.account_id,
                expires_at,
            }])
        }
        Command::NoteTokenRotationDue { token_id } => {
            const EVENT: &str = "token.rotation_due";
            let token = noteable_token(state, *token_id, EVENT)?;
            if token.rotation_due_noted {
                return Err(DomainError::AlreadyNoted {
                    token: *token_id,
                    event: EVENT,
                });
            }
            if token.rotated_to.is_some() {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "already rotated",
                });
            }
            if token.is_expired_at(now) {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "already expired",
                });
            }
            let Some(due) = token.rotation_due(&token_policy(state, token)) else {
                return Err(DomainError::NotApplicable {
                    token: *token_id,
                    event: EVENT,
                    why: "no rotation_period in policy",
                });
            };
            if now < due {
                return Err(DomainError::NotDue {
                    token: *token_id,
                    event: EVENT,
                    due,
                });
            }
            Ok(vec![Event::TokenRotationDue {
                token_id: *token_id,
                account_id: token.account_id,
                issued_at: token.issued_at,
            }])
        }
    }
}

/// What the actor holds, resolved once per command.
enum Authority<'s> {
    System,
    Caller {
        token_id: TokenId,
        scopes: &'s PermissionSet,
        role: &'s PermissionSet,
    },
}

impl<'s> Authority<'s> {
    fn of(state: &'s State, ctx: &CommandContext) -> Result<Self, DomainError> {
        match ctx.actor {
            Actor::System => Ok(Authority::System),
            Actor::Token {
                account_id,
                token_id,
            } => {
                // Re-checked here, not only at authentication: the writer
                // may decide after a revocation that raced the request.
                let token = state.token(token_id).filter(|t| t.account_id == account_id);
                let token = token
                    .filter(|t| state.token_is_live(t, ctx.now))
                    .ok_or(DomainError::ActorInactive)?;
                let account = state
                    .account(account_id)
                    .ok_or(DomainError::ActorInactive)?;
                let role = state
                    .role(&account.role)
                    .ok_or(DomainError::ActorInactive)?;
                Ok(Authority::Caller {
                    token_id,
                    scopes: &token.scopes,
                    role: &role.permissions,
                })
            }
        }
    }

    fn holds(&self, permission: &Permission) -> bool {
        match self {
            Authority::System => true,
            Authority::Caller { scopes, role, .. } => {
                scopes.covers(permission) && role.covers(permission)
            }
        }
    }

    fn is_token(&self, id: TokenId) -> bool {
        matches!(self, Authority::Caller { token_id, .. } if *token_id == id)
    }

    fn require(&self, requirement: &Requirement) -> Result<(), DomainError> {
        match requirement {
            Requirement::System if matches!(self, Authority::System) => Ok(()),
            Requirement::System => Err(DomainError::SystemOnly),
            Requirement::PermissionOrSelf(_, token) if self.is_token(*token) => Ok(()),
            Requirement::Permission(p) | Requirement::PermissionOrSelf(p, _) => {
                if self.holds(p) {
                    Ok(())
                } else {
                    Err(DomainError::MissingPermission(p.to_string()))
                }
            }
        }
    }

    /// No escalation: a caller may only hand out what it holds itself.
    fn may_grant(&self, granted: &PermissionSet) -> Result<(), DomainError> {
        let lacking: Vec<&Permission> = granted.iter().filter(|p| !self.holds(p)).collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Escalation(listed(lacking.into_iter())))
        }
    }
}

fn listed<'a>(permissions: impl Iterator<Item = &'a Permission>) -> String {
    permissions
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn check_text(field: &'static str, text: &str, required: bool) -> Result<(), DomainError> {
    if required && text.trim().is_empty() {
        return Err(DomainError::Empty { field });
    }
    if text.chars().count() > MAX_TEXT {
        return Err(DomainError::TooLong {
            field,
            max: MAX_TEXT,
        });
    }
    Ok(())
}

fn role_permissions<'s>(
    state: &'s State,
    role: &RoleName,
) -> Result<&'s PermissionSet, DomainError> {
    state
        .role(role)
        .map(|r| &r.permissions)
        .ok_or_else(|| DomainError::UnknownRole(role.clone()))
}

/// An account that exists and is not deleted.
fn live_account(state: &State, id: AccountId) -> Result<&Account, DomainError> {
    let account = state.account(id).ok_or(DomainError::AccountNotFound(id))?;
    if let AccountStatus::Deleted { .. } = account.status {
        return Err(DomainError::AccountDeleted(id));
    }
    Ok(account)
}

/// An account that may receive new tokens: exists, not deleted, not disabled.
fn usable_account(state: &State, id: AccountId) -> Result<&Account, DomainError> {
    let account = live_account(state, id)?;
    if !account.is_active() {
        return Err(DomainError::AccountDisabled(id));
    }
    Ok(account)
}

fn existing_token(state: &State, id: TokenId) -> Result<&Token, DomainError> {
    state.token(id).ok_or(DomainError::TokenNotFound(id))
}

fn noteable_token<'s>(
    state: &'s State,
    id: TokenId,
    event: &'static str,
) -> Result<&'s Token, DomainError> {
    let token = existing_token(state, id)?;
    if token.revoked.is_some() {
        return Err(DomainError::NotApplicable {
            token: id,
            event,
            why: "revoked",
        });
    }
    Ok(token)
}

/// Where a policy value comes from, for error messages.
fn policy_layer(state: &State, role: &RoleName, set_in: fn(&PolicySettings) -> bool) -> String {
    match state.role_policy(role) {
        Some(layer) if set_in(layer) => format!("for role {role}"),
        _ if set_in(state.global_policy()) => "globally".to_owned(),
        _ => "by default".to_owned(),
    }
}

fn token_policy(state: &State, token: &Token) -> crate::policy::Policy {
    match state.account(token.account_id) {
        Some(account) => state.effective_policy(&account.role),
        None => crate::policy::Policy::resolve(state.global_policy()),
    }
}
