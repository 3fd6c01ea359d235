//! Notifications by webhook: every event an endpoint asked for, delivered
//! following the Standard Webhooks conventions (`webhook-id`,
//! `webhook-timestamp`, `webhook-signature`: HMAC-SHA256 with the
//! endpoint's secret, shown once), at least once, in log order per
//! endpoint, retried with exponential backoff, dead after
//! `max_attempts`, redeliverable. Deliveries carry events, which never hold
//! a token secret.

mod delivery;
mod webhook_book;
mod webhook_dispatcher;
mod webhook_endpoint;
mod webhook_signature;

pub use delivery::{Delivery, DeliveryStatus};
pub use webhook_book::WebhookBook;
pub use webhook_dispatcher::{WebhookConfig, WebhookDispatcher, backoff, payload};
pub use webhook_endpoint::{PayloadFormat, WebhookEndpoint};
pub use webhook_signature::{new_secret, sign};
