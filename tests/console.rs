//! The web console at /ui, in a real headless Chromium (Debian's, driven
//! through chromedriver) against the real latchd and, for the leak, the
//! example certificate service: sign in, create an account, issue a token
//! (secret shown once), revoke it and watch the service refuse it, disable
//! the account, read the token's story, ask who can; an auditor sees no
//! write control; a bad token cannot sign in; an expired session asks to
//! sign in again; nothing secret is left in the page, the browser's
//! storage, cookies or the URL. And the session's defences at the HTTP
//! level: CSRF, chained sessions, a weak token's session, revocation.
//!
//! `LATCH_CONSOLE_SCREENSHOTS=<dir>` saves screenshots of the main pages
//! there (how docs/console/*.png are made).

#[path = "support/webdriver.rs"]
mod webdriver;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use latch_e2e::{CertificateService, Latchd, account_with_token};
use serde_json::{Value, json};
use webdriver::Browser;

fn screenshot(browser: &Browser, name: &str) {
    if let Some(dir) = std::env::var_os("LATCH_CONSOLE_SCREENSHOTS") {
        let dir = PathBuf::from(dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        browser.screenshot(&dir.join(format!("{name}.png")));
    }
}

fn sign_in(browser: &Browser, latchd: &Latchd, token: &str) {
    browser.open(&format!("{}/ui", latchd.url));
    let input = browser.find("input[name=token]");
    browser.type_into(&input, token);
    browser.click(&browser.find("main form button[type=submit]"));
}

/// Clicks the button reading `label` in the open dialog.
fn confirm(browser: &Browser, label: &str) {
    let button = browser.find_with_text("dialog[open] button", label);
    browser.click(&button);
}

#[track_caller]
fn until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Nothing the browser keeps or shows holds `secret`.
#[track_caller]
fn nowhere_in_the_browser(browser: &Browser, secret: &str) {
    assert!(!browser.source().contains(secret), "the secret is in the page");
    assert!(!browser.url().contains("latch_"), "a token in the URL: {}", browser.url());
    let storage = browser.script(
        "return JSON.stringify({ local: Object.assign({}, localStorage), session: Object.assign({}, sessionStorage), history: history.length })",
        json!([]),
    );
    let storage = storage.as_str().unwrap_or("");
    assert!(!storage.contains(secret), "the secret is in web storage: {storage}");
    assert!(storage.contains("\"local\":{}") && storage.contains("\"session\":{}"), "web storage is used: {storage}");
    for cookie in browser.cookies() {
        let value = cookie["value"].as_str().unwrap_or("");
        assert!(!value.contains("latch_"), "a token in a cookie: {cookie}");
        assert_eq!(cookie["name"], "latch_console", "an unexpected cookie: {cookie}");
        assert_eq!(cookie["httpOnly"], true, "{cookie}");
        assert_eq!(cookie["sameSite"], "Strict", "{cookie}");
    }
}

#[test]
fn an_administrator_handles_a_leak_from_the_console() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let role = json!({ "permissions": ["certificates:issue", "certificates:read"], "description": "issues and reads certificates" });
    assert_eq!(
        latchd.call("PUT", "/v1/roles/cert-operator", Some(&admin), Some(&role)).status,
        200
    );
    let service = CertificateService::start(&latchd);
    let browser = Browser::start();

    // A bad token cannot sign in; the page says why and keeps nothing.
    browser.open(&format!("{}/ui", latchd.url));
    browser.find("input[name=token]");
    screenshot(&browser, "sign-in");
    sign_in(&browser, &latchd, "latch_notarealtokenatall");
    browser.wait_for_text("not accepted");
    assert!(browser.all("nav").is_empty(), "signed in with a bad token");
    // Its last character changed (to another: an admin token that ends
    // in `x` once made this "forgery" the admin's own token).
    let swap = if admin.ends_with('x') { 'y' } else { 'x' };
    let forged = format!("{}{swap}", &admin[..admin.len() - 1]);
    assert_ne!(forged, admin);
    sign_in(&browser, &latchd, &forged);
    browser.wait_for_text("not accepted");
    assert_eq!(browser.property(&browser.find("input[name=token]"), "value"), "");

    // The administrator signs in and creates an account.
    sign_in(&browser, &latchd, &admin);
    browser.find_with_text("main table a", "admin");
    browser.click(&browser.find_with_text("summary", "New service account"));
    browser.type_into(&browser.find("input[name=name]"), "ci-deploy");
    browser.click(&browser.find("select[name=role] option[value=cert-operator]"));
    browser.type_into(&browser.find("input[name=description]"), "the deploy pipeline");
    browser.click(&browser.find_with_text("main form button", "Create account"));
    browser.find_with_text("h1", "ci-deploy");
    let account_id = browser.url().rsplit('/').next().unwrap().to_owned();

    // Issues a token: its secret is shown once, with a copy button.
    browser.click(&browser.find_with_text("summary", "Issue a token"));
    browser.type_into(&browser.find("input[name=token-name]"), "pipeline");
    browser.type_into(&browser.find("input[name=scopes]"), "certificates:issue");
    browser.type_into(&browser.find("input[name=ttl]"), "30d");
    browser.click(&browser.find_with_text("main form button", "Issue token"));
    let shown = browser.find("output.secret-value");
    let secret = browser.text(&shown);
    assert!(secret.starts_with("latch_"), "{secret}");
    browser.find_with_text(".secret-panel button", "Copy");
    browser.wait_for_text("only time Latch shows it");
    screenshot(&browser, "token-issued");
    until("the service accepts the new token", Duration::from_secs(30), || {
        service.issue(&secret) == 201
    });
    let token_id = latchd.get(&format!("/v1/accounts/{account_id}/tokens"), &admin).body["tokens"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Reloaded, the page no longer has it, nor does anything the browser keeps.
    browser.reload();
    browser.find_with_text("main table", "pipeline");
    assert!(browser.all("output.secret-value").is_empty());
    nowhere_in_the_browser(&browser, &secret);
    nowhere_in_the_browser(&browser, &admin);
    screenshot(&browser, "account");

    // Who could issue certificates now: the new token.
    browser.click(&browser.find_with_text("nav a", "Who can"));
    browser.type_into(&browser.find("input[name=permission]"), "certificates:issue");
    browser.click(&browser.find_with_text("main form button", "Who could?"));
    browser.find_with_text(".who-can-answer table a", "pipeline");
    browser.find_with_text(".who-can-answer table a", "ci-deploy");
    screenshot(&browser, "who-can");

    // Revokes it from the console, with a reason: the service refuses it.
    browser.open(&format!("{}/ui#/accounts/{account_id}", latchd.url));
    browser.click(&browser.find("button[aria-label='Revoke token pipeline']"));
    let confirm_button = browser.find_with_text("dialog[open] button", "Revoke");
    assert_eq!(browser.property(&confirm_button, "disabled"), true, "revoking needs a reason");
    browser.type_into(&browser.find("dialog[open] textarea[name=reason]"), "leaked in a CI log");
    let revoked_at = Instant::now();
    confirm(&browser, "Revoke");
    until("the service refuses the revoked token", Duration::from_secs(10), || {
        service.issue(&secret) == 401
    });
    eprintln!("console click to refusal at the service: {:?}", revoked_at.elapsed());
    browser.find_with_text("main table .badge", "revoked");
    let token = latchd.get(&format!("/v1/tokens/{token_id}"), &admin).body;
    assert_eq!(token["revoke_reason"], "leaked in a CI log", "{token}");

    // Disables the account with a reason.
    browser.click(&browser.find_with_text("main button", "Disable account"));
    browser.type_into(&browser.find("dialog[open] textarea[name=reason]"), "suspected compromise");
    confirm(&browser, "Disable");
    browser.find_with_text("main .badge", "disabled");
    browser.wait_for_text("suspected compromise");
    let account = latchd.get(&format!("/v1/accounts/{account_id}"), &admin).body;
    assert_eq!(account["status"], "disabled");
    assert_eq!(account["disabled_reason"], "suspected compromise");

    // The token's story, as `latch audit token` tells it.
    browser.click(&browser.find_with_text("main table a", "Story"));
    browser.find_with_text("ol.story li", "token.issued");
    browser.find_with_text("ol.story li", "token.revoked");
    browser.find_with_text("ol.story li", "leaked in a CI log");
    screenshot(&browser, "token-story");

    // The live feed shows what happened, and what happens next.
    browser.click(&browser.find_with_text("nav a", "Live events"));
    browser.find_with_text("ol.feed li", "account.disabled");
    browser.wait_for_text("Live: following the log");
    latchd.post("/v1/accounts", &admin, json!({ "name": "late-arrival", "role": "auditor" }));
    browser.find_with_text("ol.feed li", "late-arrival");
    screenshot(&browser, "events");

    // A token that expires in three days is on the watch list.
    let (release, _, _) = account_with_token(&latchd, &admin, "release-bot", "cert-operator", None);
    let short = latchd.post(&format!("/v1/accounts/{release}/tokens"), &admin, json!({ "name": "weekend-job", "ttl": "3d" }));
    assert_eq!(short.status, 201);
    browser.click(&browser.find_with_text("nav a", "Stale & expiring"));
    browser.find_with_text("#expiring table", "weekend-job");
    screenshot(&browser, "attention");
    browser.click(&browser.find_with_text("nav a", "Roles & policy"));
    browser.find_with_text("main table", "cert-operator");
    screenshot(&browser, "roles");
    browser.click(&browser.find_with_text("nav a", "Accounts"));
    browser.find_with_text("main table a", "admin");
    screenshot(&browser, "accounts");
    // Readable on a phone.
    browser.resize(390, 844);
    browser.find_with_text("main table a", "admin");
    screenshot(&browser, "accounts-phone");
    browser.resize(1280, 900);

    // Keyboard: Tab reaches the navigation, Enter follows a link.
    browser.script("document.querySelector('nav a[href=\"#/roles\"]').focus()", json!([]));
    browser.keys("\u{E007}");
    browser.find_with_text("h1", "Roles and policy");

    // Signing out ends the session on latchd, not only in the page.
    browser.click(&browser.find_with_text("header button", "Sign out"));
    browser.find("input[name=token]");
    browser.reload();
    browser.find("input[name=token]");
    nowhere_in_the_browser(&browser, &admin);
}

#[test]
fn an_auditor_sees_everything_and_no_write_control() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, auditor) = account_with_token(&latchd, &admin, "security-review", "auditor", None);
    let (bot, bot_token_id, _) = account_with_token(&latchd, &admin, "ci-bot", "auditor", None);
    let browser = Browser::start();
    sign_in(&browser, &latchd, &auditor);
    browser.find_with_text("main table a", "ci-bot");
    assert!(
        browser.all("main details").is_empty() && browser.all("main button").is_empty(),
        "an auditor is offered a write control on the accounts page"
    );
    browser.open(&format!("{}/ui#/accounts/{bot}", latchd.url));
    browser.find_with_text("main table", "ci-bot-token");
    browser.find_with_text("main table a", "Story");
    assert!(browser.all("main details").is_empty(), "an issue form for an auditor");
    let buttons: Vec<String> = browser.all("main button").iter().map(|b| browser.text(b)).collect();
    assert!(buttons.is_empty(), "an auditor is offered {buttons:?}");
    // Investigations are what an auditor is for.
    browser.open(&format!("{}/ui#/tokens/{bot_token_id}", latchd.url));
    browser.find_with_text("ol.story li", "token.issued");
    browser.click(&browser.find_with_text("nav a", "Who can"));
    browser.type_into(&browser.find("input[name=permission]"), "audit:read");
    browser.click(&browser.find_with_text("main form button", "Who could?"));
    browser.find_with_text(".who-can-answer table a", "security-review");
    browser.click(&browser.find_with_text("nav a", "Stale & expiring"));
    browser.find("#rotation-due");
}

