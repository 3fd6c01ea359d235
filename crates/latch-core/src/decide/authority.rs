//! `Authority`: what the actor of a command holds, and the checks made
//! against it: the command's requirement, acting on accounts and tokens,
//! and handing out permissions.

use crate::account::Account;
use crate::actor::Actor;
use crate::command::Requirement;
use crate::domain_error::DomainError;
use crate::id::{AccountId, TokenId};
use crate::permission::Permission;
use crate::permission_set::PermissionSet;
use crate::state::State;
use crate::token::Token;

use super::CommandContext;
use super::permission_list::listed;
use super::state_lookups::{existing_token, live_account, role_permissions};

/// What the actor holds, resolved once per command.
pub(super) enum Authority<'s> {
    System,
    Caller {
        token_id: TokenId,
        scopes: &'s PermissionSet,
        role: &'s PermissionSet,
    },
}

impl<'s> Authority<'s> {
    pub(super) fn of(state: &'s State, ctx: &CommandContext) -> Result<Self, DomainError> {
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

    pub(super) fn require(&self, requirement: &Requirement) -> Result<(), DomainError> {
        match requirement {
            Requirement::System if matches!(self, Authority::System) => Ok(()),
            Requirement::System => Err(DomainError::SystemOnly),
            Requirement::Itself(token) if self.is_token(*token) => Ok(()),
            Requirement::Itself(_) => Err(DomainError::OnlyItself),
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

    /// The live account a command acts on, once the actor may act on it.
    pub(super) fn account_to_act_on<'a>(
        &self,
        state: &'a State,
        id: AccountId,
    ) -> Result<&'a Account, DomainError> {
        let account = live_account(state, id)?;
        self.may_act_on_account(state, account)?;
        Ok(account)
    }

    /// The token a command acts on, once the actor may act on it.
    pub(super) fn token_to_act_on<'a>(
        &self,
        state: &'a State,
        id: TokenId,
    ) -> Result<&'a Token, DomainError> {
        let token = existing_token(state, id)?;
        self.may_act_on_token(token)?;
        Ok(token)
    }

    /// Acting on an account (changing, disabling, enabling, deleting it)
    /// needs every permission its role grants: no one below admin can lock
    /// an admin out.
    pub(super) fn may_act_on_account(
        &self,
        state: &State,
        account: &Account,
    ) -> Result<(), DomainError> {
        let Ok(held) = role_permissions(state, &account.role) else {
            return Ok(());
        };
        self.outranks(held, || format!("account {}", account.name))
    }

    /// Acting on another token (revoking, rotating it) needs its scopes; a
    /// token may always act on itself.
    pub(super) fn may_act_on_token(&self, token: &Token) -> Result<(), DomainError> {
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
    pub(super) fn may_grant(&self, granted: &PermissionSet) -> Result<(), DomainError> {
        let lacking: Vec<&Permission> = granted.iter().filter(|p| !self.holds(p)).collect();
        if lacking.is_empty() {
            Ok(())
        } else {
            Err(DomainError::Escalation(listed(lacking.into_iter())))
        }
    }
}
