//! HA mode end to end: a real three-server NATS JetStream cluster and real
//! `latchd --ha` processes, killed (`kill -9`), paused (`SIGSTOP`) and
//! restarted under load. What must hold: every command a client saw
//! acknowledged is in every node's log exactly once, the logs are
//! identical position by position and their chains verify, a deposed
//! leader appends nothing, and verifiers stay current through a failover
//! and while no latchd runs at all.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use latch_e2e::{HaCluster, Reply, binary, block_on, call_node, eventually};
use serde_json::{Value, json};

/// The HA tests start many processes each: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// What a client does: send to any node with one Idempotency-Key, follow a
/// standby's redirect, retry on unreachable nodes and 503 until an answer
/// other than those comes (or `give_up` passes).
fn until_answered(
    agent: &ureq::Agent,
    urls: &[String],
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    key: &str,
    give_up: Duration,
) -> Option<Reply> {
    let started = Instant::now();
    let mut attempt = 0usize;
    while started.elapsed() < give_up {
        let url = &urls[attempt % urls.len()];
        attempt += 1;
        let reply = match call_node(agent, url, method, path, token, body, Some(key)) {
            Ok(reply) if reply.status == 307 => {
                let location = reply.header("location").unwrap_or_default().to_owned();
                match call_node(agent, &location, method, "", token, body, Some(key)) {
                    Ok(reply) => reply,
                    Err(_) => continue,
                }
            }
            Ok(reply) => reply,
            Err(_) => {
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if reply.status == 503 || reply.status == 307 {
            std::thread::sleep(Duration::from_millis(50));
            continue;
        }
        return Some(reply);
    }
    None
}

/// What the clients saw acknowledged.
#[derive(Default)]
struct Acknowledged {
    issued: Vec<String>,
    revoked: Vec<String>,
}

/// 16 clients issuing and revoking tokens on their own accounts against
/// any node, until `stop`.
fn start_load(
    cluster: &HaCluster,
    admin: &str,
    clients: usize,
    stop: Arc<AtomicBool>,
) -> Vec<std::thread::JoinHandle<Acknowledged>> {
    let urls: Vec<String> = cluster.nodes.iter().map(|n| n.url.clone()).collect();
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let mut threads = Vec::new();
    for client in 0..clients {
        let created = cluster
            .call(
                leader,
                "POST",
                "/v1/accounts",
                admin,
                Some(&json!({"name": format!("load-{client}-{}", rand::random::<u32>()), "role": "admin"})),
                None,
            )
            .expect("leader reachable");
        assert_eq!(created.status, 201, "{:?}", created.body);
        let account = created.body["id"].as_str().unwrap().to_owned();
        let (urls, admin, stop) = (urls.clone(), admin.to_owned(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let agent = agent();
            let mut seen = Acknowledged::default();
            let mut round = 0u64;
            while !stop.load(Ordering::SeqCst) {
                round += 1;
                let key = format!("c{client}-issue-{round}-{}", rand::random::<u64>());
                let Some(reply) = until_answered(
                    &agent,
                    &urls,
                    "POST",
                    &format!("/v1/accounts/{account}/tokens"),
                    &admin,
                    Some(&json!({"name": format!("t{round}")})),
                    &key,
                    Duration::from_secs(30),
                ) else {
                    continue;
                };
                // 201; 200 replays the first answer; 409: issued by an
                // earlier attempt whose answer was lost (its secret too).
                let token = match reply.status {
                    200 | 201 => reply.body["id"].as_str().unwrap().to_owned(),
                    409 => continue,
                    other => panic!("issue answered {other}: {:?}", reply.body),
                };
                seen.issued.push(token.clone());
                let key = format!("c{client}-revoke-{round}-{}", rand::random::<u64>());
                if let Some(reply) = until_answered(
                    &agent,
                    &urls,
                    "POST",
                    &format!("/v1/tokens/{token}/revoke"),
                    &admin,
                    Some(&json!({"reason": "load"})),
                    &key,
                    Duration::from_secs(30),
                ) {
                    assert!(reply.status == 200, "revoke answered {}: {:?}", reply.status, reply.body);
                    seen.revoked.push(token);
                }
            }
            seen
        }));
    }
    threads
}

/// Stops the clients and gathers what they saw acknowledged.
fn stop_load(stop: &AtomicBool, clients: Vec<std::thread::JoinHandle<Acknowledged>>) -> Acknowledged {
    stop.store(true, Ordering::SeqCst);
    let mut seen = Acknowledged::default();
    for client in clients {
        let part = client.join().expect("client thread");
        seen.issued.extend(part.issued);
        seen.revoked.extend(part.revoked);
    }
    seen
}

/// Every node's log is the same, event for event; every acknowledged
/// command is in it exactly once; each chain verifies (`latch audit verify`).
fn check_converged(cluster: &HaCluster, admin: &str, seen: &Acknowledged) {
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let reference = cluster.events(leader, admin);
    for index in 0..cluster.nodes.len() {
        let started = Instant::now();
        while cluster.events(index, admin).len() != reference.len() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "{} does not hold the leader's log ({} of {} events) after 30 s; logs:\n{}",
                cluster.nodes[index].name,
                cluster.events(index, admin).len(),
                reference.len(),
                cluster.all_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            cluster.events(index, admin),
            reference,
            "{} differs from the leader's log",
            cluster.nodes[index].name
        );
        let verified = std::process::Command::new(binary("latch"))
            .args(["audit", "verify"])
            .env("LATCH_URL", &cluster.nodes[index].url)
            .env("LATCH_TOKEN", admin)
            .output()
            .expect("latch audit verify");
        assert!(
            verified.status.success(),
            "{}: {}",
            cluster.nodes[index].name,
            String::from_utf8_lossy(&verified.stderr)
        );
    }
    // Exactly once: by type and token, over the leader's whole log.
    let mut issued: HashMap<String, usize> = HashMap::new();
    let mut revoked: HashMap<String, usize> = HashMap::new();
    let mut keys: HashSet<(String, String)> = HashSet::new();
    let mut after = 0;
    loop {
        let page = cluster
            .call(leader, "GET", &format!("/v1/events?after={after}&limit=1000"), admin, None, None)
            .unwrap();
        let events = page.body["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            let token = event["data"]["token_id"].as_str().unwrap_or_default().to_owned();
            match event["type"].as_str().unwrap_or_default() {
                "token.issued" => *issued.entry(token).or_default() += 1,
                "token.revoked" => *revoked.entry(token).or_default() += 1,
                _ => {}
            }
            if let Some(key) = event["idempotency_key_sha256"].as_str() {
                assert!(
                    keys.insert((key.to_owned(), event["type"].as_str().unwrap().to_owned())),
                    "two events of one type under one Idempotency-Key: {event}"
                );
            }
        }
        let next = page.body["next_after"].as_u64().unwrap();
        if events.is_empty() || next == after {
            break;
        }
        after = next;
    }
    for token in &seen.issued {
        assert_eq!(issued.get(token), Some(&1), "acknowledged issue of {token} not exactly once");
    }
    for token in &seen.revoked {
        assert_eq!(revoked.get(token), Some(&1), "acknowledged revoke of {token} not exactly once");
    }
}

