//! `certificate-service`: a small service that embeds the Latch verifier.
//!
//! `POST /certificates {"common_name"}` needs `certificates:issue`;
//! `GET /certificates` needs `certificates:read`. Tokens are checked locally
//! against state that follows latchd's event stream over NATS, so a revoked
//! token stops working here within milliseconds, and every token is refused
//! when the verifier cannot prove it is current.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Parser;
use latch_verify::{Permission, RequirePermission, Verified, Verifier, VerifierConfig};
use serde::{Deserialize, Serialize};

#[derive(Parser)]
#[command(about = "Example certificate service protected by the Latch verifier")]
struct Settings {
    /// The NATS server latchd relays its events to, and how to authenticate.
    #[command(flatten)]
    nats: latch_bus::NatsArgs,
    /// Which of latchd's keys to trust.
    #[command(flatten)]
    trust: latch_bus::FeedTrustArgs,
    #[arg(
        long,
        env = "CERTIFICATE_SERVICE_LISTEN",
        default_value = "127.0.0.1:7430"
    )]
    listen: SocketAddr,
    /// Refuse every token when not provably current for this many seconds.
    #[arg(long, default_value_t = 5)]
    max_staleness_seconds: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueRequest {
    common_name: String,
}

#[derive(Debug, Clone, Serialize)]
struct Certificate {
    serial: u64,
    common_name: String,
    /// Which Latch token asked for it: the audit trail on this side.
    issued_by_token: String,
    issued_by_account: String,
}

type Issued = Arc<Mutex<Vec<Certificate>>>;

async fn issue(
    State(issued): State<Issued>,
    Extension(who): Extension<Verified>,
    Json(request): Json<IssueRequest>,
) -> (StatusCode, Json<Certificate>) {
    let mut all = issued.lock().expect("lock");
    let certificate = Certificate {
        serial: all.len() as u64 + 1,
        common_name: request.common_name,
        issued_by_token: who.token_id.to_string(),
        issued_by_account: who.account_id.to_string(),
    };
    all.push(certificate.clone());
    tracing::info!(serial = certificate.serial, token_id = %who.token_id, "issued certificate");
    (StatusCode::CREATED, Json(certificate))
}

async fn list(State(issued): State<Issued>) -> Json<Vec<Certificate>> {
    Json(issued.lock().expect("lock").clone())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let settings = Settings::parse();
    let mut config = VerifierConfig::new(settings.nats.connection());
    config.max_staleness = Duration::from_secs(settings.max_staleness_seconds);
    config.trusted_keys = settings.trust.trusted_keys()?;
    let verifier = Verifier::connect(config).await?;
    tracing::info!(position = %verifier.position(), nats = %latch_bus::redact_url(&settings.nats.nats_url), "verifier current");

    let issue_permission: Permission = "certificates:issue".parse()?;
    let read_permission: Permission = "certificates:read".parse()?;
    let issued: Issued = Arc::default();
    let app = Router::new()
        .route(
            "/certificates",
            post(issue).route_layer(RequirePermission::new(verifier.clone(), issue_permission)),
        )
        .route(
            "/certificates",
            get(list).route_layer(RequirePermission::new(verifier.clone(), read_permission)),
        )
        .with_state(issued);
    let listener = tokio::net::TcpListener::bind(settings.listen).await?;
    tracing::info!(url = %format!("http://{}", listener.local_addr()?), "certificate-service listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .await?;
    Ok(())
}
