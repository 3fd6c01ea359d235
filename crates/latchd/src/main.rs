//! `latchd`: the Latch server.
//!
//! `latchd` (or `latchd serve`) opens the event log, rebuilds state
//! (snapshot + verified tail), creates the admin account on first start,
//! serves the HTTP API (HTTPS with --tls-cert/--tls-key), and stops cleanly
//! on SIGINT/SIGTERM: in-flight requests finish, queued commands are
//! written, a snapshot is saved. `latchd dev` does the same for a laptop,
//! starting a nats-server when none answers; `latchd backup --to DIR` takes
//! a consistent backup while latchd runs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use latch_bus::NatsArgs;
use latch_store::{ChainVerdict, EventStore};
use latchd::api::{self, AppState};
use latchd::{
    ADMIN_TOKEN_FILE, Bootstrapped, Clock, CommandHandler, CommandService, DevNats, FileClock,
    HandlerConfig, Keyring, LOG_DIR, Relay, RelayStatus, Scheduler, ServeLimits, SystemClock, UsageIntake,
    bootstrap, nats_answers, serve_http, take_backup,
};

/// mimalloc instead of the system allocator: replay, JSON and RocksDB
/// allocate per event, and glibc's malloc was a sixth of the time (ADR 0017).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "latchd",
    version,
    about = "Latch: the authority for service accounts and API tokens",
    long_about = "Latch: the authority for service accounts and API tokens.\n\n\
        Without a subcommand, latchd serves (as `latchd serve`). On a laptop, \
        `latchd dev` is the one command to start with: it also starts a NATS \
        server if none answers. Every flag can also be set with the LATCH_* \
        variable named beside it.",
    after_help = "Examples:\n  \
        latchd dev                                  # a laptop: starts NATS too, data in ./latch-data\n  \
        latchd --data-dir /var/lib/latch --listen 0.0.0.0:7420 --nats-url nats://nats:4222\n  \
        latchd --tls-cert cert.pem --tls-key key.pem # HTTPS\n  \
        latchd backup --to /backups/latch-$(date +%F)"
)]
struct Cli {
    #[command(subcommand)]
    mode: Option<Mode>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Mode {
    /// Serve the API (what latchd does without a subcommand).
    Serve,
    /// Run on a laptop: like `serve`, but starts a nats-server (JetStream,
    /// data in <data-dir>/nats) when none answers at --nats-url, prints
    /// where everything is, and stops that nats-server on exit.
    Dev,
    /// Take a consistent backup of the event log into a new directory while
    /// latchd runs (asks the running latchd at --url); with latchd stopped,
    /// copies --data-dir directly. The backup is itself a data directory:
    /// `latchd --data-dir DIR` restores it; `latch audit … --data-dir DIR`
    /// reads it.
    Backup(BackupArgs),
    /// Break-glass, on latchd's host with latchd stopped: restore an active
    /// account holding `*` (enable it, give it the role admin, or create it
    /// if deleted) and write a new admin token to <data-dir>/admin.token
    /// (mode 0600). Each step is an event in the log by `system`, with a
    /// request id naming the break-glass and the host user.
    RecoverAdmin(RecoverAdminArgs),
    /// latchd's signing key: `show` prints the public key verifiers are
    /// configured with (LATCH_PUBLIC_KEY); `rotate` (latchd stopped) signs
    /// from now on with a new key, announced in the feed, signed by the old.
    #[command(subcommand)]
    Key(KeyCommand),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print the public key (ed25519:…) to configure verifiers with, and
    /// every earlier key with the position it signed from. Creates the key
    /// if latchd has not started yet.
    Show,
    /// With latchd stopped: make a new signing key and append the
    /// signing_key.rotated event naming it. Verifiers that trust the old key
    /// follow without a restart; events signed with the old key after the
    /// rotation are refused.
    Rotate,
}

#[derive(Debug, Args)]
struct RecoverAdminArgs {
    /// The account to restore as admin.
    #[arg(long, default_value = "admin")]
    account: String,
}

#[derive(Debug, Clone, Args)]
struct ServeArgs {
    /// Where the event log (RocksDB) and admin.token live.
    #[arg(
        long,
        env = "LATCH_DATA_DIR",
        default_value = "./latch-data",
        global = true
    )]
    data_dir: PathBuf,
    /// Address for the HTTP API.
    #[arg(
        long,
        env = "LATCH_LISTEN",
        default_value = "127.0.0.1:7420",
        global = true
    )]
    listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "LATCH_TLS_CERT", requires = "tls_key", global = true)]
    tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "LATCH_TLS_KEY", requires = "tls_cert", global = true)]
    tls_key: Option<PathBuf>,
    #[command(flatten)]
    nats: NatsArgs,
    #[command(flatten)]
    limits: ServeLimits,
    /// Save a state snapshot after this many new events.
    #[arg(
        long,
        env = "LATCH_SNAPSHOT_EVERY",
        default_value_t = 100_000,
        global = true
    )]
    snapshot_every: u64,
    /// Sign the feed with this provisioned Ed25519 key (PEM, PKCS#8, e.g.
    /// from `openssl genpkey -algorithm ed25519`) instead of the key latchd
    /// keeps in <data-dir>/signing-keys. Every node of an HA cluster uses the
    /// cluster's key.
    #[arg(long, env = "LATCH_SIGNING_KEY", global = true)]
    signing_key: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LATCH_LOG_JSON", global = true)]
    log_json: bool,
    /// For tests only: read "now" from this file (one RFC 3339 time,
    /// re-read at every use) instead of the system clock.
    #[arg(long, env = "LATCH_CLOCK_FILE", hide = true, global = true)]
    clock_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct BackupArgs {
    /// The new directory to write the backup to (must not exist; on
    /// latchd's host).
    #[arg(long)]
    to: PathBuf,
    /// The running latchd to ask.
    #[arg(long, env = "LATCH_URL", default_value = "http://127.0.0.1:7420")]
    url: String,
    /// A token with `backup:create` (admin has it); default: the file
    /// <data-dir>/admin.token.
    #[arg(long, env = "LATCH_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM file of the CA to trust for an HTTPS --url.
    #[arg(long, env = "LATCH_CA_FILE")]
    ca_file: Option<PathBuf>,
}

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
        None | Some(Mode::Serve) => runtime.block_on(serve(cli.serve, None)),
        Some(Mode::Dev) => runtime.block_on(dev(cli.serve)),
        Some(Mode::Backup(args)) => backup(&args, &cli.serve.data_dir),
        Some(Mode::RecoverAdmin(args)) => runtime.block_on(recover(&args, &cli.serve)),
        Some(Mode::Key(command)) => runtime.block_on(key(command, &cli.serve)),
    }
}