#[test]
fn killing_the_leader_under_load_loses_no_acknowledged_command() {
    let _serial = serial();
    let mut cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_load(&cluster, &admin, 16, stop.clone());
    for _ in 0..10 {
        let leader = cluster.wait_for_leader(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(200 + u64::from(rand::random::<u16>() % 1200)));
        cluster.kill_9(leader);
        let started = Instant::now();
        let next = cluster.wait_for_leader(Duration::from_secs(15));
        assert_ne!(next, leader);
        eprintln!("takeover by {} in {:?}", cluster.nodes[next].name, started.elapsed());
        cluster.restart(leader);
    }
    std::thread::sleep(Duration::from_millis(500));
    let seen = stop_load(&stop, clients);
    assert!(seen.issued.len() > 50, "too little load: {} issues", seen.issued.len());
    check_converged(&cluster, &admin, &seen);
}

/// A command sent through `until_answered` that must be acknowledged.
fn acknowledged(cluster: &HaCluster, method: &str, path: &str, token: &str, body: Value) -> Reply {
    let urls: Vec<String> = cluster
        .nodes
        .iter()
        .filter(|n| n.is_running())
        .map(|n| n.url.clone())
        .collect();
    let key = format!("k-{}", rand::random::<u64>());
    let Some(reply) = until_answered(&agent(), &urls, method, path, token, Some(&body), &key, Duration::from_secs(30))
    else {
        panic!(
            "{method} {path}: no answer within 30 s; readiness: {:?}; logs:\n{}",
            (0..cluster.nodes.len())
                .map(|i| cluster.ready_field(i, "ha_role"))
                .collect::<Vec<_>>(),
            cluster.all_logs()
        );
    };
    assert!(reply.status < 300, "{method} {path}: {} {:?}", reply.status, reply.body);
    reply
}

