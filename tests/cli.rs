//! The real `latch` binary against the real latchd: the quick start, the
//! lifecycle, output formats and exit codes.

use latch_e2e::{Latchd, ok, stderr, stdout};
use serde_json::json;

#[test]
fn the_lifecycle_through_the_cli() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let admin = Some(admin.as_str());

    // The README's quick start.
    ok(latchd.latch(
        admin,
        &[
            "role",
            "set",
            "cert-operator",
            "--permission",
            "certificates:issue",
            "--permission",
            "certificates:renew",
            "--permission",
            "certificates:read",
        ],
    ));
    let created = ok(latchd.latch(
        admin,
        &[
            "account",
            "create",
            "ci-deploy",
            "--role",
            "cert-operator",
            "--description",
            "GitLab deploy pipeline",
        ],
    ));
    assert!(
        created.contains("ci-deploy") && created.contains("cert-operator"),
        "{created}"
    );
    let token = ok(latchd.latch(
        admin,
        &[
            "token",
            "issue",
            "ci-deploy",
            "--name",
            "deploy",
            "--scope",
            "certificates:issue",
            "--ttl",
            "30d",
            "--output",
            "raw",
        ],
    ));
    let token = token.trim().to_owned();
    assert_eq!(token.len(), 44, "raw output is the token alone");

    let listed = ok(latchd.latch(admin, &["token", "list", "ci-deploy"]));
    assert!(
        listed.contains("deploy") && listed.contains("active"),
        "{listed}"
    );
    let json: serde_json::Value = serde_json::from_str(&ok(
        latchd.latch(admin, &["account", "list", "--output", "json"])
    ))
    .unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    // The token can introspect? No: it lacks tokens:introspect (exit 4).
    let denied = latchd.latch(Some(&token), &["token", "introspect", &token]);
    assert_eq!(denied.status.code(), Some(4), "{}", stderr(&denied));
    assert!(stderr(&denied).contains("tokens:introspect"));

    // Rotate itself; the new token on stdout, the old one in grace.
    let new_token = ok(latchd.latch(
        Some(&token),
        &[
            "token", "rotate", "--self", "--grace", "15m", "--output", "raw",
        ],
    ));
    let new_token = new_token.trim().to_owned();
    assert_eq!(
        new_token.len(),
        44,
        "raw output is the new token alone: {new_token:?}"
    );
    assert_ne!(new_token, token);
    let shown = ok(latchd.latch(
        Some(&new_token),
        &["token", "show", "self", "--output", "json"],
    ));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["status"], "active");
    let old_id = shown["rotated_from"].as_str().unwrap().to_owned();

    // Disable, see it suspended, enable.
    ok(latchd.latch(
        admin,
        &[
            "account",
            "disable",
            "ci-deploy",
            "--reason",
            "leak suspected in job 4411",
        ],
    ));
    let suspended = latchd.latch(Some(&new_token), &["token", "show", "self"]);
    assert_eq!(suspended.status.code(), Some(3), "401 is exit code 3");
    ok(latchd.latch(admin, &["account", "enable", "ci-deploy"]));

    // Revoke the old one; introspection as admin says inactive.
    ok(latchd.latch(
        admin,
        &["token", "revoke", &old_id, "--reason", "rotated out"],
    ));
    let introspected =
        ok(latchd.latch(admin, &["token", "introspect", &token, "--output", "json"]));
    assert!(introspected.contains("\"active\": false"), "{introspected}");

    // Policy and events.
    ok(latchd.latch(
        admin,
        &["policy", "set", "--max-ttl", "90d", "--default-ttl", "30d"],
    ));
    let policy = ok(latchd.latch(admin, &["policy", "show"]));
    assert!(
        policy.contains("cert-operator") && policy.contains("90d"),
        "{policy}"
    );
    let events = ok(latchd.latch(admin, &["events", "--type", "token.revoked"]));
    assert!(events.contains("token.revoked"), "{events}");
    assert_eq!(
        events.lines().count(),
        2,
        "header and one revocation:\n{events}"
    );
}

