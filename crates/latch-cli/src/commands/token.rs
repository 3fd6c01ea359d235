//! `latch token …`: issue, list, show, revoke, rotate and introspect
//! tokens.

use std::io::Read;

use clap::Subcommand;
use serde_json::{Value, json};

use crate::account_lookup::account_id;
use crate::client::{CliError, Client};
use crate::output::{Column, Output, print};
use crate::request::{object, post};

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Issue a token; `--output raw` prints only the token.
    Issue {
        /// Account id or name.
        account: String,
        /// What the token is for, e.g. deploy (shown in listings).
        #[arg(long)]
        name: String,
        /// A permission the token carries (repeatable); default: the account's role.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 30d; default from policy.
        #[arg(long)]
        ttl: Option<String>,
        /// Only accept the token from this CIDR (repeatable).
        #[arg(long = "allow-cidr")]
        allowed_cidrs: Vec<String>,
        /// Makes a retry safe: the same key and request issue one token, and
        /// a retry gets the same secret back for a short while.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List an account's tokens, or every account's (without ACCOUNT).
    List {
        /// Account id or name; without it, tokens of every account.
        account: Option<String>,
        /// Only live tokens not used within this span (e.g. 30d): stale
        /// tokens to clean up.
        #[arg(long)]
        unused_since: Option<String>,
        /// Only live tokens, not rotated, that expire within this span
        /// (e.g. 7d).
        #[arg(long)]
        expiring_within: Option<String>,
        /// Only live tokens overdue for rotation under policy.
        #[arg(long)]
        rotation_due: bool,
        /// Only tokens with this status.
        #[arg(long, value_parser = ["active", "expired", "revoked", "suspended"])]
        status: Option<String>,
    },
    /// Show a token's metadata (`self` for the calling token).
    Show {
        /// Token id, or `self`.
        id: String,
    },
    /// Revoke a token, for good, at latchd and every verifier.
    Revoke {
        /// Token id.
        id: String,
        /// Why, for the audit trail.
        #[arg(long)]
        reason: Option<String>,
        /// Also revoke every token of its rotation family (the tokens it was
        /// rotated from and to): use this for a leaked token, which may have
        /// rotated itself.
        #[arg(long)]
        family: bool,
    },
    /// Rotate a token (or the calling one with --self); prints the new token.
    Rotate {
        /// Token id (or --self).
        #[arg(required_unless_present = "self_")]
        id: Option<String>,
        /// Rotate the token this command acts with (a pipeline renewing itself).
        #[arg(long = "self", id = "self_")]
        self_: bool,
        /// How long the old token keeps working, e.g. 1h.
        #[arg(long)]
        grace: Option<String>,
        /// Makes a retry safe: the same key rotates once.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// Trade a token for a short-lived child token (RFC 8693 token
    /// exchange): at most its permissions, expiring no later, revoked with
    /// it. `--output raw` prints only the new token.
    Exchange {
        /// The token to trade (`-`: stdin); default: the token this command
        /// acts with (LATCH_TOKEN or --token-file).
        #[arg(long)]
        subject_token_file: Option<std::path::PathBuf>,
        /// A permission the child carries (repeatable); default: all the
        /// subject token may do.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, e.g. 10m; default 15m, never past the subject's expiry.
        #[arg(long)]
        ttl: Option<String>,
        /// The child's name; default `child of <name>`.
        #[arg(long)]
        name: Option<String>,
        /// `jwt` when the subject token is an OIDC identity token (a CI
        /// platform's), traded under the account's trust policy; default
        /// `latch`, a Latch token.
        #[arg(long, default_value = "latch", value_parser = ["latch", "jwt"])]
        subject_token_type: String,
        /// OIDC: the trust policy (id) to exchange under, when the token
        /// matches several.
        #[arg(long)]
        policy: Option<String>,
    },
    /// Ask latchd whether a token is active (reads it from stdin when omitted or `-`).
    Introspect {
        /// The token secret; prefer stdin: arguments show up in process lists.
        secret: Option<String>,
    },
}

/// A secret from a file, or stdin for `-`, trimmed; never echoed.
fn read_secret(path: &std::path::Path) -> Result<String, CliError> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Other(format!("reading the subject token from stdin: {e}")))?;
    } else {
        text = std::fs::read_to_string(path).map_err(|e| {
            CliError::Usage(format!("reading the subject token from {}: {e}", path.display()))
        })?;
    }
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(CliError::Usage("the subject token is empty".into()));
    }
    Ok(text)
}

const TOKEN_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
    ("SCOPES", "scopes"),
    ("EFFECTIVE", "effective_permissions"),
];
const ALL_TOKEN_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("ACCOUNT", "account_name"),
    ("NAME", "name"),
    ("STATUS", "status"),
    ("EXPIRES", "expires_at"),
    ("LAST USED", "last_used_at"),
    ("ROTATION DUE", "rotation_due_at"),
    ("EFFECTIVE", "effective_permissions"),
];
const ISSUED_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("TOKEN", "token"),
    ("EXPIRES", "expires_at"),
    ("SCOPES", "scopes"),
];

/// A new token (issued or rotated): the secret alone with `--output raw`,
/// else its record, and with a table a reminder on stderr to store it.
fn print_issued(out: Output, issued: &Value) {
    if out == Output::Raw {
        println!("{}", issued["token"].as_str().unwrap_or_default());
    } else {
        print(out, issued, ISSUED_COLUMNS);
        if out == Output::Table {
            eprintln!("Store the token now: it is not shown again.");
        }
    }
}

