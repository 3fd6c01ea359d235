//! `latch account trust …`: which OIDC tokens (a CI platform's workload
//! identity) may be exchanged for a token of an account
//! (`latch token exchange`, `POST /v1/token-exchange`).

use clap::Subcommand;
use serde_json::{Map, Value, json};

use crate::account_lookup::account_id;
use crate::client::{CliError, Client, Headers};
use crate::output::{Column, Output, print};
use crate::request::{object, post};

#[derive(Subcommand)]
pub enum TrustCommand {
    /// Trust OIDC tokens of an issuer, for an audience, whose claims match:
    /// `latch account trust add ci-deploy --issuer https://token.actions.githubusercontent.com
    /// --audience latch --claim sub=repo:acme/deploy:ref:refs/heads/main`.
    Add {
        /// Account id or name.
        account: String,
        /// The issuer exactly as tokens carry it (`iss`).
        #[arg(long)]
        issuer: String,
        /// The audience tokens must be for (`aud`).
        #[arg(long)]
        audience: String,
        /// `name=pattern` a claim must match (repeatable; `*` matches any
        /// run of characters; at least one must be more than `*`).
        #[arg(long = "claim", required = true)]
        claims: Vec<String>,
        /// A permission exchanged tokens may carry at most (repeatable);
        /// default: the account's role.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// The longest an exchanged token may live, e.g. 15m (default), at most 12h.
        #[arg(long)]
        max_ttl: Option<String>,
    },
    /// List an account's trust policies.
    List {
        /// Account id or name.
        account: String,
    },
    /// Stop trusting a policy.
    Remove {
        /// Account id or name.
        account: String,
        /// The policy's id (`latch account trust list`).
        policy: String,
    },
}

const POLICY_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("ISSUER", "issuer"),
    ("AUDIENCE", "audience"),
    ("CLAIMS", "claims"),
    ("SCOPES", "scopes"),
    ("MAX TTL", "max_ttl"),
];

pub fn run(client: &Client, out: Output, command: TrustCommand) -> Result<(), CliError> {
    match command {
        TrustCommand::Add {
            account,
            issuer,
            audience,
            claims,
            scopes,
            max_ttl,
        } => {
            let id = account_id(client, &account)?;
            let mut patterns = Map::new();
            for claim in claims {
                let Some((name, pattern)) = claim.split_once('=') else {
                    return Err(CliError::Usage(format!(
                        "--claim {claim:?}: write name=pattern, e.g. sub=repo:acme/deploy:ref:refs/heads/main"
                    )));
                };
                patterns.insert(name.to_owned(), json!(pattern));
            }
            let body = object(vec![
                ("issuer", Some(json!(issuer))),
                ("audience", Some(json!(audience))),
                ("claims", Some(Value::Object(patterns))),
                ("scopes", (!scopes.is_empty()).then(|| json!(scopes))),
                ("max_ttl", max_ttl.map(Value::from)),
            ]);
            let added = post(client, &format!("/v1/accounts/{id}/trust-policies"), body, None)?;
            print(out, &added, POLICY_COLUMNS);
        }
        TrustCommand::List { account } => {
            let id = account_id(client, &account)?;
            let listed = client.get(&format!("/v1/accounts/{id}/trust-policies"))?;
            print(out, &listed["policies"], POLICY_COLUMNS);
        }
        TrustCommand::Remove { account, policy } => {
            let id = account_id(client, &account)?;
            client.send(
                "DELETE",
                &format!("/v1/accounts/{id}/trust-policies/{policy}"),
                None,
                &Headers::default(),
            )?;
        }
    }
    Ok(())
}
