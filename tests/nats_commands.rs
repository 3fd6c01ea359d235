//! Commands over NATS (`latch.cmd.<command>`) against the real latchd and
//! nats-server: the same lifecycle as over HTTP gives the same events; bad
//! input gets the API's own problem replies and appends nothing; a retried
//! request with the same idempotency key appends once; NATS service
//! discovery answers; the CLI's `--transport nats` and the documented
//! Python example work.

use std::time::Duration;

use latch_e2e::{Latchd, ok, stderr};
use serde_json::{Value, json};

/// A NATS client for one test, on its own runtime.
struct Nats {
    runtime: tokio::runtime::Runtime,
    client: async_nats::Client,
}

/// A reply: the HTTP status it carries, its headers and its JSON body.
#[derive(Debug)]
struct Reply {
    status: u16,
    error_code: Option<String>,
    body: Value,
}

impl Nats {
    fn connect(url: &str) -> Self {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let client = runtime
            .block_on(async_nats::connect(url))
            .expect("connect to latchd's nats-server");
        Self { runtime, client }
    }

    fn command(&self, command: &str, token: Option<&str>, body: &[u8]) -> Reply {
        self.command_with(command, token, None, body)
    }

    fn command_with(
        &self,
        command: &str,
        token: Option<&str>,
        idempotency_key: Option<&str>,
        body: &[u8],
    ) -> Reply {
        let mut headers = async_nats::HeaderMap::new();
        if let Some(token) = token {
            headers.insert("Authorization", format!("Bearer {token}").as_str());
        }
        if let Some(key) = idempotency_key {
            headers.insert("Idempotency-Key", key);
        }
        // Every reply is sealed to a key of the request's own (replies that
        // carry a secret are refused without one).
        let opener = latch_bus::sealed_reply::ReplyOpener::new().unwrap();
        headers.insert("Latch-Reply-Key", opener.public_key().as_str());
        let message = self
            .runtime
            .block_on(async {
                tokio::time::timeout(Duration::from_secs(10), async {
                    // latchd is ready over HTTP before its command service has
                    // subscribed on NATS; a client retries "no responders"
                    // while latchd starts.
                    loop {
                        match self
                            .client
                            .request_with_headers(
                                format!("latch.cmd.{command}"),
                                headers.clone(),
                                body.to_vec().into(),
                            )
                            .await
                        {
                            Err(error)
                                if error.kind()
                                    == async_nats::client::RequestErrorKind::NoResponders =>
                            {
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            other => break other,
                        }
                    }
                })
                .await
            })
            .expect("a reply within 10 s")
            .expect("a reply");
        let header = |name: &str| {
            message
                .headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
        };
        let body = opener
            .open(
                &header("Latch-Sealed-Key").expect("the reply is sealed"),
                &message.payload,
            )
            .expect("the sealed reply opens with the request's key");
        Reply {
            status: header("Latch-Status")
                .expect("every reply carries Latch-Status")
                .parse()
                .unwrap(),
            error_code: header("Nats-Service-Error-Code"),
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        }
    }

    /// `$SRV.<verb>.latch`, answered by latchd's service.
    fn discover(&self, verb: &str) -> Value {
        let message = self
            .runtime
            .block_on(async {
                tokio::time::timeout(
                    Duration::from_secs(10),
                    self.client
                        .request(format!("$SRV.{verb}.latch"), Vec::new().into()),
                )
                .await
            })
            .expect("discovery answers within 10 s")
            .expect("a discovery reply");
        serde_json::from_slice(&message.payload).unwrap()
    }
}

/// The same lifecycle, through `send(command, body) -> reply body`.
fn lifecycle(send: &mut dyn FnMut(&str, Value) -> Value, suffix: &str) {
    send(
        "role.define",
        json!({"role": format!("cert-operator-{suffix}"), "permissions": ["certificates:issue", "certificates:read"]}),
    );
    let account = send(
        "account.create",
        json!({"name": format!("ci-{suffix}"), "role": format!("cert-operator-{suffix}")}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        "account.update",
        json!({"account_id": account, "description": "deploys"}),
    );
    let token = send(
        "token.issue",
        json!({"account_id": account, "name": "deploy", "scopes": ["certificates:issue"], "ttl": "30d"}),
    )["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = send("token.rotate", json!({"token_id": token, "grace": "1h"}))["id"]
        .as_str()
        .unwrap()
        .to_owned();
    send(
        "token.revoke",
        json!({"token_id": rotated, "reason": "leaked"}),
    );
    send(
        "account.disable",
        json!({"account_id": account, "reason": "investigating"}),
    );
    send("account.enable", json!({"account_id": account}));
    send("policy.set", json!({"max_ttl": "90d"}));
}

/// The events after `after`, without what differs between two runs: ids,
/// digests, times, names that carry the run's suffix.
fn events_after(latchd: &Latchd, admin: &str, after: u64, suffix: &str) -> Vec<Value> {
    let page = latchd.get(&format!("/v1/events?after={after}&limit=1000"), admin);
    page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| {
            let mut data = event["data"].clone();
            for field in [
                "account_id",
                "token_id",
                "successor_id",
                "rotated_from",
                "digest",
                "expires_at",
            ] {
                if data.get(field).is_some() {
                    data[field] = json!("…");
                }
            }
            let text = data.to_string().replace(suffix, "<run>");
            json!({"type": event["type"], "stream": event["stream"].as_str().unwrap().split('-').next(), "data": serde_json::from_str::<Value>(&text).unwrap()})
        })
        .collect()
}

#[test]
fn the_same_lifecycle_over_http_and_over_nats_appends_the_same_events() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let nats = Nats::connect(&latchd.nats().url());

    let before_http = latchd.head();
    lifecycle(
        &mut |command, body| {
            let route =
                latch_bus::CommandRoute::for_subject(&format!("latch.cmd.{command}")).unwrap();
            let mut fields = body.as_object().unwrap().clone();
            let param = route
                .param
                .and_then(|name| fields.remove(name))
                .map(|v| v.as_str().unwrap().to_owned());
            let reply = latchd.call(
                route.method,
                &route.path_with(param.as_deref()),
                Some(&admin),
                Some(&Value::Object(fields)),
            );
            assert!(
                (200..300).contains(&reply.status),
                "{command}: {:?}",
                reply.body
            );
            reply.body
        },
        "http",
    );
    let before_nats = latchd.head();
    lifecycle(
        &mut |command, body| {
            let reply = nats.command(command, Some(&admin), body.to_string().as_bytes());
            assert!((200..300).contains(&reply.status), "{command}: {reply:?}");
            assert_eq!(reply.error_code, None);
            reply.body
        },
        "nats",
    );
    let mut over_http = events_after(&latchd, &admin, before_http, "http");
    over_http.truncate((before_nats - before_http) as usize);
    let over_nats = events_after(&latchd, &admin, before_nats, "nats");
    assert_eq!(over_http.len(), 10, "{over_http:#?}");
    assert_eq!(over_http, over_nats);

    // Requests over NATS are audited like any other, from `nats` and the
    // reply inbox the client claims.
    let audit = latchd.get("/v1/audit?limit=1000", &admin);
    let records = audit.body["records"].as_array().unwrap();
    let over_nats: Vec<&Value> = records
        .iter()
        .filter(|r| {
            r["remote_addr"]
                .as_str()
                .is_some_and(|from| from.starts_with("nats (claimed: inbox _INBOX"))
        })
        .collect();
    assert_eq!(over_nats.len(), 9, "every command over NATS is recorded");
    assert!(
        over_nats
            .iter()
            .any(|r| r["route"] == "/v1/tokens/{id}/revoke" && r["status"] == 200)
    );
}

#[test]
fn bad_input_over_nats_gets_a_problem_reply_and_changes_nothing() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, auditor) = latch_e2e::account_with_token(&latchd, &admin, "reader", "auditor", None);
    let nats = Nats::connect(&latchd.nats().url());
    let head = latchd.head();
    let create = br#"{"name": "ci", "role": "auditor"}"#;

    let cases: Vec<(&str, Reply, u16, &str)> = vec![
        (
            "no token",
            nats.command("account.create", None, create),
            401,
            "Authorization",
        ),
        (
            "no token, asking for every token of every account",
            nats.command("token.list_all", None, b""),
            401,
            "Authorization",
        ),
        (
            "a bad token",
            nats.command("account.create", Some("latch_not-a-real-token"), create),
            401,
            "malformed token",
        ),
        (
            "a missing permission",
            nats.command("account.create", Some(&auditor), create),
            403,
            "accounts:write",
        ),
        (
            "malformed JSON",
            nats.command("account.create", Some(&admin), b"{\"name\": "),
            400,
            "",
        ),
        (
            "malformed JSON where the subject needs an id from it",
            nats.command("token.revoke", Some(&admin), b"{not json"),
            400,
            "token_id",
        ),
        (
            "an unknown field",
            nats.command(
                "account.create",
                Some(&admin),
                br#"{"name": "ci", "role": "auditor", "colour": "red"}"#,
            ),
            400,
            "colour",
        ),
        (
            "an unknown command subject",
            nats.command("token.steal", Some(&admin), b"{}"),
            404,
            "token.issue",
        ),
        (
            "an unknown account",
            nats.command(
                "token.issue",
                Some(&admin),
                br#"{"account_id": "01a20000-0000-7000-8000-000000000000", "name": "x"}"#,
            ),
            404,
            "",
        ),
    ];
    for (what, reply, status, says) in cases {
        assert_eq!(reply.status, status, "{what}: {reply:?}");
        assert_eq!(
            reply.error_code.as_deref(),
            Some(status.to_string().as_str()),
            "{what}: the NATS service error header"
        );
        assert_eq!(
            reply.body["status"], status,
            "{what}: problem JSON {reply:?}"
        );
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(detail.contains(says), "{what}: {detail}");
    }
    assert_eq!(latchd.head(), head, "nothing was appended");
    // latchd is still serving both ways.
    assert_eq!(nats.command("account.list", Some(&admin), b"").status, 200);
    assert_eq!(latchd.get("/v1/accounts", &admin).status, 200);
}

