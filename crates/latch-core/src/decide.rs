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

/// Whether the actor may run this kind of command now: live, and holding
/// the permission it needs. `decide` checks this first; the command handler
/// also checks it before answering an idempotent replay, so a retry never
/// hands back what the caller could no longer ask for.
pub fn authorize(
    state: &State,
    ctx: &CommandContext,
    command: &Command,
) -> Result<(), DomainError> {
    Authority::of(state, ctx)?.require(&command.requirement())
}

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
            authority.may_act_on_account(state, account)?;
            let role = role.as_ref().filter(|r| **r != account.role);
            let description = description.as_ref().filter(|d| **d != account.description);
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
                account_id: *account_id,
                role: role.cloned(),
                description: description.cloned(),
            }])
        }
        Command::DisableAccount { account_id, reason } => {
            let account = live_account(state, *account_id)?;
            authority.may_act_on_account(state, account)?;
            check_text("reason", reason, true)?;
            if let AccountStatus::Disabled { .. } = account.status {
                return Err(DomainError::AccountDisabled(*account_id));
            }
            refuse_last_admin(state, account)?;
            Ok(vec![Event::AccountDisabled {
                account_id: *account_id,
                reason: reason.clone(),
            }])
        }
        Command::EnableAccount { account_id } => {
            let account = live_account(state, *account_id)?;
            authority.may_act_on_account(state, account)?;
            if account.is_active() {
                return Err(DomainError::AccountNotDisabled(*account_id));
            }
            Ok(vec![Event::AccountEnabled {
                account_id: *account_id,
            }])
        }
        Command::DeleteAccount { account_id } => {
            let account = live_account(state, *account_id)?;
            authority.may_act_on_account(state, account)?;
            refuse_last_admin(state, account)?;
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
            authority.may_act_on_token(token)?;
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
        Command::RevokeTokenFamily { token_id, reason } => {
            let token = existing_token(state, *token_id)?;
            authority.may_act_on_token(token)?;
            check_text("reason", reason, false)?;
            let family = rotation_family(state, token);
            let events: Vec<Event> = family
                .iter()
                .filter(|t| t.revoked.is_none())
                .map(|t| Event::TokenRevoked {
                    token_id: t.id,
                    account_id: t.account_id,
                    reason: reason.clone(),
                })
                .collect();
            if events.is_empty() {
                return Err(DomainError::TokenRevoked(*token_id));
            }
            Ok(events)
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
            authority.may_act_on_token(token)?;
            let policy = state.effective_policy(&account.role);
            let layer =
                |pick: fn(&PolicySettings) -> bool| policy_layer(state, &account.role, pick);
            // A longer grace would let a leaked token keep itself alive
            // after rotating: the policy's grace is the most there is.
            if let Some(grace) = grace
                && grace.to_chrono() > policy.rotation_grace.to_chrono()
            {
                return Err(DomainError::PolicyViolation {
                    policy: "rotation_grace",
                    value: policy.rotation_grace.to_string(),
                    layer: layer(|p| p.rotation_grace.is_some()),
                    detail: format!("grace {grace} is longer than allowed"),
                });
            }
            // The account's token limit holds for rotations too. A token in
            // its rotation grace counts with its successor (one family, one
            // token): the successor replaces it, so a rotation never adds a
            // token, but an account already over its limit must shed one
            // before it rotates.
            if let Some(limit) = policy.max_tokens_per_account {
                let others = state
                    .tokens_of(token.account_id)
                    .filter(|t| t.id != *token_id && t.rotated_to.is_none())
                    .filter(|t| t.revoked.is_none() && !t.is_expired_at(now))
                    .count();
                if others + 1 > limit as usize {
                    return Err(DomainError::PolicyViolation {
                        policy: "max_tokens_per_account",
                        value: limit.to_string(),
                        layer: layer(|p| p.max_tokens_per_account.is_some()),
                        detail: format!(
                            "account {} holds {} other live token(s); revoke one before rotating",
                            account.name, others
                        ),
                    });
                }
            }
            // At most one generation of a family in grace: rotating a
            // successor while its predecessor's grace still runs ends that
            // grace now. Otherwise a leaked token could rotate itself again
            // and again and leave a trail of live tokens behind.
            let superseded = token
                .rotated_from
                .and_then(|id| state.token(id))
                .filter(|p| p.revoked.is_none() && !p.is_expired_at(now))
                .map(|p| Event::TokenRevoked {
                    token_id: p.id,
                    account_id: p.account_id,
                    reason: format!(
                        "rotation grace ended early: its successor {token_id} was rotated again"
                    ),
                });
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
            let mut events = vec![
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
            ];
            events.extend(superseded);
            Ok(events)
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
        Command::RotateSigningKey { public_key } => {
            if !public_key.starts_with("ed25519:") || public_key.len() > 128 {
                return Err(DomainError::InvalidSigningKey(public_key.chars().take(64).collect()));
            }
            Ok(vec![Event::SigningKeyRotated {
                public_key: public_key.clone(),
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

    /// Acting on an account (changing, disabling, enabling, deleting it)
    /// needs every permission its role grants: no one below admin can lock
    /// an admin out.
    fn may_act_on_account(&self, state: &State, account: &Account) -> Result<(), DomainError> {
        let Ok(held) = role_permissions(state, &account.role) else {
            return Ok(());
        };
        self.outranks(held, || format!("account {}", account.name))
    }

    /// Acting on another token (revoking, rotating it) needs its scopes; a
    /// token may always act on itself.
    fn may_act_on_token(&self, token: &Token) -> Result<(), DomainError> {
        if self.is_token(token.id) {
            return Ok(());
        }
        self.outranks(&token.scopes, || format!("token {}", token.id))
    }

    fn outranks(
        &self,
        held: &PermissionSet,
        target: impl FnOnce() -> String,
    ) -> Result<(), DomainError> {
        let lacking: Vec<&Permission> = held.iter().filter(|p| !self.holds(p)).collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Outranked {
                target: target(),
                lacking: listed(lacking.into_iter()),
            })
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

/// Whether an account is active and its role grants `*`.
fn is_admin(state: &State, account: &Account) -> bool {
    account.is_active()
        && state
            .role(&account.role)
            .is_some_and(|r| r.permissions.covers(&Permission::all()))
}

/// Refuses to take `*` from `account` when it is the last active account
/// holding it.
fn refuse_last_admin(state: &State, account: &Account) -> Result<(), DomainError> {
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
fn last_admin_holding<'s>(state: &'s State, role: &RoleName) -> Option<&'s Account> {
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

/// The token's rotation family: every token it was rotated from or to,
/// transitively, itself included, oldest first.
fn rotation_family<'s>(state: &'s State, token: &'s Token) -> Vec<&'s Token> {
    let mut oldest = token;
    while let Some(earlier) = oldest.rotated_from.and_then(|id| state.token(id)) {
        oldest = earlier;
    }
    let mut family = vec![oldest];
    let mut current = oldest;
    while let Some(later) = current.rotated_to.and_then(|id| state.token(id)) {
        family.push(later);
        current = later;
    }
    family
}