#[test]
fn a_paused_leader_appends_nothing_and_rejoins_as_a_standby() {
    let _serial = serial();
    let cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    let old = cluster.wait_for_leader(Duration::from_secs(20));
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "before-pause", "role": "auditor"}));

    cluster.signal(old, "STOP");
    // A command sent to the paused leader waits in its socket.
    let in_flight = {
        let url = cluster.nodes[old].url.clone();
        let admin = admin.clone();
        std::thread::spawn(move || {
            call_node(
                &agent(),
                &url,
                "POST",
                "/v1/accounts",
                &admin,
                Some(&json!({"name": "sent-to-the-paused-leader", "role": "auditor"})),
                Some("paused-key"),
            )
        })
    };
    // Past its lease, another node leads and serves commands.
    let started = Instant::now();
    let new = loop {
        let leaders: Vec<usize> = (0..3)
            .filter(|&i| i != old && cluster.ready_field(i, "ha_role").as_deref() == Some("leader"))
            .collect();
        if let [leader] = leaders[..] {
            break leader;
        }
        assert!(started.elapsed() < Duration::from_secs(15), "no standby took over from the paused leader");
        std::thread::sleep(Duration::from_millis(50));
    };
    let during = cluster
        .call(new, "POST", "/v1/accounts", &admin, Some(&json!({"name": "during-pause", "role": "auditor"})), None)
        .unwrap();
    assert_eq!(during.status, 201, "{:?}", during.body);

    cluster.signal(old, "CONT");
    let answer = in_flight.join().unwrap().expect("the resumed node answers");
    assert!(
        answer.status == 503 || answer.status == 307,
        "the deposed leader must not run the command: {} {:?}",
        answer.status,
        answer.body
    );
    eventually("the old leader is a standby", || {
        cluster.ready_field(old, "ha_role").as_deref() == Some("standby")
    });
    assert_eq!(cluster.leader(), Some(new));
    // It appended nothing: no node holds the command sent to it.
    let reference = cluster.events(new, &admin);
    eventually("the old leader converges", || cluster.events(old, &admin) == reference);
    let names = cluster
        .call(new, "GET", "/v1/accounts", &admin, None, None)
        .unwrap()
        .body
        .to_string();
    assert!(names.contains("during-pause") && names.contains("before-pause"));
    assert!(!names.contains("sent-to-the-paused-leader"), "a deposed leader appended: {names}");
    assert!(
        cluster.nodes[old].logs().contains("stepped down"),
        "{}",
        cluster.nodes[old].logs()
    );
}

#[test]
fn a_nats_server_dying_under_load_loses_no_acknowledged_command() {
    let _serial = serial();
    let mut cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = start_load(&cluster, &admin, 8, stop.clone());
    std::thread::sleep(Duration::from_secs(2));
    cluster.nats.kill(1);
    std::thread::sleep(Duration::from_secs(3));
    // Commands keep being served on the two servers left.
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "after-a-server-died", "role": "auditor"}));
    std::thread::sleep(Duration::from_secs(2));
    cluster.nats.restart(1);
    std::thread::sleep(Duration::from_secs(1));
    let seen = stop_load(&stop, clients);
    assert!(seen.issued.len() > 10, "too little load: {}", seen.issued.len());
    check_converged(&cluster, &admin, &seen);
}

fn verifier_config(cluster: &HaCluster, max_staleness: Duration) -> latch_verify::VerifierConfig {
    let mut config =
        latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(cluster.nats.url()));
    config.max_staleness = max_staleness;
    config.connect_timeout = Duration::from_secs(30);
    config.usage_report_every = None;
    config.trusted_keys = latch_bus::TrustedKeys::new([latch_bus::SigningKey::from_pem(
        latch_e2e::TEST_SIGNING_KEY,
    )
    .expect("test key")
    .public_key()]);
    config
}

fn permission() -> latch_core::Permission {
    latch_core::Permission::parse("certificates:issue").unwrap()
}

