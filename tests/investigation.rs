//! A scripted week through the real binaries, then an investigation of it:
//! `latch audit token`, `state --at`, `who-can --at` and `events`, asked of
//! latchd (online) and of its data directory while latchd runs (offline),
//! with their exact answers. latchd reads "now" from a file the test
//! rewrites (`--clock-file`), so the week takes seconds.
//!
//! The week, all times UTC, November 2026:
//!
//! ```text
//! Mon 2  09:00  latchd starts: account `admin` and its token.
//!        09:10  role cert-operator = certificates:{read,issue,revoke};
//!               role cert-reader = certificates:read.
//!        09:20  accounts ci-pipeline (cert-operator), provisioner (cert-reader).
//!        09:30  token deploy-1 for ci-pipeline, scopes certificates:{read,issue}.
//!        09:35  token inventory for provisioner.
//! Tue 3  10:00  cert-operator cut to certificates:read (ci-pipeline loses issue) …
//!        16:00  … and restored.
//! Wed 4  09:00  deploy-1 rotated to deploy-2 with 1h grace.
//! Thu 5  09:00  cert-operator gains certificates:renew (deploy-2 unchanged: not in its scopes).
//!        14:02  deploy-2 leaked: a request to latchd with it (403), and a
//!               verifier reports 3 accepted uses from 203.0.113.7.
//!        15:30  admin revokes deploy-2 ("leaked in a public build log"),
//!               issues deploy-3.
//!        15:31  the attacker tries deploy-2 again: 401, and latchd tells
//!               (token.reuse_detected).
//! Fri 6  09:00  provisioner disabled ("decommissioned").
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use latch_e2e::{Latchd, ok, stderr};
use serde_json::{Value, json};

struct Week {
    latchd: Latchd,
    clock: PathBuf,
    _clock_dir: tempfile::TempDir,
    admin: String,
    admin_token_id: String,
    ci: String,
    provisioner: String,
    deploy_1: String,
    deploy_2: String,
    deploy_3: String,
    inventory: String,
    /// Where deploy-2 was issued.
    deploy_2_position: u64,
}

fn set_clock(clock: &Path, at: &str) {
    let temp = clock.with_extension("new");
    std::fs::write(&temp, at).unwrap();
    std::fs::rename(&temp, clock).unwrap();
}

#[track_caller]
fn created(reply: latch_e2e::Reply) -> Value {
    assert!(
        (200..300).contains(&reply.status),
        "{} {:?}",
        reply.status,
        reply.body
    );
    reply.body
}

