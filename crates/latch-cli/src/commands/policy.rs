//! `latch policy …`: show the token policy, set the global policy or a
//! role's override.

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::{CliError, Client, Headers};
use crate::output::{self, Column, Output, print};

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Show the global policy, role overrides and what is in force per role.
    Show,
    /// Replace the global policy (or a role's override with --role).
    Set(PolicySet),
}

#[derive(Args)]
pub struct PolicySet {
    /// Set this role's override instead of the global policy.
    #[arg(long)]
    role: Option<String>,
    #[command(flatten)]
    fields: PolicyFields,
}

#[derive(Args)]
pub struct PolicyFields {
    /// The longest lifetime a token may be issued with, e.g. 90d.
    #[arg(long)]
    max_ttl: Option<String>,
    /// The lifetime of a token issued without --ttl, e.g. 30d.
    #[arg(long)]
    default_ttl: Option<String>,
    /// Tokens older than this are noted `token.rotation_due`, e.g. 30d.
    #[arg(long)]
    rotation_period: Option<String>,
    /// How long before expiry a token is noted `token.expiring`, e.g. 7d.
    #[arg(long)]
    expiry_warning: Option<String>,
    /// How long the old token keeps working after a rotation by default, e.g. 1h.
    #[arg(long)]
    rotation_grace: Option<String>,
    /// Live tokens one account may hold.
    #[arg(long)]
    max_tokens_per_account: Option<u32>,
    /// Whether every token must expire (true/false).
    #[arg(long)]
    require_expiry: Option<bool>,
    /// What a token presented after rotation (past its grace) or revocation
    /// sets off: alert (token.reuse_detected) or revoke (also revoke the
    /// tokens rotated from it).
    #[arg(long, value_parser = ["alert", "revoke"])]
    on_reuse: Option<String>,
}

impl PolicyFields {
    /// The fields given, as the policy API names them.
    pub fn fields(self) -> serde_json::Map<String, Value> {
        [
            ("max_ttl", self.max_ttl.map(Value::from)),
            ("default_ttl", self.default_ttl.map(Value::from)),
            ("rotation_period", self.rotation_period.map(Value::from)),
            ("expiry_warning", self.expiry_warning.map(Value::from)),
            ("rotation_grace", self.rotation_grace.map(Value::from)),
            (
                "max_tokens_per_account",
                self.max_tokens_per_account.map(Value::from),
            ),
            ("require_expiry", self.require_expiry.map(Value::from)),
            ("on_reuse", self.on_reuse.map(Value::from)),
        ]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| (name.to_owned(), v)))
        .collect()
    }
}

pub fn run(client: &Client, out: Output, command: PolicyCommand) -> Result<(), CliError> {
    let result = match command {
        PolicyCommand::Show => client.get("/v1/policy")?,
        PolicyCommand::Set(set) => {
            let body = Value::Object(set.fields.fields());
            let path = match &set.role {
                Some(role) => format!("/v1/policy?role={role}"),
                None => "/v1/policy".to_owned(),
            };
            client.send("PUT", &path, Some(&body), &Headers::default())?
        }
    };
    if out == Output::Table {
        let rows: Vec<Value> = result["effective"]
            .as_object()
            .map(|roles| {
                roles
                    .iter()
                    .map(|(name, p)| {
                        let mut p = p.clone();
                        p["role"] = json!(name);
                        p
                    })
                    .collect()
            })
            .unwrap_or_default();
        let columns: &[Column] = &[
            ("ROLE", "role"),
            ("MAX_TTL", "max_ttl"),
            ("DEFAULT_TTL", "default_ttl"),
            ("ROTATION_PERIOD", "rotation_period"),
            ("EXPIRY_WARNING", "expiry_warning"),
            ("ROTATION_GRACE", "rotation_grace"),
            ("MAX_TOKENS", "max_tokens_per_account"),
            ("REQUIRE_EXPIRY", "require_expiry"),
            ("ON_REUSE", "on_reuse"),
        ];
        output::print_table(&rows.iter().collect::<Vec<_>>(), columns);
    } else {
        print(out, &result, &[]);
    }
    Ok(())
}
