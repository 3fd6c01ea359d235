//! latchd's command line: its subcommands and flags (each also a `LATCH_*`
//! variable), and the `NodeConfig` the flags describe.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use latch_bus::NatsArgs;
use latchd::{
    Clock, FileClock, HandlerConfig, NodeConfig, ServeLimits, SigningKeySource, SystemClock,
    TlsFiles,
};

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
pub struct Cli {
    #[command(subcommand)]
    pub mode: Option<Mode>,
    #[command(flatten)]
    pub serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
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
pub enum KeyCommand {
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
pub struct RecoverAdminArgs {
    /// The account to restore as admin.
    #[arg(long, default_value = "admin")]
    pub account: String,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where the event log (RocksDB) and admin.token live.
    #[arg(
        long,
        env = "LATCH_DATA_DIR",
        default_value = "./latch-data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Address for the HTTP API.
    #[arg(
        long,
        env = "LATCH_LISTEN",
        default_value = "127.0.0.1:7420",
        global = true
    )]
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key.
    #[arg(long, env = "LATCH_TLS_CERT", requires = "tls_key", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, env = "LATCH_TLS_KEY", requires = "tls_cert", global = true)]
    pub tls_key: Option<PathBuf>,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub limits: ServeLimits,
    /// Save a checkpoint (the state, with the chain hash there) after this
    /// many new events: a restart replays only the tail after the newest,
    /// an investigation (`latch audit state|who-can --at`) only the tail
    /// after the nearest.
    #[arg(
        long,
        env = "LATCH_SNAPSHOT_EVERY",
        default_value_t = 100_000,
        global = true
    )]
    pub snapshot_every: u64,
    /// Also save a checkpoint when this long has passed since the last one
    /// and events were appended (`1d`, `6h`…).
    #[arg(long, env = "LATCH_CHECKPOINT_INTERVAL", default_value = "1d", global = true)]
    pub checkpoint_interval: latch_core::Span,
    /// Checkpoints kept, the oldest deleted first. Each holds the whole
    /// state (about 125 MB at a million events; docs/benchmarks.md): the
    /// disk they cost is this many states.
    #[arg(long, env = "LATCH_CHECKPOINTS_KEPT", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(1..=100_000), global = true)]
    pub checkpoints_kept: u64,
    /// The format new records of the log are written in: `binary` (compact,
    /// faster to read) or `json` (what a latchd from before the binary
    /// format reads: set it before going back to one). Both are read
    /// always; the chain is the same in either (ADR 0027).
    #[arg(
        long,
        env = "LATCH_RECORD_FORMAT",
        default_value = "binary",
        global = true
    )]
    pub record_format: latch_store::RecordFormat,
    /// Rewrite the log's JSON records in the binary format, in the
    /// background while serving. Every hash stays as it was; stopped, it
    /// goes on at the next start with this flag.
    #[arg(long, env = "LATCH_UPGRADE_RECORDS", global = true)]
    pub upgrade_records: bool,
    /// Sign the feed with this provisioned Ed25519 key (PEM, PKCS#8, e.g.
    /// from `openssl genpkey -algorithm ed25519`) instead of the key latchd
    /// keeps in <data-dir>/signing-keys. Every node of an HA cluster uses the
    /// cluster's key.
    #[arg(long, env = "LATCH_SIGNING_KEY", global = true)]
    pub signing_key: Option<PathBuf>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, env = "LATCH_LOG_JSON", global = true)]
    pub log_json: bool,
    #[command(flatten)]
    pub ha: HaArgs,
    /// Serve GitHub's secret scanning partner endpoint (POST
    /// /v1/leaks/github), verifying reports with the keys document at this
    /// URL (https://api.github.com/meta/public_keys/secret_scanning) or in
    /// this file (docs/leaks.md).
    #[arg(long, env = "LATCH_GITHUB_SECRET_SCANNING_KEYS", global = true)]
    pub github_secret_scanning_keys: Option<String>,
    /// Serve GitLab's token revocation API (/v1/leaks/gitlab/…) to the
    /// caller presenting the token in this file (at least 32 characters;
    /// `openssl rand -hex 32`).
    #[arg(long, env = "LATCH_GITLAB_REVOCATION_TOKEN_FILE", global = true)]
    pub gitlab_revocation_token_file: Option<PathBuf>,
    /// For tests only: the least time between two fetches of GitHub's keys
    /// document (default 60s).
    #[arg(long, hide = true, default_value = "60s", global = true)]
    pub github_keys_min_refetch: latch_core::Span,
    /// The wait before a failed webhook delivery's first retry; it doubles
    /// with each failure, up to an hour.
    /// (`500ms`, `5s`, `1m`…)
    #[arg(long, env = "LATCH_WEBHOOK_RETRY_BASE", default_value = "5s", value_parser = retry_base, global = true)]
    pub webhook_retry_base: std::time::Duration,
    /// Attempts before a webhook delivery is given up on (dead; `latch
    /// webhook redeliver` tries again).
    #[arg(long, env = "LATCH_WEBHOOK_MAX_ATTEMPTS", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100), global = true)]
    pub webhook_max_attempts: u32,
    /// Deliver webhooks to loopback, private and link-local addresses too
    /// (refused by default: whoever may add a webhook could otherwise make
    /// latchd call its neighbours or a cloud metadata service).
    #[arg(long, env = "LATCH_WEBHOOK_ALLOW_PRIVATE_ADDRESSES", global = true)]
    pub webhook_allow_private_addresses: bool,
    /// Web console (/ui): a session without a request for this long ends
    /// (`15m`, `1h`…).
    #[arg(long, env = "LATCH_CONSOLE_SESSION_IDLE", default_value = "30m", global = true)]
    pub console_session_idle: latch_core::Span,
    /// Web console (/ui): a session ends this long after sign-in, however
    /// busy (and never after its token expires).
    #[arg(long, env = "LATCH_CONSOLE_SESSION_MAX_AGE", default_value = "8h", global = true)]
    pub console_session_max_age: latch_core::Span,
    /// Web console (/ui): mark the session cookie `Secure` (and name it
    /// `__Host-latch_console`) although latchd serves plain HTTP: for a
    /// latchd behind a proxy that serves it over HTTPS. (Automatic with
    /// --tls-cert.)
    #[arg(long, env = "LATCH_CONSOLE_SECURE_COOKIE", global = true)]
    pub console_secure_cookie: bool,
    /// For tests only: read "now" from this file (one RFC 3339 time,
    /// re-read at every use) instead of the system clock.
    #[arg(long, env = "LATCH_CLOCK_FILE", hide = true, global = true)]
    pub clock_file: Option<PathBuf>,
}

