//! The command handler over a real RocksDB store.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use chrono::{TimeZone, Utc};
use latch_core::*;
use latch_store::{ChainVerdict, EventStore};
use latchd::*;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::starting_at(
        Utc.with_ymd_and_hms(2026, 3, 2, 9, 0, 0).unwrap(),
    ))
}

fn start(
    dir: &std::path::Path,
    config: HandlerConfig,
) -> (CommandHandler, Rebuilt, Arc<EventStore>) {
    let store = Arc::new(EventStore::open(dir).unwrap());
    let (handler, rebuilt) = CommandHandler::start(store.clone(), clock(), config).unwrap();
    (handler, rebuilt, store)
}

fn create(name: &str) -> Command {
    Command::CreateAccount {
        account_id: AccountId::new(),
        name: AccountName::parse(name).unwrap(),
        role: RoleName::parse("auditor").unwrap(),
        description: String::new(),
    }
}

fn accepted(result: CommandResult) -> CommandReceipt {
    match result {
        Ok(Ok(receipt)) => receipt,
        other => panic!("expected acceptance, got {other:?}"),
    }
}

fn rejected(result: CommandResult) -> CommandRejection {
    match result {
        Ok(Err(rejection)) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn accepted_commands_are_durable_and_visible() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    let receipt = accepted(
        handle
            .submit(CommandRequest::new(Actor::System, create("ci-deploy")))
            .await,
    );
    assert_eq!(receipt.events.len(), 1);
    assert_eq!(receipt.events[0].position, Position::new(1));
    assert!(!receipt.replayed);
    assert_eq!(store.head().position, Position::new(1));
    let name = AccountName::parse("ci-deploy").unwrap();
    assert!(handle.state().account_by_name(&name).is_some());
    handler.shutdown().await;
}

#[tokio::test]
async fn a_rejected_command_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    accepted(
        handle
            .submit(CommandRequest::new(Actor::System, create("dup")))
            .await,
    );
    let head = store.head();
    let rejection = rejected(
        handle
            .submit(CommandRequest::new(Actor::System, create("dup")))
            .await,
    );
    assert!(matches!(
        rejection,
        CommandRejection::Domain(DomainError::AccountNameTaken(_))
    ));
    assert_eq!(store.head(), head);
    assert_eq!(
        handle.metrics().commands_rejected.load(Ordering::Relaxed),
        1
    );
    handler.shutdown().await;
}

#[tokio::test]
async fn an_idempotent_retry_returns_the_original_events_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    let command = create("once");
    let mut request = CommandRequest::new(Actor::System, command.clone());
    request.idempotency = Some(Idempotency::of_command("key-1", &command));
    let first = accepted(handle.submit(request.clone()).await);
    let head = store.head();
    let retry = accepted(handle.submit(request.clone()).await);
    assert!(retry.replayed);
    assert_eq!(retry.events, first.events);
    assert_eq!(store.head(), head);

    // The same key for a different request is refused, not replayed.
    let other = create("twice");
    let mut reused = CommandRequest::new(Actor::System, other.clone());
    reused.idempotency = Some(Idempotency::of_command("key-1", &other));
    assert_eq!(
        rejected(handle.submit(reused).await),
        CommandRejection::IdempotencyKeyReused
    );
    assert_eq!(store.head(), head);
    handler.shutdown().await;
}

#[tokio::test]
async fn the_same_key_twice_in_one_batch_appends_once() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    let command = create("racing");
    let mut request = CommandRequest::new(Actor::System, command.clone());
    request.idempotency = Some(Idempotency::of_command("race", &command));
    let (a, b) = tokio::join!(
        handle.submit(request.clone()),
        handle.submit(request.clone())
    );
    let (a, b) = (accepted(a), accepted(b));
    assert_eq!(a.events, b.events);
    assert!(a.replayed != b.replayed, "exactly one of the two wrote");
    assert_eq!(store.head().position, Position::new(1));
    handler.shutdown().await;
}

