//! The bus contract: subjects, CloudEvents payloads, round trips for every
//! event type.

use chrono::{TimeZone, Utc};
use latch_bus::*;
use latch_core::*;

fn sample_events() -> Vec<Event> {
    let account_id = AccountId::new();
    let token_id = TokenId::new();
    let role = RoleName::parse("cert-operator").unwrap();
    let at = Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap();
    vec![
        Event::AccountCreated {
            account_id,
            name: AccountName::parse("ci").unwrap(),
            role: role.clone(),
            description: "d".into(),
        },
        Event::AccountUpdated {
            account_id,
            role: Some(role.clone()),
            description: None,
        },
        Event::AccountDisabled {
            account_id,
            reason: "leak".into(),
        },
        Event::AccountEnabled { account_id },
        Event::AccountDeleted { account_id },
        Event::TokenIssued {
            token_id,
            account_id,
            name: "deploy".into(),
            scopes: PermissionSet::parse(["certificates:issue"]).unwrap(),
            digest: TokenDigest::of("x"),
            expires_at: Some(at),
            allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
            rotated_from: Some(TokenId::new()),
            parent: None,
            oidc: None,
        },
        Event::TokenRevoked {
            token_id,
            account_id,
            reason: "leaked".into(),
        },
        Event::TokenRotated {
            token_id,
            account_id,
            successor_id: TokenId::new(),
            expires_at: at,
        },
        Event::TokenExpiring {
            token_id,
            account_id,
            expires_at: at,
        },
        Event::TokenExpired {
            token_id,
            account_id,
            expires_at: at,
        },
        Event::TokenRotationDue {
            token_id,
            account_id,
            issued_at: at,
        },
        Event::TokenLeakReported {
            token_id: TokenId::new(),
            account_id: AccountId::new(),
            source: "github".into(),
            location: "https://github.com/acme/app/blob/abc/.env".into(),
        },
        Event::TokenReuseDetected {
            token_id: TokenId::new(),
            account_id: AccountId::new(),
            seen_at: chrono::Utc::now(),
            source_address: Some("203.0.113.7".parse().unwrap()),
            service: "billing-api/1".into(),
            successor_id: Some(TokenId::new()),
            on_reuse: latch_core::OnReuse::Revoke,
        },
        Event::RoleDefined {
            name: role.clone(),
            permissions: PermissionSet::parse(["certificates:*"]).unwrap(),
            description: String::new(),
        },
        Event::RoleDeleted { name: role.clone() },
        Event::PolicyUpdated {
            role: None,
            settings: PolicySettings {
                max_ttl: Some(Span::days(90)),
                ..Default::default()
            },
        },
        Event::SigningKeyRotated {
            public_key: "ed25519:tYCUK202U9RA0nTUCIkDpHlFodnBPwBZ1NUSX5ahOYU".into(),
        },
        Event::TrustPolicyAdded {
            policy_id: latch_core::TrustPolicyId::new(),
            account_id: AccountId::new(),
            issuer: "https://token.actions.githubusercontent.com".into(),
            audience: "latch".into(),
            claims: [(
                "sub".to_owned(),
                latch_core::ClaimPattern::parse("repo:acme/deploy:ref:refs/heads/main").unwrap(),
            )]
            .into_iter()
            .collect(),
            scopes: PermissionSet::parse(&["certificates:issue"]).unwrap(),
            max_ttl: Span::minutes(15),
        },
        Event::TrustPolicyRemoved {
            policy_id: latch_core::TrustPolicyId::new(),
            account_id: AccountId::new(),
        },
    ]
}

fn recorded(n: u64, event: Event, actor: Actor) -> RecordedEvent {
    RecordedEvent {
        position: Position::new(n),
        version: n + 3,
        envelope: EventEnvelope {
            id: EventId::new(),
            at: Utc
                .with_ymd_and_hms(2026, 3, 2, 9, 0, n as u32 % 60)
                .unwrap(),
            actor,
            request_id: Some(format!("req-{n}")),
            idempotency_key_sha256: n
                .is_multiple_of(2)
                .then(|| latch_core::IdempotencyKeyDigest::of("key")),
            event,
        },
    }
}

#[test]
fn every_event_type_round_trips_through_its_cloud_event() {
    let events = sample_events();
    let types: Vec<&str> = events.iter().map(Event::event_type).collect();
    assert_eq!(types, Event::TYPES, "the samples cover every event type");
    let actor = Actor::Token {
        account_id: AccountId::new(),
        token_id: TokenId::new(),
    };
    for (n, event) in events.into_iter().enumerate() {
        let original = recorded(
            n as u64 + 1,
            event,
            if n % 2 == 0 { actor } else { Actor::System },
        );
        let bytes = encode(&original);
        assert_eq!(decode(&bytes).unwrap(), original);
    }
}

