//! Given/when/then for trust policies and OIDC token exchange.

mod support;

use std::collections::BTreeMap;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

const GITHUB: &str = "https://token.actions.githubusercontent.com";

fn policy_id(n: u128) -> TrustPolicyId {
    TrustPolicyId::from_uuid(uuid::Uuid::from_u128(0xB000 + n))
}

fn patterns(pairs: &[(&str, &str)]) -> BTreeMap<String, ClaimPattern> {
    pairs
        .iter()
        .map(|(name, pattern)| (name.to_string(), ClaimPattern::parse(pattern).unwrap()))
        .collect()
}

fn add(claims: &[(&str, &str)], scopes: Option<&[&str]>, max_ttl: Option<Span>) -> Command {
    Command::AddTrustPolicy {
        account_id: account_id(OPS),
        policy_id: policy_id(1),
        issuer: GITHUB.into(),
        audience: "latch".into(),
        claims: patterns(claims),
        scopes: scopes.map(perms),
        max_ttl,
    }
}

fn added() -> Event {
    Event::TrustPolicyAdded {
        policy_id: policy_id(1),
        account_id: account_id(OPS),
        issuer: GITHUB.into(),
        audience: "latch".into(),
        claims: patterns(&[("sub", "repo:acme/deploy:ref:refs/heads/main"), ("repository_owner", "acme")]),
        scopes: perms(&["certificates:issue"]),
        max_ttl: Span::minutes(15),
    }
}

fn trusted() -> Vec<Event> {
    let mut events = world();
    events.push(added());
    events
}

