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

#[test]
fn no_expiry_warning_for_tokens_that_never_expire_were_rotated_or_live_shorter_than_the_warning() {
    let why = "never expires, was rotated, or lives shorter than the expiry warning";
    let note = |n| Command::NoteTokenExpiring {
        token_id: token_id(n),
    };
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            require_expiry: Some(false),
            ..Default::default()
        },
    });
    let mut forever = token_issued(2, OPS, &["certificates:renew"]);
    if let Event::TokenIssued { expires_at, .. } = &mut forever {
        *expires_at = None;
    }
    let mut short = token_issued(3, OPS, &["certificates:renew"]);
    if let Event::TokenIssued { expires_at, .. } = &mut short {
        *expires_at = Some(t0() + TimeDelta::days(3));
    }
    events.extend([forever, short]);
    events.push(Event::TokenRotated {
        token_id: token_id(1),
        account_id: account_id(OPS),
        successor_id: token_id(4),
        expires_at: t0() + TimeDelta::days(10),
    });
    let later = t0() + TimeDelta::days(5);
    for n in [1, 2, 3] {
        given(events.clone())
            .when_at(Actor::System, later, note(n))
            .then_expect_error(DomainError::NotApplicable {
                token: token_id(n),
                event: "token.expiring",
                why,
            });
    }
    given(events)
        .when_at(
            Actor::System,
            t0() + TimeDelta::days(3650),
            Command::NoteTokenExpired {
                token_id: token_id(2),
            },
        )
        .then_expect_error(DomainError::NotApplicable {
            token: token_id(2),
            event: "token.expired",
            why: "never expires",
        });
}

#[test]
fn the_schedule_lists_what_decide_will_accept_when_it_falls_due() {
    let mut events = world();
    events.push(Event::PolicyUpdated {
        role: None,
        settings: PolicySettings {
            rotation_period: Some(Span::days(30)),
            ..Default::default()
        },
    });
    let state = given(events.clone()).state().clone();
    let token = state.token(token_id(1)).unwrap();
    let notes = scheduled_notes(&state, token);
    let expected_times = [
        t0() + TimeDelta::days(30),
        expires_at() - TimeDelta::days(7),
        expires_at(),
    ];
    assert_eq!(
        notes.iter().map(|n| n.at).collect::<Vec<_>>(),
        expected_times
    );
    for note in &notes {
        given(events.clone())
            .when_at(
                Actor::System,
                note.at - TimeDelta::seconds(1),
                note.command.clone(),
            )
            .then_expect_error_kind(RejectionKind::Conflict);
        assert!(
            given(events.clone())
                .when_at(Actor::System, note.at, note.command.clone())
                .outcome()
                .is_ok(),
            "{:?} at {}",
            note.command,
            note.at
        );
    }
    // Once noted, or once revoked, nothing is left.
    events.push(Event::TokenRevoked {
        token_id: token_id(1),
        account_id: account_id(OPS),
        reason: String::new(),
    });
    let state = given(events).state().clone();
    assert!(scheduled_notes(&state, state.token(token_id(1)).unwrap()).is_empty());
}
