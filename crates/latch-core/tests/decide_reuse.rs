//! Given/when/then for reuse: a token presented after it was rotated out
//! or revoked raises `token.reuse_detected` (once per window); under
//! `on_reuse: revoke` its live successors are revoked.

mod support;

use std::net::IpAddr;

use chrono::{DateTime, TimeDelta, Utc};
use latch_core::*;
use support::*;

fn grace_end() -> DateTime<Utc> {
    t0() + TimeDelta::hours(1)
}

/// Token 1 rotated to 8 with an hour's grace; 8 has child 9.
fn rotated() -> Vec<Event> {
    let mut events = world();
    events.push(issued_from(8, Some(1), None));
    events.push(Event::TokenRotated {
        token_id: token_id(1),
        account_id: account_id(OPS),
        successor_id: token_id(8),
        expires_at: grace_end(),
    });
    events.push(issued_from(9, None, Some(8)));
    events
}

fn on_reuse(policy: OnReuse) -> Event {
    Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            on_reuse: Some(policy),
            ..Default::default()
        },
    }
}

fn address() -> IpAddr {
    "203.0.113.7".parse().unwrap()
}

fn presented(n: u128, seen_at: DateTime<Utc>) -> Command {
    Command::NoteTokenReuse {
        token_id: token_id(n),
        seen_at,
        source_address: Some(address()),
        service: "billing-api/1".into(),
    }
}

fn detected(seen_at: DateTime<Utc>, policy: OnReuse) -> Event {
    Event::TokenReuseDetected {
        token_id: token_id(1),
        account_id: account_id(OPS),
        seen_at,
        source_address: Some(address()),
        service: "billing-api/1".into(),
        successor_id: Some(token_id(8)),
        on_reuse: policy,
    }
}

#[test]
fn a_rotated_out_token_presented_after_its_grace_is_reuse_and_by_default_only_told() {
    let seen = grace_end() + TimeDelta::minutes(1);
    given(rotated())
        .when_at(Actor::System, seen, presented(1, seen))
        .then_expect_events(vec![detected(seen, OnReuse::Alert)]);
}

#[test]
fn under_on_reuse_revoke_the_successor_and_its_children_are_revoked() {
    let seen = grace_end() + TimeDelta::minutes(1);
    let mut history = rotated();
    history.push(on_reuse(OnReuse::Revoke));
    let events = given(history)
        .when_at(Actor::System, seen, presented(1, seen))
        .outcome()
        .unwrap();
    assert_eq!(events[0], detected(seen, OnReuse::Revoke));
    let revoked: Vec<_> = events[1..]
        .iter()
        .map(|e| match e {
            Event::TokenRevoked { token_id, .. } => *token_id,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(revoked, vec![token_id(8), token_id(9)]);
}

#[test]
fn a_token_in_its_grace_or_just_past_it_is_no_reuse() {
    // A pipeline retrying with its old token during the grace, or a
    // verifier whose clock runs a little ahead.
    for seen in [grace_end() - TimeDelta::seconds(1), grace_end() + REUSE_SLACK - TimeDelta::seconds(1)] {
        given(rotated())
            .when_at(Actor::System, seen + TimeDelta::seconds(10), presented(1, seen))
            .then_expect_error_kind(RejectionKind::Conflict);
    }
}

#[test]
fn a_live_token_is_no_reuse() {
    given(world())
        .when(Actor::System, presented(1, t0()))
        .then_expect_error_kind(RejectionKind::Conflict);
}

#[test]
fn a_revoked_token_presented_is_reuse() {
    let mut history = world();
    history.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: "leaked".into(),
    });
    let seen = t0() + TimeDelta::minutes(5);
    given(history)
        .when_at(Actor::System, seen, presented(1, seen))
        .then_expect_events(vec![match detected(seen, OnReuse::Alert) {
            Event::TokenReuseDetected { token_id, account_id, seen_at, source_address, service, on_reuse, .. } => {
                Event::TokenReuseDetected { token_id, account_id, seen_at, source_address, service, successor_id: None, on_reuse }
            }
            other => other,
        }]);
}

#[test]
fn reuse_is_told_at_most_once_per_window() {
    let seen = grace_end() + TimeDelta::minutes(1);
    let given = given(rotated()).and_at(seen, [detected(seen, OnReuse::Alert)]);
    let again = seen + TimeDelta::minutes(10);
    given
        .when_ref_at(Actor::System, again, presented(1, again))
        .then_expect_events(vec![]);
    let later = seen + REUSE_ALERT_WINDOW;
    given
        .when_at(Actor::System, later, presented(1, later))
        .then_expect_events(vec![detected(later, OnReuse::Alert)]);
}

#[test]
fn a_time_in_the_future_is_taken_as_now() {
    let now = grace_end() + TimeDelta::minutes(1);
    given(rotated())
        .when_at(Actor::System, now, presented(1, now + TimeDelta::days(1)))
        .then_expect_events(vec![detected(now, OnReuse::Alert)]);
}

#[test]
fn only_latchd_notes_reuse() {
    let seen = grace_end() + TimeDelta::minutes(1);
    given(rotated())
        .when_at(admin(), seen, presented(1, seen))
        .then_expect_error(DomainError::SystemOnly);
}
