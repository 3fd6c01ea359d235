//! `ServeLimits`: latchd's flags (and `LATCH_*` variables) that bound what
//! clients can make it spend — connections, time, failed requests, stored
//! activity — before and after they authenticate.

use std::time::Duration;

use latch_core::Span;

use crate::activity_pruner::ActivityPruner;
use crate::api::{FailureBudget, Rate, RequestLimits};
use crate::http_server::HttpServerLimits;

#[derive(Debug, Clone, clap::Args)]
pub struct ServeLimits {
    /// Failed requests (401, 403) each source address may make, refilled at
    /// this rate (`N/s`, `N/m` or `N/h`); after that a request without a
    /// valid token gets 429 with Retry-After and nothing is stored for it.
    /// IPv6 sources count per /64. Requests with a valid token are never
    /// limited.
    #[arg(
        long,
        env = "LATCH_UNAUTHENTICATED_RATE",
        default_value = "10/m",
        global = true
    )]
    pub unauthenticated_rate: Rate,
    /// How many failed requests a source may make at once before the rate
    /// applies.
    #[arg(
        long,
        env = "LATCH_UNAUTHENTICATED_BURST",
        default_value_t = 120,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub unauthenticated_burst: u32,
    /// A connection that has not sent a whole request head within this time
    /// (also: an idle keep-alive connection) is closed.
    #[arg(
        long,
        env = "LATCH_HEADER_READ_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub header_read_timeout: Span,
    /// A request body that has not arrived within this time is answered 408
    /// and its connection closed.
    #[arg(
        long,
        env = "LATCH_BODY_READ_TIMEOUT",
        default_value = "10s",
        global = true
    )]
    pub body_read_timeout: Span,
    /// Open HTTP connections at most; more are closed as soon as they are
    /// accepted.
    #[arg(
        long,
        env = "LATCH_MAX_CONNECTIONS",
        default_value_t = 1024,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_connections: u32,
    /// Open HTTP connections from one source address (IPv6: one /64) at
    /// most.
    #[arg(
        long,
        env = "LATCH_MAX_CONNECTIONS_PER_SOURCE",
        default_value_t = 256,
        value_parser = clap::value_parser!(u32).range(1..),
        global = true
    )]
    pub max_connections_per_source: u32,
    /// API activity records (`GET /v1/audit`) older than this are deleted;
    /// the event log is kept forever.
    #[arg(
        long,
        env = "LATCH_ACTIVITY_RETENTION",
        default_value = "90d",
        global = true
    )]
    pub activity_retention: Span,
    /// How often latchd deletes expired activity records (also at start).
    #[arg(
        long,
        env = "LATCH_ACTIVITY_PRUNE_EVERY",
        default_value = "1h",
        hide = true,
        global = true
    )]
    pub activity_prune_every: Span,
}

/// The flags' defaults, for a latchd started from code (`NodeConfig::new`).
/// A test holds them to the flags' `default_value`s.
impl Default for ServeLimits {
    fn default() -> Self {
        Self {
            unauthenticated_rate: "10/m".parse().expect("a valid rate"),
            unauthenticated_burst: 120,
            header_read_timeout: Span::from_seconds(10),
            body_read_timeout: Span::from_seconds(10),
            max_connections: 1024,
            max_connections_per_source: 256,
            activity_retention: Span::days(90),
            activity_prune_every: Span::hours(1),
        }
    }
}

impl ServeLimits {
    /// What the API enforces per request.
    pub fn request_limits(&self) -> RequestLimits {
        RequestLimits {
            failures: FailureBudget {
                burst: self.unauthenticated_burst,
                per_second: self.unauthenticated_rate.per_second(),
            },
            body_read_timeout: seconds(self.body_read_timeout),
        }
    }

    /// What the HTTP server enforces per connection.
    pub fn server_limits(&self) -> HttpServerLimits {
        HttpServerLimits {
            header_read_timeout: seconds(self.header_read_timeout),
            max_connections: self.max_connections as usize,
            max_connections_per_source: self.max_connections_per_source as usize,
        }
    }

    /// The pruner of activity records for `store`.
    pub fn activity_pruner(
        &self,
        store: std::sync::Arc<latch_store::EventStore>,
        clock: std::sync::Arc<dyn crate::clock::Clock>,
    ) -> ActivityPruner {
        ActivityPruner {
            store,
            clock,
            retention: self.activity_retention.to_chrono(),
            every: seconds(self.activity_prune_every),
        }
    }
}

fn seconds(span: Span) -> Duration {
    Duration::from_secs(span.as_seconds())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::ServeLimits;

    #[derive(Parser)]
    struct Flags {
        #[command(flatten)]
        limits: ServeLimits,
    }

    #[test]
    fn the_default_is_what_the_flags_default_to() {
        let flags = Flags::parse_from(["latchd"]).limits;
        assert_eq!(format!("{flags:?}"), format!("{:?}", ServeLimits::default()));
    }
}
