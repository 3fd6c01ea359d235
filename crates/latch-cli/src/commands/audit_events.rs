//! `latch audit events`: the event log through a filter, online (pages of
//! `GET /v1/events`, long-polled with `--follow`) or offline (`--data-dir`,
//! re-opened every second with `--follow` to see what latchd appends).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use clap::Args;
use latch_audit::{ActorMatch, EventFilter, TypeMatch};
use latch_core::{AccountId, AccountName, Position, TokenId};
use latch_store::EventStore;
use serde_json::Value;

use super::audit::{audit_error, finish, open_log};
use crate::client::{CliError, Client};
use crate::output::Output;
use crate::record_printer::RecordPrinter;

#[derive(Args)]
pub struct EventsArgs {
    /// Only events about this account (id or name): its own and its tokens'.
    #[arg(long)]
    account: Option<String>,
    /// Only events about this token (id). (`--token` is the credential.)
    #[arg(long = "token-id", id = "filter_token_id")]
    token_id: Option<String>,
    /// Only events caused by `system` (bootstrap, scheduler) or by any token
    /// of this account (id or name).
    #[arg(long, conflicts_with = "actor_token_id")]
    actor: Option<String>,
    /// Only events caused with this token (id): what a leaked token did.
    #[arg(long)]
    actor_token_id: Option<String>,
    /// Only these event types (repeatable or comma-separated): token.revoked,
    /// or a family: token.*
    #[arg(long = "type", value_delimiter = ',')]
    types: Vec<String>,
    /// Only events recorded at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Only events recorded before this RFC 3339 time.
    #[arg(long)]
    until: Option<DateTime<Utc>>,
    /// Only events at or after this log position.
    #[arg(long)]
    from: Option<u64>,
    /// Only events at or before this log position.
    #[arg(long)]
    to: Option<u64>,
    /// Keep printing matching events as they are appended (Ctrl-C to stop).
    #[arg(long)]
    follow: bool,
    /// Read a data directory (or a backup) offline instead of asking latchd.
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// How long one long poll waits for a new event.
const LONG_POLL: &str = "30s";
/// How often an offline follower looks for new events.
const OFFLINE_POLL: Duration = Duration::from_secs(1);

pub fn run(client: &Client, out: Output, args: EventsArgs) -> Result<(), CliError> {
    for text in &args.types {
        TypeMatch::parse(text).map_err(CliError::Usage)?;
    }
    if let (Some(from), Some(to)) = (args.from, args.to)
        && from > to
    {
        return Err(CliError::Usage(format!("--from {from} is after --to {to}")));
    }
    let mut printer = RecordPrinter::new(out);
    match &args.data_dir {
        Some(dir) => offline(&args, dir, &mut printer)?,
        None => online(client, &args, &mut printer)?,
    }
    finish(printer)
}

fn online(client: &Client, args: &EventsArgs, printer: &mut RecordPrinter) -> Result<(), CliError> {
    let mut query = Vec::new();
    let mut add = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            query.push(format!("{name}={value}"));
        }
    };
    add("account", args.account.clone());
    add("token", args.token_id.clone());
    add("actor", args.actor.clone());
    add("actor_token", args.actor_token_id.clone());
    add(
        "type",
        (!args.types.is_empty()).then(|| args.types.join(",")),
    );
    add("since", args.since.map(utc));
    add("until", args.until.map(utc));
    add("to", args.to.map(|p| p.to_string()));
    let filters = query.join("&");
    let mut after = args.from.map_or(0, |from| from.saturating_sub(1));
    let mut wait = false;
    loop {
        let mut path = format!("/v1/events?after={after}&limit=1000&{filters}");
        if wait {
            path.push_str(&format!("&wait={LONG_POLL}"));
        }
        let page = client.get(&path)?;
        for event in page["events"].as_array().into_iter().flatten() {
            if printer.print("event", event).is_err() {
                return Ok(());
            }
        }
        let _ = printer.flush();
        after = page["next_after"].as_u64().unwrap_or(after);
        let caught_up = after >= page["head"].as_u64().unwrap_or(0);
        if page["complete"] == Value::Bool(true) || caught_up && !args.follow {
            return Ok(());
        }
        wait = caught_up;
    }
}

