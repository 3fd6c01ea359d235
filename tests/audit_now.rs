//! `latch audit who-can` and `latch audit state` without `--at`, and the
//! API's `GET /v1/audit/who-can` and `GET /v1/audit/state` without `at`,
//! answer for now: online and offline (`--data-dir`) alike.

use latch_e2e::{Latchd, ok, stderr};
use serde_json::{Value, json};

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| serde_json::from_str(line).expect("each line is JSON"))
        .collect()
}

#[test]
fn investigations_without_at_answer_for_now() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let role = latchd.call(
        "PUT",
        "/v1/roles/cert-operator",
        Some(&admin),
        Some(&json!({ "permissions": ["certificates:issue", "certificates:read"] })),
    );
    assert_eq!(role.status, 200, "{:?}", role.body);
    let account = latchd.post(
        "/v1/accounts",
        &admin,
        json!({ "name": "ci-pipeline", "role": "cert-operator" }),
    );
    assert_eq!(account.status, 201, "{:?}", account.body);
    let id = account.body["id"].as_str().unwrap();
    let issued = latchd.post(
        &format!("/v1/accounts/{id}/tokens"),
        &admin,
        json!({ "name": "deploy" }),
    );
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    let head = latchd.head();
    let data_dir = latchd.data_dir.to_str().unwrap().to_owned();

    for args in [
        vec!["audit", "who-can", "certificates:issue"],
        vec!["audit", "state"],
    ] {
        let mut online_args = args.clone();
        online_args.extend(["--output", "ndjson"]);
        let online = latchd.latch(Some(&admin), &online_args);
        assert!(online.status.success(), "{args:?}: {}", stderr(&online));
        let online = lines(&ok(online));
        let mut offline_args = online_args.clone();
        offline_args.extend(["--data-dir", &data_dir]);
        let offline = lines(&ok(latchd.latch(None, &offline_args)));

        for (how, answer) in [("online", &online), ("offline", &offline)] {
            assert_eq!(answer[0]["kind"], "moment", "{how} {args:?}: {answer:?}");
            assert_eq!(answer[0]["position"], head, "{how} {args:?}: {:?}", answer[0]);
            let accounts: Vec<&str> = answer
                .iter()
                .filter(|l| l["kind"] == "account")
                // who-can names it `account_name`, state `name`.
                .map(|l| {
                    l["account_name"]
                        .as_str()
                        .or(l["name"].as_str())
                        .unwrap_or_default()
                })
                .collect();
            assert!(
                accounts.contains(&"ci-pipeline"),
                "{how} {args:?}: {answer:?}"
            );
        }
        // Beyond the moment (whose time is each side's clock), the same lines.
        assert_eq!(online[1..], offline[1..], "{args:?}");
    }

    for path in [
        "/v1/audit/who-can?permission=certificates:issue",
        "/v1/audit/state",
        "/v1/audit/state?active_only=true",
    ] {
        let reply = latchd.get(path, &admin);
        assert_eq!(reply.status, 200, "{path}: {:?}", reply.body);
        assert_eq!(reply.content_type, "application/x-ndjson", "{path}");
        let text = reply.body.as_str().unwrap_or_default();
        let answer = lines(text);
        assert_eq!(answer[0]["kind"], "moment", "{path}");
        assert_eq!(answer[0]["position"], head, "{path}");
    }
    // `permission` stays required.
    let missing = latchd.get("/v1/audit/who-can", &admin);
    assert_eq!(missing.status, 400, "{:?}", missing.body);
    assert_eq!(missing.content_type, "application/problem+json");
}
