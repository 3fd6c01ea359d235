//! `NatsConnection`: where NATS is and how to prove who we are to it. One
//! type for latchd, the verifier and the CLI, so that a secured NATS
//! (credentials file, user and password, token, TLS with a private CA,
//! client certificates) is configured the same way everywhere.

use std::fmt;
use std::path::PathBuf;

use async_nats::ConnectOptions;

#[derive(Clone, Default)]
pub struct NatsConnection {
    /// One URL, or several separated by commas (a cluster). `tls://` makes
    /// TLS required.
    pub url: String,
    /// A `.creds` file (JWT and NKey seed), as `nsc` writes it.
    pub creds_file: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<String>,
    pub token: Option<String>,
    /// PEM certificates to trust for the server's TLS certificate (a private
    /// CA, or a self-signed server); TLS is then required.
    pub tls_ca: Option<PathBuf>,
    /// A client certificate and key (PEM) for servers that verify clients.
    pub tls_client_cert: Option<PathBuf>,
    pub tls_client_key: Option<PathBuf>,
    /// Names this connection in the server's monitoring (`connz`).
    pub name: Option<String>,
    /// The first token(s) of this client's reply inboxes instead of
    /// `_INBOX` (e.g. `_INBOX_ci`), so NATS permissions can let each user
    /// subscribe to its own inboxes only.
    pub inbox_prefix: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum NatsConnectError {
    #[error("NATS settings: {0}")]
    Settings(String),
    #[error("NATS credentials file {path}: {source}")]
    CredentialsFile {
        path: PathBuf,
        source: std::io::Error,
    },
    /// `url` has its credentials redacted.
    #[error("cannot connect to NATS at {url}: {reason}")]
    Connect { url: String, reason: String },
}

/// Credentials embedded in a URL: `nats://user:password@host` or
/// `nats://token@host` (percent-encoded, as URLs write them).
#[derive(Clone, PartialEq, Eq)]
enum UrlAuth {
    UserPassword(String, String),
    Token(String),
}

/// The credentials the URL(s) carry, if any; several URLs must agree.
fn url_credentials(url: &str) -> Result<Option<UrlAuth>, NatsConnectError> {
    let mut found: Option<UrlAuth> = None;
    for one in url.split(',') {
        let Some((userinfo, _)) = split_userinfo(one.trim()) else {
            continue;
        };
        let auth = match userinfo.split_once(':') {
            Some((user, password)) => {
                UrlAuth::UserPassword(percent_decode(user), percent_decode(password))
            }
            None => UrlAuth::Token(percent_decode(userinfo)),
        };
        match &found {
            Some(other) if *other != auth => {
                return Err(NatsConnectError::Settings(
                    "the NATS URLs carry different credentials; give them once (--nats-user and LATCH_NATS_PASSWORD)"
                        .into(),
                ));
            }
            _ => found = Some(auth),
        }
    }
    Ok(found)
}

/// `(userinfo, rest after the @)` of one URL that embeds credentials.
fn split_userinfo(one: &str) -> Option<(&str, &str)> {
    let start = one.find("://").map_or(0, |at| at + 3);
    let rest = &one[start..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let at = rest[..authority_end].rfind('@')?;
    Some((&rest[..at], &rest[at + 1..]))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(byte) = text
                .get(i + 1..i + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(byte);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The URL(s) with any embedded credentials removed: what the NATS client
/// is given (the credentials go in the connect options instead, so the
/// client never has them in a URL it might log).
fn strip_credentials(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            match split_userinfo(one) {
                Some((_, rest)) => {
                    let scheme = one.find("://").map_or("", |at| &one[..at + 3]);
                    format!("{scheme}{rest}")
                }
                None => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// `url` with any `user:password@` (or `token@`) replaced by `<redacted>@`,
/// for every URL of a comma-separated list: what logs and errors may show.
pub fn redact_url(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let (scheme, rest) = match one.find("://") {
                Some(at) => one.split_at(at + 3),
                None => ("", one),
            };
            let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}<redacted>@{}", &rest[at + 1..]),
                None => one.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

impl NatsConnection {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The URL(s) without credentials: what may be logged.
    pub fn redacted_url(&self) -> String {
        redact_url(&self.url)
    }

    /// The URL(s) to connect to, credentials removed (`options` carries
    /// them), comma-separated.
    pub fn server_url(&self) -> String {
        strip_credentials(&self.url)
    }

    /// The server URLs to connect to, credentials removed (`options`
    /// carries them): pass this, not `url`, to `ConnectOptions::connect`.
    /// Several servers (`nats://a:4222,nats://b:4222`, a cluster) are tried
    /// in turn; the client also learns the cluster's other servers from the
    /// one it reaches, and reconnects to them.
    pub fn server_urls(&self) -> Vec<String> {
        self.server_url()
            .split(',')
            .map(|one| one.trim().to_owned())
            .filter(|one| !one.is_empty())
            .collect()
    }

    /// `url` with another name for the connection.
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// The connect options these settings make (reads the credentials file).
    pub async fn options(&self) -> Result<ConnectOptions, NatsConnectError> {
        let mut options = ConnectOptions::new();
        let in_url = url_credentials(&self.url)?;
        let ways = [
            self.creds_file.is_some(),
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            in_url.is_some(),
        ];
        if ways.iter().filter(|&&way| way).count() > 1 {
            return Err(NatsConnectError::Settings(
                "give one way to authenticate: a credentials file, a user and password, a token, or credentials in the URL"
                    .into(),
            ));
        }
        if let Some(path) = &self.creds_file {
            options = options.credentials_file(path).await.map_err(|source| {
                NatsConnectError::CredentialsFile {
                    path: path.clone(),
                    source,
                }
            })?;
        }
        match (&self.user, &self.password) {
            (Some(user), Some(password)) => {
                options = options.user_and_password(user.clone(), password.clone());
            }
            (None, None) => {}
            _ => {
                return Err(NatsConnectError::Settings(
                    "a NATS user needs a password, and a password a user".into(),
                ));
            }
        }
        if let Some(token) = &self.token {
            options = options.token(token.clone());
        }
        match in_url {
            Some(UrlAuth::UserPassword(user, password)) => {
                options = options.user_and_password(user, password);
            }
            Some(UrlAuth::Token(token)) => options = options.token(token),
            None => {}
        }
        if let Some(ca) = &self.tls_ca {
            options = options.add_root_certificates(ca.clone()).require_tls(true);
        }
        match (&self.tls_client_cert, &self.tls_client_key) {
            (Some(cert), Some(key)) => {
                options = options.add_client_certificate(cert.clone(), key.clone());
            }
            (None, None) => {}
            _ => {
                return Err(NatsConnectError::Settings(
                    "a NATS client certificate needs its key, and a key its certificate".into(),
                ));
            }
        }
        if let Some(name) = &self.name {
            options = options.name(name.as_str());
        }
        if let Some(prefix) = &self.inbox_prefix {
            crate::reply_subject::check_inbox_prefix(prefix).map_err(|_| {
                NatsConnectError::Settings(format!(
                    "the NATS inbox prefix must be an inbox subject without wildcards, like `_INBOX_<user>` (got {prefix:?})"
                ))
            })?;
            options = options.custom_inbox_prefix(prefix);
        }
        Ok(options)
    }

    /// Connects (one attempt; callers that must keep trying retry this).
    pub async fn connect(&self) -> Result<async_nats::Client, NatsConnectError> {
        let options = self.options().await?;
        options
            .connect(self.server_urls())
            .await
            .map_err(|error| NatsConnectError::Connect {
                url: self.redacted_url(),
                reason: redact_url(&error.to_string()),
            })
    }
}

/// The redacted URL(s).
impl fmt::Display for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_url())
    }
}

/// Never prints the password, the token or credentials in the URL.
impl fmt::Debug for NatsConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsConnection")
            .field("url", &self.redacted_url())
            .field("creds_file", &self.creds_file)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("tls_ca", &self.tls_ca)
            .field("tls_client_cert", &self.tls_client_cert)
            .field("tls_client_key", &self.tls_client_key)
            .field("name", &self.name)
            .field("inbox_prefix", &self.inbox_prefix)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_password_or_token() {
        let connection = NatsConnection {
            password: Some("hunter2-secret".into()),
            user: Some("latchd".into()),
            token: Some("s3cr3t-token".into()),
            ..NatsConnection::new("nats://127.0.0.1:4222")
        };
        let shown = format!("{connection:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("latchd"));
    }

    #[test]
    fn credentials_in_the_url_are_never_shown() {
        let connection = NatsConnection::new(
            "nats://latchd:hunter2-secret@nats:4222,tls://s3cr3t-token@n2:4222/x",
        );
        for shown in [
            format!("{connection}"),
            format!("{connection:?}"),
            connection.redacted_url(),
        ] {
            assert!(
                !shown.contains("hunter2")
                    && !shown.contains("s3cr3t")
                    && !shown.contains("latchd:"),
                "{shown}"
            );
            assert!(
                shown.contains("nats:4222") && shown.contains("n2:4222"),
                "{shown}"
            );
        }
        assert_eq!(redact_url("nats://u:p@h:1"), "nats://<redacted>@h:1");
        assert_eq!(redact_url("nats://h:1"), "nats://h:1");
        assert_eq!(redact_url("h:1"), "h:1");
        assert_eq!(redact_url("u:p@h:1"), "<redacted>@h:1");
    }

    #[test]
    fn url_credentials_move_into_the_options() {
        assert_eq!(
            strip_credentials("nats://u:p%40ss@h:1, tls://u:p%40ss@h2:2"),
            "nats://h:1,tls://h2:2"
        );
        assert!(matches!(
            url_credentials("nats://u:p%40ss@h:1").unwrap(),
            Some(UrlAuth::UserPassword(u, p)) if u == "u" && p == "p@ss"
        ));
        assert!(matches!(
            url_credentials("nats://tok@h:1").unwrap(),
            Some(UrlAuth::Token(t)) if t == "tok"
        ));
        assert!(url_credentials("nats://h:1").unwrap().is_none());
        assert!(url_credentials("nats://a:b@h:1,nats://c:d@h:2").is_err());
    }

    #[tokio::test]
    async fn a_connect_error_never_shows_url_credentials() {
        let connection = NatsConnection::new("nats://latchd:hunter2-secret@127.0.0.1:1");
        let error = connection.connect().await.unwrap_err().to_string();
        assert!(!error.contains("hunter2"), "{error}");
        assert!(error.contains("127.0.0.1:1"), "{error}");
    }

    #[tokio::test]
    async fn an_inbox_prefix_must_be_an_inbox() {
        let bad = NatsConnection {
            inbox_prefix: Some("latch.events".into()),
            ..NatsConnection::new("nats://127.0.0.1:1")
        };
        let error = bad.connect().await.unwrap_err().to_string();
        assert!(error.contains("inbox prefix"), "{error}");
    }

    #[tokio::test]
    async fn conflicting_settings_are_refused_before_connecting() {
        let two_ways = NatsConnection {
            user: Some("u".into()),
            password: Some("p".into()),
            token: Some("t".into()),
            ..NatsConnection::new("nats://127.0.0.1:1")
        };
        let error = two_ways.connect().await.unwrap_err();
        assert!(
            error.to_string().contains("one way to authenticate"),
            "{error}"
        );
        let half = NatsConnection {
            user: Some("u".into()),
            ..NatsConnection::new("nats://127.0.0.1:1")
        };
        assert!(
            half.connect()
                .await
                .unwrap_err()
                .to_string()
                .contains("needs a password")
        );
        let missing = NatsConnection {
            creds_file: Some("/nonexistent/latch.creds".into()),
            ..NatsConnection::new("nats://127.0.0.1:1")
        };
        assert!(
            missing
                .connect()
                .await
                .unwrap_err()
                .to_string()
                .contains("/nonexistent/latch.creds")
        );
    }
}
