//! `ReportBudget`: how many tokens each leak channel may report per
//! minute. Reports are cheap to make and each may revoke: a channel past
//! its budget is answered 429 (GitLab's API documents 429; GitHub
//! retries), so a flood cannot keep the command handler busy.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Tokens one channel may report per minute.
pub const TOKENS_PER_MINUTE: u64 = 60_000;
const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct ReportBudget {
    windows: Mutex<HashMap<String, (Instant, u64)>>,
}

/// The most channels tracked (callers of `POST /v1/leaks` each have one).
const MAX_CHANNELS: usize = 10_000;

impl ReportBudget {
    /// Takes `tokens` from `channel`'s budget for this minute, or says how
    /// long until the next minute.
    pub fn take(&self, channel: &str, tokens: u64, now: Instant) -> Result<(), Duration> {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_CHANNELS && !windows.contains_key(channel) {
            windows.retain(|_, (started, _)| now.duration_since(*started) < WINDOW);
        }
        let (started, used) = windows.entry(channel.to_owned()).or_insert((now, 0));
        if now.duration_since(*started) >= WINDOW {
            *started = now;
            *used = 0;
        }
        if used.saturating_add(tokens) > TOKENS_PER_MINUTE {
            return Err(WINDOW.saturating_sub(now.duration_since(*started)));
        }
        *used += tokens;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_channel_past_its_budget_waits_for_the_next_minute_and_others_do_not() {
        let budget = ReportBudget::default();
        let t = Instant::now();
        assert!(budget.take("github", TOKENS_PER_MINUTE, t).is_ok());
        assert!(budget.take("github", 1, t + Duration::from_secs(59)).is_err());
        assert!(budget.take("gitlab", 1, t).is_ok());
        assert!(budget.take("github", 1, t + Duration::from_secs(60)).is_ok());
    }
}
