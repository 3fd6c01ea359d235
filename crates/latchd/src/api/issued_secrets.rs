//! Secrets of recently issued or rotated tokens, held in memory only, so an
//! idempotent retry of an issue can return the same secret for a short
//! while. Never written to disk; gone on restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use latch_core::{TokenId, TokenSecret};

/// How long a secret stays retrievable by a retry.
pub const RETENTION: Duration = Duration::from_secs(300);

#[derive(Default)]
pub struct IssuedSecrets(Mutex<HashMap<String, (TokenId, TokenSecret, Instant)>>);

impl IssuedSecrets {
    pub fn remember(&self, scoped_key: String, token: TokenId, secret: TokenSecret) {
        let mut held = self.0.lock().expect("secrets lock");
        let now = Instant::now();
        held.retain(|_, (_, _, at)| now.duration_since(*at) < RETENTION);
        held.insert(scoped_key, (token, secret, now));
    }

    /// The secret issued under this key, if it is still held and is for
    /// `token`.
    pub fn recall(&self, scoped_key: &str, token: TokenId) -> Option<TokenSecret> {
        let held = self.0.lock().expect("secrets lock");
        held.get(scoped_key)
            .filter(|(id, _, at)| *id == token && at.elapsed() < RETENTION)
            .map(|(_, secret, _)| secret.clone())
    }
}
