//! Sealed replies: a reply over NATS that only its requester can read.
//!
//! Any client allowed to subscribe to the inbox a reply goes to reads it, so
//! a reply that carries a token secret (`token.issue`, `token.rotate`,
//! `token.rotate_self`) must not travel in clear. The requester makes an
//! ephemeral X25519 key pair for the one request and sends its public key
//! in the header `Latch-Reply-Key` (base64url, no padding). latchd makes
//! its own ephemeral X25519 key pair, agrees a shared secret, derives a
//! key with HKDF-SHA256 (salt: the requester's then latchd's public key;
//! info: `latch sealed reply v1`), seals the whole reply body with
//! ChaCha20-Poly1305 and sends its public key in `Latch-Sealed-Key`.
//!
//! The nonce is fixed (all zeros): both key pairs are ephemeral, so every
//! derived key seals exactly one message, and a nonce need only be unique
//! per key. Reusing an `ReplyOpener` is impossible (opening consumes it),
//! and `seal` makes a fresh key pair on every call.
//!
//! Only the body is sealed: the status and error headers stay readable, and
//! they never carry a secret.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::{aead, agreement, hkdf, rand};

/// The request header with the requester's ephemeral public key.
pub const REPLY_KEY_HEADER: &str = "Latch-Reply-Key";
/// The reply header with latchd's ephemeral public key: the body is sealed.
pub const SEALED_KEY_HEADER: &str = "Latch-Sealed-Key";

const INFO: &[u8] = b"latch sealed reply v1";
const PUBLIC_KEY_LEN: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("{REPLY_KEY_HEADER} must be an X25519 public key: 32 bytes, base64url without padding")]
    BadPublicKey,
    #[error("the sealed reply does not open: wrong key, or altered on the way")]
    DoesNotOpen,
    #[error("no randomness for a key pair")]
    NoRandomness,
}

/// The requester's half: the private key kept until the reply comes.
pub struct ReplyOpener {
    private: agreement::EphemeralPrivateKey,
    public: [u8; PUBLIC_KEY_LEN],
}

/// Never shows the private key.
impl std::fmt::Debug for ReplyOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplyOpener")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl ReplyOpener {
    /// A fresh key pair for one request.
    pub fn new() -> Result<Self, SealError> {
        let (private, public) = key_pair()?;
        Ok(Self { private, public })
    }

    /// The value of `Latch-Reply-Key`.
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.public)
    }

    /// The reply body, given the reply's `Latch-Sealed-Key`.
    pub fn open(self, sealed_key: &str, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        let theirs = decode_public_key(sealed_key).map_err(|_| SealError::DoesNotOpen)?;
        let key = agree(self.private, &theirs, &self.public, &theirs)
            .map_err(|_| SealError::DoesNotOpen)?;
        let mut in_out = sealed.to_vec();
        let plain = key
            .open_in_place(nonce(), aead::Aad::from(INFO), &mut in_out)
            .map_err(|_| SealError::DoesNotOpen)?;
        Ok(plain.to_vec())
    }
}

/// Seals `body` to the requester's `Latch-Reply-Key`: `(Latch-Sealed-Key,
/// sealed body)`.
pub fn seal(reply_key: &str, body: &[u8]) -> Result<(String, Vec<u8>), SealError> {
    let theirs = decode_public_key(reply_key)?;
    let (private, ours) = key_pair()?;
    let key = agree(private, &theirs, &theirs, &ours)?;
    let mut in_out = body.to_vec();
    key.seal_in_place_append_tag(nonce(), aead::Aad::from(INFO), &mut in_out)
        .map_err(|_| SealError::BadPublicKey)?;
    Ok((URL_SAFE_NO_PAD.encode(ours), in_out))
}

/// Checks a `Latch-Reply-Key` without using it.
pub fn check_reply_key(reply_key: &str) -> Result<(), SealError> {
    decode_public_key(reply_key).map(|_| ())
}

fn key_pair() -> Result<(agreement::EphemeralPrivateKey, [u8; PUBLIC_KEY_LEN]), SealError> {
    let rng = rand::SystemRandom::new();
    let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &rng)
        .map_err(|_| SealError::NoRandomness)?;
    let public = private
        .compute_public_key()
        .map_err(|_| SealError::NoRandomness)?;
    let mut bytes = [0u8; PUBLIC_KEY_LEN];
    bytes.copy_from_slice(public.as_ref());
    Ok((private, bytes))
}