/// An account with two tokens: (kept secret, doomed id, doomed secret).
fn two_tokens(cluster: &HaCluster, admin: &str) -> (String, String, String) {
    let account = acknowledged(
        cluster,
        "POST",
        "/v1/accounts",
        admin,
        json!({"name": format!("svc-{}", rand::random::<u32>()), "role": "admin"}),
    );
    let account = account.body["id"].as_str().unwrap().to_owned();
    let issue = |name: &str| {
        let issued = acknowledged(cluster, "POST", &format!("/v1/accounts/{account}/tokens"), admin, json!({"name": name}));
        (
            issued.body["id"].as_str().unwrap().to_owned(),
            issued.body["token"].as_str().unwrap().to_owned(),
        )
    };
    let (_, kept) = issue("kept");
    let (doomed_id, doomed) = issue("doomed");
    (kept, doomed_id, doomed)
}

#[test]
fn a_verifier_stays_current_through_a_failover_and_refuses_a_token_revoked_just_before() {
    let _serial = serial();
    let mut cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verifier = runtime
        .block_on(latch_verify::Verifier::connect(verifier_config(&cluster, Duration::from_secs(5))))
        .expect("verifier connects");
    let (kept, doomed_id, doomed) = two_tokens(&cluster, &admin);
    eventually("the verifier accepts both tokens", || {
        verifier.verify(&kept, &permission()).is_ok() && verifier.verify(&doomed, &permission()).is_ok()
    });

    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    acknowledged(&cluster, "POST", &format!("/v1/tokens/{doomed_id}/revoke"), &admin, json!({"reason": "leaked"}));
    cluster.kill_9(leader);
    let killed = Instant::now();
    let mut stale_for = Duration::ZERO;
    let mut refused_after = None;
    while killed.elapsed() < Duration::from_secs(12) {
        if verifier.is_stale() {
            stale_for += Duration::from_millis(20);
        }
        if refused_after.is_none()
            && matches!(verifier.verify(&doomed, &permission()), Err(latch_verify::Denial::Rejected(_)))
        {
            refused_after = Some(killed.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(stale_for, Duration::ZERO, "the verifier went stale during the failover");
    assert!(refused_after.is_some_and(|t| t < Duration::from_secs(2)), "the revoked token was accepted: {refused_after:?}");
    assert!(verifier.verify(&kept, &permission()).is_ok());
    let next = cluster.wait_for_leader(Duration::from_secs(10));
    assert_ne!(next, leader);
}

/// An event the leader signed and published that the stream then refused,
/// as a leader cut off from the quorum mid-publish leaves one: core NATS
/// subscribers (the verifiers' live tail) saw it, the stream never held it.
/// Built here with the cluster's key and published with an expected
/// sequence the stream refuses. Returns its position and the message, to
/// replay.
fn publish_phantom(cluster: &HaCluster, about: latch_core::AccountId) -> (u64, Phantom) {
    use sha2::Digest;
    block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(0)).await.unwrap();
        let js = async_nats::jetstream::new(client.clone());
        let mut stream = js.get_stream("LATCH_EVENTS").await.unwrap();
        let last = stream.info().await.unwrap().state.last_sequence;
        let tail = stream.get_raw_message(last).await.unwrap();
        let header = |name: &str| tail.headers.get(name).unwrap().as_str().to_owned();
        let position = header("Latch-Position").parse::<u64>().unwrap() + 1;
        let log: latch_core::LogId = header("Latch-Log-Id").parse().unwrap();
        let envelope = latch_core::EventEnvelope {
            id: latch_core::EventId::new(),
            at: chrono::Utc::now(),
            actor: latch_core::Actor::System,
            request_id: None,
            idempotency_key_sha256: None,
            event: latch_core::Event::AccountDisabled { account_id: about, reason: "never committed".into() },
        };
        let record = json!({
            "position": position,
            "stream": format!("account-{about}"),
            "version": 99,
            "prev_hash": header("Latch-Hash"),
            "data": envelope,
        })
        .to_string();
        let hash: [u8; 32] = sha2::Sha256::digest(record.as_bytes()).into();
        let recorded = latch_core::RecordedEvent { position: latch_core::Position::new(position), version: 99, envelope };
        let key = latch_bus::SigningKey::from_pem(latch_e2e::TEST_SIGNING_KEY).unwrap();
        let signed = latch_bus::signed_feed::sign_event(&recorded, &record, &hash, log, &key);
        let mut map = latch_bus::headers::event_headers(&recorded, signed.headers());
        map.insert("Nats-Expected-Last-Sequence", "1");
        let phantom = Phantom {
            subject: latch_bus::subject::event_subject(&recorded.envelope.event),
            headers: map,
            payload: signed.payload,
        };
        phantom.publish(&client).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(stream.info().await.unwrap().state.last_sequence, last, "the stream refused it");
        (position, phantom)
    })
}

