//! Given/when/then for the rules that keep a weak or leaked token from
//! taking over or locking out (issue 15, findings 4 and 5): acting on an
//! account or token needs the permissions it holds, the last admin stays,
//! rotation stays within policy, and a leak revokes a whole family.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

const MANAGER: u128 = 2;
const OTHER_ADMIN: u128 = 3;

/// `world()` plus an account manager (accounts:write tokens:write only)
/// holding token 2.
fn with_manager() -> Vec<Event> {
    let mut events = world();
    events.extend([
        Event::RoleDefined {
            name: role("account-manager"),
            permissions: perms(&["accounts:write", "tokens:write", "accounts:read"]),
            description: String::new(),
        },
        account_created(MANAGER, "manager", "account-manager"),
        token_issued(2, MANAGER, &["accounts:write", "tokens:write", "accounts:read"]),
    ]);
    events
}

fn manager() -> Actor {
    as_token(account_id(MANAGER), token_id(2))
}

#[test]
fn an_account_manager_cannot_disable_the_admin() {
    let error = given(with_manager())
        .when(
            manager(),
            Command::DisableAccount {
                account_id: account_id(ADMIN),
                reason: "bye".into(),
            },
        )
        .then_expect_error_kind(RejectionKind::Forbidden);
    assert!(matches!(error, DomainError::Outranked { .. }), "{error:?}");
}

#[test]
fn an_account_manager_cannot_delete_demote_or_enable_an_admin() {
    for command in [
        Command::DeleteAccount {
            account_id: account_id(ADMIN),
        },
        Command::UpdateAccount {
            account_id: account_id(ADMIN),
            role: Some(role("auditor")),
            description: None,
        },
        Command::UpdateAccount {
            account_id: account_id(ADMIN),
            role: None,
            description: Some("owned".into()),
        },
        Command::EnableAccount {
            account_id: account_id(ADMIN),
        },
    ] {
        let error = given(with_manager())
            .when(manager(), command.clone())
            .then_expect_error_kind(RejectionKind::Forbidden);
        assert!(
            matches!(error, DomainError::Outranked { .. }),
            "{command:?}: {error:?}"
        );
    }
}

#[test]
fn an_account_manager_still_manages_accounts_it_outranks() {
    let mut events = with_manager();
    events.extend([
        Event::RoleDefined {
            name: role("reader"),
            permissions: perms(&["accounts:read"]),
            description: String::new(),
        },
        account_created(4, "intern", "reader"),
    ]);
    given(events)
        .when(
            manager(),
            Command::DisableAccount {
                account_id: account_id(4),
                reason: "rotation of staff".into(),
            },
        )
        .then_expect_events(vec![Event::AccountDisabled {
            account_id: account_id(4),
            reason: "rotation of staff".into(),
        }]);
}

#[test]
fn a_token_writer_cannot_revoke_a_stronger_token_but_can_revoke_itself() {
    let error = given(with_manager())
        .when(
            manager(),
            Command::RevokeToken {
                token_id: token_id(0),
                reason: "lock-out".into(),
            },
        )
        .then_expect_error_kind(RejectionKind::Forbidden);
    assert!(matches!(error, DomainError::Outranked { .. }), "{error:?}");
    given(with_manager())
        .when(
            manager(),
            Command::RevokeToken {
                token_id: token_id(2),
                reason: String::new(),
            },
        )
        .then_expect_events(vec![Event::TokenRevoked {
            token_id: token_id(2),
            account_id: account_id(MANAGER),
            reason: String::new(),
        }]);
}

#[test]
fn the_last_admin_cannot_disable_delete_or_demote_itself() {
    for command in [
        Command::DisableAccount {
            account_id: account_id(ADMIN),
            reason: "oops".into(),
        },
        Command::DeleteAccount {
            account_id: account_id(ADMIN),
        },
        Command::UpdateAccount {
            account_id: account_id(ADMIN),
            role: Some(role("auditor")),
            description: None,
        },
    ] {
        given(world())
            .when(admin(), command.clone())
            .then_expect_error(DomainError::LastAdmin(name("admin")));
    }
}

#[test]
fn an_admin_can_go_once_another_active_admin_exists() {
    let mut events = world();
    events.push(account_created(OTHER_ADMIN, "admin-2", "admin"));
    given(events.clone())
        .when(
            admin(),
            Command::DeleteAccount {
                account_id: account_id(ADMIN),
            },
        )
        .outcome()
        .expect("another admin remains");
    // A disabled second admin does not count.
    events.push(Event::AccountDisabled {
        account_id: account_id(OTHER_ADMIN),
        reason: "on leave".into(),
    });
    given(events)
        .when(
            admin(),
            Command::DeleteAccount {
                account_id: account_id(ADMIN),
            },
        )
        .then_expect_error(DomainError::LastAdmin(name("admin")));
}

#[test]
fn a_custom_role_holding_star_cannot_be_redefined_without_it_when_it_holds_the_last_admins() {
    let superuser = |permissions: &[&str]| Event::RoleDefined {
        name: role("superuser"),
        permissions: perms(permissions),
        description: String::new(),
    };
    let events = vec![
        superuser(&["*"]),
        account_created(OTHER_ADMIN, "root", "superuser"),
        token_issued(3, OTHER_ADMIN, &["*"]),
    ];
    let root = as_token(account_id(OTHER_ADMIN), token_id(3));
    given(events)
        .when(
            root,
            Command::DefineRole {
                name: role("superuser"),
                permissions: perms(&["accounts:read"]),
                description: String::new(),
            },
        )
        .then_expect_error(DomainError::LastAdmin(name("root")));
}

