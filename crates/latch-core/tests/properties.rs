//! Property tests: permission algebra, token format, and replay equivalence.

mod support;

use chrono::TimeDelta;
use latch_core::*;
use proptest::prelude::*;
use support::*;

// ---- permissions ----

const RESOURCES: [&str; 3] = ["certificates", "tokens", "*"];
const ACTIONS: [&str; 3] = ["issue", "read", "*"];

fn permission() -> impl Strategy<Value = Permission> {
    (0..3usize, 0..3usize)
        .prop_map(|(r, a)| Permission::parse(&format!("{}:{}", RESOURCES[r], ACTIONS[a])).unwrap())
}

fn permission_set() -> impl Strategy<Value = PermissionSet> {
    proptest::collection::vec(permission(), 0..5).prop_map(|ps| ps.into_iter().collect())
}

/// Every permission expressible over the alphabets: the universe the set
/// properties quantify over.
fn universe() -> Vec<Permission> {
    let mut all = Vec::new();
    for r in RESOURCES {
        for a in ACTIONS {
            all.push(Permission::parse(&format!("{r}:{a}")).unwrap());
        }
    }
    all
}

proptest! {
    #[test]
    fn covering_is_a_partial_order(a in permission(), b in permission(), c in permission()) {
        prop_assert!(a.covers(&a));
        if a.covers(&b) && b.covers(&c) {
            prop_assert!(a.covers(&c));
        }
        if a.covers(&b) && b.covers(&a) {
            prop_assert_eq!(&a, &b);
        }
        prop_assert!(Permission::all().covers(&a));
    }

    #[test]
    fn permissions_round_trip_through_text(a in permission()) {
        prop_assert_eq!(Permission::parse(&a.to_string()).unwrap(), a);
    }

    #[test]
    fn intersection_grants_exactly_what_both_grant(a in permission_set(), b in permission_set()) {
        let both = a.intersect(&b);
        for q in universe() {
            prop_assert_eq!(both.covers(&q), a.covers(&q) && b.covers(&q), "q = {}", q);
        }
    }

    #[test]
    fn subset_means_every_grant_is_granted(a in permission_set(), b in permission_set()) {
        let semantic = universe().iter().all(|q| !b.covers(q) || a.covers(q));
        prop_assert_eq!(a.covers_all(&b), semantic);
        prop_assert_eq!(a.not_covered(&b).next().is_none(), semantic);
    }

    #[test]
    fn normal_form_is_unique(a in permission_set(), b in permission_set()) {
        let same_grants = universe().iter().all(|q| a.covers(q) == b.covers(q));
        prop_assert_eq!(a == b, same_grants);
    }

    /// Sets read one after another (each compared with the one before it
    /// as it is read) are the sets their texts parse to, or the same
    /// error: whether the input lends its strings (JSON from a slice) or
    /// not (JSON from a reader), or is binary (postcard), and whatever
    /// the texts are: not in normal form, repeated, or not permissions.
    #[test]
    fn sets_read_in_a_row_are_what_their_texts_parse_to(
        lists in proptest::collection::vec(proptest::collection::vec(0..TEXTS.len(), 0..5), 1..12)
    ) {
        for list in &lists {
            let texts: Vec<&str> = list.iter().map(|&at| TEXTS[at]).collect();
            let parsed = PermissionSet::parse(&texts).map_err(|e| e.to_string());
            let json = serde_json::to_string(&texts).unwrap();
            let from_slice = serde_json::from_str::<PermissionSet>(&json);
            let from_reader = serde_json::from_reader::<_, PermissionSet>(json.as_bytes());
            // postcard keeps no error's words, only that there was one.
            let binary = postcard::from_bytes::<PermissionSet>(&postcard::to_stdvec(&texts).unwrap())
                .map_err(|_| parsed.clone().err().unwrap_or_default());
            let reads = [
                (from_slice.map_err(|e| e.to_string()), "slice"),
                (from_reader.map_err(|e| e.to_string()), "reader"),
                (binary, "postcard"),
            ];
            for (read, how) in reads {
                match (&read, &parsed) {
                    (Ok(read), Ok(parsed)) => prop_assert_eq!(read, parsed, "{} {:?}", how, texts),
                    (Err(read), Err(parsed)) => prop_assert!(read.contains(parsed.as_str()), "{} {:?}: {}", how, texts, read),
                    _ => prop_assert!(false, "{} {:?}: read {:?}, parsed {:?}", how, texts, read, parsed),
                }
            }
        }
    }
}