/// An event message the stream refused (`publish_phantom`).
struct Phantom {
    subject: String,
    headers: async_nats::HeaderMap,
    payload: Vec<u8>,
}

impl Phantom {
    /// On core NATS: the live tail sees it; the stream refuses it.
    async fn publish(&self, client: &async_nats::Client) {
        client
            .publish_with_headers(self.subject.clone(), self.headers.clone(), self.payload.clone().into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    }
}

/// A verifier applied an event the stream never committed (a leader cut
/// off mid-publish), and the next leader wrote a revocation at that
/// position. Skipping the revocation as a replay would leave the revoked
/// token accepted and the verifier stuck. It sees the signed revocation
/// contradict what it applied, checks the stream, rebuilds its view from
/// it, and refuses the token, staying current.
#[test]
fn a_verifier_that_applied_an_uncommitted_event_rebuilds_from_the_stream() {
    let _serial = serial();
    let cluster = HaCluster::start(2);
    let admin = cluster.admin_token();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verifier = runtime
        .block_on(latch_verify::Verifier::connect(verifier_config(&cluster, Duration::from_secs(5))))
        .expect("verifier connects");
    let (kept, doomed_id, doomed) = two_tokens(&cluster, &admin);
    eventually("the verifier accepts both tokens", || {
        verifier.verify(&kept, &permission()).is_ok() && verifier.verify(&doomed, &permission()).is_ok()
    });

    let bystander = acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "bystander", "role": "auditor"}));
    let bystander = bystander.body["id"].as_str().unwrap().parse().unwrap();
    let (phantom, message) = publish_phantom(&cluster, bystander);
    eventually("the verifier applied the phantom", || verifier.position().get() == phantom);
    acknowledged(&cluster, "POST", &format!("/v1/tokens/{doomed_id}/revoke"), &admin, json!({"reason": "leaked"}));
    eventually("the verifier refuses the revoked token", || {
        matches!(verifier.verify(&doomed, &permission()), Err(latch_verify::Denial::Rejected(_)))
    });
    eventually("the verifier is current again", || verifier.verify(&kept, &permission()).is_ok());
    assert_eq!(verifier.stats().rebuilds, 1, "{:?}", verifier.stats());
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    assert_eq!(verifier.position().get(), cluster.events(leader, &admin).len() as u64);

    // Whoever captured the phantom replays it: the stream holds the
    // revocation at that position, so the verifier keeps its view.
    block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(1)).await.unwrap();
        for _ in 0..3 {
            message.publish(&client).await;
        }
    });
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(verifier.stats().rebuilds, 1, "{:?}", verifier.stats());
    assert!(verifier.verify(&kept, &permission()).is_ok());
    assert!(matches!(verifier.verify(&doomed, &permission()), Err(latch_verify::Denial::Rejected(_))));
}

