//! Given/when/then for child tokens: a token exchanged for a short-lived
//! one that can do no more than it, lives no longer, and ends with it.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

/// Token 1 of ci-deploy (scopes `certificates:issue`, 90 days) asks for
/// child `n`.
fn exchange(parent: u128, n: u128, scopes: Option<&[&str]>, ttl: Option<Span>) -> Command {
    Command::ExchangeToken {
        parent_id: token_id(parent),
        token_id: token_id(n),
        digest: digest(&format!("token-{n}")),
        name: None,
        scopes: scopes.map(perms),
        ttl,
    }
}

fn ops() -> Actor {
    as_token(account_id(OPS), token_id(1))
}

fn child_issued(n: u128, parent: u128, scopes: &[&str], expires_at: chrono::DateTime<chrono::Utc>, parent_name: &str) -> Event {
    Event::TokenIssued {
        token_id: token_id(n),
        account_id: account_id(OPS),
        name: format!("child of {parent_name}"),
        scopes: perms(scopes),
        digest: digest(&format!("token-{n}")),
        expires_at: Some(expires_at),
        allowed_cidrs: Vec::new(),
        rotated_from: None,
        parent: Some(token_id(parent)),
        oidc: None,
    }
}

fn revoked(n: u128, reason: &str) -> Event {
    Event::TokenRevoked {
        token_id: token_id(n),
        account_id: account_id(OPS),
        reason: reason.to_owned(),
    }
}

fn parent_gone(parent: u128) -> String {
    format!("exchanged from token {}, which was revoked or rotated", token_id(parent))
}

#[test]
fn a_token_gets_a_child_with_its_own_permissions_for_15_minutes() {
    given(world())
        .when(ops(), exchange(1, 8, None, None))
        .then_expect_events(vec![child_issued(
            8,
            1,
            &["certificates:issue"],
            t0() + TimeDelta::minutes(15),
            "token-1",
        )]);
}

#[test]
fn only_the_parent_itself_may_ask_not_even_an_admin() {
    given(world())
        .when(admin(), exchange(1, 8, None, None))
        .then_expect_error(DomainError::OnlyItself);
}

#[test]
fn a_child_cannot_widen_its_scopes() {
    given(world())
        .when(ops(), exchange(1, 8, Some(&["certificates:renew"]), None))
        .then_expect_error(DomainError::ScopeBeyondParent {
            beyond: "certificates:renew".into(),
        });
}

#[test]
fn a_child_asking_to_outlive_its_parent_is_refused_and_a_default_one_is_cut_to_it() {
    let short_parent = Event::TokenIssued {
        token_id: token_id(2),
        account_id: account_id(OPS),
        name: "short".into(),
        scopes: perms(&["certificates:issue"]),
        digest: digest("token-2"),
        expires_at: Some(t0() + TimeDelta::minutes(5)),
        allowed_cidrs: Vec::new(),
        rotated_from: None,
        parent: None,
        oidc: None,
    };
    let mut events = world();
    events.push(short_parent);
    let as_short = as_token(account_id(OPS), token_id(2));
    given(events.clone())
        .when(as_short, exchange(2, 8, None, Some(Span::minutes(10))))
        .then_expect_error(DomainError::OutlivesParent {
            parent_expires_at: t0() + TimeDelta::minutes(5),
        });
    given(events)
        .when(as_short, exchange(2, 8, None, None))
        .then_expect_events(vec![child_issued(
            8,
            2,
            &["certificates:issue"],
            t0() + TimeDelta::minutes(5),
            "short",
        )]);
}

#[test]
fn a_revoked_parent_gets_no_child() {
    let mut events = world();
    events.push(revoked(1, "leaked"));
    given(events)
        .when(ops(), exchange(1, 8, None, None))
        .then_expect_error(DomainError::ActorInactive);
}

