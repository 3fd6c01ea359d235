//! Attacks over NATS by a client that holds no Latch token (issue 15,
//! findings 2 and 3), against the real latchd, nats-server, CLI and an
//! in-process verifier:
//!
//! - requests naming a reply subject under `latch.events.` (or a JetStream
//!   API subject) must not make latchd publish there: the stream stays
//!   Latch's own, the relay keeps relaying, verifiers keep verifying;
//! - a message that is not a Latch event, published straight into
//!   `latch.events.>` (by a user NATS permissions failed to stop), is
//!   skipped and counted by the relay and by verifiers, across a restart;
//! - a token secret issued or rotated over NATS never crosses NATS in clear,
//!   and a secret-bearing command without a reply key mints nothing.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use latch_e2e::{Latchd, account_with_token, eventually, ok};
use latch_verify::{NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::{Value, json};


/// One stream message: its subject, `Latch-Position` header (if any) and
/// whether its payload is a Latch event.
#[derive(Debug)]
struct Stored {
    subject: String,
    position: Option<u64>,
    is_latch_event: bool,
}

async fn stream_messages(client: &async_nats::Client) -> Vec<Stored> {
    let js = async_nats::jetstream::new(client.clone());
    let mut stream = js.get_stream("LATCH_EVENTS").await.expect("the stream");
    let state = stream.info().await.unwrap().state.clone();
    let mut stored = Vec::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            stored.push(Stored {
                subject: message.subject.to_string(),
                position: message
                    .headers
                    .get("Latch-Position")
                    .and_then(|v| v.as_str().parse().ok()),
                is_latch_event: latch_bus::decode(&message.payload).is_ok(),
            });
        }
    }
    stored
}



async fn verifier_for(latchd: &Latchd) -> Verifier {
    let mut config = VerifierConfig::new(NatsConnection::new(latchd.nats().url()));
    config.connect_timeout = Duration::from_secs(15);
    Verifier::connect(config)
        .await
        .expect("a verifier gets current")
}