#[test]
fn with_no_latchd_for_a_minute_verifiers_stay_current_and_fail_closed_without_nats() {
    let _serial = serial();
    let mut cluster = HaCluster::start(2);
    let admin = cluster.admin_token();
    let (kept, doomed_id, doomed) = two_tokens(&cluster, &admin);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let verifiers: Vec<latch_verify::Verifier> = (0..3)
        .map(|_| {
            runtime
                .block_on(latch_verify::Verifier::connect(verifier_config(&cluster, Duration::from_secs(5))))
                .expect("verifier connects")
        })
        .collect();
    // Revoke the second token, then no latchd at all.
    acknowledged(&cluster, "POST", &format!("/v1/tokens/{doomed_id}/revoke"), &admin, json!({}));
    for index in 0..cluster.nodes.len() {
        cluster.kill_9(index);
    }
    let gone = Instant::now();
    while gone.elapsed() < Duration::from_secs(60) {
        for verifier in &verifiers {
            assert!(!verifier.is_stale(), "stale {:?} after the last latchd died", gone.elapsed());
            assert!(verifier.verify(&kept, &permission()).is_ok());
            assert!(matches!(
                verifier.verify(&doomed, &permission()),
                Err(latch_verify::Denial::Rejected(_))
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(verifiers.iter().all(|v| v.stats().stream_probes > 0));
    // Cut off from NATS (every server down), they fail closed.
    for index in 0..cluster.nats.size() {
        cluster.nats.kill(index);
    }
    std::thread::sleep(Duration::from_secs(7));
    for verifier in &verifiers {
        assert!(verifier.is_stale());
        assert!(matches!(verifier.verify(&kept, &permission()), Err(latch_verify::Denial::Stale)));
    }
}

/// Someone on the shared NATS overwrites the lease with an entry naming
/// their own URL. Standbys never redirect a client (and its token) there:
/// they redirect only to a URL a latchd of the cluster signed. The worst
/// they cause is an election.
#[test]
fn a_forged_lease_entry_never_sends_clients_elsewhere() {
    let _serial = serial();
    let cluster = HaCluster::start(2);
    let admin = cluster.admin_token();
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let standby = 1 - leader;
    eventually("the standby knows the leader", || {
        cluster.ready_field(standby, "ha_leader").as_deref() == Some(cluster.nodes[leader].name.as_str())
    });
    let evil = "http://127.0.0.1:9/steal";
    let forger = block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(0)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let kv = js.get_key_value("LATCH_LEADER").await.unwrap();
        for _ in 0..20 {
            let entry = json!({"node_id": "evil", "url": evil, "signature": "AAAA:forged"});
            let _ = kv.put("leader", serde_json::to_vec(&entry).unwrap().into()).await;
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
        kv
    });
    for _ in 0..10 {
        if let Ok(reply) = cluster.call(
            standby,
            "POST",
            "/v1/accounts",
            &admin,
            Some(&json!({"name": format!("x{}", rand::random::<u32>()), "role": "auditor"})),
            None,
        ) {
            assert!(
                !reply.header("location").unwrap_or_default().contains("steal"),
                "a standby redirected to a forged leader: {:?}",
                reply.headers
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(forger);
    // Once the forger stops, a latchd leads again.
    cluster.wait_for_leader(Duration::from_secs(20));
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "after-the-forgery", "role": "auditor"}));
}

/// Someone on the shared NATS publishes into `latch.events.>`: junk, and a
/// well-formed but unsigned event. No node appends either; the cluster
/// keeps serving and every log stays identical.
#[test]
fn messages_forged_into_the_stream_are_never_replicated() {
    let _serial = serial();
    let cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "before", "role": "auditor"}));
    block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(2)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let forged = json!({
            "specversion": "1.0", "id": "0190aaaa-0000-7000-8000-000000000000", "type": "latch.account.created",
            "source": "latchd", "subject": "x", "sequence": "999", "time": "2026-01-01T00:00:00Z",
            "data": {"account_id": "0190aaaa-0000-7000-8000-000000000001", "name": "forged", "role": "admin"}
        });
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Latch-Position", "3");
        js.publish_with_headers("latch.events.account.created._", headers, serde_json::to_vec(&forged).unwrap().into())
            .await
            .unwrap()
            .await
            .unwrap();
        js.publish("latch.events.token.revoked._", "junk".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "after", "role": "auditor"}));
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let reference = cluster.events(leader, &admin);
    for index in 0..3 {
        eventually("every node converges", || cluster.events(index, &admin) == reference);
    }
    let accounts = cluster.call(leader, "GET", "/v1/accounts", &admin, None, None).unwrap().body.to_string();
    assert!(accounts.contains("after") && !accounts.contains("forged"), "{accounts}");
    // A tail of forged messages does not leave the standbys looking behind
    // the stream: they would report a lag that is not there, and let a
    // vacant lease pass before taking it (a slower failover for anyone who
    // can publish to the stream).
    block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(0)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        let mut sent = Vec::new();
        for _ in 0..1100 {
            sent.push(js.publish("latch.events.token.revoked._", "junk".into()).await.unwrap());
        }
        for ack in sent {
            ack.await.unwrap();
        }
    });
    for index in (0..3).filter(|&index| index != leader) {
        eventually("a standby reads past forged messages", || {
            cluster.ready_field(index, "ha_lag").as_deref() == Some("0")
        });
    }
}

