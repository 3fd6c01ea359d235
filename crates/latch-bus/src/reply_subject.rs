//! `ReplySubject`: the one rule for where latchd may send a reply.
//!
//! A requester names its reply subject, and NATS delivers whatever latchd
//! publishes there to whoever subscribes to it — including JetStream. A
//! reply to `latch.events.…` would put a message that is no Latch event into
//! the stream `LATCH_EVENTS`; a reply to `$JS.API.STREAM.DELETE.LATCH_EVENTS`
//! would delete it. So latchd answers only inbox subjects: the first token
//! is `_INBOX` or starts with `_INBOX_` (a per-client prefix such as
//! `_INBOX_ci`, so NATS permissions can give each user only its own
//! inboxes), at least one token follows, and the subject holds no wildcard,
//! whitespace or empty token. Everything else (anything under `latch.`, any
//! `$` subject) is refused: the request is dropped.

use std::fmt;

/// The first token of every inbox.
pub const INBOX: &str = "_INBOX";
/// Longer subjects are refused (NATS inboxes are far shorter).
pub const MAX_LEN: usize = 256;

/// A subject latchd may publish a reply to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplySubject(String);

/// Why a reply subject was refused. Names the rule, never echoes more than
/// the subject's start (it is attacker-chosen).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeReply {
    #[error(
        "the reply subject is not an inbox (its first token must be `_INBOX` or start with `_INBOX_`)"
    )]
    NotAnInbox,
    #[error(
        "the reply subject is malformed (empty token, wildcard, whitespace or longer than {MAX_LEN})"
    )]
    Malformed,
}

impl ReplySubject {
    /// The reply subject if it is a safe inbox.
    pub fn parse(subject: &str) -> Result<Self, UnsafeReply> {
        check(subject, true)?;
        Ok(Self(subject.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// The inbox prefix the requester claims: every token but the last two
    /// (`_INBOX_ci` for `_INBOX_ci.<nuid>.<n>`), or the first token. Only a
    /// claim: NATS does not say who sent a request, but a requester that
    /// names another user's prefix never sees the reply when permissions
    /// give each user only its own inboxes.
    pub fn claimed_prefix(&self) -> &str {
        let first = self.0.split('.').next().unwrap_or(INBOX);
        let tokens = self.0.split('.').count();
        if tokens <= 3 {
            return first;
        }
        let mut end = self.0.len();
        for _ in 0..2 {
            end = self.0[..end].rfind('.').unwrap_or(first.len());
        }
        &self.0[..end]
    }
}

impl fmt::Display for ReplySubject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether latchd may reply to `subject`.
pub fn is_safe_reply(subject: &str) -> bool {
    check(subject, true).is_ok()
}

/// Whether `prefix` is a valid inbox prefix for a client
/// (`ConnectOptions::custom_inbox_prefix`): an inbox subject of its own.
pub fn check_inbox_prefix(prefix: &str) -> Result<(), UnsafeReply> {
    check(prefix, false)
}

fn check(subject: &str, needs_more_tokens: bool) -> Result<(), UnsafeReply> {
    if subject.is_empty() || subject.len() > MAX_LEN {
        return Err(UnsafeReply::Malformed);
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let first = tokens[0];
    let is_inbox = first == INBOX
        || first
            .strip_prefix(INBOX)
            .and_then(|rest| rest.strip_prefix('_'))
            .is_some_and(|user| !user.is_empty());
    if !is_inbox {
        return Err(UnsafeReply::NotAnInbox);
    }
    let malformed = |token: &&str| {
        token.is_empty()
            || token
                .chars()
                .any(|c| c == '*' || c == '>' || c.is_whitespace() || c.is_control())
    };
    if tokens.iter().any(malformed) {
        return Err(UnsafeReply::Malformed);
    }
    if needs_more_tokens && tokens.len() < 2 {
        return Err(UnsafeReply::NotAnInbox);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inboxes_are_safe() {
        for subject in [
            "_INBOX.abc",
            "_INBOX.abc.1",
            "_INBOX_ci.nuid123.7",
            "_INBOX_latchd.x",
            "_INBOX.ci.x.y",
        ] {
            assert!(is_safe_reply(subject), "{subject}");
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for subject in [
            "latch.events.token.issued.x",
            "latch.heartbeat",
            "latch.cmd.token.issue",
            "$JS.API.STREAM.DELETE.LATCH_EVENTS",
            "$SRV.PING",
            "$SYS.REQ.SERVER.PING",
            "_INBOX",
            "_INBOX.",
            "_INBOX..x",
            "_INBOX.>",
            "_INBOX.*",
            "_INBOX.a b",
            "_INBOX_",
            "_INBOX_.x",
            "_INBOXES.x",
            "x._INBOX.y",
            "",
            " _INBOX.x",
        ] {
            assert!(!is_safe_reply(subject), "{subject:?}");
        }
        assert!(!is_safe_reply(&format!("_INBOX.{}", "a".repeat(MAX_LEN))));
    }

    #[test]
    fn inbox_prefixes() {
        assert!(check_inbox_prefix("_INBOX_ci").is_ok());
        assert!(check_inbox_prefix("_INBOX.ci").is_ok());
        assert!(check_inbox_prefix("latch.events").is_err());
        assert!(check_inbox_prefix("_INBOX_ci.>").is_err());
    }

    #[test]
    fn the_claimed_prefix_is_the_inbox_prefix() {
        let claimed = |s: &str| ReplySubject::parse(s).unwrap().claimed_prefix().to_owned();
        assert_eq!(claimed("_INBOX_ci.nuid.1"), "_INBOX_ci");
        assert_eq!(claimed("_INBOX.nuid.1"), "_INBOX");
        assert_eq!(claimed("_INBOX.lost"), "_INBOX");
        assert_eq!(claimed("_INBOX.team.ci.nuid.3"), "_INBOX.team.ci");
    }
}