/// Permission texts to read sets of: in and out of normal form, `*` both
/// ways, and some that are not permissions.
const TEXTS: [&str; 10] = [
    "certificates:issue",
    "certificates:read",
    "certificates:*",
    "*:read",
    "*",
    "*:*",
    "tokens:read",
    "not-a-permission",
    "Certificates:read",
    "",
];

// ---- token format ----

proptest! {
    #[test]
    fn generated_tokens_parse(seed in any::<u64>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let token = TokenSecret::generate(&mut rng);
        prop_assert_eq!(TokenSecret::parse(token.expose()).unwrap().digest(), token.digest());
    }

    #[test]
    fn any_single_character_change_is_rejected(seed in any::<u64>(), at in 0..TOKEN_LEN, replacement in any::<char>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let token = TokenSecret::generate(&mut rng);
        let mut chars: Vec<char> = token.expose().chars().collect();
        prop_assume!(chars[at] != replacement);
        chars[at] = replacement;
        let altered: String = chars.into_iter().collect();
        prop_assert!(TokenSecret::parse(&altered).is_err());
    }
}

// ---- replay equivalence ----

const ACCOUNTS: u128 = 4;
const TOKENS: u128 = 8;
const ROLES: [&str; 3] = ["cert-operator", "reader", "auditor"];
const SCOPES: [&[&str]; 4] = [
    &["certificates:issue"],
    &["certificates:read"],
    &["*:read"],
    &["certificates:*"],
];

fn command() -> impl Strategy<Value = Command> {
    let account = (0..ACCOUNTS).prop_map(|n| account_id(n + 10));
    let token = (0..TOKENS).prop_map(|n| token_id(n + 10));
    let role_name = (0..ROLES.len()).prop_map(|i| role(ROLES[i]));
    let scopes = proptest::option::of((0..SCOPES.len()).prop_map(|i| perms(SCOPES[i])));
    let span = || proptest::option::of((1..200u64).prop_map(Span::hours));
    prop_oneof![
        (account.clone(), 0..ACCOUNTS, role_name.clone()).prop_map(|(id, n, r)| {
            Command::CreateAccount {
                account_id: id,
                name: name(&format!("acct-{n}")),
                role: r,
                description: String::new(),
            }
        }),
        (
            account.clone(),
            proptest::option::of(role_name.clone()),
            proptest::option::of("[a-z]{0,3}")
        )
            .prop_map(|(id, r, d)| Command::UpdateAccount {
                account_id: id,
                role: r,
                description: d
            }),
        account.clone().prop_map(|id| Command::DisableAccount {
            account_id: id,
            reason: "suspected leak".into()
        }),
        account
            .clone()
            .prop_map(|id| Command::EnableAccount { account_id: id }),
        account
            .clone()
            .prop_map(|id| Command::DeleteAccount { account_id: id }),
        (account.clone(), token.clone(), scopes, span()).prop_map(|(a, t, s, ttl)| {
            Command::IssueToken {
                account_id: a,
                token_id: t,
                name: "ci".into(),
                scopes: s,
                ttl: ttl.map(Ttl::For),
                allowed_cidrs: vec!["10.0.0.0/8".parse().unwrap()],
                digest: digest(&format!("{t}")),
            }
        }),
        token.clone().prop_map(|t| Command::RevokeToken {
            token_id: t,
            reason: "rotated out".into()
        }),
        (token.clone(), 0..1000u128, span()).prop_map(|(t, n, grace)| {
            let successor = token_id(1000 + n);
            Command::RotateToken {
                token_id: t,
                successor_id: successor,
                successor_digest: digest(&format!("{successor}")),
                grace,
            }
        }),
        (0..2usize, 0..SCOPES.len()).prop_map(|(r, s)| Command::DefineRole {
            name: role(ROLES[r]),
            permissions: perms(SCOPES[s]),
            description: String::new()
        }),
        (0..2usize).prop_map(|r| Command::DeleteRole {
            name: role(ROLES[r])
        }),
        (proptest::option::of(role_name), span(), span()).prop_map(|(r, max, rotation)| {
            Command::SetPolicy {
                role: r,
                settings: PolicySettings {
                    max_ttl: max.map(|m| Span::from_seconds(m.as_seconds() * 24)),
                    rotation_period: rotation,
                    ..Default::default()
                },
            }
        }),
        token
            .clone()
            .prop_map(|t| Command::NoteTokenExpiring { token_id: t }),
        token
            .clone()
            .prop_map(|t| Command::NoteTokenExpired { token_id: t }),
        token.prop_map(|t| Command::NoteTokenRotationDue { token_id: t }),
    ]
}