/// Someone else on a shared NATS publishes one message into the stream
/// between the leader's batches, and the leader's next batch holds two
/// events (deleting an account revokes its token in the same append). With
/// the expected sequence alone the stream would refuse the first event and
/// take the second right after the foreign message: a hole no node and no
/// verifier can follow past. Each event also expects the one before it
/// (`Nats-Expected-Last-Msg-Id`), so both are refused and published again
/// after the foreign message: the stream holds every position once, in
/// order, the leader stays leader, and every node converges.
#[test]
fn a_message_slipped_between_batches_never_leaves_a_hole_in_the_stream() {
    let _serial = serial();
    let cluster = HaCluster::start(3);
    let admin = cluster.admin_token();
    // Answered once a leader is elected (a newborn cluster takes a while).
    let account = acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "doomed", "role": "auditor"}));
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    let account = account.body["id"].as_str().unwrap().to_owned();
    acknowledged(&cluster, "POST", &format!("/v1/accounts/{account}/tokens"), &admin, json!({"name": "t"}));
    let stream_positions = || {
        block_on(async {
            let client = async_nats::connect(cluster.nats.server_url(0)).await.unwrap();
            let js = async_nats::jetstream::new(client);
            let mut stream = js.get_stream("LATCH_EVENTS").await.unwrap();
            let last = stream.info().await.unwrap().state.last_sequence;
            let mut positions = Vec::new();
            for sequence in 1..=last {
                if let Ok(message) = stream.get_raw_message(sequence).await
                    && message.headers.get("Latch-Signature").is_some()
                    && let Some(position) = message.headers.get("Latch-Position")
                {
                    positions.push(position.as_str().parse::<u64>().unwrap());
                }
            }
            positions
        })
    };
    let before = stream_positions();
    block_on(async {
        let client = async_nats::connect(cluster.nats.server_url(1)).await.unwrap();
        let js = async_nats::jetstream::new(client);
        js.publish("latch.events.account.deleted._", "slipped in".into())
            .await
            .unwrap()
            .await
            .unwrap();
    });
    let deleted = cluster
        .call(leader, "DELETE", &format!("/v1/accounts/{account}"), &admin, None, None)
        .unwrap();
    assert_eq!(deleted.status, 200, "the leader deletes at once, without stepping down: {:?}", deleted.body);
    assert_eq!(deleted.body["status"], "deleted");
    assert_eq!(cluster.leader(), Some(leader), "{}", cluster.all_logs());
    let after = stream_positions();
    let expected: Vec<u64> = (1..=before.len() as u64 + 2).collect();
    assert_eq!(after, expected, "every position once, in order");
    let reference = cluster.events(leader, &admin);
    for index in 0..3 {
        eventually("every node converges", || cluster.events(index, &admin) == reference);
    }
}

/// A hostile "latchd" answers the CLI with a redirect to somewhere else:
/// the CLI does not follow it, so the token never reaches that place.
#[test]
fn the_cli_follows_redirects_only_to_the_urls_it_was_given() {
    use std::io::{Read, Write};
    let evil = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let evil_url = format!("http://{}", evil.local_addr().unwrap());
    evil.set_nonblocking(true).unwrap();
    let hostile = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hostile_url = format!("http://{}", hostile.local_addr().unwrap());
    let redirect_to = format!("{evil_url}/v1/accounts");
    std::thread::spawn(move || {
        for stream in hostile.incoming().flatten().take(4) {
            // Read the whole request (headers, then the body they announce)
            // before answering, so closing never resets the connection.
            let mut stream = stream;
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while let Ok(read) = stream.read(&mut buffer) {
                if read == 0 {
                    break;
                }
                request.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&request).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let length = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if request.len() >= end + 4 + length {
                        break;
                    }
                }
            }
            let _ = write!(
                stream,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {redirect_to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    let output = std::process::Command::new(binary("latch"))
        .args(["account", "create", "svc", "--role", "auditor"])
        .env("LATCH_URL", format!("{hostile_url},http://127.0.0.1:9"))
        .env("LATCH_TOKEN", "latch_secret_that_must_not_travel")
        .output()
        .expect("run latch");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not one of the URLs"), "{stderr}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(evil.accept().is_err(), "the CLI connected to the redirect target");
}

/// The CLI given every node's URL reaches the leader through a standby
/// (307) and through a dead node.
#[test]
fn the_cli_reaches_the_leader_through_any_node() {
    let _serial = serial();
    let mut cluster = HaCluster::start(2);
    let admin = cluster.admin_token();
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let standby = 1 - leader;
    let urls = format!("http://127.0.0.1:9,{},{}", cluster.nodes[standby].url, cluster.nodes[leader].url);
    let run = |name: &str| {
        std::process::Command::new(binary("latch"))
            .args(["account", "create", name, "--role", "auditor"])
            .env("LATCH_URL", &urls)
            .env("LATCH_TOKEN", &admin)
            .output()
            .expect("run latch")
    };
    let output = run("through-the-standby");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    cluster.kill_9(leader);
    cluster.wait_for_leader(Duration::from_secs(15));
    let output = run("after-failover");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let _ = &mut cluster;
}

/// A data dir from single-node mode joins HA in place: its node leads an
/// empty cluster, publishes its whole log first, and a new standby ends
/// with the same log, event for event.
#[test]
fn a_single_node_data_dir_upgrades_in_place() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key.pem");
    std::fs::write(&key, latch_e2e::TEST_SIGNING_KEY).unwrap();
    let data = dir.path().join("single");
    let (before, admin) = {
        let nats = latch_testkit::NatsServer::start();
        let nats_url = nats.url();
        let mut single = latch_e2e::Latchd::launch_with(
            &data,
            nats,
            "127.0.0.1",
            &[
                "--nats-url".to_owned(),
                nats_url,
                "--signing-key".to_owned(),
                key.display().to_string(),
            ],
            &[],
            None,
        );
        let admin = single.admin_token();
        for name in ["alpha", "beta", "gamma"] {
            let created = single.post("/v1/accounts", &admin, json!({"name": name, "role": "auditor"}));
            assert_eq!(created.status, 201, "{:?}", created.body);
        }
        let head = single.head();
        single.stop();
        (head, admin)
    };
    // The upgraded node first (as docs/operations.md says): at a cluster's
    // birth an empty node that finds no leader may start a log of its own.
    let mut cluster = HaCluster::start_with(1, Some(&data));
    let leader = cluster.wait_for_leader(Duration::from_secs(20));
    assert_eq!(leader, 0, "only the upgraded node has the log");
    cluster.add_node_on(None);
    let reference = cluster.events(0, &admin);
    assert_eq!(reference.len() as u64, before);
    eventually("the new standby holds the whole log", || cluster.events(1, &admin) == reference);
    // And the cluster goes on from there.
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "delta", "role": "auditor"}));
    let after = cluster.events(0, &admin);
    assert_eq!(after.len() as u64, before + 1);
    eventually("the standby follows", || cluster.events(1, &admin) == after);
}

