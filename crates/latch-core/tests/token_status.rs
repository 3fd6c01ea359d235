//! Given these events, what a token is and may do at a moment: the answers
//! latchd's views, `latch audit state` and `who-can` all rest on.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

fn token_1(state: &State) -> &Token {
    state.token(token_id(1)).expect("token 1 was issued")
}

#[test]
fn an_issued_token_may_do_its_scopes_within_its_role() {
    let given = given(world());
    let state = given.state();
    assert_eq!(
        state.token_status(token_1(state), t0()),
        TokenStatus::Active
    );
    assert_eq!(
        state.effective_permissions(token_1(state), t0()),
        perms(&["certificates:issue"])
    );
}

#[test]
fn a_role_redefined_without_the_scope_leaves_the_token_active_but_empty_handed() {
    let mut events = world();
    events.push(Event::RoleDefined {
        name: role("cert-operator"),
        permissions: perms(&["certificates:read"]),
        description: String::new(),
    });
    let given = given(events);
    let state = given.state();
    assert_eq!(
        state.token_status(token_1(state), t0()),
        TokenStatus::Active
    );
    assert!(state.effective_permissions(token_1(state), t0()).is_empty());
}

#[test]
fn past_its_expiry_a_token_is_expired_and_may_do_nothing() {
    let given = given(world());
    let state = given.state();
    let expiry = t0() + TimeDelta::days(90);
    let token = token_1(state);
    assert_eq!(
        state.token_status(token, expiry - TimeDelta::seconds(1)),
        TokenStatus::Active
    );
    assert_eq!(state.token_status(token, expiry), TokenStatus::Expired);
    assert!(state.effective_permissions(token, expiry).is_empty());
}

#[test]
fn a_disabled_account_suspends_its_tokens_and_revocation_outranks_everything() {
    let mut events = world();
    events.push(Event::AccountDisabled {
        account_id: account_id(OPS),
        reason: "leak".into(),
    });
    let given_disabled = given(events.clone());
    let state = given_disabled.state();
    assert_eq!(
        state.token_status(token_1(state), t0()),
        TokenStatus::Suspended
    );
    assert!(state.effective_permissions(token_1(state), t0()).is_empty());

    events.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: "leak".into(),
    });
    let given_revoked = given(events);
    let state = given_revoked.state();
    let long_after = t0() + TimeDelta::days(365);
    assert_eq!(
        state.token_status(token_1(state), long_after),
        TokenStatus::Revoked,
        "revoked, not expired or suspended: the decisive fact"
    );
}
