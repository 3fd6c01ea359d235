//! `latchd`: the Latch server.
//!
//! Today it opens the event log, rebuilds state (snapshot + verified tail),
//! runs the command handler and stops cleanly on SIGINT/SIGTERM, saving a
//! snapshot. The HTTP API, relay and scheduler attach to the handler.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use latch_store::{ChainVerdict, EventStore};
use latchd::{CommandHandler, HandlerConfig, SystemClock};

#[derive(Debug, Parser)]
#[command(name = "latchd", version, about = "Latch: the authority for service accounts and API tokens")]
struct Settings {
    /// Where the event log (RocksDB) lives.
    #[arg(long, env = "LATCH_DATA_DIR", default_value = "./latch-data")]
    data_dir: PathBuf,
    /// Save a state snapshot after this many new events.
    #[arg(long, env = "LATCH_SNAPSHOT_EVERY", default_value_t = 100_000)]
    snapshot_every: u64,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LATCH_LOG_JSON")]
    log_json: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_tracing(settings.log_json);

    let store_dir = settings.data_dir.join("log");
    let store = Arc::new(
        EventStore::open(&store_dir).with_context(|| format!("opening the event log in {}", store_dir.display()))?,
    );
    let config = HandlerConfig { snapshot_every: settings.snapshot_every, ..HandlerConfig::default() };
    let (handler, rebuilt) = CommandHandler::start(store.clone(), Arc::new(SystemClock), config)
        .context("rebuilding state from the event log")?;
    {
        let handle = handler.handle();
        let state = handle.state();
        tracing::info!(
            data_dir = %settings.data_dir.display(),
            position = %state.position(),
            accounts = state.account_count(),
            tokens = state.token_count(),
            snapshot = ?rebuilt.snapshot.map(|p| p.get()),
            replayed = rebuilt.replayed,
            took_ms = rebuilt.took.as_millis() as u64,
            "latchd ready"
        );
    }

    // Startup verified the chain after the newest snapshot; the part before
    // it is verified now, in the background, so tampering anywhere in the
    // log is reported without delaying readiness.
    let verifying = store.clone();
    tokio::task::spawn_blocking(move || match verifying.verify_chain() {
        Ok(ChainVerdict::Intact { checked, head_hash, .. }) => {
            tracing::info!(checked, head_hash = %head_hash, "event log hash chain verified")
        }
        Ok(ChainVerdict::Broken { position, problem }) => {
            tracing::error!(%position, %problem, "event log hash chain is BROKEN: the log was altered; run `latch audit verify`")
        }
        Err(error) => tracing::error!(%error, "could not verify the event log hash chain"),
    });

    shutdown_signal().await;
    tracing::info!("shutting down: finishing queued commands");
    handler.shutdown().await;
    tracing::info!(position = %store.head().position, "stopped");
    Ok(())
}

fn init_tracing(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
