//! The relay against a real nats-server: every event in the stream exactly
//! once and in order, across NATS outages, relay restarts and a lost stream.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use latch_bus::{Heartbeat, STREAM_NAME, headers, subject};
use latch_core::*;
use latch_store::EventStore;
use latch_testkit::NatsServer;
use latchd::*;

struct World {
    node: Node,
    store: Arc<EventStore>,
    status: Arc<RelayStatus>,
    _dir: tempfile::TempDir,
}

/// latchd (`Node`) with its relay on `nats`, but no admin account and no
/// scheduler: these tests count every event in the log.
async fn start(nats: &NatsServer) -> World {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(dir.path());
    config.nats = Some(latch_bus::NatsConnection::new(nats.url()));
    config.signing_key = SigningKeySource::Given(Arc::new(Keyring::ephemeral()));
    config.bootstrap_admin = false;
    config.scheduler = false;
    let node = Node::start(config).await.unwrap();
    World {
        store: node.store().clone(),
        status: node.relay_status().unwrap().clone(),
        node,
        _dir: dir,
    }
}

async fn create_accounts(world: &World, names: impl IntoIterator<Item = String>) {
    for name in names {
        let command = Command::CreateAccount {
            account_id: AccountId::new(),
            name: AccountName::parse(&name).unwrap(),
            role: RoleName::parse("auditor").unwrap(),
            description: String::new(),
        };
        world
            .node
            .commands()
            .submit(CommandRequest::new(Actor::System, command))
            .await
            .unwrap()
            .unwrap();
    }
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (position, event id, Nats-Msg-Id) of every message in the stream, in stream order.
async fn stream_contents(nats: &NatsServer) -> Vec<(u64, String, String)> {
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(STREAM_NAME).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut contents = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        // Only this log's (signed) events: anything else is skipped.
        if message.headers.get(headers::LATCH_SIGNATURE).is_none() {
            continue;
        }
        let position: u64 = message
            .headers
            .get(headers::LATCH_POSITION)
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        let msg_id = message
            .headers
            .get(headers::NATS_MSG_ID)
            .unwrap()
            .as_str()
            .to_owned();
        let recorded = latch_bus::decode(&message.payload).unwrap();
        assert_eq!(recorded.position.get(), position);
        assert_eq!(
            message.subject.as_str(),
            latch_bus::event_subject(&recorded.envelope.event)
        );
        contents.push((position, recorded.envelope.id.to_string(), msg_id));
    }
    contents
}

