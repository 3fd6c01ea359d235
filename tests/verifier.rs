//! The verifier against a real nats-server, fed by latchd's real command
//! handler and relay.

use std::sync::Arc;
use std::time::{Duration, Instant};

use latch_core::*;
use latch_testkit::{NatsServer, TcpProxy};
use latch_verify::{Denial, NatsConnection, Verifier, VerifierConfig};
use latchd::*;

struct Latch {
    handle: CommandHandle,
    node: Node,
    _dir: tempfile::TempDir,
}

/// latchd as it runs (`Node`), with NATS and the shared signing key, but no
/// admin account and no scheduler: these tests count every event in the log.
async fn start_latch(nats: &NatsServer) -> Latch {
    let dir = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::new(dir.path());
    config.nats = Some(latch_bus::NatsConnection::new(nats.url()));
    config.signing_key = SigningKeySource::Given(KEYRING.clone());
    config.bootstrap_admin = false;
    config.scheduler = false;
    let node = Node::start(config).await.unwrap();
    Latch {
        handle: node.commands(),
        node,
        _dir: dir,
    }
}

impl Latch {
    async fn pause_relay(&self) {
        self.node.pause_relay().await;
    }

    async fn resume_relay(&self) {
        self.node.resume_relay().await;
    }

    async fn run(&self, command: Command) {
        match self
            .handle
            .submit(CommandRequest::new(Actor::System, command))
            .await
        {
            Ok(Ok(_)) => {}
            other => panic!("command failed: {other:?}"),
        }
    }

    async fn role(&self, name: &str, permissions: &[&str]) {
        self.run(Command::DefineRole {
            name: RoleName::parse(name).unwrap(),
            permissions: PermissionSet::parse(permissions).unwrap(),
            description: String::new(),
        })
        .await;
    }

    async fn account(&self, name: &str, role: &str) -> AccountId {
        let account_id = AccountId::new();
        self.run(Command::CreateAccount {
            account_id,
            name: AccountName::parse(name).unwrap(),
            role: RoleName::parse(role).unwrap(),
            description: String::new(),
        })
        .await;
        account_id
    }

    async fn token(&self, account_id: AccountId, ttl: Option<Span>) -> (TokenId, String) {
        let token_id = TokenId::new();
        let secret = TokenSecret::generate(&mut rand::rng());
        self.run(Command::IssueToken {
            account_id,
            token_id,
            name: "t".into(),
            scopes: None,
            ttl: ttl.map(Ttl::For),
            allowed_cidrs: Vec::new(),
            digest: secret.digest(),
        })
        .await;
        (token_id, secret.expose().to_owned())
    }
    /// Issues `count` tokens to `account` and revokes each; their secrets.
    async fn revoked_tokens(&self, account_id: AccountId, count: usize) -> Vec<String> {
        let mut revoked = Vec::new();
        for _ in 0..count {
            let (token_id, secret) = self.token(account_id, None).await;
            self.run(Command::RevokeToken {
                token_id,
                reason: String::new(),
            })
            .await;
            revoked.push(secret);
        }
        revoked
    }
}