pub fn run(client: &mut Client, out: Output, command: TokenCommand) -> Result<(), CliError> {
    match command {
        TokenCommand::Exchange {
            subject_token_file,
            scopes,
            ttl,
            name,
            subject_token_type,
            policy,
        } => {
            let subject_type = if subject_token_type == "jwt" {
                "urn:ietf:params:oauth:token-type:jwt"
            } else {
                "urn:ietf:params:oauth:token-type:access_token"
            };
            let subject = match subject_token_file {
                Some(path) => read_secret(&path)?,
                None => client
                    .token()
                    .ok_or_else(|| {
                        CliError::Usage(
                            "no subject token: pass --subject-token-file, or set LATCH_TOKEN".into(),
                        )
                    })?
                    .to_owned(),
            };
            // The subject token is the credential: no other is needed (an
            // OIDC token is not sent as a bearer token anywhere).
            if subject_type.ends_with("access_token") {
                client.set_token_if_none(&subject);
            }
            let body = object(vec![
                ("grant_type", Some(json!("urn:ietf:params:oauth:grant-type:token-exchange"))),
                ("subject_token", Some(json!(subject))),
                ("subject_token_type", Some(json!(subject_type))),
                ("audience", policy.map(Value::from)),
                ("scope", (!scopes.is_empty()).then(|| json!(scopes.join(" ")))),
                ("ttl", ttl.map(Value::from)),
                ("name", name.map(Value::from)),
            ]);
            let exchanged = post(client, "/v1/token-exchange", body, None)?;
            if out == Output::Raw {
                println!("{}", exchanged["access_token"].as_str().unwrap_or_default());
            } else {
                print(
                    out,
                    &exchanged,
                    &[
                        ("TOKEN ID", "token_id"),
                        ("TOKEN", "access_token"),
                        ("EXPIRES IN", "expires_in"),
                        ("SCOPE", "scope"),
                    ],
                );
                if out == Output::Table {
                    eprintln!("Store the token now: it is not shown again.");
                }
            }
        }
        TokenCommand::Issue {
            account,
            name,
            scopes,
            ttl,
            allowed_cidrs,
            idempotency_key,
        } => {
            let id = account_id(client, &account)?;
            let body = object(vec![
                ("name", Some(json!(name))),
                ("scopes", (!scopes.is_empty()).then(|| json!(scopes))),
                ("ttl", ttl.map(Value::from)),
                (
                    "allowed_cidrs",
                    (!allowed_cidrs.is_empty()).then(|| json!(allowed_cidrs)),
                ),
            ]);
            print_issued(
                out,
                &post(
                    client,
                    &format!("/v1/accounts/{id}/tokens"),
                    body,
                    idempotency_key,
                )?,
            );
        }
        TokenCommand::List {
            account,
            unused_since,
            expiring_within,
            rotation_due,
            status,
        } => {
            let account = account.map(|a| account_id(client, &a)).transpose()?;
            let across = expiring_within.is_some() || rotation_due || status.is_some();
            match account {
                Some(id) if !across => {
                    let query = unused_since
                        .map(|span| format!("?unused_since={span}"))
                        .unwrap_or_default();
                    print(
                        out,
                        &client.get(&format!("/v1/accounts/{id}/tokens{query}"))?["tokens"],
                        TOKEN_COLUMNS,
                    );
                }
                account => {
                    let query: Vec<String> = [
                        ("account", account),
                        ("unused_since", unused_since),
                        ("expiring_within", expiring_within),
                        ("rotation_due", rotation_due.then(|| "true".to_owned())),
                        ("status", status),
                    ]
                    .into_iter()
                    .filter_map(|(name, value)| value.map(|v| format!("{name}={}", v.trim())))
                    .collect();
                    let query = if query.is_empty() {
                        String::new()
                    } else {
                        format!("?{}", query.join("&"))
                    };
                    let answer = client.get(&format!("/v1/tokens{query}"))?;
                    if answer["truncated"] == Value::Bool(true) {
                        eprintln!("latch: more tokens matched than shown (1,000); narrow the filters");
                    }
                    print(out, &answer["tokens"], ALL_TOKEN_COLUMNS);
                }
            }
        }
        TokenCommand::Show { id } => print(
            out,
            &client.get(&format!("/v1/tokens/{id}"))?,
            TOKEN_COLUMNS,
        ),
        TokenCommand::Revoke { id, reason, family } => {
            let body = object(vec![
                ("reason", reason.map(Value::from)),
                ("family", family.then_some(Value::Bool(true))),
            ]);
            print(
                out,
                &post(client, &format!("/v1/tokens/{id}/revoke"), body, None)?,
                TOKEN_COLUMNS,
            );
        }
        TokenCommand::Rotate {
            id,
            self_,
            grace,
            idempotency_key,
        } => {
            let path = match (self_, id) {
                (true, _) => "/v1/tokens/self/rotate".to_owned(),
                (false, Some(id)) => format!("/v1/tokens/{id}/rotate"),
                (false, None) => {
                    return Err(CliError::Usage("name a token id, or pass --self".into()));
                }
            };
            let body = object(vec![("grace", grace.map(Value::from))]);
            print_issued(out, &post(client, &path, body, idempotency_key)?);
        }
        TokenCommand::Introspect { secret } => {
            let token = match secret.as_deref() {
                Some(t) if t != "-" => t.to_owned(),
                _ => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .map_err(|e| CliError::Other(e.to_string()))?;
                    text.trim().to_owned()
                }
            };
            let result = post(client, "/v1/introspect", json!({ "token": token }), None)?;
            print(
                out,
                &result,
                &[
                    ("ACTIVE", "active"),
                    ("ACCOUNT", "account_id"),
                    ("TOKEN", "token_id"),
                    ("SCOPE", "scope"),
                    ("EXP", "exp"),
                ],
            );
        }
    }
    Ok(())
}