#[tokio::test]
async fn a_stale_expected_version_is_a_conflict() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    let account_id = AccountId::new();
    let command = Command::CreateAccount {
        account_id,
        name: AccountName::parse("versioned").unwrap(),
        role: RoleName::parse("auditor").unwrap(),
        description: String::new(),
    };
    accepted(
        handle
            .submit(CommandRequest::new(Actor::System, command))
            .await,
    );
    let update = |version| {
        let mut request = CommandRequest::new(
            Actor::System,
            Command::UpdateAccount {
                account_id,
                role: None,
                description: Some(format!("v{version}")),
            },
        );
        request.expected_version = Some(version);
        request
    };
    accepted(handle.submit(update(1)).await);
    let head = store.head();
    let conflict = rejected(handle.submit(update(1)).await);
    assert!(
        matches!(
            conflict,
            CommandRejection::VersionConflict { actual: 2, .. }
        ),
        "{conflict:?}"
    );
    assert_eq!(store.head(), head);
    assert_eq!(handle.state().account(account_id).unwrap().version, 2);
    handler.shutdown().await;
}

#[tokio::test]
async fn concurrent_callers_are_group_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, store) = start(dir.path(), HandlerConfig::default());
    let handle = handler.handle();
    let tasks: Vec<_> = (0..200)
        .map(|n| {
            let handle = handle.clone();
            tokio::spawn(async move {
                accepted(
                    handle
                        .submit(CommandRequest::new(Actor::System, create(&format!("a{n}"))))
                        .await,
                )
            })
        })
        .collect();
    let mut positions = Vec::new();
    for task in tasks {
        positions.push(task.await.unwrap().events[0].position.get());
    }
    positions.sort_unstable();
    assert_eq!(positions, (1..=200).collect::<Vec<_>>());
    let batches = handle.metrics().batches_written.load(Ordering::Relaxed);
    assert!(
        batches < 200,
        "{batches} batches for 200 concurrent commands: no group commit"
    );
    assert!(matches!(
        store.verify_chain().unwrap(),
        ChainVerdict::Intact { checked: 200, .. }
    ));
    handler.shutdown().await;
}

async fn scripted_history(handle: &CommandHandle) {
    let admin_id = AccountId::new();
    let admin_token = TokenId::new();
    let system = |command| CommandRequest::new(Actor::System, command);
    accepted(
        handle
            .submit(system(Command::CreateAccount {
                account_id: admin_id,
                name: AccountName::parse("admin").unwrap(),
                role: RoleName::admin(),
                description: String::new(),
            }))
            .await,
    );
    accepted(
        handle
            .submit(system(Command::IssueToken {
                account_id: admin_id,
                token_id: admin_token,
                name: "bootstrap".into(),
                scopes: None,
                ttl: None,
                allowed_cidrs: Vec::new(),
                digest: TokenSecret::generate(&mut rand::rng()).digest(),
            }))
            .await,
    );
    let admin = Actor::Token {
        account_id: admin_id,
        token_id: admin_token,
    };
    accepted(
        handle
            .submit(CommandRequest::new(
                admin,
                Command::DefineRole {
                    name: RoleName::parse("cert-operator").unwrap(),
                    permissions: PermissionSet::parse(["certificates:issue", "certificates:read"])
                        .unwrap(),
                    description: String::new(),
                },
            ))
            .await,
    );
    for n in 0..20 {
        let account_id = AccountId::new();
        accepted(
            handle
                .submit(CommandRequest::new(
                    admin,
                    Command::CreateAccount {
                        account_id,
                        name: AccountName::parse(&format!("svc-{n}")).unwrap(),
                        role: RoleName::parse("cert-operator").unwrap(),
                        description: String::new(),
                    },
                ))
                .await,
        );
        let token_id = TokenId::new();
        accepted(
            handle
                .submit(CommandRequest::new(
                    admin,
                    Command::IssueToken {
                        account_id,
                        token_id,
                        name: "deploy".into(),
                        scopes: None,
                        ttl: Some(Ttl::For(Span::days(30))),
                        allowed_cidrs: Vec::new(),
                        digest: TokenSecret::generate(&mut rand::rng()).digest(),
                    },
                ))
                .await,
        );
        if n % 3 == 0 {
            accepted(
                handle
                    .submit(CommandRequest::new(
                        admin,
                        Command::RevokeToken {
                            token_id,
                            reason: "test".into(),
                        },
                    ))
                    .await,
            );
        }
    }
}

