//! Given/when/then for the token commands.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

fn issue(n: u128, account: u128, scopes: Option<&[&str]>, ttl: Option<&str>) -> Command {
    Command::IssueToken {
        account_id: account_id(account),
        token_id: token_id(n),
        name: format!("token-{n}"),
        scopes: scopes.map(perms),
        ttl: ttl.map(|t| t.parse::<Ttl>().unwrap()),
        allowed_cidrs: Vec::new(),
        digest: digest(&format!("token-{n}")),
    }
}

fn ops() -> Actor {
    as_token(account_id(OPS), token_id(1))
}

#[test]
fn issue_token_within_the_role() {
    let mut expected = token_issued(7, OPS, &["certificates:renew"]);
    if let Event::TokenIssued { expires_at, .. } = &mut expected {
        *expires_at = Some(t0() + TimeDelta::hours(12));
    }
    given(world())
        .when(
            admin(),
            issue(7, OPS, Some(&["certificates:renew"]), Some("12h")),
        )
        .then_expect_events(vec![expected]);
}

#[test]
fn issue_token_defaults_to_the_role_and_the_default_ttl() {
    let expected = token_issued(
        7,
        OPS,
        &[
            "certificates:issue",
            "certificates:renew",
            "certificates:read",
        ],
    );
    given(world())
        .when(admin(), issue(7, OPS, None, None))
        .then_expect_events(vec![expected]);
}

#[test]
fn issue_token_rejects_scopes_beyond_the_role() {
    given(world())
        .when(admin(), issue(7, OPS, Some(&["certificates:*"]), None))
        .then_expect_error(DomainError::ScopeBeyondRole {
            role: role("cert-operator"),
            beyond: "certificates:*".into(),
        });
}

#[test]
fn issue_token_rejects_empty_scopes_and_names() {
    given(world())
        .when(admin(), issue(7, OPS, Some(&[]), None))
        .then_expect_error(DomainError::EmptyScopes);
    let mut command = issue(7, OPS, None, None);
    if let Command::IssueToken { name, .. } = &mut command {
        *name = String::new();
    }
    given(world())
        .when(admin(), command)
        .then_expect_error(DomainError::Empty { field: "name" });
}

#[test]
fn issue_token_cannot_grant_beyond_the_caller() {
    // ops holds tokens:write by a broader role but only certificates:issue
    // effectively: it may not mint certificates:renew for anyone.
    let mut events = world();
    events.push(Event::RoleDefined {
        name: role("issuer-admin"),
        permissions: perms(&["tokens:write", "certificates:*"]),
        description: String::new(),
    });
    events.push(account_created(2, "issuer", "issuer-admin"));
    events.push(token_issued(2, 2, &["tokens:write", "certificates:issue"]));
    given(events)
        .when(
            as_token(account_id(2), token_id(2)),
            issue(7, OPS, Some(&["certificates:renew"]), None),
        )
        .then_expect_error(DomainError::Escalation("certificates:renew".into()));
}

#[test]
fn issue_token_respects_max_ttl_from_role_override() {
    let mut events = world();
    events.push(cert_operator_max_ttl_30d());
    given(events)
        .when(admin(), issue(7, OPS, None, Some("31d")))
        .then_expect_error(beyond_max_ttl_30d("ttl 31d is longer than allowed"));
}

#[test]
fn issue_token_needs_an_active_account_and_fresh_ids() {
    let mut disabled = world();
    disabled.push(Event::AccountDisabled {
        account_id: account_id(OPS),
        reason: "x".into(),
    });
    given(disabled)
        .when(admin(), issue(7, OPS, None, None))
        .then_expect_error(DomainError::AccountDisabled(account_id(OPS)));
    given(world())
        .when(admin(), issue(7, 9, None, None))
        .then_expect_error(DomainError::AccountNotFound(account_id(9)));
    given(world())
        .when(admin(), issue(1, OPS, None, None))
        .then_expect_error(DomainError::TokenIdTaken(token_id(1)));
    given(world())
        .when(ops(), issue(7, OPS, None, None))
        .then_expect_error(DomainError::MissingPermission("tokens:write".into()));
}

