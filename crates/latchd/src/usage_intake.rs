//! `UsageIntake`: takes verifiers' usage reports from `latch.usage.*` into
//! the usage book and the audit trail (`GET /v1/audit`). A report only counts for tokens that belong to the
//! account its subject names; anything else is dropped. Whoever may publish
//! on `latch.usage.>` can claim uses (never access): restrict it with NATS
//! permissions to your verifiers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use latch_bus::{UsageReport, subject};
use tokio::sync::watch;

use crate::api::ActivityRecord;
use crate::command_handler::CommandHandle;
use crate::usage_book::UsageBook;

pub struct UsageIntake {
    pub nats: latch_bus::NatsConnection,
    pub commands: CommandHandle,
    pub book: Arc<UsageBook>,
}

impl UsageIntake {
    /// Runs until `shutdown`, reconnecting as needed.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let connected = match self.nats.options().await {
                Ok(options) => options
                    .name("latchd usage intake")
                    .connection_timeout(Duration::from_secs(2))
                    .connect(self.nats.url.as_str())
                    .await
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match connected {
                Ok(client) => match client.subscribe(subject::USAGE_WILDCARD).await {
                    Ok(mut reports) => loop {
                        tokio::select! {
                            message = reports.next() => match message {
                                Some(message) => self.take(&message.subject, &message.payload),
                                None => break,
                            },
                            _ = shutdown.changed() => return,
                        }
                    },
                    Err(error) => {
                        tracing::warn!(%error, "usage: could not subscribe to verifier reports")
                    }
                },
                Err(error) => tracing::debug!(%error, "usage: NATS unavailable; retrying"),
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    fn take(&self, subject_name: &str, payload: &[u8]) {
        let Ok(report) = UsageReport::decode(payload) else {
            tracing::debug!(
                subject = subject_name,
                "usage: dropping a report that does not parse"
            );
            return;
        };
        if subject_name != subject::usage_subject(report.account_id) {
            tracing::debug!(
                subject = subject_name,
                "usage: dropping a report whose account does not match its subject"
            );
            return;
        }
        let state = self.commands.state();
        for used in report.uses {
            if state
                .token(used.token_id)
                .is_some_and(|token| token.account_id == report.account_id)
                && used.count > 0
            {
                self.book.record(
                    used.token_id,
                    used.first_at,
                    used.last_at,
                    used.last_from,
                    used.count,
                );
                let record =
                    ActivityRecord::verifier_use(&report.verifier, report.account_id, &used);
                if let Err(error) = record.store(self.commands.store()) {
                    tracing::warn!(%error, "usage: could not write the audit record of a verifier's report");
                }
            }
        }
    }
}
