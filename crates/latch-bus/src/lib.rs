//! The NATS contract of Latch, shared by latchd's relay, the verifier
//! library and the CLI: stream settings, subjects, headers, the CloudEvents
//! codec, the heartbeat, verifiers' usage reports, the command subjects, the
//! reply rules (inboxes only, sealed replies for secrets), and the state
//! snapshot verifiers start from, the feed's signatures, and
//! `NatsConnection` (how to reach and authenticate to the broker, with
//! async-nats). Depends on `latch-core` and async-nats, never on RocksDB: a
//! service that embeds a verifier never builds it.
#![forbid(unsafe_code)]

pub mod batch_tree;
pub mod cloud_event;
pub mod command_route;
pub mod feed_signing;
pub mod headers;
pub mod heartbeat;
#[cfg(feature = "cli")]
mod feed_trust_args;
#[cfg(feature = "cli")]
mod nats_args;
mod nats_connection;
pub mod reply_subject;
pub mod signed_feed;
pub mod sealed_reply;
pub mod stream_settings;
pub mod subject;
pub mod usage_report;
pub mod verifier_snapshot;

pub use cloud_event::{CloudEvent, CodecError, decode, encode};
pub use command_route::{COMMAND_ROUTES, CommandRoute};
pub use feed_signing::{PublicKey, SigningError, SigningKey, TrustedKeys};
pub use heartbeat::Heartbeat;
#[cfg(feature = "cli")]
pub use feed_trust_args::FeedTrustArgs;
#[cfg(feature = "cli")]
pub use nats_args::NatsArgs;
pub use nats_connection::{NatsConnectError, NatsConnection, redact_url};
pub use reply_subject::{ReplySubject, is_safe_reply};
pub use signed_feed::{
    BatchEvent, FeedChain, FeedRejection, SignedEvent, sign_batch, sign_event, sign_heartbeat,
    SignatureCache, signed_headers, signed_headers_cached, signed_record, verify_event_signature,
};
pub use stream_settings::{STREAM_NAME, StreamSettings};
pub use subject::event_subject;
pub use usage_report::{TokenUse, UsageReport};