#[test]
fn an_expired_session_asks_to_sign_in_again() {
    let latchd = Latchd::start_with_args(&["--console-session-max-age".to_owned(), "2s".to_owned()]);
    let admin = latchd.admin_token();
    let browser = Browser::start();
    sign_in(&browser, &latchd, &admin);
    browser.find_with_text("main table a", "admin");
    std::thread::sleep(Duration::from_millis(2500));
    browser.click(&browser.find_with_text("nav a", "Roles & policy"));
    browser.find("input[name=token]");
    browser.wait_for_text("expired");
    screenshot(&browser, "session-expired");
    // And a reload does not bring it back.
    browser.reload();
    browser.find("input[name=token]");
}

/// What signing in over HTTP gives: the cookie and the CSRF token.
fn session(latchd: &Latchd, token: &str) -> (String, String) {
    let reply = latchd.raw("POST", "/ui/session", Some(token), &[], Vec::new());
    assert_eq!(reply.status, 201, "{:?}", reply.body);
    let cookie = reply.header("set-cookie").expect("a cookie").to_owned();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let pair = cookie.split(';').next().unwrap().to_owned();
    let text = reply.body.to_string();
    assert!(!text.contains(token) && !cookie.contains(token), "the token came back");
    (pair, reply.body["csrf"].as_str().unwrap().to_owned())
}

