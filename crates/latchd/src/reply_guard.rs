//! The guard every NATS reply latchd sends goes through: replies go only to
//! inbox subjects (`latch_bus::ReplySubject`), never under `latch.` and
//! never to a `$` subject. A request naming any other reply subject is
//! dropped unanswered, counted (`latch_nats_replies_refused_total`) and
//! logged: at warn at most once every ten seconds, at debug otherwise (the
//! requester chooses how often it happens).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use latch_bus::ReplySubject;

/// Requests dropped because of their reply subject, since latchd started.
static REFUSED: AtomicU64 = AtomicU64::new(0);
/// When a refusal was last logged at warn.
static LAST_WARNED: Mutex<Option<Instant>> = Mutex::new(None);
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Requests latchd refused to answer because of their reply subject.
pub fn refused_total() -> u64 {
    REFUSED.load(Ordering::Relaxed)
}

/// Where to answer a request on `subject` that names `reply`: `None` when
/// there is nothing to answer (no reply subject) or the reply subject is
/// refused (counted and logged).
pub fn reply_to(subject: &str, reply: Option<&str>) -> Option<ReplySubject> {
    let reply = reply?;
    match ReplySubject::parse(reply) {
        Ok(safe) => Some(safe),
        Err(why) => {
            let total = REFUSED.fetch_add(1, Ordering::Relaxed) + 1;
            // The subject is attacker-chosen: show a bounded, one-line start.
            let shown: String = reply
                .chars()
                .take(80)
                .map(|c| if c.is_control() { '?' } else { c })
                .collect();
            if should_warn() {
                tracing::warn!(%subject, reply = %shown, %why, refused_total = total, "NATS: dropped a request whose reply subject is not an inbox");
            } else {
                tracing::debug!(%subject, reply = %shown, %why, "NATS: dropped a request whose reply subject is not an inbox");
            }
            None
        }
    }
}

fn should_warn() -> bool {
    let Ok(mut last) = LAST_WARNED.lock() else {
        return false;
    };
    let now = Instant::now();
    match *last {
        Some(at) if now.duration_since(at) < WARN_EVERY => false,
        _ => {
            *last = Some(now);
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_inboxes_are_answered_and_refusals_are_counted() {
        let before = refused_total();
        assert!(reply_to("latch.cmd.account.list", None).is_none());
        assert_eq!(refused_total(), before, "no reply subject: nothing refused");
        assert_eq!(
            reply_to("latch.cmd.account.list", Some("_INBOX_ci.a.1"))
                .unwrap()
                .as_str(),
            "_INBOX_ci.a.1"
        );
        for bad in [
            "latch.events.token.issued.x",
            "$JS.API.STREAM.DELETE.LATCH_EVENTS",
            "latch.heartbeat",
        ] {
            assert!(reply_to("$SRV.PING", Some(bad)).is_none(), "{bad}");
        }
        assert!(refused_total() >= before + 3);
    }
}
