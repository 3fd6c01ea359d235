//! An HA cluster for the end-to-end tests: a three-server NATS JetStream
//! cluster and several real `latchd --ha` processes (each with its own data
//! dir, all signing with one provisioned key), which a test can `kill -9`,
//! `SIGSTOP`/`SIGCONT` and restart.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{Reply, binary, free_port};

/// The cluster's signing key: a fixed Ed25519 key for tests only (PKCS#8 PEM).
pub const TEST_SIGNING_KEY: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIP5cRrJWdtvbMFGVK4x9kXYN9YgzjGuod++wxGBvfNzl
-----END PRIVATE KEY-----
";

/// One `latchd --ha` process.
pub struct HaNode {
    pub name: String,
    pub url: String,
    pub data_dir: PathBuf,
    port: u16,
    child: Option<Child>,
    logs: Arc<Mutex<String>>,
}

impl HaNode {
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }
}

pub struct HaCluster {
    pub nats: latch_testkit::NatsCluster,
    pub nodes: Vec<HaNode>,
    key_file: PathBuf,
    temp: tempfile::TempDir,
    agent: ureq::Agent,
}

impl HaCluster {
    /// Three NATS servers and `nodes` latchd nodes; returns once one node
    /// leads and the admin account exists.
    pub fn start(nodes: usize) -> Self {
        Self::start_with(nodes, None)
    }