fn with_session(latchd: &Latchd, method: &str, path: &str, cookie: &str, csrf: Option<&str>, body: Option<Value>) -> latch_e2e::Reply {
    let mut headers = vec![("Cookie", cookie)];
    if let Some(csrf) = csrf {
        headers.push(("X-Latch-Csrf", csrf));
    }
    let body = body.map(|b| serde_json::to_vec(&b).unwrap()).unwrap_or_default();
    latchd.raw(method, path, None, &headers, body)
}

#[test]
fn a_console_session_is_no_easier_to_abuse_than_its_token() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (cookie, csrf) = session(&latchd, &admin);

    // A cookie alone acts on nothing: what a forged cross-site request has.
    let head = latchd.head();
    for (method, path, body) in [
        ("GET", "/v1/accounts", None),
        ("POST", "/v1/accounts", Some(json!({ "name": "csrf-made", "role": "admin" }))),
        ("DELETE", "/ui/session", None),
    ] {
        let reply = with_session(&latchd, method, path, &cookie, None, body.clone());
        assert_eq!(reply.status, 401, "{method} {path} with the cookie alone: {:?}", reply.body);
        let reply = with_session(&latchd, method, path, &cookie, Some("guessed"), body);
        assert_eq!(reply.status, 401, "{method} {path} with a wrong CSRF token");
    }
    // A second session cookie planted beside ours (a sibling subdomain can
    // set one) makes the request refused, not resolved to either.
    let (planted, planted_csrf) = session(&latchd, &admin);
    let both = format!("{planted}; {cookie}");
    for csrf in [&csrf, &planted_csrf] {
        let reply = with_session(&latchd, "GET", "/v1/accounts", &both, Some(csrf), None);
        assert_eq!(reply.status, 401, "{:?}", reply.body);
    }
    assert_eq!(with_session(&latchd, "GET", "/ui/session", &both, None, None).status, 401);
    // Another session's CSRF token does not fit this cookie.
    let (other_cookie, other_csrf) = session(&latchd, &admin);
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", &cookie, Some(&other_csrf), None).status, 401);
    assert_eq!(latchd.head(), head, "a refused session request appended");
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", &other_cookie, Some(&other_csrf), None).status, 200);

    // With both, it is the token: it may do what the token may.
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", &cookie, Some(&csrf), None).status, 200);
    // The console reads its session back with the cookie, changing nothing.
    let resumed = with_session(&latchd, "GET", "/ui/session", &cookie, None, None);
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.body["csrf"], csrf.as_str());
    assert_eq!(resumed.body["account_name"], "admin");
    assert_eq!(latchd.raw("GET", "/ui/session", None, &[], Vec::new()).status, 401);
    // Only the console's own page may read it: not a same-site page, which
    // could otherwise keep the session from idling out.
    for site in ["same-site", "cross-site"] {
        let reply = latchd.raw("GET", "/ui/session", None, &[("Cookie", &cookie), ("Sec-Fetch-Site", site)], Vec::new());
        assert_eq!(reply.status, 403, "Sec-Fetch-Site: {site}");
        assert!(!reply.body.to_string().contains(&csrf));
    }
    let own = latchd.raw("GET", "/ui/session", None, &[("Cookie", &cookie), ("Sec-Fetch-Site", "same-origin")], Vec::new());
    assert_eq!(own.status, 200);
    // A session cannot open another (which would outlive it).
    assert_eq!(with_session(&latchd, "POST", "/ui/session", &cookie, Some(&csrf), None).status, 400);

    // A weak token's session is as weak as the token.
    let (_, weak_token_id, weak) = account_with_token(&latchd, &admin, "viewer", "auditor", None);
    let (weak_cookie, weak_csrf) = session(&latchd, &weak);
    let head = latchd.head();
    let escalate = with_session(&latchd, "POST", "/v1/accounts", &weak_cookie, Some(&weak_csrf),
        Some(json!({ "name": "escalated", "role": "admin" })));
    assert_eq!(escalate.status, 403, "{:?}", escalate.body);
    let revoke_admin = with_session(&latchd, "POST", &format!("/v1/accounts/{}/disable", latchd.admin_account_id()),
        &weak_cookie, Some(&weak_csrf), Some(json!({ "reason": "x" })));
    assert_eq!(revoke_admin.status, 403);
    assert_eq!(latchd.head(), head, "a weak session appended");

    // Revoking the token ends its sessions at once.
    assert_eq!(latchd.post(&format!("/v1/tokens/{weak_token_id}/revoke"), &admin, json!({ "reason": "test" })).status, 200);
    let ended = with_session(&latchd, "GET", "/v1/accounts", &weak_cookie, Some(&weak_csrf), None);
    assert_eq!(ended.status, 401);
    assert!(ended.body["detail"].as_str().unwrap().contains("revoked"), "{:?}", ended.body);
    assert_eq!(with_session(&latchd, "GET", "/ui/session", &weak_cookie, None, None).status, 401);

    // Sign-in attempts, good and bad, are in the activity audit.
    assert_eq!(latchd.raw("POST", "/ui/session", Some("latch_bad"), &[], Vec::new()).status, 401);
    let audit = latchd.get("/v1/audit?limit=1000", &admin).body;
    let sign_ins: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["route"] == "/ui/session" && r["method"] == "POST")
        .collect();
    assert!(sign_ins.iter().any(|r| r["status"] == 201), "{sign_ins:?}");
    assert!(sign_ins.iter().any(|r| r["status"] == 401), "{sign_ins:?}");
    // And so is each resumed session, with its token.
    let resumed: Vec<&Value> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["route"] == "/ui/session" && r["method"] == "GET")
        .collect();
    assert!(resumed.iter().any(|r| r["status"] == 200 && r["token_id"].is_string()), "{resumed:?}");
    assert!(resumed.iter().any(|r| r["status"] == 401), "{resumed:?}");

    // Signing out ends it on latchd.
    let out = with_session(&latchd, "DELETE", "/ui/session", &cookie, Some(&csrf), None);
    assert_eq!(out.status, 204);
    assert!(out.header("set-cookie").unwrap().contains("Max-Age=0"));
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", &cookie, Some(&csrf), None).status, 401);

    // The page is served with a policy that allows no inline or foreign script.
    let page = latchd.raw("GET", "/ui", None, &[], Vec::new());
    assert_eq!(page.status, 200);
    let policy = page.header("content-security-policy").unwrap();
    for directive in ["script-src 'self'", "frame-ancestors 'none'", "default-src 'none'"] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert!(!policy.contains("unsafe"), "{policy}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    assert_eq!(latchd.raw("GET", "/ui/js/nothing.js", None, &[], Vec::new()).status, 404);
    assert_eq!(latchd.raw("GET", "/ui/../Cargo.toml", None, &[], Vec::new()).status, 404);
}

