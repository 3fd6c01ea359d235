//! Given/when/then for roles and policy.

mod support;

use latch_core::*;
use support::*;

fn define(role_name: &str, permissions: &[&str]) -> Command {
    Command::DefineRole {
        name: role(role_name),
        permissions: perms(permissions),
        description: String::new(),
    }
}

#[test]
fn define_role_records_it() {
    given(world())
        .when(admin(), define("reader", &["certificates:read"]))
        .then_expect_events(vec![Event::RoleDefined {
            name: role("reader"),
            permissions: perms(&["certificates:read"]),
            description: String::new(),
        }]);
}

#[test]
fn redefining_a_role_identically_records_nothing() {
    let same = Command::DefineRole {
        name: role("cert-operator"),
        permissions: perms(&[
            "certificates:read",
            "certificates:renew",
            "certificates:issue",
        ]),
        description: "issues and renews certificates".into(),
    };
    given(world())
        .when(admin(), same)
        .then_expect_events(vec![]);
}

#[test]
fn define_role_rejections() {
    given(world())
        .when(admin(), define("admin", &["x:y"]))
        .then_expect_error(DomainError::BuiltinRole(role("admin")));
    given(world())
        .when(admin(), define("empty", &[]))
        .then_expect_error(DomainError::EmptyRole);
    let ops = as_token(account_id(OPS), token_id(1));
    given(world())
        .when(ops, define("x", &["certificates:issue"]))
        .then_expect_error(DomainError::MissingPermission("roles:write".into()));
}

#[test]
fn define_role_cannot_exceed_the_caller() {
    let mut events = world();
    events.push(Event::RoleDefined {
        name: role("role-admin"),
        permissions: perms(&["roles:write", "certificates:read"]),
        description: String::new(),
    });
    events.push(account_created(2, "roles", "role-admin"));
    events.push(token_issued(2, 2, &["roles:write", "certificates:read"]));
    given(events)
        .when(
            as_token(account_id(2), token_id(2)),
            define("bigger", &["certificates:*", "certificates:read"]),
        )
        .then_expect_error(DomainError::Escalation("certificates:*".into()));
}

#[test]
fn delete_role_only_when_unused_and_not_builtin() {
    given(world())
        .when(
            admin(),
            Command::DeleteRole {
                name: role("cert-operator"),
            },
        )
        .then_expect_error(DomainError::RoleInUse {
            role: role("cert-operator"),
            accounts: 1,
        });
    given(world())
        .when(
            admin(),
            Command::DeleteRole {
                name: role("auditor"),
            },
        )
        .then_expect_error(DomainError::BuiltinRole(role("auditor")));
    given(world())
        .when(
            admin(),
            Command::DeleteRole {
                name: role("ghost"),
            },
        )
        .then_expect_error(DomainError::RoleNotFound(role("ghost")));
    let mut events = world();
    events.push(Event::AccountDeleted {
        account_id: account_id(OPS),
    });
    given(events)
        .when(
            admin(),
            Command::DeleteRole {
                name: role("cert-operator"),
            },
        )
        .then_expect_events(vec![Event::RoleDeleted {
            name: role("cert-operator"),
        }]);
}

#[test]
fn set_policy_globally_and_per_role() {
    let settings = PolicySettings {
        max_ttl: Some(Span::days(30)),
        default_ttl: Some(Span::days(7)),
        ..Default::default()
    };
    given(world())
        .when(
            admin(),
            Command::SetPolicy {
                role: None,
                settings: settings.clone(),
            },
        )
        .then_expect_events(vec![Event::PolicyUpdated {
            role: None,
            settings: settings.clone(),
        }]);
    given(world())
        .when(
            admin(),
            Command::SetPolicy {
                role: Some(role("cert-operator")),
                settings: settings.clone(),
            },
        )
        .then_expect_events(vec![Event::PolicyUpdated {
            role: Some(role("cert-operator")),
            settings,
        }]);
}

#[test]
fn a_max_ttl_below_the_built_in_default_caps_the_default() {
    // Nobody set default_ttl: the built-in 90d is capped at the max, so a
    // lower max_ttl alone is a valid policy, globally and per role.
    let only_max = PolicySettings {
        max_ttl: Some(Span::days(30)),
        ..Default::default()
    };
    for role_name in [None, Some(role("cert-operator"))] {
        given(world())
            .when(
                admin(),
                Command::SetPolicy {
                    role: role_name.clone(),
                    settings: only_max.clone(),
                },
            )
            .then_expect_events(vec![Event::PolicyUpdated {
                role: role_name,
                settings: only_max.clone(),
            }]);
    }
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: Some(role("cert-operator")),
        settings: only_max.clone(),
    });
    let given = given(events);
    let policy = given.state().effective_policy(&role("cert-operator"));
    assert_eq!(policy.default_ttl, Span::days(30));
    assert_eq!(policy.max_ttl, Some(Span::days(30)));
}

#[test]
fn an_explicit_default_ttl_above_max_ttl_is_refused() {
    let explicit = PolicySettings {
        max_ttl: Some(Span::days(30)),
        default_ttl: Some(Span::days(90)),
        ..Default::default()
    };
    given(world())
        .when(
            admin(),
            Command::SetPolicy {
                role: None,
                settings: explicit,
            },
        )
        .then_expect_error(DomainError::InconsistentPolicy(
            "default_ttl 90d exceeds max_ttl 30d".into(),
        ));
}

#[test]
fn set_policy_rejections() {
    given(world())
        .when(
            admin(),
            Command::SetPolicy {
                role: Some(role("ghost")),
                settings: PolicySettings::default(),
            },
        )
        .then_expect_error(DomainError::UnknownRole(role("ghost")));
    let ops = as_token(account_id(OPS), token_id(1));
    given(world())
        .when(
            ops,
            Command::SetPolicy {
                role: None,
                settings: PolicySettings::default(),
            },
        )
        .then_expect_error(DomainError::MissingPermission("policy:write".into()));
    // A global change may not break an existing role override.
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: Some(role("cert-operator")),
        settings: PolicySettings {
            default_ttl: Some(Span::days(60)),
            ..Default::default()
        },
    });
    let global = PolicySettings {
        max_ttl: Some(Span::days(30)),
        default_ttl: Some(Span::days(7)),
        ..Default::default()
    };
    given(events)
        .when(
            admin(),
            Command::SetPolicy {
                role: None,
                settings: global,
            },
        )
        .then_expect_error(DomainError::InconsistentPolicy(
            "for role cert-operator: default_ttl 60d exceeds max_ttl 30d".into(),
        ));
}
