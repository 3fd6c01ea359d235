//! The verifier against a real nats-server with no latchd: how it fails to
//! connect, how it becomes current and stale again on heartbeats alone, what
//! it counts, and how `RequirePermission` answers without tokens (with the
//! stream probe off where heartbeats alone are tested: stream_probe.rs has
//! how the stream keeps a verifier current without them). Tests with
//! tokens need latchd's command handler: they are the root package's
//! (tests/verifier.rs), so that this crate's dev-dependencies have no
//! RocksDB.

use std::error::Error as _;
use std::time::{Duration, Instant};

use latch_bus::{Heartbeat, STREAM_NAME, subject};
use latch_testkit::NatsServer;
use latch_verify::{
    ConnectError, Denial, NatsConnectError, NatsConnection, Permission, Position, Verifier,
    VerifierConfig, VerifierStats,
};

fn config(nats: &NatsServer) -> VerifierConfig {
    let mut config = VerifierConfig::new(NatsConnection::new(nats.url()));
    config.max_staleness = Duration::from_millis(800);
    config.connect_timeout = Duration::from_secs(10);
    config.usage_report_every = None;
    config
}

/// What latchd's relay provides that a verifier needs to be current with
/// an empty log: the stream, and heartbeats at position 0 (unsigned: the
/// verifier trusts no key here). Dropping it stops the heartbeats.
struct EmptyLog {
    client: async_nats::Client,
    heartbeats: tokio::task::JoinHandle<()>,
}

impl EmptyLog {
    async fn start(nats: &NatsServer) -> Self {
        let client = async_nats::connect(nats.url()).await.unwrap();
        async_nats::jetstream::new(client.clone())
            .create_stream(async_nats::jetstream::stream::Config {
                name: STREAM_NAME.to_owned(),
                subjects: vec![subject::EVENTS_WILDCARD.to_owned()],
                ..Default::default()
            })
            .await
            .unwrap();
        let heartbeats = tokio::spawn({
            let client = client.clone();
            async move {
                loop {
                    let beat = Heartbeat::new(Position::ZERO, chrono::Utc::now());
                    client
                        .publish(subject::HEARTBEAT, beat.encode().into())
                        .await
                        .unwrap();
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
        Self { client, heartbeats }
    }

    fn stop_heartbeats(&self) {
        self.heartbeats.abort();
    }
}

impl Drop for EmptyLog {
    fn drop(&mut self) {
        self.heartbeats.abort();
    }
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_verifier_that_cannot_reach_nats_says_why_and_keeps_the_cause() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = VerifierConfig::new(NatsConnection::new(format!("nats://127.0.0.1:{port}")));
    let Err(error) = Verifier::connect(config).await else {
        panic!("connected to nothing");
    };
    assert!(matches!(error, ConnectError::Nats(_)), "{error:?}");
    assert!(error.to_string().starts_with("NATS: "), "{error}");
    let cause = error.source().expect("the NATS error as its source");
    assert!(
        cause.downcast_ref::<NatsConnectError>().is_some(),
        "{cause:?}"
    );
}

#[tokio::test]
async fn a_verifier_with_no_relay_is_never_current() {
    let nats = NatsServer::start();
    let mut config = config(&nats);
    config.connect_timeout = Duration::from_millis(500);
    let Err(error) = Verifier::connect(config).await else {
        panic!("current with no heartbeat");
    };
    assert!(
        matches!(error, ConnectError::NotCurrent(timeout) if timeout == Duration::from_millis(500)),
        "{error:?}"
    );
    assert!(error.source().is_none());
}

#[tokio::test]
async fn heartbeats_keep_a_verifier_current_and_it_counts_what_it_skips() {
    let nats = NatsServer::start();
    let log = EmptyLog::start(&nats).await;
    let mut config = config(&nats);
    config.stream_probe = false;
    let verifier = Verifier::connect(config).await.unwrap();
    assert!(!verifier.is_stale());
    assert_eq!(verifier.position(), Position::ZERO);
    let read: Permission = "accounts:read".parse().unwrap();
    assert!(matches!(
        verifier.verify("latch_nonsense", &read),
        Err(Denial::Rejected(_))
    ));

    // The stats are a snapshot: plain numbers that do not move after.
    let before: VerifierStats = verifier.stats();
    assert_eq!(before.events_applied, 0);
    assert_eq!(before.foreign_skipped, 0);
    log.client
        .publish("latch.events.not-an-event", "hello".into())
        .await
        .unwrap();
    until("the foreign message is skipped", || {
        verifier.stats().foreign_skipped == 1
    })
    .await;
    assert_eq!(before.foreign_skipped, 0);
    assert_eq!(verifier.stats().events_applied, 0);

    // No heartbeat for longer than max_staleness: every token is refused.
    log.stop_heartbeats();
    until("stale without heartbeats", || verifier.is_stale()).await;
    assert_eq!(verifier.verify("latch_nonsense", &read), Err(Denial::Stale));
}

#[cfg(feature = "axum")]
mod require_permission {
    use super::*;

    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use latch_verify::RequirePermission;
    use tower::ServiceExt;

    async fn answer(
        app: &axum::Router,
        authorization: Option<&str>,
    ) -> (StatusCode, String, serde_json::Value) {
        let mut request = Request::get("/certificates");
        if let Some(authorization) = authorization {
            request = request.header(header::AUTHORIZATION, authorization);
        }
        let response = app
            .clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let content_type = response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .unwrap();
        (status, content_type, serde_json::from_slice(&body).unwrap())
    }

    #[tokio::test]
    async fn refusals_are_problems_401_without_a_valid_token_503_when_stale() {
        let nats = NatsServer::start();
        let log = EmptyLog::start(&nats).await;
        let mut config = config(&nats);
        config.stream_probe = false;
        let verifier = Verifier::connect(config).await.unwrap();
        let app = axum::Router::new()
            .route("/certificates", axum::routing::get(|| async { "listed" }))
            .layer(RequirePermission::new(
                verifier.clone(),
                "certificates:read".parse().unwrap(),
            ));

        let (status, content_type, problem) = answer(&app, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(content_type, "application/problem+json");
        assert_eq!(problem["type"], "urn:latch:problem:unauthenticated");
        assert_eq!(problem["detail"], "missing Authorization: Bearer <token>");

        let (status, _, problem) = answer(&app, Some("Bearer latch_unknown")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(problem["type"], "urn:latch:problem:unauthenticated");

        log.stop_heartbeats();
        until("stale without heartbeats", || verifier.is_stale()).await;
        let (status, _, problem) = answer(&app, Some("Bearer latch_unknown")).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(problem["type"], "urn:latch:problem:verifier-stale");
        assert_eq!(problem["status"], 503);
    }
}
