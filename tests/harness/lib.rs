//! Test harness for the end-to-end tests: starts the real `latchd` binary
//! on a free port with a temporary data directory, talks to it over HTTP,
//! and runs the real `latch` binary against it.
//!
//! The binaries are the ones `cargo test --workspace` builds next to this
//! test executable (target/<profile>/latchd and latch).
#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

mod ha_cluster;
pub use ha_cluster::{HaCluster, HaNode, TEST_SIGNING_KEY, call as call_node};

/// Where cargo put the workspace's binaries.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>");
    let path = dir.join(name);
    // `cargo test -p latch-e2e` alone does not rebuild the binaries: use
    // `cargo test --workspace` (scripts/test), which builds them first.
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (scripts/test) so it is built",
        path.display()
    );
    path
}

/// Collects what `child` prints (stdout and stderr, piped) as it prints it.
fn capture_output(child: &mut Child) -> Arc<Mutex<String>> {
    let logs = Arc::new(Mutex::new(String::new()));
    for stream in [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        child.stderr.take().map(|s| Box::new(s) as _),
    ]
    .into_iter()
    .flatten()
    {
        let logs = logs.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                let mut all = logs.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
    }
    logs
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind a free port")
        .local_addr()
        .expect("address")
        .port()
}

/// A running latchd.
pub struct Latchd {
    child: Option<Child>,
    /// latchd's own broker: tests never touch a shared one.
    nats: Option<latch_testkit::NatsServer>,
    pub url: String,
    pub data_dir: PathBuf,
    _temp: Option<tempfile::TempDir>,
    logs: Arc<Mutex<String>>,
    agent: ureq::Agent,
    /// The CA `latch` is told to trust (HTTPS).
    ca_file: Option<PathBuf>,
}

