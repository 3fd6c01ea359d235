//! Break-glass: `latchd recover-admin`, run on latchd's host with latchd
//! stopped, when nobody can administer Latch any more (the admin account
//! disabled, deleted or demoted, or its tokens lost).
//!
//! It restores an active account holding `*` and issues it a fresh token,
//! written to `<data-dir>/admin.token` (mode 0600). Everything it does is an
//! ordinary event in the log, appended through the same command handler as
//! any request, by actor `system`, with a request id that names the
//! break-glass and the host user: an investigation sees exactly when and
//! how administration was recovered. It needs the data directory, not a
//! token: whoever can write latchd's data directory owns Latch anyway.

use std::path::{Path, PathBuf};

use latch_core::{
    AccountId, AccountName, AccountStatus, Actor, Command, Permission, RoleName, TokenId,
    TokenSecret,
};

use crate::bootstrap::{ADMIN_TOKEN_FILE, write_token_file};
use crate::command_handler::{CommandHandle, CommandRequest};
use crate::command_outcome::{CommandRejection, HandlerFailure};

#[derive(Debug, thiserror::Error)]
pub enum RecoverAdminError {
    #[error("writing {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Handler(#[from] HandlerFailure),
    #[error("recovery command rejected: {0}")]
    Rejected(#[from] CommandRejection),
}

/// What the recovery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredAdmin {
    pub account_id: AccountId,
    pub account: AccountName,
    pub token_id: TokenId,
    pub token_file: PathBuf,
    /// One line per step taken, for the operator.
    pub steps: Vec<String>,
}

/// Restores `name` (or, if that account is deleted, a new account named
/// after it) as an active admin and issues it a token.
pub async fn recover_admin(
    commands: &CommandHandle,
    data_dir: &Path,
    name: &AccountName,
    operator: &str,
) -> Result<RecoveredAdmin, RecoverAdminError> {
    let request_id = format!("break-glass: latchd recover-admin by {operator}");
    let run = |command: Command| {
        let mut request = CommandRequest::new(Actor::System, command);
        request.request_id = Some(request_id.clone());
        async move { commands.submit(request).await?.map_err(RecoverAdminError::from) }
    };
    let mut steps = Vec::new();
    let existing = {
        let state = commands.state();
        match state.account_by_name(name) {
            Some(account) if !matches!(account.status, AccountStatus::Deleted { .. }) => {
                let holds_all = state
                    .role(&account.role)
                    .is_some_and(|r| r.permissions.covers(&Permission::all()));
                Some((account.id, account.is_active(), holds_all))
            }
            _ => None,
        }
    };
    let (account_id, account) = match existing {
        Some((id, active, holds_all)) => {
            if !holds_all {
                run(Command::UpdateAccount {
                    account_id: id,
                    role: Some(RoleName::admin()),
                    description: None,
                })
                .await?;
                steps.push(format!("gave account {name} the role admin"));
            }
            if !active {
                run(Command::EnableAccount { account_id: id }).await?;
                steps.push(format!("enabled account {name}"));
            }
            (id, name.clone())
        }
        None => {
            let free = commands.state().account_by_name(name).is_none();
            let account = if free {
                name.clone()
            } else {
                let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
                AccountName::parse(&format!("{name}-recovered-{stamp}"))
                    .unwrap_or_else(|_| name.clone())
            };
            let id = AccountId::new();
            run(Command::CreateAccount {
                account_id: id,
                name: account.clone(),
                role: RoleName::admin(),
                description: "restored by latchd recover-admin (break-glass)".into(),
            })
            .await?;
            steps.push(format!("created account {account} with the role admin"));
            (id, account)
        }
    };
    let secret = TokenSecret::generate(&mut rand::rng());
    let token_file = data_dir.join(ADMIN_TOKEN_FILE);
    write_token_file(&token_file, &secret).map_err(|source| RecoverAdminError::TokenFile {
        path: token_file.clone(),
        source,
    })?;
    let token_id = TokenId::new();
    run(Command::IssueToken {
        account_id,
        token_id,
        name: "break-glass".into(),
        scopes: None,
        ttl: None,
        allowed_cidrs: Vec::new(),
        digest: secret.digest(),
    })
    .await?;
    steps.push(format!(
        "issued token {token_id} to {account}; it is in {}",
        token_file.display()
    ));
    Ok(RecoveredAdmin {
        account_id,
        account,
        token_id,
        token_file,
        steps,
    })
}
