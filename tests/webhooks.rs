//! Notifications by webhook (issue 21): events delivered to a receiver on
//! loopback, signed as the Standard Webhooks specification says (the
//! receiver checks each signature by the spec), at least once and in
//! order, retried through failures and a `kill -9` of latchd with the same
//! `webhook-id`, given up on (dead) after the configured attempts, and
//! redeliverable. Real latchd, real `latch` CLI.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use latch_e2e::{Latchd, account_with_token, eventually, ok};
use serde_json::{Value, json};

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    id: String,
    body: Value,
    raw: String,
    /// Whether the receiver answered 2xx.
    accepted: bool,
    signature_ok: bool,
}

struct ReceiverState {
    secret: Option<String>,
    /// Refuse the next this many requests (500).
    fail_next: usize,
    fail_always: bool,
    received: Vec<Received>,
}

#[derive(Clone)]
struct Receiver {
    url: String,
    state: Arc<Mutex<ReceiverState>>,
}

/// The Standard Webhooks check: HMAC-SHA256 with the secret's bytes over
/// `id.timestamp.body`, one of the `v1,` signatures, a recent timestamp.
fn verify(secret: &str, headers: &HeaderMap, body: &[u8]) -> bool {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let (id, timestamp, signatures) = (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let Ok(sent_at) = timestamp.parse::<i64>() else { return false };
    if (chrono::Utc::now().timestamp() - sent_at).abs() > 300 {
        return false;
    }
    let key = STANDARD.decode(secret.trim_start_matches("whsec_")).unwrap();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut signed = format!("{id}.{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    let expected = STANDARD.encode(ring::hmac::sign(&key, &signed).as_ref());
    signatures.split(' ').any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}

async fn receive(State(state): State<Arc<Mutex<ReceiverState>>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let mut state = state.lock().unwrap();
    let accepted = !state.fail_always && state.fail_next == 0;
    state.fail_next = state.fail_next.saturating_sub(1);
    let signature_ok = state.secret.as_deref().is_some_and(|s| verify(s, &headers, &body));
    state.received.push(Received {
        id: headers.get("webhook-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        raw: String::from_utf8_lossy(&body).into_owned(),
        accepted,
        signature_ok,
    });
    if accepted { StatusCode::NO_CONTENT } else { StatusCode::INTERNAL_SERVER_ERROR }
}

impl Receiver {
    fn start() -> Self {
        let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}/hooks/latch", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(ReceiverState {
            secret: None,
            fail_next: 0,
            fail_always: false,
            received: Vec::new(),
        }));
        let app = axum::Router::new().route("/hooks/latch", post(receive)).with_state(state.clone());
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap()
            });
        });
        Self { url, state }
    }

    fn set(&self, change: impl FnOnce(&mut ReceiverState)) {
        change(&mut self.state.lock().unwrap());
    }

    fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    fn accepted(&self) -> Vec<Received> {
        self.received().into_iter().filter(|r| r.accepted).collect()
    }
}

fn webhook_flags(base: &str, attempts: u32) -> Vec<String> {
    vec![
        "--webhook-retry-base".to_owned(),
        base.to_owned(),
        "--webhook-max-attempts".to_owned(),
        attempts.to_string(),
        // The receiver is on loopback.
        "--webhook-allow-private-addresses".to_owned(),
    ]
}

/// Adds a webhook for `events` through the CLI; (id, secret).
fn add(latchd: &Latchd, admin: &str, receiver: &Receiver, events: &str) -> (String, String) {
    let added = ok(latchd.latch(Some(admin), &["--output", "json", "webhook", "add", &receiver.url, "--events", events]));
    let added: Value = serde_json::from_str(&added).unwrap();
    let secret = added["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{added}");
    receiver.set(|s| s.secret = Some(secret.clone()));
    (added["id"].as_str().unwrap().to_owned(), secret)
}

fn revoke(latchd: &Latchd, admin: &str, token_id: &str) {
    let revoked = latchd.post(&format!("/v1/tokens/{token_id}/revoke"), admin, json!({"reason": "test"}));
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
}

