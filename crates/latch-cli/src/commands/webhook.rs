//! `latch webhook …`: deliver events to a URL, signed the Standard
//! Webhooks way (`webhook-id`, `webhook-timestamp`, `webhook-signature`),
//! and inspect or redeliver what was sent (`/v1/webhooks`).

use clap::Subcommand;
use serde_json::{Value, json};

use crate::account_lookup::account_id;
use crate::client::{CliError, Client, Headers};
use crate::output::{Column, Output, print};
use crate::request::{object, post};

#[derive(Subcommand)]
pub enum WebhookCommand {
    /// Deliver events to URL: `latch webhook add https://hooks.example/latch
    /// --events token.expiring,token.leak_reported,token.reuse_detected`.
    /// Prints the signing secret (whsec_…) this once.
    Add {
        /// Where to POST deliveries (https://…). (Not `url`: that is the
        /// global flag naming latchd.)
        #[arg(value_name = "URL")]
        endpoint: String,
        /// Event types, families (token.*) or * (comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        events: Vec<String>,
        /// Only events about this account (id or name; repeatable).
        #[arg(long = "account")]
        accounts: Vec<String>,
        /// `standard` (Standard Webhooks JSON) or `slack` (a Slack incoming
        /// webhook's {text}).
        #[arg(long, value_parser = ["standard", "slack"])]
        format: Option<String>,
    },
    /// The endpoints events are delivered to.
    List,
    /// Stop delivering to an endpoint.
    Remove {
        /// The endpoint's id (`latch webhook list`).
        id: String,
    },
    /// An endpoint's deliveries, newest first.
    Deliveries {
        /// The endpoint's id.
        id: String,
        /// Only `pending`, `delivered` or `dead` ones.
        #[arg(long, value_parser = ["pending", "delivered", "dead"])]
        status: Option<String>,
    },
    /// Deliver one event again (a dead or delivered delivery), with the same
    /// webhook-id.
    Redeliver {
        /// The endpoint's id.
        id: String,
        /// The delivery's event position (`latch webhook deliveries`).
        position: u64,
    },
}

const WEBHOOK_COLUMNS: &[Column] = &[
    ("ID", "id"),
    ("URL", "url"),
    ("EVENTS", "events"),
    ("ACCOUNTS", "accounts"),
    ("FORMAT", "format"),
];

const DELIVERY_COLUMNS: &[Column] = &[
    ("POSITION", "position"),
    ("EVENT", "event_type"),
    ("STATUS", "status"),
    ("ATTEMPTS", "attempts"),
    ("LAST STATUS", "last_status"),
    ("LAST ERROR", "last_error"),
    ("NEXT ATTEMPT", "next_attempt_at"),
];

pub fn run(client: &Client, out: Output, command: WebhookCommand) -> Result<(), CliError> {
    match command {
        WebhookCommand::Add {
            endpoint,
            events,
            accounts,
            format,
        } => {
            let accounts = accounts
                .iter()
                .map(|a| account_id(client, a))
                .collect::<Result<Vec<_>, _>>()?;
            let body = object(vec![
                ("url", Some(json!(endpoint))),
                ("events", Some(json!(events))),
                ("accounts", (!accounts.is_empty()).then(|| json!(accounts))),
                ("format", format.map(Value::from)),
            ]);
            let added = post(client, "/v1/webhooks", body, None)?;
            if out == Output::Table {
                print(out, &added, WEBHOOK_COLUMNS);
                println!(
                    "signing secret (shown once; verify webhook-signature with it): {}",
                    added["secret"].as_str().unwrap_or_default()
                );
            } else {
                print(out, &added, WEBHOOK_COLUMNS);
            }
        }
        WebhookCommand::List => {
            let listed = client.get("/v1/webhooks")?;
            print(out, &listed["webhooks"], WEBHOOK_COLUMNS);
        }
        WebhookCommand::Remove { id } => {
            client.send("DELETE", &format!("/v1/webhooks/{id}"), None, &Headers::default())?;
        }
        WebhookCommand::Deliveries { id, status } => {
            let path = match status {
                Some(status) => format!("/v1/webhooks/{id}/deliveries?status={status}"),
                None => format!("/v1/webhooks/{id}/deliveries"),
            };
            let listed = client.get(&path)?;
            print(out, &listed["deliveries"], DELIVERY_COLUMNS);
        }
        WebhookCommand::Redeliver { id, position } => {
            let again = post(
                client,
                &format!("/v1/webhooks/{id}/deliveries/{position}/redeliver"),
                json!({}),
                None,
            )?;
            print(out, &again, DELIVERY_COLUMNS);
        }
    }
    Ok(())
}
