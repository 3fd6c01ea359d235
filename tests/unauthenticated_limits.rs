//! Issue 15, finding 7: denial of service without a token. Each test makes
//! the attack against the real latchd and checks what it may cost: stored
//! activity records are bounded and failed requests rate-limited per
//! source; odd method names add no /metrics series; half-sent heads and
//! bodies time out; connections are capped; a request without a valid
//! token does not make latchd read its body; old activity records are
//! pruned.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

use latch_e2e::Latchd;
use serde_json::Value;

/// latchd on a fresh data directory with these extra flags.
fn latchd_with(flags: &[&str]) -> (Latchd, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let nats = latch_testkit::NatsServer::start();
    let mut args = vec!["--nats-url".to_owned(), nats.url()];
    args.extend(flags.iter().map(|f| (*f).to_owned()));
    let latchd = Latchd::launch_with(dir.path(), nats, "127.0.0.1", &args, &[], None);
    (latchd, dir)
}

fn address(latchd: &Latchd) -> String {
    latchd.url.trim_start_matches("http://").to_owned()
}

/// Every activity record (read with the admin token).
fn activity(latchd: &Latchd) -> Vec<Value> {
    let admin = latchd.admin_token();
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        let page = latchd.get(&format!("/v1/audit?limit=1000{after}"), &admin);
        assert_eq!(page.status, 200, "{:?}", page.body);
        all.extend(page.body["records"].as_array().unwrap().iter().cloned());
        match page.body["next_after"].as_str() {
            Some(next) => after = format!("&after={next}"),
            None => return all,
        }
    }
}

/// Reads until the peer closes (or `limit` passes); how long that took and
/// what arrived.
fn until_closed(stream: &mut TcpStream, limit: Duration) -> (Duration, Option<String>) {
    let started = Instant::now();
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return (started.elapsed(), None);
            }
            Err(_) => break, // reset: closed
        }
    }
    (
        started.elapsed(),
        Some(String::from_utf8_lossy(&received).into_owned()),
    )
}

#[test]
fn unauthenticated_requests_with_huge_paths_store_bounded_records_then_get_429() {
    let (latchd, _dir) = latchd_with(&[
        "--unauthenticated-rate",
        "1/h",
        "--unauthenticated-burst",
        "20",
    ]);
    let huge = format!("/v1/accounts/{}", "a".repeat(40_000));
    let before = activity(&latchd).len();
    for n in 0..20 {
        let reply = latchd.call("GET", &huge, None, None);
        assert_eq!(reply.status, 401, "request {n}: {:?}", reply.body);
    }
    // The budget is spent: 429, problem+json, Retry-After; nothing stored.
    for _ in 0..30 {
        let reply = latchd.call("GET", &huge, None, None);
        assert_eq!(reply.status, 429, "{:?}", reply.body);
        assert_eq!(reply.content_type, "application/problem+json");
        let retry: u64 = reply
            .header("retry-after")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry), "Retry-After {retry}");
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("too many failed"),
            "{:?}",
            reply.body
        );
    }
    // A forged or revoked token counts as no token.
    let forged = latch_core::TokenSecret::generate(&mut rand::rng());
    assert_eq!(latchd.get("/v1/accounts", forged.expose()).status, 429);
    // A valid token is still served from the same address.
    let admin = latchd.admin_token();
    assert_eq!(latchd.get("/v1/accounts", &admin).status, 200);

    let records = activity(&latchd);
    let refused: Vec<&Value> = records
        .iter()
        .filter(|r| r["status"] == 401 && r["token_id"].is_null())
        .collect();
    assert_eq!(
        refused.len(),
        20,
        "the 20 refusals are recorded, the 429s are not ({} records before)",
        before
    );
    for record in &refused {
        let path = record["path"].as_str().unwrap();
        assert!(path.len() < 400, "stored path of {} bytes", path.len());
        assert!(path.ends_with("…[truncated, 40013 bytes]"), "{path}");
        assert!(
            serde_json::to_vec(record).unwrap().len() < 1024,
            "a record is bounded: {record}"
        );
    }
    assert!(
        !latchd.logs().contains(&"a".repeat(1000)),
        "latchd logged the huge path"
    );
}

