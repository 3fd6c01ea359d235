//! The JSON shapes of accounts, tokens and actors, as latchd's API serves
//! them (`GET /v1/accounts/{id}`, `/v1/tokens/{id}` …) and as
//! `latch audit … --data-dir` prints them offline. One definition serves
//! both, which is why they live here and not in latchd: the CLI reads a
//! data directory without latchd. Never a secret.

mod account_view;
mod actor_view;
mod token_view;

pub use account_view::AccountView;
pub use actor_view::ActorView;
pub use token_view::{TokenView, UsageView};