#[test]
fn behind_https_the_cookie_is_secure_and_host_only() {
    let latchd = Latchd::start_with_args(&["--console-secure-cookie".to_owned()]);
    let admin = latchd.admin_token();
    let reply = latchd.raw("POST", "/ui/session", Some(&admin), &[], Vec::new());
    assert_eq!(reply.status, 201);
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.starts_with("__Host-latch_console="), "{cookie}");
    assert!(cookie.contains("; Secure"), "{cookie}");
    let pair = cookie.split(';').next().unwrap();
    let csrf = reply.body["csrf"].as_str().unwrap();
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", pair, Some(csrf), None).status, 200);
    // A plain `latch_console` cookie (one a sibling subdomain could set) is
    // not a session here.
    let plain = pair.replace("__Host-latch_console", "latch_console");
    assert_eq!(with_session(&latchd, "GET", "/v1/accounts", &plain, Some(csrf), None).status, 401);
}

#[test]
fn token_counts_and_last_use_need_tokens_read() {
    let latchd = Latchd::start();
    let admin = latchd.admin_token();
    let (_, _, accounts_only) =
        account_with_token(&latchd, &admin, "directory", "auditor", Some(vec!["accounts:read"]));
    let listed = latchd.get("/v1/accounts", &accounts_only).body;
    for account in listed["accounts"].as_array().unwrap() {
        assert!(account.get("live_tokens").is_none(), "{account}");
        assert!(account.get("last_used_at").is_none(), "{account}");
    }
    let listed = latchd.get("/v1/accounts", &admin).body;
    assert!(listed["accounts"].as_array().unwrap().iter().all(|a| a["live_tokens"].is_u64()));
    assert_eq!(latchd.get("/v1/tokens", &accounts_only).status, 403);
}