fn decode_public_key(text: &str) -> Result<[u8; PUBLIC_KEY_LEN], SealError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(text.trim())
        .map_err(|_| SealError::BadPublicKey)?;
    bytes.try_into().map_err(|_| SealError::BadPublicKey)
}

/// The ChaCha20-Poly1305 key both sides derive. The salt binds the key to
/// both public keys, requester's first.
fn agree(
    private: agreement::EphemeralPrivateKey,
    theirs: &[u8; PUBLIC_KEY_LEN],
    requester: &[u8; PUBLIC_KEY_LEN],
    responder: &[u8; PUBLIC_KEY_LEN],
) -> Result<aead::LessSafeKey, SealError> {
    let peer = agreement::UnparsedPublicKey::new(&agreement::X25519, theirs);
    let mut salt = [0u8; 2 * PUBLIC_KEY_LEN];
    salt[..PUBLIC_KEY_LEN].copy_from_slice(requester);
    salt[PUBLIC_KEY_LEN..].copy_from_slice(responder);
    // ring refuses a peer key whose agreement is all zeros (a low-order point).
    agreement::agree_ephemeral(private, &peer, |shared| {
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, &salt).extract(shared);
        let okm = prk
            .expand(&[INFO], &aead::CHACHA20_POLY1305)
            .map_err(|_| SealError::BadPublicKey)?;
        Ok(aead::LessSafeKey::new(aead::UnboundKey::from(okm)))
    })
    .map_err(|_| SealError::BadPublicKey)?
}

/// Every derived key seals one message: see the module documentation.
fn nonce() -> aead::Nonce {
    aead::Nonce::assume_unique_for_key([0u8; aead::NONCE_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reply as latchd sends it for an issue: with a fresh token secret.
    fn secret_reply() -> Vec<u8> {
        let secret = latch_core::TokenSecret::generate(&mut ::rand::rng());
        format!(r#"{{"id":"t-1","token":"{}"}}"#, secret.expose()).into_bytes()
    }

    #[test]
    fn a_sealed_reply_opens_with_the_requesters_key_only() {
        let opener = ReplyOpener::new().unwrap();
        let reply = secret_reply();
        let (sealed_key, sealed) = seal(&opener.public_key(), &reply).unwrap();
        assert!(
            !sealed.windows(6).any(|w| w == b"latch_"),
            "the secret is not in the sealed body"
        );
        assert_eq!(opener.open(&sealed_key, &sealed).unwrap(), reply);
    }

    #[test]
    fn another_key_does_not_open_it() {
        let opener = ReplyOpener::new().unwrap();
        let eavesdropper = ReplyOpener::new().unwrap();
        let (sealed_key, sealed) = seal(&opener.public_key(), &secret_reply()).unwrap();
        assert_eq!(
            eavesdropper.open(&sealed_key, &sealed),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn a_tampered_reply_does_not_open() {
        let (sealed_key, mut sealed) = {
            let opener = ReplyOpener::new().unwrap();
            let public = opener.public_key();
            let (k, s) = seal(&public, &secret_reply()).unwrap();
            // Same opener for the check below.
            let mut altered = s.clone();
            altered[3] ^= 1;
            assert_eq!(opener.open(&k, &altered), Err(SealError::DoesNotOpen));
            (k, s)
        };
        let opener = ReplyOpener::new().unwrap();
        sealed.truncate(sealed.len() - 1);
        assert!(opener.open(&sealed_key, &sealed).is_err());
        // A swapped responder key does not open either.
        let opener = ReplyOpener::new().unwrap();
        let (_, sealed) = seal(&opener.public_key(), &secret_reply()).unwrap();
        let (other_key, _) = seal(&opener.public_key(), &secret_reply()).unwrap();
        assert_eq!(
            opener.open(&other_key, &sealed),
            Err(SealError::DoesNotOpen)
        );
    }

    #[test]
    fn bad_reply_keys_are_refused() {
        for key in [
            "",
            "not base64!",
            "AAAA",
            &URL_SAFE_NO_PAD.encode([7u8; 33]),
        ] {
            assert_eq!(check_reply_key(key), Err(SealError::BadPublicKey), "{key}");
            assert_eq!(seal(key, &secret_reply()), Err(SealError::BadPublicKey), "{key}");
        }
        // The all-zero point agrees on an all-zero secret: refused.
        let zero = URL_SAFE_NO_PAD.encode([0u8; 32]);
        assert_eq!(seal(&zero, &secret_reply()), Err(SealError::BadPublicKey));
    }
}
