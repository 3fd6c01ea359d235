//! The shipped NATS configuration, `deploy/nats.conf`, as written (only the
//! passwords, the port and the store directory are the test's): every role
//! works with its own user and inbox prefix, and a user with no Latch
//! permissions (`other`) can neither forge events or heartbeats, nor read
//! the others' replies, nor make latchd reply into `latch.`, nor touch the
//! stream (issue 15, finding 6).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use latch_e2e::{Latchd, account_with_token, binary, eventually, ok};
use latch_verify::{Permission, Verifier, VerifierConfig};
use serde_json::Value;

const USERS: [&str; 4] = ["latchd", "verifier", "ci", "other"];

fn password(user: &str) -> String {
    format!("{user}-pw-{}", std::process::id())
}

/// `deploy/nats.conf` with the passwords defined before its text (a
/// variable the file references must be defined before it, in the same
/// file, or in the environment).
fn shipped_config(dir: &Path) -> std::path::PathBuf {
    let shipped =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/nats.conf"))
            .expect("deploy/nats.conf");
    let mut text = String::new();
    for user in USERS {
        text.push_str(&format!(
            "NATS_{}_PASSWORD: \"{}\"\n",
            user.to_uppercase(),
            password(user)
        ));
    }
    text.push_str(&shipped);
    let path = dir.join("nats.conf");
    std::fs::write(&path, text).unwrap();
    path
}

fn connection(url: &str, user: &str) -> latch_bus::NatsConnection {
    latch_bus::NatsConnection {
        user: Some(user.to_owned()),
        password: Some(password(user)),
        inbox_prefix: Some(format!("_INBOX_{user}")),
        ..latch_bus::NatsConnection::new(url)
    }
}



/// latchd as the `latchd` user, on a nats-server run with `config`; the
/// NATS URL and latchd's data directory (kept while it runs).
fn launch_on(config: &Path) -> (Latchd, String, tempfile::TempDir) {
    let nats = latch_testkit::NatsServer::start_with_args(&["-c", config.to_str().unwrap()]);
    let url = nats.url();
    let data = tempfile::tempdir().unwrap();
    let latchd_password = password("latchd");
    let latchd = Latchd::launch_with(
        data.path(),
        nats,
        "127.0.0.1",
        &["--nats-url".to_owned(), url.clone()],
        &[
            ("LATCH_NATS_USER", "latchd"),
            ("LATCH_NATS_PASSWORD", latchd_password.as_str()),
            ("LATCH_NATS_INBOX_PREFIX", "_INBOX_latchd"),
        ],
        None,
    );
    (latchd, url, data)
}

/// A verifier connected as the `verifier` user, current.
async fn verifier_user(url: &str) -> Verifier {
    let mut config = VerifierConfig::new(connection(url, "verifier"));
    config.connect_timeout = Duration::from_secs(15);
    Verifier::connect(config)
        .await
        .expect("the verifier gets current")
}

/// `latch --transport nats` as the `ci` user.
fn latch_as_ci(latchd: &Latchd, token: &str, args: &[&str]) -> Output {
    Command::new(binary("latch"))
        .args(["--transport", "nats", "--nats-url", &latchd.nats().url()])
        .args(args)
        .env("LATCH_TOKEN", token)
        .env("LATCH_NATS_USER", "ci")
        .env("LATCH_NATS_PASSWORD", password("ci"))
        .env("LATCH_NATS_INBOX_PREFIX", "_INBOX_ci")
        .env_remove("LATCH_URL")
        .env_remove("LATCH_TOKEN_FILE")
        .stdin(Stdio::null())
        .output()
        .expect("run latch")
}

