//! `WebhookDispatcher`: delivers the log's events to webhook endpoints, at
//! least once and in log order per endpoint. Each endpoint has at most one
//! delivery in flight: its earliest pending one. A failed attempt (no 2xx
//! answer within `WebhookConfig::timeout`) is retried after
//! `retry_base × 2^(attempts−1)` (at most an hour); after `max_attempts` the
//! delivery is dead (dead-letter) and the endpoint moves on.
//! `latch webhook redeliver` makes a delivery pending again.
//!
//! Everything the dispatcher knows is in the side records (`WebhookBook`),
//! written before and after each attempt, so a restart — `kill -9`
//! included — resumes where it was; a delivery interrupted mid-attempt is
//! attempted again with the same `webhook-id`.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use latch_core::{Position, RecordedEvent};
use latch_store::EventStore;
use tokio::sync::watch;

use super::delivery::{Delivery, DeliveryStatus};
use super::webhook_book::WebhookBook;
use super::webhook_endpoint::{PayloadFormat, WebhookEndpoint};
use super::webhook_signature::sign;
use crate::clock::Clock;
use crate::event_codec::to_recorded;

/// How deliveries are retried (`--webhook-retry-base`,
/// `--webhook-max-attempts`).
#[derive(Debug, Clone, Copy)]
pub struct WebhookConfig {
    pub retry_base: Duration,
    pub max_attempts: u32,
    /// How long an endpoint may take to answer.
    pub timeout: Duration,
    /// Deliver to loopback, private and link-local addresses too
    /// (`--webhook-allow-private-addresses`); by default a webhook URL that
    /// resolves to one is refused at delivery, so whoever may add webhooks
    /// cannot make latchd call its neighbours or a cloud metadata service.
    pub allow_private: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(5),
            max_attempts: 10,
            timeout: Duration::from_secs(10),
            allow_private: false,
        }
    }
}

/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(3600);
/// Events looked at per endpoint per round.
const BATCH: usize = 256;

pub struct WebhookDispatcher {
    pub store: Arc<EventStore>,
    pub book: WebhookBook,
    pub clock: Arc<dyn Clock>,
    pub config: WebhookConfig,
}

/// The wait before attempt `attempts + 1`.
pub fn backoff(config: &WebhookConfig, attempts: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempts.saturating_sub(1).min(20));
    config.retry_base.saturating_mul(factor).min(MAX_BACKOFF)
}

