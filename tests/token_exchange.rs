//! Token exchange with a Latch subject token (issue 20): a token trades
//! itself for a short-lived child that can do no more than it, lives no
//! longer, and is revoked with it, at latchd and at every verifier. Real
//! latchd, real NATS, real verifier, the real `latch` CLI.

use std::time::{Duration, Instant};

use latch_core::Rejection;
use latch_e2e::{Latchd, Reply, account_with_token, ok, stderr};
use latch_verify::{Denial, NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::{Value, json};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";

/// `POST /v1/token-exchange` of a Latch token, no Authorization header, as JSON.
fn exchange(latchd: &Latchd, subject: &str, extra: Value) -> Reply {
    exchange_typed(latchd, subject, ACCESS, extra)
}

/// The same for a subject token of `subject_type`.
fn exchange_typed(latchd: &Latchd, subject: &str, subject_type: &str, extra: Value) -> Reply {
    let mut body = json!({"grant_type": GRANT, "subject_token": subject, "subject_token_type": subject_type});
    for (key, value) in extra.as_object().unwrap() {
        body[key] = value.clone();
    }
    latchd.raw(
        "POST",
        "/v1/token-exchange",
        None,
        &[("Content-Type", "application/json")],
        serde_json::to_vec(&body).unwrap(),
    )
}

/// The same as an OAuth client sends it: a form.
fn exchange_form(latchd: &Latchd, form: &str) -> Reply {
    latchd.raw(
        "POST",
        "/v1/token-exchange",
        None,
        &[("Content-Type", "application/x-www-form-urlencoded")],
        form.as_bytes().to_vec(),
    )
}

fn form_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            b' ' => "+".to_owned(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[track_caller]
fn refused(latchd: &Latchd, reply: &Reply, status: u16, says: &str, head: u64) {
    assert_eq!(reply.status, status, "{:?}", reply.body);
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{:?}",
        reply.body
    );
    let detail = reply.body["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(says), "the problem says {says:?}: {detail}");
    assert_eq!(latchd.head(), head, "a refused exchange appends nothing");
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
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_token_works_everywhere_within_its_parent_and_ends_with_it() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    // An auditor's token: `*:read`.
    let (_, parent_id, parent) = account_with_token(&latchd, &admin, "ci", "auditor", None);

    let child = exchange(&latchd, &parent, json!({"scope": "audit:read tokens:read", "ttl": "10m"}));
    assert_eq!(child.status, 201, "{:?}", child.body);
    assert_eq!(child.header("cache-control"), Some("no-store"));
    assert_eq!(child.body["issued_token_type"], ACCESS);
    assert_eq!(child.body["token_type"], "Bearer");
    assert_eq!(child.body["scope"], "audit:read tokens:read");
    let expires_in = child.body["expires_in"].as_i64().unwrap();
    assert!((590..=600).contains(&expires_in), "{expires_in}");
    let child_id = child.body["token_id"].as_str().unwrap().to_owned();
    let child = child.body["access_token"].as_str().unwrap().to_owned();

    // At latchd: it is a token of the account, naming its parent.
    let shown = latchd.get("/v1/tokens/self", &child);
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["parent"], parent_id.as_str());
    assert_eq!(shown.body["scopes"], json!(["audit:read", "tokens:read"]));
    assert_eq!(latchd.get("/v1/accounts", &child).status, 403, "narrower than its parent");

    // A grandchild, asked for as an OAuth client does (a form).
    let form = format!(
        "grant_type={}&subject_token={}&subject_token_type={}&scope=audit%3Aread",
        form_encoded(GRANT),
        form_encoded(&child),
        form_encoded(ACCESS)
    );
    let grandchild = exchange_form(&latchd, &form);
    assert_eq!(grandchild.status, 201, "{:?}", grandchild.body);
    let grandchild_expires = grandchild.body["expires_in"].as_i64().unwrap();
    assert!(grandchild_expires <= expires_in, "cut to its parent's expiry: {grandchild_expires}");
    let grandchild = grandchild.body["access_token"].as_str().unwrap().to_owned();

    // At a verifier.
    let verifier = verifier(&latchd).await;
    let audit = Permission::parse("audit:read").unwrap();
    let accounts = Permission::parse("accounts:read").unwrap();
    until("the verifier knows the grandchild", || verifier.verify(&grandchild, &audit).is_ok()).await;
    assert!(verifier.verify(&child, &audit).is_ok());
    assert_eq!(verifier.verify(&child, &accounts), Err(Denial::MissingPermission));
    assert_eq!(verifier.verify(&grandchild, &Permission::parse("tokens:read").unwrap()), Err(Denial::MissingPermission));

    // Neither widens nor outlives: refused, nothing appended.
    let head = latchd.head();
    refused(&latchd, &exchange(&latchd, &child, json!({"scope": "accounts:read"})), 422, "accounts:read", head);
    refused(&latchd, &exchange(&latchd, &child, json!({"ttl": "1h"})), 422, "outlive its parent", head);

    // Revoking the parent ends both, at latchd and at the verifier.
    let revoked = latchd.post(&format!("/v1/tokens/{parent_id}/revoke"), &admin, json!({"reason": "leaked"}));
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    let took = until("the verifier refuses child and grandchild", || {
        verifier.verify(&child, &audit) == Err(Denial::Rejected(Rejection::Revoked))
            && verifier.verify(&grandchild, &audit) == Err(Denial::Rejected(Rejection::Revoked))
    })
    .await;
    eprintln!("parent revoked → children refused at the verifier after {took:?}");
    assert_eq!(latchd.get("/v1/tokens/self", &child).status, 401);
    assert_eq!(latchd.get("/v1/tokens/self", &grandchild).status, 401);
    let story = latchd.get(&format!("/v1/audit/tokens/{child_id}"), &admin);
    assert_eq!(story.status, 200, "{:?}", story.body);
    assert!(story.body.to_string().contains("which was revoked or rotated"), "{}", story.body);

    // A revoked token gets no child. (Presenting a revoked token is reuse:
    // latchd tells, once per token an hour — for the child, the grandchild
    // and the parent here — and appends nothing else.)
    let reused = exchange(&latchd, &parent, json!({}));
    assert_eq!(reused.status, 401, "{:?}", reused.body);
    latch_e2e::eventually("latchd tells the three reuses", || {
        latchd.get("/v1/events?type=token.reuse_detected", &admin).body["events"]
            .as_array()
            .is_some_and(|events| events.len() == 3)
    });
    let head = latchd.head();
    refused(&latchd, &exchange(&latchd, &parent, json!({})), 401, "revoked", head);
    assert!(!latchd.logs().contains(&parent), "the subject token never reaches latchd's log");
    assert!(!latchd.logs().contains(&child));
}

/// Whatever is sent, nothing is appended and the answer is a problem; a
/// source that keeps failing is answered 429.
#[test]
fn bad_exchanges_are_refused_clearly_and_a_source_that_keeps_failing_is_limited() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, parent) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let head = latchd.head();
    refused(&latchd, &exchange(&latchd, &parent, json!({"grant_type": "client_credentials"})), 400, "grant_type", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"})), 400, "subject_token_type", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"})), 401, "not a JWT", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"audience": "x"})), 400, "audience", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"requested_token_type": "urn:ietf:params:oauth:token-type:id_token"})), 400, "requested_token_type", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"scope": "not a permission"})), 422, "scope", head);
    refused(&latchd, &exchange(&latchd, &parent, json!({"ttl": "forever"})), 422, "ttl", head);
    let unknown_field = exchange(&latchd, &parent, json!({"actor_token": "x"}));
    refused(&latchd, &unknown_field, 400, "JSON body", head);
    assert!(!unknown_field.body.to_string().contains(&parent), "a parse error never quotes the subject token");
    let text = latchd.raw("POST", "/v1/token-exchange", None, &[("Content-Type", "text/plain")], parent.clone().into_bytes());
    refused(&latchd, &text, 415, "application/json", head);

    // Guessing: 401 each, until the source's failure budget (120 at once)
    // is spent; then 429 (a valid subject token is never limited).
    let mut statuses = Vec::new();
    for _ in 0..130 {
        let guess = format!("latch_{}", "A".repeat(38));
        statuses.push(exchange(&latchd, &guess, json!({})).status);
    }
    assert_eq!(statuses[0], 401, "{statuses:?}");
    assert_eq!(*statuses.last().unwrap(), 429, "{statuses:?}");
    assert_eq!(latchd.head(), head);
}

