//! Decisions on the feed's signing key: rotate it (latchd only, `latchd key
//! rotate`).

use crate::domain_error::DomainError;
use crate::event::Event;

pub(super) fn rotate_signing_key(public_key: &str) -> Result<Vec<Event>, DomainError> {
    if !public_key.starts_with("ed25519:") || public_key.len() > 128 {
        return Err(DomainError::InvalidSigningKey(
            public_key.chars().take(64).collect(),
        ));
    }
    Ok(vec![Event::SigningKeyRotated {
        public_key: public_key.to_owned(),
    }])
}
