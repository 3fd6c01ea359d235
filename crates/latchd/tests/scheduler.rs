//! The scheduler with an injected clock: `token.rotation_due`,
//! `token.expiring` and `token.expired` appear exactly once each, when due,
//! also when latchd stops in the middle and time passes while it is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use latch_core::*;
use latch_store::EventStore;
use latchd::*;

struct Running {
    handler: CommandHandler,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

fn start(dir: &std::path::Path, clock: &ManualClock) -> Running {
    let store = Arc::new(EventStore::open(dir).unwrap());
    let clock: Arc<dyn Clock> = Arc::new(clock.clone());
    let (handler, _) =
        CommandHandler::start(store.clone(), clock.clone(), HandlerConfig::default()).unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let scheduler = Scheduler {
        commands: handler.handle(),
        store,
        clock,
        tick: Duration::from_millis(20),
        status: Arc::new(SchedulerStatus::default()),
    };
    let task = tokio::spawn(scheduler.run(shutdown));
    Running {
        handler,
        stop,
        task,
    }
}

impl Running {
    async fn run(&self, command: Command) {
        match self
            .handler
            .handle()
            .submit(CommandRequest::new(Actor::System, command))
            .await
        {
            Ok(Ok(_)) => {}
            other => panic!("command failed: {other:?}"),
        }
    }

    /// How many events of `event_type` the log holds.
    fn count(&self, event_type: &str) -> usize {
        let store = self.handler.handle().store().clone();
        store
            .iter_from(Position::new(1))
            .map(|stored| to_recorded(&stored.unwrap()).unwrap())
            .filter(|r| r.envelope.event.event_type() == event_type)
            .count()
    }

    async fn eventually(&self, event_type: &str, count: usize) {
        let started = Instant::now();
        while self.count(event_type) < count {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{event_type} never reached {count}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Some more ticks: it must not appear again.
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(
            self.count(event_type),
            count,
            "{event_type} appears exactly {count} time(s)"
        );
    }

    async fn account(&self, name: &str) -> AccountId {
        let account_id = AccountId::new();
        self.run(Command::CreateAccount {
            account_id,
            name: AccountName::parse(name).unwrap(),
            role: RoleName::parse("auditor").unwrap(),
            description: String::new(),
        })
        .await;
        account_id
    }

    /// Issues a token with the policy's default ttl.
    async fn token(&self, account_id: AccountId, seed: &str) -> TokenId {
        let token_id = TokenId::new();
        self.run(Command::IssueToken {
            account_id,
            token_id,
            name: seed.into(),
            scopes: None,
            ttl: None,
            allowed_cidrs: Vec::new(),
            digest: TokenDigest::of(seed),
        })
        .await;
        token_id
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        self.task.await.unwrap();
        self.handler.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_appear_once_each_when_due_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = ManualClock::starting_at(t0);
    let latch = start(dir.path(), &clock);
    latch
        .run(Command::SetPolicy {
            role: None,
            settings: PolicySettings {
                rotation_period: Some(Span::days(30)),
                ..Default::default()
            },
        })
        .await;
    let account_id = latch.account("ci").await;
    let token_id = latch.token(account_id, "t").await;
    // A second token, revoked: it never gets a note.
    let revoked = latch.token(account_id, "r").await;
    latch
        .run(Command::RevokeToken {
            token_id: revoked,
            reason: String::new(),
        })
        .await;

    clock.set(t0 + TimeDelta::days(30) - TimeDelta::seconds(1));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        latch.count("token.rotation_due"),
        0,
        "not before the rotation period"
    );
    clock.set(t0 + TimeDelta::days(30));
    latch.eventually("token.rotation_due", 1).await;
    assert_eq!(latch.count("token.expiring"), 0);

    // latchd stops; the expiry warning falls due while it is down.
    latch.stop().await;
    clock.set(t0 + TimeDelta::days(84));
    let latch = start(dir.path(), &clock);
    latch.eventually("token.expiring", 1).await;
    assert_eq!(latch.count("token.expired"), 0);
    assert_eq!(
        latch.count("token.rotation_due"),
        1,
        "not repeated after the restart"
    );

    clock.set(t0 + TimeDelta::days(90));
    latch.eventually("token.expired", 1).await;

    // Another restart: everything was noted, nothing appears twice.
    latch.stop().await;
    clock.set(t0 + TimeDelta::days(400));
    let latch = start(dir.path(), &clock);
    tokio::time::sleep(Duration::from_millis(200)).await;
    for event_type in ["token.rotation_due", "token.expiring", "token.expired"] {
        assert_eq!(latch.count(event_type), 1, "{event_type} once in all");
    }
    let state = latch.handler.handle().state().clone();
    let token = state.token(token_id).unwrap();
    assert!(token.expiring_noted && token.expired_noted && token.rotation_due_noted);
    latch.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_token_is_noted_expired_when_its_grace_ends_and_policy_changes_move_deadlines() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let clock = ManualClock::starting_at(t0);
    let latch = start(dir.path(), &clock);
    let account_id = latch.account("ci").await;
    let old = latch.token(account_id, "old").await;
    latch
        .run(Command::RotateToken {
            token_id: old,
            successor_id: TokenId::new(),
            successor_digest: TokenDigest::of("new"),
            grace: Some(Span::hours(1)),
        })
        .await;
    clock.set(t0 + TimeDelta::hours(1));
    latch.eventually("token.expired", 1).await;
    assert_eq!(
        latch.count("token.expiring"),
        0,
        "a rotated token gets no expiry warning"
    );

    // A rotation period set later applies to the live successor at once.
    latch
        .run(Command::SetPolicy {
            role: None,
            settings: PolicySettings {
                rotation_period: Some(Span::days(1)),
                ..Default::default()
            },
        })
        .await;
    clock.set(t0 + TimeDelta::days(2));
    latch.eventually("token.rotation_due", 1).await;
    latch.stop().await;
}
