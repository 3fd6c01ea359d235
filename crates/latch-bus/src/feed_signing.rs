//! latchd's Ed25519 signatures over what it publishes: every event, every
//! heartbeat and the verifier snapshot.
//!
//! NATS carries no per-message signatures, so anyone allowed to publish on
//! `latch.events.>` or `latch.heartbeat` could otherwise forge a token or
//! keep a cut-off verifier believing it is current. A verifier configured
//! with latchd's public key applies nothing that does not verify.
//!
//! What is signed (fixed-width fields after a domain-separation label, so
//! no two kinds of message can be confused and no field can run into the
//! next):
//! - an event: `latch-event-v1\n ‖ log id (16) ‖ position (u64 BE) ‖
//!   event id (16) ‖ chain hash (32)`. The chain hash is SHA-256 of the
//!   stored record, which holds the previous hash and the event's bytes:
//!   the record travels with the event (`latchrecord`), so a verifier
//!   recomputes the hash and checks the link itself.
//! - a batch of events (what the relay signs: one signature per batch it
//!   publishes): `latch-batch-v1\n ‖ log id ‖ first position ‖ last
//!   position (u64 BE each) ‖ root`, the root of the Merkle tree
//!   (`batch_tree`) whose leaves are the events' `latch-event-v1` messages
//!   above, in position order. Each event message carries its inclusion
//!   proof, so it verifies on its own.
//! - a heartbeat: `latch-heartbeat-v1\n ‖ log id ‖ position ‖ chain hash at
//!   that position ‖ time (unix milliseconds, i64 BE)`.
//! - a snapshot: `latch-snapshot-v1\n ‖ log id ‖ position ‖ chain hash ‖
//!   SHA-256 of the snapshot's bytes`.
//!
//! Keys: `ed25519:<base64url>` is how a public key is written in
//! configuration (`LATCH_PUBLIC_KEY`); its id is the first 8 bytes of its
//! SHA-256, in hex. A signature travels as `<key id>:<base64url signature>`.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use latch_core::{EventId, LogId, Position};
use ring::rand::SystemRandom;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};
use sha2::{Digest, Sha256};

const EVENT_LABEL: &[u8] = b"latch-event-v1\n";
const BATCH_LABEL: &[u8] = b"latch-batch-v1\n";
const HEARTBEAT_LABEL: &[u8] = b"latch-heartbeat-v1\n";
const SNAPSHOT_LABEL: &[u8] = b"latch-snapshot-v1\n";
const KEY_PREFIX: &str = "ed25519:";
const PEM_BEGIN: &str = "-----BEGIN PRIVATE KEY-----";
const PEM_END: &str = "-----END PRIVATE KEY-----";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningError {
    #[error("a Latch public key looks like ed25519:<43 base64url characters>; got {0:?}")]
    PublicKey(String),
    #[error(
        "the signing key file is not an Ed25519 private key in PEM (PKCS#8, as `openssl genpkey -algorithm ed25519` writes)"
    )]
    PrivateKey,
    #[error("a signature looks like <key id>:<base64url>; got a malformed one")]
    SignatureFormat,
    #[error("signed by key {0}, which this verifier does not trust")]
    UnknownKey(String),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("could not generate a key: the system's random source failed")]
    Random,
}

/// A public key a verifier trusts.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The first 8 bytes of the key's SHA-256, in hex: what signatures name.
    pub fn id(&self) -> String {
        hex::encode(&Sha256::digest(self.0)[..8])
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .map_err(|_| SigningError::BadSignature)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id())
    }
}

impl FromStr for PublicKey {
    type Err = SigningError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || SigningError::PublicKey(text.chars().take(80).collect());
        let encoded = text.trim().strip_prefix(KEY_PREFIX).ok_or_else(bad)?;
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| bad())?;
        Ok(Self(bytes.try_into().map_err(|_| bad())?))
    }
}

/// latchd's private key. No `Debug` that shows it, never logged.
pub struct SigningKey {
    pair: Ed25519KeyPair,
    pkcs8: Vec<u8>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({})", self.public_key().id())
    }
}

