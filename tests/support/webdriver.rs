//! A headless Chromium (Debian's `chromium` and `chromium-driver`) driven
//! through chromedriver's W3C WebDriver protocol: JSON over HTTP, a few
//! dozen lines with ureq, so `cargo test` needs no Node toolchain.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const INSTALL: &str = "chromium and chromedriver are needed for the console's browser tests: \
     run `scripts/prereqs --for-tests` or `sudo apt-get install chromium chromium-driver`";

/// One browser, with its own empty profile; closed on drop.
pub struct Browser {
    driver: Child,
    base: String,
    agent: ureq::Agent,
    _profile: tempfile::TempDir,
}

/// An element the page holds (a WebDriver element reference).
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    pub fn start() -> Self {
        for program in ["chromium", "chromedriver"] {
            let found = Command::new("sh")
                .args(["-c", &format!("command -v {program}")])
                .output()
                .is_ok_and(|o| o.status.success());
            assert!(found, "{program} is not installed. {INSTALL}");
        }
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start chromedriver: {e}. {INSTALL}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let root = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        loop {
            let ready = agent
                .get(format!("{root}/status"))
                .call()
                .ok()
                .and_then(|mut r| r.body_mut().read_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let capabilities = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        }}});
        let mut session = agent
            .post(format!("{root}/session"))
            .send_json(&capabilities)
            .expect("chromedriver answers");
        let session: Value = session.body_mut().read_json().expect("a session");
        let id = session["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {session}. {INSTALL}"))
            .to_owned();
        Browser {
            driver,
            base: format!("{root}/session/{id}"),
            agent,
            _profile: profile,
        }
    }

    fn send(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let response = match method {
            "GET" => self.agent.get(&url).call(),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.post(&url).send_json(body.unwrap_or(json!({}))),
        };
        let mut response = response.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let value: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        value["value"].clone()
    }

    fn checked(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let value = self.send(method, path, body);
        if let Some(error) = value.get("error") {
            panic!("WebDriver {method} {path}: {error}: {}", value["message"]);
        }
        value
    }

    pub fn open(&self, url: &str) {
        self.checked("POST", "/url", Some(json!({ "url": url })));
    }

    pub fn reload(&self) {
        self.checked("POST", "/refresh", None);
    }

    pub fn url(&self) -> String {
        self.checked("GET", "/url", None).as_str().unwrap_or("").to_owned()
    }

    /// The page's markup as it is now.
    pub fn source(&self) -> String {
        self.checked("GET", "/source", None).as_str().unwrap_or("").to_owned()
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page.
    pub fn script(&self, script: &str, args: Value) -> Value {
        self.checked("POST", "/execute/sync", Some(json!({ "script": script, "args": args })))
    }

    /// Every cookie the page can be sent, HttpOnly ones included.
    pub fn cookies(&self) -> Vec<Value> {
        self.checked("GET", "/cookie", None)
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    pub fn resize(&self, width: u32, height: u32) {
        self.checked("POST", "/window/rect", Some(json!({ "width": width, "height": height })));
    }

    /// A PNG of the viewport, written to `file`.
    pub fn screenshot(&self, file: &Path) {
        use base64::Engine;
        let data = self.checked("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap_or(""))
            .unwrap();
        std::fs::write(file, png).unwrap();
    }

    fn find_now(&self, css: &str) -> Vec<Element> {
        let found = self.send("POST", "/elements", Some(json!({ "using": "css selector", "value": css })));
        found
            .as_array()
            .map(|all| {
                all.iter()
                    .filter_map(|e| e[ELEMENT].as_str().map(|id| Element(id.to_owned())))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The elements matching `css` now (none is fine).
    pub fn all(&self, css: &str) -> Vec<Element> {
        self.find_now(css)
    }

    /// The first element matching `css`, waiting up to 15 s for it.
    #[track_caller]
    pub fn find(&self, css: &str) -> Element {
        self.wait_for(&format!("an element {css}"), || self.find_now(css).into_iter().next())
    }

    /// The first element matching `css` whose text contains `text`.
    #[track_caller]
    pub fn find_with_text(&self, css: &str, text: &str) -> Element {
        self.wait_for(&format!("{css} reading {text:?}"), || {
            self.find_now(css)
                .into_iter()
                .find(|e| self.text(e).contains(text))
        })
    }

    /// Waits up to 15 s until `probe` gives something.
    #[track_caller]
    pub fn wait_for<T>(&self, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
        let started = Instant::now();
        loop {
            if let Some(found) = probe() {
                return found;
            }
            if started.elapsed() > Duration::from_secs(15) {
                let text = self.script("return document.body.innerText", json!([]));
                panic!("timed out waiting for {what}; the page reads:\n{}", text.as_str().unwrap_or(""));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until the page's visible text contains `text`.
    #[track_caller]
    pub fn wait_for_text(&self, text: &str) {
        self.wait_for(&format!("the text {text:?}"), || {
            self.body_text().contains(text).then_some(())
        });
    }

    /// What the page shows (its body's rendered text).
    pub fn body_text(&self) -> String {
        self.script("return document.body.innerText", json!([]))
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn text(&self, element: &Element) -> String {
        self.send("GET", &format!("/element/{}/text", element.0), None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn click(&self, element: &Element) {
        self.checked("POST", &format!("/element/{}/click", element.0), None);
    }

    /// Types `text` into the element (after what it holds).
    pub fn type_into(&self, element: &Element, text: &str) {
        self.checked(
            "POST",
            &format!("/element/{}/value", element.0),
            Some(json!({ "text": text })),
        );
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E007}" for Enter) on the
    /// focused element.
    pub fn keys(&self, keys: &str) {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|c| {
                [
                    json!({ "type": "keyDown", "value": c.to_string() }),
                    json!({ "type": "keyUp", "value": c.to_string() }),
                ]
            })
            .collect();
        self.checked(
            "POST",
            "/actions",
            Some(json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] })),
        );
        self.send("DELETE", "/actions", None);
    }

    /// The property `name` of the element (e.g. `value`, `disabled`).
    pub fn property(&self, element: &Element, name: &str) -> Value {
        self.send("GET", &format!("/element/{}/property/{name}", element.0), None)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.agent.delete(&self.base).call();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
