//! Given/when/then for leak reports: a reported token is revoked with
//! everything rotated or exchanged from it; unknown and revoked tokens
//! change nothing, so a report is idempotent and no oracle.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use support::*;

fn leak(seed: &str, source: &str, location: &str) -> LeakReport {
    LeakReport {
        digest: digest(seed),
        source: source.to_owned(),
        location: location.to_owned(),
    }
}

fn report(reports: Vec<LeakReport>) -> Command {
    Command::ReportLeaks { reports }
}

fn leak_reported(n: u128, source: &str, location: &str) -> Event {
    Event::TokenLeakReported {
        token_id: token_id(n),
        account_id: account_id(OPS),
        source: source.to_owned(),
        location: location.to_owned(),
    }
}

fn revoked(n: u128, reason: &str) -> Event {
    Event::TokenRevoked {
        token_id: token_id(n),
        account_id: account_id(OPS),
        reason: reason.to_owned(),
    }
}

/// Token 1 rotated itself to 8 (grace one hour), and 8 exchanged itself
/// for child 9.
fn rotated_and_exchanged() -> Given {
    rotated_by(as_token(account_id(OPS), token_id(1)))
}

/// The same, with token 1 rotated to 8 by `rotator`.
fn rotated_by(rotator: Actor) -> Given {
    given(world())
        .and_by(
            rotator,
            [
                issued_from(8, Some(1), None),
                Event::TokenRotated {
                    token_id: token_id(1),
                    account_id: account_id(OPS),
                    successor_id: token_id(8),
                    expires_at: t0() + TimeDelta::hours(1),
                },
            ],
        )
        .and_by(as_token(account_id(OPS), token_id(8)), [issued_from(9, None, Some(8))])
}

#[test]
fn a_reported_token_is_revoked_with_who_found_it_and_where() {
    let url = "https://github.com/acme/app/blob/abc/.env";
    given(world())
        .when(admin(), report(vec![leak("token-1", "github", url)]))
        .then_expect_events(vec![
            leak_reported(1, "github", url),
            revoked(1, &format!("leaked: reported by github at {url}")),
        ]);
}

#[test]
fn the_tokens_rotated_and_exchanged_from_a_leaked_token_go_with_it_but_not_its_predecessors() {
    let given = rotated_and_exchanged();
    // Token 1 leaked: whoever held it may have rotated it to 8, which
    // minted child 9.
    given
        .when_ref(admin(), report(vec![leak("token-1", "github", "")]))
        .then_expect_events(vec![
            leak_reported(1, "github", ""),
            revoked(1, "leaked: reported by github"),
            revoked(8, "leaked: reported by github"),
            revoked(9, &format!("exchanged from token {}, which was revoked or rotated", token_id(8))),
        ]);
    // Token 8 leaked: token 1 holds another secret and stays (in its grace).
    let events = given
        .when_ref(admin(), report(vec![leak("token-8", "scanner:gitleaks", "ci.yml:3")]))
        .outcome()
        .unwrap();
    assert!(!events.iter().any(|e| e.token_id() == Some(token_id(1))), "{events:?}");
    assert_eq!(events.len(), 3, "{events:?}");
}

#[test]
fn a_successor_someone_else_rotated_to_stays_when_the_old_token_leaks() {
    // An administrator rotated token 1 to 8 and handed 8 out; a former
    // holder of 1 publishing it must not end 8.
    rotated_by(admin())
        .when(admin(), report(vec![leak("token-1", "github", "")]))
        .then_expect_events(vec![
            leak_reported(1, "github", ""),
            revoked(1, "leaked: reported by github"),
        ]);
}

#[test]
fn unknown_and_already_revoked_tokens_change_nothing() {
    let mut history = world();
    history.push(revoked(1, "by hand"));
    given(history)
        .when(
            admin(),
            report(vec![leak("token-1", "github", ""), leak("never-issued", "github", "")]),
        )
        .then_expect_events(vec![]);
}

#[test]
fn the_same_report_twice_appends_once() {
    let mut given = given(world());
    given
        .apply(admin(), report(vec![leak("token-1", "gitlab", "x")]))
        .unwrap();
    given
        .when(admin(), report(vec![leak("token-1", "gitlab", "x")]))
        .then_expect_events(vec![]);
}

#[test]
fn a_token_named_twice_in_one_report_is_revoked_once() {
    given(world())
        .when(
            admin(),
            report(vec![leak("token-1", "github", "a"), leak("token-1", "github", "b")]),
        )
        .then_expect_events(vec![
            leak_reported(1, "github", "a"),
            revoked(1, "leaked: reported by github at a"),
        ]);
}

#[test]
fn reporting_needs_leaks_report() {
    given(world())
        .when(
            as_token(account_id(OPS), token_id(1)),
            report(vec![leak("token-1", "scanner:x", "")]),
        )
        .then_expect_error_kind(RejectionKind::Forbidden);
}

#[test]
fn a_report_without_a_source_or_with_too_many_tokens_is_refused() {
    given(world())
        .when(admin(), report(vec![leak("token-1", " ", "")]))
        .then_expect_error(DomainError::Empty { field: "source" });
    let many = (0..=MAX_LEAK_REPORTS).map(|n| leak(&format!("t{n}"), "github", "")).collect();
    given(world())
        .when(admin(), report(many))
        .then_expect_error(DomainError::TooMany {
            field: "reports",
            max: MAX_LEAK_REPORTS,
        });
}
