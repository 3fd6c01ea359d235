//! Issue 16: a forger on the same NATS, with publish rights on
//! `latch.events.>` and `latch.heartbeat`, against the real latchd (which
//! signs its feed), a real nats-server and an in-process verifier that
//! trusts latchd's public key.
//!
//! - a forged `token.issued` at the next position with headers copied from
//!   a real event, an altered copy of a genuine event (scopes widened), a
//!   replayed old event, and the events of a second latchd with another key
//!   on the same subjects: the verifier accepts none of them, keeps
//!   applying genuine events, and counts every refusal;
//! - forged heartbeats while latchd is down: the verifier still goes stale
//!   on time;
//! - `latchd key rotate`: a verifier that trusted the old key follows the
//!   rotation, and refuses events signed with the old key after it.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt;
use latch_bus::{PublicKey, SigningKey, TrustedKeys, headers};
use latch_core::{Position, TokenDigest, TokenSecret};
use latch_e2e::{Latchd, account_with_token, binary, stdout};
use latch_verify::{Denial, NatsConnection, Permission, Verifier, VerifierConfig};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

fn public_key(data_dir: &Path) -> PublicKey {
    let shown = std::process::Command::new(binary("latchd"))
        .args(["key", "show", "--data-dir"])
        .arg(data_dir)
        .env_remove("LATCH_SIGNING_KEY")
        .output()
        .expect("latchd key show");
    assert!(shown.status.success(), "{shown:?}");
    stdout(&shown).trim().parse().expect("a public key")
}

