//! Leak reports (issue 21): a token found where it should not be is
//! revoked at once, at latchd and at every verifier, whichever way the
//! report comes in — GitHub's secret scanning partner program (ECDSA
//! signed), GitLab's token revocation API (a pre-shared token), or an
//! internal scanner through `latch leak report`. Real latchd, real NATS,
//! real verifier, the real `latch` CLI; GitHub's keys document is served on
//! loopback with keys the test made.

#[path = "support/github_keys.rs"]
mod github_keys;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use latch_core::Rejection;
use latch_e2e::{Latchd, Reply, account_with_token, binary, stderr};
use latch_verify::{Denial, NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use github_keys::GithubKeys;

const LEAK_URL: &str = "https://github.com/acme/app/blob/5f1e/deploy/.env";

fn github_latchd(keys: &GithubKeys) -> Latchd {
    // The keys are fetched again at most once a second (60 s by default).
    Latchd::start_with_args(&[
        "--github-secret-scanning-keys".to_owned(),
        keys.url.clone(),
        "--github-keys-min-refetch".to_owned(),
        "1s".to_owned(),
    ])
}

/// POSTs `body` to GitHub's endpoint with these signature headers.
fn github_post(latchd: &Latchd, key_id: &str, signature: &str, body: &[u8]) -> Reply {
    latchd.raw(
        "POST",
        "/v1/leaks/github",
        None,
        &[
            ("Content-Type", "application/json"),
            ("Github-Public-Key-Identifier", key_id),
            ("Github-Public-Key-Signature", signature),
        ],
        body.to_vec(),
    )
}

fn github_report(tokens: &[&str]) -> Vec<u8> {
    let matches: Vec<Value> = tokens
        .iter()
        .map(|t| json!({"token": t, "type": "latch_api_token", "url": LEAK_URL, "source": "content"}))
        .collect();
    serde_json::to_vec(&matches).unwrap()
}

/// A well-formed Latch token that was never issued.
fn never_issued() -> String {
    latch_core::TokenSecret::generate(&mut rand::rng()).expose().to_owned()
}

fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

async fn verifier(latchd: &Latchd) -> Verifier {
    let mut config = VerifierConfig::new(NatsConnection::new(latchd.nats().url()));
    config.connect_timeout = Duration::from_secs(15);
    Verifier::connect(config).await.unwrap()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(20), "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    started.elapsed()
}

fn events_of_type(latchd: &Latchd, event_type: &str) -> Vec<Value> {
    let page = latchd.get(&format!("/v1/events?type={event_type}&limit=1000"), &latchd.admin_token());
    assert_eq!(page.status, 200, "{:?}", page.body);
    page.body["events"].as_array().cloned().unwrap_or_default()
}

#[track_caller]
fn refused(latchd: &Latchd, reply: &Reply, status: u16, says: &str, head: u64) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(reply.header("content-type"), Some("application/problem+json"), "{:?}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(says), "the problem says {says:?}: {detail}");
    assert_eq!(latchd.head(), head, "a refused report appends nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_signed_by_github_revokes_the_token_at_latchd_and_at_verifiers() {
    let github = GithubKeys::start("k1");
    let latchd = github_latchd(&github);
    let admin = latchd.admin_token();
    let (_, token_id, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let verifier = verifier(&latchd).await;
    let read = Permission::parse("audit:read").unwrap();
    until("the verifier knows the token", || verifier.verify(&token, &read).is_ok()).await;

    let body = github_report(&[&token]);
    let reported = github_post(&latchd, "k1", &github.sign("k1", &body), &body);
    assert_eq!(reported.status, 200, "{:?}", reported.body);
    let feedback = json!([{"token_hash": sha256_hex(&token), "token_type": "latch_api_token", "label": "true_positive"}]);
    assert_eq!(reported.body, feedback);
    // Refused at latchd at once, and at the verifier within the bound.
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    until("the verifier refuses the leaked token", || {
        verifier.verify(&token, &read) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    let leaks = events_of_type(&latchd, "token.leak_reported");
    assert_eq!(leaks.len(), 1, "{leaks:?}");
    assert_eq!(leaks[0]["data"]["token_id"], token_id.as_str());
    assert_eq!(leaks[0]["data"]["source"], "github");
    assert_eq!(leaks[0]["data"]["location"], LEAK_URL);
    let revoked = events_of_type(&latchd, "token.revoked");
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["data"]["reason"], format!("leaked: reported by github at {LEAK_URL}"));

    // The same report again: the same answer, nothing appended.
    let head = latchd.head();
    let again = github_post(&latchd, "k1", &github.sign("k1", &body), &body);
    assert_eq!((again.status, &again.body), (200, &feedback));
    assert_eq!(latchd.head(), head, "a report sent twice appends once");

    // An unknown token and an already revoked one get the answer a live one
    // got (no oracle), and nothing is appended; a text that is no Latch
    // token is a false positive.
    let unknown = never_issued();
    let body = github_report(&[&unknown, &token, "latch_notatoken"]);
    let answer = github_post(&latchd, "k1", &github.sign("k1", &body), &body);
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    let labels: Vec<&str> = answer.body.as_array().unwrap().iter().map(|f| f["label"].as_str().unwrap()).collect();
    assert_eq!(labels, ["true_positive", "true_positive", "false_positive"]);
    assert_eq!(answer.body[0]["token_hash"], sha256_hex(&unknown).as_str());
    assert_eq!(latchd.head(), head);

    // The token never reached a log line.
    assert!(!latchd.logs().contains(&token), "a reported token was logged");
    assert!(!latchd.logs().contains(&unknown), "a reported token was logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_github_did_not_sign_is_refused_and_changes_nothing() {
    let github = GithubKeys::start("k1");
    let latchd = github_latchd(&github);
    let admin = latchd.admin_token();
    let (_, _, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let body = github_report(&[&token]);
    let head = latchd.head();

    // Signed by a key GitHub never published, under GitHub's key id.
    refused(&latchd, &github_post(&latchd, "k1", &GithubKeys::sign_unpublished(&body), &body), 401, "does not verify", head);
    // A genuine signature over another body.
    let other = github_report(&[&never_issued()]);
    refused(&latchd, &github_post(&latchd, "k1", &github.sign("k1", &other), &body), 401, "does not verify", head);
    // A key id GitHub does not publish, even after latchd fetched the keys
    // again (at most once a second).
    std::thread::sleep(Duration::from_millis(1100));
    let fetched = github.requests();
    refused(&latchd, &github_post(&latchd, "k9", &github.sign("k1", &body), &body), 401, "k9", head);
    assert!(github.requests() > fetched, "an unknown key id makes latchd fetch the keys again");
    // No signature at all, or not base64.
    let bare = latchd.raw("POST", "/v1/leaks/github", None, &[("Content-Type", "application/json")], body.clone());
    refused(&latchd, &bare, 401, "github-public-key-identifier", head);
    refused(&latchd, &github_post(&latchd, "k1", "%%%", &body), 401, "base64", head);
    // Malformed JSON, even signed, is refused after the signature.
    let malformed = b"[{\"token\": ".to_vec();
    refused(&latchd, &github_post(&latchd, "k1", &github.sign("k1", &malformed), &malformed), 400, "JSON array", head);
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 200, "the token still works");

    // GitHub rotates its key: a report signed with the new one is taken
    // (latchd fetches the keys again on the unknown id).
    github.rotate("k2");
    std::thread::sleep(Duration::from_millis(1100));
    let taken = github_post(&latchd, "k2", &github.sign("k2", &body), &body);
    assert_eq!(taken.status, 200, "{:?}", taken.body);
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);

    // A latchd without GitHub configured verifies no signature.
    let plain = Latchd::start();
    let answer = github_post(&plain, "k1", &github.sign("k1", &body), &body);
    assert_eq!(answer.status, 401, "{:?}", answer.body);
    assert!(answer.body["detail"].as_str().unwrap().contains("no GitHub signature verifies"));
}

#[test]
fn a_source_that_spent_its_failure_budget_is_refused_before_its_report_is_read() {
    let github = GithubKeys::start("k1");
    let latchd = github_latchd(&github);
    let admin = latchd.admin_token();
    let (_, _, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let body = github_report(&[&token]);
    let forged = GithubKeys::sign_unpublished(&body);
    // The default budget: 120 failures at once.
    let mut statuses = Vec::new();
    for _ in 0..125 {
        statuses.push(github_post(&latchd, "k1", &forged, &body).status);
    }
    assert!(statuses[..120].iter().all(|s| *s == 401), "{statuses:?}");
    assert!(statuses[120..].iter().all(|s| *s == 429), "{statuses:?}");
    // Spent: even a genuine report from that source is refused unread (no
    // signature verified, nothing appended) until the budget refills.
    let head = latchd.head();
    let genuine = github_post(&latchd, "k1", &github.sign("k1", &body), &body);
    assert_eq!(genuine.status, 429, "{:?}", genuine.body);
    assert!(genuine.header("retry-after").is_some());
    assert_eq!(latchd.head(), head);
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 200);
}

#[test]
fn gitlab_revocation_api_answers_only_gitlabs_token() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gitlab.token");
    let gitlab_token = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
    std::fs::write(&file, format!("{gitlab_token}\n")).unwrap();
    let latchd = Latchd::start_with_args(&[
        "--gitlab-revocation-token-file".to_owned(),
        file.display().to_string(),
    ]);
    let admin = latchd.admin_token();
    let (_, _, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let bearer = format!("Bearer {gitlab_token}");
    let admin_bearer = format!("Bearer {admin}");

    let types = latchd.raw("GET", "/v1/leaks/gitlab/revocable_token_types", None, &[("Authorization", &bearer)], Vec::new());
    assert_eq!(types.status, 200, "{:?}", types.body);
    assert_eq!(types.body["types"][0]["type"], "latch_api_token");
    for wrong in [None, Some(admin_bearer.as_str()), Some("Bearer not-the-token")] {
        let headers: Vec<(&str, &str)> = wrong.into_iter().map(|w| ("Authorization", w)).collect();
        let answer = latchd.raw("GET", "/v1/leaks/gitlab/revocable_token_types", None, &headers, Vec::new());
        assert_eq!(answer.status, 401, "{wrong:?}: {:?}", answer.body);
    }

    let findings = serde_json::to_vec(&json!([
        {"type": "latch_api_token", "token": token, "location": "https://gitlab.example/acme/app/-/blob/main/.env"}
    ]))
    .unwrap();
    let head = latchd.head();
    // Without GitLab's token (a Latch admin token is not it): refused,
    // nothing appended, the token still works.
    for headers in [
        vec![("Content-Type", "application/json")],
        vec![("Content-Type", "application/json"), ("Authorization", admin_bearer.as_str())],
    ] {
        let answer = latchd.raw("POST", "/v1/leaks/gitlab/revoke_tokens", None, &headers, findings.clone());
        refused(&latchd, &answer, 401, "GitLab's revocation token", head);
    }
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 200);
    // Malformed: 400, nothing appended.
    let answer = latchd.raw(
        "POST",
        "/v1/leaks/gitlab/revoke_tokens",
        None,
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
        b"{\"type\":".to_vec(),
    );
    refused(&latchd, &answer, 400, "JSON array", head);
    // With it: 204, and the token is revoked.
    let answer = latchd.raw(
        "POST",
        "/v1/leaks/gitlab/revoke_tokens",
        None,
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
        findings.clone(),
    );
    assert_eq!(answer.status, 204, "{:?}", answer.body);
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    let leaks = events_of_type(&latchd, "token.leak_reported");
    assert_eq!(leaks.len(), 1);
    assert_eq!(leaks[0]["data"]["source"], "gitlab");
    // Presenting the revoked token above is a reuse, noted in the log
    // after the refusal: wait for it, so that it is not counted below.
    latch_e2e::eventually("the reuse of the revoked token is noted", || {
        events_of_type(&latchd, "token.reuse_detected").len() == 1
    });
    // Again: the same answer, nothing new.
    let head = latchd.head();
    let again = latchd.raw(
        "POST",
        "/v1/leaks/gitlab/revoke_tokens",
        None,
        &[("Content-Type", "application/json"), ("Authorization", &bearer)],
        findings,
    );
    assert_eq!(again.status, 204);
    assert_eq!(latchd.head(), head);
}

#[test]
fn a_weak_gitlab_token_file_keeps_latchd_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gitlab.token");
    std::fs::write(&file, "short").unwrap();
    let output = Command::new(binary("latchd"))
        .args(["--data-dir", &dir.path().join("data").display().to_string(), "--listen", "127.0.0.1:0"])
        .args(["--nats-url", "nats://127.0.0.1:1", "--gitlab-revocation-token-file", &file.display().to_string()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(stderr(&output).contains("shorter than 32 characters"), "{}", stderr(&output));
}

/// A gitleaks report (`gitleaks detect --report-format json`) with a Latch
/// token and an AWS key: only the Latch token leaves the machine.
fn gitleaks_report(latch_token: &str) -> String {
    serde_json::to_string_pretty(&json!([
        {
            "RuleID": "latch-api-token", "Description": "Latch API token",
            "StartLine": 12, "EndLine": 12, "StartColumn": 14, "EndColumn": 57,
            "Match": format!("LATCH_TOKEN={latch_token}"), "Secret": latch_token,
            "File": "deploy/pipeline.env", "SymlinkFile": "", "Commit": "5f1e0c2",
            "Entropy": 5.2, "Author": "dev", "Email": "dev@example.com",
            "Date": "2026-12-01T10:00:00Z", "Message": "add pipeline env", "Tags": [],
            "Fingerprint": "5f1e0c2:deploy/pipeline.env:latch-api-token:12"
        },
        {
            "RuleID": "aws-access-token", "Description": "AWS",
            "StartLine": 3, "EndLine": 3, "StartColumn": 1, "EndColumn": 20,
            "Match": "AKIAIOSFODNN7EXAMPLE", "Secret": "AKIAIOSFODNN7EXAMPLE",
            "File": "deploy/aws.env", "SymlinkFile": "", "Commit": "5f1e0c2",
            "Entropy": 3.1, "Author": "dev", "Email": "dev@example.com",
            "Date": "2026-12-01T10:00:00Z", "Message": "add pipeline env", "Tags": [],
            "Fingerprint": "5f1e0c2:deploy/aws.env:aws-access-token:3"
        }
    ]))
    .unwrap()
}

#[test]
fn latch_leak_report_revokes_what_gitleaks_found_and_needs_leaks_report() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, token_id, token) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("gitleaks.json");
    std::fs::write(&report, gitleaks_report(&token)).unwrap();

    // A token without leaks:report cannot report.
    let (_, _, reader) = account_with_token(&latchd, &admin, "reader", "auditor", None);
    let head = latchd.head();
    let denied = latchd.latch(Some(&reader), &["leak", "report", "--from-gitleaks", &report.display().to_string()]);
    assert!(!denied.status.success());
    assert!(stderr(&denied).contains("leaks:report"), "{}", stderr(&denied));
    assert_eq!(latchd.head(), head);

    let reported = latchd.latch(
        Some(&admin),
        &["--output", "json", "leak", "report", "--from-gitleaks", &report.display().to_string()],
    );
    assert!(reported.status.success(), "{}", stderr(&reported));
    let summary: Value = serde_json::from_slice(&reported.stdout).unwrap();
    assert_eq!(summary["findings"], 2);
    assert_eq!(summary["latch_tokens"], 1, "the AWS key stays on this machine");
    assert_eq!(latchd.get("/v1/tokens/self", &token).status, 401);
    let leaks = events_of_type(&latchd, "token.leak_reported");
    assert_eq!(leaks[0]["data"]["token_id"], token_id.as_str());
    assert_eq!(leaks[0]["data"]["source"], "scanner:gitleaks");
    assert_eq!(leaks[0]["data"]["location"], "deploy/pipeline.env:12 (commit 5f1e0c2)");

    // A token on standard input.
    let (_, _, second) = account_with_token(&latchd, &admin, "second", "auditor", None);
    let mut child = Command::new(binary("latch"))
        .args(["leak", "report", "--location", "pasted in #ops"])
        .env("LATCH_URL", &latchd.url)
        .env("LATCH_TOKEN", &admin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(format!("{second}\n").as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(latchd.get("/v1/tokens/self", &second).status, 401);

    // A report that is not gitleaks JSON: a clear error, nothing appended.
    std::fs::write(&report, "not json").unwrap();
    let head = latchd.head();
    let bad = latchd.latch(Some(&admin), &["leak", "report", "--from-gitleaks", &report.display().to_string()]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("not a gitleaks JSON report"), "{}", stderr(&bad));
    assert_eq!(latchd.head(), head);
}

#[test]
fn a_leak_takes_the_tokens_rotated_and_exchanged_from_it() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, leaked) = account_with_token(&latchd, &admin, "deploy", "auditor", None);
    // Whoever holds the leaked token rotates it, then exchanges the
    // successor for a child.
    let rotated = latchd.post("/v1/tokens/self/rotate", &leaked, json!({"grace": "1h"}));
    assert_eq!(rotated.status, 201, "{:?}", rotated.body);
    let successor = rotated.body["token"].as_str().unwrap().to_owned();
    let child = latchd.raw(
        "POST",
        "/v1/token-exchange",
        None,
        &[("Content-Type", "application/json")],
        serde_json::to_vec(&json!({
            "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
            "subject_token": successor,
            "subject_token_type": "urn:ietf:params:oauth:token-type:access_token",
        }))
        .unwrap(),
    );
    assert_eq!(child.status, 201, "{:?}", child.body);
    let child = child.body["access_token"].as_str().unwrap().to_owned();

    let reported = latchd.post("/v1/leaks", &admin, json!({"scanner": "trufflehog", "tokens": [{"token": leaked, "location": "paste"}]}));
    assert_eq!(reported.status, 200, "{:?}", reported.body);
    assert_eq!(reported.body, json!({"received": 1, "well_formed": 1}));
    for (what, token) in [("leaked", &leaked), ("successor", &successor), ("child", &child)] {
        assert_eq!(latchd.get("/v1/tokens/self", token).status, 401, "the {what} token is revoked");
    }

    // A malformed report never echoes a token back (serde quotes what it
    // did not expect).
    let (_, _, live) = account_with_token(&latchd, &admin, "other", "auditor", None);
    let head = latchd.head();
    let malformed = latchd.post("/v1/leaks", &admin, json!({"tokens": [live]}));
    assert_eq!(malformed.status, 400, "{:?}", malformed.body);
    assert!(!malformed.body.to_string().contains(&live), "{:?}", malformed.body);
    let too_many: Vec<Value> = (0..1001).map(|_| json!({"token": "x"})).collect();
    let refused = latchd.post("/v1/leaks", &admin, json!({"tokens": too_many}));
    assert_eq!(refused.status, 422, "{:?}", refused.body);
    assert_eq!(latchd.head(), head);
    assert_eq!(latchd.get("/v1/tokens/self", &live).status, 200);
}
