//! `Node`: one running latchd, assembled in one place. The binary, the
//! end-to-end tests and the benchmarks all start latchd through
//! `Node::start`, so what they run is what operators run.
//!
//! A node opens the event log, rebuilds state, bootstraps the admin account
//! on first start, and runs beside the command handler: the relay (log →
//! NATS), the usage intake and the NATS command service (with a broker),
//! the scheduler, the activity pruner, and the HTTP API. `shutdown` stops
//! them in the order that loses nothing: in-flight requests finish, queued
//! commands are written and snapshotted, the relay publishes what they
//! appended.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use latch_bus::NatsConnection;
use latch_store::{ChainVerdict, EventStore, StoreError};
use tokio::sync::{Mutex, watch};
use tokio::task::JoinHandle;

use crate::api::{self, AppState};
use crate::backup::LOG_DIR;
use crate::bootstrap::{ADMIN_TOKEN_FILE, BootstrapError, Bootstrapped, bootstrap};
use crate::clock::{Clock, SystemClock};
use crate::command_handler::{CommandHandle, CommandHandler, HandlerConfig};
use crate::command_service::CommandService;
use crate::ha::{HaConfig, HaController, HaState, LeaderDuties};
use crate::ha::duty;
use crate::http_server::serve as serve_http;
use crate::rebuild::RebuildError;
use crate::relay::{Relay, RelayStatus};
use crate::scheduler::Scheduler;
use crate::serve_limits::ServeLimits;
use crate::signing_keys::{Keyring, KeyringError};
use crate::usage_intake::UsageIntake;

/// How long a node waits for the NATS command service before it serves
/// HTTP anyway: NATS must never keep latchd down.
const WAIT_FOR_COMMAND_SERVICE: Duration = Duration::from_secs(5);
/// How long in-flight HTTP requests may take to finish at shutdown.
const GRACEFUL_SHUTDOWN: Duration = Duration::from_secs(30);
/// How long shutdown waits for the relay to publish the last commands.
const RELAY_DRAIN: Duration = Duration::from_secs(3);

/// What a node signs the feed with.
#[derive(Clone)]
pub enum SigningKeySource {
    /// The keys latchd keeps in `<data-dir>/signing-keys` (made on first start).
    DataDir,
    /// A provisioned Ed25519 key (PEM, PKCS#8): every node of a cluster
    /// signs with the cluster's key.
    Provisioned(PathBuf),
    /// A keyring the caller holds (tests and benchmarks whose verifiers
    /// trust it in advance).
    Given(Arc<Keyring>),
}

/// The HTTPS certificate chain and key (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Everything a node is started with. `NodeConfig::new(data_dir)` gives
/// latchd's defaults except the address: a free loopback port.
#[derive(Clone)]
pub struct NodeConfig {
    /// Where the event log (`<data-dir>/log`) and `admin.token` live.
    pub data_dir: PathBuf,
    /// The HTTP API's address.
    pub listen: SocketAddr,
    /// HTTPS instead of HTTP.
    pub tls: Option<TlsFiles>,
    /// The broker for the relay, the usage intake and the command service;
    /// `None`: HTTP only, nothing published.
    pub nats: Option<NatsConnection>,
    pub limits: ServeLimits,
    pub handler: HandlerConfig,
    pub clock: Arc<dyn Clock>,
    pub signing_key: SigningKeySource,
    /// Create the `admin` account and its token file on first start.
    pub bootstrap_admin: bool,
    /// Append the scheduler's notes (expiring, expired, rotation due).
    pub scheduler: bool,
    /// HA mode (`--ha`): lead or follow a cluster on `nats`; needs a
    /// `Provisioned` (or `Given`) key every node shares.
    pub ha: Option<HaConfig>,
    /// Where leak reports may come from (GitHub, GitLab).
    pub leaks: crate::leaks::LeakConfig,
    /// How webhook deliveries are retried.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// How long web console sessions last; the cookie is `Secure` (and
    /// `__Host-`) when `tls` is set or this says so (HTTPS ended by a proxy).
    pub console_sessions: crate::api::ConsoleSessionSettings,
}