/// `latchd recover-admin`: opens the log itself (RocksDB's lock makes this
/// fail while latchd runs), appends the recovery through the command
/// handler, and says what it did.
async fn recover(args: &RecoverAdminArgs, settings: &ServeArgs) -> anyhow::Result<()> {
    let name = latch_core::AccountName::parse(&args.account)
        .map_err(|e| anyhow::anyhow!("--account {:?}: {e}", args.account))?;
    let store_dir = settings.data_dir.join(LOG_DIR);
    if !store_dir.exists() {
        anyhow::bail!(
            "no event log in {}: --data-dir must be latchd's data directory",
            settings.data_dir.display()
        );
    }
    let offline = Offline::open(settings, "recover-admin")?;
    let (handler, operator) = offline.handler()?;
    let recovered = latchd::recover_admin(&handler.handle(), &settings.data_dir, &name, &operator).await;
    handler.shutdown().await;
    let recovered = recovered.context("recovering an admin")?;
    for step in &recovered.steps {
        println!("recover-admin: {step}");
    }
    println!(
        "recover-admin: done. Start latchd, then: export LATCH_TOKEN_FILE={}",
        recovered.token_file.display()
    );
    Ok(())
}

/// The log opened by a command that runs with latchd stopped (RocksDB's
/// lock makes it fail while latchd runs), to append through the command
/// handler like any request.
struct Offline<'a> {
    settings: &'a ServeArgs,
    store: Arc<EventStore>,
}

impl<'a> Offline<'a> {
    fn open(settings: &'a ServeArgs, command: &str) -> anyhow::Result<Self> {
        let store_dir = settings.data_dir.join(LOG_DIR);
        let store = Arc::new(EventStore::open(&store_dir).with_context(|| {
            format!(
                "opening the event log in {} (stop latchd first: {command} runs with latchd stopped)",
                store_dir.display()
            )
        })?);
        Ok(Self { settings, store })
    }