fn script_the_week() -> Week {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("now");
    set_clock(&clock, "2026-11-02T09:00:00Z");
    let latchd = Latchd::start_with_clock(&clock);
    let admin = latchd.admin_token();
    let me = created(latchd.get("/v1/tokens/self", &admin));
    let admin_token_id = me["id"].as_str().unwrap().to_owned();
    let at = |time: &str| set_clock(&clock, time);
    let put = |path: &str, body: Value| {
        created(latchd.call("PUT", path, Some(&admin), Some(&body)));
    };
    let post = |path: &str, body: Value| created(latchd.post(path, &admin, body));
    let id = |value: &Value| value["id"].as_str().unwrap().to_owned();

    at("2026-11-02T09:10:00Z");
    put(
        "/v1/roles/cert-operator",
        json!({"permissions": ["certificates:read", "certificates:issue", "certificates:revoke"]}),
    );
    put(
        "/v1/roles/cert-reader",
        json!({"permissions": ["certificates:read"]}),
    );
    at("2026-11-02T09:20:00Z");
    let ci = id(&post(
        "/v1/accounts",
        json!({"name": "ci-pipeline", "role": "cert-operator"}),
    ));
    let provisioner = id(&post(
        "/v1/accounts",
        json!({"name": "provisioner", "role": "cert-reader"}),
    ));
    at("2026-11-02T09:30:00Z");
    let deploy_1 = id(&post(
        &format!("/v1/accounts/{ci}/tokens"),
        json!({"name": "deploy-1", "scopes": ["certificates:read", "certificates:issue"], "ttl": "30d"}),
    ));
    at("2026-11-02T09:35:00Z");
    let inventory = id(&post(
        &format!("/v1/accounts/{provisioner}/tokens"),
        json!({"name": "inventory", "ttl": "30d"}),
    ));

    at("2026-11-03T10:00:00Z");
    put(
        "/v1/roles/cert-operator",
        json!({"permissions": ["certificates:read"]}),
    );
    at("2026-11-03T16:00:00Z");
    put(
        "/v1/roles/cert-operator",
        json!({"permissions": ["certificates:read", "certificates:issue", "certificates:revoke"]}),
    );

    at("2026-11-04T09:00:00Z");
    let rotated = post(
        &format!("/v1/tokens/{deploy_1}/rotate"),
        json!({"grace": "1h"}),
    );
    let deploy_2 = id(&rotated);
    let leaked = rotated["token"].as_str().unwrap().to_owned();
    let deploy_2_position = latchd.head();

    at("2026-11-05T09:00:00Z");
    put(
        "/v1/roles/cert-operator",
        json!({"permissions": ["certificates:read", "certificates:issue", "certificates:revoke", "certificates:renew"]}),
    );
    at("2026-11-05T14:02:00Z");
    assert_eq!(latchd.get("/v1/accounts", &leaked).status, 403);
    // The verifier reports its uses (14:03-14:05) after they happened:
    // latchd drops uses reported from its future.
    at("2026-11-05T14:06:00Z");
    report_uses(&latchd, &ci, &deploy_2);
    at("2026-11-05T15:30:00Z");
    post(
        &format!("/v1/tokens/{deploy_2}/revoke"),
        json!({"reason": "leaked in a public build log"}),
    );
    let deploy_3 = id(&post(
        &format!("/v1/accounts/{ci}/tokens"),
        json!({"name": "deploy-3", "scopes": ["certificates:read", "certificates:issue"], "ttl": "30d"}),
    ));
    at("2026-11-05T15:31:00Z");
    assert_eq!(latchd.get("/v1/accounts", &leaked).status, 401);
    // A revoked token presented again: latchd tells (token.reuse_detected).
    latch_e2e::eventually("latchd tells the reuse", || {
        latchd.get("/v1/events?type=token.reuse_detected", &admin).body["events"]
            .as_array()
            .is_some_and(|events| !events.is_empty())
    });

    at("2026-11-06T09:00:00Z");
    post(
        &format!("/v1/accounts/{provisioner}/disable"),
        json!({"reason": "decommissioned"}),
    );
    // Let the usage book flush (every 2 s), so offline readers see it too.
    wait_until("the 4 uses of deploy-2 are stored", || {
        latchd
            .latch(
                None,
                &[
                    "audit",
                    "token",
                    &deploy_2,
                    "--data-dir",
                    latchd.data_dir.to_str().unwrap(),
                    "--output",
                    "ndjson",
                ],
            )
            .stdout
            .split(|b| *b == b'\n')
            .next()
            .and_then(|line| serde_json::from_slice::<Value>(line).ok())
            .is_some_and(|token| token["use_count"] == 4)
    });

    Week {
        latchd,
        clock,
        _clock_dir: clock_dir,
        admin,
        admin_token_id,
        ci,
        provisioner,
        deploy_1,
        deploy_2,
        deploy_3,
        inventory,
        deploy_2_position,
    }
}