/// A node whose log holds events the cluster never acknowledged (here: its
/// data dir was run alone meanwhile) rejoins: it sets that tail aside in a
/// file, logs it loudly, and follows the cluster's log exactly.
#[test]
fn a_tail_the_stream_never_held_is_set_aside_on_rejoining() {
    let _serial = serial();
    let mut cluster = HaCluster::start(2);
    let admin = cluster.admin_token();
    let leader = cluster.wait_for_leader(Duration::from_secs(10));
    let other = 1 - leader;
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "shared", "role": "auditor"}));
    eventually("both hold it", || cluster.events(other, &admin) == cluster.events(leader, &admin));
    cluster.kill_9(other);

    // Run alone on its own NATS, the node appends what the cluster never saw.
    let key = cluster.data_dir().join("key-copy.pem");
    std::fs::write(&key, latch_e2e::TEST_SIGNING_KEY).unwrap();
    {
        let nats = latch_testkit::NatsServer::start();
        let nats_url = nats.url();
        let mut alone = latch_e2e::Latchd::launch_with(
            &cluster.nodes[other].data_dir,
            nats,
            "127.0.0.1",
            &["--nats-url".to_owned(), nats_url, "--signing-key".to_owned(), key.display().to_string()],
            &[],
            None,
        );
        let rogue = alone.post("/v1/accounts", &admin, json!({"name": "rogue", "role": "auditor"}));
        assert_eq!(rogue.status, 201, "{:?}", rogue.body);
        alone.stop();
    }
    // The cluster appends other events at those positions.
    acknowledged(&cluster, "POST", "/v1/accounts", &admin, json!({"name": "legit", "role": "auditor"}));

    cluster.restart(other);
    let reference = cluster.events(leader, &admin);
    eventually("the rejoined node holds the cluster's log", || cluster.events(other, &admin) == reference);
    let accounts = cluster.call(other, "GET", "/v1/accounts", &admin, None, None).unwrap().body.to_string();
    assert!(accounts.contains("legit") && !accounts.contains("rogue"), "{accounts}");
    let set_aside: Vec<_> = std::fs::read_dir(cluster.nodes[other].data_dir.join("set-aside"))
        .expect("a set-aside folder")
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    assert_eq!(set_aside.len(), 1);
    assert!(set_aside[0].contains("rogue"), "{}", set_aside[0]);
    assert!(cluster.nodes[other].logs().contains("SET ASIDE"));
}
