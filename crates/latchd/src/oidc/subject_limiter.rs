//! `SubjectLimiter`: failed OIDC exchanges per issuer and subject, so one
//! workload (or someone replaying its tokens) cannot flood latchd; a
//! source address has its own budget besides (`FailureLimiter`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures one issuer/subject may have within `WINDOW`.
pub const FAILURES_PER_WINDOW: u32 = 10;
pub const WINDOW: Duration = Duration::from_secs(60);
/// Subjects tracked at most; the oldest windows are dropped beyond it.
const MAX_SUBJECTS: usize = 10_000;

#[derive(Default)]
pub struct SubjectLimiter {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl SubjectLimiter {
    /// `Err(wait)` while `issuer`/`subject` has spent its failures.
    pub fn check(&self, issuer: &str, subject: &str, now: Instant) -> Result<(), Duration> {
        let windows = self.windows.lock().expect("limiter lock");
        match windows.get(&key(issuer, subject)) {
            Some((started, count))
                if *count >= FAILURES_PER_WINDOW && now.duration_since(*started) < WINDOW =>
            {
                Err(WINDOW - now.duration_since(*started))
            }
            _ => Ok(()),
        }
    }

    /// One more failure of `issuer`/`subject`.
    pub fn fail(&self, issuer: &str, subject: &str, now: Instant) {
        let mut windows = self.windows.lock().expect("limiter lock");
        if windows.len() >= MAX_SUBJECTS {
            windows.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
        }
        let entry = windows.entry(key(issuer, subject)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

fn key(issuer: &str, subject: &str) -> String {
    format!("{issuer} {subject}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_limited_after_its_failures_until_the_window_ends() {
        let limiter = SubjectLimiter::default();
        let start = Instant::now();
        for _ in 0..FAILURES_PER_WINDOW {
            assert!(limiter.check("i", "s", start).is_ok());
            limiter.fail("i", "s", start);
        }
        assert!(limiter.check("i", "s", start).is_err());
        assert!(limiter.check("i", "other", start).is_ok(), "per subject");
        assert!(limiter.check("i", "s", start + WINDOW).is_ok());
    }
}