#[test]
fn the_payload_is_cloudevents_with_the_fixed_attributes() {
    let token_id = TokenId::new();
    let account_id = AccountId::new();
    let event = recorded(
        42,
        Event::TokenRevoked {
            token_id,
            account_id,
            reason: "leaked".into(),
        },
        Actor::System,
    );
    let json: serde_json::Value = serde_json::from_slice(&encode(&event)).unwrap();
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["id"], event.envelope.id.to_string());
    assert_eq!(json["type"], "latch.token.revoked");
    assert_eq!(json["source"], "latchd");
    assert_eq!(json["subject"], token_id.to_string());
    assert_eq!(json["sequence"], "42");
    assert_eq!(json["datacontenttype"], "application/json");
    assert_eq!(json["data"]["token_id"], token_id.to_string());
    assert_eq!(json["data"]["account_id"], account_id.to_string());
    assert_eq!(json["data"]["reason"], "leaked");
    assert!(json["time"].as_str().unwrap().ends_with('Z'));
}

#[test]
fn subjects_follow_the_scheme() {
    let account_id = AccountId::new();
    let token_id = TokenId::new();
    let revoked = Event::TokenRevoked {
        token_id,
        account_id,
        reason: String::new(),
    };
    assert_eq!(
        event_subject(&revoked),
        format!("latch.events.token.revoked.{account_id}")
    );
    let role = Event::RoleDeleted {
        name: RoleName::parse("x").unwrap(),
    };
    assert_eq!(event_subject(&role), "latch.events.role.deleted._");
    let policy = Event::PolicyUpdated {
        role: None,
        settings: PolicySettings::default(),
    };
    assert_eq!(event_subject(&policy), "latch.events.policy.updated._");
    assert_eq!(
        subject::TOKEN_REVOKED_WILDCARD,
        "latch.events.token.revoked.*"
    );
    assert_eq!(
        subject::account_wildcard(account_id),
        format!("latch.events.*.*.{account_id}")
    );
    // Every subject is inside the stream's wildcard and has four tokens
    // after `latch.events` is split off: type (2) + account (1).
    for event in sample_events() {
        let subject = event_subject(&event);
        assert!(subject.starts_with("latch.events."));
        assert_eq!(subject.split('.').count(), 5, "{subject}");
    }
    let settings = StreamSettings::default();
    assert_eq!(
        (settings.name, settings.subjects.as_slice()),
        ("LATCH_EVENTS", ["latch.events.>".to_owned()].as_slice())
    );
}

#[test]
fn foreign_or_broken_payloads_are_errors_not_panics() {
    for bad in [&b"not json"[..], br#"{}"#, br#"{"specversion":"1.0"}"#] {
        assert!(decode(bad).is_err());
    }
    let mut json: serde_json::Value = serde_json::from_slice(&encode(&recorded(
        1,
        Event::AccountEnabled {
            account_id: AccountId::new(),
        },
        Actor::System,
    )))
    .unwrap();
    json["type"] = "com.example.other".into();
    assert!(matches!(
        decode(&serde_json::to_vec(&json).unwrap()),
        Err(CodecError::Foreign(_))
    ));
    json["type"] = "latch.account.enabled".into();
    json["latchactor"] = "somebody".into();
    assert!(matches!(
        decode(&serde_json::to_vec(&json).unwrap()),
        Err(CodecError::Foreign(_))
    ));
}

#[test]
fn heartbeats_round_trip() {
    let heartbeat = Heartbeat::new(
        Position::new(7),
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    );
    assert_eq!(Heartbeat::decode(&heartbeat.encode()).unwrap(), heartbeat);
}

#[test]
fn verifier_snapshots_round_trip_and_refuse_other_formats() {
    let mut state = State::new();
    for (n, event) in sample_events().into_iter().take(6).enumerate() {
        evolve(&mut state, &recorded(n as u64 + 1, event, Actor::System));
    }
    let view = VerifierView::of(&state);
    let bytes = latch_bus::verifier_snapshot::encode(&view);
    let (decoded, position) = latch_bus::verifier_snapshot::decode(&bytes).unwrap();
    assert_eq!(position, Position::new(6));
    assert_eq!(decoded.parts(), view.parts());
    assert!(latch_bus::verifier_snapshot::decode(&bytes[..bytes.len() / 2]).is_err());
    let mut other_format = bytes.clone();
    other_format[0] = 4;
    assert!(matches!(
        latch_bus::verifier_snapshot::decode(&other_format),
        Err(latch_bus::verifier_snapshot::SnapshotError::Format(4))
    ));
}