impl NodeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            tls: None,
            nats: None,
            limits: ServeLimits::default(),
            handler: HandlerConfig::default(),
            clock: Arc::new(SystemClock),
            signing_key: SigningKeySource::DataDir,
            bootstrap_admin: true,
            scheduler: true,
            ha: None,
            leaks: crate::leaks::LeakConfig::default(),
            webhooks: crate::webhooks::WebhookConfig::default(),
            console_sessions: crate::api::ConsoleSessionSettings::default(),
        }
    }
}

/// Why a node did not start, or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error("loading the TLS certificate {} and key {}", .files.cert.display(), .files.key.display())]
    Tls {
        files: TlsFiles,
        #[source]
        source: std::io::Error,
    },
    #[error("opening the event log in {}", .dir.display())]
    OpenLog {
        dir: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error(transparent)]
    Leaks(#[from] crate::leaks::LeakConfigError),
    #[error("HA mode: {0}")]
    HaSetup(&'static str),
    #[error("rebuilding state from the event log")]
    Rebuild(#[source] RebuildError),
    #[error("bootstrapping the admin account")]
    Bootstrap(#[source] BootstrapError),
    #[error("listening on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("serving {scheme}")]
    Serve {
        scheme: &'static str,
        #[source]
        source: std::io::Error,
    },
}

/// A running latchd.
pub struct Node {
    data_dir: PathBuf,
    store: Arc<EventStore>,
    handler: CommandHandler,
    app: AppState,
    address: SocketAddr,
    scheme: &'static str,
    relay: Option<RelayControl>,
    /// Stops the scheduler, intake, flusher, pruner and command service.
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
    /// HA mode: the controller (stopped first at shutdown, so a standby
    /// takes the lease at once).
    ha: Option<(watch::Sender<bool>, JoinHandle<()>)>,
    http: JoinHandle<std::io::Result<()>>,
    http_handle: axum_server::Handle<SocketAddr>,
}

/// The relay of a node, which tests may pause and resume.
struct RelayControl {
    status: Arc<RelayStatus>,
    relay: Relay,
    running: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl RelayControl {
    fn spawn(&self) -> (watch::Sender<bool>, JoinHandle<()>) {
        let (stop, shutdown) = watch::channel(false);
        (stop, tokio::spawn(self.relay.clone().run(shutdown)))
    }
}

impl Node {
    /// Starts every part of latchd and returns once it is ready (HTTP
    /// bound, `/readyz` answering 200).
    pub async fn start(config: NodeConfig) -> Result<Node, NodeError> {
        let tls = match &config.tls {
            Some(files) => {
                let _ = rustls::crypto::ring::default_provider().install_default();
                Some(
                    axum_server::tls_rustls::RustlsConfig::from_pem_file(&files.cert, &files.key)
                        .await
                        .map_err(|source| NodeError::Tls {
                            files: files.clone(),
                            source,
                        })?,
                )
            }
            None => None,
        };
        if config.ha.is_some() {
            if config.nats.is_none() {
                return Err(NodeError::HaSetup(
                    "the cluster is coordinated through NATS: give --nats-url",
                ));
            }
            if matches!(config.signing_key, SigningKeySource::DataDir) {
                return Err(NodeError::HaSetup(
                    "every node of a cluster signs with the same key: give each node --signing-key FILE (one key file, provisioned to all nodes)",
                ));
            }
        }
        let leak_channels = crate::leaks::LeakChannels::open(&config.leaks)?;
        let store_dir = config.data_dir.join(LOG_DIR);
        let store =
            Arc::new(
                EventStore::open(&store_dir).map_err(|source| NodeError::OpenLog {
                    dir: store_dir.clone(),
                    source,
                })?,
            );
        let keyring = match &config.signing_key {
            SigningKeySource::DataDir => Arc::new(Keyring::open(&config.data_dir, &store)?),
            SigningKeySource::Provisioned(file) => Arc::new(Keyring::provisioned(file)?),
            SigningKeySource::Given(keyring) => keyring.clone(),
        };
        tracing::info!(public_key = %keyring.current().public_key(), "signing what latchd publishes; verifiers trust this key (latchd key show)");
        let clock = config.clock.clone();
        let mut handler_config = config.handler.clone();
        handler_config.replicated = config.ha.is_some();
        let (handler, rebuilt) =
            CommandHandler::start(store.clone(), clock.clone(), handler_config)
                .map_err(NodeError::Rebuild)?;
        let commands = handler.handle();
        // In HA mode the first leader of an empty cluster bootstraps.
        if config.bootstrap_admin && config.ha.is_none() {
            match bootstrap(&commands, &config.data_dir)
                .await
                .map_err(NodeError::Bootstrap)?
            {
                Bootstrapped::AdminToken(path) => tracing::warn!(
                    path = %path.display(),
                    "first start: created account `admin`; its token is in this file (mode 0600). Keep it safe, then rotate it"
                ),
                Bootstrapped::AlreadyDone => {}
            }
        }
        verify_chain_in_background(store.clone());

        let relay = config.nats.as_ref().map(|nats| {
            let status = Arc::new(RelayStatus::default());
            let control = RelayControl {
                relay: Relay {
                    store: store.clone(),
                    nats: nats.clone(),
                    clock: clock.clone(),
                    status: status.clone(),
                    keyring: keyring.clone(),
                    publishes_events: config.ha.is_none(),
                },
                status,
                running: Mutex::new(None),
            };
            // In HA mode the relay (heartbeats only) is a leader's duty.
            if config.ha.is_none() {
                *control.running.try_lock().expect("not shared yet") = Some(control.spawn());
            }
            control
        });
        let app = AppState::with_limits(
            commands.clone(),
            clock.clone(),
            relay.as_ref().map(|r| r.status.clone()),
            config.limits.request_limits(),
        );
        let _ = app.signer.set(keyring.clone());
        app.set_leak_channels(leak_channels);
        app.console.configure(crate::api::ConsoleSessionSettings {
            secure_cookie: config.tls.is_some() || config.console_sessions.secure_cookie,
            ..config.console_sessions
        });

        // One router for HTTP and the NATS command service.
        let router = api::router(app.clone());
        let (stop, shutdown) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(
            config
                .limits
                .activity_pruner(store.clone(), clock.clone())
                .run(shutdown.clone()),
        )];
        let scheduler = (config.scheduler && config.ha.is_none()).then(|| {
            let scheduler = Scheduler {
                commands: commands.clone(),
                store: store.clone(),
                clock: clock.clone(),
                tick: Duration::from_secs(1),
                status: app.scheduler.clone(),
            };
            tokio::spawn(scheduler.run(shutdown.clone()))
        });
        tasks.push(tokio::spawn(
            app.usage
                .clone()
                .run_flusher(Duration::from_secs(2), shutdown.clone()),
        ));
        // Webhook deliveries are kept in this node's side records: in HA
        // mode nodes do not share them, so only a single latchd delivers.
        if config.ha.is_none() {
            let dispatcher = crate::webhooks::WebhookDispatcher {
                store: store.clone(),
                book: crate::webhooks::WebhookBook::new(store.clone()),
                clock: clock.clone(),
                config: config.webhooks,
            };
            tasks.push(tokio::spawn(dispatcher.run(shutdown.clone())));
        }
        if let Some(nats) = &config.nats {
            let intake = UsageIntake {
                nats: nats.clone(),
                commands: commands.clone(),
                book: app.usage.clone(),
                clock: clock.clone(),
                app: app.clone(),
            };
            tasks.push(tokio::spawn(intake.run(shutdown.clone())));
        }
        let ha = match (&config.ha, &config.nats) {
            (Some(ha_config), Some(nats)) => {
                let state = Arc::new(HaState::new(
                    ha_config.node_id.clone(),
                    ha_config.advertise_url.clone(),
                ));
                let _ = app.ha.set(state.clone());
                let duties = {
                    let relay = relay.as_ref().map(|r| r.relay.clone());
                    let nats = nats.clone();
                    let router = router.clone();
                    let scheduler = config.scheduler.then(|| Scheduler {
                        commands: commands.clone(),
                        store: store.clone(),
                        clock: clock.clone(),
                        tick: Duration::from_secs(1),
                        status: app.scheduler.clone(),
                    });
                    LeaderDuties(Box::new(move || {
                        let mut running = Vec::new();
                        if let Some(relay) = &relay {
                            running.push(duty(|stop| relay.clone().run(stop)));
                        }
                        let service = CommandService {
                            nats: nats.clone(),
                            router: router.clone(),
                            serving: None,
                        };
                        running.push(duty(|stop| service.run(stop)));
                        if let Some(scheduler) = &scheduler {
                            running.push(duty(|stop| scheduler.clone().run(stop)));
                        }
                        running
                    }))
                };
                let controller = HaController {
                    config: ha_config.clone(),
                    nats: nats.clone(),
                    store: store.clone(),
                    commands: commands.clone(),
                    keyring: keyring.clone(),
                    state,
                    duties,
                    data_dir: config.data_dir.clone(),
                    bootstrap_admin: config.bootstrap_admin,
                };
                let (stop, stopped) = watch::channel(false);
                Some((stop, tokio::spawn(controller.run(stopped))))
            }
            _ => None,
        };
        if let (Some(nats), None) = (&config.nats, &config.ha) {
            let (serving, commands_served) = tokio::sync::oneshot::channel();
            let command_service = CommandService {
                nats: nats.clone(),
                router: router.clone(),
                serving: Some(serving),
            };
            tasks.push(tokio::spawn(command_service.run(shutdown.clone())));
            // Ready means commands are served on every interface: wait (a
            // little) for the NATS command service, but never let NATS keep
            // latchd down.
            if tokio::time::timeout(WAIT_FOR_COMMAND_SERVICE, commands_served)
                .await
                .is_err()
            {
                tracing::warn!(nats_url = %nats.redacted_url(), "commands over NATS are not served yet (NATS unreachable?); serving HTTP meanwhile");
            }
        }

        let listener = std::net::TcpListener::bind(config.listen)
            .and_then(|listener| listener.set_nonblocking(true).map(|()| listener))
            .map_err(|source| NodeError::Listen {
                address: config.listen,
                source,
            })?;
        let address = listener.local_addr().map_err(|source| NodeError::Listen {
            address: config.listen,
            source,
        })?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let http_handle = axum_server::Handle::new();
        let http = tokio::spawn(serve_http(
            listener,
            tls,
            http_handle.clone(),
            router,
            config.limits.server_limits(),
        ));
        app.set_ready(true);
        {
            let state = commands.state();
            tracing::info!(
                url = %format!("{scheme}://{address}"),
                data_dir = %config.data_dir.display(),
                nats_url = %config.nats.as_ref().map(|n| n.redacted_url()).unwrap_or_else(|| "none".into()),
                tls = scheme == "https",
                position = %state.position(),
                accounts = state.account_count(),
                tokens = state.token_count(),
                snapshot = ?rebuilt.snapshot.map(|p| p.get()),
                replayed = rebuilt.replayed,
                took_ms = rebuilt.took.as_millis() as u64,
                "latchd ready"
            );
        }
        Ok(Node {
            data_dir: config.data_dir,
            store,
            handler,
            app,
            address,
            scheme,
            relay,
            stop,
            tasks,
            scheduler,
            ha,
            http,
            http_handle,
        })
    }

    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub fn url(&self) -> String {
        format!("{}://{}", self.scheme, self.address)
    }

    pub fn address(&self) -> SocketAddr {
        self.address
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the first start wrote the admin token.
    pub fn admin_token_file(&self) -> PathBuf {
        self.data_dir.join(ADMIN_TOKEN_FILE)
    }

    /// Submits commands straight to the command handler (as the HTTP API does).
    pub fn commands(&self) -> CommandHandle {
        self.handler.handle()
    }

    pub fn store(&self) -> &Arc<EventStore> {
        &self.store
    }

    /// What every route handler shares (e.g. to build another router).
    pub fn app(&self) -> &AppState {
        &self.app
    }

    /// HA mode: this node's role and its view of the cluster.
    pub fn ha_state(&self) -> Option<&Arc<HaState>> {
        self.app.ha.get()
    }

    /// The relay's progress; `None` without NATS.
    pub fn relay_status(&self) -> Option<&Arc<RelayStatus>> {
        self.relay.as_ref().map(|r| &r.status)
    }

    /// Stops the relay (and waits for it): commands are still accepted,
    /// nothing is published until `resume_relay`.
    pub async fn pause_relay(&self) {
        let Some(relay) = &self.relay else { return };
        let running = relay.running.lock().await.take();
        if let Some((stop, task)) = running {
            let _ = stop.send(true);
            let _ = task.await;
        }
    }

    /// Starts the relay again after `pause_relay`: it resumes from what the
    /// stream holds.
    pub async fn resume_relay(&self) {
        let Some(relay) = &self.relay else { return };
        let mut running = relay.running.lock().await;
        if running.is_none() {
            *running = Some(relay.spawn());
        }
    }

    /// Stops the node as a crash would, for benchmarks and tests that
    /// measure what the rest of a cluster does then: every task is aborted
    /// at once; an HA leader neither steps down nor releases its lease (it
    /// lapses). Only the writer thread finishes what it holds, as `Drop`
    /// requires.
    pub fn abort(self) {
        self.http.abort();
        if let Some((_, task)) = &self.ha {
            task.abort();
        }
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        for task in &self.tasks {
            task.abort();
        }
        if let Some(relay) = &self.relay
            && let Ok(mut running) = relay.running.try_lock()
            && let Some((_, task)) = running.take()
        {
            task.abort();
        }
    }

    /// Runs until `signal` fires (or the HTTP server fails), then shuts down.
    pub async fn run_until(
        mut self,
        signal: impl std::future::Future<Output = ()>,
    ) -> Result<(), NodeError> {
        let served = tokio::select! {
            () = signal => None,
            served = &mut self.http => Some(served),
        };
        self.stop_all(served).await
    }

    /// Stops the node without losing anything: in-flight requests finish
    /// (up to 30 s), queued commands are written and a snapshot saved, and
    /// the relay gets a moment to publish what they appended.
    pub async fn shutdown(self) -> Result<(), NodeError> {
        self.stop_all(None).await
    }

    async fn stop_all(
        self,
        served: Option<Result<std::io::Result<()>, tokio::task::JoinError>>,
    ) -> Result<(), NodeError> {
        let served = match served {
            Some(served) => served,
            None => {
                self.http_handle.graceful_shutdown(Some(GRACEFUL_SHUTDOWN));
                self.http.await
            }
        };
        self.app.set_ready(false);
        if let Some((stop, task)) = &self.ha {
            // A leader steps down and releases the lease first: a standby
            // leads at once instead of after the lease lapses.
            let _ = stop.send(true);
            while !task.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        tracing::info!("shutting down: finishing queued commands");
        if let Some(scheduler) = &self.scheduler {
            scheduler.abort();
        }
        self.handler.shutdown().await;
        let head = self.store.head().position.get();
        if let Some(relay) = &self.relay {
            // Give the relay a moment to publish what the last commands appended.
            let deadline = tokio::time::Instant::now() + RELAY_DRAIN;
            while relay.status.connected.load(Ordering::SeqCst)
                && relay.status.published.load(Ordering::SeqCst) < head
                && tokio::time::Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let _ = self.stop.send(true);
        if let Some(relay) = &self.relay
            && let Some((stop, task)) = relay.running.lock().await.take()
        {
            let _ = stop.send(true);
            let _ = task.await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
        tracing::info!(
            position = %head,
            relay_published = self.relay.as_ref().map(|r| r.status.published.load(Ordering::SeqCst)),
            "stopped"
        );
        match served {
            Ok(Ok(())) => Ok(()),
            Ok(Err(source)) => Err(NodeError::Serve {
                scheme: self.scheme,
                source,
            }),
            Err(join) => Err(NodeError::Serve {
                scheme: self.scheme,
                source: std::io::Error::other(join),
            }),
        }
    }
}

/// Startup verified the chain after the newest snapshot; the part before it
/// is verified now, in the background, so tampering anywhere in the log is
/// reported without delaying readiness.
fn verify_chain_in_background(store: Arc<EventStore>) {
    tokio::task::spawn_blocking(move || match store.verify_chain() {
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
}