#[tokio::test]
async fn a_restart_rebuilds_the_same_state_with_and_without_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let live = {
        let (handler, _, _) = start(
            dir.path(),
            HandlerConfig {
                snapshot_every: u64::MAX,
                ..HandlerConfig::default()
            },
        );
        let handle = handler.handle();
        scripted_history(&handle).await;
        let live = handle.state().clone();
        handler.shutdown().await; // saves a snapshot on the way out
        live
    };
    let (handler, rebuilt, store) = start(dir.path(), HandlerConfig::default());
    assert_eq!(rebuilt.snapshot, Some(live.position()));
    assert_eq!(rebuilt.replayed, 0);
    assert_eq!(*handler.handle().state(), live);
    handler.shutdown().await;
    drop((handler, store));

    // Without any usable snapshot: the whole log.
    let store = Arc::new(EventStore::open(dir.path()).unwrap());
    store
        .save_snapshot(live.position(), b"not a snapshot")
        .unwrap();
    let rebuilt = rebuild(&store).unwrap();
    assert_eq!(rebuilt.snapshot, None);
    assert_eq!(rebuilt.replayed, live.position().get());
    assert_eq!(rebuilt.state, live);
}

#[tokio::test]
async fn periodic_snapshots_shorten_the_replay() {
    let dir = tempfile::tempdir().unwrap();
    let (handler, _, _) = start(
        dir.path(),
        HandlerConfig {
            snapshot_every: 10,
            ..HandlerConfig::default()
        },
    );
    let handle = handler.handle();
    scripted_history(&handle).await;
    let live = handle.state().clone();
    // Before any graceful shutdown (as after a crash) only the periodic
    // snapshots exist. A read-only open sees the log as latchd left it.
    let store = EventStore::open_read_only(dir.path()).unwrap();
    let rebuilt = rebuild(&store).unwrap();
    let snapshot = rebuilt.snapshot.expect("a periodic snapshot was saved");
    assert!(snapshot.get() >= 10);
    assert_eq!(rebuilt.replayed, live.position().get() - snapshot.get());
    assert_eq!(rebuilt.state, live);
    handler.shutdown().await;
}

#[tokio::test]
async fn a_broken_chain_after_the_snapshot_stops_the_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    for round in 0..2 {
        let (handler, _, _) = start(
            dir.path(),
            HandlerConfig {
                snapshot_every: u64::MAX,
                ..HandlerConfig::default()
            },
        );
        for n in 0..4 {
            accepted(
                handler
                    .handle()
                    .submit(CommandRequest::new(
                        Actor::System,
                        create(&format!("r{round}-{n}")),
                    ))
                    .await,
            );
        }
        handler.shutdown().await; // snapshots at 4, then at 8
    }
    {
        let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path()).unwrap();
        let db = rocksdb_raw::open(dir.path(), &names);
        db.delete_cf(db.cf_handle("snapshots").unwrap(), 8u64.to_be_bytes())
            .unwrap();
        rocksdb_raw::flip(&db, 7);
    }
    let store = EventStore::open(dir.path()).unwrap();
    match rebuild(&store) {
        Err(RebuildError::BrokenChain { position, .. }) => assert_eq!(position, Position::new(7)),
        other => panic!("expected a broken chain at 7, got {other:?}"),
    }
}

