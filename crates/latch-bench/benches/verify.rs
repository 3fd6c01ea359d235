//! Token verification on one core, next to what a user would pick instead.
//!
//! `latch_verify::Verifier::verify` is measured as a service runs it: a real
//! latchd (in this process, real RocksDB) issues `LATCH_BENCH_TOKENS` tokens
//! (default 1,000,000), its relay publishes them to a real nats-server, and
//! the verifier bootstraps from latchd's snapshot and follows the stream,
//! kept current by heartbeats while criterion measures. Two verifiers hold
//! the same view: `latch_hit_unreported` (usage reporting off) is measured
//! first, then `latch_hit` and the refusals on one that reports accepted
//! uses every 2 s, the default; cycling through a million distinct tokens,
//! its reports (a million uses every 2 s) keep latchd's usage intake busy on
//! the same two cores while criterion measures. Beside them, in the
//! same group: `jsonwebtoken` HS256 and EdDSA verification of a token with
//! the same claims, and a bare SHA-256 of a 44-byte token (the floor: a
//! verifier must at least hash what it is given).
//!
//! ```text
//! cargo bench -p latch-bench --bench verify
//! LATCH_BENCH_TOKENS=100000 cargo bench -p latch-bench --bench verify
//! ```
//!
//! After criterion's own report it prints one JSON object with the means and
//! the ratios against the JWT alternatives.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Duration;

use criterion::{Criterion, Throughput};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use latch_core::{Permission, TokenDigest};
use latch_verify::{Denial, NatsConnection, Verifier, VerifierConfig};
use latchd::HandlerConfig;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    jti: String,
    scope: String,
    exp: u64,
}

struct Setup {
    /// As a service runs it: reporting accepted uses every 2 s.
    verifier: Verifier,
    /// The same view with usage reporting off.
    unreported: Verifier,
    live: Vec<String>,
    revoked: Vec<String>,
    misses: Vec<String>,
    wrong_checksum: Vec<String>,
    tokens: usize,
    // Kept alive while measuring: latchd, its relay and the broker.
    _latch: latch_bench::InProcessLatchd,
    _nats: latch_testkit::NatsServer,
    _runtime: tokio::runtime::Runtime,
    _dir: tempfile::TempDir,
}

fn setup() -> Setup {
    let tokens: usize = std::env::var("LATCH_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let nats = latch_testkit::NatsServer::start();
    eprintln!("verify bench: issuing {tokens} tokens through latchd's command handler ...");
    let (latch, population, verifier) = runtime.block_on(async {
        let config = HandlerConfig {
            snapshot_every: u64::MAX,
            ..HandlerConfig::default()
        };
        let latch = latch_bench::InProcessLatchd::start(dir.path(), Some(&nats), config)
            .await
            .expect("latchd");
        let population = latch_bench::populate(&latch.handle, tokens, 100)
            .await
            .expect("tokens");
        eprintln!("verify bench: starting the verifier from latchd's snapshot ...");
        let mut config = VerifierConfig::new(NatsConnection::new(nats.url()));
        config.snapshot = Some(latch_verify::SnapshotSource {
            latchd_url: latch.url.clone(),
            token: latch.admin.clone(),
        });
        config.connect_timeout = Duration::from_secs(900);
        let mut quiet = config.clone();
        quiet.usage_report_every = None;
        let verifier = Verifier::connect(config).await.expect("verifier");
        let unreported = Verifier::connect(quiet).await.expect("verifier");
        (latch, population, (verifier, unreported))
    });
    let (verifier, unreported) = verifier;
    let mut rng = rand::rng();
    let misses = (0..10_000)
        .map(|_| {
            latch_core::TokenSecret::generate(&mut rng)
                .expose()
                .to_owned()
        })
        .collect();
    let wrong_checksum = population
        .live
        .iter()
        .map(|token| {
            let mut token = token.clone();
            let flipped = if &token[10..11] == "A" { "B" } else { "A" };
            token.replace_range(10..11, flipped);
            token
        })
        .collect();
    Setup {
        verifier,
        unreported,
        live: population.live,
        revoked: population.revoked,
        misses,
        wrong_checksum,
        tokens,
        _latch: latch,
        _nats: nats,
        _runtime: runtime,
        _dir: dir,
    }
}

/// Presents each of `inputs` in turn.
fn cycle<'a>(inputs: &'a [String]) -> impl FnMut() -> &'a str {
    let mut next = 0;
    move || {
        next = if next + 1 == inputs.len() {
            0
        } else {
            next + 1
        };
        &inputs[next]
    }
}

