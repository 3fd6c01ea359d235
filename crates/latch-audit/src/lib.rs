//! Reading Latch's history: what `GET /v1/events` and `/v1/audit/*` serve
//! and what `latch audit … --data-dir` computes offline, from one code path.
//!
//! - `EventFilter`: which events an investigation wants.
//! - `replay` to a `Moment` with latch-core's own `evolve`, checking the
//!   hash chain as it reads; then `state_entries` (the state then) and
//!   `who_can` (who held a permission then, and why).
//! - `TokenStory`: one token's events and uses, in time order.
//! - `LogIndexer` / `LogIndex`: the keys latchd indexes every event under
//!   (token, account, actor, time), so a token's story or an account's
//!   events read only their own events; `ActivityRecordIndexer` /
//!   `ActivityOf`: the same for API activity records (by account and
//!   token), so a token's uses are read without scanning every request.
//! - The views (`views/`: `AccountView`, `TokenView`, `ActorView`; and
//!   `AuditEvent`) and
//!   the records latchd keeps beside the log (`ActivityRecord`,
//!   `TokenUsage`).
//!
//! Everything hands out entries one at a time (`each` returns whether to go
//! on), so a million-token answer is streamed, never collected.
#![forbid(unsafe_code)]

mod account_names;
mod activity_indexer;
mod activity_record;
mod audit_error;
mod audit_event;
mod checkpoint;
mod event_filter;
mod event_scan;
mod event_summary;
mod log_index;
mod log_verdict;
mod moment;
mod replay;
mod state_entry;
mod token_story;
mod token_usage;
mod views;
mod who_can;

pub use account_names::AccountNames;
pub use activity_indexer::{ActivityOf, ActivityRecordIndexer};
pub use activity_record::ActivityRecord;
pub use audit_error::AuditError;
pub use audit_event::{AuditEvent, NameOf};
pub use checkpoint::{checkpoint_header, decode_checkpoint, encode_checkpoint};
pub use event_filter::{ActorMatch, EventFilter, TypeMatch, Verdict};
pub use event_scan::{ScanEnd, scan_events, scan_events_in_order};
pub use log_index::{IndexedBy, LogIndex, LogIndexer};
pub use event_summary::summary;
pub use log_verdict::{CheckpointCheck, verify_log};
pub use moment::Moment;
pub use replay::{Progress, Replayed, for_each_recorded_after, replay};
pub use state_entry::{RoleView, StateEntry, StateScope, TokenAt, state_entries};
pub use token_story::{StoryEntry, TokenStory};
pub use token_usage::{ReporterName, TokenUsage};
pub use views::{AccountView, ActorView, TokenView, UsageView};
pub use who_can::{Holder, who_can};