/// Roles, the four accounts and eight tokens (some limited to 10.0.0.0/8),
/// so that random steps act on things that exist.
fn prelude() -> Vec<Command> {
    let mut commands = vec![
        Command::DefineRole {
            name: role("cert-operator"),
            permissions: perms(&["certificates:*"]),
            description: String::new(),
        },
        Command::DefineRole {
            name: role("reader"),
            permissions: perms(&["*:read"]),
            description: String::new(),
        },
    ];
    for n in 0..ACCOUNTS {
        commands.push(Command::CreateAccount {
            account_id: account_id(n + 10),
            name: name(&format!("acct-{n}")),
            role: role(ROLES[n as usize % ROLES.len()]),
            description: String::new(),
        });
    }
    for n in 0..TOKENS {
        let t = token_id(n + 10);
        commands.push(Command::IssueToken {
            account_id: account_id(n % ACCOUNTS + 10),
            token_id: t,
            name: "ci".into(),
            scopes: (n % 3 != 0).then(|| perms(SCOPES[n as usize % SCOPES.len()])),
            ttl: Some(Ttl::For(Span::hours(24 + 24 * n as u64))),
            allowed_cidrs: if n % 2 == 0 {
                vec!["10.0.0.0/8".parse().unwrap()]
            } else {
                Vec::new()
            },
            digest: digest(&format!("{t}")),
        });
    }
    commands
}

/// Decides the prelude and then `steps` (each `hours` after the last)
/// against a live state, folding each accepted event into it and handing
/// it to `each`. The state at the end, and the time then.
fn run(
    steps: Vec<(Actor, Command, i64)>,
    mut each: impl FnMut(&RecordedEvent),
) -> (State, chrono::DateTime<chrono::Utc>) {
    let mut live = State::new();
    let mut now = t0();
    let mut position = 0u64;
    let prelude = prelude()
        .into_iter()
        .map(|command| (Actor::System, command, 0));
    for (actor, command, hours) in prelude.chain(steps) {
        now += TimeDelta::hours(hours);
        let Ok(events) = decide(&live, &CommandContext { actor, now }, &command) else {
            continue;
        };
        for event in events {
            position += 1;
            let recorded = RecordedEvent {
                position: Position::new(position),
                version: 1,
                envelope: EventEnvelope {
                    id: EventId::new(),
                    at: now,
                    actor,
                    request_id: Some("req".into()),
                    idempotency_key_sha256: None,
                    event,
                },
            };
            evolve(&mut live, &recorded);
            each(&recorded);
        }
    }
    (live, now)
}

