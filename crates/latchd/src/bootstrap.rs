//! First start: an empty log gets the account `admin` (role `admin`) and its
//! first token, written to `<data-dir>/admin.token` (mode 0600). The token
//! never appears in a log; only the file's path does.
//!
//! Safe against a crash at any step: the file is written (and synced)
//! before the token's event, and each step runs only while it is missing,
//! so a restart finishes what a crash interrupted. Once the admin account
//! has a token, later starts do nothing.

use std::io::Write;
use std::path::{Path, PathBuf};

use latch_core::{AccountId, AccountName, Actor, Command, RoleName, TokenId, TokenSecret};

use crate::command_handler::{CommandHandle, CommandRequest};
use crate::command_outcome::{CommandRejection, HandlerFailure};

pub const ADMIN_ACCOUNT: &str = "admin";
pub const ADMIN_TOKEN_FILE: &str = "admin.token";

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("writing {path}: {source}")]
    TokenFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Handler(#[from] HandlerFailure),
    #[error("bootstrap command rejected: {0}")]
    Rejected(#[from] CommandRejection),
}

/// What the bootstrap did, if anything.
#[derive(Debug, PartialEq, Eq)]
pub enum Bootstrapped {
    AlreadyDone,
    /// The admin token is in this file.
    AdminToken(PathBuf),
}

pub async fn bootstrap(
    commands: &CommandHandle,
    data_dir: &Path,
) -> Result<Bootstrapped, BootstrapError> {
    let name = AccountName::parse(ADMIN_ACCOUNT).expect("valid name");
    let existing = {
        let state = commands.state();
        state
            .account_by_name(&name)
            .map(|a| (a.id, state.tokens_of(a.id).next().is_some()))
    };
    let account_id = match existing {
        Some((_, true)) => return Ok(Bootstrapped::AlreadyDone),
        Some((id, false)) => id,
        None => {
            let account_id = AccountId::new();
            let command = Command::CreateAccount {
                account_id,
                name,
                role: RoleName::admin(),
                description: "created by latchd on first start".into(),
            };
            commands
                .submit(CommandRequest::new(Actor::System, command))
                .await??;
            account_id
        }
    };
    let secret = TokenSecret::generate(&mut rand::rng());
    let path = data_dir.join(ADMIN_TOKEN_FILE);
    write_token_file(&path, &secret).map_err(|source| BootstrapError::TokenFile {
        path: path.clone(),
        source,
    })?;
    let command = Command::IssueToken {
        account_id,
        token_id: TokenId::new(),
        name: "bootstrap".into(),
        scopes: None,
        ttl: None,
        allowed_cidrs: Vec::new(),
        digest: secret.digest(),
    };
    commands
        .submit(CommandRequest::new(Actor::System, command))
        .await??;
    Ok(Bootstrapped::AdminToken(path))
}

pub(crate) fn write_token_file(path: &Path, secret: &TokenSecret) -> std::io::Result<()> {
    let partial = path.with_extension("token.partial");
    let _ = std::fs::remove_file(&partial);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&partial)?;
    file.write_all(secret.expose().as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&partial, path)?;
    Ok(())
}
