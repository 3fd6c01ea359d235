//! Backups: a consistent copy of the event log (and its side records) that
//! is itself a data directory, so that `latchd --data-dir <backup>` and
//! `latch audit … --data-dir <backup>` run on it as they are.
//!
//! The copy is a RocksDB checkpoint (hard links where the target is on the
//! same filesystem, copies otherwise): a point-in-time view that includes
//! every group-committed batch before it and none after, taken while latchd
//! keeps writing. The admin token is not copied: it is a secret, and the
//! log holds only its digest, so the token that worked before still works
//! against the restored log.
//!
//! A backup can also upgrade its copy's records to the binary format
//! (ADR 0027): the copy is rewritten, the running log is not, and every
//! hash, so the head the backup reports, stays as it was.

use std::path::{Path, PathBuf};

use latch_store::{ChainHash, EventStore, RecordUpgrade, StoreError};

/// Where a data directory keeps its event log.
pub const LOG_DIR: &str = "log";

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("the backup directory must be an absolute path: {0}")]
    NotAbsolute(PathBuf),
    #[error("{0} already exists: a backup goes into a new directory")]
    Exists(PathBuf),
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("taking the checkpoint: {0}")]
    Store(#[from] StoreError),
    #[error(
        "the backup in {dir} was taken, but upgrading its records stopped: {source}. \
         It holds the log as it was (records it rewrote read the same)"
    )]
    Upgrade { dir: PathBuf, source: StoreError },
}

/// What a backup holds: the log up to `position`, ending in `head_hash`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTaken {
    pub dir: PathBuf,
    pub position: u64,
    pub head_hash: ChainHash,
    /// What upgrading the copy's records did, if it was asked for.
    pub upgraded: Option<RecordUpgrade>,
}

/// Takes a backup of `store` into `to` (absolute, not existing yet; its
/// parent is created), with its records upgraded to the binary format if
/// `upgrade_records`, then opens the copy read-only to report exactly what
/// it holds.
pub fn take_backup(
    store: &EventStore,
    to: &Path,
    upgrade_records: bool,
) -> Result<BackupTaken, BackupError> {
    if !to.is_absolute() {
        return Err(BackupError::NotAbsolute(to.to_path_buf()));
    }
    if to.exists() {
        return Err(BackupError::Exists(to.to_path_buf()));
    }
    std::fs::create_dir_all(to).map_err(|source| BackupError::Create {
        path: to.to_path_buf(),
        source,
    })?;
    let log = to.join(LOG_DIR);
    if let Err(error) = store.checkpoint(&log) {
        let _ = std::fs::remove_dir_all(to);
        return Err(error.into());
    }
    // The copy's files are hard links: RocksDB writes new files and never
    // changes these, so the running log is untouched. A log that cannot be
    // upgraded (a broken chain) still gets its backup: that is when one is
    // needed most.
    let upgraded = upgrade_records
        .then(|| EventStore::open(&log).and_then(|copy| copy.upgrade_records(|_, _| true)))
        .transpose()
        .map_err(|source| BackupError::Upgrade {
            dir: to.to_path_buf(),
            source,
        })?;
    let copy = EventStore::open_read_only(&log)?;
    let head = copy.head();
    Ok(BackupTaken {
        dir: to.to_path_buf(),
        position: head.position.get(),
        head_hash: head.hash,
        upgraded,
    })
}
