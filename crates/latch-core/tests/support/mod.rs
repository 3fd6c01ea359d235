//! A given/when/then harness for `decide`, after cqrs-es's `TestFramework`:
//! given these events, when this command (by this actor, at this time),
//! then these events or this error.
#![allow(dead_code)]

use chrono::{DateTime, TimeZone, Utc};
use latch_core::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

pub fn perms(texts: &[&str]) -> PermissionSet {
    PermissionSet::parse(texts).unwrap()
}

pub fn role(name: &str) -> RoleName {
    RoleName::parse(name).unwrap()
}

pub fn name(text: &str) -> AccountName {
    AccountName::parse(text).unwrap()
}

pub fn digest(seed: &str) -> TokenDigest {
    TokenDigest::of(seed)
}

/// Fixed ids, so expected events can be written out in full.
pub fn account_id(n: u128) -> AccountId {
    AccountId::from_uuid(uuid::Uuid::from_u128(0xA000 + n))
}
pub fn token_id(n: u128) -> TokenId {
    TokenId::from_uuid(uuid::Uuid::from_u128(0x7000 + n))
}

pub fn as_token(account: AccountId, token: TokenId) -> Actor {
    Actor::Token {
        account_id: account,
        token_id: token,
    }
}

pub struct Given {
    state: State,
    position: u64,
}

/// Events the state is built from, all recorded at `t0()` by `System`.
pub fn given(events: impl IntoIterator<Item = Event>) -> Given {
    let mut g = Given {
        state: State::new(),
        position: 0,
    };
    for event in events {
        g.record(event, Actor::System, t0());
    }
    g
}

impl Given {
    pub fn and_at(mut self, at: DateTime<Utc>, events: impl IntoIterator<Item = Event>) -> Self {
        for event in events {
            self.record(event, Actor::System, at);
        }
        self
    }

    /// Events recorded at `t0()` by `actor`.
    pub fn and_by(mut self, actor: Actor, events: impl IntoIterator<Item = Event>) -> Self {
        for event in events {
            self.record(event, actor, t0());
        }
        self
    }

    fn record(&mut self, event: Event, actor: Actor, at: DateTime<Utc>) {
        self.position += 1;
        let recorded = RecordedEvent {
            position: Position::new(self.position),
            version: 0,
            envelope: EventEnvelope {
                id: EventId::new(),
                at,
                actor,
                request_id: None,
                idempotency_key_sha256: None,
                event,
            },
        };
        evolve(&mut self.state, &recorded);
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Decides `command` now and folds its events in, as latchd would.
    pub fn apply(&mut self, actor: Actor, command: Command) -> Result<(), DomainError> {
        let events = decide(&self.state, &CommandContext { actor, now: t0() }, &command)?;
        for event in events {
            self.record(event, actor, t0());
        }
        Ok(())
    }

    /// `when`, keeping the history for more.
    pub fn when_ref(&self, actor: Actor, command: Command) -> When {
        let result = decide(&self.state, &CommandContext { actor, now: t0() }, &command);
        When { result }
    }

    /// `when_at`, keeping the history for more.
    pub fn when_ref_at(&self, actor: Actor, now: DateTime<Utc>, command: Command) -> When {
        let result = decide(&self.state, &CommandContext { actor, now }, &command);
        When { result }
    }

    pub fn when(self, actor: Actor, command: Command) -> When {
        self.when_at(actor, t0(), command)
    }

    pub fn when_at(self, actor: Actor, now: DateTime<Utc>, command: Command) -> When {
        let result = decide(&self.state, &CommandContext { actor, now }, &command);
        When { result }
    }
}

pub struct When {
    result: Result<Vec<Event>, DomainError>,
}

impl When {
    /// The raw outcome, for checks the `then_*` forms cannot express.
    pub fn outcome(self) -> Result<Vec<Event>, DomainError> {
        self.result
    }

    #[track_caller]
    pub fn then_expect_events(self, expected: Vec<Event>) {
        match self.result {
            Ok(events) => assert_eq!(events, expected),
            Err(err) => panic!("expected events, got rejection: {err} ({err:?})"),
        }
    }

    #[track_caller]
    pub fn then_expect_error(self, expected: DomainError) {
        match self.result {
            Ok(events) => panic!("expected rejection {expected:?}, got events {events:?}"),
            Err(err) => assert_eq!(err, expected),
        }
    }

    #[track_caller]
    pub fn then_expect_error_kind(self, kind: RejectionKind) -> DomainError {
        match self.result {
            Ok(events) => panic!("expected a {kind:?} rejection, got events {events:?}"),
            Err(err) => {
                assert_eq!(err.kind(), kind, "{err}");
                err
            }
        }
    }
}

// ---- event builders for the common fixtures ----

pub const ADMIN: u128 = 0;
pub const OPS: u128 = 1;

pub fn account_created(n: u128, account_name: &str, role_name: &str) -> Event {
    Event::AccountCreated {
        account_id: account_id(n),
        name: name(account_name),
        role: role(role_name),
        description: String::new(),
    }
}

pub fn token_issued(n: u128, account: u128, scopes: &[&str]) -> Event {
    Event::TokenIssued {
        token_id: token_id(n),
        account_id: account_id(account),
        name: format!("token-{n}"),
        scopes: perms(scopes),
        digest: digest(&format!("token-{n}")),
        expires_at: Some(t0() + chrono::TimeDelta::days(90)),
        allowed_cidrs: Vec::new(),
        rotated_from: None,
        parent: None,
        oidc: None,
    }
}

/// `token_issued(n, OPS, ["certificates:issue"])`, rotated from or
/// exchanged from another token.
pub fn issued_from(n: u128, rotated: Option<u128>, parent: Option<u128>) -> Event {
    match token_issued(n, OPS, &["certificates:issue"]) {
        Event::TokenIssued {
            token_id: id, account_id, name, scopes, digest, expires_at, allowed_cidrs, oidc, ..
        } => Event::TokenIssued {
            token_id: id,
            account_id,
            name,
            scopes,
            digest,
            expires_at,
            allowed_cidrs,
            rotated_from: rotated.map(token_id),
            parent: parent.map(token_id),
            oidc,
        },
        other => other,
    }
}

pub fn cert_operator_defined() -> Event {
    Event::RoleDefined {
        name: role("cert-operator"),
        permissions: perms(&[
            "certificates:issue",
            "certificates:renew",
            "certificates:read",
        ]),
        description: "issues and renews certificates".into(),
    }
}

/// An admin account with token 0, a cert-operator role, and account 1
/// (`ci-deploy`, cert-operator) with token 1 scoped to issue only.
pub fn world() -> Vec<Event> {
    vec![
        account_created(ADMIN, "admin", "admin"),
        token_issued(0, ADMIN, &["*"]),
        cert_operator_defined(),
        account_created(OPS, "ci-deploy", "cert-operator"),
        token_issued(1, OPS, &["certificates:issue"]),
    ]
}

pub fn admin() -> Actor {
    as_token(account_id(ADMIN), token_id(0))
}
