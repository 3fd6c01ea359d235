//! Starting from latchd's state snapshot (`GET /v1/snapshot`) instead of
//! the whole stream: the `snapshot` feature, which brings an HTTP client.

use latch_bus::{FeedChain, SigningError, TrustedKeys};
use latch_core::VerifierView;

/// Where a verifier fetches its starting state: latchd's `GET /v1/snapshot`,
/// with a token holding `events:read` (the `verifier` role).
#[derive(Clone)]
pub struct SnapshotSource {
    pub latchd_url: String,
    pub token: String,
}

impl std::fmt::Debug for SnapshotSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotSource")
            .field("latchd_url", &self.latchd_url)
            .finish_non_exhaustive()
    }
}

/// Why the verifier did not start from latchd's snapshot (it reads the
/// whole stream instead).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    #[error("{0}")]
    Http(#[from] ureq::Error),
    #[error("latchd answered {0} to GET /v1/snapshot")]
    Status(ureq::http::StatusCode),
    #[error("{0}")]
    Decode(#[from] latch_bus::verifier_snapshot::SnapshotError),
    /// With trusted keys, a snapshot latchd did not sign (counted as
    /// refused).
    #[error("unverified snapshot: {0}")]
    Unverified(#[from] Unverified),
    #[error("{0}")]
    Task(#[from] tokio::task::JoinError),
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Unverified {
    #[error("latchd did not sign it")]
    Unsigned,
    #[error("Latch-Log-Id is not a log id")]
    LogId,
    #[error("Latch-Hash is not a hash")]
    Hash(#[source] hex::FromHexError),
    #[error("{0}")]
    Signature(#[from] SigningError),
}

/// latchd's snapshot, and the chain it starts: with trusted keys, only a
/// snapshot latchd signed (`Latch-Log-Id`, `Latch-Position`, `Latch-Hash`,
/// `Latch-Signature` over them and the body's SHA-256) is used.
pub(crate) async fn fetch(
    source: SnapshotSource,
    trusted: TrustedKeys,
) -> Result<(VerifierView, FeedChain), SnapshotError> {
    tokio::task::spawn_blocking(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build()
            .into();
        let mut response = agent
            .get(format!(
                "{}/v1/snapshot",
                source.latchd_url.trim_end_matches('/')
            ))
            .header("Authorization", format!("Bearer {}", source.token))
            .call()?;
        if response.status().as_u16() != 200 {
            return Err(SnapshotError::Status(response.status()));
        }
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let signed = (
            header(latch_bus::headers::LATCH_LOG_ID),
            header(latch_bus::headers::LATCH_HASH),
            header(latch_bus::headers::LATCH_SIGNATURE),
        );
        let bytes = response
            .body_mut()
            .with_config()
            .limit(u64::MAX)
            .read_to_vec()?;
        let (view, position) = latch_bus::verifier_snapshot::decode(&bytes)?;
        let chain = if trusted.is_empty() {
            FeedChain::from_start(trusted)
        } else {
            let (Some(log), Some(hash), Some(signature)) = signed else {
                return Err(Unverified::Unsigned.into());
            };
            let log: latch_core::LogId = log.parse().map_err(|_| Unverified::LogId)?;
            let mut hash_bytes = [0u8; 32];
            hex::decode_to_slice(&hash, &mut hash_bytes).map_err(Unverified::Hash)?;
            trusted
                .verify(
                    &latch_bus::feed_signing::snapshot_message(log, position, &hash_bytes, &bytes),
                    &signature,
                )
                .map_err(Unverified::from)?;
            FeedChain::from_snapshot(trusted, log, position, hash_bytes)
        };
        tracing::info!(%position, bytes = bytes.len(), signed = chain.is_checking(), "verifier: started from latchd's snapshot");
        Ok((view, chain))
    })
    .await?
}
