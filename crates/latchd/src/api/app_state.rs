//! `AppState`: what every route handler shares.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::api::layers::failure_limiter::{FailureLimiter, MAX_SOURCES};
use crate::api::layers::http_metrics::HttpMetrics;
use crate::api::issued_secrets::IssuedSecrets;
use crate::api::request_limits::RequestLimits;
use crate::clock::Clock;
use crate::command_handler::CommandHandle;
use crate::relay::RelayStatus;
use crate::scheduler::SchedulerStatus;
use crate::usage_book::UsageBook;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub commands: CommandHandle,
    pub clock: Arc<dyn Clock>,
    pub secrets: IssuedSecrets,
    pub metrics: HttpMetrics,
    /// The relay's progress, when latchd runs one.
    pub relay: Option<Arc<RelayStatus>>,
    /// Each token's last use (latchd's and verifiers').
    pub usage: Arc<UsageBook>,
    /// The scheduler's counters (zero when no scheduler runs).
    pub scheduler: Arc<SchedulerStatus>,
    /// What one request may cost (body read timeout, failure budget).
    pub limits: RequestLimits,
    /// What `GET /v1/snapshot` is signed with (set once latchd has its
    /// keys; unsigned without).
    pub signer: std::sync::OnceLock<Arc<crate::signing_keys::Keyring>>,
    /// Each source's budget of failed requests.
    pub failures: FailureLimiter,
    /// HA mode: this node's role and its cluster's leader (unset in
    /// single-node mode).
    pub ha: std::sync::OnceLock<Arc<crate::ha::HaState>>,
    /// Trusted OIDC issuers' keys (token exchange).
    pub oidc_keys: crate::oidc::IssuerKeys,
    /// Failed OIDC exchanges per issuer and subject.
    pub oidc_failures: crate::oidc::SubjectLimiter,
    /// Where leak reports come in (GitHub, GitLab; set once at start).
    leaks: std::sync::OnceLock<crate::leaks::LeakChannels>,
    /// Tokens presented after rotation or revocation.
    pub reuse: crate::leaks::ReuseSightings,
    /// The web console's sign-in sessions.
    pub console: crate::api::console::SessionBook,
    ready: AtomicBool,
}

impl AppState {
    pub fn new(commands: CommandHandle, clock: Arc<dyn Clock>) -> Self {
        Self::with_relay(commands, clock, None)
    }

    pub fn with_relay(
        commands: CommandHandle,
        clock: Arc<dyn Clock>,
        relay: Option<Arc<RelayStatus>>,
    ) -> Self {
        Self::with_limits(commands, clock, relay, RequestLimits::default())
    }

    pub fn with_limits(
        commands: CommandHandle,
        clock: Arc<dyn Clock>,
        relay: Option<Arc<RelayStatus>>,
        limits: RequestLimits,
    ) -> Self {
        let usage = Arc::new(UsageBook::new(commands.store().clone()));
        Self(Arc::new(Inner {
            usage,
            scheduler: Arc::default(),
            commands,
            clock,
            secrets: IssuedSecrets::default(),
            metrics: HttpMetrics::default(),
            relay,
            signer: std::sync::OnceLock::new(),
            limits,
            failures: FailureLimiter::new(limits.failures, MAX_SOURCES),
            ha: std::sync::OnceLock::new(),
            oidc_keys: crate::oidc::IssuerKeys::default(),
            oidc_failures: crate::oidc::SubjectLimiter::default(),
            leaks: std::sync::OnceLock::new(),
            reuse: crate::leaks::ReuseSightings::default(),
            console: crate::api::console::SessionBook::default(),
            ready: AtomicBool::new(false),
        }))
    }

    /// Sets the leak channels (once, before serving).
    pub fn set_leak_channels(&self, channels: crate::leaks::LeakChannels) {
        let _ = self.0.leaks.set(channels);
    }

    /// The leak channels; none configured until `set_leak_channels`.
    pub fn leak_channels(&self) -> &crate::leaks::LeakChannels {
        self.0.leaks.get_or_init(crate::leaks::LeakChannels::default)
    }

    pub fn set_ready(&self, ready: bool) {
        self.0.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.ready.load(Ordering::SeqCst)
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}