impl SigningKey {
    pub fn generate() -> Result<Self, SigningError> {
        let document =
            Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| SigningError::Random)?;
        Self::from_pkcs8(document.as_ref())
    }

    pub fn from_pkcs8(der: &[u8]) -> Result<Self, SigningError> {
        let pair =
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| SigningError::PrivateKey)?;
        Ok(Self {
            pair,
            pkcs8: der.to_vec(),
        })
    }

    /// Reads a PEM `PRIVATE KEY` (PKCS#8).
    pub fn from_pem(text: &str) -> Result<Self, SigningError> {
        let body = text
            .trim()
            .strip_prefix(PEM_BEGIN)
            .and_then(|rest| rest.trim_end().strip_suffix(PEM_END))
            .ok_or(SigningError::PrivateKey)?;
        let joined: String = body.split_whitespace().collect();
        let der = STANDARD
            .decode(joined)
            .map_err(|_| SigningError::PrivateKey)?;
        Self::from_pkcs8(&der)
    }

    /// The key as PEM, for the key file (mode 0600).
    pub fn to_pem(&self) -> String {
        let encoded = STANDARD.encode(&self.pkcs8);
        let mut pem = String::from(PEM_BEGIN);
        pem.push('\n');
        for line in encoded.as_bytes().chunks(64) {
            pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
            pem.push('\n');
        }
        pem.push_str(PEM_END);
        pem.push('\n');
        pem
    }

    pub fn public_key(&self) -> PublicKey {
        let bytes: [u8; 32] = self
            .pair
            .public_key()
            .as_ref()
            .try_into()
            .expect("Ed25519 public keys are 32 bytes");
        PublicKey(bytes)
    }

    /// `<key id>:<base64url signature>` over `message`.
    pub fn sign(&self, message: &[u8]) -> String {
        format!(
            "{}:{}",
            self.public_key().id(),
            URL_SAFE_NO_PAD.encode(self.pair.sign(message).as_ref())
        )
    }
}

/// The keys a verifier trusts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedKeys(Vec<PublicKey>);

impl TrustedKeys {
    pub fn new(keys: impl IntoIterator<Item = PublicKey>) -> Self {
        let mut trusted = Self::default();
        for key in keys {
            trusted.add(key);
        }
        trusted
    }

    /// None configured: the verifier trusts the broker's permissions alone.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn keys(&self) -> &[PublicKey] {
        &self.0
    }

    pub fn add(&mut self, key: PublicKey) {
        if !self.0.contains(&key) {
            self.0.push(key);
        }
    }

    pub fn remove(&mut self, key: &PublicKey) {
        self.0.retain(|k| k != key);
    }

    /// Checks `signature` (as `SigningKey::sign` writes it) over `message`;
    /// returns the key that made it.
    pub fn verify(&self, message: &[u8], signature: &str) -> Result<&PublicKey, SigningError> {
        let (id, encoded) = signature
            .split_once(':')
            .ok_or(SigningError::SignatureFormat)?;
        let bytes = URL_SAFE_NO_PAD
            .decode(encoded)
            .map_err(|_| SigningError::SignatureFormat)?;
        let key = self
            .0
            .iter()
            .find(|k| k.id() == id)
            .ok_or_else(|| SigningError::UnknownKey(id.chars().take(32).collect()))?;
        key.verify(message, &bytes)?;
        Ok(key)
    }
}

/// What an event's signature covers.
pub fn event_message(
    log: LogId,
    position: Position,
    event: EventId,
    chain_hash: &[u8; 32],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(EVENT_LABEL.len() + 16 + 8 + 16 + 32);
    message.extend_from_slice(EVENT_LABEL);
    message.extend_from_slice(log.as_bytes());
    message.extend_from_slice(&position.get().to_be_bytes());
    message.extend_from_slice(event.as_uuid().as_bytes());
    message.extend_from_slice(chain_hash);
    message
}

/// What a batch's signature covers: the Merkle root over its events'
/// `event_message`s, positions `first..=last`.
pub fn batch_message(
    log: LogId,
    first: Position,
    last: Position,
    root: &[u8; 32],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(BATCH_LABEL.len() + 16 + 8 + 8 + 32);
    message.extend_from_slice(BATCH_LABEL);
    message.extend_from_slice(log.as_bytes());
    message.extend_from_slice(&first.get().to_be_bytes());
    message.extend_from_slice(&last.get().to_be_bytes());
    message.extend_from_slice(root);
    message
}

