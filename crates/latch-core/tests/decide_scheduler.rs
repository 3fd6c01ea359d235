//! Given/when/then for the scheduler's time-based commands.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

const EXPIRY_DAYS: i64 = 90;

fn expires_at() -> chrono::DateTime<chrono::Utc> {
    t0() + TimeDelta::days(EXPIRY_DAYS)
}

#[test]
fn expiring_is_noted_once_after_the_warning_starts() {
    let warning_starts = expires_at() - TimeDelta::days(7);
    let note = Command::NoteTokenExpiring {
        token_id: token_id(1),
    };
    given(world())
        .when_at(
            Actor::System,
            warning_starts - TimeDelta::seconds(1),
            note.clone(),
        )
        .then_expect_error(DomainError::NotDue {
            token: token_id(1),
            event: "token.expiring",
            due: warning_starts,
        });
    given(world())
        .when_at(Actor::System, warning_starts, note.clone())
        .then_expect_events(vec![Event::TokenExpiring {
            token_id: token_id(1),
            account_id: account_id(OPS),
            expires_at: expires_at(),
        }]);
    let mut events = world();
    events.push(Event::TokenExpiring {
        token_id: token_id(1),
        account_id: account_id(OPS),
        expires_at: expires_at(),
    });
    given(events)
        .when_at(Actor::System, warning_starts, note.clone())
        .then_expect_error(DomainError::AlreadyNoted {
            token: token_id(1),
            event: "token.expiring",
        });
    given(world())
        .when_at(Actor::System, expires_at(), note)
        .then_expect_error(DomainError::NotApplicable {
            token: token_id(1),
            event: "token.expiring",
            why: "already expired",
        });
}

#[test]
fn expired_is_noted_once_at_expiry() {
    let note = Command::NoteTokenExpired {
        token_id: token_id(1),
    };
    given(world())
        .when_at(
            Actor::System,
            expires_at() - TimeDelta::seconds(1),
            note.clone(),
        )
        .then_expect_error(DomainError::NotDue {
            token: token_id(1),
            event: "token.expired",
            due: expires_at(),
        });
    given(world())
        .when_at(Actor::System, expires_at(), note.clone())
        .then_expect_events(vec![Event::TokenExpired {
            token_id: token_id(1),
            account_id: account_id(OPS),
            expires_at: expires_at(),
        }]);
    let mut events = world();
    events.push(Event::TokenExpired {
        token_id: token_id(1),
        account_id: account_id(OPS),
        expires_at: expires_at(),
    });
    given(events)
        .when_at(Actor::System, expires_at(), note)
        .then_expect_error(DomainError::AlreadyNoted {
            token: token_id(1),
            event: "token.expired",
        });
}

#[test]
fn rotation_due_follows_the_rotation_period() {
    let note = Command::NoteTokenRotationDue {
        token_id: token_id(1),
    };
    given(world())
        .when(Actor::System, note.clone())
        .then_expect_error(DomainError::NotApplicable {
            token: token_id(1),
            event: "token.rotation_due",
            why: "no rotation_period in policy",
        });
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            rotation_period: Some(Span::days(30)),
            ..Default::default()
        },
    });
    let due = t0() + TimeDelta::days(30);
    given(events.clone())
        .when_at(Actor::System, due - TimeDelta::seconds(1), note.clone())
        .then_expect_error(DomainError::NotDue {
            token: token_id(1),
            event: "token.rotation_due",
            due,
        });
    given(events.clone())
        .when_at(Actor::System, due, note.clone())
        .then_expect_events(vec![Event::TokenRotationDue {
            token_id: token_id(1),
            account_id: account_id(OPS),
            issued_at: t0(),
        }]);
    events.push(Event::TokenRotationDue {
        token_id: token_id(1),
        account_id: account_id(OPS),
        issued_at: t0(),
    });
    given(events)
        .when_at(Actor::System, due, note)
        .then_expect_error(DomainError::AlreadyNoted {
            token: token_id(1),
            event: "token.rotation_due",
        });
}

#[test]
fn only_the_scheduler_notes_time_and_never_for_revoked_tokens() {
    given(world())
        .when_at(
            admin(),
            expires_at() - TimeDelta::days(1),
            Command::NoteTokenExpired {
                token_id: token_id(1),
            },
        )
        .then_expect_error(DomainError::SystemOnly);
    let mut events = world();
    events.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: String::new(),
    });
    given(events)
        .when_at(
            Actor::System,
            expires_at(),
            Command::NoteTokenExpired {
                token_id: token_id(1),
            },
        )
        .then_expect_error(DomainError::NotApplicable {
            token: token_id(1),
            event: "token.expired",
            why: "revoked",
        });
    given(world())
        .when(
            Actor::System,
            Command::NoteTokenExpired {
                token_id: token_id(9),
            },
        )
        .then_expect_error(DomainError::TokenNotFound(token_id(9)));
}