#[test]
fn errors_go_to_stderr_with_the_servers_detail_and_a_documented_exit_code() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let admin = Some(admin.as_str());
    ok(latchd.latch(admin, &["account", "create", "dup", "--role", "auditor"]));

    let conflict = latchd.latch(admin, &["account", "create", "dup", "--role", "auditor"]);
    assert_eq!(conflict.status.code(), Some(6));
    assert!(stderr(&conflict).contains("already exists"));
    assert!(stdout(&conflict).is_empty());

    let invalid = latchd.latch(admin, &["account", "create", "other", "--role", "wizard"]);
    assert_eq!(invalid.status.code(), Some(7));
    assert!(stderr(&invalid).contains("wizard"));

    let missing = latchd.latch(admin, &["account", "show", "ghost"]);
    assert_eq!(missing.status.code(), Some(5));

    let bad_token = latchd.latch(Some("latch_nope"), &["account", "list"]);
    assert_eq!(bad_token.status.code(), Some(3));
    assert!(stderr(&bad_token).contains("malformed token"));

    let usage = latchd.latch(admin, &["token", "issue"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn the_token_can_come_from_a_file_as_in_the_quick_start() {
    let latchd = Latchd::start();
    let token_file = latchd.data_dir.join("admin.token");
    let output = std::process::Command::new(latch_e2e::binary("latch"))
        .args(["account", "list", "--output", "json"])
        .env("LATCH_URL", &latchd.url)
        .env_remove("LATCH_TOKEN")
        .env("LATCH_TOKEN_FILE", &token_file)
        .output()
        .unwrap();
    let listed = ok(output);
    assert!(listed.contains("\"admin\""), "{listed}");
}

#[test]
fn watch_prints_events_live_with_filters() {
    use std::io::{BufRead, BufReader};
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, _) =
        latch_e2e::account_with_token(&latchd, &admin, "watched", "auditor", None);
    let (other, _, _) = latch_e2e::account_with_token(&latchd, &admin, "ignored", "auditor", None);
    let mut child = std::process::Command::new(latch_e2e::binary("latch"))
        .args([
            "watch",
            "--nats-url",
            &latchd.nats().url(),
            "--type",
            "token.revoked",
            "--account",
            &account,
            "--output",
            "json",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until it is subscribed (it says so on stderr).
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut said = String::new();
    stderr.read_line(&mut said).unwrap();
    assert!(
        said.starts_with("watching latch.events.token.revoked."),
        "{said}"
    );

    let issue = |account: &str| {
        latchd
            .post(
                &format!("/v1/accounts/{account}/tokens"),
                &admin,
                serde_json::json!({ "name": "w" }),
            )
            .body["id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let ignored = issue(&other);
    latchd.post(
        &format!("/v1/tokens/{ignored}/revoke"),
        &admin,
        serde_json::json!({}),
    );
    let watched = issue(&account);
    latchd.post(
        &format!("/v1/tokens/{watched}/revoke"),
        &admin,
        serde_json::json!({ "reason": "watch me" }),
    );

    let stdout = child.stdout.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = sender.send(line);
    });
    let line = receiver.recv_timeout(std::time::Duration::from_secs(20));
    let _ = child.kill();
    let _ = child.wait();
    let line = line.expect("latch watch printed nothing within 20 s");
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(event["type"], "token.revoked");
    assert_eq!(
        event["data"]["token_id"],
        watched.as_str(),
        "the other account's revocation was filtered out"
    );
    assert_eq!(event["data"]["reason"], "watch me");
}

/// `latch completion <shell>` with no latchd and no token: the URL points
/// nowhere and the token file does not exist.
fn completion(shell: &str) -> std::process::Output {
    std::process::Command::new(latch_e2e::binary("latch"))
        .args(["completion", shell])
        .env("LATCH_URL", "http://127.0.0.1:9")
        .env("LATCH_TOKEN_FILE", "/nonexistent/admin.token")
        .env_remove("LATCH_TOKEN")
        .output()
        .unwrap()
}

#[test]
fn completion_scripts_for_bash_zsh_and_fish_need_no_server_or_token() {
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(completion(shell));
        for subcommand in ["account", "token", "audit", "who-can", "completion"] {
            assert!(
                script.contains(subcommand),
                "the {shell} script does not complete `{subcommand}`:\n{script}"
            );
        }
    }

    // bash accepts the script, and sourcing it registers a completion.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latch.bash");
    std::fs::write(&path, ok(completion("bash"))).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "bash -n: {}", stderr(&syntax));
    let registered = std::process::Command::new("bash")
        .arg("-c")
        .arg(r#"source "$1" && complete -p latch"#)
        .arg("bash")
        .arg(&path)
        .output()
        .unwrap();
    let registered = ok(registered);
    assert!(
        registered.starts_with("complete ") && registered.trim_end().ends_with(" latch"),
        "{registered}"
    );
}

#[test]
fn completion_for_an_unknown_shell_is_a_usage_error() {
    let refused = completion("tcsh");
    assert_eq!(refused.status.code(), Some(2), "{}", stderr(&refused));
    assert!(stdout(&refused).is_empty());
    let said = stderr(&refused);
    assert!(
        said.contains("tcsh") && said.contains("bash") && said.contains("zsh"),
        "{said}"
    );
}

#[test]
fn token_list_without_an_account_looks_across_accounts_over_http_and_nats() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    for (account, ttl) in [("ci-a", "3d"), ("ci-b", "60d")] {
        ok(latchd.latch(Some(&admin), &["account", "create", account, "--role", "auditor"]));
        ok(latchd.latch(Some(&admin), &["token", "issue", account, "--name", "deploy", "--ttl", ttl]));
    }
    let nats_url = latchd.nats().url();
    for transport in [vec![], vec!["--transport", "nats", "--nats-url", nats_url.as_str()]] {
        let args = |rest: &[&'static str]| -> Vec<&str> {
            transport.iter().copied().chain(rest.iter().copied()).collect()
        };
        let soon = ok(latchd.latch(Some(&admin), &args(&["token", "list", "--expiring-within", "7d", "--output", "json"])));
        let soon: serde_json::Value = serde_json::from_str(&soon).unwrap();
        let names: Vec<&str> = soon.as_array().unwrap().iter().map(|t| t["account_name"].as_str().unwrap()).collect();
        assert_eq!(names, ["ci-a"], "{transport:?}");
        let all = ok(latchd.latch(Some(&admin), &args(&["token", "list", "--status", "active"])));
        for account in ["ci-a", "ci-b", "admin"] {
            assert!(all.contains(account), "{transport:?}: {all}");
        }
        // With an account, only its tokens.
        let one = ok(latchd.latch(Some(&admin), &args(&["token", "list", "ci-b", "--status", "active", "--output", "json"])));
        let one: serde_json::Value = serde_json::from_str(&one).unwrap();
        assert_eq!(one.as_array().unwrap().len(), 1, "{transport:?}: {one}");
        assert_eq!(one[0]["account_name"], "ci-b");
    }
    // A weak token gets no more over NATS than over HTTP.
    let (_, _, weak) =
        latch_e2e::account_with_token(&latchd, &admin, "directory", "auditor", Some(vec!["accounts:read"]));
    for transport in [vec![], vec!["--transport", "nats", "--nats-url", nats_url.as_str()]] {
        let args: Vec<&str> = transport.iter().copied().chain(["token", "list"]).collect();
        let refused = latchd.latch(Some(&weak), &args);
        assert!(!refused.status.success(), "{transport:?}: {}", stdout(&refused));
        assert!(stderr(&refused).contains("tokens:read"), "{transport:?}: {}", stderr(&refused));
    }
    let bad = latchd.latch(Some(&admin), &["token", "list", "--expiring-within", "soon"]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("expiring_within"), "{}", stderr(&bad));
}

/// Whoever may issue a token names it, and an auditor later reads that
/// name in a table: escape sequences in it (clear the screen, retitle the
/// window, rewrite a line with a carriage return) reach the terminal
/// written out, never as control characters, in token lists and in the
/// audit's tables, online and offline. JSON output escapes them anyway.
#[test]
fn names_with_escape_sequences_are_shown_written_out_in_tables() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let created = latchd.post("/v1/accounts", &admin, json!({ "name": "pipeline", "role": "auditor" }));
    assert_eq!(created.status, 201, "{:?}", created.body);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let hostile = "ci\u{1b}[2J\u{1b}]0;owned\u{7}\rfine";
    let issued = latchd.post(&format!("/v1/accounts/{account}/tokens"), &admin, json!({ "name": hostile }));
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();
    for (args, token) in [
        (vec!["token", "list", "pipeline"], Some(admin.as_str())),
        (vec!["audit", "state"], Some(admin.as_str())),
        (vec!["audit", "state", "--data-dir", &data_dir], None),
    ] {
        let shown = ok(latchd.latch(token, &args));
        assert!(shown.contains("ci\\u{1b}[2J"), "{args:?}: {shown}");
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {shown:?}");
    }
    // The token's story opens with a header of several lines: the name in
    // it is written out, and the lines stay lines.
    let token_id = issued.body["id"].as_str().unwrap().to_owned();
    for (args, token) in [
        (vec!["audit", "token", &token_id], Some(admin.as_str())),
        (vec!["audit", "token", &token_id, "--data-dir", &data_dir], None),
    ] {
        let shown = ok(latchd.latch(token, &args));
        assert!(shown.contains(r#""ci\u{1b}[2J"#), "{args:?}: {shown}");
        assert!(!shown.chars().any(|c| c.is_control() && c != '\n'), "{args:?}: {shown:?}");
        let header: Vec<&str> = shown.lines().take(5).collect();
        assert!(header[0].starts_with(&format!("token {token_id} ")), "{args:?}: {header:?}");
        assert!(header[1].starts_with("  issued "), "{args:?}: {header:?}");
        assert!(header.iter().any(|line| line.starts_with("  now: ")), "{args:?}: {header:?}");
    }
}
