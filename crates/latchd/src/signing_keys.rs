//! latchd's signing keys: the Ed25519 keys it signs every published event,
//! heartbeat and verifier snapshot with (see `latch_bus::feed_signing`).
//!
//! By default they live in `<data-dir>/signing-keys/`, one PEM file (mode
//! 0600, in a 0700 directory) per key, named `<from>-<key id>.pem`: the key
//! signs the events from position `from` on, until the next key's `from`.
//! The first key is made on first start. `latchd key rotate` appends a
//! `signing_key.rotated` event (signed, like every event up to it, with the
//! old key) and the new key signs from the next position. Old keys stay, so
//! a stream that has to be refilled is signed exactly as it was.
//!
//! `--signing-key FILE` instead signs everything with one provisioned key
//! (an HA cluster's nodes share it, like a TLS key); rotating such a key is
//! a provisioning matter, not `latchd key rotate`.
//!
//! A key file is trusted only if the log agrees: a key starting at `from >
//! 1` must follow a `signing_key.rotated` at `from - 1` that names it. A file
//! left by a rotation that crashed before its event was written is ignored
//! (with a warning), so latchd never signs with a key no verifier can learn.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use latch_bus::{PublicKey, SigningKey};
use latch_core::{Actor, Command, Event, Position};
use latch_store::EventStore;

use crate::command_handler::{CommandHandle, CommandRequest};
use crate::command_outcome::{CommandRejection, HandlerFailure};
use crate::event_codec;

pub const SIGNING_KEY_DIR: &str = "signing-keys";

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Key {
        path: PathBuf,
        source: latch_bus::SigningError,
    },
    #[error("reading the log to check the signing keys: {0}")]
    Store(#[from] latch_store::StoreError),
    #[error("latchd signs with the key given by --signing-key; rotate it by provisioning a new one")]
    Provisioned,
    #[error(
        "the rotation event landed at {landed:?}, not at {expected}: something else wrote to the log; run `latchd key rotate` again with latchd stopped"
    )]
    Raced {
        expected: Position,
        landed: Option<Position>,
    },
    #[error(transparent)]
    Handler(#[from] HandlerFailure),
    #[error("the rotation was refused: {0}")]
    Rejected(#[from] CommandRejection),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyringError + '_ {
    move |source| KeyringError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The keys latchd signs with, each from the position it starts at.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// Sorted by `from`; never empty.
    keys: Vec<(Position, Arc<SigningKey>)>,
    /// Where new keys go; `None` with `--signing-key`.
    dir: Option<PathBuf>,
}

impl Keyring {
    /// One provisioned key for every position (`--signing-key FILE`).
    pub fn provisioned(file: &Path) -> Result<Self, KeyringError> {
        let text = std::fs::read_to_string(file).map_err(io(file))?;
        let key = SigningKey::from_pem(&text).map_err(|source| KeyringError::Key {
            path: file.to_owned(),
            source,
        })?;
        Ok(Self {
            keys: vec![(Position::FIRST, Arc::new(key))],
            dir: None,
        })
    }

    /// One new key held in memory only: for tests and benches that run a
    /// relay in-process.
    pub fn ephemeral() -> Self {
        Self {
            keys: vec![(
                Position::FIRST,
                Arc::new(SigningKey::generate().expect("the system's random source works")),
            )],
            dir: None,
        }
    }

    /// The keys in `<data-dir>/signing-keys`, checked against the log; the
    /// first one is made if there is none.
    pub fn open(data_dir: &Path, store: &EventStore) -> Result<Self, KeyringError> {
        let dir = data_dir.join(SIGNING_KEY_DIR);
        create_private_dir(&dir)?;
        let mut keys = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let path = entry.map_err(io(&dir))?.path();
            let Some(from) = path
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| n.ends_with(".pem"))
                .and_then(|n| n.split('-').next())
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n > 0)
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let key = SigningKey::from_pem(&text).map_err(|source| KeyringError::Key {
                path: path.clone(),
                source,
            })?;
            let from = Position::new(from);
            if from > Position::FIRST && !names_key(store, from, &key.public_key())? {
                tracing::warn!(
                    path = %path.display(),
                    "ignoring a signing key that no signing_key.rotated event in the log names (a rotation that did not finish?)"
                );
                continue;
            }
            keys.push((from, Arc::new(key)));
        }
        keys.sort_by_key(|(from, _)| *from);
        if keys.first().is_none_or(|(from, _)| *from != Position::FIRST) {
            let key = SigningKey::generate().map_err(|source| KeyringError::Key {
                path: dir.clone(),
                source,
            })?;
            write_key(&dir, Position::FIRST, &key)?;
            tracing::info!(public_key = %key.public_key(), "created latchd's signing key; give verifiers this public key (latchd key show)");
            keys.insert(0, (Position::FIRST, Arc::new(key)));
        }
        Ok(Self {
            keys,
            dir: Some(dir),
        })
    }

    /// The key that signs the event at `position` (and heartbeats and
    /// snapshots vouching for it).
    pub fn for_position(&self, position: Position) -> &SigningKey {
        let index = self
            .keys
            .partition_point(|(from, _)| *from <= position)
            .saturating_sub(1);
        &self.keys[index].1
    }

    /// The key new events are signed with.
    pub fn current(&self) -> &SigningKey {
        &self.keys.last().expect("a keyring is never empty").1
    }

    /// Every key with the position it signs from, oldest first.
    pub fn public_keys(&self) -> Vec<(Position, PublicKey)> {
        self.keys
            .iter()
            .map(|(from, key)| (*from, key.public_key()))
            .collect()
    }
}

