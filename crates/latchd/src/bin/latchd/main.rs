//! `latchd`: the Latch server.
//!
//! `latchd` (or `latchd serve`) opens the event log, rebuilds state
//! (snapshot + verified tail), creates the admin account on first start,
//! serves the HTTP API (HTTPS with --tls-cert/--tls-key), and stops cleanly
//! on SIGINT/SIGTERM: in-flight requests finish, queued commands are
//! written, a snapshot is saved. `latchd dev` does the same for a laptop,
//! starting a nats-server when none answers; `latchd backup --to DIR` takes
//! a consistent backup while latchd runs.
//!
//! This file only dispatches: `flags.rs` is the command line (and the
//! `NodeConfig` it describes), `serve.rs` runs a `latchd::Node`,
//! `offline.rs` the subcommands that open the log with latchd stopped,
//! `backup.rs` asks a running latchd for a backup.

mod backup;
mod flags;
mod offline;
mod serve;

use anyhow::Context;
use clap::Parser;

use crate::flags::{Cli, Mode};

/// mimalloc instead of the system allocator: replay, JSON and RocksDB
/// allocate per event, and glibc's malloc was a sixth of the time (ADR 0017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // The documentation tests check that every documented command parses.
    if std::env::var_os("LATCH_CHECK_ARGS").is_some() {
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    if !matches!(
        cli.mode,
        Some(Mode::Backup(_) | Mode::RecoverAdmin(_) | Mode::Key(_))
    ) {
        init_tracing(cli.serve.log_json);
    }
    match cli.mode {
        None | Some(Mode::Serve) => runtime.block_on(serve::serve(cli.serve, None)),
        Some(Mode::Dev) => runtime.block_on(serve::dev(cli.serve)),
        Some(Mode::Backup(args)) => backup::backup(&args, &cli.serve.data_dir),
        Some(Mode::RecoverAdmin(args)) => runtime.block_on(offline::recover(&args, &cli.serve)),
        Some(Mode::Key(command)) => runtime.block_on(offline::key(command, &cli.serve)),
    }
}

fn init_tracing(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| "info".into());
    // Colours only for a person at a terminal: a log file or shipper would
    // get escape codes in every field.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

