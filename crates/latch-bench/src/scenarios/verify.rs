//! `verify`: local verification cost on one core with `tokens` tokens
//! loaded, and the projection's resident bytes per token.

use std::time::Instant;

use latch_core::{
    AccountId, AccountName, Actor, Event, EventEnvelope, EventId, Permission, PermissionSet,
    Position, RecordedEvent, RoleName, TokenDigest, TokenId, TokenSecret, VerifierView,
};
use serde_json::json;

use super::resident_bytes;

/// Folds `tokens` issued tokens into a `State` (as a verifier holds it),
/// then times `latch_core::authenticate` + the permission check, which is
/// all `Verifier::verify` does after one atomic staleness load and a read
/// lock.
pub(crate) fn run(tokens: usize, checks: usize) -> anyhow::Result<()> {
    use chrono::Utc;
    let now = Utc::now();
    let mut position = 0u64;
    let mut record = |view: &mut VerifierView, event: Event| {
        position += 1;
        let envelope = EventEnvelope {
            id: EventId::new(),
            at: now,
            actor: Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event,
        };
        view.apply(&RecordedEvent {
            position: Position::new(position),
            version: 1,
            envelope,
        });
    };
    let before = resident_bytes();
    let mut state = VerifierView::new();
    let accounts: Vec<AccountId> = (0..1000).map(|_| AccountId::new()).collect();
    for (n, account_id) in accounts.iter().enumerate() {
        record(
            &mut state,
            Event::AccountCreated {
                account_id: *account_id,
                name: AccountName::parse(&format!("svc-{n}"))?,
                role: RoleName::parse("auditor")?,
                description: String::new(),
            },
        );
    }
    let mut sample = Vec::new();
    let mut revoked = Vec::new();
    let mut rng = rand::rng();
    for n in 0..tokens {
        let secret = TokenSecret::generate(&mut rng);
        let token_id = TokenId::new();
        let account_id = accounts[n % accounts.len()];
        record(
            &mut state,
            Event::TokenIssued {
                token_id,
                account_id,
                name: "t".into(),
                scopes: PermissionSet::parse(["*:read"])?,
                digest: secret.digest(),
                expires_at: Some(now + chrono::TimeDelta::days(30)),
                allowed_cidrs: Vec::new(),
                rotated_from: None,
                parent: None,
                oidc: None,
            },
        );
        if n % 100 == 0 {
            if sample.len() < 10_000 {
                sample.push(secret.expose().to_owned());
            }
        } else if n % 101 == 0 && revoked.len() < 10_000 {
            record(
                &mut state,
                Event::TokenRevoked {
                    token_id,
                    account_id,
                    reason: String::new(),
                },
            );
            revoked.push(secret.expose().to_owned());
        }
    }
    let per_token = (resident_bytes().saturating_sub(before)) as f64 / tokens as f64;
    let misses: Vec<String> = (0..10_000)
        .map(|_| TokenSecret::generate(&mut rng).expose().to_owned())
        .collect();
    let corrupt: Vec<String> = sample
        .iter()
        .map(|t| {
            let mut t = t.clone();
            t.replace_range(10..11, if &t[10..11] == "A" { "B" } else { "A" });
            t
        })
        .collect();
    let permission = Permission::parse("accounts:read")?;
    let state = std::sync::RwLock::new(state);

    let time = |name: &str,
                inputs: &[String],
                expect_ok: bool|
     -> anyhow::Result<serde_json::Value> {
        let started = Instant::now();
        let mut ok = 0usize;
        for i in 0..checks {
            let guard = state.read().expect("lock");
            let token = &inputs[i % inputs.len()];
            if guard
                .authenticate(token, now, None)
                .is_ok_and(|p| p.allows(&permission))
            {
                ok += 1;
            }
        }
        let elapsed = started.elapsed();
        anyhow::ensure!((ok == checks) == expect_ok, "{name}: unexpected outcome");
        Ok(
            json!({ "case": name, "ns_per_check": elapsed.as_nanos() as f64 / checks as f64, "checks_per_second_one_core": checks as f64 / elapsed.as_secs_f64() }),
        )
    };
    let cases = vec![
        time("hit", &sample, true)?,
        time("miss", &misses, false)?,
        time("revoked", &revoked, false)?,
        time("wrong_checksum", &corrupt, false)?,
    ];
    let sha_started = Instant::now();
    let mut sink = 0u8;
    for i in 0..checks {
        sink ^= TokenDigest::of(&sample[i % sample.len()]).as_bytes()[0];
    }
    let sha_ns = sha_started.elapsed().as_nanos() as f64 / checks as f64;
    println!(
        "{}",
        json!({
            "scenario": "verify", "tokens": tokens, "checks_per_case": checks, "cases": cases,
            "sha256_of_token_ns": sha_ns, "sink": sink,
            "resident_bytes_per_token": per_token,
            "note": "single thread; VerifierView::authenticate + permission check under a read lock, as Verifier::verify",
        })
    );
    Ok(())
}