    /// A command handler on the log, and who runs this on the host (for
    /// the request id its events carry).
    fn handler(self) -> anyhow::Result<(CommandHandler, String)> {
        let clock: Arc<dyn Clock> = match &self.settings.clock_file {
            Some(path) => Arc::new(FileClock::open(path).map_err(anyhow::Error::msg)?),
            None => Arc::new(SystemClock),
        };
        let (handler, _) = CommandHandler::start(self.store, clock, HandlerConfig::default())
            .context("rebuilding state from the event log")?;
        let operator = std::env::var("SUDO_USER")
            .or_else(|_| std::env::var("USER"))
            .unwrap_or_else(|_| "unknown user".into());
        Ok((handler, operator))
    }
}

/// `latchd key show|rotate`.
async fn key(command: KeyCommand, settings: &ServeArgs) -> anyhow::Result<()> {
    let store_dir = settings.data_dir.join(LOG_DIR);
    if let Some(file) = &settings.signing_key {
        let keyring = Keyring::provisioned(file)?;
        return match command {
            KeyCommand::Show => {
                println!("{}", keyring.current().public_key());
                Ok(())
            }
            KeyCommand::Rotate => Err(latchd::KeyringError::Provisioned.into()),
        };
    }
    match command {
        KeyCommand::Show => {
            // Read-only: works beside a running latchd.
            let store = if store_dir.exists() {
                EventStore::open_read_only(&store_dir)
            } else {
                EventStore::open(&store_dir)
            }
            .with_context(|| format!("opening the event log in {}", store_dir.display()))?;
            let keyring = Keyring::open(&settings.data_dir, &store)?;
            let keys = keyring.public_keys();
            println!("{}", keyring.current().public_key());
            if keys.len() > 1 {
                for (from, key) in &keys {
                    eprintln!("  key {} signs from position {from}: {key}", key.id());
                }
            }
            Ok(())
        }
        KeyCommand::Rotate => {
            let offline = Offline::open(settings, "key rotate")?;
            let keyring = Keyring::open(&settings.data_dir, &offline.store)?;
            let (handler, operator) = offline.handler()?;
            let rotated = latchd::rotate_signing_key(&keyring, &handler.handle(), &operator).await;
            handler.shutdown().await;
            let (public_key, from) = rotated.context("rotating the signing key")?;
            println!("{public_key}");
            eprintln!(
                "latchd key rotate: events from position {from} on are signed with this key; verifiers that trust {} follow the rotation from the feed",
                keyring.current().public_key()
            );
            Ok(())
        }
    }
}

/// What `latchd dev` prints once latchd is ready.
struct DevBanner {
    nats: String,
}

async fn dev(mut args: ServeArgs) -> anyhow::Result<()> {
    let mut started = None;
    let nats = if nats_answers(&args.nats.nats_url).await {
        format!("{} (already running)", latch_bus::redact_url(&args.nats.nats_url))
    } else {
        let nats_dir = args.data_dir.join("nats");
        eprintln!(
            "latchd dev: no NATS answers at {}; starting nats-server with JetStream (data in {}) ...",
            latch_bus::redact_url(&args.nats.nats_url),
            nats_dir.display()
        );
        let child = DevNats::start(&nats_dir)
            .await
            .map_err(|e| anyhow::anyhow!("latchd dev: {e}"))?;
        args.nats.nats_url = child.url().to_owned();
        let shown = format!(
            "{} (started by latchd dev; log {})",
            child.url(),
            child.log().display()
        );
        started = Some(child);
        shown
    };
    let served = serve(args, Some(DevBanner { nats })).await;
    if let Some(child) = started {
        eprintln!("latchd dev: stopping the nats-server it started");
        child.stop().await;
    }
    served
}

