//! latchd as a library: a `Node` (one running latchd, assembled in
//! `node.rs`) and its parts: the command handler (single writer, group
//! commit) over the event log, the HTTP API and its NATS command service,
//! the relay, the scheduler, bootstrap, the clock it reads, and state
//! rebuilding. The binary in `main.rs` only turns flags into a
//! `NodeConfig` and signals into `shutdown`.
#![forbid(unsafe_code)]
// `Problem` (the API error) is ~150 bytes; boxing it in every handler's
// `Result` would cost more clarity than the copy costs time.
#![allow(clippy::result_large_err)]

pub mod api;
mod activity_pruner;
mod backup;
mod bootstrap;
mod bounded_text;
mod clock;
mod command_handler;
mod command_outcome;
mod command_service;
mod deadline_index;
mod dev_nats;
mod event_codec;
pub mod ha;
mod http_server;
mod leaks;
mod nats_client_claim;
mod nats_micro;
mod oidc;
mod node;
mod rebuild;
mod record_upgrade_task;
mod recover_admin;
mod relay;
mod reply_guard;
mod scheduler;
mod serve_limits;
mod signing_keys;
mod usage_book;
mod usage_intake;
pub mod webhooks;

pub use activity_pruner::{ActivityPruner, Pruned};
pub use backup::{BackupError, BackupTaken, LOG_DIR, take_backup};
pub use bootstrap::{ADMIN_TOKEN_FILE, BootstrapError, Bootstrapped, bootstrap};
pub use clock::{Clock, FileClock, ManualClock, SystemClock};
pub use command_handler::{
    CommandHandle, CommandHandler, CommandRequest, HandlerConfig, HandlerMetrics, Idempotency,
};
pub use command_outcome::{CommandReceipt, CommandRejection, CommandResult, HandlerFailure};
pub use command_service::CommandService;
pub use dev_nats::{DevNats, DevNatsError, INSTALL_NATS, nats_answers};
pub use event_codec::{to_new_event, to_recorded};
pub use api::ConsoleSessionSettings;
pub use http_server::{HttpServerLimits, serve as serve_http};
pub use leaks::{GithubKeySource, LeakConfig, LeakConfigError, p256_pem};
pub use latch_audit::TokenUsage;
pub use node::{Node, NodeConfig, NodeError, SigningKeySource, TlsFiles};
pub use rebuild::{RebuildError, Rebuilt, rebuild};
pub use recover_admin::{RecoverAdminError, RecoveredAdmin, recover_admin};
pub use relay::{Relay, RelayStatus};
pub use reply_guard::refused_total as nats_replies_refused_total;
pub use scheduler::{Scheduler, SchedulerStatus};
pub use serve_limits::ServeLimits;
pub use signing_keys::{Keyring, KeyringError, SIGNING_KEY_DIR, rotate as rotate_signing_key};
pub use usage_book::UsageBook;
pub use usage_intake::UsageIntake;