/// Parent 1, child 8, grandchild 9 (exchanged by the child).
fn family() -> Vec<Event> {
    let mut events = world();
    events.push(child_issued(8, 1, &["certificates:issue"], t0() + TimeDelta::minutes(15), "token-1"));
    events.push(child_issued(9, 8, &["certificates:issue"], t0() + TimeDelta::minutes(15), "child of token-1"));
    events
}

#[test]
fn revoking_the_parent_revokes_every_descendant_in_the_same_append() {
    given(family())
        .when(admin(), Command::RevokeToken { token_id: token_id(1), reason: "leaked".into() })
        .then_expect_events(vec![
            revoked(1, "leaked"),
            revoked(8, &parent_gone(1)),
            revoked(9, &parent_gone(1)),
        ]);
}

#[test]
fn revoking_a_child_leaves_its_parent_and_ends_its_own_children() {
    given(family())
        .when(admin(), Command::RevokeToken { token_id: token_id(8), reason: "done".into() })
        .then_expect_events(vec![revoked(8, "done"), revoked(9, &parent_gone(8))]);
}

#[test]
fn rotating_the_parent_out_ends_its_children_at_once() {
    let events = given(family())
        .when(
            ops(),
            Command::RotateToken {
                token_id: token_id(1),
                successor_id: token_id(20),
                successor_digest: digest("token-20"),
                grace: None,
            },
        )
        .outcome()
        .unwrap();
    let revoked_ids: Vec<TokenId> = events
        .iter()
        .filter_map(|e| match e {
            Event::TokenRevoked { token_id, .. } => Some(*token_id),
            _ => None,
        })
        .collect();
    assert_eq!(revoked_ids, vec![token_id(8), token_id(9)]);
}

#[test]
fn a_child_is_not_rotated() {
    given(family())
        .when(
            as_token(account_id(OPS), token_id(8)),
            Command::RotateToken {
                token_id: token_id(8),
                successor_id: token_id(20),
                successor_digest: digest("token-20"),
                grace: None,
            },
        )
        .then_expect_error_kind(RejectionKind::Conflict);
}

#[test]
fn a_grandchild_cannot_widen_past_what_its_parent_was_given() {
    given(family())
        .when(
            as_token(account_id(OPS), token_id(9)),
            exchange(9, 10, Some(&["certificates:*"]), None),
        )
        .then_expect_error(DomainError::ScopeBeyondParent {
            beyond: "certificates:*".into(),
        });
}

#[test]
fn deleting_the_account_revokes_children_with_everything_else() {
    let events = given(family())
        .when(admin(), Command::DeleteAccount { account_id: account_id(OPS) })
        .outcome()
        .unwrap();
    let revoked_ids: Vec<TokenId> = events
        .iter()
        .filter_map(|e| match e {
            Event::TokenRevoked { token_id, .. } => Some(*token_id),
            _ => None,
        })
        .collect();
    assert_eq!(revoked_ids, vec![token_id(1), token_id(8), token_id(9)]);
}

/// Any token may exchange itself: one leaked read-only token must not be
/// able to fill the log with children and grandchildren.
#[test]
fn a_token_and_its_descendants_hold_at_most_a_thousand_live_children() {
    let mut events = world();
    for n in 0..MAX_LIVE_DESCENDANTS as u128 {
        events.push(child_issued(1000 + n, 1, &["certificates:issue"], t0() + TimeDelta::minutes(15), "token-1"));
    }
    given(events.clone())
        .when(ops(), exchange(1, 9999, None, None))
        .then_expect_error_kind(RejectionKind::Invalid);
    // A grandchild counts against the same root.
    given(events.clone())
        .when(
            as_token(account_id(OPS), token_id(1000)),
            exchange(1000, 9999, None, None),
        )
        .then_expect_error_kind(RejectionKind::Invalid);
    // Revoked children free their places.
    events.push(revoked(1000, "done"));
    assert!(given(events).when(ops(), exchange(1, 9999, None, None)).outcome().is_ok());
}