fn offline(
    args: &EventsArgs,
    dir: &std::path::Path,
    printer: &mut RecordPrinter,
) -> Result<(), CliError> {
    let mut store = open_log(dir)?;
    let filter = filter_offline(&store, args)?;
    let mut after = Position::ZERO;
    // Names read as the events printed need them, one account stream's
    // first event each (a log may hold a million accounts; the events
    // asked for name a few), and kept across `--follow`'s polls: a name
    // is the one the account was created with. A name that cannot be read
    // ends the command with the store's error, as a record that cannot.
    let names: RefCell<HashMap<AccountId, Option<String>>> = RefCell::default();
    loop {
        let unreadable: RefCell<Option<latch_audit::AuditError>> = RefCell::default();
        let mut stopped = false;
        let name_of = |id| {
            if let Some(name) = names.borrow().get(&id) {
                return name.clone();
            }
            let name = latch_audit::AccountNames::name_in(&store, id).unwrap_or_else(|error| {
                unreadable.borrow_mut().get_or_insert(error);
                None
            });
            names.borrow_mut().insert(id, name.clone());
            name
        };
        let end = latch_audit::scan_events(&store, &filter, after, u64::MAX, &name_of, |event| {
            let Ok(value) = serde_json::to_value(&event) else {
                return false;
            };
            stopped = printer.print("event", &value).is_err();
            !stopped
        })
        .map_err(audit_error)?;
        if let Some(error) = unreadable.into_inner() {
            return Err(audit_error(error));
        }
        if stopped || end.complete || !args.follow {
            return Ok(());
        }
        let _ = printer.flush();
        after = end.last_read;
        // A read-only store sees the log as it was when opened.
        std::thread::sleep(OFFLINE_POLL);
        store = open_log(dir)?;
    }
}

/// The filter, account names resolved from the log itself.
fn filter_offline(store: &EventStore, args: &EventsArgs) -> Result<EventFilter, CliError> {
    // No index by name: every account's name is read, once, and only
    // when a name is given.
    let names = OnceCell::new();
    let account = |text: &str| -> Result<AccountId, CliError> {
        if let Ok(id) = text.parse::<AccountId>() {
            return Ok(id);
        }
        let name = AccountName::parse(text).map_err(|_| {
            CliError::Usage(format!("{text:?} is neither an account id nor a name"))
        })?;
        if names.get().is_none() {
            let _ = names.set(latch_audit::AccountNames::read(store).map_err(audit_error)?);
        }
        names
            .get()
            .and_then(|names: &latch_audit::AccountNames| names.id_of(&name))
            .ok_or_else(|| CliError::NotFound(format!("no account named {name} in this log")))
    };
    let token = |flag: &str, text: &str| -> Result<TokenId, CliError> {
        text.parse()
            .map_err(|_| CliError::Usage(format!("{flag}: {text:?} is not a token id")))
    };
    Ok(EventFilter {
        account: args.account.as_deref().map(account).transpose()?,
        token: args
            .token_id
            .as_deref()
            .map(|t| token("--token-id", t))
            .transpose()?,
        actor: match (args.actor.as_deref(), args.actor_token_id.as_deref()) {
            (Some("system"), _) => Some(ActorMatch::System),
            (Some(text), _) => Some(ActorMatch::Account(account(text)?)),
            (None, Some(text)) => Some(ActorMatch::Token(token("--actor-token-id", text)?)),
            (None, None) => None,
        },
        types: args
            .types
            .iter()
            .map(|t| TypeMatch::parse(t).map_err(CliError::Usage))
            .collect::<Result<_, _>>()?,
        since: args.since,
        until: args.until,
        from: args.from.map(Position::new),
        to: args.to.map(Position::new),
    })
}

fn utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}
