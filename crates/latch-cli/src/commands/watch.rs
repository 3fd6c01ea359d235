//! `latch watch`: events live over NATS as latchd publishes them.

use clap::Args;

use super::events::EVENT_COLUMNS;
use crate::client::CliError;
use crate::output::{self, Output};

#[derive(Args)]
pub struct WatchArgs {
    /// Only events about this account (id).
    #[arg(long)]
    account: Option<String>,
    /// Only events of this type, e.g. token.revoked.
    #[arg(long = "type")]
    event_type: Option<String>,
    /// Which of latchd's keys to trust: with one, events that latchd did
    /// not sign are not shown (each refusal is said on stderr).
    #[command(flatten)]
    trust: latch_bus::FeedTrustArgs,
}

/// Subscribes (core NATS) to the events matching the filters and prints
/// each as it arrives: one table row, or one JSON line.
pub fn run(out: Output, nats: &latch_bus::NatsConnection, args: WatchArgs) -> Result<(), CliError> {
    // What may be shown: the URL without credentials.
    let nats_url = nats.redacted_url();
    let nats_url = nats_url.as_str();
    if let Some(event_type) = &args.event_type
        && event_type.split('.').count() != 2
    {
        return Err(CliError::Usage(format!(
            "--type {event_type:?}: event types look like token.revoked"
        )));
    }
    let subject = format!(
        "latch.events.{}.{}",
        args.event_type.as_deref().unwrap_or("*.*"),
        args.account.as_deref().unwrap_or("*")
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Other(e.to_string()))?;
    runtime.block_on(async {
        use futures::StreamExt;
        let unreachable = |e: &dyn std::fmt::Display| CliError::Unreachable { url: nats_url.to_owned(), reason: e.to_string() };
        let client = nats.connect().await.map_err(|e| unreachable(&e))?;
        let mut messages = client.subscribe(subject.clone()).await.map_err(|e| unreachable(&e))?;
        client.flush().await.map_err(|e| unreachable(&e))?;
        eprintln!("watching {subject} on {nats_url}");
        if out == Output::Table {
            output::print_table(&[], EVENT_COLUMNS);
        }
        let trusted = args
            .trust
            .trusted_keys()
            .map_err(|e| CliError::Usage(e.to_string()))?;
        if trusted.is_empty() {
            eprintln!("latch watch: no --latch-public-key (LATCH_PUBLIC_KEY): showing what the broker delivers, unverified");
        }
        let mut chain = latch_bus::FeedChain::live(trusted);
        while let Some(message) = messages.next().await {
            let header = |name: &str| message.headers.as_ref().and_then(|h| h.get(name)).map(|v| v.as_str());
            let recorded = match chain.accept(header, &message.payload) {
                Ok(recorded) => recorded,
                Err(latch_bus::FeedRejection::Malformed(_)) => continue,
                Err(rejection) => {
                    eprintln!("latch watch: refused a message on {}: {rejection}", message.subject);
                    continue;
                }
            };
            let event = serde_json::json!({
                "position": recorded.position.get(),
                "at": recorded.envelope.at,
                "type": recorded.envelope.event.event_type(),
                "data": recorded.envelope.event.body(),
                "actor": match recorded.envelope.actor {
                    latch_core::Actor::System => serde_json::json!({ "kind": "system" }),
                    latch_core::Actor::Token { account_id, token_id } => serde_json::json!({ "kind": "token", "account_id": account_id.to_string(), "token_id": token_id.to_string() }),
                },
            });
            match out {
                Output::Table => output::print_rows(&[&event], EVENT_COLUMNS),
                _ => println!("{}", serde_json::to_string(&event).unwrap_or_default()),
            }
        }
        Ok(())
    })
}
