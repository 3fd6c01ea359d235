//! Given/when/then for the account commands.

mod support;

use latch_core::*;
use support::*;

fn create(n: u128, account_name: &str, role_name: &str) -> Command {
    Command::CreateAccount {
        account_id: account_id(n),
        name: name(account_name),
        role: role(role_name),
        description: String::new(),
    }
}

#[test]
fn create_account_records_it() {
    given(world())
        .when(admin(), create(7, "provisioner", "cert-operator"))
        .then_expect_events(vec![account_created(7, "provisioner", "cert-operator")]);
}

#[test]
fn create_account_rejects_a_taken_name() {
    given(world())
        .when(admin(), create(7, "ci-deploy", "cert-operator"))
        .then_expect_error(DomainError::AccountNameTaken(name("ci-deploy")));
}

#[test]
fn create_account_rejects_a_taken_id() {
    given(world())
        .when(admin(), create(OPS, "other", "auditor"))
        .then_expect_error(DomainError::AccountIdTaken(account_id(OPS)));
}

#[test]
fn create_account_rejects_an_unknown_role() {
    given(world())
        .when(admin(), create(7, "x", "wizard"))
        .then_expect_error(DomainError::UnknownRole(role("wizard")));
}

#[test]
fn create_account_rejects_an_overlong_description() {
    let command = Command::CreateAccount {
        account_id: account_id(7),
        name: name("x"),
        role: role("auditor"),
        description: "d".repeat(MAX_TEXT + 1),
    };
    given(world())
        .when(admin(), command)
        .then_expect_error(DomainError::TooLong {
            field: "description",
            max: MAX_TEXT,
        });
}

#[test]
fn create_account_needs_accounts_write() {
    given(world())
        .when(
            as_token(account_id(OPS), token_id(1)),
            create(7, "x", "cert-operator"),
        )
        .then_expect_error(DomainError::MissingPermission("accounts:write".into()));
}

#[test]
fn create_account_cannot_hand_out_a_bigger_role_than_the_caller_holds() {
    // An account manager with accounts:write only may not mint admins.
    let manager_role = Event::RoleDefined {
        name: role("account-manager"),
        permissions: perms(&["accounts:write"]),
        description: String::new(),
    };
    let mut events = world();
    events.extend([
        manager_role,
        account_created(2, "manager", "account-manager"),
        token_issued(2, 2, &["accounts:write"]),
    ]);
    given(events)
        .when(
            as_token(account_id(2), token_id(2)),
            create(7, "sneaky", "admin"),
        )
        .then_expect_error(DomainError::Escalation("*".into()));
}

#[test]
fn an_inactive_caller_is_refused_even_after_authentication() {
    let mut events = world();
    events.push(Event::TokenRevoked {
        token_id: token_id(0),
        account_id: account_id(ADMIN),
        reason: String::new(),
    });
    given(events)
        .when(admin(), create(7, "x", "auditor"))
        .then_expect_error(DomainError::ActorInactive);
}

#[test]
fn an_expired_caller_is_refused() {
    given(world())
        .when_at(
            admin(),
            t0() + chrono::TimeDelta::days(91),
            create(7, "x", "auditor"),
        )
        .then_expect_error(DomainError::ActorInactive);
}

#[test]
fn update_account_records_only_what_changed() {
    let command = Command::UpdateAccount {
        account_id: account_id(OPS),
        role: Some(role("auditor")),
        description: Some(String::new()),
    };
    given(world())
        .when(admin(), command)
        .then_expect_events(vec![Event::AccountUpdated {
            account_id: account_id(OPS),
            role: Some(role("auditor")),
            description: None,
        }]);
}

#[test]
fn update_account_with_nothing_new_records_nothing() {
    let command = Command::UpdateAccount {
        account_id: account_id(OPS),
        role: Some(role("cert-operator")),
        description: None,
    };
    given(world())
        .when(admin(), command)
        .then_expect_events(vec![]);
}

#[test]
fn update_account_rejects_unknown_account_and_role() {
    given(world())
        .when(
            admin(),
            Command::UpdateAccount {
                account_id: account_id(9),
                role: None,
                description: None,
            },
        )
        .then_expect_error(DomainError::AccountNotFound(account_id(9)));
    given(world())
        .when(
            admin(),
            Command::UpdateAccount {
                account_id: account_id(OPS),
                role: Some(role("wizard")),
                description: None,
            },
        )
        .then_expect_error(DomainError::UnknownRole(role("wizard")));
}

#[test]
fn disable_account_needs_a_reason_and_an_active_account() {
    let disable = |reason: &str| Command::DisableAccount {
        account_id: account_id(OPS),
        reason: reason.into(),
    };
    given(world())
        .when(admin(), disable("leak suspected"))
        .then_expect_events(vec![Event::AccountDisabled {
            account_id: account_id(OPS),
            reason: "leak suspected".into(),
        }]);
    given(world())
        .when(admin(), disable("  "))
        .then_expect_error(DomainError::Empty { field: "reason" });
    let mut events = world();
    events.push(Event::AccountDisabled {
        account_id: account_id(OPS),
        reason: "x".into(),
    });
    given(events)
        .when(admin(), disable("again"))
        .then_expect_error(DomainError::AccountDisabled(account_id(OPS)));
}

#[test]
fn enable_account_restores_only_a_disabled_one() {
    let enable = Command::EnableAccount {
        account_id: account_id(OPS),
    };
    given(world())
        .when(admin(), enable.clone())
        .then_expect_error(DomainError::AccountNotDisabled(account_id(OPS)));
    let mut events = world();
    events.push(Event::AccountDisabled {
        account_id: account_id(OPS),
        reason: "x".into(),
    });
    given(events)
        .when(admin(), enable)
        .then_expect_events(vec![Event::AccountEnabled {
            account_id: account_id(OPS),
        }]);
}

#[test]
fn delete_account_revokes_every_live_token_first() {
    let mut events = world();
    events.push(token_issued(5, OPS, &["certificates:read"]));
    events.push(Event::TokenRevoked {
        token_id: token_id(5),
        account_id: account_id(OPS),
        reason: "old".into(),
    });
    events.push(token_issued(6, OPS, &["certificates:renew"]));
    given(events)
        .when(
            admin(),
            Command::DeleteAccount {
                account_id: account_id(OPS),
            },
        )
        .then_expect_events(vec![
            Event::TokenRevoked {
                token_id: token_id(1),
                account_id: account_id(OPS),
                reason: "account deleted".into(),
            },
            Event::TokenRevoked {
                token_id: token_id(6),
                account_id: account_id(OPS),
                reason: "account deleted".into(),
            },
            Event::AccountDeleted {
                account_id: account_id(OPS),
            },
        ]);
}

#[test]
fn a_deleted_account_is_final() {
    let mut events = world();
    events.push(Event::AccountDeleted {
        account_id: account_id(OPS),
    });
    for command in [
        Command::DeleteAccount {
            account_id: account_id(OPS),
        },
        Command::EnableAccount {
            account_id: account_id(OPS),
        },
        Command::DisableAccount {
            account_id: account_id(OPS),
            reason: "x".into(),
        },
        Command::UpdateAccount {
            account_id: account_id(OPS),
            role: Some(role("auditor")),
            description: None,
        },
    ] {
        given(events.clone())
            .when(admin(), command)
            .then_expect_error(DomainError::AccountDeleted(account_id(OPS)));
    }
    // The name stays reserved.
    given(events)
        .when(admin(), create(8, "ci-deploy", "auditor"))
        .then_expect_error(DomainError::AccountNameTaken(name("ci-deploy")));
}