/// When LATCH_EVENTS was created, how many messages it holds and whether
/// all are Latch events, read as the verifier user.
async fn stream_state(verifier_client: &async_nats::Client) -> (String, u64, bool) {
    let js = async_nats::jetstream::new(verifier_client.clone());
    let mut stream = js.get_stream("LATCH_EVENTS").await.expect("the stream");
    let info = stream.info().await.unwrap().clone();
    let state = info.state.clone();
    let mut all_latch = true;
    for sequence in state.first_sequence..=state.last_sequence {
        if let Ok(message) = stream.get_raw_message(sequence).await {
            all_latch &= message.headers.get("Latch-Position").is_some()
                && latch_bus::decode(&message.payload).is_ok();
        }
    }
    (format!("{:?}", info.created), state.messages, all_latch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_shipped_nats_conf_lets_every_role_work_and_stops_everyone_else() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let (latchd, url, _data) = launch_on(&config);
    let admin = latchd.admin_token();

    // latchd relays with its user.
    let (account, token_id, token) = account_with_token(&latchd, &admin, "svc", "auditor", None);
    let head = latchd.head();
    eventually("latchd's relay published the log", || {
        latchd.metric("latch_relay_connected") == 1
            && latchd.metric("latch_relay_published_position") == head
    });

    // A verifier follows, verifies and reports usage with its user.
    let verifier = verifier_user(&url).await;
    let read = Permission::parse("audit:read").unwrap();
    verifier
        .verify(&token, &read)
        .expect("the verifier accepts the token");
    let started = Instant::now();
    while latchd.get(&format!("/v1/tokens/{token_id}"), &admin).body["last_used_at"].is_null() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "latchd received the verifier's usage report"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(verifier.stats().reconnects, 0);
    // With the shipped permissions it follows the live tail: a token issued
    // now reaches it without another read of the stream.
    let catch_ups = || verifier.stats().stream_catch_ups;
    let before = catch_ups();
    let (_, _, later) = account_with_token(&latchd, &admin, "svc-2", "auditor", None);
    eventually("the verifier learns the new token from the tail", || {
        verifier.verify(&later, &read).is_ok()
    });
    assert_eq!(catch_ups(), before, "the stream was not read again");

    // The CLI sends commands over NATS with the ci user (the secret comes
    // back sealed, on ci's own inboxes).
    let other = connection(&url, "other")
        .connect()
        .await
        .expect("other connects");
    let mut other_sees = other.subscribe(">").await.unwrap();
    other.flush().await.unwrap();
    let issued: Value = serde_json::from_str(&ok(latch_as_ci(
        &latchd,
        &admin,
        &[
            "token", "issue", &account, "--name", "from-ci", "--output", "json",
        ],
    )))
    .unwrap();
    let secret = issued["token"].as_str().unwrap().to_owned();
    let new_head = latchd.head();
    assert!(new_head > head);
    let started = Instant::now();
    while verifier.verify(&secret, &read).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the verifier learns the new token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // `other` forges an event and a heartbeat, asks latchd (commands,
    // heartbeat, discovery) to reply into latch.events., and tries to delete
    // the stream: NATS refuses all of it.
    let verifier_client = connection(&url, "verifier").connect().await.unwrap();
    let mut heartbeats = verifier_client.subscribe("latch.heartbeat").await.unwrap();
    verifier_client.flush().await.unwrap();
    let (created, before, _) = stream_state(&verifier_client).await;
    let forged = r#"{"position": 999999, "time": "2030-01-01T00:00:00Z"}"#;
    other
        .publish("latch.heartbeat", forged.into())
        .await
        .unwrap();
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Latch-Position", "999999");
    other
        .publish_with_headers("latch.events.token.issued.x", headers, "forged".into())
        .await
        .unwrap();
    for subject in [
        "latch.cmd.account.list",
        "latch.heartbeat.request",
        "$SRV.PING",
    ] {
        other
            .publish_with_reply(subject, "latch.events.token.issued.x", "{}".into())
            .await
            .unwrap();
    }
    other
        .publish_with_reply(
            "$JS.API.STREAM.DELETE.LATCH_EVENTS",
            "_INBOX_other.delete",
            "".into(),
        )
        .await
        .unwrap();
    other.flush().await.unwrap();
    // The ci user may send commands: latchd still refuses to reply into
    // latch.events. for it.
    let ci = connection(&url, "ci").connect().await.unwrap();
    ci.publish_with_reply(
        "latch.cmd.account.list",
        "latch.events.token.issued.x",
        "{}".into(),
    )
    .await
    .unwrap();
    ci.flush().await.unwrap();
    // ci cannot read other users' inboxes: its subscription is refused.
    let mut ci_snoops = ci.subscribe("_INBOX_verifier.>").await.unwrap();
    ci.flush().await.unwrap();

    // Another command over NATS while they listen.
    let shown = ok(latch_as_ci(
        &latchd,
        &admin,
        &["token", "list", &account, "--output", "json"],
    ));
    assert!(shown.contains("from-ci"));
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let (still, after, all_latch) = stream_state(&verifier_client).await;
    assert_eq!(still, created, "the stream was not deleted");
    assert!(all_latch, "only Latch events in the stream");
    assert_eq!(after, before, "nothing was added to the stream");
    let mut beats = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(10), heartbeats.next()).await
    {
        beats.push(String::from_utf8_lossy(&message.payload).into_owned());
    }
    assert!(
        !beats.is_empty(),
        "latchd heartbeats reach the verifier user"
    );
    assert!(
        beats.iter().all(|b| !b.contains("999999")),
        "a forged heartbeat got through: {beats:?}"
    );
    // `other` saw nothing of Latch's: no events, heartbeats, commands or
    // replies (its subscription to `>` is filtered by its deny list).
    let mut seen = Vec::new();
    while let Ok(Some(message)) =
        tokio::time::timeout(Duration::from_millis(10), other_sees.next()).await
    {
        seen.push(message.subject.to_string());
    }
    assert!(
        seen.iter()
            .all(|s| !s.starts_with("latch.") && !s.starts_with("_INBOX")),
        "other saw {seen:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(200), ci_snoops.next())
            .await
            .is_err_or_none(),
        "ci read a verifier's inbox"
    );
    // The audit names the NATS client as far as NATS lets latchd know it:
    // its reply inbox and program, labelled as claims.
    let audit = latchd.get("/v1/audit?limit=1000", &admin);
    assert!(
        audit.body["records"].as_array().unwrap().iter().any(|r| {
            r["remote_addr"].as_str().is_some_and(|from| {
                from.starts_with("nats (claimed: inbox _INBOX_ci, client \"latch ")
            })
        }),
        "{:?}",
        audit.body
    );
    // Everything still works: the stream is there, the verifier current.
    verifier.verify(&secret, &read).expect("still verifying");
    assert_eq!(latchd.metric("latch_relay_failures_total"), 0);
}