#[test]
fn the_cli_exchanges_a_token_from_a_file_or_its_own() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, parent) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("subject");
    std::fs::write(&file, format!("{parent}\n")).unwrap();
    let child = ok(latchd.latch(
        None,
        &["token", "exchange", "--subject-token-file", file.to_str().unwrap(), "--scope", "audit:read", "--ttl", "5m", "--output", "raw"],
    ));
    let child = child.trim();
    assert!(child.starts_with("latch_"), "{child}");
    let shown = latchd.get("/v1/tokens/self", child);
    assert_eq!(shown.status, 200, "{:?}", shown.body);
    assert_eq!(shown.body["scopes"], json!(["audit:read"]));

    let own = ok(latchd.latch(Some(child), &["token", "exchange", "--output", "json"]));
    let own: Value = serde_json::from_str(&own).unwrap();
    assert_eq!(own["scope"], "audit:read");

    let wider = latchd.latch(Some(child), &["token", "exchange", "--scope", "accounts:read"]);
    assert_ne!(wider.status.code(), Some(0));
    assert!(stderr(&wider).contains("accounts:read"), "{}", stderr(&wider));
}

// ------------------------------------------------------------ OIDC tokens

#[path = "support/oidc_issuer.rs"]
mod oidc_issuer;

use oidc_issuer::OidcIssuer;

