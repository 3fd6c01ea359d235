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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .unwrap()
        .port()
}

impl NatsCluster {
    /// Starts `size` JetStream servers clustered together (cluster name
    /// `latch`). JetStream elects its meta leader a few seconds later;
    /// clients retry until it has.
    pub fn start(size: usize) -> Self {
        let members = (0..size)
            .map(|index| Member {
                name: format!("n{index}"),
                port: free_port(),
                cluster_port: free_port(),
                store: tempfile::tempdir().expect("temp dir"),
                child: None,
            })
            .collect();
        let mut cluster = Self { members };
        for index in 0..size {
            cluster.launch(index);
        }
        cluster
    }

    fn launch(&mut self, index: usize) {
        let routes: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, m)| format!("nats://127.0.0.1:{}", m.cluster_port))
            .collect();
        let member = &mut self.members[index];
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &member.port.to_string(), "-js", "-sd"])
            .arg(member.store.path())
            .args(["-n", &member.name, "--cluster_name", "latch"])
            .args(["--cluster", &format!("nats://127.0.0.1:{}", member.cluster_port)])
            .args(["--routes", &routes.join(",")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("{INSTALL_HINT} ({error})"));
        member.child = Some(child);
        crate::wait_listening(member.port, &format!("nats-server {}", member.name));
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