fn actor() -> impl Strategy<Value = Actor> {
    prop_oneof![
        3 => Just(Actor::System),
        1 => (0..ACCOUNTS, 0..TOKENS).prop_map(|(a, t)| as_token(account_id(a + 10), token_id(t + 10))),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// The state a writer builds live, event by event, equals the state a
    /// follower rebuilds by replaying the stored (JSON) log from scratch.
    #[test]
    fn replay_rebuilds_the_live_state(steps in proptest::collection::vec((actor(), command(), 0..72i64), 1..60)) {
        let mut log: Vec<String> = Vec::new();
        let (live, _) = run(steps, |recorded| log.push(serde_json::to_string(recorded).unwrap()));
        let mut replayed = State::new();
        for line in &log {
            let recorded: RecordedEvent = serde_json::from_str(line).unwrap();
            evolve(&mut replayed, &recorded);
        }
        prop_assert_eq!(replayed, live);
    }

    /// A state written and read back (postcard, as checkpoints are, and
    /// JSON) is the same state, and every lookup rebuilt on reading finds
    /// what it found before.
    #[test]
    fn a_state_round_trips_with_its_lookups(steps in proptest::collection::vec((actor(), command(), 0..72i64), 1..60)) {
        let (live, _) = run(steps, |_| {});
        let binary: State = postcard::from_bytes(&postcard::to_stdvec(&live).unwrap()).unwrap();
        let json: State = serde_json::from_str(&serde_json::to_string(&live).unwrap()).unwrap();
        for read in [binary, json] {
            prop_assert_eq!(&read, &live);
            prop_assert_eq!(read.token_count(), live.token_count());
            for account in live.accounts() {
                prop_assert_eq!(read.account_by_name(&account.name), Some(account));
                let tokens: Vec<&Token> = live.tokens_of(account.id).collect();
                prop_assert_eq!(read.tokens_of(account.id).collect::<Vec<_>>(), tokens.clone());
                for token in tokens {
                    prop_assert_eq!(read.token(token.id), Some(token));
                    prop_assert_eq!(read.token_by_digest(&token.digest), Some(token));
                    prop_assert_eq!(read.descendants(token.id), live.descendants(token.id));
                }
            }
        }
    }
}

// ---- the verifier's view answers as the state does ----

/// An accepted check, comparable across the two projections: who, until
/// when, and which permissions of the universe it allows.
type Accepted = (
    AccountId,
    TokenId,
    Option<chrono::DateTime<chrono::Utc>>,
    Vec<bool>,
);

/// What a check says, comparable across the two projections.
fn outcome(checked: Result<Principal<'_>, Rejection>) -> Result<Accepted, Rejection> {
    checked.map(|principal| {
        let allows = universe().iter().map(|p| principal.allows(p)).collect();
        (
            principal.account_id,
            principal.token_id,
            principal.expires_at,
            allows,
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Folded event by event, or built from the state at the end, the
    /// verifier's compact view accepts and refuses exactly what
    /// `authenticate` over the state does, with the same permissions.
    #[test]
    fn the_verifier_view_decides_as_the_state_does(steps in proptest::collection::vec((actor(), command(), 0..72i64), 1..60)) {
        let mut view = VerifierView::new();
        let (live, now) = run(steps, |recorded| view.apply(recorded));
        let built = VerifierView::of(&live);
        let rebuilt = VerifierView::from_parts(built.parts().clone());
        prop_assert_eq!(view.position(), live.position());
        let mut digests: Vec<TokenDigest> = live
            .accounts()
            .flat_map(|a| live.tokens_of(a.id))
            .map(|t| t.digest)
            .collect();
        digests.push(digest("never issued"));
        let sources = [None, Some("10.1.2.3".parse().unwrap()), Some("192.168.1.1".parse().unwrap())];
        for digest in &digests {
            for at in [now - TimeDelta::hours(100), now, now + TimeDelta::hours(150)] {
                for source in sources {
                    let expected = outcome(authenticate_digest(&live, digest, at, source));
                    prop_assert_eq!(&outcome(view.authenticate_digest(digest, at, source)), &expected, "folded");
                    prop_assert_eq!(&outcome(built.authenticate_digest(digest, at, source)), &expected, "built");
                    prop_assert_eq!(&outcome(rebuilt.authenticate_digest(digest, at, source)), &expected, "rebuilt");
                    let slotted = view.authenticate_digest_slotted(digest, at, source);
                    if let Ok((principal, slot)) = &slotted {
                        prop_assert_eq!(view.token_in_slot(*slot), Some((principal.token_id, principal.account_id)), "slot");
                    }
                    prop_assert_eq!(&outcome(slotted.map(|(principal, _)| principal)), &expected, "slotted");
                }
            }
        }
    }
}
