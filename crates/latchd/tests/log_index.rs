//! The log's index answers exactly as a scan of the whole log does: a
//! property test over generated histories (accounts created, updated,
//! disabled, enabled and deleted; roles defined, redefined and deleted;
//! tokens issued, rotated, exchanged for children, revoked, revoked with
//! their family and expired; actors that are tokens of other accounts; a
//! clock that moves), written through the real command handler to a real
//! RocksDB log. Every token's story and every indexed event query is
//! compared with the reference that reads the whole log.

use std::sync::Arc;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use latch_audit::{
    ActorMatch, EventFilter, LogIndex, Moment, TokenStory, TypeMatch, scan_events,
    scan_events_in_order,
};
use latch_core::*;
use latch_store::{EventStore, IndexStatus};
use latchd::*;
use proptest::prelude::*;
use serde_json::Value;

/// One step of a generated history. Indices pick among what exists so far
/// (modulo its count); a command the domain refuses changes nothing, as
/// in life.
#[derive(Debug, Clone)]
enum Step {
    CreateAccount { role: usize },
    UpdateRole { account: usize, role: usize },
    Disable { account: usize },
    Enable { account: usize },
    Delete { account: usize },
    DefineRole { role: usize, permissions: usize },
    DeleteRole { role: usize },
    Issue { account: usize, by: usize, ttl_minutes: u32 },
    Rotate { token: usize, by: usize },
    Exchange { token: usize },
    Revoke { token: usize, by: usize },
    RevokeFamily { token: usize },
    NoteExpired { token: usize },
    Wait { minutes: u32 },
}

fn step() -> impl Strategy<Value = Step> {
    let i = || 0usize..16;
    prop_oneof![
        3 => i().prop_map(|role| Step::CreateAccount { role }),
        1 => (i(), i()).prop_map(|(account, role)| Step::UpdateRole { account, role }),
        1 => i().prop_map(|account| Step::Disable { account }),
        1 => i().prop_map(|account| Step::Enable { account }),
        1 => i().prop_map(|account| Step::Delete { account }),
        1 => (i(), i()).prop_map(|(role, permissions)| Step::DefineRole { role, permissions }),
        1 => i().prop_map(|role| Step::DeleteRole { role }),
        5 => (i(), i(), 1u32..240).prop_map(|(account, by, ttl_minutes)| Step::Issue { account, by, ttl_minutes }),
        2 => (i(), i()).prop_map(|(token, by)| Step::Rotate { token, by }),
        1 => i().prop_map(|token| Step::Exchange { token }),
        2 => (i(), i()).prop_map(|(token, by)| Step::Revoke { token, by }),
        1 => i().prop_map(|token| Step::RevokeFamily { token }),
        1 => i().prop_map(|token| Step::NoteExpired { token }),
        2 => (1u32..90).prop_map(|minutes| Step::Wait { minutes }),
    ]
}

const CUSTOM_ROLES: [&str; 2] = ["deployer", "reader"];
const PERMISSIONS: [&[&str]; 3] = [
    &["certificates:read"],
    &["certificates:read", "certificates:issue"],
    &["*"],
];

fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap()
}

/// What a history made: its ids, and the times its events span.
#[derive(Default)]
struct Made {
    accounts: Vec<AccountId>,
    tokens: Vec<(AccountId, TokenId)>,
}

impl Made {
    fn account(&self, i: usize) -> Option<AccountId> {
        (!self.accounts.is_empty()).then(|| self.accounts[i % self.accounts.len()])
    }
    fn token(&self, i: usize) -> Option<(AccountId, TokenId)> {
        (!self.tokens.is_empty()).then(|| self.tokens[i % self.tokens.len()])
    }
    /// A token of another account acting, or the system.
    fn actor(&self, i: usize) -> Actor {
        match self.token(i) {
            Some((account_id, token_id)) if i % 3 != 0 => Actor::Token {
                account_id,
                token_id,
            },
            _ => Actor::System,
        }
    }
}

fn role_name(i: usize) -> RoleName {
    let names = ["admin", "auditor", CUSTOM_ROLES[0], CUSTOM_ROLES[1]];
    RoleName::parse(names[i % names.len()]).unwrap()
}