/// What a heartbeat's signature covers. `replicated` (HA) adds one byte;
/// without it the message is what it always was.
pub fn heartbeat_message(
    log: LogId,
    position: Position,
    chain_hash: &[u8; 32],
    time_millis: i64,
    replicated: bool,
) -> Vec<u8> {
    let mut message = Vec::with_capacity(HEARTBEAT_LABEL.len() + 16 + 8 + 32 + 8 + 1);
    message.extend_from_slice(HEARTBEAT_LABEL);
    message.extend_from_slice(log.as_bytes());
    message.extend_from_slice(&position.get().to_be_bytes());
    message.extend_from_slice(chain_hash);
    message.extend_from_slice(&time_millis.to_be_bytes());
    if replicated {
        message.push(b'R');
    }
    message
}

/// What a snapshot's signature covers.
pub fn snapshot_message(
    log: LogId,
    position: Position,
    chain_hash: &[u8; 32],
    snapshot: &[u8],
) -> Vec<u8> {
    let mut message = Vec::with_capacity(SNAPSHOT_LABEL.len() + 16 + 8 + 32 + 32);
    message.extend_from_slice(SNAPSHOT_LABEL);
    message.extend_from_slice(log.as_bytes());
    message.extend_from_slice(&position.get().to_be_bytes());
    message.extend_from_slice(chain_hash);
    message.extend_from_slice(&Sha256::digest(snapshot));
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_with_the_signer_s_key_only() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let log = LogId::new();
        let message = event_message(log, Position::new(7), EventId::new(), &[3; 32]);
        let signature = key.sign(&message);

        let trusted = TrustedKeys::new([key.public_key()]);
        assert_eq!(trusted.verify(&message, &signature), Ok(&key.public_key()));
        // Another position, another log, another key: refused.
        let mut moved = message.clone();
        moved[EVENT_LABEL.len() + 16 + 7] ^= 1;
        assert_eq!(
            trusted.verify(&moved, &signature),
            Err(SigningError::BadSignature)
        );
        let elsewhere = event_message(LogId::new(), Position::new(7), EventId::new(), &[3; 32]);
        assert!(trusted.verify(&elsewhere, &signature).is_err());
        assert!(matches!(
            trusted.verify(&message, &other.sign(&message)),
            Err(SigningError::UnknownKey(_))
        ));
        assert_eq!(
            trusted.verify(&message, "garbage"),
            Err(SigningError::SignatureFormat)
        );
        // A heartbeat's signature is not an event's, whatever the bytes.
        let beat = heartbeat_message(log, Position::new(7), &[3; 32], 0, false);
        assert!(trusted.verify(&beat, &signature).is_err());
    }

    #[test]
    fn keys_round_trip_through_their_written_forms() {
        let key = SigningKey::generate().unwrap();
        let pem = key.to_pem();
        assert!(pem.starts_with(PEM_BEGIN));
        let again = SigningKey::from_pem(&pem).unwrap();
        assert_eq!(again.public_key(), key.public_key());
        let written = key.public_key().to_string();
        assert!(written.starts_with("ed25519:"));
        assert_eq!(written.parse::<PublicKey>().unwrap(), key.public_key());
        assert!("ed25519:short".parse::<PublicKey>().is_err());
        assert!(SigningKey::from_pem("not a key").is_err());
        assert!(!format!("{key:?}").contains(&pem[30..60]));
    }

    #[test]
    fn an_openssl_ed25519_key_is_accepted() {
        // `openssl genpkey -algorithm ed25519` (PKCS#8 v1, no public key).
        let pem = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIMvqMnNzGH9qS89JuwT+Z1kEVGSa8BIcNFpks0umPMlY\n-----END PRIVATE KEY-----\n";
        let key = SigningKey::from_pem(pem).unwrap();
        let signature = key.sign(b"m");
        assert!(
            TrustedKeys::new([key.public_key()])
                .verify(b"m", &signature)
                .is_ok()
        );
    }
}
