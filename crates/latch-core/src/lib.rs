//! Latch's pure domain: identifiers, permissions, the token format,
//! commands, events, `decide`/`evolve` and the projection `State`.
//!
//! No I/O lives here. latchd, the verifier library and the audit tools all
//! fold the log with this crate's `evolve`, so they agree by construction.
#![forbid(unsafe_code)]

mod account;
mod account_table;
mod actor;
pub mod api_permission;
mod authentication;
mod command;
mod decide;
mod domain_error;
mod envelope;
mod envelope_deserialize;
mod event;
mod evolve;
mod exchanged_jtis;
mod id;
mod idempotency_key_digest;
mod leak_report;
mod permission;
mod permission_set;
mod on_reuse;
mod policy;
mod random_key_hasher;
mod sharded_index;
mod position;
mod role;
mod schedule;
mod serde_as_text;
mod serde_time;
mod span;
mod state;
mod token;
mod token_digest;
mod token_secret;
mod token_slot;
mod token_status;
mod token_table;
mod trust_policy;
mod ttl;
mod verifier_view;

pub use account::{Account, AccountName, AccountNameError, AccountStatus};
pub use actor::Actor;
pub use authentication::{Principal, Rejection, authenticate, authenticate_digest, identify};
pub use command::{Command, Requirement};
pub use decide::{
    CHILD_DEFAULT_TTL, CommandContext, MAX_LEAK_REPORTS, MAX_LIVE_DESCENDANTS, MAX_TEXT,
    REUSE_ALERT_WINDOW, REUSE_SLACK, authorize, decide,
};
pub use domain_error::{DomainError, RejectionKind};
pub use envelope::{EventEnvelope, RecordedEvent};
pub use event::{Event, StreamName};
pub use evolve::evolve;
pub use id::{AccountId, EventId, LogId, TokenId, TrustPolicyId};
pub use idempotency_key_digest::IdempotencyKeyDigest;
pub use leak_report::{LeakReport, MAX_LEAK_LOCATION, MAX_LEAK_SOURCE};
pub use on_reuse::OnReuse;
pub use permission::{Permission, PermissionError};
pub use permission_set::PermissionSet;
pub use policy::{Policy, PolicySettings};
pub use position::Position;
pub use role::{BuiltinRole, Role, RoleName, RoleNameError};
pub use schedule::{ScheduledNote, scheduled_notes};
pub use span::{Span, SpanError};
pub use state::State;
pub use token::{Revocation, Token};
pub use token_digest::TokenDigest;
pub use token_secret::{PREFIX as TOKEN_PREFIX, TOKEN_LEN, TokenFormatError, TokenSecret};
pub use token_slot::TokenSlot;
pub use token_status::TokenStatus;
pub use trust_policy::{
    ClaimPattern, EXCHANGE_DEFAULT_TTL, EXCHANGE_MAX_TTL, OidcExchange, TrustPolicy,
};
pub use ttl::Ttl;
pub use verifier_view::{VerifierView, VerifierViewParts};

/// Re-exported so callers name the same CIDR type the events carry.
pub use ipnet::IpNet;
