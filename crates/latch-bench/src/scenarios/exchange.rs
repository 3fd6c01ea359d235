//! `exchange`: token exchange (issue 20). Two parts, same run:
//!
//! 1. **oidc**: OIDC identity tokens exchanged per second over HTTP with a
//!    warm key cache, ES256 and RS256, at `concurrency` clients; latency
//!    p50/p99. An issuer of the bench's own serves its discovery document
//!    and keys on loopback; every token is signed beforehand (unique `jti`),
//!    so the figure is latchd's: parse, verify, match, decide, append, answer.
//! 2. **children**: a parent token with `children` live children (and
//!    `verifiers` verifiers following latchd, checking its signatures); the
//!    parent is revoked and the time until each verifier refuses every child
//!    is taken, `revocations` times.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use latch_core::{Actor, Command, Permission, Rejection, TokenId, TokenSecret};
use serde_json::{Value, json};

use super::percentile;

use latch_testkit::test_rsa_key::{MODULUS as RSA_N, PRIVATE_PEM as RSA_KEY};

const SUB: &str = "repo:acme/deploy:ref:refs/heads/main";
const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The bench's issuer: its URL, and a signer per algorithm.
struct Issuer {
    url: String,
    es256: EncodingKey,
    rs256: EncodingKey,
}

fn start_issuer() -> anyhow::Result<Issuer> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &rng,
    )
    .map_err(|_| anyhow::anyhow!("generating an EC key"))?;
    let pair = ring::signature::EcdsaKeyPair::from_pkcs8(
        &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.as_ref(),
        &rng,
    )
    .map_err(|_| anyhow::anyhow!("reading the EC key"))?;
    use ring::signature::KeyPair;
    let point = pair.public_key().as_ref().to_vec();
    let listener = std::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    listener.set_nonblocking(true)?;
    let url = format!("http://{}", listener.local_addr()?);
    let keys = json!({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..65])},
        {"kty": "RSA", "kid": "rs", "alg": "RS256", "n": RSA_N, "e": "AQAB"},
    ]});
    let discovery = json!({"issuer": url, "jwks_uri": format!("{url}/jwks")});
    let app = axum::Router::new()
        .route(
            "/.well-known/openid-configuration",
            axum::routing::get(move || {
                let discovery = discovery.clone();
                async move { axum::Json(discovery) }
            }),
        )
        .route(
            "/jwks",
            axum::routing::get(move || {
                let keys = keys.clone();
                async move { axum::Json(keys) }
            }),
        );
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
            let _ = axum::serve(listener, app).await;
        });
    });
    Ok(Issuer {
        url,
        es256: EncodingKey::from_ec_der(pkcs8.as_ref()),
        rs256: EncodingKey::from_rsa_pem(RSA_KEY.as_bytes())?,
    })
}

impl Issuer {
    fn sign(&self, alg: Algorithm) -> anyhow::Result<String> {
        let now = chrono::Utc::now().timestamp();
        let claims = json!({
            "iss": self.url, "aud": "latch", "sub": SUB, "jti": uuid_like(),
            "iat": now, "nbf": now - 5, "exp": now + 600, "repository_owner": "acme",
        });
        let (kid, key) = match alg {
            Algorithm::RS256 => ("rs", &self.rs256),
            _ => ("es", &self.es256),
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.into());
        Ok(jsonwebtoken::encode(&header, &claims, key)?)
    }
}

fn uuid_like() -> String {
    format!("{:032x}", rand::random::<u128>())
}

fn agent(pool: usize) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_idle_connections(pool)
        .max_idle_connections_per_host(pool)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