impl WebhookDispatcher {
    /// Runs until `shutdown`.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let mut appended = self.store.subscribe();
        let this = Arc::new(self);
        loop {
            let worker = this.clone();
            let wait = tokio::task::spawn_blocking(move || worker.round())
                .await
                .unwrap_or(Duration::from_secs(1));
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                _ = appended.changed() => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// One pass over every endpoint; how long until something is due.
    fn round(&self) -> Duration {
        let mut wait = Duration::from_secs(1);
        let endpoints = match self.book.endpoints() {
            Ok(endpoints) => endpoints,
            Err(error) => {
                tracing::warn!(%error, "webhooks: could not read the endpoints");
                return wait;
            }
        };
        for endpoint in endpoints {
            match self.step(endpoint) {
                Ok(Some(due)) => wait = wait.min(due),
                Ok(None) => {}
                Err(error) => tracing::warn!(%error, "webhooks: a delivery step failed"),
            }
        }
        wait
    }

    /// Attempts the endpoint's next delivery if it is due, finding it in
    /// the log first if none is pending. `Some(wait)`: when it is due.
    fn step(&self, mut endpoint: WebhookEndpoint) -> Result<Option<Duration>, latch_store::StoreError> {
        let now = self.clock.now();
        let pending = match self.book.next_pending(endpoint.id)? {
            Some(pending) => pending,
            None => match self.next_from_log(&mut endpoint, now)? {
                Some(pending) => pending,
                None => return Ok(None),
            },
        };
        if let Some(at) = pending.next_attempt_at
            && at > now
        {
            return Ok(Some((at - now).to_std().unwrap_or_default()));
        }
        let Some(stored) = self.store.event(Position::new(pending.position))? else {
            return Ok(None);
        };
        let event = to_recorded(&stored)?;
        self.attempt(&endpoint, pending, &event);
        Ok(Some(Duration::ZERO))
    }

    /// The first event after the endpoint's cursor it wants, as a new
    /// pending delivery; the cursor moves past what was looked at.
    fn next_from_log(
        &self,
        endpoint: &mut WebhookEndpoint,
        now: DateTime<Utc>,
    ) -> Result<Option<Delivery>, latch_store::StoreError> {
        let events = self.store.read_after(Position::new(endpoint.cursor), BATCH)?;
        let Some(last) = events.last().map(|e| e.position.get()) else {
            return Ok(None);
        };
        for stored in &events {
            let event = to_recorded(stored)?;
            if endpoint.wants(&event) {
                let delivery = Delivery {
                    webhook_id: endpoint.id,
                    position: event.position.get(),
                    message_id: format!("msg_{}", event.envelope.id),
                    event_type: event.envelope.event.event_type().to_owned(),
                    status: DeliveryStatus::Pending,
                    attempts: 0,
                    next_attempt_at: Some(now),
                    last_attempt_at: None,
                    last_status: None,
                    last_error: None,
                    delivered_at: None,
                };
                endpoint.cursor = event.position.get();
                if !self.put_if_still_there(endpoint)? {
                    return Ok(None);
                }
                self.book.put_delivery(&delivery)?;
                return Ok(Some(delivery));
            }
        }
        endpoint.cursor = last;
        self.put_if_still_there(endpoint)?;
        Ok(None)
    }

    /// Writes the endpoint back unless it was removed meanwhile (a removal
    /// during a round must stay a removal).
    fn put_if_still_there(&self, endpoint: &WebhookEndpoint) -> Result<bool, latch_store::StoreError> {
        if self.book.endpoint(endpoint.id)?.is_none() {
            return Ok(false);
        }
        self.book.put_endpoint(endpoint)?;
        Ok(true)
    }

    fn attempt(&self, endpoint: &WebhookEndpoint, mut delivery: Delivery, event: &RecordedEvent) {
        let now = self.clock.now();
        let body = payload(endpoint.format, event);
        let timestamp = now.timestamp();
        let signature = sign(&endpoint.secret, &delivery.message_id, timestamp, &body);
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(self.config.timeout))
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        let refused = (!self.config.allow_private)
            .then(|| private_address(&endpoint.url))
            .flatten();
        let answer = match refused {
            Some(why) => Err(ureq::Error::Io(std::io::Error::other(why))),
            None => agent
            .post(&endpoint.url)
            .header("content-type", "application/json")
            .header("user-agent", "Latch-Webhooks/1")
            .header("webhook-id", &delivery.message_id)
            .header("webhook-timestamp", &timestamp.to_string())
            .header("webhook-signature", &signature)
            .send(&body[..]),
        };
        delivery.attempts += 1;
        delivery.last_attempt_at = Some(now);
        match answer {
            Ok(response) if response.status().is_success() => {
                delivery.status = DeliveryStatus::Delivered;
                delivery.last_status = Some(response.status().as_u16());
                delivery.last_error = None;
                delivery.next_attempt_at = None;
                delivery.delivered_at = Some(self.clock.now());
                tracing::info!(webhook = %endpoint.id, position = delivery.position, attempts = delivery.attempts, "webhook delivered");
            }
            failed => {
                let (status, error) = match failed {
                    Ok(response) => (Some(response.status().as_u16()), format!("answered {}", response.status())),
                    Err(error) => (None, error.to_string()),
                };
                delivery.last_status = status;
                delivery.last_error = Some(error.chars().take(300).collect());
                if delivery.attempts >= self.config.max_attempts {
                    delivery.status = DeliveryStatus::Dead;
                    delivery.next_attempt_at = None;
                    tracing::warn!(webhook = %endpoint.id, position = delivery.position, attempts = delivery.attempts, error = ?delivery.last_error, "webhook delivery failed every attempt: dead (latch webhook redeliver)");
                } else {
                    let wait = backoff(&self.config, delivery.attempts);
                    delivery.next_attempt_at =
                        Some(self.clock.now() + TimeDelta::from_std(wait).unwrap_or(TimeDelta::hours(1)));
                    tracing::info!(webhook = %endpoint.id, position = delivery.position, attempts = delivery.attempts, retry_in_ms = wait.as_millis() as u64, error = ?delivery.last_error, "webhook delivery failed; retrying");
                }
            }
        }
        match self.book.endpoint(endpoint.id) {
            Ok(Some(_)) => {
                if let Err(error) = self.book.put_delivery(&delivery) {
                    tracing::warn!(%error, "webhooks: could not record a delivery");
                }
            }
            // Removed meanwhile: its deliveries went with it.
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, "webhooks: could not read the endpoints"),
        }
    }
}