/// What a verifier publishes after accepting the leaked token three times
/// (the usage report is part of the NATS contract, so the test speaks it
/// as any verifier would).
fn report_uses(latchd: &Latchd, account: &str, token: &str) {
    let report = json!({
        "verifier": "cert-api",
        "account_id": account,
        "uses": [{
            "token_id": token,
            "count": 3,
            "first_at": "2026-11-05T14:03:00Z",
            "last_at": "2026-11-05T14:05:00Z",
            "last_from": "203.0.113.7",
        }],
    });
    let url = latchd.nats().url();
    let subject = format!("latch.usage.{account}");
    latch_e2e::block_on(async move {
        let client = async_nats::connect(url).await.unwrap();
        client
            .publish(subject, serde_json::to_vec(&report).unwrap().into())
            .await
            .unwrap();
        client.flush().await.unwrap();
    });
    let admin = latchd.admin_token();
    wait_until("latchd records the verifier's report", || {
        latchd.get(&format!("/v1/audit?token={token}"), &admin).body["records"]
            .as_array()
            .is_some_and(|records| records.iter().any(|r| r["method"] == "VERIFY"))
    });
}

#[track_caller]
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Week {
    /// Runs `latch audit <args> --output ndjson` online, then offline on the
    /// data directory while latchd runs; both must print the same lines,
    /// byte for byte (fields in the same order), and so must `--output
    /// json`. Returns the lines parsed.
    #[track_caller]
    fn ask(&self, args: &[&str]) -> Vec<Value> {
        let online = self.audit(args, "ndjson", false);
        let offline = self.audit(args, "ndjson", true);
        assert_eq!(online, offline, "online and offline differ for {args:?}");
        let lines: Vec<Value> = online
            .lines()
            .map(|line| serde_json::from_str(line).expect("each line is JSON"))
            .collect();
        let pretty = self.audit(args, "json", false);
        assert_eq!(pretty, self.audit(args, "json", true), "--output json differs for {args:?}");
        let array: Vec<Value> = serde_json::from_str(&pretty).expect("--output json is a JSON array");
        assert_eq!(array, lines, "--output json and ndjson disagree for {args:?}");
        lines
    }

    #[track_caller]
    fn audit(&self, args: &[&str], output: &str, offline: bool) -> String {
        let mut all = vec!["audit"];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--output", output]);
        let data_dir = self.latchd.data_dir.to_str().unwrap().to_owned();
        if offline {
            all.extend_from_slice(&["--data-dir", &data_dir]);
        }
        let output = self
            .latchd
            .latch((!offline).then_some(self.admin.as_str()), &all);
        assert!(
            stderr(&output).is_empty(),
            "nothing on stderr when piped (no progress bar): {}",
            stderr(&output)
        );
        ok(output)
    }
}

impl Week {
    /// Which of the week's tokens an id is.
    fn label(&self, id: &str) -> &'static str {
        [
            (&self.admin_token_id, "admin"),
            (&self.deploy_1, "deploy-1"),
            (&self.deploy_2, "deploy-2"),
            (&self.deploy_3, "deploy-3"),
            (&self.inventory, "inventory"),
        ]
        .into_iter()
        .find(|(known, _)| known.as_str() == id)
        .map_or("?", |(_, label)| label)
    }
}

fn of_kind<'a>(lines: &'a [Value], kind: &str) -> Vec<&'a Value> {
    lines.iter().filter(|l| l["kind"] == kind).collect()
}

