//! `latch events`: pages of the event log, or `--follow` it.

use clap::Args;
use serde_json::Value;

use crate::account_lookup::account_id;
use crate::client::{CliError, Client};
use crate::output::{self, Column, Output};

#[derive(Args)]
pub struct EventsArgs {
    /// Events after this position.
    #[arg(long, default_value_t = 0)]
    after: u64,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: u64,
    /// Only events about this account (id or name).
    #[arg(long)]
    account: Option<String>,
    /// Only events of this type, e.g. token.revoked.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Keep printing new events as they are appended.
    #[arg(long)]
    follow: bool,
}

/// The columns of an event, for `latch events` and `latch watch`.
pub const EVENT_COLUMNS: &[Column] = &[
    ("POSITION", "position"),
    ("TIME", "at"),
    ("TYPE", "type"),
    ("ACCOUNT", "data.account_id"),
    ("TOKEN", "data.token_id"),
    ("ACTOR", "actor.account_id"),
];

pub fn run(client: &Client, out: Output, args: EventsArgs) -> Result<(), CliError> {
    let account = args
        .account
        .as_deref()
        .map(|a| account_id(client, a))
        .transpose()?;
    let mut after = args.after;
    let mut header = true;
    loop {
        let mut path = format!("/v1/events?after={after}&limit={}", args.limit);
        if let Some(account) = &account {
            path.push_str(&format!("&account={account}"));
        }
        if let Some(event_type) = &args.event_type {
            path.push_str(&format!("&type={event_type}"));
        }
        let page = client.get(&path)?;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        match out {
            Output::Table => {
                let rows: Vec<&Value> = events.iter().collect();
                if header || !rows.is_empty() {
                    if header {
                        output::print_table(&rows, EVENT_COLUMNS);
                    } else {
                        output::print_rows(&rows, EVENT_COLUMNS);
                    }
                }
            }
            _ => {
                for event in &events {
                    println!("{}", serde_json::to_string(event).unwrap_or_default());
                }
            }
        }
        header = false;
        after = page["next_after"].as_u64().unwrap_or(after);
        if !args.follow {
            return Ok(());
        }
        if events.is_empty() {
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
    }
}