mod rocksdb_raw {
    pub fn open(dir: &std::path::Path, names: &[String]) -> rocksdb::DB {
        rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names).unwrap()
    }
    pub fn flip(db: &rocksdb::DB, position: u64) {
        let cf = db.cf_handle("events").unwrap();
        let mut value = db.get_cf(cf, position.to_be_bytes()).unwrap().unwrap();
        let at = value.len() / 2;
        value[at] ^= 0x01;
        db.put_cf(cf, position.to_be_bytes(), value).unwrap();
    }
}

/// After `scripted_history`: rotations, a role redefined and deleted,
/// accounts disabled, enabled, moved to another role and deleted, one
/// command a minute.
async fn more_history(handle: &CommandHandle, clock: &ManualClock) {
    let system = |command| CommandRequest::new(Actor::System, command);
    let state = handle.state().clone();
    let accounts: Vec<AccountId> = state
        .accounts()
        .filter(|a| a.name.as_str().starts_with("svc-"))
        .map(|a| a.id)
        .collect();
    for (n, account) in accounts.iter().enumerate() {
        clock.advance(chrono::TimeDelta::minutes(1));
        let live = state
            .tokens_of(*account)
            .find(|t| t.revoked.is_none())
            .map(|t| t.id);
        let command = match (n % 5, live) {
            (0, Some(token_id)) => Command::RotateToken {
                token_id,
                successor_id: TokenId::new(),
                successor_digest: TokenSecret::generate(&mut rand::rng()).digest(),
                grace: Some(Span::hours(1)),
            },
            (1, _) => Command::DisableAccount {
                account_id: *account,
                reason: "suspected".into(),
            },
            (2, _) => Command::UpdateAccount {
                account_id: *account,
                role: Some(RoleName::parse("auditor").unwrap()),
                description: None,
            },
            (3, _) => Command::DeleteAccount {
                account_id: *account,
            },
            _ => Command::DefineRole {
                name: RoleName::parse("cert-operator").unwrap(),
                permissions: PermissionSet::parse([format!("certificates:v{n}")]).unwrap(),
                description: String::new(),
            },
        };
        accepted(handle.submit(system(command)).await);
        if n % 5 == 1 {
            clock.advance(chrono::TimeDelta::minutes(1));
            accepted(
                handle
                    .submit(system(Command::EnableAccount {
                        account_id: *account,
                    }))
                    .await,
            );
        }
    }
    clock.advance(chrono::TimeDelta::minutes(1));
    accepted(
        handle
            .submit(system(Command::DefineRole {
                name: RoleName::parse("short-lived").unwrap(),
                permissions: PermissionSet::parse(["reports:read"]).unwrap(),
                description: String::new(),
            }))
            .await,
    );
    clock.advance(chrono::TimeDelta::minutes(1));
    accepted(
        handle
            .submit(system(Command::DeleteRole {
                name: RoleName::parse("short-lived").unwrap(),
            }))
            .await,
    );
}

/// A log with checkpoints every 7 events, and the state after each event
/// folded from the first (the reference every investigation must match).
async fn checkpointed_log(dir: &std::path::Path) -> Vec<(Position, chrono::DateTime<Utc>, State)> {
    let clock = clock();
    let store = Arc::new(EventStore::open(dir).unwrap());
    let (handler, _) = CommandHandler::start(
        store.clone(),
        clock.clone(),
        HandlerConfig {
            snapshot_every: 7,
            checkpoints_kept: 10_000,
            max_batch: 1,
            ..HandlerConfig::default()
        },
    )
    .unwrap();
    let handle = handler.handle();
    scripted_history(&handle).await;
    more_history(&handle, &clock).await;
    handler.shutdown().await;
    let mut reference = State::new();
    let mut states = Vec::new();
    for stored in store.iter_from(Position::FIRST) {
        let stored = stored.unwrap();
        let recorded = RecordedEvent {
            position: stored.position,
            version: stored.version,
            envelope: stored.decode().unwrap(),
        };
        evolve(&mut reference, &recorded);
        states.push((stored.position, recorded.envelope.at, reference.clone()));
    }
    states
}

