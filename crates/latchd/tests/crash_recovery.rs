//! Crash test: a child process appends commands through the command handler
//! as fast as it can and reports each acknowledgement on stdout; the parent
//! `kill -9`s it at a random moment, reopens the store and proves that every
//! acknowledged command is there, positions have no gaps and the hash chain
//! verifies. Repeated several times on the same data directory.
//!
//! The child is this test binary itself, re-run with `CRASH_CHILD_DIR` set
//! and filtered to `child_appends_until_killed`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command as Process, Stdio};
use std::sync::Arc;
use std::time::Duration;

use latch_core::*;
use latch_store::{ChainVerdict, EventStore};
use latchd::*;
use rand::Rng;

const CHILD_DIR: &str = "CRASH_CHILD_DIR";
const ROUNDS: usize = 5;
const WRITERS: usize = 32;

/// Not a test on its own: the body of the child process. Without
/// `CRASH_CHILD_DIR` it returns at once.
#[test]
fn child_appends_until_killed() {
    let Ok(dir) = std::env::var(CHILD_DIR) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async move {
        let store = Arc::new(EventStore::open(&dir).unwrap());
        let (handler, _) =
            CommandHandler::start(store, Arc::new(SystemClock), HandlerConfig::default()).unwrap();
        let handle = handler.handle();
        let writers: Vec<_> = (0..WRITERS)
            .map(|writer| {
                let handle = handle.clone();
                tokio::spawn(async move {
                    for n in 0.. {
                        let account_id = AccountId::new();
                        let command = Command::CreateAccount {
                            account_id,
                            name: AccountName::parse(&format!("w{writer}-{account_id}-{n}"))
                                .unwrap(),
                            role: RoleName::parse("auditor").unwrap(),
                            description: "crash test".into(),
                        };
                        let receipt = match handle
                            .submit(CommandRequest::new(Actor::System, command))
                            .await
                        {
                            Ok(Ok(receipt)) => receipt,
                            other => panic!("append failed: {other:?}"),
                        };
                        // Only now is the command acknowledged.
                        println!("ack {} {account_id}", receipt.events[0].position);
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
    });
}

#[test]
fn every_acknowledged_append_survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged: HashMap<u64, AccountId> = HashMap::new();
    let mut rng = rand::rng();

    for round in 0..ROUNDS {
        let mut child = Process::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_appends_until_killed",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_DIR, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (first_ack, started) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ack ") {
                    let (position, account) = rest.split_once(' ').unwrap();
                    acks.push((
                        position.parse::<u64>().unwrap(),
                        account.parse::<AccountId>().unwrap(),
                    ));
                    if acks.len() == 1 {
                        let _ = first_ack.send(());
                    }
                }
            }
            acks
        });

        // Once it is appending (startup replays a growing log), kill it at
        // a random moment.
        let running = started.recv_timeout(Duration::from_secs(120));
        if running.is_ok() {
            std::thread::sleep(Duration::from_millis(rng.random_range(20..800)));
        }
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        let acks = reader.join().unwrap();
        assert!(
            !acks.is_empty(),
            "round {round}: the child acknowledged nothing before it was killed"
        );
        for (position, account) in &acks {
            assert!(
                acknowledged.insert(*position, *account).is_none(),
                "position {position} acknowledged twice"
            );
        }

        let store = EventStore::open(dir.path()).unwrap();
        let head = store.head().position.get();
        let max_acked = *acknowledged.keys().max().unwrap();
        assert!(
            head >= max_acked,
            "round {round}: head {head} is behind acknowledged position {max_acked}"
        );
        match store.verify_chain().unwrap() {
            ChainVerdict::Intact { checked, .. } => {
                assert_eq!(checked, head, "positions 1..={head} without gaps")
            }
            broken => panic!("round {round}: chain broken after kill -9: {broken:?}"),
        }
        let state = rebuild(&store).unwrap().state;
        for (position, account) in &acknowledged {
            let stored = store
                .event(Position::new(*position))
                .unwrap()
                .expect("acknowledged event present");
            let recorded = to_recorded(&stored).unwrap();
            assert_eq!(
                recorded.envelope.event.account_id(),
                Some(*account),
                "position {position} holds another event"
            );
            assert!(state.account(*account).is_some());
        }
        eprintln!(
            "round {round}: {} acknowledged before kill, head {head}, all present",
            acks.len()
        );
    }
}