const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const MAIN: &str = "repo:acme/deploy:ref:refs/heads/main";

fn exchange_jwt(latchd: &Latchd, jwt: &str, extra: Value) -> Reply {
    exchange_typed(latchd, jwt, JWT, extra)
}

/// An account `ci-deploy` (role admin) trusting `issuer`'s tokens for
/// audience `latch` from acme/deploy's main branch, with `audit:read
/// tokens:read` for at most 10 minutes. Returns (account id, policy id).
fn trusting(latchd: &Latchd, admin: &str, issuer: &OidcIssuer) -> (String, String) {
    let created = latchd.post("/v1/accounts", admin, json!({"name": "ci-deploy", "role": "auditor"}));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let policy = latchd.post(
        &format!("/v1/accounts/{account}/trust-policies"),
        admin,
        json!({
            "issuer": issuer.url, "audience": "latch",
            "claims": {"sub": MAIN, "repository_owner": "acme", "ref_protected": "true"},
            "scopes": ["audit:read", "tokens:read"], "max_ttl": "10m"
        }),
    );
    assert_eq!(policy.status, 201, "{:?}", policy.body);
    (account, policy.body["id"].as_str().unwrap().to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ci_identity_token_is_exchanged_for_a_short_lived_token_that_works_everywhere() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let issuer = OidcIssuer::start();
    let (account, policy) = trusting(&latchd, &admin, &issuer);
    let verifier = verifier(&latchd).await;
    let audit = Permission::parse("audit:read").unwrap();

    for kid in ["es-1", "rs-1"] {
        let jwt = issuer.sign(kid, &issuer.github_claims(MAIN, "latch"));
        let exchanged = exchange_jwt(&latchd, &jwt, json!({"scope": "audit:read", "ttl": "5m"}));
        assert_eq!(exchanged.status, 201, "{kid}: {:?}", exchanged.body);
        assert_eq!(exchanged.body["scope"], "audit:read");
        let expires_in = exchanged.body["expires_in"].as_i64().unwrap();
        assert!((290..=300).contains(&expires_in), "{expires_in}");
        let token = exchanged.body["access_token"].as_str().unwrap().to_owned();
        let shown = latchd.get("/v1/tokens/self", &token);
        assert_eq!(shown.status, 200, "{:?}", shown.body);
        assert_eq!(shown.body["account_id"], account.as_str());
        assert_eq!(shown.body["trust_policy"], policy.as_str(), "listed with the policy it came under");
        until("the verifier accepts the exchanged token", || verifier.verify(&token, &audit).is_ok()).await;
    }
    // By default: the policy's scopes, for at most its max_ttl.
    let jwt = issuer.sign("es-1", &issuer.github_claims(MAIN, "latch"));
    let exchanged = exchange_jwt(&latchd, &jwt, json!({}));
    assert_eq!(exchanged.status, 201, "{:?}", exchanged.body);
    assert_eq!(exchanged.body["scope"], "audit:read tokens:read");
    assert!(exchanged.body["expires_in"].as_i64().unwrap() <= 600);
    let token_id = exchanged.body["token_id"].as_str().unwrap().to_owned();
    // The event names the issuer, subject, jti and policy, never the JWT.
    let events = latchd.get("/v1/events?limit=1000", &admin);
    let text = events.body.to_string();
    assert!(text.contains(&policy) && text.contains(MAIN), "{text}");
    assert!(!text.contains(&jwt), "the JWT is never recorded");
    assert!(!latchd.logs().contains(&jwt), "nor logged");
    let story = latchd.get(&format!("/v1/audit/tokens/{token_id}"), &admin);
    assert!(story.body.to_string().contains("OIDC token"), "{}", story.body);

    // The issuer rotates its key: picked up without a restart.
    issuer.rotate("es-2");
    let jwt = issuer.sign("es-2", &issuer.github_claims(MAIN, "latch"));
    assert_eq!(exchange_jwt(&latchd, &jwt, json!({})).status, 201);

    // The CLI, from a file.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("id-token");
    std::fs::write(&file, issuer.sign("es-1", &issuer.github_claims(MAIN, "latch"))).unwrap();
    let raw = ok(latchd.latch(
        None,
        &["token", "exchange", "--subject-token-type", "jwt", "--subject-token-file", file.to_str().unwrap(), "--output", "raw"],
    ));
    assert!(raw.trim().starts_with("latch_"), "{raw}");
}

#[test]
fn every_bad_oidc_token_is_refused_clearly_and_appends_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let issuer = OidcIssuer::start();
    let (account, policy) = trusting(&latchd, &admin, &issuer);
    let good = || issuer.github_claims(MAIN, "latch");
    let with = |change: &dyn Fn(&mut Value)| {
        let mut claims = good();
        change(&mut claims);
        claims
    };
    let head = latchd.head();
    let now = chrono::Utc::now().timestamp();

    let other = OidcIssuer::start();
    refused(&latchd, &exchange_jwt(&latchd, &other.sign("es-1", &other.github_claims(MAIN, "latch")), json!({})), 401, "no trust policy trusts the issuer", head);
    assert_eq!(other.requests(), 0, "a token cannot make latchd call an issuer of its choosing");
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(MAIN, "someone-else")), json!({})), 401, "does not verify", head);
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &with(&|c| { c["exp"] = json!(now - 120); c["iat"] = json!(now - 600); })), json!({})), 401, "does not verify", head);
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &with(&|c| c["nbf"] = json!(now + 600))), json!({})), 401, "does not verify", head);
    // A signature by a key the issuer does not publish, under a kid it does.
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign_unpublished("es-1", &good()), json!({})), 401, "does not verify", head);
    // A kid it does not publish, even after fetching its keys again.
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign_unpublished("es-9", &good()), json!({})), 401, "publishes no key", head);
    // alg none, and HS256 keyed with the issuer's public RSA key.
    let encode = |value: &Value| {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
    };
    let unsigned = format!("{}.{}.", encode(&json!({"alg": "none", "kid": "es-1"})), encode(&good()));
    refused(&latchd, &exchange_jwt(&latchd, &unsigned, json!({})), 401, "not a JWT", head);
    let mut hs = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    hs.kid = Some("rs-1".into());
    let confused = jsonwebtoken::encode(&hs, &good(), &jsonwebtoken::EncodingKey::from_secret(oidc_issuer::RSA_PUBLIC_KEY.as_bytes())).unwrap();
    refused(&latchd, &exchange_jwt(&latchd, &confused, json!({})), 401, "HS256", head);
    // Claims that do not match, scopes wider than the policy, a ttl longer.
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims("repo:acme/deploy:ref:refs/heads/feature", "latch")), json!({})), 403, "\"sub\"", head);
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &with(&|c| c["ref_protected"] = json!(false))), json!({})), 403, "ref_protected", head);
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &good()), json!({"scope": "accounts:read"})), 422, "accounts:read", head);
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &good()), json!({"ttl": "11m"})), 422, "max_ttl", head);
    // A replayed jti.
    let once = issuer.sign("es-1", &good());
    assert_eq!(exchange_jwt(&latchd, &once, json!({})).status, 201);
    let head = latchd.head();
    refused(&latchd, &exchange_jwt(&latchd, &once, json!({})), 403, "already exchanged", head);
    // A disabled account.
    assert_eq!(latchd.post(&format!("/v1/accounts/{account}/disable"), &admin, json!({"reason": "incident"})).status, 200);
    let head = latchd.head();
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &good()), json!({})), 409, "disabled", head);
    assert_eq!(latchd.post(&format!("/v1/accounts/{account}/enable"), &admin, json!({})).status, 200);
    // A policy removed a moment before.
    let removed = latchd.call("DELETE", &format!("/v1/accounts/{account}/trust-policies/{policy}"), Some(&admin), None);
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    let head = latchd.head();
    refused(&latchd, &exchange_jwt(&latchd, &issuer.sign("es-1", &good()), json!({})), 401, "no trust policy trusts the issuer", head);
}

