//! `RecordUpgradeTask`: rewrites a log's JSON records in the binary format
//! on a thread of its own while latchd serves (`latchd --upgrade-records`,
//! ADR 0027). Every hash stays as it was, so nothing that reads the log —
//! the chain, the index, checkpoints, followers — notices but the disk.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use latch_store::{EventStore, StoreError};

pub(crate) struct RecordUpgradeTask {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

impl RecordUpgradeTask {
    pub(crate) fn start(store: Arc<EventStore>) -> Result<Self, StoreError> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("latch-record-upgrade".into())
            .spawn(move || {
                let started = Instant::now();
                let mut reported = Instant::now();
                let outcome = store.upgrade_records(|done, of| {
                    if reported.elapsed().as_secs() >= 5 {
                        reported = Instant::now();
                        tracing::info!(done = done.get(), of = of.get(), "upgrading records to the binary format");
                    }
                    !stopping.load(Ordering::Relaxed)
                });
                match outcome {
                    Ok(report) if stopping.load(Ordering::Relaxed) => tracing::info!(
                        rewritten = report.rewritten,
                        "record upgrade stopped with latchd; the next --upgrade-records start goes on"
                    ),
                    Ok(report) => tracing::info!(
                        rewritten = report.rewritten,
                        already_binary = report.already_binary,
                        kept_json = report.kept_json,
                        took_ms = started.elapsed().as_millis() as u64,
                        "records upgraded to the binary format; the chain is unchanged"
                    ),
                    Err(error) => tracing::error!(%error, "the record upgrade stopped"),
                }
            })?;
        Ok(Self { stop, thread })
    }

    /// Stops it after the batch it is on, and waits.
    pub(crate) fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}