    /// As `start`, node 0 on `first_data_dir` (a data dir that latchd ran
    /// on before, e.g. in single-node mode, with `TEST_SIGNING_KEY`).
    pub fn start_with(nodes: usize, first_data_dir: Option<&Path>) -> Self {
        let nats = latch_testkit::NatsCluster::start(3);
        let temp = tempfile::tempdir().expect("temp dir");
        let key_file = temp.path().join("cluster-signing-key.pem");
        std::fs::write(&key_file, TEST_SIGNING_KEY).expect("key file");
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(Duration::from_secs(10)))
            .build()
            .into();
        let mut cluster = Self {
            nats,
            nodes: Vec::new(),
            key_file,
            temp,
            agent,
        };
        for index in 0..nodes {
            cluster.add_node_on(match (index, first_data_dir) {
                (0, Some(dir)) => Some(dir.to_owned()),
                _ => None,
            });
        }
        cluster.wait_for_leader(Duration::from_secs(60));
        crate::eventually("the first leader bootstrapped the admin account", || {
            cluster.admin_token_file().is_some()
        });
        // The file is written before the token is issued: wait until every
        // node knows it.
        let admin = cluster.admin_token();
        for index in 0..cluster.nodes.len() {
            let started = Instant::now();
            while !cluster
                .call(index, "GET", "/v1/accounts", &admin, None, None)
                .is_ok_and(|reply| reply.status == 200)
            {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{} does not know the admin token; logs:\n{}",
                    cluster.nodes[index].name,
                    cluster.all_logs()
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster
    }

    /// Starts one more node (on a new data dir, or `data_dir`); returns
    /// its index.
    pub fn add_node_on(&mut self, data_dir: Option<PathBuf>) -> usize {
        let index = self.nodes.len();
        let name = format!("node{index}");
        let data_dir = data_dir.unwrap_or_else(|| self.temp.path().join(&name));
        let port = free_port();
        self.nodes.push(HaNode {
            url: format!("http://127.0.0.1:{port}"),
            name,
            data_dir,
            port,
            child: None,
            logs: Arc::default(),
        });
        self.launch(index);
        index
    }

    /// Starts node `index` and waits until it is ready. A node that exits
    /// because its port, chosen free, was taken before it bound it is
    /// started again on another.
    fn launch(&mut self, index: usize) {
        for _ in 0..3 {
            if self.try_launch(index) {
                return;
            }
            let port = free_port();
            let node = &mut self.nodes[index];
            node.port = port;
            node.url = format!("http://127.0.0.1:{port}");
        }
        panic!("{} could not listen on a free port; logs:\n{}", self.nodes[index].name, self.nodes[index].logs());
    }

    /// `false` if latchd exited because it could not listen on its port.
    fn try_launch(&mut self, index: usize) -> bool {
        let nats_url = self.nats.url();
        let node = &mut self.nodes[index];
        let mut child = Command::new(binary("latchd"))
            .args(["--ha", "--ha-replicas", "3"])
            .arg("--node-id")
            .arg(&node.name)
            .arg("--advertise-url")
            .arg(&node.url)
            .arg("--nats-url")
            .arg(&nats_url)
            .arg("--signing-key")
            .arg(&self.key_file)
            .arg("--data-dir")
            .arg(&node.data_dir)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", node.port))
            .env("LATCH_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start latchd --ha");
        node.logs = crate::capture_output(&mut child);
        node.child = Some(child);
        let url = node.url.clone();
        let started = Instant::now();
        loop {
            if let Ok(response) = self.agent.get(format!("{url}/readyz")).call()
                && response.status().as_u16() == 200
            {
                return true;
            }
            let node = &mut self.nodes[index];
            if let Some(status) = node.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                // What it printed last is read by a thread of its own.
                std::thread::sleep(Duration::from_millis(300));
                node.child = None;
                let logs = node.logs();
                assert!(logs.contains("listening on"), "{} exited ({status}); logs:\n{logs}", node.name);
                return false;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "{} did not become ready; logs:\n{}",
                self.nodes[index].name,
                self.nodes[index].logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every node's output so far, node by node.
    pub fn all_logs(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("== {} ==\n{}", n.name, n.logs()))
            .collect()
    }

    /// `kill -9` node `index`.
    pub fn kill_9(&mut self, index: usize) {
        if let Some(mut child) = self.nodes[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `index` again on its data dir (it joins as a standby).
    pub fn restart(&mut self, index: usize) {
        self.kill_9(index);
        self.launch(index);
    }

    pub fn signal(&self, index: usize, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.nodes[index].pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{signal}");
    }

    /// Where the first leader wrote the admin token.
    pub fn admin_token_file(&self) -> Option<PathBuf> {
        self.nodes
            .iter()
            .map(|n| n.data_dir.join("admin.token"))
            .find(|p| p.exists())
    }

    pub fn admin_token(&self) -> String {
        let file = self.admin_token_file().expect("admin.token");
        std::fs::read_to_string(file).unwrap().trim().to_owned()
    }

    /// `/readyz` of node `index` as `key=value` pairs (empty if down).
    pub fn readyz(&self, index: usize) -> Vec<(String, String)> {
        let Ok(mut response) = self
            .agent
            .get(format!("{}/readyz", self.nodes[index].url))
            .config()
            .timeout_global(Some(Duration::from_millis(500)))
            .build()
            .call()
        else {
            return Vec::new();
        };
        let text = response.body_mut().read_to_string().unwrap_or_default();
        text.split_whitespace()
            .filter_map(|pair| pair.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    }

    pub fn ready_field(&self, index: usize, field: &str) -> Option<String> {
        self.readyz(index)
            .into_iter()
            .find_map(|(k, v)| (k == field).then_some(v))
    }

    /// The node that says it leads, if exactly one running node does.
    pub fn leader(&self) -> Option<usize> {
        let leaders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| {
                self.nodes[i].is_running()
                    && self.ready_field(i, "ha_role").as_deref() == Some("leader")
            })
            .collect();
        (leaders.len() == 1).then(|| leaders[0])
    }

    pub fn wait_for_leader(&self, within: Duration) -> usize {
        let started = Instant::now();
        loop {
            if let Some(leader) = self.leader() {
                return leader;
            }
            assert!(
                started.elapsed() < within,
                "no leader after {within:?}; logs:\n{}",
                self.all_logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// An HTTP request to node `index` (no redirects followed).
    pub fn call(
        &self,
        index: usize,
        method: &str,
        path: &str,
        token: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Reply, String> {
        call(&self.agent, &self.nodes[index].url, method, path, token, body, idempotency_key)
    }

    /// Every event of node `index`'s log as (position, id, hash), read
    /// over HTTP (none while the node cannot answer).
    pub fn events(&self, index: usize, token: &str) -> Vec<(u64, String, String)> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            // A node that is down or has not replicated the token yet has
            // no events to show: callers poll until it has.
            let Ok(reply) = self.call(index, "GET", &format!("/v1/events?after={after}&limit=1000"), token, None, None)
            else {
                return Vec::new();
            };
            if reply.status != 200 {
                return Vec::new();
            }
            let events = reply.body["events"].as_array().cloned().unwrap_or_default();
            for event in &events {
                all.push((
                    event["position"].as_u64().unwrap(),
                    event["id"].as_str().unwrap().to_owned(),
                    event["hash"].as_str().unwrap().to_owned(),
                ));
            }
            let next = reply.body["next_after"].as_u64().unwrap();
            if events.is_empty() || next == after || next >= reply.body["head"].as_u64().unwrap() {
                return all;
            }
            after = next;
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.temp.path()
    }
}

/// An HTTP request to `base` (no redirects followed); `Err` when the node
/// cannot be reached.
pub fn call(
    agent: &ureq::Agent,
    base: &str,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&Value>,
    idempotency_key: Option<&str>,
) -> Result<Reply, String> {
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"))
        .header("Authorization", format!("Bearer {token}"));
    if let Some(key) = idempotency_key {
        request = request.header("Idempotency-Key", key);
    }
    let bytes = match body {
        Some(body) => {
            request = request.header("Content-Type", "application/json");
            serde_json::to_vec(body).unwrap()
        }
        None => Vec::new(),
    };
    let mut response = agent
        .run(request.body(bytes).unwrap())
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let text = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
    let body = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    Ok(Reply {
        status,
        body,
        content_type,
        headers,
    })
}

impl Drop for HaCluster {
    fn drop(&mut self) {
        for index in 0..self.nodes.len() {
            self.kill_9(index);
        }
    }
}