fn claims(sub: &str) -> BTreeMap<String, String> {
    [("sub", sub), ("repository_owner", "acme"), ("ref_protected", "true")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn exchange(jti: &str, sub: &str, scopes: Option<&[&str]>, ttl: Option<Span>) -> Command {
    Command::ExchangeOidcToken {
        policy_id: policy_id(1),
        token_id: token_id(50),
        digest: digest("token-50"),
        scopes: scopes.map(perms),
        ttl,
        issuer: GITHUB.into(),
        audiences: vec!["latch".into()],
        subject: sub.into(),
        jti: jti.into(),
        token_expires_at: t0() + TimeDelta::minutes(5),
        claims: claims(sub),
    }
}

const MAIN: &str = "repo:acme/deploy:ref:refs/heads/main";

#[test]
fn an_admin_adds_a_trust_policy_within_the_accounts_role() {
    given(world())
        .when(
            admin(),
            add(&[("sub", MAIN), ("repository_owner", "acme")], Some(&["certificates:issue"]), None),
        )
        .then_expect_events(vec![added()]);
}

#[test]
fn a_policy_that_pins_no_claim_is_refused() {
    given(world())
        .when(admin(), add(&[], None, None))
        .then_expect_error_kind(RejectionKind::Invalid);
    given(world())
        .when(admin(), add(&[("sub", "*")], None, None))
        .then_expect_error_kind(RejectionKind::Invalid);
}

#[test]
fn a_policy_beyond_the_role_or_the_exchange_cap_is_refused() {
    given(world())
        .when(admin(), add(&[("sub", MAIN)], Some(&["accounts:write"]), None))
        .then_expect_error_kind(RejectionKind::Invalid);
    given(world())
        .when(admin(), add(&[("sub", MAIN)], None, Some(Span::hours(13))))
        .then_expect_error_kind(RejectionKind::Invalid);
}

#[test]
fn an_issuer_must_be_https_except_on_loopback() {
    for issuer in ["http://evil.example", "token.actions.githubusercontent.com", "https://x/?a=b", "https://x/"] {
        let mut command = add(&[("sub", MAIN)], None, None);
        if let Command::AddTrustPolicy { issuer: i, .. } = &mut command {
            *i = issuer.into();
        }
        given(world()).when(admin(), command).then_expect_error_kind(RejectionKind::Invalid);
    }
    let mut command = add(&[("sub", MAIN)], None, None);
    if let Command::AddTrustPolicy { issuer, .. } = &mut command {
        *issuer = "http://127.0.0.1:8080".into();
    }
    assert!(given(world()).when(admin(), command).outcome().is_ok());
}

#[test]
fn a_token_without_tokens_write_cannot_add_a_policy() {
    given(world())
        .when(as_token(account_id(OPS), token_id(1)), add(&[("sub", MAIN)], None, None))
        .then_expect_error_kind(RejectionKind::Forbidden);
}

#[test]
fn a_matching_oidc_token_is_exchanged_for_a_short_lived_token() {
    given(trusted())
        .when(Actor::System, exchange("j1", MAIN, None, None))
        .then_expect_events(vec![Event::TokenIssued {
            token_id: token_id(50),
            account_id: account_id(OPS),
            name: format!("oidc {MAIN}"),
            scopes: perms(&["certificates:issue"]),
            digest: digest("token-50"),
            expires_at: Some(t0() + TimeDelta::minutes(15)),
            allowed_cidrs: Vec::new(),
            rotated_from: None,
            parent: None,
            oidc: Some(OidcExchange {
                policy_id: policy_id(1),
                issuer: GITHUB.into(),
                subject: MAIN.into(),
                jti: "j1".into(),
                token_expires_at: t0() + TimeDelta::minutes(5),
            }),
        }]);
}

#[test]
fn only_latchd_itself_submits_an_exchange() {
    given(trusted())
        .when(admin(), exchange("j1", MAIN, None, None))
        .then_expect_error(DomainError::SystemOnly);
}

#[test]
fn claims_that_do_not_match_are_refused_naming_the_claim() {
    given(trusted())
        .when(Actor::System, exchange("j1", "repo:acme/deploy:ref:refs/heads/feature", None, None))
        .then_expect_error(DomainError::ClaimMismatch { claim: "sub".into() });
}

#[test]
fn a_replayed_jti_is_refused_until_its_token_expires() {
    let mut history = given(trusted());
    let first = history_exchange(&mut history);
    assert!(first.is_ok());
    let mut again = exchange("j1", MAIN, None, None);
    if let Command::ExchangeOidcToken { token_id: id, digest: d, .. } = &mut again {
        *id = token_id(51);
        *d = digest("token-51");
    }
    history.when_ref(Actor::System, again).then_expect_error(DomainError::JtiReplayed);
    // Once the OIDC token has expired its jti may not be presented again
    // anyway (latchd refuses expired tokens); the state forgets it.
    assert!(!history.state().jti_used(GITHUB, "j1", t0() + TimeDelta::minutes(6)));
}

fn history_exchange(history: &mut Given) -> Result<(), DomainError> {
    history.apply(Actor::System, exchange("j1", MAIN, None, None))
}

#[test]
fn a_removed_policy_matches_nothing() {
    let mut events = trusted();
    events.push(Event::TrustPolicyRemoved { policy_id: policy_id(1), account_id: account_id(OPS) });
    given(events)
        .when(Actor::System, exchange("j1", MAIN, None, None))
        .then_expect_error(DomainError::TrustPolicyNotFound(policy_id(1)));
}

#[test]
fn a_disabled_account_gets_no_token() {
    let mut events = trusted();
    events.push(Event::AccountDisabled { account_id: account_id(OPS), reason: "incident".into() });
    given(events)
        .when(Actor::System, exchange("j1", MAIN, None, None))
        .then_expect_error(DomainError::AccountDisabled(account_id(OPS)));
}

#[test]
fn scopes_wider_than_the_policy_and_ttls_longer_than_it_are_refused() {
    given(trusted())
        .when(Actor::System, exchange("j1", MAIN, Some(&["certificates:renew"]), None))
        .then_expect_error(DomainError::ScopeBeyondPolicy { beyond: "certificates:renew".into() });
    given(trusted())
        .when(Actor::System, exchange("j1", MAIN, None, Some(Span::minutes(16))))
        .then_expect_error_kind(RejectionKind::Invalid);
}

#[test]
fn the_wrong_issuer_or_audience_is_not_trusted() {
    let mut other_issuer = exchange("j1", MAIN, None, None);
    if let Command::ExchangeOidcToken { issuer, .. } = &mut other_issuer {
        *issuer = "https://gitlab.com".into();
    }
    given(trusted()).when(Actor::System, other_issuer).then_expect_error_kind(RejectionKind::Forbidden);
    let mut other_audience = exchange("j1", MAIN, None, None);
    if let Command::ExchangeOidcToken { audiences, .. } = &mut other_audience {
        *audiences = vec!["someone-else".into()];
    }
    given(trusted()).when(Actor::System, other_audience).then_expect_error_kind(RejectionKind::Forbidden);
}