#[test]
fn revoke_token_by_an_admin_or_by_itself() {
    let expected = vec![Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: "leaked".into(),
    }];
    given(world())
        .when(
            admin(),
            Command::RevokeToken {
                token_id: token_id(1),
                reason: "leaked".into(),
            },
        )
        .then_expect_events(expected.clone());
    given(world())
        .when(
            ops(),
            Command::RevokeToken {
                token_id: token_id(1),
                reason: "leaked".into(),
            },
        )
        .then_expect_events(expected);
}

#[test]
fn revoke_token_rejections() {
    given(world())
        .when(
            admin(),
            Command::RevokeToken {
                token_id: token_id(9),
                reason: String::new(),
            },
        )
        .then_expect_error(DomainError::TokenNotFound(token_id(9)));
    given(world())
        .when(
            ops(),
            Command::RevokeToken {
                token_id: token_id(0),
                reason: String::new(),
            },
        )
        .then_expect_error(DomainError::MissingPermission("tokens:write".into()));
    let mut events = world();
    events.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: String::new(),
    });
    given(events)
        .when(
            admin(),
            Command::RevokeToken {
                token_id: token_id(1),
                reason: String::new(),
            },
        )
        .then_expect_error(DomainError::TokenRevoked(token_id(1)));
}

fn rotate(old: u128, new: u128, grace: Option<&str>) -> Command {
    Command::RotateToken {
        token_id: token_id(old),
        successor_id: token_id(new),
        successor_digest: digest(&format!("token-{new}")),
        grace: grace.map(|g| Span::parse(g).unwrap()),
    }
}

#[test]
fn rotate_issues_a_successor_and_cuts_the_old_token_to_its_grace() {
    let now = t0() + TimeDelta::days(10);
    given(world())
        .when_at(ops(), now, rotate(1, 8, Some("15m")))
        .then_expect_events(rotated_1_to_8(now, now + TimeDelta::minutes(15)));
}

#[test]
fn rotate_grace_never_extends_the_old_token() {
    let now = t0() + TimeDelta::days(90) - TimeDelta::minutes(5);
    let events = given(world()).when_at(ops(), now, rotate(1, 8, None));
    let expected_cut = t0() + TimeDelta::days(90);
    events.then_expect_events(rotated_1_to_8(now, expected_cut));
}

#[test]
fn rotate_rejections() {
    let mut rotated = world();
    rotated.push(Event::TokenRotated {
        token_id: token_id(1),
        account_id: account_id(OPS),
        successor_id: token_id(8),
        expires_at: t0() + TimeDelta::hours(1),
    });
    given(rotated)
        .when(admin(), rotate(1, 9, None))
        .then_expect_error(DomainError::TokenAlreadyRotated {
            token: token_id(1),
            successor: token_id(8),
        });
    given(world())
        .when_at(admin(), t0() + TimeDelta::days(91), rotate(1, 9, None))
        .then_expect_error_kind(RejectionKind::Forbidden); // the admin token expired too
    let mut long_admin = world();
    long_admin[1] = Event::TokenIssued {
        token_id: token_id(0),
        account_id: account_id(ADMIN),
        name: "admin".into(),
        scopes: perms(&["*"]),
        digest: digest("token-0"),
        expires_at: Some(t0() + TimeDelta::days(365)),
        allowed_cidrs: Vec::new(),
        rotated_from: None,
        parent: None,
        oidc: None,
    };
    given(long_admin)
        .when_at(admin(), t0() + TimeDelta::days(91), rotate(1, 9, None))
        .then_expect_error(DomainError::TokenExpired {
            token: token_id(1),
            at: t0() + TimeDelta::days(90),
        });
    let mut revoked = world();
    revoked.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: String::new(),
    });
    given(revoked)
        .when(admin(), rotate(1, 9, None))
        .then_expect_error(DomainError::TokenRevoked(token_id(1)));
    given(world())
        .when(admin(), rotate(1, 0, None))
        .then_expect_error(DomainError::TokenIdTaken(token_id(0)));
    given(world())
        .when(ops(), rotate(0, 9, None))
        .then_expect_error(DomainError::MissingPermission("tokens:write".into()));
}