fn deliveries(latchd: &Latchd, admin: &str, id: &str) -> Vec<Value> {
    let listed = ok(latchd.latch(Some(admin), &["--output", "json", "webhook", "deliveries", id]));
    serde_json::from_str::<Value>(&listed).unwrap().as_array().cloned().unwrap_or_default()
}

#[test]
fn deliveries_arrive_signed_in_order_and_survive_a_receiver_that_fails_three_times() {
    let receiver = Receiver::start();
    let latchd = Latchd::start_with_args(&webhook_flags("100ms", 6));
    let admin = latchd.admin_token();
    let (id, _) = add(&latchd, &admin, &receiver, "token.revoked");
    receiver.set(|s| s.fail_next = 3);
    let tokens: Vec<String> = (0..3)
        .map(|n| account_with_token(&latchd, &admin, &format!("svc-{n}"), "auditor", None).1)
        .collect();
    for token_id in &tokens {
        revoke(&latchd, &admin, token_id);
    }
    eventually("all three revocations are delivered", || receiver.accepted().len() == 3);
    let received = receiver.received();
    // The first failed three times, with one webhook-id throughout.
    assert_eq!(received.len(), 6, "{received:?}");
    assert!(received[..4].iter().all(|r| r.id == received[0].id));
    assert!(received.iter().all(|r| r.signature_ok), "every delivery verifies by the spec");
    // In log order, each the event it says, and no secret in any.
    let delivered: Vec<String> = receiver
        .accepted()
        .iter()
        .map(|r| r.body["data"]["token_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(delivered, tokens);
    for r in &received {
        assert_eq!(r.body["type"], "token.revoked");
        assert!(!r.raw.contains("latch_"), "a delivery carries no token: {}", r.raw);
        assert!(r.id.starts_with("msg_"));
    }
    let listed = deliveries(&latchd, &admin, &id);
    assert_eq!(listed.len(), 3);
    assert!(listed.iter().all(|d| d["status"] == "delivered"), "{listed:?}");
    assert_eq!(listed.last().unwrap()["attempts"], 4, "the first took four attempts: {listed:?}");
}

#[test]
fn a_delivery_survives_a_kill_9_of_latchd_mid_retry_with_the_same_webhook_id() {
    let receiver = Receiver::start();
    receiver.set(|s| s.fail_always = true);
    let data = tempfile::tempdir().unwrap();
    let launch = |data: &Path, nats: latch_testkit::NatsServer| {
        let mut args = vec!["--nats-url".to_owned(), nats.url()];
        args.extend(webhook_flags("300ms", 20));
        Latchd::launch_with(data, nats, "127.0.0.1", &args, &[], None)
    };
    let latchd = launch(data.path(), latch_testkit::NatsServer::start());
    let admin = latchd.admin_token();
    add(&latchd, &admin, &receiver, "token.revoked");
    let (_, token_id, _) = account_with_token(&latchd, &admin, "svc", "auditor", None);
    revoke(&latchd, &admin, &token_id);
    eventually("two failed attempts", || receiver.received().len() >= 2);
    let webhook_id = receiver.received()[0].id.clone();

    let nats = latchd.kill_9();
    receiver.set(|s| s.fail_always = false);
    let latchd = launch(data.path(), nats);
    eventually("the delivery arrives after the restart", || !receiver.accepted().is_empty());
    std::thread::sleep(Duration::from_millis(700));
    let accepted = receiver.accepted();
    assert_eq!(accepted.len(), 1, "delivered once after the restart: {accepted:?}");
    assert_eq!(accepted[0].id, webhook_id, "the same webhook-id before and after");
    assert_eq!(accepted[0].body["data"]["token_id"], token_id.as_str());
    drop(latchd);
}

#[test]
fn a_delivery_that_fails_every_attempt_is_dead_until_redelivered_and_the_endpoint_moves_on() {
    let receiver = Receiver::start();
    receiver.set(|s| s.fail_always = true);
    let latchd = Latchd::start_with_args(&webhook_flags("50ms", 3));
    let admin = latchd.admin_token();
    let (id, _) = add(&latchd, &admin, &receiver, "token.*");
    let (_, first, _) = account_with_token(&latchd, &admin, "first", "auditor", None);
    revoke(&latchd, &admin, &first);
    eventually("the first revocation's delivery is dead", || {
        deliveries(&latchd, &admin, &id).iter().any(|d| d["status"] == "dead" && d["event_type"] == "token.revoked")
    });
    // A token.issued of `first` came before; it died too. The endpoint
    // moves on to what comes next.
    receiver.set(|s| s.fail_always = false);
    let (_, second, _) = account_with_token(&latchd, &admin, "second", "auditor", None);
    eventually("the next event is delivered", || {
        receiver.accepted().iter().any(|r| r.body["data"]["token_id"] == second.as_str())
    });
    let dead: Vec<Value> = deliveries(&latchd, &admin, &id)
        .into_iter()
        .filter(|d| d["status"] == "dead" && d["event_type"] == "token.revoked")
        .collect();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["attempts"], 3);
    let position = dead[0]["position"].as_u64().unwrap().to_string();
    ok(latchd.latch(Some(&admin), &["webhook", "redeliver", &id, &position]));
    eventually("the dead delivery arrives once redelivered", || {
        receiver
            .accepted()
            .iter()
            .any(|r| r.body["type"] == "token.revoked" && r.body["data"]["token_id"] == first.as_str())
    });
}

#[test]
fn only_webhooks_write_adds_endpoints_and_nobody_reads_a_secret_or_a_urls_path_back() {
    let receiver = Receiver::start();
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (id, secret) = add(&latchd, &admin, &receiver, "token.leak_reported,token.reuse_detected");
    let (_, _, auditor) = account_with_token(&latchd, &admin, "auditor", "auditor", None);

    let denied = latchd.latch(Some(&auditor), &["webhook", "add", "https://evil.example/x", "--events", "*"]);
    assert!(!denied.status.success());
    let listed = latchd.get("/v1/webhooks", &auditor);
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    let text = listed.body.to_string();
    assert!(!text.contains(&secret) && !text.contains("whsec_"), "{text}");
    assert!(!text.contains("/hooks/latch"), "an auditor sees the origin only: {text}");
    let full = latchd.get("/v1/webhooks", &admin).body.to_string();
    assert!(full.contains(&receiver.url) && !full.contains(&secret), "{full}");
    assert_eq!(latchd.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&auditor), None).status, 403);

    for (url, events) in [("file:///etc/passwd", json!(["*"])), ("https://user:pass@ok.example/h", json!(["*"])), ("https://ok.example/h", json!(["token.exploded"])), ("https://ok.example/h", json!([]))] {
        let refused = latchd.post("/v1/webhooks", &admin, json!({"url": url, "events": events}));
        assert!(refused.status == 422 || refused.status == 400, "{url} {events}: {:?}", refused.body);
    }
    // Without --webhook-allow-private-addresses latchd calls no loopback,
    // private or link-local address: the delivery fails, saying why.
    let (_, _, leaked) = account_with_token(&latchd, &admin, "leaky", "auditor", None);
    assert_eq!(latchd.post("/v1/leaks", &admin, json!({"tokens": [{"token": leaked}]})).status, 200);
    eventually("the delivery is refused", || {
        deliveries(&latchd, &admin, &id)
            .iter()
            .any(|d| d["last_error"].as_str().is_some_and(|e| e.contains("resolves to 127.0.0.1")))
    });
    assert!(receiver.received().is_empty(), "latchd called a loopback address");

    assert_eq!(latchd.call("DELETE", &format!("/v1/webhooks/{id}"), Some(&admin), None).status, 204);
    assert_eq!(latchd.get("/v1/webhooks", &admin).body["webhooks"], json!([]));
}