#[test]
fn a_lost_reply_retried_with_the_same_idempotency_key_appends_once() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let nats = Nats::connect(&latchd.nats().url());
    let (account, _, _) = latch_e2e::account_with_token(&latchd, &admin, "ci", "auditor", None);
    let body = json!({"account_id": account, "name": "deploy"}).to_string();
    let head = latchd.head();

    // The first request's reply goes to an inbox nobody reads: lost.
    nats.runtime.block_on(async {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Authorization", format!("Bearer {admin}").as_str());
        headers.insert("Idempotency-Key", "issue-deploy-1");
        let opener = latch_bus::sealed_reply::ReplyOpener::new().unwrap();
        headers.insert("Latch-Reply-Key", opener.public_key().as_str());
        nats.client
            .publish_with_reply_and_headers(
                "latch.cmd.token.issue",
                "_INBOX.lost-forever",
                headers,
                body.clone().into(),
            )
            .await
            .unwrap();
        nats.client.flush().await.unwrap();
    });
    let started = std::time::Instant::now();
    while latchd.head() == head {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the first request was served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let first_head = latchd.head();

    let retried = nats.command_with(
        "token.issue",
        Some(&admin),
        Some("issue-deploy-1"),
        body.as_bytes(),
    );
    // A replay answers 200 with the first answer, as over HTTP.
    assert_eq!(retried.status, 200, "{retried:?}");
    assert_eq!(latchd.head(), first_head, "the retry appended nothing");
    let tokens = latchd.get(&format!("/v1/accounts/{account}/tokens"), &admin);
    let deploys: Vec<&Value> = tokens.body["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["name"] == "deploy")
        .collect();
    assert_eq!(deploys.len(), 1);
    assert_eq!(deploys[0]["id"], retried.body["id"]);
}

#[test]
fn nats_service_discovery_answers_for_latch() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let nats = Nats::connect(&latchd.nats().url());
    nats.command("account.list", Some(&admin), b"");
    nats.command("token.steal", Some(&admin), b"");

    let ping = nats.discover("PING");
    assert_eq!(ping["name"], "latch");
    assert_eq!(ping["type"], "io.nats.micro.v1.ping_response");
    let info = nats.discover("INFO");
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subject"].as_str().unwrap())
        .collect();
    for subject in [
        "latch.cmd.token.issue",
        "latch.cmd.token.revoke",
        "latch.cmd.account.create",
    ] {
        assert!(subjects.contains(&subject), "{subject} in {subjects:?}");
    }
    let stats = nats.discover("STATS");
    let list = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["subject"] == "latch.cmd.account.list")
        .unwrap();
    assert_eq!(list["num_requests"], 1);
}