fn assert_exactly_once_in_order(contents: &[(u64, String, String)], head: u64) {
    let positions: Vec<u64> = contents.iter().map(|c| c.0).collect();
    assert_eq!(
        positions,
        (1..=head).collect::<Vec<_>>(),
        "every position once, in order"
    );
    for (_, event_id, msg_id) in contents {
        assert_eq!(event_id, msg_id, "Nats-Msg-Id is the event id");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_stream_once_in_order() {
    let nats = NatsServer::start();
    let world = start(&nats).await;
    create_accounts(&world, (0..300).map(|n| format!("a{n}"))).await;
    wait_for("the relay to catch up", || {
        world.status.published.load(Ordering::SeqCst) == 300
    })
    .await;
    assert_exactly_once_in_order(&stream_contents(&nats).await, 300);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_keep_flowing_while_nats_is_down_and_the_relay_catches_up() {
    let mut nats = NatsServer::start();
    let world = start(&nats).await;
    create_accounts(&world, (0..20).map(|n| format!("before{n}"))).await;
    wait_for("the first events", || {
        world.status.published.load(Ordering::SeqCst) == 20
    })
    .await;

    nats.stop();
    create_accounts(&world, (0..30).map(|n| format!("during{n}"))).await;
    assert_eq!(
        world.store.head().position.get(),
        50,
        "latchd accepted commands with NATS down"
    );
    wait_for("the relay to notice", || {
        !world.status.connected.load(Ordering::SeqCst)
    })
    .await;

    nats.restart();
    wait_for("the relay to catch up", || {
        world.status.published.load(Ordering::SeqCst) == 50
    })
    .await;
    assert_exactly_once_in_order(&stream_contents(&nats).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_relay_resumes_without_duplicates() {
    let nats = NatsServer::start();
    let world = start(&nats).await;
    create_accounts(&world, (0..40).map(|n| format!("a{n}"))).await;
    wait_for("the relay", || {
        world.status.published.load(Ordering::SeqCst) == 40
    })
    .await;
    world.node.pause_relay().await;

    create_accounts(&world, (0..10).map(|n| format!("b{n}"))).await;
    world.node.resume_relay().await;
    wait_for("the new relay", || {
        world.status.published.load(Ordering::SeqCst) == 50
    })
    .await;
    // Duplicates would be dropped by JetStream's window anyway; the relay
    // must not even send them, so nothing depends on that window.
    assert_exactly_once_in_order(&stream_contents(&nats).await, 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_is_refilled_in_order() {
    let nats = NatsServer::start();
    let world = start(&nats).await;
    create_accounts(&world, (0..25).map(|n| format!("a{n}"))).await;
    wait_for("the relay", || {
        world.status.published.load(Ordering::SeqCst) == 25
    })
    .await;

    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.delete_stream(STREAM_NAME).await.unwrap();
    wait_for("the refill", || {
        world.status.repairs.load(Ordering::SeqCst) + world.status.failures.load(Ordering::SeqCst)
            > 0
    })
    .await;
    wait_for("the relay to republish", || {
        world.status.published.load(Ordering::SeqCst) == 25
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_exactly_once_in_order(&stream_contents(&nats).await, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_core_nats_subscribers_see_the_contract() {
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let mut revocations = client
        .subscribe(subject::TOKEN_REVOKED_WILDCARD)
        .await
        .unwrap();
    let mut beats = client.subscribe(subject::HEARTBEAT).await.unwrap();
    let world = start(&nats).await;

    let account_id = AccountId::new();
    let token_id = TokenId::new();
    let handle = world.node.commands();
    let system = |command| CommandRequest::new(Actor::System, command);
    handle
        .submit(system(Command::CreateAccount {
            account_id,
            name: AccountName::parse("svc").unwrap(),
            role: RoleName::parse("auditor").unwrap(),
            description: String::new(),
        }))
        .await
        .unwrap()
        .unwrap();
    let digest = TokenSecret::generate(&mut rand::rng()).digest();
    handle
        .submit(system(Command::IssueToken {
            account_id,
            token_id,
            name: "t".into(),
            scopes: None,
            ttl: None,
            allowed_cidrs: Vec::new(),
            digest,
        }))
        .await
        .unwrap()
        .unwrap();
    handle
        .submit(system(Command::RevokeToken {
            token_id,
            reason: "leak".into(),
        }))
        .await
        .unwrap()
        .unwrap();

    let message = tokio::time::timeout(Duration::from_secs(10), revocations.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        message.subject.as_str(),
        format!("latch.events.token.revoked.{account_id}")
    );
    let payload: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(payload["type"], "latch.token.revoked");
    assert_eq!(payload["data"]["token_id"], token_id.to_string());
    assert_eq!(payload["sequence"], "3");
    assert_eq!(
        message
            .headers
            .as_ref()
            .unwrap()
            .get(headers::LATCH_POSITION)
            .unwrap()
            .as_str(),
        "3"
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let beat = tokio::time::timeout(Duration::from_secs(3), beats.next())
            .await
            .unwrap()
            .unwrap();
        let beat = Heartbeat::decode(&beat.payload).unwrap();
        if beat.position == Position::new(3) {
            break;
        }
        assert!(Instant::now() < deadline, "no heartbeat at position 3");
    }

    // Asked, the relay answers with a heartbeat at once.
    let asked = Instant::now();
    let reply = tokio::time::timeout(
        Duration::from_secs(2),
        client.request(subject::HEARTBEAT_REQUEST, Vec::<u8>::new().into()),
    )
    .await
    .expect("an answer well within the heartbeat interval")
    .unwrap();
    let beat = Heartbeat::decode(&reply.payload).unwrap();
    assert_eq!(beat.position, Position::new(3));
    assert!(
        asked.elapsed() < Duration::from_millis(900),
        "{:?}",
        asked.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_log_s_events_in_the_stream_neither_stop_nor_shift_this_log() {
    let nats = NatsServer::start();
    // A stream that already holds an event of another log (an old data
    // dir, another latchd, or a forger with publish rights): unsigned by
    // this latchd, so it is not this log's event 3, whatever it claims.
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.get_or_create_stream(jetstream::stream::Config {
        name: STREAM_NAME.to_owned(),
        subjects: vec![subject::EVENTS_WILDCARD.to_owned()],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut foreign = async_nats::HeaderMap::new();
    foreign.insert(headers::NATS_MSG_ID, "01a22100-0000-7000-8000-000000000000");
    foreign.insert(headers::LATCH_POSITION, "3");
    foreign.insert(headers::LATCH_LOG_ID, "01a22100-0000-7000-8000-00000000000f");
    js.publish_with_headers("latch.events.account.created._", foreign, "{}".into())
        .await
        .unwrap()
        .await
        .unwrap();

    let world = start(&nats).await;
    create_accounts(&world, (0..5).map(|n| format!("a{n}"))).await;
    wait_for("the relay to publish this whole log", || {
        world.status.published.load(Ordering::SeqCst) == 5
    })
    .await;
    assert_eq!(world.status.foreign_messages.load(Ordering::SeqCst), 1);
    assert_exactly_once_in_order(&stream_contents(&nats).await, 5);
    assert_eq!(stream_contents_len(&nats).await, 6, "the foreign message stays; nothing is lost");
}

async fn stream_contents_len(nats: &NatsServer) -> u64 {
    let js = jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.get_stream(STREAM_NAME)
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .state
        .messages
}