/// `latchd key rotate`, with latchd stopped (the caller holds the log):
/// writes the new key file first, then appends the `signing_key.rotated`
/// event that names it. Returns the new public key and the position it
/// signs from.
pub async fn rotate(
    keyring: &Keyring,
    commands: &CommandHandle,
    operator: &str,
) -> Result<(PublicKey, Position), KeyringError> {
    let dir = keyring.dir.as_ref().ok_or(KeyringError::Provisioned)?;
    let key = SigningKey::generate().map_err(|source| KeyringError::Key {
        path: dir.clone(),
        source,
    })?;
    let public_key = key.public_key();
    // The rotation event takes the next position; the new key the one after.
    let from = commands.store().head().position.next().next();
    let path = write_key(dir, from, &key)?;
    let mut request = CommandRequest::new(
        Actor::System,
        Command::RotateSigningKey {
            public_key: public_key.to_string(),
        },
    );
    request.request_id = Some(format!("latchd key rotate by {operator}"));
    let receipt = match commands.submit(request).await {
        Ok(Ok(receipt)) => receipt,
        Ok(Err(rejection)) => {
            let _ = std::fs::remove_file(&path);
            return Err(rejection.into());
        }
        Err(failure) => {
            let _ = std::fs::remove_file(&path);
            return Err(failure.into());
        }
    };
    let expected = Position::new(from.get() - 1);
    match receipt.events.first().map(|e| e.position) {
        Some(at) if at == expected => Ok((public_key, from)),
        landed => {
            // Something else wrote in between: the file's `from` is wrong,
            // and the keyring will ignore it (no rotation event before it).
            let _ = std::fs::remove_file(&path);
            Err(KeyringError::Raced { expected, landed })
        }
    }
}

/// Whether the event just before `from` is a rotation naming `key`.
fn names_key(store: &EventStore, from: Position, key: &PublicKey) -> Result<bool, KeyringError> {
    let Some(stored) = store.event(Position::new(from.get() - 1))? else {
        return Ok(false);
    };
    let recorded = event_codec::to_recorded(&stored)?;
    Ok(matches!(
        &recorded.envelope.event,
        Event::SigningKeyRotated { public_key } if *public_key == key.to_string()
    ))
}

fn write_key(dir: &Path, from: Position, key: &SigningKey) -> Result<PathBuf, KeyringError> {
    use std::io::Write;
    let path = dir.join(format!(
        "{:020}-{}.pem",
        from.get(),
        key.public_key().id()
    ));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(io(&path))?;
    file.write_all(key.to_pem().as_bytes()).map_err(io(&path))?;
    file.sync_all().map_err(io(&path))?;
    Ok(path)
}

fn create_private_dir(dir: &Path) -> Result<(), KeyringError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(io(dir))
}
