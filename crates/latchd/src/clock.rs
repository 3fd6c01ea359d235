//! `Clock`: where latchd gets "now". Injected so tests can move time
//! without sleeping.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The machine's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told: for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn starting_at(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn advance(&self, by: TimeDelta) {
        *self.0.lock().expect("clock lock") += by;
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().expect("clock lock") = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().expect("clock lock")
    }
}

/// A clock read from a file holding one RFC 3339 time, re-read at every
/// call: end-to-end tests script days of activity against the real latchd
/// binary by rewriting the file (`latchd --clock-file`, hidden). If the file
/// cannot be read or parsed, the last good time stands.
#[derive(Debug)]
pub struct FileClock {
    path: std::path::PathBuf,
    last: Mutex<DateTime<Utc>>,
}

impl FileClock {
    /// Fails unless the file holds a time now.
    pub fn open(path: impl Into<std::path::PathBuf>) -> Result<Self, String> {
        let path = path.into();
        let now = Self::read(&path).ok_or_else(|| {
            format!(
                "the clock file {} must hold one RFC 3339 time",
                path.display()
            )
        })?;
        Ok(Self {
            path,
            last: Mutex::new(now),
        })
    }

    fn read(path: &std::path::Path) -> Option<DateTime<Utc>> {
        let text = std::fs::read_to_string(path).ok()?;
        DateTime::parse_from_rfc3339(text.trim())
            .ok()
            .map(|at| at.with_timezone(&Utc))
    }
}

impl Clock for FileClock {
    fn now(&self) -> DateTime<Utc> {
        let mut last = self.last.lock().expect("clock lock");
        if let Some(now) = Self::read(&self.path) {
            *last = now;
        }
        *last
    }
}
