//! `latch account …`: create, list, show, update, disable, enable and
//! delete service accounts.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::account_lookup::account_id;
use crate::client::{CliError, Client, Headers};
use crate::output::{Column, Output, print};
use crate::request::{object, post};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Create an account: `latch account create ci-deploy --role cert-operator`.
    Create {
        /// The account's name: lowercase letters, digits and dashes, e.g. ci-deploy.
        name: String,
        /// The role whose permissions its tokens may carry (`latch role list`).
        #[arg(long)]
        role: String,
        /// What or who acts through it, e.g. "GitLab deploy pipeline".
        #[arg(long)]
        description: Option<String>,
        /// Makes a retry safe: the same key and request create one account.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List accounts.
    List {
        /// Only accounts in this status: active, disabled or deleted.
        #[arg(long)]
        status: Option<String>,
        /// Only accounts with this role.
        #[arg(long)]
        role: Option<String>,
    },
    /// Show one account (by id or name).
    Show {
        /// Account id or name.
        account: String,
    },
    /// Change an account's role or description.
    Update {
        /// Account id or name.
        account: String,
        /// The new role: every token of the account narrows or widens with it at once.
        #[arg(long)]
        role: Option<String>,
        /// The new description.
        #[arg(long)]
        description: Option<String>,
        /// Fail with exit code 6 unless the account is still at this version.
        #[arg(long)]
        if_match: Option<String>,
    },
    /// Suspend every token of the account at once: the first move when a leak is suspected.
    Disable {
        /// Account id or name.
        account: String,
        /// Why, for the audit trail, e.g. "token leaked in job 4411".
        #[arg(long)]
        reason: String,
    },
    /// Resume a disabled account.
    Enable {
        /// Account id or name.
        account: String,
    },
    /// Delete an account for good; revokes all its tokens.
    Delete {
        /// Account id or name.
        account: String,
    },
    /// Which OIDC tokens (CI workload identities) may be exchanged for its tokens.
    Trust {
        #[command(subcommand)]
        command: super::account_trust::TrustCommand,
    },
}

const ACCOUNT_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("ROLE", "role"),
    ("STATUS", "status"),
    ("VERSION", "version"),
    ("DESCRIPTION", "description"),
];

pub fn run(client: &Client, out: Output, command: AccountCommand) -> Result<(), CliError> {
    let result = match command {
        AccountCommand::Trust { command } => return super::account_trust::run(client, out, command),
        AccountCommand::Create {
            name,
            role,
            description,
            idempotency_key,
        } => {
            let body = object(vec![
                ("name", Some(json!(name))),
                ("role", Some(json!(role))),
                ("description", description.map(Value::from)),
            ]);
            post(client, "/v1/accounts", body, idempotency_key)?
        }
        AccountCommand::List { status, role } => {
            let mut query = Vec::new();
            if let Some(status) = status {
                query.push(format!("status={status}"));
            }
            if let Some(role) = role {
                query.push(format!("role={role}"));
            }
            let path = if query.is_empty() {
                "/v1/accounts".to_owned()
            } else {
                format!("/v1/accounts?{}", query.join("&"))
            };
            client.get(&path)?["accounts"].take()
        }
        AccountCommand::Show { account } => {
            client.get(&format!("/v1/accounts/{}", account_id(client, &account)?))?
        }
        AccountCommand::Update {
            account,
            role,
            description,
            if_match,
        } => {
            let id = account_id(client, &account)?;
            let body = object(vec![
                ("role", role.map(Value::from)),
                ("description", description.map(Value::from)),
            ]);
            client.send(
                "PATCH",
                &format!("/v1/accounts/{id}"),
                Some(&body),
                &Headers {
                    idempotency_key: None,
                    if_match,
                },
            )?
        }
        AccountCommand::Disable { account, reason } => {
            let id = account_id(client, &account)?;
            post(
                client,
                &format!("/v1/accounts/{id}/disable"),
                json!({ "reason": reason }),
                None,
            )?
        }
        AccountCommand::Enable { account } => {
            let id = account_id(client, &account)?;
            post(
                client,
                &format!("/v1/accounts/{id}/enable"),
                json!({}),
                None,
            )?
        }
        AccountCommand::Delete { account } => {
            let id = account_id(client, &account)?;
            client.send(
                "DELETE",
                &format!("/v1/accounts/{id}"),
                None,
                &Headers::default(),
            )?
        }
    };
    print(out, &result, ACCOUNT_COLUMNS);
    Ok(())
}