/// `Result<Option<T>, Elapsed>` from a timed-out or ended stream read.
trait NothingArrived {
    fn is_err_or_none(&self) -> bool;
}

impl<T> NothingArrived for Result<Option<T>, tokio::time::error::Elapsed> {
    fn is_err_or_none(&self) -> bool {
        !matches!(self, Ok(Some(_)))
    }
}

/// `nats://user:password@host` works, and the password appears in no log
/// line and no error message (issue 15, finding 9).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn credentials_in_a_nats_url_work_and_are_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let config = shipped_config(dir.path());
    let nats = latch_testkit::NatsServer::start_with_args(&["-c", config.to_str().unwrap()]);
    let address = nats.address();
    let secret_url = format!("nats://latchd:{}@{address}", password("latchd"));
    let data = tempfile::tempdir().unwrap();
    let latchd = Latchd::launch_with(
        data.path(),
        nats,
        "127.0.0.1",
        &["--nats-url".to_owned(), secret_url],
        &[("LATCH_NATS_INBOX_PREFIX", "_INBOX_latchd")],
        None,
    );
    let admin = latchd.admin_token();
    account_with_token(&latchd, &admin, "svc", "auditor", None);
    let head = latchd.head();
    let started = Instant::now();
    while latchd.metric("latch_relay_connected") != 1
        || latchd.metric("latch_relay_published_position") != head
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "latchd's relay published the log with the URL's credentials:\n{}",
            latchd.logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The CLI too, and its error when NATS is not there.
    let ci_url = format!("nats://ci:{}@{address}", password("ci"));
    let listed = Command::new(binary("latch"))
        .args([
            "--transport",
            "nats",
            "--nats-url",
            &ci_url,
            "--nats-inbox-prefix",
            "_INBOX_ci",
        ])
        .args(["account", "list", "--output", "json"])
        .env("LATCH_TOKEN", &admin)
        .env_remove("LATCH_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(ok(listed).contains("svc"));
    let nowhere = Command::new(binary("latch"))
        .args([
            "--transport",
            "nats",
            "--nats-url",
            &format!("nats://ci:{}@127.0.0.1:1", password("ci")),
        ])
        .args(["account", "list"])
        .env("LATCH_TOKEN", &admin)
        .env_remove("LATCH_URL")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!nowhere.status.success());
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&nowhere.stdout),
        String::from_utf8_lossy(&nowhere.stderr)
    );
    assert!(shown.contains("127.0.0.1:1"), "{shown}");
    assert!(
        !shown.contains(&password("ci")),
        "the CLI showed the password: {shown}"
    );
    let logs = latchd.logs();
    assert!(logs.contains("latchd ready"), "{logs}");
    assert!(
        !logs.contains(&password("latchd")),
        "latchd logged its NATS password:\n{logs}"
    );
}

