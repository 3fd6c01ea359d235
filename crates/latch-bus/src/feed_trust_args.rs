//! `FeedTrustArgs`: the flag (and `LATCH_PUBLIC_KEY`) that tells a follower
//! of latchd's feed which keys to trust: the example service, `latch
//! watch`, and any service that embeds the verifier with clap.

use crate::feed_signing::{PublicKey, SigningError, TrustedKeys};

#[derive(Debug, Clone, clap::Args)]
pub struct FeedTrustArgs {
    /// latchd's public key, as `latchd key show` prints it (ed25519:…);
    /// several separated by commas. With one, only what latchd signed is
    /// believed; without, the NATS broker's permissions are all that stand
    /// between a forger and your service.
    #[arg(
        long = "latch-public-key",
        env = "LATCH_PUBLIC_KEY",
        value_delimiter = ',',
        global = true
    )]
    pub latch_public_keys: Vec<String>,
}

impl FeedTrustArgs {
    pub fn trusted_keys(&self) -> Result<TrustedKeys, SigningError> {
        let keys = self
            .latch_public_keys
            .iter()
            .filter(|k| !k.trim().is_empty())
            .map(|k| k.parse::<PublicKey>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedKeys::new(keys))
    }
}