#[test]
fn the_cli_sends_commands_over_nats() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let nats_url = latchd.nats().url();
    let over_nats = |args: &[&str]| {
        let mut all = vec!["--transport", "nats", "--nats-url", nats_url.as_str()];
        all.extend_from_slice(args);
        latchd.latch(Some(&admin), &all)
    };
    ok(over_nats(&[
        "account",
        "create",
        "ci-deploy",
        "--role",
        "auditor",
    ]));
    let issued: Value = serde_json::from_str(&ok(over_nats(&[
        "token",
        "issue",
        "ci-deploy",
        "--name",
        "deploy",
        "--output",
        "json",
    ])))
    .unwrap();
    let token_id = issued["id"].as_str().unwrap();
    ok(over_nats(&[
        "token", "revoke", token_id, "--reason", "done",
    ]));
    let shown = latchd.get(&format!("/v1/tokens/{token_id}"), &admin);
    assert_eq!(shown.body["status"], "revoked");

    let refused = over_nats(&["account", "create", "Bad Name", "--role", "auditor"]);
    assert_eq!(refused.status.code(), Some(7), "{}", stderr(&refused));
    let streamed = over_nats(&["audit", "state", "--at", "1"]);
    assert_eq!(streamed.status.code(), Some(2), "{}", stderr(&streamed));
    assert!(stderr(&streamed).contains("--transport http"));
}

#[test]
fn the_documented_python_example_issues_and_revokes_a_token_over_nats() {
    let python = std::process::Command::new("python3")
        .args(["-c", "import nats"])
        .status();
    assert!(
        python.is_ok_and(|s| s.success()),
        "python3 with nats-py is needed: `pip install nats-py` (scripts/prereqs installs it)"
    );
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (account, _, _) =
        latch_e2e::account_with_token(&latchd, &admin, "ci-deploy", "auditor", None);
    let code = latch_e2e::doc_snippet("nats.md", "python-commands", "python");
    let output = std::process::Command::new("python3")
        .args(["-c", &code])
        .env("NATS_URL", latchd.nats().url())
        .env("LATCH_TOKEN", &admin)
        .env("ACCOUNT_ID", &account)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = String::from_utf8_lossy(&output.stdout);
    let token_id = printed
        .lines()
        .find_map(|line| line.strip_prefix("revoked "))
        .expect("the example prints the revoked token's id");
    let shown = latchd.get(&format!("/v1/tokens/{token_id}"), &admin);
    assert_eq!(shown.body["status"], "revoked", "{printed}");
    assert_eq!(shown.body["revoke_reason"], "example");
}