async fn serve(settings: ServeArgs, banner: Option<DevBanner>) -> anyhow::Result<()> {
    let nats = settings.nats.connection();
    let tls = match (&settings.tls_cert, &settings.tls_key) {
        (Some(cert), Some(key)) => {
            let _ = rustls::crypto::ring::default_provider().install_default();
            Some(
                axum_server::tls_rustls::RustlsConfig::from_pem_file(cert, key)
                    .await
                    .with_context(|| {
                        format!(
                            "loading the TLS certificate {} and key {}",
                            cert.display(),
                            key.display()
                        )
                    })?,
            )
        }
        _ => None,
    };

    let store_dir = settings.data_dir.join(LOG_DIR);
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
    let keyring = Arc::new(match &settings.signing_key {
        Some(file) => Keyring::provisioned(file)?,
        None => Keyring::open(&settings.data_dir, &store)?,
    });
    tracing::info!(public_key = %keyring.current().public_key(), "signing what latchd publishes; verifiers trust this key (latchd key show)");
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
        nats: nats.clone(),
        clock: clock.clone(),
        status: relay_status.clone(),
        keyring: keyring.clone(),
    };
    let relay_task = tokio::spawn(relay.run(relay_shutdown.clone()));

    let app = AppState::with_limits(
        commands.clone(),
        clock.clone(),
        Some(relay_status.clone()),
        settings.limits.request_limits(),
    );
    let _ = app.signer.set(keyring.clone());
    tokio::spawn(
        settings
            .limits
            .activity_pruner(store.clone(), clock.clone())
            .run(relay_shutdown.clone()),
    );
    let scheduler = Scheduler {
        commands: commands.clone(),
        store: store.clone(),
        clock: clock.clone(),
        tick: std::time::Duration::from_secs(1),
        status: app.scheduler.clone(),
    };
    let scheduler_task = tokio::spawn(scheduler.run(relay_shutdown.clone()));
    let intake = UsageIntake {
        nats: nats.clone(),
        commands: commands.clone(),
        book: app.usage.clone(),
        clock: clock.clone(),
    };
    tokio::spawn(intake.run(relay_shutdown.clone()));
    let usage_flusher = tokio::spawn(
        app.usage
            .clone()
            .run_flusher(std::time::Duration::from_secs(2), relay_shutdown.clone()),
    );
    let (serving, commands_served) = tokio::sync::oneshot::channel();
    let command_service = CommandService {
        nats: nats.clone(),
        router: api::router(app.clone()),
        serving: Some(serving),
    };
    let command_task = tokio::spawn(command_service.run(relay_shutdown.clone()));
    // Ready means commands are served on every interface: wait (a little)
    // for the NATS command service, but never let NATS keep latchd down.
    if tokio::time::timeout(Duration::from_secs(5), commands_served)
        .await
        .is_err()
    {
        tracing::warn!(nats_url = %nats.redacted_url(), "commands over NATS are not served yet (NATS unreachable?); serving HTTP meanwhile");
    }
    let listener = std::net::TcpListener::bind(settings.listen)
        .with_context(|| format!("listening on {}", settings.listen))?;
    listener.set_nonblocking(true)?;
    let address = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    app.set_ready(true);
    {
        let state = commands.state();
        tracing::info!(
            url = %format!("{scheme}://{address}"),
            data_dir = %settings.data_dir.display(),
            nats_url = %nats.redacted_url(),
            tls = tls.is_some(),
            position = %state.position(),
            accounts = state.account_count(),
            tokens = state.token_count(),
            snapshot = ?rebuilt.snapshot.map(|p| p.get()),
            replayed = rebuilt.replayed,
            took_ms = rebuilt.took.as_millis() as u64,
            "latchd ready"
        );
    }
    if let Some(banner) = banner {
        print_banner(
            &banner,
            &format!("{scheme}://{address}"),
            &settings.data_dir,
        );
    }

    let handle = axum_server::Handle::new();
    tokio::spawn({
        let handle = handle.clone();
        async move {
            shutdown_signal().await;
            handle.graceful_shutdown(Some(Duration::from_secs(30)));
        }
    });
    serve_http(
        listener,
        tls,
        handle,
        api::router(app.clone()),
        settings.limits.server_limits(),
    )
    .await
    .with_context(|| format!("serving {scheme}"))?;

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