async fn write_history(handle: &CommandHandle, clock: &ManualClock, steps: &[Step]) -> Made {
    let mut made = Made::default();
    let mut n = 0;
    for step in steps {
        n += 1;
        let mut actor = Actor::System;
        let command = match step {
            Step::CreateAccount { role } => {
                let account_id = AccountId::new();
                made.accounts.push(account_id);
                Command::CreateAccount {
                    account_id,
                    name: AccountName::parse(&format!("acct-{n}")).unwrap(),
                    role: role_name(*role),
                    description: String::new(),
                }
            }
            Step::UpdateRole { account, role } => {
                let Some(account_id) = made.account(*account) else { continue };
                Command::UpdateAccount {
                    account_id,
                    role: Some(role_name(*role)),
                    description: None,
                }
            }
            Step::Disable { account } => {
                let Some(account_id) = made.account(*account) else { continue };
                Command::DisableAccount {
                    account_id,
                    reason: "generated".into(),
                }
            }
            Step::Enable { account } => {
                let Some(account_id) = made.account(*account) else { continue };
                Command::EnableAccount { account_id }
            }
            Step::Delete { account } => {
                let Some(account_id) = made.account(*account) else { continue };
                Command::DeleteAccount { account_id }
            }
            Step::DefineRole { role, permissions } => Command::DefineRole {
                name: RoleName::parse(CUSTOM_ROLES[role % CUSTOM_ROLES.len()]).unwrap(),
                permissions: PermissionSet::parse(PERMISSIONS[permissions % PERMISSIONS.len()])
                    .unwrap(),
                description: format!("generated {n}"),
            },
            Step::DeleteRole { role } => Command::DeleteRole {
                name: RoleName::parse(CUSTOM_ROLES[role % CUSTOM_ROLES.len()]).unwrap(),
            },
            Step::Issue {
                account,
                by,
                ttl_minutes,
            } => {
                let Some(account_id) = made.account(*account) else { continue };
                actor = made.actor(*by);
                let token_id = TokenId::new();
                made.tokens.push((account_id, token_id));
                Command::IssueToken {
                    account_id,
                    token_id,
                    name: format!("token-{n}"),
                    scopes: None,
                    ttl: Some(Ttl::from(Span::parse(&format!("{ttl_minutes}m")).unwrap())),
                    allowed_cidrs: Vec::new(),
                    digest: TokenDigest::of(&format!("secret-{n}-{token_id}")),
                }
            }
            Step::Rotate { token, by } => {
                let Some((account_id, token_id)) = made.token(*token) else { continue };
                actor = made.actor(*by);
                let successor_id = TokenId::new();
                made.tokens.push((account_id, successor_id));
                Command::RotateToken {
                    token_id,
                    successor_id,
                    successor_digest: TokenDigest::of(&format!("secret-{n}-{successor_id}")),
                    grace: None,
                }
            }
            Step::Exchange { token } => {
                let Some((account_id, parent_id)) = made.token(*token) else { continue };
                // Only the parent itself may ask.
                actor = Actor::Token {
                    account_id,
                    token_id: parent_id,
                };
                let token_id = TokenId::new();
                made.tokens.push((account_id, token_id));
                Command::ExchangeToken {
                    parent_id,
                    token_id,
                    digest: TokenDigest::of(&format!("secret-{n}-{token_id}")),
                    name: None,
                    scopes: None,
                    ttl: None,
                }
            }
            Step::Revoke { token, by } => {
                let Some((_, token_id)) = made.token(*token) else { continue };
                actor = made.actor(*by);
                Command::RevokeToken {
                    token_id,
                    reason: "generated".into(),
                }
            }
            Step::RevokeFamily { token } => {
                let Some((_, token_id)) = made.token(*token) else { continue };
                Command::RevokeTokenFamily {
                    token_id,
                    reason: "generated".into(),
                }
            }
            Step::NoteExpired { token } => {
                let Some((_, token_id)) = made.token(*token) else { continue };
                Command::NoteTokenExpired { token_id }
            }
            Step::Wait { minutes } => {
                clock.advance(TimeDelta::minutes(i64::from(*minutes)));
                continue;
            }
        };
        // Refusals are part of life; an infrastructure failure is not.
        let _accepted_or_refused = handle
            .submit(CommandRequest::new(actor, command))
            .await
            .expect("the log accepts the write");
        clock.advance(TimeDelta::seconds(7));
    }
    made
}