#[test]
fn tokens_that_never_expire_need_a_policy_that_allows_them() {
    given(world())
        .when(admin(), issue(7, OPS, None, Some("never")))
        .then_expect_error(DomainError::PolicyViolation {
            policy: "require_expiry",
            value: "true".into(),
            layer: "by default".into(),
            detail: "a token that never expires is not allowed".into(),
        });
    let mut lax = world();
    lax.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            require_expiry: Some(false),
            ..Default::default()
        },
    });
    let when = given(lax.clone()).when(admin(), issue(7, OPS, None, Some("never")));
    let Ok(events) = when.outcome() else {
        panic!("a never-expiring token is allowed once require_expiry is false")
    };
    assert!(matches!(
        &events[..],
        [Event::TokenIssued {
            expires_at: None,
            ..
        }]
    ));
    // A max_ttl still bounds every token.
    lax.push(cert_operator_max_ttl_30d());
    given(lax)
        .when(admin(), issue(7, OPS, None, Some("never")))
        .then_expect_error(beyond_max_ttl_30d(
            "a token that never expires is longer than allowed",
        ));
}

#[test]
fn an_account_holds_at_most_max_tokens_per_account_live_tokens() {
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            max_tokens_per_account: Some(1),
            ..Default::default()
        },
    });
    // The world's token 1 already belongs to OPS.
    given(events.clone())
        .when(admin(), issue(7, OPS, None, None))
        .then_expect_error(DomainError::PolicyViolation {
            policy: "max_tokens_per_account",
            value: "1".into(),
            layer: "globally".into(),
            detail: "account ci-deploy already holds 1 live token(s); revoke one first".into(),
        });
    events.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: String::new(),
    });
    assert!(
        given(events)
            .when(admin(), issue(7, OPS, None, None))
            .outcome()
            .is_ok(),
        "revoked tokens do not count"
    );
}

/// The cert-operator role's override: tokens live at most 30 days.
fn cert_operator_max_ttl_30d() -> Event {
    Event::PolicyUpdated {
        role: Some(role("cert-operator")),
        settings: PolicySettings {
            max_ttl: Some(Span::days(30)),
            default_ttl: Some(Span::days(7)),
            ..Default::default()
        },
    }
}

fn beyond_max_ttl_30d(detail: &str) -> DomainError {
    DomainError::PolicyViolation {
        policy: "max_ttl",
        value: "30d".into(),
        layer: "for role cert-operator".into(),
        detail: detail.into(),
    }
}

/// Token 1 rotated to token 8 at `now`: the successor lives the original's
/// 90 days; the old token now ends at `old_ends`.
fn rotated_1_to_8(
    now: chrono::DateTime<chrono::Utc>,
    old_ends: chrono::DateTime<chrono::Utc>,
) -> Vec<Event> {
    vec![
        Event::TokenIssued {
            token_id: token_id(8),
            account_id: account_id(OPS),
            name: "token-1".into(),
            scopes: perms(&["certificates:issue"]),
            digest: digest("token-8"),
            expires_at: Some(now + TimeDelta::days(90)),
            allowed_cidrs: Vec::new(),
            rotated_from: Some(token_id(1)),
            parent: None,
            oidc: None,
        },
        Event::TokenRotated {
            token_id: token_id(1),
            account_id: account_id(OPS),
            successor_id: token_id(8),
            expires_at: old_ends,
        },
    ]
}