fn permission(text: &str) -> Permission {
    Permission::parse(text).unwrap()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What every latchd of these tests signs with: the verifiers trust it,
/// so everything here runs with signing on.
static KEYRING: std::sync::LazyLock<Arc<Keyring>> =
    std::sync::LazyLock::new(|| Arc::new(Keyring::ephemeral()));

fn trusted() -> latch_bus::TrustedKeys {
    latch_bus::TrustedKeys::new([KEYRING.current().public_key()])
}

fn config(nats: &NatsServer) -> VerifierConfig {
    let mut config = VerifierConfig::new(NatsConnection::new(nats.url()));
    config.max_staleness = Duration::from_millis(1500);
    config.trusted_keys = trusted();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_access_reducing_change_takes_effect() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    latch
        .role(
            "cert-operator",
            &["certificates:issue", "certificates:read"],
        )
        .await;
    let issue = permission("certificates:issue");
    let read = permission("certificates:read");
    let a = latch.account("a", "cert-operator").await;
    let (revoked_id, revoked) = latch.token(a, None).await;
    let (rotated_id, rotated) = latch.token(a, None).await;
    let (_, expiring) = latch.token(a, Some(Span::from_seconds(2))).await;
    let b = latch.account("b", "cert-operator").await;
    let (_, disabled) = latch.token(b, None).await;
    let c = latch.account("c", "cert-operator").await;
    let (_, deleted) = latch.token(c, None).await;
    let d = latch.account("d", "cert-operator").await;
    let (_, shrunk) = latch.token(d, None).await;

    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    for token in [&revoked, &rotated, &expiring, &disabled, &deleted, &shrunk] {
        assert!(verifier.verify(token, &issue).is_ok());
    }
    assert_eq!(
        verifier.verify(&revoked, &permission("accounts:write")),
        Err(Denial::MissingPermission)
    );

    latch
        .run(Command::RevokeToken {
            token_id: revoked_id,
            reason: "leak".into(),
        })
        .await;
    latch
        .run(Command::RotateToken {
            token_id: rotated_id,
            successor_id: TokenId::new(),
            successor_digest: TokenDigest::of("s"),
            grace: Some(Span::from_seconds(1)),
        })
        .await;
    latch
        .run(Command::DisableAccount {
            account_id: b,
            reason: "leak".into(),
        })
        .await;
    latch.run(Command::DeleteAccount { account_id: c }).await;
    latch.role("cert-operator", &["certificates:read"]).await;

    eventually("the revocation applies", || {
        verifier.verify(&revoked, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    eventually("the disable applies", || {
        verifier.verify(&disabled, &read) == Err(Denial::Rejected(Rejection::AccountDisabled))
    })
    .await;
    eventually("the delete applies", || {
        verifier.verify(&deleted, &read) == Err(Denial::Rejected(Rejection::AccountDeleted))
    })
    .await;
    eventually("the role shrink applies", || {
        verifier.verify(&shrunk, &issue) == Err(Denial::MissingPermission)
    })
    .await;
    assert!(
        verifier.verify(&shrunk, &read).is_ok(),
        "what the role still grants works"
    );
    eventually("the rotated token's grace ends", || {
        verifier.verify(&rotated, &read) == Err(Denial::Rejected(Rejection::Expired))
    })
    .await;
    eventually("the short token expires, with no event", || {
        verifier.verify(&expiring, &read) == Err(Denial::Rejected(Rejection::Expired))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_cut_off_from_nats_fails_closed_and_never_accepts_a_revoked_token() {
    let mut nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("svc", "auditor").await;
    let (token_id, token) = latch.token(account, None).await;
    let (_, other) = latch.token(account, None).await;
    let read = permission("accounts:read");
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    assert!(verifier.verify(&token, &read).is_ok());

    nats.stop();
    eventually("the verifier goes stale", || {
        verifier.verify(&other, &read) == Err(Denial::Stale)
    })
    .await;
    latch
        .run(Command::RevokeToken {
            token_id,
            reason: "revoked while NATS was down".into(),
        })
        .await;

    nats.restart();
    // From now on the revoked token must never be accepted: stale until the
    // verifier has caught up, revoked after.
    let started = Instant::now();
    loop {
        match verifier.verify(&token, &read) {
            Err(Denial::Stale) => {}
            Err(Denial::Rejected(Rejection::Revoked)) => break,
            other => panic!("the revoked token got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the verifier never caught up"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(
        verifier.verify(&other, &read).is_ok(),
        "live tokens work again once current"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_verifier_bootstraps_the_whole_history() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("svc", "auditor").await;
    let mut tokens = Vec::new();
    for n in 0..50 {
        let (id, secret) = latch.token(account, None).await;
        if n % 2 == 0 {
            latch
                .run(Command::RevokeToken {
                    token_id: id,
                    reason: String::new(),
                })
                .await;
        }
        tokens.push(secret);
    }
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    let read = permission("accounts:read");
    for (n, token) in tokens.iter().enumerate() {
        let expected = if n % 2 == 0 {
            Err(Denial::Rejected(Rejection::Revoked))
        } else {
            verifier.verify(token, &read)
        };
        assert_eq!(
            verifier.verify(token, &read).map(|_| ()),
            expected.map(|_| ()),
            "token {n}"
        );
        if n % 2 == 1 {
            assert!(verifier.verify(token, &read).is_ok());
        }
    }
    assert_eq!(verifier.position(), Position::new(1 + 50 + 25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_axum_layer_answers_like_latchd_and_hands_over_the_principal() {
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use tower::ServiceExt;

    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    latch
        .role(
            "cert-operator",
            &["certificates:issue", "certificates:read"],
        )
        .await;
    let account = latch.account("ci", "cert-operator").await;
    let (token_id, token) = latch.token(account, None).await;
    let reader = latch.account("reader", "auditor").await;
    let (_, read_only) = latch.token(reader, None).await;
    let verifier = Verifier::connect(config(&nats)).await.unwrap();

    let app = axum::Router::new()
        .route(
            "/certificates",
            post(
                |axum::Extension(who): axum::Extension<latch_verify::Verified>| async move {
                    who.token_id.to_string()
                },
            ),
        )
        .layer(latch_verify::RequirePermission::new(
            verifier.clone(),
            permission("certificates:issue"),
        ));
    let call = |token: Option<&str>| {
        let mut request = Request::post("/certificates");
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        app.clone().oneshot(request.body(Body::empty()).unwrap())
    };

    let ok = call(Some(&token)).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    let body = axum::body::to_bytes(ok.into_body(), 1024).await.unwrap();
    assert_eq!(
        body,
        token_id.to_string().as_bytes(),
        "the principal reaches the handler"
    );

    let missing = call(None).await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert!(missing.headers().contains_key("www-authenticate"));
    assert_eq!(
        missing.headers()["content-type"],
        "application/problem+json"
    );
    let forbidden = call(Some(&read_only)).await.unwrap();
    assert_eq!(forbidden.status(), StatusCode::FORBIDDEN);
    let body: serde_json::Value = serde_json::from_slice(
        &axum::body::to_bytes(forbidden.into_body(), 4096)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["missing_permission"], "certificates:issue");

    latch
        .run(Command::RevokeToken {
            token_id,
            reason: "leak".into(),
        })
        .await;
    let started = Instant::now();
    loop {
        if call(Some(&token)).await.unwrap().status() == StatusCode::UNAUTHORIZED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the revocation never reached the layer"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_stream_is_refilled_without_double_application_or_stall() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("svc", "auditor").await;
    let (_, token) = latch.token(account, None).await;
    let read = permission("accounts:read");
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    let before = verifier.position();
    assert_eq!(before, Position::new(2));

    // The broker loses the whole stream (as after a crash with unsynced data).
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    js.delete_stream(latch_bus::STREAM_NAME).await.unwrap();

    // New changes still arrive: the relay refills the stream in order, and
    // the verifier skips what it already has.
    let (revoked_id, revoked) = latch.token(account, None).await;
    latch
        .run(Command::RevokeToken {
            token_id: revoked_id,
            reason: "after the loss".into(),
        })
        .await;
    eventually("the verifier sees the new revocation", || {
        verifier.verify(&revoked, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    assert_eq!(verifier.position(), Position::new(4));
    assert!(verifier.verify(&token, &read).is_ok());
    assert_eq!(
        verifier.stats().events_applied,
        4,
        "each event applied exactly once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_started_from_latchds_snapshot_reads_only_the_tail() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    // latchd's own HTTP API serves GET /v1/snapshot.
    let url = latch.node.url();

    let verifier_account = latch.account("edge-verifier", "verifier").await;
    let (_, verifier_token) = latch.token(verifier_account, None).await;
    let account = latch.account("svc", "auditor").await;
    let revoked = latch.revoked_tokens(account, 20).await;
    let (_, live) = latch.token(account, None).await;
    let head = latch.handle.state().position();

    let mut config = config(&nats);
    config.snapshot = Some(latch_verify::SnapshotSource {
        latchd_url: url,
        token: verifier_token,
    });
    let verifier = Verifier::connect(config).await.unwrap();
    let read = permission("accounts:read");
    assert!(verifier.position() >= head);
    assert_eq!(
        verifier.stats().events_applied,
        verifier.position().get() - head.get(),
        "only the tail after the snapshot was folded"
    );
    assert!(verifier.verify(&live, &read).is_ok());
    for token in &revoked {
        assert_eq!(
            verifier.verify(token, &read),
            Err(Denial::Rejected(Rejection::Revoked))
        );
    }

    // And it follows from there.
    let (late_id, late) = latch.token(account, None).await;
    eventually("the new token arrives", || {
        verifier.verify(&late, &read).is_ok()
    })
    .await;
    latch
        .run(Command::RevokeToken {
            token_id: late_id,
            reason: String::new(),
        })
        .await;
    eventually("its revocation arrives", || {
        verifier.verify(&late, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsigned_snapshot_is_refused_and_the_stream_read_instead() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    // latchd's API without its signing keys: what a forged snapshot source
    // (or a man in the middle) would serve.
    let app = latchd::api::AppState::new(latch.handle.clone(), Arc::new(SystemClock));
    app.set_ready(true);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let router =
        latchd::api::router(app).into_make_service_with_connect_info::<std::net::SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let verifier_account = latch.account("edge-verifier", "verifier").await;
    let (_, verifier_token) = latch.token(verifier_account, None).await;
    let account = latch.account("svc", "auditor").await;
    let (_, live) = latch.token(account, None).await;
    let head = latch.handle.state().position();

    let mut config = config(&nats);
    config.snapshot = Some(latch_verify::SnapshotSource {
        latchd_url: url,
        token: verifier_token,
    });
    let verifier = Verifier::connect(config).await.unwrap();
    assert_eq!(verifier.stats().rejected, 1);
    assert!(
        verifier.stats().events_applied >= head.get(),
        "the whole stream was read, not the snapshot"
    );
    assert!(verifier.verify(&live, &permission("accounts:read")).is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_disconnected_during_revocations_rejects_them_before_it_accepts_anything() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("svc", "auditor").await;
    let mut to_revoke = Vec::new();
    for _ in 0..10 {
        to_revoke.push(latch.token(account, None).await);
    }
    let (_, live) = latch.token(account, None).await;
    let read = permission("accounts:read");

    // This verifier reaches NATS through a proxy the test can cut; a second
    // one, connected directly, shows when the revocations were published.
    let proxy = TcpProxy::start(nats.address());
    let mut cut_off = VerifierConfig::new(NatsConnection::new(proxy.nats_url()));
    cut_off.max_staleness = Duration::from_millis(1500);
    cut_off.trusted_keys = trusted();
    let verifier = Verifier::connect(cut_off).await.unwrap();
    let witness = Verifier::connect(config(&nats)).await.unwrap();
    for (_, token) in &to_revoke {
        assert!(verifier.verify(token, &read).is_ok());
    }

    proxy.cut();
    eventually("the cut-off verifier goes stale", || {
        verifier.verify(&live, &read) == Err(Denial::Stale)
    })
    .await;
    for (token_id, _) in &to_revoke {
        latch
            .run(Command::RevokeToken {
                token_id: *token_id,
                reason: "revoked while a verifier was cut off".into(),
            })
            .await;
    }
    eventually("the revocations are published", || {
        to_revoke.iter().all(|(_, token)| {
            witness.verify(token, &read) == Err(Denial::Rejected(Rejection::Revoked))
        })
    })
    .await;
    assert_eq!(
        verifier.verify(&live, &read),
        Err(Denial::Stale),
        "still cut off"
    );

    proxy.restore();
    // Until it has caught up it accepts nothing; the first token it accepts
    // comes after every revocation is in place.
    let started = Instant::now();
    loop {
        for (_, token) in &to_revoke {
            match verifier.verify(token, &read) {
                Err(Denial::Stale | Denial::Rejected(Rejection::Revoked)) => {}
                other => panic!("a token revoked during the cut got {other:?}"),
            }
        }
        match verifier.verify(&live, &read) {
            Err(Denial::Stale) => {}
            Ok(_) => break,
            other => panic!("the live token got {other:?}"),
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the verifier never reconnected"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (_, token) in &to_revoke {
        assert_eq!(
            verifier.verify(token, &read),
            Err(Denial::Rejected(Rejection::Revoked))
        );
    }
    assert_eq!(verifier.position(), witness.position());
}

/// Every `Latch-Position` in the stream, in stream order.
async fn stream_positions(nats: &NatsServer) -> Vec<u64> {
    use async_nats::jetstream::consumer::{DeliverPolicy, pull::OrderedConfig};
    use futures::StreamExt;
    let js = async_nats::jetstream::new(async_nats::connect(nats.url()).await.unwrap());
    let mut stream = js.get_stream(latch_bus::STREAM_NAME).await.unwrap();
    let count = stream.info().await.unwrap().state.messages;
    let mut positions = Vec::new();
    if count == 0 {
        return positions;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut messages = consumer.messages().await.unwrap();
    while (positions.len() as u64) < count {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let position = message
            .headers
            .as_ref()
            .and_then(|h| h.get(latch_bus::headers::LATCH_POSITION))
            .unwrap()
            .as_str()
            .parse()
            .unwrap();
        positions.push(position);
    }
    positions
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_short_by_a_broker_crash_is_refilled_in_order_without_double_application_or_stall()
 {
    let mut nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("svc", "auditor").await;
    let revoked = latch.revoked_tokens(account, 15).await;
    let (_, live) = latch.token(account, None).await;
    let read = permission("accounts:read");
    let head = latch.handle.state().position();
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    eventually("the verifier has every event", || {
        verifier.position() == head
    })
    .await;
    assert_eq!(
        verifier.stats().events_applied,
        head.get()
    );

    // The broker crashes and loses the stream's tail. The relay is paused so
    // the test can see the hole before it is repaired; while it is, one more
    // revocation is appended.
    latch.pause_relay().await;
    let cut = nats.cut_stream_tail(latch_bus::STREAM_NAME, 0.6);
    let survived = stream_positions(&nats).await;
    assert!(
        cut > 0 && (survived.len() as u64) < head.get(),
        "the crash cut the stream short ({} of {head} left)",
        survived.len()
    );
    assert_eq!(
        survived,
        (1..=survived.len() as u64).collect::<Vec<_>>(),
        "what survives is a prefix"
    );
    let (late_id, late) = latch.token(account, None).await;
    latch
        .run(Command::RevokeToken {
            token_id: late_id,
            reason: "after the crash".into(),
        })
        .await;
    let new_head = latch.handle.state().position();

    latch.resume_relay().await;
    eventually(
        "the verifier sees the revocation made after the crash",
        || verifier.verify(&late, &read) == Err(Denial::Rejected(Rejection::Revoked)),
    )
    .await;
    assert_eq!(
        stream_positions(&nats).await,
        (1..=new_head.get()).collect::<Vec<_>>(),
        "the stream is whole again, each event once, in order"
    );
    assert_eq!(verifier.position(), new_head);
    assert_eq!(
        verifier.stats().events_applied,
        new_head.get(),
        "no event applied twice"
    );
    assert!(
        verifier.verify(&live, &read).is_ok(),
        "and it did not stall"
    );
    for token in &revoked {
        assert_eq!(
            verifier.verify(token, &read),
            Err(Denial::Rejected(Rejection::Revoked))
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_the_rotation_grace_both_tokens_pass_and_after_it_only_the_new_one() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("pipeline", "auditor").await;
    let (old_id, old) = latch.token(account, None).await;
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    let read = permission("accounts:read");
    let successor = TokenSecret::generate(&mut rand::rng());
    let grace = Duration::from_secs(2);
    latch
        .run(Command::RotateToken {
            token_id: old_id,
            successor_id: TokenId::new(),
            successor_digest: successor.digest(),
            grace: Some(Span::from_seconds(2)),
        })
        .await;
    let rotated_at = Instant::now();
    eventually("the successor arrives", || {
        verifier.verify(successor.expose(), &read).is_ok()
    })
    .await;
    assert!(rotated_at.elapsed() < grace, "checked within the grace");
    assert!(
        verifier.verify(&old, &read).is_ok(),
        "the old token still passes during the grace"
    );
    eventually("the grace ends", || {
        verifier.verify(&old, &read) == Err(Denial::Rejected(Rejection::Expired))
    })
    .await;
    assert!(
        rotated_at.elapsed() >= grace - Duration::from_millis(100),
        "not before the grace ends"
    );
    assert!(
        verifier.verify(successor.expose(), &read).is_ok(),
        "the new token carries on"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn address_bound_tokens_pass_only_from_their_addresses_ipv4_and_ipv6() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let account = latch.account("edge", "auditor").await;
    let secret = TokenSecret::generate(&mut rand::rng());
    let cidrs = vec![
        "10.0.0.0/8".parse().unwrap(),
        "2001:db8::/32".parse().unwrap(),
    ];
    latch
        .run(Command::IssueToken {
            account_id: account,
            token_id: TokenId::new(),
            name: "bound".into(),
            scopes: None,
            ttl: None,
            allowed_cidrs: cidrs,
            digest: secret.digest(),
        })
        .await;
    let verifier = Verifier::connect(config(&nats)).await.unwrap();
    let read = permission("accounts:read");
    let token = secret.expose();
    let from = |addr: &str| verifier.verify_from(token, &read, addr.parse().unwrap());
    assert!(from("10.20.30.40").is_ok());
    assert!(from("2001:db8::7").is_ok());
    assert!(
        from("::ffff:10.1.1.1").is_ok(),
        "an IPv4 client seen through an IPv6 socket"
    );
    assert_eq!(
        from("192.168.1.1"),
        Err(Denial::Rejected(Rejection::SourceNotAllowed))
    );
    assert_eq!(
        from("2001:db9::1"),
        Err(Denial::Rejected(Rejection::SourceNotAllowed))
    );
    let verified = from("10.0.0.1").unwrap();
    let effective = verifier.effective_permissions(&verified).unwrap();
    assert!(
        effective.covers(&read) && !effective.covers(&permission("accounts:write")),
        "the auditor role's permissions: {effective:?}"
    );
}

/// `Follow::Stream`: a verifier that may not subscribe to the live tail
/// (or whose operator prefers the stream) follows with an ordered consumer
/// all along, and still learns new tokens and revocations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_verifier_following_the_stream_alone_learns_tokens_and_revocations() {
    let nats = NatsServer::start();
    let latch = start_latch(&nats).await;
    let read = permission("accounts:read");
    let a = latch.account("a", "auditor").await;
    let mut config = config(&nats);
    config.follow = latch_verify::Follow::Stream;
    let verifier = Verifier::connect(config).await.unwrap();
    let (token_id, token) = latch.token(a, None).await;
    eventually("the new token arrives", || verifier.verify(&token, &read).is_ok()).await;
    latch
        .run(Command::RevokeToken {
            token_id,
            reason: "leak".into(),
        })
        .await;
    eventually("its revocation arrives", || {
        verifier.verify(&token, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    assert_eq!(
        verifier.stats().stream_catch_ups,
        1,
        "one consumer, followed all along"
    );
}
