//! `latchd`: the Latch server.
//!
//! Opens the event log, rebuilds state (snapshot + verified tail), creates
//! the admin account on first start, serves the HTTP API, and stops cleanly
//! on SIGINT/SIGTERM: in-flight requests finish, queued commands are
//! written, a snapshot is saved.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use latch_store::{ChainVerdict, EventStore};
use latchd::api::{self, AppState};
use latchd::{
    Bootstrapped, Clock, CommandHandler, CommandService, FileClock, HandlerConfig, Relay,
    RelayStatus, Scheduler, SystemClock, UsageIntake, bootstrap,
};

#[derive(Debug, Parser)]
#[command(
    name = "latchd",
    version,
    about = "Latch: the authority for service accounts and API tokens"
)]
struct Settings {
    /// Where the event log (RocksDB) and admin.token live.
    #[arg(long, env = "LATCH_DATA_DIR", default_value = "./latch-data")]
    data_dir: PathBuf,
    /// Address for the HTTP API.
    #[arg(long, env = "LATCH_LISTEN", default_value = "127.0.0.1:7420")]
    listen: SocketAddr,
    /// The NATS server (JetStream enabled) the relay publishes events to.
    #[arg(long, env = "LATCH_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Save a state snapshot after this many new events.
    #[arg(long, env = "LATCH_SNAPSHOT_EVERY", default_value_t = 100_000)]
    snapshot_every: u64,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LATCH_LOG_JSON")]
    log_json: bool,
    /// For tests only: read "now" from this file (one RFC 3339 time,
    /// re-read at every use) instead of the system clock.
    #[arg(long, env = "LATCH_CLOCK_FILE", hide = true)]
    clock_file: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::parse();
    init_tracing(settings.log_json);

    let store_dir = settings.data_dir.join("log");
    let store = Arc::new(
        EventStore::open(&store_dir)
            .with_context(|| format!("opening the event log in {}", store_dir.display()))?,
    );
    let config = HandlerConfig {
        snapshot_every: settings.snapshot_every,
        ..HandlerConfig::default()
    };
    let clock: Arc<dyn Clock> = match &settings.clock_file {
        Some(path) => {
            tracing::warn!(path = %path.display(), "TEST CLOCK: \"now\" is read from a file, not the system clock");
            Arc::new(FileClock::open(path).map_err(anyhow::Error::msg)?)
        }
        None => Arc::new(SystemClock),
    };
    let (handler, rebuilt) = CommandHandler::start(store.clone(), clock.clone(), config)
        .context("rebuilding state from the event log")?;
    let commands = handler.handle();

    match bootstrap(&commands, &settings.data_dir)
        .await
        .context("bootstrapping the admin account")?
    {
        Bootstrapped::AdminToken(path) => tracing::warn!(
            path = %path.display(),
            "first start: created account `admin`; its token is in this file (mode 0600). Keep it safe, then rotate it"
        ),
        Bootstrapped::AlreadyDone => {}
    }

    // Startup verified the chain after the newest snapshot; the part before
    // it is verified now, in the background, so tampering anywhere in the
    // log is reported without delaying readiness.
    let verifying = store.clone();
    tokio::task::spawn_blocking(move || match verifying.verify_chain() {
        Ok(ChainVerdict::Intact {
            checked, head_hash, ..
        }) => {
            tracing::info!(checked, head_hash = %head_hash, "event log hash chain verified")
        }
        Ok(ChainVerdict::Broken { position, problem }) => {
            tracing::error!(%position, %problem, "event log hash chain is BROKEN: the log was altered; run `latch audit verify`")
        }
        Err(error) => tracing::error!(%error, "could not verify the event log hash chain"),
    });

    let relay_status = Arc::new(RelayStatus::default());
    let (stop_relay, relay_shutdown) = tokio::sync::watch::channel(false);
    let relay = Relay {
        store: store.clone(),
        nats_url: settings.nats_url.clone(),
        clock: clock.clone(),
        status: relay_status.clone(),
    };
    let relay_task = tokio::spawn(relay.run(relay_shutdown.clone()));

    let app = AppState::with_relay(commands.clone(), clock.clone(), Some(relay_status.clone()));
    let scheduler = Scheduler {
        commands: commands.clone(),
        store: store.clone(),
        clock: clock.clone(),
        tick: std::time::Duration::from_secs(1),
        status: app.scheduler.clone(),
    };
    let scheduler_task = tokio::spawn(scheduler.run(relay_shutdown.clone()));
    let intake = UsageIntake {
        nats_url: settings.nats_url.clone(),
        commands: commands.clone(),
        book: app.usage.clone(),
    };
    tokio::spawn(intake.run(relay_shutdown.clone()));
    let usage_flusher = tokio::spawn(
        app.usage
            .clone()
            .run_flusher(std::time::Duration::from_secs(2), relay_shutdown.clone()),
    );
    let command_service = CommandService {
        nats_url: settings.nats_url.clone(),
        router: api::router(app.clone()),
    };
    let command_task = tokio::spawn(command_service.run(relay_shutdown.clone()));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let address = listener.local_addr()?;
    app.set_ready(true);
    {
        let state = commands.state();
        tracing::info!(
            url = %format!("http://{address}"),
            data_dir = %settings.data_dir.display(),
            nats_url = %settings.nats_url,
            position = %state.position(),
            accounts = state.account_count(),
            tokens = state.token_count(),
            snapshot = ?rebuilt.snapshot.map(|p| p.get()),
            replayed = rebuilt.replayed,
            took_ms = rebuilt.took.as_millis() as u64,
            "latchd ready"
        );
    }

    axum::serve(
        listener,
        api::router(app.clone()).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .context("serving HTTP")?;

    app.set_ready(false);
    tracing::info!("shutting down: finishing queued commands");
    scheduler_task.abort();
    handler.shutdown().await;
    // Give the relay a moment to publish what the last commands appended.
    let head = store.head().position.get();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    while relay_status
        .connected
        .load(std::sync::atomic::Ordering::SeqCst)
        && relay_status
            .published
            .load(std::sync::atomic::Ordering::SeqCst)
            < head
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let _ = stop_relay.send(true);
    let _ = relay_task.await;
    let _ = command_task.await;
    let _ = usage_flusher.await;
    tracing::info!(position = %head, relay_published = relay_status.published.load(std::sync::atomic::Ordering::SeqCst), "stopped");
    Ok(())
}

fn init_tracing(json: bool) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("LATCH_LOG").unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
    tracing::info!("signal received: no new connections; finishing in-flight requests");
}