fn field_of(lines: &[&Value], name: &str) -> Vec<String> {
    lines
        .iter()
        .map(|l| l[name].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[test]
fn an_investigation_of_a_scripted_week_gets_the_same_exact_answers_online_and_offline() {
    let week = script_the_week();
    token_story(&week);
    state_at_moments(&week);
    who_could_issue(&week);
    events_filtered(&week);
}

fn token_story(week: &Week) {
    let story = week.ask(&["token", &week.deploy_2]);
    let token = &story[0];
    assert_eq!(token["kind"], "token");
    assert_eq!(token["id"], week.deploy_2.as_str());
    assert_eq!(token["name"], "deploy-1", "a rotation keeps the name");
    assert_eq!(token["account_name"], "ci-pipeline");
    assert_eq!(
        token["scopes"],
        json!(["certificates:issue", "certificates:read"])
    );
    assert_eq!(token["issued_at"], "2026-11-04T09:00:00Z");
    assert_eq!(token["issued_by"]["account_name"], "admin");
    assert_eq!(token["rotated_from"], week.deploy_1.as_str());
    assert_eq!(token["status"], "revoked");
    assert_eq!(token["revoked_at"], "2026-11-05T15:30:00Z");
    assert_eq!(token["revoked_by"]["account_name"], "admin");
    assert_eq!(token["revoke_reason"], "leaked in a public build log");
    assert_eq!(token["effective_permissions"], json!([]));
    // One accepted request (refused 403 by permission, but authenticated)
    // and the verifier's three.
    assert_eq!(token["use_count"], 4);
    assert_eq!(token["last_used_from"], "203.0.113.7");

    let timeline: Vec<(String, String, String)> = story[1..]
        .iter()
        .map(|entry| {
            let what = match entry["kind"].as_str().unwrap() {
                "event" => format!(
                    "{} ({})",
                    entry["type"].as_str().unwrap(),
                    entry["about"].as_str().unwrap()
                ),
                "request" => format!(
                    "request {} {}",
                    entry["path"].as_str().unwrap(),
                    entry["status"]
                ),
                "verifier_use" => format!(
                    "{} uses at {} from {}",
                    entry["uses"],
                    entry["verifier"].as_str().unwrap(),
                    entry["from"].as_str().unwrap()
                ),
                other => panic!("unexpected entry {other}"),
            };
            let may_do = if entry["kind"] == "event" {
                entry["effective_permissions"].to_string()
            } else {
                String::new()
            };
            (entry["at"].as_str().unwrap().to_owned(), what, may_do)
        })
        .collect();
    let read_issue = r#"["certificates:issue","certificates:read"]"#.to_owned();
    assert_eq!(
        timeline,
        vec![
            (
                "2026-11-04T09:00:00Z".into(),
                "token.issued (token)".into(),
                read_issue.clone()
            ),
            (
                "2026-11-05T09:00:00Z".into(),
                "role.defined (role)".into(),
                read_issue.clone()
            ),
            (
                "2026-11-05T14:02:00Z".into(),
                "request /v1/accounts 403".into(),
                String::new()
            ),
            (
                "2026-11-05T14:05:00Z".into(),
                "3 uses at cert-api from 203.0.113.7".into(),
                String::new()
            ),
            (
                "2026-11-05T15:30:00Z".into(),
                "token.revoked (token)".into(),
                "[]".into()
            ),
            (
                "2026-11-05T15:31:00Z".into(),
                "token.reuse_detected (token)".into(),
                "[]".into()
            ),
            (
                "2026-11-05T15:31:00Z".into(),
                "request /v1/accounts 401".into(),
                String::new()
            ),
        ]
    );
    let events = of_kind(&story, "event");
    assert_eq!(events[0]["actor"]["account_name"], "admin");
    assert_eq!(events[0]["permissions_changed"], true);
    assert_eq!(
        events[1]["permissions_changed"], false,
        "renew is not in its scopes"
    );
    assert_eq!(events[2]["status"], "revoked");
    assert_eq!(events[2]["permissions_changed"], true);

    // deploy-1: its role was cut and restored while it lived, then it was
    // rotated and its grace ran out.
    let story = week.ask(&["token", &week.deploy_1]);
    let events = of_kind(&story, "event");
    let changes: Vec<(String, String, String)> = events
        .iter()
        .filter(|e| e["type"] != "token.expired")
        .map(|e| {
            (
                e["at"].as_str().unwrap().to_owned(),
                e["type"].as_str().unwrap().to_owned(),
                e["effective_permissions"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        changes,
        vec![
            (
                "2026-11-02T09:30:00Z".into(),
                "token.issued".into(),
                read_issue.clone()
            ),
            (
                "2026-11-03T10:00:00Z".into(),
                "role.defined".into(),
                r#"["certificates:read"]"#.into()
            ),
            (
                "2026-11-03T16:00:00Z".into(),
                "role.defined".into(),
                read_issue.clone()
            ),
            (
                "2026-11-04T09:00:00Z".into(),
                "token.issued".into(),
                read_issue.clone()
            ),
            (
                "2026-11-04T09:00:00Z".into(),
                "token.rotated".into(),
                read_issue
            ),
        ],
        "{events:#?}"
    );
    assert_eq!(events[3]["about"], "successor");
    assert_eq!(events[4]["about"], "token");
    assert_eq!(story[0]["rotated_to"], week.deploy_2.as_str());
    assert_eq!(story[0]["expires_at"], "2026-11-04T10:00:00Z");
}

fn state_at_moments(week: &Week) {
    let state = week.ask(&["state", "--at", "2026-11-05T14:02:00Z"]);
    assert_eq!(state[0]["kind"], "moment");
    assert_eq!(state[0]["at"], "2026-11-05T14:02:00Z");
    let roles = of_kind(&state, "role");
    let cert_operator = roles.iter().find(|r| r["name"] == "cert-operator").unwrap();
    assert_eq!(
        cert_operator["permissions"],
        json!([
            "certificates:issue",
            "certificates:read",
            "certificates:renew",
            "certificates:revoke"
        ])
    );
    let accounts = of_kind(&state, "account");
    assert_eq!(
        field_of(&accounts, "name"),
        ["admin", "ci-pipeline", "provisioner"]
    );
    assert_eq!(
        field_of(&accounts, "status"),
        ["active", "active", "active"]
    );
    let tokens = of_kind(&state, "token");
    let summary: Vec<(&str, String, String)> = tokens
        .iter()
        .map(|t| {
            (
                week.label(t["id"].as_str().unwrap()),
                t["status"].as_str().unwrap().to_owned(),
                t["effective_permissions"].to_string(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("admin", "active".into(), r#"["*"]"#.into()),
            ("deploy-1", "expired".into(), "[]".into()),
            (
                "deploy-2",
                "active".into(),
                r#"["certificates:issue","certificates:read"]"#.into()
            ),
            (
                "inventory",
                "active".into(),
                r#"["certificates:read"]"#.into()
            ),
        ]
    );
    assert!(
        tokens.iter().all(|t| t.get("use_count").is_none()),
        "a past state claims no usage"
    );

    // Friday: deploy-2 revoked, deploy-3 live, provisioner disabled.
    let state = week.ask(&["state", "--at", "2026-11-06T10:00:00Z", "--active-only"]);
    let tokens: Vec<&str> = of_kind(&state, "token")
        .iter()
        .map(|t| week.label(t["id"].as_str().unwrap()))
        .collect();
    assert_eq!(tokens, ["admin", "deploy-3"]);
    assert_eq!(
        field_of(&of_kind(&state, "account"), "name"),
        ["admin", "ci-pipeline"]
    );
    let state = week.ask(&["state", "--at", "2026-11-06T10:00:00Z"]);
    let inventory = of_kind(&state, "token")
        .into_iter()
        .find(|t| t["id"] == week.inventory.as_str())
        .unwrap();
    assert_eq!(inventory["status"], "suspended");
    let provisioner = of_kind(&state, "account")
        .into_iter()
        .find(|a| a["id"] == week.provisioner.as_str())
        .unwrap();
    assert_eq!(provisioner["disabled_reason"], "decommissioned");

    // At the position where deploy-2 was issued: deploy-1 is in its grace.
    let position = week.deploy_2_position.to_string();
    let state = week.ask(&["state", "--at", &position]);
    assert_eq!(state[0]["position"], week.deploy_2_position);
    assert_eq!(state[0]["at"], "2026-11-04T09:00:00Z");
    let statuses: Vec<(&str, &str)> = of_kind(&state, "token")
        .iter()
        .map(|t| {
            (
                week.label(t["id"].as_str().unwrap()),
                t["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("admin", "active"),
            ("deploy-1", "active"),
            ("deploy-2", "active"),
            ("inventory", "active")
        ]
    );

    // Before anything happened: only the built-in roles.
    let state = week.ask(&["state", "--at", "2026-11-01T00:00:00Z"]);
    assert_eq!(state[0]["position"], 0);
    assert!(of_kind(&state, "account").is_empty());
}

fn who_could_issue(week: &Week) {
    let holders = |at: &str| -> (Vec<String>, Vec<String>, Vec<Value>) {
        let lines = week.ask(&["who-can", "certificates:issue", "--at", at]);
        assert_eq!(lines[0]["kind"], "moment");
        assert_eq!(lines[0]["permission"], "certificates:issue");
        let accounts = of_kind(&lines, "account");
        let tokens = of_kind(&lines, "token");
        (
            field_of(&accounts, "account_name"),
            field_of(&tokens, "token_id"),
            tokens.into_iter().cloned().collect(),
        )
    };

    // The moment of the leak: admin, and ci-pipeline through deploy-2.
    let (accounts, tokens, detail) = holders("2026-11-05T14:02:00Z");
    assert_eq!(accounts, ["admin", "ci-pipeline"]);
    assert_eq!(tokens, [week.admin_token_id.clone(), week.deploy_2.clone()]);
    assert_eq!(detail[1]["role"], "cert-operator");
    assert_eq!(detail[1]["role_grants"], json!(["certificates:issue"]));
    assert_eq!(detail[1]["scope_grants"], json!(["certificates:issue"]));
    assert_eq!(detail[0]["role_grants"], json!(["*"]));

    // Tuesday noon, with cert-operator cut to read: only admin.
    let (accounts, tokens, _) = holders("2026-11-03T12:00:00Z");
    assert_eq!(accounts, ["admin"]);
    assert_eq!(tokens, std::slice::from_ref(&week.admin_token_id));

    // Wednesday 09:30, in deploy-1's grace: both deploy tokens.
    let (_, tokens, _) = holders("2026-11-04T09:30:00Z");
    assert_eq!(
        tokens,
        [
            week.admin_token_id.clone(),
            week.deploy_1.clone(),
            week.deploy_2.clone()
        ]
    );

    // Friday: deploy-3 replaced the revoked deploy-2.
    let (accounts, tokens, _) = holders("2026-11-06T10:00:00Z");
    assert_eq!(accounts, ["admin", "ci-pipeline"]);
    assert_eq!(tokens, [week.admin_token_id.clone(), week.deploy_3.clone()]);

    // Reading: provisioner held it until it was disabled.
    let readers = |at: &str| {
        let lines = week.ask(&["who-can", "certificates:read", "--at", at]);
        field_of(&of_kind(&lines, "account"), "account_name")
    };
    assert_eq!(
        readers("2026-11-05T14:02:00Z"),
        ["admin", "ci-pipeline", "provisioner"]
    );
    assert_eq!(readers("2026-11-06T10:00:00Z"), ["admin", "ci-pipeline"]);
}

fn events_filtered(week: &Week) {
    // Everything about deploy-2, and what admin revoked.
    let events = week.ask(&["events", "--token-id", &week.deploy_2]);
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    // The rotation appends the successor's issue, then the old token's
    // `token.rotated` naming it; presenting it after its revocation is
    // reuse.
    assert_eq!(types, ["token.issued", "token.rotated", "token.revoked", "token.reuse_detected"]);
    assert!(
        events
            .iter()
            .all(|e| e["hash"].as_str().unwrap().len() == 64)
    );

    let revoked = week.ask(&["events", "--actor", "admin", "--type", "token.revoked"]);
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0]["actor"]["account_name"], "admin");
    assert_eq!(revoked[0]["data"]["token_id"], week.deploy_2.as_str());
    assert_eq!(
        revoked[0]["summary"],
        "token revoked: leaked in a public build log"
    );

    // Thursday, by family, for the account by name.
    let thursday = week.ask(&[
        "events",
        "--account",
        "ci-pipeline",
        "--type",
        "token.*",
        "--since",
        "2026-11-05T00:00:00Z",
        "--until",
        "2026-11-06T00:00:00Z",
    ]);
    let names: Vec<(String, String)> = thursday
        .iter()
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_owned(),
                e["data"]["token_id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        names.contains(&("token.revoked".into(), week.deploy_2.clone()))
            && names.contains(&("token.issued".into(), week.deploy_3.clone())),
        "{names:?}"
    );
    assert!(
        thursday
            .iter()
            .all(|e| e["data"]["account_id"] == week.ci.as_str())
    );

    // A position range.
    let first_three = week.ask(&["events", "--from", "1", "--to", "3"]);
    let positions: Vec<u64> = first_three
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect();
    assert_eq!(positions, [1, 2, 3]);

    // System events: the bootstrap and the scheduler's notes.
    let system = week.ask(&["events", "--actor", "system"]);
    assert!(system.iter().all(|e| e["actor"]["kind"] == "system"));
    assert!(
        system.iter().any(
            |e| e["type"] == "token.expired" && e["data"]["token_id"] == week.deploy_1.as_str()
        ),
        "the scheduler noted deploy-1's end"
    );

    // Bad input: a clear error, the same exit code online and offline.
    for offline in [false, true] {
        let data_dir = week.latchd.data_dir.to_str().unwrap().to_owned();
        let mut args = vec!["audit", "events", "--type", "token.stolen"];
        if offline {
            args.extend_from_slice(&["--data-dir", &data_dir]);
        }
        let output = week
            .latchd
            .latch((!offline).then_some(week.admin.as_str()), &args);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("token.revoked"),
            "{}",
            stderr(&output)
        );

        let mut args = vec!["audit", "state", "--at", "99999"];
        if offline {
            args.extend_from_slice(&["--data-dir", &data_dir]);
        }
        let output = week
            .latchd
            .latch((!offline).then_some(week.admin.as_str()), &args);
        assert_eq!(output.status.code(), Some(7), "{}", stderr(&output));
        assert!(
            stderr(&output).contains("the log ends at position"),
            "{}",
            stderr(&output)
        );

        let mut args = vec!["audit", "token", "0195f3c2-0000-7000-8000-000000000000"];
        if offline {
            args.extend_from_slice(&["--data-dir", &data_dir]);
        }
        let output = week
            .latchd
            .latch((!offline).then_some(week.admin.as_str()), &args);
        assert_eq!(output.status.code(), Some(5), "{}", stderr(&output));
    }
    let _ = &week.clock;
}

#[test]
fn audit_events_follow_prints_new_events_as_they_are_appended_online_and_offline() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();
    for offline in [false, true] {
        let mut command = std::process::Command::new(latch_e2e::binary("latch"));
        command
            .args([
                "audit",
                "events",
                "--follow",
                "--type",
                "account.created",
                "--output",
                "ndjson",
            ])
            .env("LATCH_URL", &latchd.url)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if offline {
            command.args(["--data-dir", &data_dir]);
        } else {
            command.env("LATCH_TOKEN", &admin);
        }
        let mut follower = command.spawn().unwrap();
        let stdout = follower.stdout.take().unwrap();
        let (lines, received) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if lines.send(line).is_err() {
                    break;
                }
            }
        });
        // The bootstrap's account first, then one created while following.
        let first: Value =
            serde_json::from_str(&received.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
        assert_eq!(first["data"]["name"], "admin");
        let name = if offline {
            "late-offline"
        } else {
            "late-online"
        };
        created(latchd.post(
            "/v1/accounts",
            &admin,
            json!({"name": name, "role": "auditor"}),
        ));
        // (Offline, the account the online run created comes first.)
        loop {
            let next: Value =
                serde_json::from_str(&received.recv_timeout(Duration::from_secs(20)).unwrap())
                    .unwrap();
            assert_eq!(next["type"], "account.created");
            if next["data"]["name"] == name {
                break;
            }
        }
        let _ = follower.kill();
        let _ = follower.wait();
    }
}
