//! `NatsClientClaim`: what a command over NATS says about who sent it, for
//! the activity audit.
//!
//! NATS tells a subscriber nothing about a message's sender: not its NATS
//! user or account, not its connection id, not its address. What a request
//! carries is its reply subject and its headers, both chosen by the sender.
//! So the audit records, clearly labelled as claims, the reply inbox prefix
//! (with per-user inbox permissions, as `deploy/nats.conf` sets them, only
//! the user owning that prefix can read the reply, so a false claim gets
//! its sender nothing) and the client name in the `Latch-Client` header
//! (the CLI sends `latch <version>`). Who acted is established by the
//! bearer token, as over HTTP; this only says which NATS client carried it.

use latch_bus::ReplySubject;

/// The request header naming the client program (a claim).
pub const CLIENT_HEADER: &str = "Latch-Client";
/// Claims are attacker-chosen text: kept short and printable.
const MAX_CLAIM: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsClientClaim {
    inbox_prefix: String,
    client: Option<String>,
}

impl NatsClientClaim {
    pub fn of(reply: &ReplySubject, client: Option<&str>) -> Self {
        Self {
            inbox_prefix: printable(reply.claimed_prefix()),
            client: client.map(printable).filter(|c| !c.is_empty()),
        }
    }

    /// What the activity record shows where an address would be, e.g.
    /// `nats (claimed: inbox _INBOX_ci, client "latch 0.1.0")`.
    pub fn audit_text(&self) -> String {
        match &self.client {
            Some(client) => format!(
                "nats (claimed: inbox {}, client {client:?})",
                self.inbox_prefix
            ),
            None => format!("nats (claimed: inbox {})", self.inbox_prefix),
        }
    }
}

fn printable(text: &str) -> String {
    text.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(MAX_CLAIM)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_labelled_bounded_and_printable() {
        let reply = ReplySubject::parse("_INBOX_ci.nuid.1").unwrap();
        assert_eq!(
            NatsClientClaim::of(&reply, Some("latch 0.1.0")).audit_text(),
            "nats (claimed: inbox _INBOX_ci, client \"latch 0.1.0\")"
        );
        assert_eq!(
            NatsClientClaim::of(&reply, None).audit_text(),
            "nats (claimed: inbox _INBOX_ci)"
        );
        let shown = NatsClientClaim::of(&reply, Some(&format!("x\n\u{1b}[31m{}", "y".repeat(500))))
            .audit_text();
        assert!(!shown.contains('\n') && !shown.contains('\u{1b}'));
        assert!(shown.len() < 120, "{shown}");
    }
}
