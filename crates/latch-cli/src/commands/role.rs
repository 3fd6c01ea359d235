//! `latch role …`: list roles, define one and change its policy override.

use clap::Subcommand;
use serde_json::{Value, json};

use super::policy::PolicyFields;
use crate::client::{CliError, Client, Headers};
use crate::output::{Column, Output, print};
use crate::request::object;

#[derive(Subcommand)]
// Parsed once per run: the size of the policy flags does not matter.
#[allow(clippy::large_enum_variant)]
pub enum RoleCommand {
    /// List roles.
    List,
    /// Define or redefine a role (`--permission certificates:issue ...`),
    /// and/or change its policy override (`--max-ttl 30d ...`; the flags
    /// given replace those fields, the others stay).
    Set {
        /// The role's name, e.g. cert-operator.
        name: String,
        /// A permission the role grants, `resource:action` with `*`
        /// wildcards (repeatable); replaces the role's permissions.
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// What the role is for.
        #[arg(long)]
        description: Option<String>,
        #[command(flatten)]
        policy: PolicyFields,
    },
}

const ROLE_COLUMNS: &[Column] = &[
    ("NAME", "name"),
    ("BUILTIN", "builtin"),
    ("PERMISSIONS", "permissions"),
    ("DESCRIPTION", "description"),
];

pub fn run(client: &Client, out: Output, command: RoleCommand) -> Result<(), CliError> {
    let result = match command {
        RoleCommand::List => client.get("/v1/roles")?["roles"].take(),
        RoleCommand::Set {
            name,
            permissions,
            description,
            policy,
        } => {
            let policy = policy.fields();
            if permissions.is_empty() && policy.is_empty() {
                return Err(CliError::Usage(
                    "give --permission (to define the role) and/or policy flags such as --max-ttl"
                        .into(),
                ));
            }
            let mut result = json!({ "name": name });
            if !permissions.is_empty() {
                let body = object(vec![
                    ("permissions", Some(json!(permissions))),
                    ("description", description.map(Value::from)),
                ]);
                result = client.send(
                    "PUT",
                    &format!("/v1/roles/{name}"),
                    Some(&body),
                    &Headers::default(),
                )?;
            }
            if !policy.is_empty() {
                // Patch the role's override: keep what the flags do not name.
                let mut layer = client.get("/v1/policy")?["roles"][&name]
                    .as_object()
                    .cloned()
                    .unwrap_or_default();
                layer.extend(policy);
                let body = Value::Object(layer.into_iter().filter(|(_, v)| !v.is_null()).collect());
                client.send(
                    "PUT",
                    &format!("/v1/policy?role={name}"),
                    Some(&body),
                    &Headers::default(),
                )?;
                if permissions.is_empty() {
                    result = client.get("/v1/roles")?["roles"]
                        .as_array()
                        .and_then(|roles| {
                            roles.iter().find(|r| r["name"] == name.as_str()).cloned()
                        })
                        .unwrap_or(result);
                }
            }
            result
        }
    };
    print(out, &result, ROLE_COLUMNS);
    Ok(())
}
