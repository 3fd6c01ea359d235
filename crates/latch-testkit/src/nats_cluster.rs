//! `NatsCluster`: a real JetStream cluster of several `nats-server`
//! processes on loopback (free ports, temporary store dirs), whose servers a
//! test can kill and restart one by one.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};

use crate::INSTALL_HINT;

struct Member {
    name: String,
    port: u16,
    cluster_port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

pub struct NatsCluster {
    members: Vec<Member>,
}

/// `count` distinct free loopback ports: each is held until all are
/// chosen, so two of them are never the same port.
fn free_ports(count: usize) -> Vec<u16> {
    let held: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("free port"))
        .collect();
    held.iter().map(|l| l.local_addr().unwrap().port()).collect()
}

/// Times a cluster is started on fresh ports when a server could not
/// listen on its own (a port chosen free was taken before it bound it).
const START_ATTEMPTS: usize = 3;

impl NatsCluster {
    /// Starts `size` JetStream servers clustered together (cluster name
    /// `latch`). JetStream elects its meta leader a few seconds later;
    /// clients retry until it has. A server that exits or does not listen
    /// (its port was taken between choosing and binding it) has the whole
    /// cluster started again on other ports.
    pub fn start(size: usize) -> Self {
        let mut problem = String::new();
        for _ in 0..START_ATTEMPTS {
            let ports = free_ports(size * 2);
            let members = (0..size)
                .map(|index| Member {
                    name: format!("n{index}"),
                    port: ports[index * 2],
                    cluster_port: ports[index * 2 + 1],
                    store: tempfile::tempdir().expect("temp dir"),
                    child: None,
                })
                .collect();
            let mut cluster = Self { members };
            match (0..size).try_for_each(|index| cluster.try_launch(index)) {
                Ok(()) => return cluster,
                // Dropping it stops the servers it started.
                Err(failed) => problem = failed,
            }
        }
        panic!("{problem}");
    }

    fn launch(&mut self, index: usize) {
        if let Err(problem) = self.try_launch(index) {
            panic!("{problem}");
        }
    }

    /// Starts server `index` and waits until it listens; what went wrong
    /// (with its log) if it exited or did not listen within 20 s.
    fn try_launch(&mut self, index: usize) -> Result<(), String> {
        let routes: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, m)| format!("nats://127.0.0.1:{}", m.cluster_port))
            .collect();
        let member = &mut self.members[index];
        let log = member.store.path().join("nats-server.log");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &member.port.to_string(), "-js", "-sd"])
            .arg(member.store.path())
            .args(["-n", &member.name, "--cluster_name", "latch"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", member.cluster_port)])
            .args(["--routes", &routes.join(",")])
            .arg("-l")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{INSTALL_HINT} ({error})"));
        let child = member.child.insert(child);
        crate::wait_listening(member.port, child).map_err(|problem| {
            member.child = None;
            format!(
                "nats-server {} did not start listening on {}: {problem}; its log:\n{}",
                member.name,
                member.port,
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        })
    }

    pub fn size(&self) -> usize {
        self.members.len()
    }

    /// Every server's client URL, comma-separated (what `--nats-url` takes).
    pub fn url(&self) -> String {
        (0..self.members.len())
            .map(|i| self.server_url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn server_url(&self, index: usize) -> String {
        format!("nats://127.0.0.1:{}", self.members[index].port)
    }

    /// SIGKILLs server `index` (its store stays).
    pub fn kill(&mut self, index: usize) {
        if let Some(mut child) = self.members[index].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts server `index` again with its store.
    pub fn restart(&mut self, index: usize) {
        self.kill(index);
        self.launch(index);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for index in 0..self.members.len() {
            self.kill(index);
        }
    }
}