#[test]
fn failed_authorization_spends_the_same_budget() {
    let (latchd, _dir) = latchd_with(&[
        "--unauthenticated-rate",
        "1/h",
        "--unauthenticated-burst",
        "5",
    ]);
    let admin = latchd.admin_token();
    let (_, _, weak) = latch_e2e::account_with_token(&latchd, &admin, "weak", "auditor", None);
    for _ in 0..5 {
        let reply = latchd.post(
            "/v1/accounts",
            &weak,
            serde_json::json!({"name": "x", "role": "admin"}),
        );
        assert_eq!(reply.status, 403, "{:?}", reply.body);
    }
    // The weak token itself is still served; anonymous requests are not.
    assert_eq!(latchd.get("/v1/accounts", &weak).status, 200);
    assert_eq!(latchd.call("GET", "/v1/accounts", None, None).status, 429);
}

#[test]
fn unusual_method_names_add_no_metrics_series() {
    let (latchd, _dir) = latchd_with(&[]);
    for n in 0..50 {
        let method = format!("ZZMETHOD{n}");
        let mut stream = TcpStream::connect(address(&latchd)).unwrap();
        write!(
            stream,
            "{method} /v1/accounts HTTP/1.1\r\nHost: latchd\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let (_, answer) = until_closed(&mut stream, Duration::from_secs(5));
        let answer = answer.expect("an answer");
        assert!(answer.starts_with("HTTP/1.1 4"), "{method}: {answer}");
    }
    let metrics = latchd.call("GET", "/metrics", None, None);
    let text = metrics.body.as_str().unwrap();
    assert!(!text.contains("ZZMETHOD"), "a method became a series");
    let methods: std::collections::BTreeSet<&str> = text
        .lines()
        .filter(|l| l.starts_with("latch_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next())
        .collect();
    assert!(methods.contains("other"), "{methods:?}");
    for method in methods {
        assert!(
            [
                "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"
            ]
            .contains(&method),
            "{method}"
        );
    }
}

#[test]
fn connections_that_send_half_a_head_or_nothing_are_closed_within_the_timeout() {
    let (latchd, _dir) = latchd_with(&["--header-read-timeout", "1s"]);
    let mut half = TcpStream::connect(address(&latchd)).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: latchd\r\nX-Slow: ")
        .unwrap();
    let mut silent = TcpStream::connect(address(&latchd)).unwrap();
    let mut preface = TcpStream::connect(address(&latchd)).unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").unwrap();
    for (what, stream) in [
        ("half a head", &mut half),
        ("nothing", &mut silent),
        ("half the HTTP/2 preface", &mut preface),
    ] {
        let (took, closed) = until_closed(stream, Duration::from_secs(15));
        assert!(
            closed.is_some(),
            "a connection that sent {what} is still open after {took:?}"
        );
        assert!(
            took < Duration::from_secs(5),
            "{what}: closed after {took:?}"
        );
    }
    // A whole request is still served.
    assert_eq!(latchd.call("GET", "/healthz", None, None).status, 200);
}

#[test]
fn a_body_that_does_not_arrive_in_time_is_answered_408() {
    let (latchd, _dir) = latchd_with(&["--body-read-timeout", "1s"]);
    let admin = latchd.admin_token();
    let mut stream = TcpStream::connect(address(&latchd)).unwrap();
    write!(
        stream,
        "POST /v1/accounts HTTP/1.1\r\nHost: latchd\r\nAuthorization: Bearer {admin}\r\n\
         Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"name\":"
    )
    .unwrap();
    let (took, answer) = until_closed(&mut stream, Duration::from_secs(15));
    let answer = answer.expect("latchd answered and closed");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body read timeout"), "{answer}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn a_request_without_a_valid_token_does_not_make_latchd_read_its_body() {
    let (latchd, _dir) = latchd_with(&[]);
    // A 60 KB body is announced and never sent: latchd answers 401 at once
    // instead of waiting to read it.
    let mut announced = TcpStream::connect(address(&latchd)).unwrap();
    announced
        .write_all(
            b"POST /v1/accounts HTTP/1.1\r\nHost: latchd\r\nContent-Type: application/json\r\n\
              Content-Length: 60000\r\n\r\n{\"name\":",
        )
        .unwrap();
    let (took, answer) = until_closed(&mut announced, Duration::from_secs(8));
    let answer = answer.expect("latchd answered without the body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(
        answer.to_lowercase().contains("connection: close"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(3), "{took:?}");

    // Chunked, 10 KB announced, 5 KB sent and the rest held back: latchd
    // stops reading past 4 KiB and answers.
    let mut chunked = TcpStream::connect(address(&latchd)).unwrap();
    chunked
        .write_all(
            b"POST /v1/accounts HTTP/1.1\r\nHost: latchd\r\nAuthorization: Bearer latch_nottoken\r\n\
              Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2800\r\n",
        )
        .unwrap();
    chunked.write_all(&[b' '; 5_000]).unwrap();
    let (took, answer) = until_closed(&mut chunked, Duration::from_secs(8));
    let answer = answer.expect("latchd answered without the whole body");
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(took < Duration::from_secs(3), "{took:?}");

    // A small body without a token still gets a clean 401 on a kept-alive
    // connection (the body was read and dropped).
    let reply = latchd.call("POST", "/v1/accounts", None, Some(&serde_json::json!({})));
    assert_eq!(reply.status, 401);
}

#[test]
fn connections_beyond_the_caps_are_closed_at_once() {
    for flags in [
        ["--max-connections", "4", "--header-read-timeout", "30s"],
        [
            "--max-connections-per-source",
            "4",
            "--header-read-timeout",
            "30s",
        ],
    ] {
        let (latchd, _dir) = latchd_with(&flags);
        // Hold connections open (each sends a partial head) until one is
        // refused: the harness may hold one of its own in its pool.
        let mut held = Vec::new();
        let refused_at = loop {
            let mut stream = TcpStream::connect(address(&latchd)).unwrap();
            stream.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
            let (took, closed) = until_closed(&mut stream, Duration::from_millis(500));
            if closed.is_some() {
                assert!(took < Duration::from_millis(500));
                break held.len();
            }
            held.push(stream);
            assert!(held.len() <= 4, "{flags:?}: a 5th connection was kept open");
        };
        assert!(
            (3..=4).contains(&refused_at),
            "{flags:?}: refused after {refused_at}"
        );
        // Closing one makes room again.
        drop(held.pop());
        std::thread::sleep(Duration::from_millis(200));
        let mut stream = TcpStream::connect(address(&latchd)).unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: latchd\r\nConnection: close\r\n\r\n")
            .unwrap();
        let (_, answer) = until_closed(&mut stream, Duration::from_secs(5));
        assert!(
            answer.is_some_and(|a| a.starts_with("HTTP/1.1 200")),
            "{flags:?}: no room after a connection closed"
        );
        assert!(
            latchd.logs().contains("connection limit reached"),
            "{flags:?}: the refusal is logged"
        );
    }
}

fn set_clock(clock: &Path, at: &str) {
    let temp = clock.with_extension("new");
    std::fs::write(&temp, at).unwrap();
    std::fs::rename(&temp, clock).unwrap();
}

#[test]
fn activity_records_older_than_the_retention_are_deleted() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("now");
    set_clock(&clock, "2026-03-01T09:00:00Z");
    let clock_flag = clock.display().to_string();
    let (latchd, _dir) = latchd_with(&[
        "--clock-file",
        &clock_flag,
        "--activity-retention",
        "30d",
        "--activity-prune-every",
        "1s",
    ]);
    let admin = latchd.admin_token();
    for _ in 0..5 {
        assert_eq!(latchd.get("/v1/accounts", &admin).status, 200);
        assert_eq!(latchd.call("GET", "/v1/accounts", None, None).status, 401);
    }
    let early = activity(&latchd);
    assert!(early.len() >= 10, "{} records", early.len());

    // 29 days later they are still kept.
    set_clock(&clock, "2026-03-30T09:00:00Z");
    std::thread::sleep(Duration::from_secs(3));
    let kept = activity(&latchd);
    assert!(
        kept.iter()
            .filter(|r| r["at"].as_str().unwrap().starts_with("2026-03-01"))
            .count()
            >= 10
    );

    // 31 days later they are gone; the new ones stay.
    set_clock(&clock, "2026-04-01T09:00:01Z");
    let started = Instant::now();
    loop {
        let now = activity(&latchd);
        let old = now
            .iter()
            .filter(|r| r["at"].as_str().unwrap() < "2026-03-02T09:00:00Z")
            .count();
        if old == 0 {
            assert!(
                now.iter()
                    .any(|r| r["at"].as_str().unwrap().starts_with("2026-04-01")),
                "the new records are kept"
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{old} records older than the retention are still there"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        latchd
            .logs()
            .contains("deleted records older than the retention")
    );
}