/// Waits (async) until the verifier accepts `token` for `permission`.
async fn accepts(verifier: &Verifier, token: &str, permission: &str) {
    let permission = Permission::parse(permission).unwrap();
    let started = Instant::now();
    loop {
        match verifier.verify(token, &permission) {
            Ok(_) => return,
            Err(denial) => assert!(
                started.elapsed() < Duration::from_secs(20),
                "the verifier still refuses a valid token: {denial}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next heartbeat on `latch.heartbeat` vouching for at least `position`.
async fn heartbeat_at(client: &async_nats::Client, position: u64) {
    let mut beats = client.subscribe("latch.heartbeat").await.unwrap();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = beats.next().await {
            let beat = latch_bus::Heartbeat::decode(&message.payload).unwrap();
            if beat.position.get() >= position {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no heartbeat for position {position} within 20 s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_naming_a_reply_subject_under_latch_events_put_nothing_into_the_stream() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    // An outsider: a NATS connection, no Latch token at all.
    let outsider = async_nats::connect(latchd.nats().url()).await.unwrap();
    let js = async_nats::jetstream::new(outsider.clone());
    eventually("the relay created the stream", || {
        latchd.metric("latch_relay_connected") == 1
    });
    let created = js
        .get_stream("LATCH_EVENTS")
        .await
        .unwrap()
        .info()
        .await
        .unwrap()
        .created;

    let refused_before = latchd.metric_if_shown("latch_nats_replies_refused_total").unwrap_or(0);
    let requests = [
        "latch.cmd.account.list",
        "latch.cmd.token.steal",
        "latch.heartbeat.request",
        "$SRV.PING",
        "$SRV.INFO.latch",
        "$SRV.STATS",
    ];
    for subject in requests {
        for reply in [
            "latch.events.token.issued.x",
            "latch.heartbeat",
            "$JS.API.STREAM.DELETE.LATCH_EVENTS",
        ] {
            outsider
                .publish_with_reply(subject, reply, "{}".into())
                .await
                .unwrap();
        }
    }
    outsider.flush().await.unwrap();
    // latchd has had time to answer (it must not) ...
    tokio::time::sleep(Duration::from_secs(1)).await;

    let stream = js.get_stream("LATCH_EVENTS").await;
    assert!(stream.is_ok(), "the stream was not deleted");
    assert_eq!(
        stream.unwrap().info().await.unwrap().created,
        created,
        "the stream is the one the relay made"
    );
    let foreign: Vec<Stored> = stream_messages(&outsider)
        .await
        .into_iter()
        .filter(|m| {
            m.position.is_none() || !m.is_latch_event || !m.subject.starts_with("latch.events.")
        })
        .collect();
    assert!(
        foreign.is_empty(),
        "foreign messages in the stream: {foreign:?}"
    );
    // ... and counted what it refused.
    assert!(latchd.metric("latch_nats_replies_refused_total") >= refused_before + 18);

    // Latch works as before: a token issued now reaches the stream, the
    // heartbeat vouches for it, and a verifier accepts it.
    let (_, _, token) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let head = latchd.head();
    eventually("the new events reached the stream", || {
        latchd.metric("latch_relay_published_position") == head
    });
    heartbeat_at(&outsider, head).await;
    let verifier = verifier_for(&latchd).await;
    accepts(&verifier, &token, "audit:read").await;
    assert_eq!(verifier.stats().foreign_skipped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn junk_published_into_the_stream_stops_neither_the_relay_nor_verifiers() {
    let dir = tempfile::tempdir().unwrap();
    let latchd = Latchd::start_in(dir.path());
    let admin = latchd.admin_token();
    let (account, _, first) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let head = latchd.head();
    eventually("the relay published the log", || {
        latchd.metric("latch_relay_published_position") == head
    });
    let verifier = verifier_for(&latchd).await;
    accepts(&verifier, &first, "audit:read").await;

    // A user who may publish into latch.events.> (which the shipped NATS
    // permissions forbid) writes two messages that are no Latch events:
    // one with no headers, one with a plausible Latch-Position.
    let writer = async_nats::connect(latchd.nats().url()).await.unwrap();
    let js = async_nats::jetstream::new(writer.clone());
    js.publish("latch.events.junk.x", "junk".into())
        .await
        .unwrap()
        .await
        .expect("the stream took the junk");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Latch-Position", (head + 1).to_string().as_str());
    headers.insert("Nats-Msg-Id", "not-an-event");
    js.publish_with_headers(
        "latch.events.token.issued.x",
        headers,
        br#"{"specversion": "1.0"}"#.to_vec().into(),
    )
    .await
    .unwrap()
    .await
    .expect("the stream took the forgery");

    // The relay meets them at the stream's tail in its next check (every
    // 3 s) ...
    tokio::time::sleep(Duration::from_millis(3500)).await;

    // The relay keeps relaying and heartbeating.
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "after-junk"}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let second = issued.body["token"].as_str().unwrap().to_owned();
    let head = latchd.head();
    eventually("the token issued after the junk reached the stream", || {
        latchd.metric("latch_relay_published_position") == head
    });
    heartbeat_at(&writer, head).await;
    accepts(&verifier, &second, "audit:read").await;
    assert_eq!(latchd.metric("latch_relay_failures_total"), 0);
    // ... having skipped and counted them, as the verifier did.
    assert!(latchd.metric("latch_relay_foreign_messages_total") >= 2);
    assert!(verifier.stats().foreign_skipped >= 2);

    // Across a restart of latchd (same log, same NATS).
    let nats = latchd.kill_9();
    let latchd = Latchd::start_with(dir.path(), nats);
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "after-restart"}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let third = issued.body["token"].as_str().unwrap().to_owned();
    let head = latchd.head();
    eventually("the relay publishes after the restart", || {
        latchd.metric("latch_relay_published_position") == head
    });
    heartbeat_at(&writer, head).await;
    accepts(&verifier, &third, "audit:read").await;
    accepts(&verifier, &first, "audit:read").await;
    // A verifier that starts now reads the junk too, and is current.
    let late = verifier_for(&latchd).await;
    accepts(&late, &third, "audit:read").await;
    assert!(late.stats().foreign_skipped >= 2);
    let positions: Vec<u64> = stream_messages(&writer)
        .await
        .into_iter()
        .filter(|m| m.is_latch_event)
        .filter_map(|m| m.position)
        .collect();
    assert_eq!(
        positions,
        (1..=head).collect::<Vec<_>>(),
        "every event once, in order"
    );
}

/// Everything a subscriber to `>` sees: subjects, headers and payloads.
struct Sniffer {
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Sniffer {
    async fn start(url: &str) -> Self {
        let client = async_nats::connect(url).await.unwrap();
        let mut all = client.subscribe(">").await.unwrap();
        client.flush().await.unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let into = seen.clone();
        let task = tokio::spawn(async move {
            let _client = client;
            while let Some(message) = all.next().await {
                let mut text = format!("{} ", message.subject);
                if let Some(headers) = &message.headers {
                    for (name, values) in headers.iter() {
                        for value in values {
                            text.push_str(&format!("{name}: {} ", value.as_str()));
                        }
                    }
                }
                text.push_str(&String::from_utf8_lossy(&message.payload));
                into.lock().unwrap().push(text);
            }
        });
        Self { seen, task }
    }

    fn captured(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn token_secrets_issued_or_rotated_over_nats_never_cross_nats_in_clear() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let nats_url = latchd.nats().url();
    account_with_token(&latchd, &admin, "ci-deploy", "auditor", None);
    let sniffer = Sniffer::start(&nats_url).await;

    let over_nats = |args: &[&str]| {
        let mut all = vec!["--transport", "nats", "--nats-url", nats_url.as_str()];
        all.extend_from_slice(args);
        let output = latchd.latch(Some(&admin), &all);
        serde_json::from_str::<Value>(&ok(output)).unwrap()
    };
    let issued = over_nats(&[
        "token",
        "issue",
        "ci-deploy",
        "--name",
        "deploy",
        "--output",
        "json",
    ]);
    let issued_secret = issued["token"]
        .as_str()
        .expect("the CLI shows the secret")
        .to_owned();
    let token_id = issued["id"].as_str().unwrap().to_owned();
    let rotated = over_nats(&["token", "rotate", &token_id, "--output", "json"]);
    let rotated_secret = rotated["token"]
        .as_str()
        .expect("the new secret")
        .to_owned();
    // The CLI printed working secrets.
    for secret in [&issued_secret, &rotated_secret] {
        let introspected = latchd.post("/v1/introspect", &admin, json!({"token": secret}));
        assert_eq!(introspected.body["active"], true, "{:?}", introspected.body);
    }

    // The sniffer saw the exchanges (their replies included) ...
    tokio::time::sleep(Duration::from_millis(500)).await;
    let captured = sniffer.captured();
    assert!(
        captured
            .iter()
            .any(|m| m.starts_with("latch.cmd.token.issue ")),
        "the sniffer saw the request"
    );
    assert!(
        captured
            .iter()
            .any(|m| m.starts_with("_INBOX") && m.contains("Latch-Sealed-Key")),
        "the sniffer saw the (sealed) replies"
    );
    // ... but neither secret, in any subject, header or payload.
    for secret in [&issued_secret, &rotated_secret] {
        let leaks: Vec<&String> = captured
            .iter()
            .filter(|m| m.contains(secret.as_str()))
            .collect();
        assert!(
            leaks.is_empty(),
            "a secret crossed NATS in clear: {leaks:?}"
        );
    }

    // A secret-bearing command without a reply key is refused before
    // anything is decided: 400, nothing appended, no token minted.
    let client = async_nats::connect(nats_url.as_str()).await.unwrap();
    let account = latchd.get("/v1/accounts", &admin).body["accounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "ci-deploy")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let head = latchd.head();
    for (subject, body) in [
        (
            "latch.cmd.token.issue",
            json!({"account_id": account, "name": "in-clear"}),
        ),
        ("latch.cmd.token.rotate", json!({"token_id": token_id})),
        ("latch.cmd.token.rotate_self", json!({})),
    ] {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {admin}").as_str());
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            client.request_with_headers(subject, headers, body.to_string().into()),
        )
        .await
        .expect("a reply within 10 s")
        .expect("a reply");
        let status = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Latch-Status"))
            .map(|v| v.as_str().to_owned());
        assert_eq!(status.as_deref(), Some("400"), "{subject}");
        let problem: Value = serde_json::from_slice(&reply.payload).unwrap();
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Latch-Reply-Key"),
            "{subject}: {problem}"
        );
        assert!(!String::from_utf8_lossy(&reply.payload).contains("latch_"));
    }
    assert_eq!(latchd.head(), head, "nothing was appended");
    sniffer.task.abort();
}
