//! `propagation-http`: revoke through latchd's HTTP API, then time until
//! each of N HTTP services guarded by `RequirePermission` answers 401.

use std::time::{Duration, Instant};

use anyhow::Context;
use latch_bench::InProcessLatchd;
use latch_core::Permission;
use serde_json::json;

use super::percentile;

/// latchd (handler, relay and HTTP router, in this process) and
/// `service_count` services guarded by `RequirePermission`: processes of the
/// example `certificate-service` when its binary is given, else small axum
/// services in this process. For each revocation: POST /v1/tokens/{id}/revoke,
/// then poll every service's `GET /certificates` with the token until each
/// answers 401.
pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    service_count: usize,
    revocations: usize,
    example_binary: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let latch = runtime.block_on(InProcessLatchd::with_nats(base, &nats))?;
    let mut services = Vec::new();
    let mut children = ServiceProcesses(Vec::new());
    for _ in 0..service_count {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        services.push(format!("http://127.0.0.1:{port}/certificates"));
        match example_binary {
            Some(binary) => children.0.push(
                std::process::Command::new(binary)
                    .args([
                        "--nats-url",
                        &nats.url(),
                        "--listen",
                        &format!("127.0.0.1:{port}"),
                    ])
                    .stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null())
                    .spawn()
                    .with_context(|| format!("start {}", binary.display()))?,
            ),
            None => runtime.block_on(async {
                let verifier = latch_verify::Verifier::connect(latch_verify::VerifierConfig::new(
                    latch_verify::NatsConnection::new(nats.url()),
                ))
                .await?;
                let service = axum::Router::new()
                    .route("/certificates", axum::routing::get(|| async { "[]" }))
                    .layer(latch_verify::RequirePermission::new(
                        verifier,
                        Permission::parse("certificates:read")?,
                    ));
                let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
                tokio::spawn(async move {
                    axum::serve(
                        listener,
                        service.into_make_service_with_connect_info::<std::net::SocketAddr>(),
                    )
                    .await
                });
                anyhow::Ok(())
            })?,
        }
    }
    let (url, admin) = (latch.url.clone(), latch.admin.clone());

    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let call = |method: &str,
                url: &str,
                token: &str,
                body: Option<serde_json::Value>|
     -> anyhow::Result<(u16, serde_json::Value)> {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(url)
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json");
        let bytes = body.map(|b| b.to_string().into_bytes()).unwrap_or_default();
        let mut response = agent.run(request.body(bytes)?)?;
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string()?;
        Ok((
            status,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        ))
    };
    let role = json!({ "permissions": ["certificates:issue", "certificates:read"] });
    anyhow::ensure!(
        call("PUT", &format!("{url}/v1/roles/issuer"), &admin, Some(role))?.0 == 200,
        "role"
    );
    let (_, account) = call(
        "POST",
        &format!("{url}/v1/accounts"),
        &admin,
        Some(json!({ "name": "ci", "role": "issuer" })),
    )?;
    let account = account["id"].as_str().context("account")?.to_owned();

    let mut latencies = Vec::new();
    for _ in 0..revocations {
        let (_, issued) = call(
            "POST",
            &format!("{url}/v1/accounts/{account}/tokens"),
            &admin,
            Some(json!({ "name": "p" })),
        )?;
        let (id, token) = (
            issued["id"].as_str().context("id")?.to_owned(),
            issued["token"].as_str().context("token")?.to_owned(),
        );
        let started = Instant::now();
        for service in &services {
            // Also waits for the service processes to come up, the first time.
            while !matches!(call("GET", service, &token, None), Ok((200, _))) {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(30),
                    "{service} never accepted the new token"
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let (status, _) = call(
            "POST",
            &format!("{url}/v1/tokens/{id}/revoke"),
            &admin,
            Some(json!({})),
        )?;
        anyhow::ensure!(status == 200, "revoke: {status}");
        let revoked_at = Instant::now();
        let mut pending: Vec<&String> = services.iter().collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for service in pending {
                if call("GET", service, &token, None)?.0 == 401 {
                    latencies.push(revoked_at.elapsed());
                } else {
                    still.push(service);
                }
            }
            pending = still;
            anyhow::ensure!(
                revoked_at.elapsed() < Duration::from_secs(10),
                "a service never rejected the revoked token"
            );
        }
    }
    latencies.sort_unstable();
    println!(
        "{}",
        json!({
            "scenario": "propagation-http", "services": service_count, "revocations": revocations, "samples": latencies.len(),
            "services_are": example_binary.map_or("in-process axum services with RequirePermission".to_owned(), |b| format!("processes of {}", b.display())),
            "p50_us": percentile(&latencies, 0.50).as_micros() as u64,
            "p99_us": percentile(&latencies, 0.99).as_micros() as u64,
            "max_us": latencies.last().copied().unwrap_or_default().as_micros() as u64,
            "measured_from": "the revoke HTTP response to each service's first 401, polling the services one after another over HTTP",
        })
    );
    drop(children);
    Ok(())
}

/// Kills the example service processes when the scenario ends, however it ends.
struct ServiceProcesses(Vec<std::process::Child>);

impl Drop for ServiceProcesses {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
