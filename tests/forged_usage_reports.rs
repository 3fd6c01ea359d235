//! Issue 15, finding 8: forged usage reports. Anyone who may publish on
//! `latch.usage.>` can claim uses; the reviewer set a revoked token's last
//! use to 2030 from 6.6.6.6 with 1,000,001 uses. latchd now believes only
//! what could be true: uses of live tokens, at times no later than now
//! (30 s of clock skew is clamped; later is dropped), at most 1,000,000
//! per token per report, and it keeps who reported them.

use std::path::Path;
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, account_with_token, ok};
use serde_json::{Value, json};

fn set_clock(clock: &Path, at: &str) {
    let temp = clock.with_extension("new");
    std::fs::write(&temp, at).unwrap();
    std::fs::rename(&temp, clock).unwrap();
}

/// Publishes reports on the usage subject with a plain NATS client, as an
/// attacker with publish rights would.
fn publish(nats_url: &str, reports: &[(String, Value)]) {
    latch_e2e::block_on(async {
        let client = async_nats::connect(nats_url).await.unwrap();
        for (subject, report) in reports {
            client
                .publish(subject.clone(), serde_json::to_vec(report).unwrap().into())
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
    });
}

fn token(latchd: &Latchd, admin: &str, id: &str) -> Value {
    let reply = latchd.get(&format!("/v1/tokens/{id}"), admin);
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    reply.body
}

fn story(latchd: &Latchd, admin: &str, id: &str) -> Vec<Value> {
    ok(latchd.latch(Some(admin), &["--output", "ndjson", "audit", "token", id]))
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[test]
fn forged_usage_reports_cannot_frame_a_revoked_token_or_claim_the_future() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("now");
    set_clock(&clock, "2026-05-01T10:00:00Z");
    let latchd = Latchd::start_with_clock(&clock);
    let admin = latchd.admin_token();
    let (account, revoked, revoked_secret) =
        account_with_token(&latchd, &admin, "billing", "auditor", None);
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "live"}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let live = issued.body["id"].as_str().unwrap().to_owned();

    // The soon-revoked token is really used, at latchd, then revoked.
    for _ in 0..3 {
        assert_eq!(latchd.get("/v1/accounts", &revoked_secret).status, 200);
    }
    let revoke = latchd.post(
        &format!("/v1/tokens/{revoked}/revoke"),
        &admin,
        json!({"reason": "leaked"}),
    );
    assert!((200..300).contains(&revoke.status), "{:?}", revoke.body);
    let before = token(&latchd, &admin, &revoked);
    assert_eq!(before["use_count"], 3, "{before}");
    assert_eq!(before["last_used_from"], "127.0.0.1");

    // Ten minutes later, the forgeries.
    set_clock(&clock, "2026-05-01T10:10:00Z");
    let subject = format!("latch.usage.{account}");
    let used = |token: &str, count: u64, first: &str, last: &str| json!({"token_id": token, "count": count, "first_at": first, "last_at": last, "last_from": "6.6.6.6"});
    let report = |verifier: &str, uses: Vec<Value>| {
        (
            subject.clone(),
            json!({"verifier": verifier, "account_id": account, "uses": uses}),
        )
    };
    publish(
        &latchd.nats().url(),
        &[
            // The reviewer's: the revoked token, in 2030, a million uses.
            report(
                "forger",
                vec![used(
                    &revoked,
                    1_000_001,
                    "2026-05-01T10:09:00Z",
                    "2030-01-01T00:00:00Z",
                )],
            ),
            // The revoked token, now: it was revoked ten minutes ago.
            report(
                "forger",
                vec![used(
                    &revoked,
                    5,
                    "2026-05-01T10:09:00Z",
                    "2026-05-01T10:10:00Z",
                )],
            ),
            // The live token in 2030, and a token that does not exist.
            report(
                "forger",
                vec![
                    used(&live, 7, "2026-05-01T10:09:00Z", "2030-01-01T00:00:00Z"),
                    used(
                        "0195f3c2-0000-7000-8000-000000000000",
                        7,
                        "2026-05-01T10:09:00Z",
                        "2026-05-01T10:10:00Z",
                    ),
                ],
            ),
            // The live token, 10 s ahead (clock skew: clamped to now), five
            // million uses (capped), named twice in one report (summed, then
            // capped), from a verifier with a 10 KB name.
            report(
                &format!("billing/7{}", "x".repeat(10_000)),
                vec![
                    used(
                        &live,
                        4_000_000,
                        "2026-05-01T10:09:00Z",
                        "2026-05-01T10:10:10Z",
                    ),
                    used(
                        &live,
                        1_000_000,
                        "2026-05-01T10:09:30Z",
                        "2026-05-01T10:09:40Z",
                    ),
                ],
            ),
        ],
    );

    // The last report is taken once the live token shows it.
    let started = Instant::now();
    let live_now = loop {
        let now = token(&latchd, &admin, &live);
        if now["use_count"] != 0 {
            break now;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the report was never taken: {now}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(live_now["use_count"], 1_000_000, "{live_now}");
    assert_eq!(
        live_now["last_used_at"], "2026-05-01T10:10:00Z",
        "clamped to latchd's now"
    );
    assert_eq!(live_now["last_used_from"], "6.6.6.6");
    let reporter = live_now["last_reported_by"].as_str().unwrap();
    assert!(reporter.starts_with("billing/7xxx"), "{reporter}");
    assert!(
        reporter.len() <= 64,
        "reporter name of {} bytes",
        reporter.len()
    );

    // The revoked token is as it was.
    let after = token(&latchd, &admin, &revoked);
    for field in ["use_count", "last_used_at", "last_used_from"] {
        assert_eq!(after[field], before[field], "{field}: {after}");
    }
    assert!(after.get("last_reported_by").is_none(), "{after}");

    // So says the audit trail (`latch audit token`).
    let revoked_story = story(&latchd, &admin, &revoked);
    assert!(
        !revoked_story.iter().any(|e| e["kind"] == "verifier_use"),
        "{revoked_story:?}"
    );
    assert!(
        !revoked_story
            .iter()
            .any(|e| e["at"].as_str().is_some_and(|at| at.starts_with("2030"))),
        "{revoked_story:?}"
    );
    // The story reads the stored usage, written every 2 s.
    let started = Instant::now();
    let live_story = loop {
        let told = story(&latchd, &admin, &live);
        if told[0]["use_count"] != 0 || started.elapsed() > Duration::from_secs(10) {
            break told;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let reported: Vec<&Value> = live_story
        .iter()
        .filter(|e| e["kind"] == "verifier_use")
        .collect();
    assert_eq!(reported.len(), 1, "{live_story:?}");
    assert_eq!(reported[0]["uses"], 1_000_000);
    assert_eq!(reported[0]["at"], "2026-05-01T10:10:00Z");
    assert_eq!(reported[0]["from"], "6.6.6.6");
    let verifier = reported[0]["verifier"].as_str().unwrap();
    assert!(verifier.starts_with("billing/7xxx"), "{verifier}");
    assert!(
        verifier.len() < 200,
        "verifier name of {} bytes",
        verifier.len()
    );
    assert!(live_story[0]["kind"] == "token");
    assert!(
        live_story[0]["last_reported_by"]
            .as_str()
            .is_some_and(|r| r.starts_with("billing/7")),
        "{:?}",
        live_story[0]
    );
    assert!(
        latchd
            .logs()
            .contains("claimed uses latchd does not believe"),
        "the dropped claims are logged"
    );
}
