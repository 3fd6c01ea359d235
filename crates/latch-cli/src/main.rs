//! `latch`: the command line for Latch. Talks to latchd over HTTP, or over
//! NATS with `--transport nats`.
//!
//! This file is the command line itself: the global options, the list of
//! subcommands and the dispatch. Each subcommand's arguments and what it
//! does are in `commands/<subcommand>.rs`.
#![forbid(unsafe_code)]

mod account_lookup;
mod client;
mod commands;
mod exit_code;
mod nats_transport;
mod ordered_json;
mod output;
mod progress;
mod record_printer;
mod request;

use std::path::PathBuf;

use clap::{CommandFactory, Parser, Subcommand};

use crate::client::{CliError, Client};
use crate::commands::{account, audit, completion, events, leak, policy, role, token, watch, webhook};
use crate::output::Output;

/// mimalloc instead of the system allocator: replay, JSON and RocksDB
/// allocate per event, and glibc's malloc was a sixth of the time (ADR 0017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "latch", version, about = "Manage Latch service accounts, tokens, roles and policy", after_help = exit_code::HELP)]
struct Cli {
    /// latchd's URL; for an HA cluster, its nodes' URLs separated by commas
    /// (requests fail over between them and follow a standby's redirect to
    /// the leader only within this list).
    #[arg(
        long,
        env = "LATCH_URL",
        default_value = "http://127.0.0.1:7420",
        global = true
    )]
    url: String,
    /// The token to act with. Prefer LATCH_TOKEN or --token-file: flags show up in process lists.
    #[arg(long, env = "LATCH_TOKEN", hide_env_values = true, global = true)]
    token: Option<String>,
    /// Read the token from this file (e.g. <data-dir>/admin.token).
    #[arg(long, env = "LATCH_TOKEN_FILE", global = true)]
    token_file: Option<PathBuf>,
    /// How to print results.
    #[arg(long, value_enum, default_value = "table", global = true)]
    output: Output,
    /// How to reach latchd: HTTP at --url, or NATS at --nats-url (latchd's
    /// command service on latch.cmd.*).
    #[arg(long, value_enum, default_value = "http", global = true)]
    transport: Transport,
    /// PEM file of the CA (or self-signed certificate) to trust for an
    /// https:// --url, beside the usual public roots.
    #[arg(long, env = "LATCH_CA_FILE", global = true)]
    ca_file: Option<PathBuf>,
    /// NATS (for --transport nats and `latch watch`).
    #[command(flatten)]
    nats: latch_bus::NatsArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Service accounts.
    #[command(subcommand)]
    Account(account::AccountCommand),
    /// API tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Roles: named permission sets.
    #[command(subcommand)]
    Role(role::RoleCommand),
    /// Token policy.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// Leaked tokens: report what a scanner found; each live one is revoked.
    #[command(subcommand)]
    Leak(leak::LeakCommand),
    /// Webhooks: events delivered to URLs, signed; their deliveries.
    #[command(subcommand)]
    Webhook(webhook::WebhookCommand),
    /// Read the event log (the audit trail of every change).
    Events(events::EventsArgs),
    /// Follow events live over NATS as latchd publishes them.
    Watch(watch::WatchArgs),
    /// Investigate: the log filtered, a token's story, the state or who could
    /// do what at a moment; verify and export the hash-chained log. Online, or
    /// offline with --data-dir.
    #[command(subcommand)]
    Audit(audit::AuditCommand),
    /// Print the shell completion script for bash, zsh or fish (also
    /// elvish, powershell).
    #[command(after_help = completion::INSTALL)]
    Completion(completion::CompletionArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Transport {
    Http,
    Nats,
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            std::process::exit(if error.use_stderr() {
                exit_code::USAGE
            } else {
                exit_code::OK
            });
        }
    };
    // The documentation tests check that every documented command parses.
    if std::env::var_os("LATCH_CHECK_ARGS").is_some() {
        return;
    }
    if let Err(error) = run(cli) {
        eprintln!("{}", output::error_line(&error));
        std::process::exit(error.exit_code());
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    if let Command::Completion(args) = &cli.command {
        // Needs neither latchd nor a token.
        return completion::run(args, Cli::command());
    }
    let mut client = client(&cli)?;
    let out = cli.output;
    match cli.command {
        Command::Account(command) => account::run(&client, out, command),
        Command::Token(command) => token::run(&mut client, out, command),
        Command::Role(command) => role::run(&client, out, command),
        Command::Policy(command) => policy::run(&client, out, command),
        Command::Leak(command) => leak::run(&client, out, command),
        Command::Webhook(command) => webhook::run(&client, out, command),
        Command::Events(args) => events::run(&client, out, args),
        Command::Watch(args) => watch::run(out, &cli.nats.connection(), args),
        Command::Audit(command) => audit::run(&client, out, command),
        Command::Completion(_) => unreachable!("answered above, without a client"),
    }
}

/// latchd as the global options say: at --url (or over NATS with
/// --transport nats), acting with --token or the --token-file's token.
fn client(cli: &Cli) -> Result<Client, CliError> {
    let token = match (&cli.token, &cli.token_file) {
        (Some(token), _) => Some(token.trim().to_owned()),
        (None, Some(path)) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| {
                    CliError::Usage(format!("reading token file {}: {e}", path.display()))
                })?
                .trim()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let client = Client::new(&cli.url, token, cli.ca_file.as_deref())?;
    Ok(match cli.transport {
        Transport::Http => client,
        Transport::Nats => client.over_nats(cli.nats.connection())?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positional_arguments_never_become_the_credential() {
        // `token show self` once replaced the global --token with "self".
        for args in [
            vec!["latch", "--token", "credential", "token", "show", "self"],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "revoke",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "rotate",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "token",
                "introspect",
                "latch_other",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "audit",
                "events",
                "--token-id",
                "some-id",
            ],
            vec![
                "latch",
                "--token",
                "credential",
                "audit",
                "token",
                "some-id",
            ],
        ] {
            let cli = Cli::try_parse_from(&args).unwrap();
            assert_eq!(cli.token.as_deref(), Some("credential"), "{args:?}");
        }
    }
}