#[test]
fn an_issuer_that_is_down_makes_exchanges_fail_with_503_and_nothing_else() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let issuer = OidcIssuer::start();
    trusting(&latchd, &admin, &issuer);
    issuer.set_down(true);
    let head = latchd.head();
    let reply = exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(MAIN, "latch")), json!({}));
    refused(&latchd, &reply, 503, "could not be fetched", head);
    // Everything else goes on.
    assert_eq!(latchd.get("/v1/accounts", &admin).status, 200);
    // Back up: exchanges work again within a second (a failed fetch is
    // not repeated for a second: requests meanwhile fail at once).
    issuer.set_down(false);
    let back = Instant::now();
    loop {
        let reply = exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(MAIN, "latch")), json!({}));
        if reply.status == 201 {
            break;
        }
        assert_eq!(reply.status, 503, "{:?}", reply.body);
        assert!(back.elapsed() < Duration::from_secs(5), "still refused: {:?}", reply.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_cli_manages_trust_policies() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    ok(latchd.latch(Some(&admin), &["account", "create", "ci", "--role", "auditor"]));
    let added = ok(latchd.latch(
        Some(&admin),
        &["account", "trust", "add", "ci", "--issuer", "https://token.actions.githubusercontent.com", "--audience", "latch",
          "--claim", "sub=repo:acme/deploy:ref:refs/heads/main", "--claim", "repository_owner=acme", "--output", "json"],
    ));
    let added: Value = serde_json::from_str(&added).unwrap();
    assert_eq!(added["claims"]["repository_owner"], "acme");
    let listed = ok(latchd.latch(Some(&admin), &["account", "trust", "list", "ci", "--output", "json"]));
    assert!(listed.contains(added["id"].as_str().unwrap()), "{listed}");
    let wildcard = latchd.latch(
        Some(&admin),
        &["account", "trust", "add", "ci", "--issuer", "https://gitlab.com", "--audience", "latch", "--claim", "sub=*"],
    );
    assert_ne!(wildcard.status.code(), Some(0));
    assert!(stderr(&wildcard).contains("not just *"), "{}", stderr(&wildcard));
    // A token that may not read tokens may not read trust policies either.
    let (_, _, narrow) = account_with_token(&latchd, &admin, "narrow", "auditor", Some(vec!["audit:read"]));
    let account = added["account_id"].as_str().unwrap();
    let listed_by_narrow = latchd.get(&format!("/v1/accounts/{account}/trust-policies"), &narrow);
    assert_eq!(listed_by_narrow.status, 403, "{:?}", listed_by_narrow.body);
    ok(latchd.latch(Some(&admin), &["account", "trust", "remove", "ci", added["id"].as_str().unwrap()]));
    let listed = ok(latchd.latch(Some(&admin), &["account", "trust", "list", "ci", "--output", "json"]));
    assert!(!listed.contains(added["id"].as_str().unwrap()), "{listed}");
}

/// One workload (or whoever replays its tokens) failing over and over is
/// limited per issuer and subject, before the source address's budget is
/// spent; another subject is not.
#[test]
fn a_subject_that_keeps_failing_is_limited_and_others_are_not() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let issuer = OidcIssuer::start();
    trusting(&latchd, &admin, &issuer);
    let feature = "repo:acme/deploy:ref:refs/heads/feature";
    for _ in 0..10 {
        let reply = exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(feature, "latch")), json!({}));
        assert_eq!(reply.status, 403, "{:?}", reply.body);
    }
    let head = latchd.head();
    let limited = exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(feature, "latch")), json!({}));
    refused(&latchd, &limited, 429, "too many failed exchanges for this OIDC subject", head);
    let other = exchange_jwt(&latchd, &issuer.sign("es-1", &issuer.github_claims(MAIN, "latch")), json!({}));
    assert_eq!(other.status, 201, "{:?}", other.body);
}