/// `deploy/nats.conf` with the verifier user as it was before the live
/// tail: it may subscribe to `latch.heartbeat` and its inboxes only.
fn config_without_the_live_tail(dir: &Path) -> std::path::PathBuf {
    let config = shipped_config(dir);
    let text = std::fs::read_to_string(&config).unwrap();
    let tail = r#"allow: ["latch.events.>", "latch.heartbeat", "_INBOX_verifier.>"]"#;
    assert!(text.contains(tail), "the shipped verifier user may follow the live tail");
    std::fs::write(
        &config,
        text.replace(tail, r#"allow: ["latch.heartbeat", "_INBOX_verifier.>"]"#),
    )
    .unwrap();
    config
}

/// Before the live tail, `deploy/nats.conf` let the verifier user subscribe
/// to `latch.heartbeat` and its inboxes only. A verifier under such a
/// configuration gets no live tail: it must still follow every revocation,
/// reading the stream whenever a heartbeat is ahead of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_verifier_denied_the_live_tail_still_follows_through_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_the_live_tail(dir.path());
    let (latchd, url, _data) = launch_on(&config);
    let admin = latchd.admin_token();
    let verifier = verifier_user(&url).await;
    let read = Permission::parse("audit:read").unwrap();
    let (_, token_id, token) = account_with_token(&latchd, &admin, "svc", "auditor", None);
    eventually("the verifier learns the new token", || {
        verifier.verify(&token, &read).is_ok()
    });
    let revoked = latchd.post(
        &format!("/v1/tokens/{token_id}/revoke"),
        &admin,
        serde_json::json!({"reason": "leaked"}),
    );
    assert_eq!(revoked.status, 200, "{:?}", revoked.body);
    eventually("the verifier learns the revocation", || {
        verifier.verify(&token, &read)
            == Err(latch_verify::Denial::Rejected(latch_core::Rejection::Revoked))
    });
    assert!(
        verifier.stats().stream_catch_ups >= 2,
        "without the tail, the stream was read again"
    );
}

/// Genuine old events replayed into the stream (validly signed: copies)
/// right behind a new one mislead the search for where a catch-up starts;
/// a verifier that finds itself behind at the same place twice reads the
/// stream in order instead, and learns the new token.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replayed_events_in_the_stream_do_not_keep_a_catching_up_verifier_behind() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_without_the_live_tail(dir.path());
    let (latchd, url, _data) = launch_on(&config);
    let admin = latchd.admin_token();
    let verifier = verifier_user(&url).await;
    let read = Permission::parse("audit:read").unwrap();
    let (_, _, first) = account_with_token(&latchd, &admin, "svc", "auditor", None);
    eventually("the first token", || verifier.verify(&first, &read).is_ok());

    // Whoever can publish into the stream (here latchd's own user) copies
    // the log's first event, as it is, behind a new token's events.
    let forger = connection(&url, "latchd").connect().await.unwrap();
    let js = async_nats::jetstream::new(forger);
    let stream = js.get_stream("LATCH_EVENTS").await.unwrap();
    let genuine = stream.get_raw_message(1).await.unwrap();
    let (_, _, second) = account_with_token(&latchd, &admin, "svc-2", "auditor", None);
    for _ in 0..64 {
        let mut copied = genuine.headers.clone();
        copied.insert("Nats-Msg-Id", uuid::Uuid::now_v7().to_string().as_str());
        js.publish_with_headers(genuine.subject.to_string(), copied, genuine.payload.clone())
            .await
            .unwrap()
            .await
            .unwrap();
    }
    eventually("the verifier learns the second token despite the replays", || {
        verifier.verify(&second, &read).is_ok()
    });
}