fn story(store: &EventStore, token: TokenId, now: DateTime<Utc>, indexed: bool) -> Result<Vec<Value>, String> {
    let read = if indexed {
        TokenStory::read(store, token, now, &mut |_, _| {})
    } else {
        TokenStory::read_by_replay(store, token, now, &mut |_, _| {})
    };
    let story = read.map_err(|e| e.to_string())?;
    let mut entries = Vec::new();
    story
        .tell(store, |entry| {
            entries.push(serde_json::to_value(&entry).unwrap());
            true
        })
        .map_err(|e| e.to_string())?;
    Ok(entries)
}

/// Every page of a query, `page` events read at a time, as a follower
/// pages through `GET /v1/events`.
fn events(store: &EventStore, filter: &EventFilter, page: u64, indexed: bool) -> Vec<Value> {
    let name_of = |_| None;
    let mut found = Vec::new();
    let mut after = Position::ZERO;
    loop {
        let mut each = |event: latch_audit::AuditEvent| {
            found.push(serde_json::to_value(&event).unwrap());
            true
        };
        let end = if indexed {
            scan_events(store, filter, after, page, &name_of, &mut each)
        } else {
            scan_events_in_order(store, filter, after, page, &name_of, &mut each)
        }
        .unwrap();
        if end.complete || end.last_read >= store.head().position || end.last_read == after {
            return found;
        }
        after = end.last_read;
    }
}

fn filters(made: &Made, times: &[DateTime<Utc>]) -> Vec<EventFilter> {
    let mut filters = Vec::new();
    for account in &made.accounts {
        filters.push(EventFilter {
            account: Some(*account),
            ..EventFilter::default()
        });
        filters.push(EventFilter {
            actor: Some(ActorMatch::Account(*account)),
            ..EventFilter::default()
        });
    }
    for (_, token) in &made.tokens {
        filters.push(EventFilter {
            token: Some(*token),
            ..EventFilter::default()
        });
        filters.push(EventFilter {
            actor: Some(ActorMatch::Token(*token)),
            types: vec![TypeMatch::parse("token.*").unwrap()],
            ..EventFilter::default()
        });
    }
    filters.push(EventFilter {
        actor: Some(ActorMatch::System),
        ..EventFilter::default()
    });
    for (i, at) in times.iter().enumerate() {
        filters.push(EventFilter {
            since: Some(*at),
            ..EventFilter::default()
        });
        filters.push(EventFilter {
            account: made.account(i),
            since: Some(*at),
            until: times.get(i + 1).copied(),
            ..EventFilter::default()
        });
    }
    filters
}

fn check_history(steps: Vec<Step>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(EventStore::open(dir.path()).unwrap());
        let clock = Arc::new(ManualClock::starting_at(start_time()));
        let (handler, _) =
            CommandHandler::start(store.clone(), clock.clone(), HandlerConfig::default()).unwrap();
        let made = write_history(&handler.handle(), &clock, &steps).await;
        handler.shutdown().await;

        assert_eq!(
            store.index_status(latch_audit::LogIndexer::VERSION).unwrap(),
            IndexStatus::Fresh
        );
        assert!(LogIndex::open(&store).unwrap().is_some());
        let now = clock.now();
        for (_, token) in &made.tokens {
            assert_eq!(
                story(&store, *token, now, true),
                story(&store, *token, now, false),
                "token {token}'s story"
            );
        }
        let unknown = TokenId::new();
        assert_eq!(story(&store, unknown, now, true), story(&store, unknown, now, false));

        let end = clock.now();
        let span = (end - start_time()).num_seconds().max(1);
        let times: Vec<_> = (0..5)
            .map(|i| start_time() + TimeDelta::seconds(span * i / 4))
            .collect();
        for filter in filters(&made, &times) {
            for page in [2, 1000] {
                assert_eq!(
                    events(&store, &filter, page, true),
                    events(&store, &filter, page, false),
                    "{filter:?}, {page} a page"
                );
            }
        }
        for at in &times {
            let replayed = latch_audit::replay(&store, Moment::Time(*at), &mut |_, _| {}).unwrap();
            let mut state = State::new();
            for stored in store.iter_from(Position::FIRST) {
                let recorded = latchd::to_recorded(&stored.unwrap()).unwrap();
                if recorded.envelope.at > *at {
                    break;
                }
                evolve(&mut state, &recorded);
            }
            assert_eq!(replayed.state, state, "the state at {at}");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn every_indexed_answer_is_the_answer_a_scan_of_the_whole_log_gives(
        steps in proptest::collection::vec(step(), 10..70)
    ) {
        check_history(steps);
    }
}
