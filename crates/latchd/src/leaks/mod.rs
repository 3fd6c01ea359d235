//! Incident response: leak reports from GitHub's secret scanning partner
//! program, GitLab's token revocation API and internal scanners, and
//! tokens presented again after rotation or revocation (reuse).
//!
//! The routes are in `api::routes::leaks`; what follows from a report is
//! decided in `latch_core` (`Command::ReportLeaks`, `Command::NoteTokenReuse`).

mod found_token;
mod github_keys;
mod leak_channels;
mod leak_error;
mod report_budget;
mod reuse_sightings;

pub use found_token::FoundToken;
pub use github_keys::{GithubKeySource, p256_pem};
pub use leak_channels::{LeakChannels, LeakConfig, LeakConfigError};
pub use leak_error::LeakError;
pub use report_budget::TOKENS_PER_MINUTE;
pub use reuse_sightings::{ReuseSightings, Sighting};