/// Why `url` may not be delivered to: it resolves to a loopback, private,
/// link-local or unspecified address. `None`: it may (or does not resolve,
/// which the attempt reports).
fn private_address(url: &str) -> Option<String> {
    let uri: axum::http::Uri = url.parse().ok()?;
    let host = uri.host()?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if uri.scheme_str() == Some("https") { 443 } else { 80 });
    let addresses = std::net::ToSocketAddrs::to_socket_addrs(&(host, port)).ok()?;
    for address in addresses {
        let ip = address.ip().to_canonical();
        let private = match ip {
            std::net::IpAddr::V4(v4) => {
                v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast()
                    || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1])
            }
            std::net::IpAddr::V6(v6) => {
                v6.is_loopback() || v6.is_unspecified() || (v6.segments()[0] & 0xfe00) == 0xfc00
                    || (v6.segments()[0] & 0xffc0) == 0xfe80
            }
        };
        if private {
            return Some(format!(
                "refused: {host} resolves to {ip}, a loopback, private or link-local address (allow with --webhook-allow-private-addresses)"
            ));
        }
    }
    None
}

/// The body of a delivery of `event`.
pub fn payload(format: PayloadFormat, event: &RecordedEvent) -> Vec<u8> {
    let envelope = &event.envelope;
    let body = match format {
        PayloadFormat::Standard => {
            let mut data = envelope.event.body();
            if let serde_json::Value::Object(fields) = &mut data {
                fields.insert("event_id".into(), envelope.id.to_string().into());
                fields.insert("position".into(), event.position.get().into());
                fields.insert(
                    "actor".into(),
                    serde_json::to_value(envelope.actor).unwrap_or_default(),
                );
            }
            serde_json::json!({
                "type": envelope.event.event_type(),
                "timestamp": envelope.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "data": data,
            })
        }
        PayloadFormat::Slack => {
            let about = [
                envelope.event.account_id().map(|a| format!("account {a}")),
                envelope.event.token_id().map(|t| format!("token {t}")),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", ");
            // Slack reads <…> as links and mentions: escape what the event
            // carries (reasons, locations) so it is shown, not acted on.
            let escape = |text: String| text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            serde_json::json!({
                "text": format!(
                    "Latch: *{}* — {}{}",
                    envelope.event.event_type(),
                    escape(latch_audit::summary(&envelope.event)),
                    if about.is_empty() { String::new() } else { format!(" ({about})") }
                ),
            })
        }
    };
    serde_json::to_vec(&body).expect("a payload serialises")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_the_base_up_to_an_hour() {
        let config = WebhookConfig {
            retry_base: Duration::from_secs(5),
            ..WebhookConfig::default()
        };
        assert_eq!(backoff(&config, 1), Duration::from_secs(5));
        assert_eq!(backoff(&config, 2), Duration::from_secs(10));
        assert_eq!(backoff(&config, 4), Duration::from_secs(40));
        assert_eq!(backoff(&config, 30), MAX_BACKOFF);
    }
}

#[cfg(test)]
mod payload_tests {
    use super::*;
    use latch_core::{Actor, Event, EventEnvelope, EventId, TokenId};

    #[test]
    fn a_slack_payload_shows_markup_instead_of_acting_on_it() {
        let event = RecordedEvent {
            position: Position::new(7),
            version: 1,
            envelope: EventEnvelope {
                id: EventId::new(),
                at: Utc::now(),
                actor: Actor::System,
                request_id: None,
                idempotency_key_sha256: None,
                event: Event::TokenRevoked {
                    token_id: TokenId::new(),
                    account_id: latch_core::AccountId::new(),
                    reason: "<!channel> & <https://evil.example|click>".into(),
                },
            },
        };
        let slack: serde_json::Value = serde_json::from_slice(&payload(PayloadFormat::Slack, &event)).unwrap();
        let text = slack["text"].as_str().unwrap();
        assert!(text.contains("&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;"), "{text}");
        let standard: serde_json::Value = serde_json::from_slice(&payload(PayloadFormat::Standard, &event)).unwrap();
        assert_eq!(standard["type"], "token.revoked");
        assert_eq!(standard["data"]["position"], 7);
    }
}
