//! `NatsArgs`: the command-line flags (and `LATCH_NATS_*` variables) that
//! make a `NatsConnection`, shared by `latchd`, `latch` and services that
//! embed the verifier, so that all of them are configured alike.

use std::path::PathBuf;

use crate::nats_connection::NatsConnection;

#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// The NATS server (JetStream enabled), or several separated by commas.
    #[arg(
        long = "nats-url",
        env = "LATCH_NATS_URL",
        default_value = "nats://127.0.0.1:4222",
        // It may embed credentials (`nats://user:password@host`).
        hide_env_values = true,
        global = true
    )]
    pub nats_url: String,
    /// NATS credentials file (JWT + NKey seed, as `nsc` writes it).
    #[arg(long = "nats-creds", env = "LATCH_NATS_CREDS", global = true)]
    pub nats_creds: Option<PathBuf>,
    /// NATS user (with --nats-password).
    #[arg(long = "nats-user", env = "LATCH_NATS_USER", global = true)]
    pub nats_user: Option<String>,
    /// NATS password. Prefer the variable: flags show up in process lists.
    #[arg(
        long = "nats-password",
        env = "LATCH_NATS_PASSWORD",
        hide_env_values = true,
        global = true
    )]
    pub nats_password: Option<String>,
    /// NATS authentication token. Prefer the variable.
    #[arg(
        long = "nats-token",
        env = "LATCH_NATS_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub nats_token: Option<String>,
    /// PEM file of the CA (or self-signed certificate) to trust for NATS's
    /// TLS; makes TLS required.
    #[arg(long = "nats-ca", env = "LATCH_NATS_CA", global = true)]
    pub nats_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a NATS server that verifies clients.
    #[arg(
        long = "nats-client-cert",
        env = "LATCH_NATS_CLIENT_CERT",
        global = true
    )]
    pub nats_client_cert: Option<PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long = "nats-client-key", env = "LATCH_NATS_CLIENT_KEY", global = true)]
    pub nats_client_key: Option<PathBuf>,
    /// This client's reply inbox prefix instead of `_INBOX` (e.g.
    /// `_INBOX_ci`), so NATS permissions can give each user its own inboxes.
    #[arg(
        long = "nats-inbox-prefix",
        env = "LATCH_NATS_INBOX_PREFIX",
        global = true
    )]
    pub nats_inbox_prefix: Option<String>,
}

impl NatsArgs {
    pub fn connection(&self) -> NatsConnection {
        NatsConnection {
            url: self.nats_url.clone(),
            creds_file: self.nats_creds.clone(),
            user: self.nats_user.clone(),
            password: self.nats_password.clone(),
            token: self.nats_token.clone(),
            tls_ca: self.nats_ca.clone(),
            tls_client_cert: self.nats_client_cert.clone(),
            tls_client_key: self.nats_client_key.clone(),
            name: None,
            inbox_prefix: self.nats_inbox_prefix.clone(),
        }
    }
}