async fn verifier(nats_url: &str, key: PublicKey) -> Verifier {
    let mut config = VerifierConfig::new(NatsConnection::new(nats_url));
    config.max_staleness = Duration::from_millis(1500);
    config.connect_timeout = Duration::from_secs(20);
    config.trusted_keys = TrustedKeys::new([key]);
    Verifier::connect(config).await.expect("current")
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The last message in the stream that latchd published (headers, payload).
async fn last_genuine(js: &jetstream::Context) -> (async_nats::HeaderMap, Value) {
    let mut stream = js.get_stream("LATCH_EVENTS").await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    for sequence in (1..=last).rev() {
        let Ok(message) = stream.get_raw_message(sequence).await else {
            continue;
        };
        if message.headers.get(headers::LATCH_SIGNATURE).is_some() {
            let payload = serde_json::from_slice(&message.payload).unwrap();
            return (message.headers, payload);
        }
    }
    panic!("no signed event in the stream");
}

/// A `token.issued` for `digest` at `position`, continuing `prev_hash`,
/// shaped exactly as latchd writes one, from the genuine event `template`.
fn forged_issue(template: &Value, position: u64, prev_hash: &str, digest: &TokenDigest) -> (String, Value) {
    let record: Value = serde_json::from_str(template["latchrecord"].as_str().unwrap()).unwrap();
    let mut data = record["data"].clone();
    let token_id = uuid::Uuid::now_v7().to_string();
    data["id"] = json!(uuid::Uuid::now_v7().to_string());
    data["data"]["token_id"] = json!(token_id);
    data["data"]["digest"] = json!(digest.to_hex());
    data["data"]["scopes"] = json!(["*"]);
    let forged_record = json!({
        "position": position,
        "stream": format!("token-{token_id}"),
        "version": 1,
        "prev_hash": prev_hash,
        "data": data,
    })
    .to_string();
    let mut event = template.clone();
    event["id"] = data["id"].clone();
    event["sequence"] = json!(position.to_string());
    event["subject"] = json!(token_id);
    event["data"] = data["data"].clone();
    event["latchrecord"] = json!(forged_record);
    (hex::encode(Sha256::digest(forged_record.as_bytes())), event)
}

/// The headers of a copied genuine event, with `overrides`.
fn forged_headers(copied: &async_nats::HeaderMap, overrides: &[(&str, String)]) -> async_nats::HeaderMap {
    let mut message_headers = async_nats::HeaderMap::new();
    for name in [
        headers::LATCH_LOG_ID,
        headers::LATCH_HASH,
        headers::LATCH_SIGNATURE,
        headers::LATCH_BATCH,
        headers::LATCH_PROOF,
        headers::LATCH_POSITION,
    ] {
        if let Some(value) = copied.get(name) {
            message_headers.insert(name, value.as_str());
        }
    }
    message_headers.insert(headers::NATS_MSG_ID, uuid::Uuid::now_v7().to_string().as_str());
    for (name, value) in overrides {
        message_headers.insert(*name, value.as_str());
    }
    message_headers
}

/// Publishes into the stream (which core subscribers see too).
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    copied: &async_nats::HeaderMap,
    overrides: &[(&str, String)],
    event: &Value,
) {
    js.publish_with_headers(
        subject.to_owned(),
        forged_headers(copied, overrides),
        serde_json::to_vec(event).unwrap().into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_forger_on_the_broker_cannot_add_alter_or_replay_events() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let key = public_key(&latchd.data_dir);
    let url = latchd.nats().url();
    let (account, token_id, secret) =
        account_with_token(&latchd, &admin, "ci", "auditor", Some(vec!["accounts:read"]));
    let verifier = verifier(&url, key).await;
    let read = Permission::parse("accounts:read").unwrap();
    until("the verifier accepts the genuine token", || {
        verifier.verify(&secret, &read).is_ok()
    })
    .await;
    let rejected = || verifier.stats().rejected;
    let before = rejected();

    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let (copied, genuine) = last_genuine(&js).await;
    assert_eq!(genuine["type"], "latch.token.issued", "{genuine}");
    let head: u64 = genuine["sequence"].as_str().unwrap().parse().unwrap();
    let head_hash = copied.get(headers::LATCH_HASH).unwrap().as_str().to_owned();
    let subject = format!("latch.events.token.issued.{account}");

    // 1. A token.issued for a secret the forger knows, at the next
    //    position, continuing the chain, with the real event's headers.
    let known = TokenSecret::generate(&mut rand::rng());
    let (forged_hash, forged) = forged_issue(&genuine, head + 1, &head_hash, &known.digest());
    publish(&js, &subject, &copied, &[(headers::LATCH_POSITION, (head + 1).to_string())], &forged).await;
    // ... and once more claiming the hash it really has.
    publish(
        &js,
        &subject,
        &copied,
        &[
            (headers::LATCH_POSITION, (head + 1).to_string()),
            (headers::LATCH_HASH, forged_hash),
        ],
        &forged,
    )
    .await;

    // 2. The genuine event with its scopes widened, in the record and out.
    let mut widened = genuine.clone();
    widened["data"]["scopes"] = json!(["*"]);
    widened["latchrecord"] = json!(
        genuine["latchrecord"]
            .as_str()
            .unwrap()
            .replace("\"scopes\":[\"accounts:read\"]", "\"scopes\":[\"*\"]")
    );
    assert_ne!(widened["latchrecord"], genuine["latchrecord"]);
    publish(&js, &subject, &copied, &[], &widened).await;

    // 3. A replay of an old genuine event, as a new message.
    publish(&js, &subject, &copied, &[], &genuine).await;

    // 4. The forged token.issued and the replay on core NATS only, where
    //    the verifier's live tail (and nothing that stores) hears them.
    let core = async_nats::connect(&url).await.unwrap();
    for event in [&forged, &genuine] {
        core.publish_with_headers(
            subject.clone(),
            forged_headers(&copied, &[]),
            serde_json::to_vec(event).unwrap().into(),
        )
        .await
        .unwrap();
    }
    core.flush().await.unwrap();

    until("every forgery is refused and counted", || rejected() >= before + 6).await;
    assert_eq!(
        verifier.verify(known.expose(), &read),
        Err(Denial::Rejected(latch_core::Rejection::Unknown)),
        "the forged token is never accepted"
    );

    // 5. A second latchd, another key and another log, on the same subjects.
    let other_dir = tempfile::tempdir().unwrap();
    let other_store = Arc::new(latch_store::EventStore::open(other_dir.path()).unwrap());
    let (other_handler, _) = latchd::CommandHandler::start(
        other_store.clone(),
        Arc::new(latchd::SystemClock),
        latchd::HandlerConfig::default(),
    )
    .unwrap();
    let other_secret = TokenSecret::generate(&mut rand::rng());
    let other_account = latch_core::AccountId::new();
    for command in [
        latch_core::Command::CreateAccount {
            account_id: other_account,
            name: latch_core::AccountName::parse("intruder").unwrap(),
            role: latch_core::RoleName::admin(),
            description: String::new(),
        },
        latch_core::Command::IssueToken {
            account_id: other_account,
            token_id: latch_core::TokenId::new(),
            name: "x".into(),
            scopes: None,
            ttl: None,
            allowed_cidrs: Vec::new(),
            digest: other_secret.digest(),
        },
    ] {
        other_handler
            .handle()
            .submit(latchd::CommandRequest::new(latch_core::Actor::System, command))
            .await
            .unwrap()
            .unwrap();
    }
    let other_status = Arc::new(latchd::RelayStatus::default());
    let (stop_other, other_shutdown) = tokio::sync::watch::channel(false);
    tokio::spawn(
        latchd::Relay {
            store: other_store,
            nats: latch_bus::NatsConnection::new(url.clone()),
            clock: Arc::new(latchd::SystemClock),
            status: other_status.clone(),
            keyring: Arc::new(latchd::Keyring::ephemeral()),
            publishes_events: true,
        }
        .run(other_shutdown),
    );
    until("the second latchd published its events", || {
        other_status.published.load(Ordering::SeqCst) >= 2
    })
    .await;
    until("its events are refused", || rejected() >= before + 6).await;
    assert!(verifier.verify(other_secret.expose(), &read).is_err());
    stop_other.send_replace(true);

    // Genuine events still apply: a revocation reaches the verifier.
    let revoked = latchd.post(&format!("/v1/tokens/{token_id}/revoke"), &admin, json!({}));
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    until("the genuine revocation applies", || {
        verifier.verify(&secret, &read) == Err(Denial::Rejected(latch_core::Rejection::Revoked))
    })
    .await;
    let (_, _, after) =
        account_with_token(&latchd, &admin, "later", "auditor", Some(vec!["accounts:read"]));
    until("a token issued afterwards is accepted", || {
        verifier.verify(&after, &read).is_ok()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_heartbeats_do_not_keep_a_cut_off_verifier_current() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    let key = public_key(&latchd.data_dir);
    let url = latchd.nats().url();
    let (_, _, secret) =
        account_with_token(&latchd, &admin, "ci", "auditor", Some(vec!["accounts:read"]));
    let verifier = verifier(&url, key).await;
    let read = Permission::parse("accounts:read").unwrap();
    until("current", || verifier.verify(&secret, &read).is_ok()).await;

    // A genuine heartbeat to copy, then latchd (and its relay) stops.
    let client = async_nats::connect(&url).await.unwrap();
    let mut beats = client.subscribe("latch.heartbeat").await.unwrap();
    let genuine = beats.next().await.unwrap();
    let genuine = latch_bus::Heartbeat::decode(&genuine.payload).unwrap();
    drop(beats);
    latchd.stop();

    let before = verifier.stats().rejected;
    let forger = client.clone();
    let forging = tokio::spawn(async move {
        loop {
            // The genuine heartbeat with a fresh time (its signature no
            // longer covers it), and one with no signature at all.
            let mut replayed = genuine.clone();
            replayed.time = chrono::Utc::now();
            let mut unsigned = latch_bus::Heartbeat::new(genuine.position, chrono::Utc::now());
            unsigned.log_id = genuine.log_id;
            for beat in [replayed, unsigned] {
                let _ = forger
                    .publish("latch.heartbeat", beat.encode().into())
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    let cut_at = Instant::now();
    until("the verifier goes stale despite the forged heartbeats", || {
        verifier.verify(&secret, &read) == Err(Denial::Stale)
    })
    .await;
    assert!(
        cut_at.elapsed() < Duration::from_secs(5),
        "stale on time (max_staleness 1.5 s), not kept current"
    );
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert_eq!(verifier.verify(&secret, &read), Err(Denial::Stale));
    assert!(verifier.stats().rejected > before);
    forging.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn verifiers_follow_a_key_rotation_and_refuse_the_old_key_after_it() {
    // latchd's data directory outlives this latchd: it restarts on it.
    let kept = tempfile::tempdir().unwrap();
    let data_dir = kept.path().join("data");
    let latchd = Latchd::start_in(&data_dir);
    let admin = latchd.admin_token();
    let old_key = public_key(&data_dir);
    let url = latchd.nats().url();
    let (account, _, before) =
        account_with_token(&latchd, &admin, "ci", "auditor", Some(vec!["accounts:read"]));
    let verifier = verifier(&url, old_key.clone()).await;
    let read = Permission::parse("accounts:read").unwrap();
    until("the old key's events apply", || verifier.verify(&before, &read).is_ok()).await;

    let nats = latchd.kill_9();
    let copied = data_dir.clone();
    let rotated = std::process::Command::new(binary("latchd"))
        .args(["key", "rotate", "--data-dir"])
        .arg(&copied)
        .env_remove("LATCH_SIGNING_KEY")
        .output()
        .unwrap();
    assert!(rotated.status.success(), "{rotated:?}");
    let new_key: PublicKey = stdout(&rotated).trim().parse().unwrap();
    assert_ne!(new_key, old_key);
    assert_eq!(public_key(&copied), new_key, "key show names the new key");

    let latchd = Latchd::start_with(&copied, nats);
    let admin = latchd.admin_token();
    let issued = latchd.post(
        &format!("/v1/accounts/{account}/tokens"),
        &admin,
        json!({"name": "after", "scopes": ["accounts:read"]}),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let after = issued.body["token"].as_str().unwrap().to_owned();
    until("the new key's events apply at a verifier that trusted the old key", || {
        verifier.verify(&after, &read).is_ok()
    })
    .await;

    // An event signed with the old key after the rotation: refused.
    let old_file = std::fs::read_dir(copied.join("signing-keys"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.file_name().unwrap().to_str().unwrap().starts_with("00000000000000000001-"))
        .unwrap();
    let old_signer = SigningKey::from_pem(&std::fs::read_to_string(old_file).unwrap()).unwrap();
    assert_eq!(old_signer.public_key(), old_key);
    let js = jetstream::new(async_nats::connect(&url).await.unwrap());
    let (copied_headers, genuine) = last_genuine(&js).await;
    let head: u64 = genuine["sequence"].as_str().unwrap().parse().unwrap();
    let head_hash = copied_headers.get(headers::LATCH_HASH).unwrap().as_str().to_owned();
    let known = TokenSecret::generate(&mut rand::rng());
    let (hash, forged) = forged_issue(&genuine, head + 1, &head_hash, &known.digest());
    let record: Value = serde_json::from_str(forged["latchrecord"].as_str().unwrap()).unwrap();
    let log: latch_core::LogId = copied_headers
        .get(headers::LATCH_LOG_ID)
        .unwrap()
        .as_str()
        .parse()
        .unwrap();
    let mut hash_bytes = [0u8; 32];
    hex::decode_to_slice(&hash, &mut hash_bytes).unwrap();
    let signature = old_signer.sign(&latch_bus::feed_signing::event_message(
        log,
        Position::new(head + 1),
        record["data"]["id"].as_str().unwrap().parse().unwrap(),
        &hash_bytes,
    ));
    let rejected_before = verifier.stats().rejected;
    publish(
        &js,
        &format!("latch.events.token.issued.{account}"),
        &copied_headers,
        &[
            (headers::LATCH_POSITION, (head + 1).to_string()),
            (headers::LATCH_HASH, hash),
            (headers::LATCH_SIGNATURE, signature),
        ],
        &forged,
    )
    .await;
    until("the old key's late event is refused", || {
        verifier.stats().rejected > rejected_before
    })
    .await;
    assert!(verifier.verify(known.expose(), &read).is_err());
}

#[test]
fn latch_watch_with_latchds_key_shows_signed_events_only() {
    use std::io::{BufRead, BufReader, Read};
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let key = public_key(&latchd.data_dir);
    let (account, token_id, _) = account_with_token(&latchd, &admin, "ci", "auditor", None);
    let mut child = std::process::Command::new(binary("latch"))
        .args([
            "watch",
            "--nats-url",
            &latchd.nats().url(),
            "--type",
            "token.revoked",
            "--output",
            "json",
        ])
        .env("LATCH_PUBLIC_KEY", key.to_string())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(said.starts_with("watching "), "{said}");

    // A forger's revocation, shaped like latchd's, unsigned; then a real one.
    let url = latchd.nats().url();
    let forged_account = account.clone();
    latch_e2e::block_on(async move {
        let client = async_nats::connect(url).await.unwrap();
        let forged = json!({
            "specversion": "1.0", "id": uuid::Uuid::now_v7().to_string(), "source": "latchd",
            "type": "latch.token.revoked", "subject": "forged", "time": chrono::Utc::now(),
            "datacontenttype": "application/json", "sequence": "999",
            "data": {"token_id": uuid::Uuid::now_v7().to_string(), "account_id": forged_account, "reason": "forged"},
            "latchversion": "1", "latchactor": "system"
        });
        client
            .publish(
                format!("latch.events.token.revoked.{forged_account}"),
                forged.to_string().into(),
            )
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    let revoked = latchd.post(&format!("/v1/tokens/{token_id}/revoke"), &admin, json!({}));
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);

    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("latch watch printed nothing within 20 s");
    let event: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["data"]["token_id"], token_id.as_str(), "{line}");
    let mut rest = String::new();
    let _ = stderr.read_to_string(&mut rest);
    assert!(rest.contains("refused"), "the forgery is refused aloud: {rest}");
}