fn print_banner(banner: &DevBanner, url: &str, data_dir: &Path) {
    let token = data_dir.join(ADMIN_TOKEN_FILE);
    let token_line = if token.is_file() {
        format!(
            "{}  (export LATCH_TOKEN_FILE={})",
            token.display(),
            token.display()
        )
    } else {
        format!(
            "not in {} (it is written on the first start only; delete {} to start over)",
            token.display(),
            data_dir.display()
        )
    };
    println!(
        "\nLatch is running (dev mode)\n  \
         API:          {url}\n  \
         admin token:  {token_line}\n  \
         NATS:         {}\n  \
         data:         {}\n  \
         try:          latch --url {url} --token-file {} account list\n\
         Ctrl-C stops it.\n",
        banner.nats,
        data_dir.display(),
        token.display(),
    );
}

/// `latchd backup`: asks the running latchd; copies the data directory
/// itself only when nothing answers at --url.
fn backup(args: &BackupArgs, data_dir: &Path) -> anyhow::Result<()> {
    let to = if args.to.is_absolute() {
        args.to.clone()
    } else {
        std::env::current_dir()?.join(&args.to)
    };
    match ask_running_latchd(args, data_dir, &to) {
        Ok(answer) => {
            println!(
                "backup taken by the running latchd: {} (position {}, head hash {})",
                answer["dir"].as_str().unwrap_or_default(),
                answer["position"],
                answer["head_hash"].as_str().unwrap_or_default()
            );
            Ok(())
        }
        Err(BackupAsk::Refused(problem)) => anyhow::bail!("latchd refused the backup: {problem}"),
        Err(BackupAsk::NotRunning(why)) => {
            let log = data_dir.join(LOG_DIR);
            if !log.is_dir() {
                anyhow::bail!(
                    "no latchd answers at {} ({why}), and {} holds no event log",
                    args.url,
                    data_dir.display()
                );
            }
            let store = EventStore::open(&log).with_context(|| {
                format!(
                    "no latchd answers at {} ({why}), and the log in {} cannot be opened (is latchd running elsewhere?)",
                    args.url,
                    log.display()
                )
            })?;
            let taken = take_backup(&store, &to)?;
            println!(
                "backup taken from {} (latchd not running): {} (position {}, head hash {})",
                data_dir.display(),
                taken.dir.display(),
                taken.position,
                taken.head_hash
            );
            Ok(())
        }
    }
}

enum BackupAsk {
    NotRunning(String),
    Refused(String),
}

fn ask_running_latchd(
    args: &BackupArgs,
    data_dir: &Path,
    to: &Path,
) -> Result<serde_json::Value, BackupAsk> {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(ca) = &args.ca_file {
        let pem = std::fs::read(ca)
            .map_err(|e| BackupAsk::Refused(format!("reading {}: {e}", ca.display())))?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                _ => None,
            })
            .collect::<Vec<_>>();
        tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .tls_config(tls.build())
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let token_file = args
        .token_file
        .clone()
        .unwrap_or_else(|| data_dir.join(ADMIN_TOKEN_FILE));
    let url = format!("{}/v1/backup", args.url.trim_end_matches('/'));
    let body = serde_json::json!({ "to": to.display().to_string() });
    let token = match std::fs::read_to_string(&token_file) {
        Ok(token) => token.trim().to_owned(),
        Err(error) => {
            // Without a token latchd cannot be asked; if it is not running,
            // the data directory can still be copied.
            return match agent
                .get(format!("{}/healthz", args.url.trim_end_matches('/')))
                .call()
            {
                Ok(_) => Err(BackupAsk::Refused(format!(
                    "latchd runs at {} but the token file {} cannot be read ({error}); give one holding backup:create with --token-file",
                    args.url,
                    token_file.display()
                ))),
                Err(e) => Err(BackupAsk::NotRunning(e.to_string())),
            };
        }
    };
    let mut response = agent
        .post(&url)
        .header("Authorization", format!("Bearer {token}"))
        .send_json(&body)
        .map_err(|e| BackupAsk::NotRunning(e.to_string()))?;
    let status = response.status().as_u16();
    let answer: serde_json::Value = response.body_mut().read_json().map_err(|e| {
        BackupAsk::Refused(format!(
            "latchd answered {status} with an unreadable body: {e}"
        ))
    })?;
    if status == 201 {
        Ok(answer)
    } else {
        Err(BackupAsk::Refused(format!(
            "{status} {}",
            answer["detail"].as_str().unwrap_or_default()
        )))
    }
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