/// HA mode: several latchd nodes on one NATS JetStream cluster, one
/// leader and standbys (docs/operations.md, "High availability").
#[derive(Debug, Clone, Args)]
pub struct HaArgs {
    /// Run as a node of an HA cluster: lead or follow through the NATS
    /// cluster of --nats-url. Every node needs the same --signing-key.
    #[arg(long, env = "LATCH_HA", global = true)]
    pub ha: bool,
    /// This node's name in the cluster (default: the host name and
    /// --listen port).
    #[arg(long, env = "LATCH_NODE_ID", global = true)]
    pub node_id: Option<String>,
    /// The URL clients reach this node at; standbys redirect writes (307)
    /// to the leader's (default: http(s)://<--listen>).
    #[arg(long, env = "LATCH_ADVERTISE_URL", global = true)]
    pub advertise_url: Option<String>,
    /// Replicas of the event stream and the lease (3 on a three-server
    /// NATS cluster; 1 on a single server).
    #[arg(long, env = "LATCH_HA_REPLICAS", default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..=5), global = true)]
    pub ha_replicas: u8,
    /// How long the leader's lease lasts unrenewed: a leader that dies is
    /// replaced after about this long.
    #[arg(long, env = "LATCH_HA_LEASE", default_value = "3s", global = true)]
    pub ha_lease: latch_core::Span,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The new directory to write the backup to (must not exist; on
    /// latchd's host).
    #[arg(long)]
    pub to: PathBuf,
    /// Write the backup's records in the compact binary format (ADR 0027):
    /// the copy is rewritten, the running log left as it is, and the chain
    /// head is the same.
    #[arg(long)]
    pub upgrade_records: bool,
    /// The running latchd to ask.
    #[arg(long, env = "LATCH_URL", default_value = "http://127.0.0.1:7420")]
    pub url: String,
    /// A token with `backup:create` (admin has it); default: the file
    /// <data-dir>/admin.token.
    #[arg(long, env = "LATCH_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// PEM file of the CA to trust for an HTTPS --url.
    #[arg(long, env = "LATCH_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

/// `250ms`, or a duration such as `5s` or `1m`.
fn retry_base(text: &str) -> Result<std::time::Duration, String> {
    if let Some(ms) = text.strip_suffix("ms") {
        return ms
            .parse::<u64>()
            .ok()
            .filter(|ms| (10..=3_600_000).contains(ms))
            .map(std::time::Duration::from_millis)
            .ok_or_else(|| format!("{text:?}: 10ms to 3600000ms"));
    }
    latch_core::Span::parse(text)
        .map(|span| std::time::Duration::from_secs(span.as_seconds()))
        .map_err(|e| e.to_string())
}

impl ServeArgs {
    /// The node these flags describe.
    pub fn node_config(&self) -> anyhow::Result<NodeConfig> {
        let mut config = NodeConfig::new(&self.data_dir);
        config.listen = self.listen;
        config.tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
            }),
            _ => None,
        };
        config.nats = Some(self.nats.connection());
        config.limits = self.limits.clone();
        config.handler = HandlerConfig {
            snapshot_every: self.snapshot_every,
            checkpoint_every: self.checkpoint_interval.to_chrono(),
            checkpoints_kept: self.checkpoints_kept as usize,
            record_format: self.record_format,
            upgrade_records: self.upgrade_records,
            ..HandlerConfig::default()
        };
        config.clock = self.clock(true)?;
        config.webhooks = latchd::webhooks::WebhookConfig {
            retry_base: self.webhook_retry_base,
            max_attempts: self.webhook_max_attempts,
            allow_private: self.webhook_allow_private_addresses,
            ..latchd::webhooks::WebhookConfig::default()
        };
        config.console_sessions = latchd::ConsoleSessionSettings {
            idle: std::time::Duration::from_secs(self.console_session_idle.as_seconds()),
            max_age: std::time::Duration::from_secs(self.console_session_max_age.as_seconds()),
            secure_cookie: self.console_secure_cookie,
            ..latchd::ConsoleSessionSettings::default()
        };
        config.leaks = latchd::LeakConfig {
            github_keys: self
                .github_secret_scanning_keys
                .as_deref()
                .map(latchd::GithubKeySource::parse),
            gitlab_token_file: self.gitlab_revocation_token_file.clone(),
            github_keys_min_refetch: std::time::Duration::from_secs(self.github_keys_min_refetch.as_seconds()),
        };
        config.signing_key = match &self.signing_key {
            Some(file) => SigningKeySource::Provisioned(file.clone()),
            None => SigningKeySource::DataDir,
        };
        if self.ha.ha {
            let scheme = if config.tls.is_some() { "https" } else { "http" };
            let node_id = self.ha.node_id.clone().unwrap_or_else(|| {
                let host = std::env::var("HOSTNAME")
                    .ok()
                    .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
                    .map(|h| h.trim().to_owned())
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "latchd".to_owned());
                format!("{host}:{}", self.listen.port())
            });
            let advertise_url = match &self.ha.advertise_url {
                Some(url) => url.clone(),
                None => {
                    anyhow::ensure!(
                        !self.listen.ip().is_unspecified(),
                        "--ha with --listen {} needs --advertise-url: standbys send clients to the leader's URL, and {} reaches no one",
                        self.listen,
                        self.listen
                    );
                    format!("{scheme}://{}", self.listen)
                }
            };
            let lease = std::time::Duration::from_secs(self.ha.ha_lease.as_seconds());
            anyhow::ensure!(
                lease >= std::time::Duration::from_secs(1),
                "--ha-lease must be at least 1s"
            );
            let mut ha = latchd::ha::HaConfig::new(node_id, advertise_url);
            ha.replicas = usize::from(self.ha.ha_replicas);
            ha.lease = lease;
            config.ha = Some(ha);
        }
        Ok(config)
    }

    /// The system clock, or the test clock of --clock-file.
    pub fn clock(&self, warn: bool) -> anyhow::Result<Arc<dyn Clock>> {
        Ok(match &self.clock_file {
            Some(path) => {
                if warn {
                    tracing::warn!(path = %path.display(), "TEST CLOCK: \"now\" is read from a file, not the system clock");
                }
                Arc::new(FileClock::open(path).map_err(anyhow::Error::msg)?)
            }
            None => Arc::new(SystemClock),
        })
    }
}
