//! Issue 15, finding 9: `RequirePermission` in a service that was not
//! served with connect info used to skip the address check, so a token
//! bound to `allowed_cidrs` worked from anywhere. It now fails closed: a
//! bound token is refused, with the reason, when the source address is
//! unknown. Real latchd, real NATS, the real verifier library.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use latch_e2e::{Latchd, account_with_token};
use latch_verify::{NatsConnection, RequirePermission, Verifier, VerifierConfig};
use serde_json::json;
use tower::ServiceExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_bound_to_addresses_is_refused_when_the_service_does_not_know_the_address() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, unbound) = account_with_token(&latchd, &admin, "svc", "auditor", None);
    let bound = |cidrs: Vec<&str>| {
        let issued = latchd.post(
            &format!("/v1/accounts/{account}/tokens"),
            &admin,
            json!({"name": format!("bound-{}", cidrs.join("-")), "allowed_cidrs": cidrs}),
        );
        assert_eq!(issued.status, 201, "{:?}", issued.body);
        issued.body["token"].as_str().unwrap().to_owned()
    };
    let office = bound(vec!["10.20.0.0/16"]);
    let loopback = bound(vec!["127.0.0.0/8"]);

    let mut config = VerifierConfig::new(NatsConnection::new(latchd.nats().url()));
    config.usage_report_every = None;
    let verifier = Verifier::connect(config).await.unwrap();
    let app = axum::Router::new()
        .route("/certificates", get(|| async { "ok" }))
        .layer(RequirePermission::new(
            verifier.clone(),
            "accounts:read".parse().unwrap(),
        ));
    let call = |token: &str, peer: Option<&str>| {
        let mut request = Request::get("/certificates")
            .header("Authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        if let Some(peer) = peer {
            let peer: SocketAddr = peer.parse().unwrap();
            request.extensions_mut().insert(ConnectInfo(peer));
        }
        app.clone().oneshot(request)
    };
    // Wait until the verifier has the tokens.
    let started = Instant::now();
    while call(&loopback, Some("127.0.0.1:5000"))
        .await
        .unwrap()
        .status()
        != StatusCode::OK
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the tokens never reached the verifier"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // With the address known, the CIDRs decide.
    assert_eq!(
        call(&office, Some("10.20.3.4:5000"))
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        call(&office, Some("192.0.2.1:5000"))
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );

    // Without connect info: bound tokens are refused, saying why.
    for token in [&office, &loopback] {
        let refused = call(token, None).await.unwrap();
        assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.headers()["content-type"],
            "application/problem+json"
        );
        let body: serde_json::Value = serde_json::from_slice(
            &axum::body::to_bytes(refused.into_body(), 4096)
                .await
                .unwrap(),
        )
        .unwrap();
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("does not know the request's source address"),
            "{detail}"
        );
        assert!(
            detail.contains("into_make_service_with_connect_info"),
            "{detail}"
        );
    }
    // A token bound to no address still works there.
    assert_eq!(call(&unbound, None).await.unwrap().status(), StatusCode::OK);
}