#[tokio::test]
async fn an_investigation_from_a_checkpoint_equals_a_replay_of_the_whole_log() {
    let dir = tempfile::tempdir().unwrap();
    let states = checkpointed_log(dir.path()).await;
    let store = EventStore::open_read_only(dir.path()).unwrap();
    let (kept, bytes) = store.snapshots_size().unwrap();
    assert!(kept >= states.len() / 7, "{kept} checkpoints for {} events", states.len());
    assert!(bytes > 0);
    for (index, (position, at, expected)) in states.iter().enumerate() {
        let replayed =
            latch_audit::replay(&store, latch_audit::Moment::Position(*position), &mut |_, _| {})
                .unwrap();
        assert_eq!(&replayed.state, expected, "at position {position}");
        assert_eq!(replayed.events, position.get());
        assert!(replayed.from_checkpoint.is_some_and(|c| c <= *position) || position.get() < 7);
        assert!(replayed.replayed <= 12, "{} events replayed to reach {position}", replayed.replayed);
        assert!(replayed.refused_checkpoints.is_empty());
        // By time: the last event at that instant decides.
        let last_at_that_time = states.get(index + 1).is_none_or(|(_, next, _)| next > at);
        if last_at_that_time {
            let by_time = latch_audit::replay(&store, latch_audit::Moment::Time(*at), &mut |_, _| {})
                .unwrap();
            assert_eq!(&by_time.state, expected, "at {at}");
        }
    }
    // Before the first event: nothing.
    let before = states[0].1 - chrono::TimeDelta::seconds(1);
    let replayed = latch_audit::replay(&store, latch_audit::Moment::Time(before), &mut |_, _| {}).unwrap();
    assert_eq!(replayed.state, State::new());
}

#[tokio::test]
async fn a_checkpoint_that_disagrees_with_the_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let states = checkpointed_log(dir.path()).await;
    let store = EventStore::open(dir.path()).unwrap();
    let checkpoint = store.snapshot_positions_through(states[40].0).unwrap()[0].0;
    let index = (checkpoint.get() - 1) as usize;
    let (_, _, at_checkpoint) = &states[index];
    let (_, _, before_it) = &states[index - 1];
    let hash_there = store.event(checkpoint).unwrap().unwrap().hash;
    let genesis = latch_store::ChainHash::GENESIS;
    for (forged, listed) in [
        // Listed with another chain hash than the log's at its position.
        (latch_audit::encode_checkpoint(at_checkpoint, hash_there), Some(genesis)),
        // Listed right, but the checkpoint itself records another hash.
        (latch_audit::encode_checkpoint(at_checkpoint, genesis), Some(hash_there)),
        // The right hash over the state of another position.
        (latch_audit::encode_checkpoint(before_it, hash_there), Some(hash_there)),
    ] {
        store.save_snapshot_keeping(checkpoint, &forged, listed, 10_000).unwrap();
        let verdict = latch_audit::verify_log(&store, latch_audit::CheckpointCheck::Headers, &mut |_, _| {}).unwrap();
        if listed == Some(genesis) {
            assert!(
                matches!(verdict, latch_store::ChainVerdict::Broken { position, .. } if position == checkpoint),
                "{verdict:?}"
            );
        }
        let verdict = latch_audit::verify_log(&store, latch_audit::CheckpointCheck::States, &mut |_, _| {}).unwrap();
        assert!(
            matches!(verdict, latch_store::ChainVerdict::Broken { position, .. } if position == checkpoint),
            "{verdict:?}"
        );
        let target = states[index + 2].0;
        let replayed =
            latch_audit::replay(&store, latch_audit::Moment::Position(target), &mut |_, _| {}).unwrap();
        assert_eq!(replayed.refused_checkpoints, vec![checkpoint]);
        assert!(replayed.from_checkpoint.is_some_and(|c| c < checkpoint), "an earlier checkpoint is used");
        assert_eq!(replayed.state, states[index + 2].2, "the answer is the log's");
    }
}