/// An HTTP answer: status, JSON body (Null when empty), and headers.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub body: Value,
    pub content_type: String,
    pub headers: Vec<(String, String)>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl Latchd {
    /// Starts latchd on a fresh temporary data directory.
    pub fn start() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().to_owned();
        let mut latchd = Self::start_in(&data_dir);
        latchd._temp = Some(temp);
        latchd
    }

    /// Starts latchd on a fresh temporary data directory with these extra
    /// flags.
    pub fn start_with_args(args: &[String]) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let nats = latch_testkit::NatsServer::start();
        let mut all = vec!["--nats-url".to_owned(), nats.url()];
        all.extend_from_slice(args);
        let mut latchd = Self::launch_with(temp.path(), nats, "127.0.0.1", &all, &[], None);
        latchd._temp = Some(temp);
        latchd
    }

    /// Starts latchd on `data_dir` (kept by the caller), e.g. to restart.
    pub fn start_in(data_dir: &Path) -> Self {
        Self::start_with(data_dir, latch_testkit::NatsServer::start())
    }

    /// Starts latchd on `data_dir`, relaying to `nats`.
    pub fn start_with(data_dir: &Path, nats: latch_testkit::NatsServer) -> Self {
        Self::launch(data_dir, nats, "127.0.0.1", None)
    }

    /// Starts latchd on a fresh data directory reading "now" from
    /// `clock_file` (one RFC 3339 time; rewrite it to move time), so a test
    /// can script days of activity against the real binary.
    pub fn start_with_clock(clock_file: &Path) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut latchd = Self::launch(
            temp.path(),
            latch_testkit::NatsServer::start(),
            "127.0.0.1",
            Some(clock_file),
        );
        latchd._temp = Some(temp);
        latchd
    }

    /// Starts latchd on a fresh data directory, listening on IPv6 loopback
    /// (`[::1]`), so requests come from `::1`.
    pub fn start_ipv6() -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut latchd = Self::launch(
            temp.path(),
            latch_testkit::NatsServer::start(),
            "[::1]",
            None,
        );
        latchd._temp = Some(temp);
        latchd
    }

    fn launch(
        data_dir: &Path,
        nats: latch_testkit::NatsServer,
        host: &str,
        clock_file: Option<&Path>,
    ) -> Self {
        let mut extra = vec!["--nats-url".to_owned(), nats.url()];
        if let Some(clock_file) = clock_file {
            extra.extend(["--clock-file".to_owned(), clock_file.display().to_string()]);
        }
        Self::launch_with(data_dir, nats, host, &extra, &[], None)
    }

    /// Starts latchd on `data_dir` with these extra arguments and
    /// environment (e.g. NATS credentials, TLS). With `tls_ca`, latchd is
    /// expected to serve HTTPS with a certificate that CA (PEM) signed, and
    /// the harness and `latch` trust it.
    pub fn launch_with(
        data_dir: &Path,
        nats: latch_testkit::NatsServer,
        host: &str,
        args: &[String],
        env: &[(&str, &str)],
        tls_ca: Option<&Path>,
    ) -> Self {
        // latchd picks its own port (`:0`) and names it when ready: a port
        // picked free here could be taken before latchd binds it (once its
        // state is rebuilt), and another test's latchd would answer for it.
        let scheme = if tls_ca.is_some() { "https" } else { "http" };
        let mut command = Command::new(binary("latchd"));
        command.args(args);
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(format!("{host}:0"))
            .env("LATCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start latchd");
        let logs = capture_output(&mut child);
        let mut tls = ureq::tls::TlsConfig::builder();
        if let Some(ca) = tls_ca {
            let pem = std::fs::read(ca).expect("CA file");
            let certs: Vec<_> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(cert)) => Some(cert),
                    _ => None,
                })
                .collect();
            tls = tls.root_certs(ureq::tls::RootCerts::Specific(Arc::new(certs)));
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .tls_config(tls.build())
            .build()
            .into();
        let mut latchd = Self {
            ca_file: tls_ca.map(Path::to_owned),
            child: Some(child),
            nats: Some(nats),
            url: String::new(),
            data_dir: data_dir.to_owned(),
            _temp: None,
            logs,
            agent,
        };
        latchd.url = latchd.wait_ready(&format!("{scheme}://{host}:"));
        latchd
    }

    /// Waits for latchd's "latchd ready" line and returns the URL it names
    /// (`<prefix><port>`), once `/readyz` there answers 200.
    fn wait_ready(&mut self, prefix: &str) -> String {
        let started = Instant::now();
        loop {
            let logs = self.logs();
            let named = logs
                .lines()
                .filter(|line| line.contains("latchd ready"))
                .find_map(|line| {
                    let port: String = line
                        .split_once(prefix)?
                        .1
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    (!port.is_empty()).then(|| format!("{prefix}{port}"))
                });
            if let Some(url) = named
                && let Ok(response) = self.agent.get(format!("{url}/readyz")).call()
                && response.status().as_u16() == 200
            {
                return url;
            }
            if let Some(child) = self.child.as_mut()
                && child.try_wait().is_ok_and(|exited| exited.is_some())
            {
                // Its last words are still being read.
                std::thread::sleep(Duration::from_millis(500));
                panic!("latchd exited before it was ready; logs:\n{}", self.logs());
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "latchd did not become ready; logs:\n{logs}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// latchd's own nats-server.
    pub fn nats(&self) -> &latch_testkit::NatsServer {
        self.nats
            .as_ref()
            .expect("latchd has its broker until it is killed")
    }

    /// `kill -9`: no graceful anything. The broker lives on, for a restart.
    pub fn kill_9(mut self) -> latch_testkit::NatsServer {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.nats.take().expect("broker")
    }

    /// Everything latchd printed so far.
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    /// The bootstrap admin token from `<data-dir>/admin.token`.
    pub fn admin_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("admin.token"))
            .expect("admin.token")
            .trim()
            .to_owned()
    }

    /// Stops latchd with SIGTERM and waits for it (graceful shutdown).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            latch_testkit::terminate(&mut child, Duration::from_secs(30));
        }
    }

    pub fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> Reply {
        let bytes = body
            .map(|b| serde_json::to_vec(b).unwrap())
            .unwrap_or_default();
        self.raw(method, path, token, &[], bytes)
    }

    /// A request with extra headers and a raw body.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{}", self.url, path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Bearer {token}"));
        }
        let typed = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("content-type"));
        if !body.is_empty() && !typed {
            request = request.header("Content-Type", "application/json");
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let mut response = self
            .agent
            .run(request.body(body).unwrap())
            .expect("latchd answers");
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(Value::String(text))
        };
        Reply {
            status,
            body,
            content_type,
            headers,
        }
    }

    /// Announces a `length`-byte body with `Expect: 100-continue`, as curl
    /// does for large uploads, and returns latchd's answer (it should
    /// refuse before the body is sent).
    pub fn announce_large_body(&self, path: &str, token: &str, length: usize) -> Reply {
        use std::io::{Read, Write};
        let address = self.url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n\
             Content-Length: {length}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).unwrap();
        let mut response = Vec::new();
        let _ = stream.read_to_end(&mut response);
        let text = String::from_utf8_lossy(&response).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let headers: Vec<(String, String)> = head
            .lines()
            .skip(1)
            .filter_map(|l| {
                l.split_once(':')
                    .map(|(n, v)| (n.trim().to_lowercase(), v.trim().to_owned()))
            })
            .collect();
        let content_type = headers
            .iter()
            .find(|(n, _)| n == "content-type")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        Reply {
            status,
            body: serde_json::from_str(body).unwrap_or(Value::String(body.to_owned())),
            content_type,
            headers,
        }
    }

    pub fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None)
    }

    pub fn post(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("POST", path, Some(token), Some(&body))
    }

    /// The value of an unlabelled series in `/metrics`.
    #[track_caller]
    pub fn metric(&self, name: &str) -> u64 {
        self.metric_if_shown(name)
            .unwrap_or_else(|| panic!("{name} is not in /metrics"))
    }

    /// The value of an unlabelled series in `/metrics`, if latchd shows it.
    pub fn metric_if_shown(&self, name: &str) -> Option<u64> {
        let reply = self.raw("GET", "/metrics", None, &[], Vec::new());
        reply
            .body
            .as_str()
            .unwrap_or_default()
            .lines()
            .find_map(|line| line.strip_prefix(&format!("{name} ")))
            .and_then(|value| value.trim().parse().ok())
    }

    /// The log's head position (read with the admin token).
    pub fn head(&self) -> u64 {
        let reply = self.get("/v1/events?limit=1", &self.admin_token());
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        reply.body["head"].as_u64().unwrap()
    }

    /// The id of the bootstrap account `admin`.
    pub fn admin_account_id(&self) -> String {
        self.get("/v1/accounts", &self.admin_token()).body["accounts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "admin")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Runs the real `latch` CLI against this latchd.
    pub fn latch(&self, token: Option<&str>, args: &[&str]) -> Output {
        let mut command = Command::new(binary("latch"));
        command
            .args(args)
            .env("LATCH_URL", &self.url)
            .env_remove("LATCH_TOKEN")
            .env_remove("LATCH_TOKEN_FILE");
        match &self.ca_file {
            Some(ca) => command.env("LATCH_CA_FILE", ca),
            None => command.env_remove("LATCH_CA_FILE"),
        };
        if let Some(token) = token {
            command.env("LATCH_TOKEN", token);
        }
        command.stdin(Stdio::null()).output().expect("run latch")
    }
}

impl Drop for Latchd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `done` (blocking) until it holds, for at most 20 s.
#[track_caller]
pub fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "timed out waiting until {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The example certificate service (`examples/certificate-service`),
/// believing only `latchd`'s signed feed; stopped on drop.
pub struct CertificateService {
    child: Child,
    pub port: u16,
    agent: ureq::Agent,
}

impl CertificateService {
    pub fn start(latchd: &Latchd) -> Self {
        let port = free_port();
        // The service trusts latchd's signing key: it believes only the signed feed.
        let key = Command::new(binary("latchd"))
            .args(["key", "show", "--data-dir"])
            .arg(&latchd.data_dir)
            .output()
            .unwrap();
        assert!(key.status.success(), "{key:?}");
        let key = String::from_utf8(key.stdout).unwrap().trim().to_owned();
        let child = Command::new(binary("certificate-service"))
            .env("LATCH_PUBLIC_KEY", &key)
            .args([
                "--nats-url",
                &latchd.nats().url(),
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--max-staleness-seconds",
                "3",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        CertificateService { child, port, agent }
    }

    /// `POST /certificates` with `token`: the status (0 if unreachable).
    pub fn issue(&self, token: &str) -> u16 {
        self.agent
            .post(format!("http://127.0.0.1:{}/certificates", self.port))
            .header("Authorization", format!("Bearer {token}"))
            .send_json(serde_json::json!({ "common_name": "api.example.com" }))
            .map_or(0, |r| r.status().as_u16())
    }

    /// `GET /certificates` with `token`: the status (0 if unreachable).
    pub fn list(&self, token: &str) -> u16 {
        self.agent
            .get(format!("http://127.0.0.1:{}/certificates", self.port))
            .header("Authorization", format!("Bearer {token}"))
            .call()
            .map_or(0, |r| r.status().as_u16())
    }
}

impl Drop for CertificateService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Creates an account and issues it a token; returns (account id, token id, secret).
pub fn account_with_token(
    latchd: &Latchd,
    admin: &str,
    name: &str,
    role: &str,
    scopes: Option<Vec<&str>>,
) -> (String, String, String) {
    let created = latchd.post(
        "/v1/accounts",
        admin,
        serde_json::json!({ "name": name, "role": role }),
    );
    assert_eq!(created.status, 201, "{:?}", created.body);
    let account = created.body["id"].as_str().unwrap().to_owned();
    let mut body = serde_json::json!({ "name": format!("{name}-token") });
    if let Some(scopes) = scopes {
        body["scopes"] = serde_json::json!(scopes);
    }
    let issued = latchd.post(&format!("/v1/accounts/{account}/tokens"), admin, body);
    assert_eq!(issued.status, 201, "{:?}", issued.body);
    (
        account,
        issued.body["id"].as_str().unwrap().to_owned(),
        issued.body["token"].as_str().unwrap().to_owned(),
    )
}

/// The `Latch-Position` of every message in the stream `LATCH_EVENTS`, in
/// stream order.
pub fn stream_positions(nats_url: &str) -> Vec<u64> {
    block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
        let mut stream = js.get_stream("LATCH_EVENTS").await.unwrap();
        let state = stream.info().await.unwrap().state.clone();
        let mut positions = Vec::new();
        for sequence in state.first_sequence..=state.last_sequence {
            if let Ok(message) = stream.get_raw_message(sequence).await {
                positions.push(
                    message
                        .headers
                        .get("Latch-Position")
                        .unwrap()
                        .as_str()
                        .parse()
                        .unwrap(),
                );
            }
        }
        positions
    })
}

/// Runs `future` on a runtime of its own: for the synchronous tests that
/// drive the binaries and now and then talk to NATS themselves.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
        .block_on(future)
}

/// What a `latch` run printed on stdout.
pub fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// What a `latch` run printed on stderr.
pub fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The stdout of a `latch` run that must succeed.
#[track_caller]
pub fn ok(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "latch failed ({:?}): {}",
        output.status.code(),
        stderr(&output)
    );
    stdout(&output)
}

/// The code block (```` ```python ```` etc.) between `<!-- {marker}:start -->`
/// and `<!-- {marker}:end -->` in a file under `docs/`: documented examples
/// are run as written.
pub fn doc_snippet(doc: &str, marker: &str, language: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(doc);
    let text = std::fs::read_to_string(&path).expect("the documentation file");
    let block = text
        .split(&format!("<!-- {marker}:start -->"))
        .nth(1)
        .and_then(|rest| rest.split(&format!("<!-- {marker}:end -->")).next())
        .unwrap_or_else(|| panic!("{} has no {marker} block", path.display()));
    block
        .split(&format!("```{language}"))
        .nth(1)
        .and_then(|code| code.split("```").next())
        .unwrap_or_else(|| panic!("the {marker} block has no {language} code"))
        .to_owned()
}