fn rotate(token: u128, successor: u128, grace: Option<&str>) -> Command {
    Command::RotateToken {
        token_id: token_id(token),
        successor_id: token_id(successor),
        successor_digest: digest(&format!("successor-{successor}")),
        grace: grace.map(|g| Span::parse(g).unwrap()),
    }
}

fn ci() -> Actor {
    as_token(account_id(OPS), token_id(1))
}

#[test]
fn a_self_rotation_cannot_ask_for_more_grace_than_policy_allows() {
    let error = given(world())
        .when(ci(), rotate(1, 10, Some("36500d")))
        .then_expect_error_kind(RejectionKind::Invalid);
    match error {
        DomainError::PolicyViolation { policy, .. } => assert_eq!(policy, "rotation_grace"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn repeated_self_rotations_leave_at_most_one_token_in_grace() {
    let mut events = world();
    let rotated = given(events.clone())
        .when(ci(), rotate(1, 10, None))
        .outcome()
        .expect("the first rotation");
    assert_eq!(rotated.len(), 2, "{rotated:?}");
    events.extend(rotated);
    // Rotating the successor while 1 is still in its grace ends that grace.
    let again = given(events)
        .when(as_token(account_id(OPS), token_id(10)), rotate(10, 11, None))
        .outcome()
        .expect("the second rotation");
    assert_eq!(
        again.last(),
        Some(&Event::TokenRevoked {
            token_id: token_id(1),
            account_id: account_id(OPS),
            reason: format!(
                "rotation grace ended early: its successor {} was rotated again",
                token_id(10)
            ),
        })
    );
}

#[test]
fn an_account_over_its_token_limit_cannot_rotate_until_it_sheds_one() {
    let mut events = world();
    events.push(token_issued(5, OPS, &["certificates:issue"]));
    events.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            max_tokens_per_account: Some(1),
            ..Default::default()
        },
    });
    let error = given(events)
        .when(ci(), rotate(1, 10, None))
        .then_expect_error_kind(RejectionKind::Invalid);
    match error {
        DomainError::PolicyViolation { policy, .. } => {
            assert_eq!(policy, "max_tokens_per_account")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn revoking_a_family_takes_every_live_token_it_was_rotated_from_or_to() {
    let mut events = world();
    // 1 -> 10 -> 11, rotated by the token itself each time (grace: default;
    // the second rotation ends 1's grace, so 1 is already revoked).
    for (from, to) in [(1, 10), (10, 11)] {
        let rotated = given(events.clone())
            .when(as_token(account_id(OPS), token_id(from)), rotate(from, to, None))
            .outcome()
            .expect("rotation");
        events.extend(rotated);
    }
    // Revoking one alone leaves its successor working.
    given(events.clone())
        .when(
            admin(),
            Command::RevokeToken {
                token_id: token_id(10),
                reason: "leaked".into(),
            },
        )
        .then_expect_events(vec![Event::TokenRevoked {
            token_id: token_id(10),
            account_id: account_id(OPS),
            reason: "leaked".into(),
        }]);
    // The family revocation, asked about the middle one, takes all three.
    let revoked = |n| Event::TokenRevoked {
        token_id: token_id(n),
        account_id: account_id(OPS),
        reason: "leaked".into(),
    };
    given(events)
        .when_at(
            admin(),
            t0() + TimeDelta::minutes(1),
            Command::RevokeTokenFamily {
                token_id: token_id(10),
                reason: "leaked".into(),
            },
        )
        .then_expect_events(vec![revoked(10), revoked(11)]);
}

#[test]
fn a_family_revocation_needs_the_family_scopes_unless_it_is_the_caller_s_own() {
    let error = given(with_manager())
        .when(
            manager(),
            Command::RevokeTokenFamily {
                token_id: token_id(0),
                reason: String::new(),
            },
        )
        .then_expect_error_kind(RejectionKind::Forbidden);
    assert!(matches!(error, DomainError::Outranked { .. }), "{error:?}");
}

#[test]
fn a_replay_is_authorized_as_if_asked_now() {
    // `authorize` is what the command handler checks before it answers an
    // idempotent replay: a token that lost tokens:write gets nothing back.
    let mut events = with_manager();
    let issue = Command::IssueToken {
        account_id: account_id(OPS),
        token_id: token_id(20),
        name: "deploy".into(),
        scopes: None,
        ttl: None,
        allowed_cidrs: Vec::new(),
        digest: digest("t20"),
    };
    let ctx = CommandContext {
        actor: manager(),
        now: t0(),
    };
    let state = given(events.clone());
    assert_eq!(authorize(state.state(), &ctx, &issue), Ok(()));
    events.push(Event::RoleDefined {
        name: role("account-manager"),
        permissions: perms(&["accounts:read"]),
        description: String::new(),
    });
    let state = given(events);
    assert_eq!(
        authorize(state.state(), &ctx, &issue),
        Err(DomainError::MissingPermission("tokens:write".into()))
    );
}
