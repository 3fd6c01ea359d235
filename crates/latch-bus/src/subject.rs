//! Subjects: every event on `latch.events.<event_type>.<account_id>`; role
//! and policy events, which concern no account, use `_`.

use latch_core::Event;

/// Everything the stream holds.
pub const EVENTS_WILDCARD: &str = "latch.events.>";
/// What a service that only cares about revocations subscribes to.
pub const TOKEN_REVOKED_WILDCARD: &str = "latch.events.token.revoked.*";
/// latchd's heartbeat, every second.
pub const HEARTBEAT: &str = "latch.heartbeat";
/// A request here gets latchd's heartbeat at once, as the reply: a verifier
/// that has just started need not wait for the next one.
pub const HEARTBEAT_REQUEST: &str = "latch.heartbeat.request";
/// Every verifier usage report (latchd subscribes to this).
pub const USAGE_WILDCARD: &str = "latch.usage.*";
/// The account segment of events that concern no account.
pub const NO_ACCOUNT: &str = "_";

const EVENTS_PREFIX: &str = "latch.events";

/// The subject an event is published on.
pub fn event_subject(event: &Event) -> String {
    match event.account_id() {
        Some(account) => format!("{EVENTS_PREFIX}.{}.{account}", event.event_type()),
        None => format!("{EVENTS_PREFIX}.{}.{NO_ACCOUNT}", event.event_type()),
    }
}

/// Events of one type for every account, e.g. `latch.events.token.issued.*`.
pub fn event_type_wildcard(event_type: &str) -> String {
    format!("{EVENTS_PREFIX}.{event_type}.*")
}

/// Every event about one account: `latch.events.*.*.<account_id>` (event
/// types have exactly two dotted segments).
pub fn account_wildcard(account: latch_core::AccountId) -> String {
    format!("{EVENTS_PREFIX}.*.*.{account}")
}

/// Where verifiers report the uses of one account's tokens.
pub fn usage_subject(account: latch_core::AccountId) -> String {
    format!("latch.usage.{account}")
}