fn bench(criterion: &mut Criterion, setup: &Setup) {
    let permission = Permission::parse("accounts:read").expect("permission");
    let verifier = &setup.verifier;
    // Each case must do what it says, or its figure means nothing.
    assert!(
        setup
            .live
            .iter()
            .all(|t| verifier.verify(t, &permission).is_ok()),
        "hit tokens verify"
    );
    assert!(
        setup
            .revoked
            .iter()
            .all(|t| matches!(verifier.verify(t, &permission), Err(Denial::Rejected(_)))),
        "revoked tokens are rejected"
    );
    assert!(
        setup
            .misses
            .iter()
            .all(|t| verifier.verify(t, &permission).is_err()),
        "unknown tokens are rejected"
    );
    assert!(
        setup
            .wrong_checksum
            .iter()
            .all(|t| verifier.verify(t, &permission).is_err()),
        "corrupt tokens are rejected"
    );

    let mut group = criterion.benchmark_group("verify");
    group.throughput(Throughput::Elements(1));
    // First, before any usage is reported: the check alone.
    {
        let unreported = &setup.unreported;
        let mut next = cycle(&setup.live);
        group.bench_function("latch_hit_unreported", |b| {
            b.iter(|| black_box(unreported.verify(black_box(next()), &permission)))
        });
    }
    for (name, inputs) in [
        ("latch_hit", &setup.live),
        ("latch_miss", &setup.misses),
        ("latch_revoked", &setup.revoked),
        ("latch_wrong_checksum", &setup.wrong_checksum),
    ] {
        let mut next = cycle(inputs);
        group.bench_function(name, |b| {
            b.iter(|| black_box(verifier.verify(black_box(next()), &permission)))
        });
    }
    {
        let mut next = cycle(&setup.live);
        group.bench_function("sha256_floor", |b| {
            b.iter(|| black_box(TokenDigest::of(black_box(next()))))
        });
    }

    let claims = Claims {
        sub: "0193c0de-0000-7000-8000-000000000001".into(),
        jti: "0193c0de-0000-7000-8000-000000000002".into(),
        scope: "*:read".into(),
        exp: 4_102_444_800,
    };
    let hmac_key = [7u8; 32];
    let hs256 = jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(&hmac_key),
    )
    .expect("HS256 token");
    let hs256_key = DecodingKey::from_secret(&hmac_key);
    let hs256_validation = Validation::new(Algorithm::HS256);
    assert!(jsonwebtoken::decode::<Claims>(&hs256, &hs256_key, &hs256_validation).is_ok());
    group.bench_function("jwt_hs256", |b| {
        b.iter(|| {
            black_box(jsonwebtoken::decode::<Claims>(
                black_box(&hs256),
                &hs256_key,
                &hs256_validation,
            ))
        })
    });

    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
        .expect("Ed25519 key");
    let keypair = ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("Ed25519 key");
    use ring::signature::KeyPair;
    let eddsa = jsonwebtoken::encode(
        &Header::new(Algorithm::EdDSA),
        &claims,
        &EncodingKey::from_ed_der(pkcs8.as_ref()),
    )
    .expect("EdDSA token");
    let eddsa_key = DecodingKey::from_ed_der(keypair.public_key().as_ref());
    let eddsa_validation = Validation::new(Algorithm::EdDSA);
    assert!(jsonwebtoken::decode::<Claims>(&eddsa, &eddsa_key, &eddsa_validation).is_ok());
    group.bench_function("jwt_eddsa", |b| {
        b.iter(|| {
            black_box(jsonwebtoken::decode::<Claims>(
                black_box(&eddsa),
                &eddsa_key,
                &eddsa_validation,
            ))
        })
    });
    group.finish();
}

/// Criterion's mean estimate for `verify/<name>`, in nanoseconds, if this
/// run measured it (written after `since`; older files are other runs').
fn mean_ns(output: &std::path::Path, name: &str, since: std::time::SystemTime) -> Option<f64> {
    let path = output
        .join("verify")
        .join(name)
        .join("new")
        .join("estimates.json");
    if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < since {
        return None;
    }
    let estimates: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    estimates["mean"]["point_estimate"].as_f64()
}

fn main() {
    let output = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("criterion");
    let mut criterion = Criterion::default()
        .output_directory(&output)
        .configure_from_args();
    let setup = setup();
    let started = std::time::SystemTime::now();
    bench(&mut criterion, &setup);
    criterion.final_summary();

    let names = [
        "latch_hit_unreported",
        "latch_hit",
        "latch_miss",
        "latch_revoked",
        "latch_wrong_checksum",
        "sha256_floor",
        "jwt_hs256",
        "jwt_eddsa",
    ];
    let means: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .filter_map(|name| {
            mean_ns(&output, name, started).map(|ns| ((*name).to_owned(), serde_json::json!(ns)))
        })
        .collect();
    if means.is_empty() {
        return; // --profile-time, or a filter that matched nothing: no estimates.
    }
    let ratio = |a: &str, b: &str| Some(means.get(a)?.as_f64()? / means.get(b)?.as_f64()?);
    println!(
        "{}",
        serde_json::json!({
            "scenario": "verify-criterion",
            "tokens": setup.tokens,
            "mean_ns": means,
            "verifications_per_second_one_core": means.get("latch_hit").and_then(|v| v.as_f64()).map(|ns| 1e9 / ns),
            "hs256_over_latch_hit": ratio("jwt_hs256", "latch_hit"),
            "eddsa_over_latch_hit": ratio("jwt_eddsa", "latch_hit"),
            "latch_hit_over_sha256_floor": ratio("latch_hit", "sha256_floor"),
            "hs256_over_latch_hit_unreported": ratio("jwt_hs256", "latch_hit_unreported"),
            "eddsa_over_latch_hit_unreported": ratio("jwt_eddsa", "latch_hit_unreported"),
        })
    );
}