fn post(agent: &ureq::Agent, url: &str, token: Option<&str>, body: &Value) -> anyhow::Result<(u16, Value)> {
    let mut request = agent.post(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let mut response = request.send_json(body)?;
    let status = response.status().as_u16();
    let value = response.body_mut().read_json().unwrap_or(Value::Null);
    Ok((status, value))
}

pub(crate) fn run(
    runtime: &tokio::runtime::Runtime,
    base: &std::path::Path,
    concurrency: usize,
    per_algorithm: usize,
    children: usize,
    verifiers: usize,
    revocations: usize,
) -> anyhow::Result<()> {
    let nats = latch_testkit::NatsServer::start();
    let latchd = runtime.block_on(latch_bench::InProcessLatchd::with_nats(base, &nats))?;
    oidc(&latchd, concurrency, per_algorithm)?;
    runtime.block_on(child_revocations(&latchd, &nats, children, verifiers, revocations))?;
    runtime.block_on(latchd.shutdown())?;
    Ok(())
}

fn oidc(latchd: &latch_bench::InProcessLatchd, concurrency: usize, per_algorithm: usize) -> anyhow::Result<()> {
    let issuer = start_issuer()?;
    let admin_agent = agent(1);
    let (status, account) = post(&admin_agent, &format!("{}/v1/accounts", latchd.url), Some(&latchd.admin), &json!({"name": "ci-bench", "role": "auditor"}))?;
    anyhow::ensure!(status == 201, "creating the account: {status} {account}");
    let account = account["id"].as_str().context("account id")?.to_owned();
    let (status, policy) = post(
        &admin_agent,
        &format!("{}/v1/accounts/{account}/trust-policies", latchd.url),
        Some(&latchd.admin),
        &json!({"issuer": issuer.url, "audience": "latch", "claims": {"sub": SUB, "repository_owner": "acme"}, "max_ttl": "15m"}),
    )?;
    anyhow::ensure!(status == 201, "adding the trust policy: {status} {policy}");
    let url = format!("{}/v1/token-exchange", latchd.url);
    for alg in [Algorithm::ES256, Algorithm::RS256] {
        let tokens: Vec<String> = (0..per_algorithm + 1).map(|_| issuer.sign(alg)).collect::<Result<_, _>>()?;
        // Warm the key cache.
        let body = |jwt: &str| json!({"grant_type": GRANT, "subject_token": jwt, "subject_token_type": "urn:ietf:params:oauth:token-type:jwt"});
        let (status, answer) = post(&admin_agent, &url, None, &body(&tokens[0]))?;
        anyhow::ensure!(status == 201, "the first exchange: {status} {answer}");
        let tokens = Arc::new(tokens[1..].to_vec());
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let started = Instant::now();
        let threads: Vec<_> = (0..concurrency)
            .map(|_| {
                let (tokens, next, url, agent) = (tokens.clone(), next.clone(), url.clone(), agent(1));
                std::thread::spawn(move || -> anyhow::Result<Vec<Duration>> {
                    let mut latencies = Vec::new();
                    loop {
                        let at = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(jwt) = tokens.get(at) else { return Ok(latencies) };
                        let sent = Instant::now();
                        let (status, answer) = post(&agent, &url, None, &body(jwt))?;
                        if status != 201 {
                            bail!("exchange answered {status}: {answer}");
                        }
                        latencies.push(sent.elapsed());
                    }
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for thread in threads {
            latencies.extend(thread.join().map_err(|_| anyhow::anyhow!("a client panicked"))??);
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        println!(
            "{}",
            json!({
                "scenario": "exchange",
                "part": "oidc",
                "algorithm": format!("{alg:?}"),
                "concurrency": concurrency,
                "exchanges": latencies.len(),
                "seconds": elapsed.as_secs_f64(),
                "exchanges_per_second": latencies.len() as f64 / elapsed.as_secs_f64(),
                "latency_p50_us": percentile(&latencies, 0.50).as_micros() as u64,
                "latency_p99_us": percentile(&latencies, 0.99).as_micros() as u64,
                "setup": "one latchd (relay to a 1-server nats-server) in this process, the issuer (loopback) and blocking HTTP/1.1 keep-alive clients too; key cache warm; each exchange verifies the JWT, matches the policy and appends a durable token.issued",
            })
        );
    }
    Ok(())
}

async fn child_revocations(
    latchd: &latch_bench::InProcessLatchd,
    nats: &latch_testkit::NatsServer,
    children: usize,
    verifier_count: usize,
    revocations: usize,
) -> anyhow::Result<()> {
    let handle = &latchd.handle;
    let account = latch_core::AccountId::new();
    latch_bench::submit_ok(
        handle,
        Command::CreateAccount {
            account_id: account,
            name: latch_core::AccountName::parse("children-bench")?,
            role: latch_core::RoleName::parse("auditor")?,
            description: String::new(),
        },
    )
    .await?;
    let mut verifiers = Vec::with_capacity(verifier_count);
    for _ in 0..verifier_count {
        let mut config = latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(nats.url()));
        config.trusted_keys = latch_bus::TrustedKeys::new([latchd.public_key.clone()]);
        config.usage_report_every = None;
        verifiers.push(latch_verify::Verifier::connect(config).await?);
    }
    let read = Permission::parse("accounts:read")?;
    let mut each_verifier = Vec::new();
    let mut all_verifiers = Vec::new();
    for _ in 0..revocations {
        let parent = TokenId::new();
        let secret = TokenSecret::generate(&mut rand::rng());
        latch_bench::submit_ok(
            handle,
            Command::IssueToken {
                account_id: account,
                token_id: parent,
                name: "parent".into(),
                scopes: None,
                ttl: None,
                allowed_cidrs: Vec::new(),
                digest: secret.digest(),
            },
        )
        .await?;
        let as_parent = Actor::Token { account_id: account, token_id: parent };
        let mut secrets = Vec::with_capacity(children);
        let mut pending = Vec::with_capacity(children);
        for _ in 0..children {
            let child = TokenSecret::generate(&mut rand::rng());
            let command = Command::ExchangeToken {
                parent_id: parent,
                token_id: TokenId::new(),
                digest: child.digest(),
                name: None,
                scopes: None,
                ttl: None,
            };
            let handle = handle.clone();
            let secret = child.expose().to_owned();
            pending.push(tokio::spawn(async move {
                (handle.submit(latchd::CommandRequest::new(as_parent, command)).await, secret)
            }));
        }
        // In the order the log holds them (the writer may take concurrent
        // submissions in any order): the revocation follows that order.
        let mut by_position = Vec::with_capacity(children);
        for task in pending {
            match task.await? {
                (Ok(Ok(receipt)), secret) => {
                    let position = receipt.events.first().context("an event")?.position;
                    by_position.push((position, secret));
                }
                (other, _) => bail!("exchanging a child: {other:?}"),
            }
        }
        by_position.sort_unstable_by_key(|(position, _)| *position);
        secrets.extend(by_position.into_iter().map(|(_, secret)| secret));
        let ready_by = Instant::now() + Duration::from_secs(60);
        while !verifiers.iter().all(|v| secrets.iter().all(|s| v.verify(s, &read).is_ok())) {
            anyhow::ensure!(Instant::now() < ready_by, "the verifiers never accepted every child");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let revoked_at = Instant::now();
        latch_bench::submit_ok(handle, Command::RevokeToken { token_id: parent, reason: "bench".into() }).await?;
        // The append revokes the parent, then the children in the order
        // they were exchanged, and a verifier applies it in order: the
        // last child refused means every one is (checked after, untimed).
        let last = secrets.last().context("no children")?;
        let mut done: Vec<Option<Duration>> = vec![None; verifiers.len()];
        while done.iter().any(Option::is_none) {
            for (i, verifier) in verifiers.iter().enumerate() {
                if done[i].is_none()
                    && matches!(verifier.verify(last, &read), Err(latch_verify::Denial::Rejected(Rejection::Revoked)))
                {
                    done[i] = Some(revoked_at.elapsed());
                }
            }
            anyhow::ensure!(revoked_at.elapsed() < Duration::from_secs(30), "a verifier never refused every child");
            tokio::task::yield_now().await;
        }
        for verifier in &verifiers {
            anyhow::ensure!(
                secrets.iter().all(|s| matches!(
                    verifier.verify(s, &read),
                    Err(latch_verify::Denial::Rejected(Rejection::Revoked))
                )),
                "a verifier refused the last child but accepts another"
            );
        }
        let times: Vec<Duration> = done.into_iter().flatten().collect();
        all_verifiers.push(times.iter().max().copied().unwrap_or_default());
        each_verifier.extend(times);
    }
    each_verifier.sort_unstable();
    all_verifiers.sort_unstable();
    println!(
        "{}",
        json!({
            "scenario": "exchange",
            "part": "children",
            "children": children,
            "verifiers": verifier_count,
            "revocations": revocations,
            "each_verifier_p50_ms": percentile(&each_verifier, 0.50).as_secs_f64() * 1e3,
            "each_verifier_p99_ms": percentile(&each_verifier, 0.99).as_secs_f64() * 1e3,
            "all_verifiers_p50_ms": percentile(&all_verifiers, 0.50).as_secs_f64() * 1e3,
            "all_verifiers_p99_ms": percentile(&all_verifiers, 0.99).as_secs_f64() * 1e3,
            "all_verifiers_max_ms": all_verifiers.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
            "measured_from": "submitting the parent's revocation (one append: the parent, then every child in order) to each verifier refusing the last child as revoked (polled; every other child is then checked refused too, untimed)",
            "setup": "one latchd in this process (relay to a 1-server nats-server), verifiers in this process checking latchd's signatures; all on the same cores",
        })
    );
    Ok(())
}
