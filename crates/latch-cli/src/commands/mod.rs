//! One file per subcommand of `latch`: its clap arguments and its `run`.

pub mod account;
pub mod account_trust;
pub mod audit;
pub mod audit_events;
pub mod completion;
pub mod events;
pub mod leak;
pub mod policy;
pub mod role;
pub mod token;
pub mod watch;
pub mod webhook;
