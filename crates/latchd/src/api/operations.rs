//! `/healthz`, `/readyz`, `/metrics`: for the people who run latchd.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::api::app_state::AppState;

/// The process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations", responses((status = 200, description = "alive")))]
pub async fn healthz() -> &'static str {
    "ok\n"
}

/// State is rebuilt and commands are accepted.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "ready"), (status = 503, description = "not ready yet")))]
pub async fn readyz(State(app): State<AppState>) -> impl IntoResponse {
    if app.is_ready() {
        let position = app.commands.state().position().get();
        // Readiness is about accepting commands, which latchd does while
        // NATS is down; the relay's state is reported, not gated on.
        let relay = match &app.relay {
            Some(relay) => {
                let published = relay.published.load(Ordering::Relaxed);
                let connected = relay.connected.load(Ordering::Relaxed);
                format!(
                    " relay_connected={connected} relay_published={published} relay_lag={}",
                    position.saturating_sub(published)
                )
            }
            None => String::new(),
        };
        (
            StatusCode::OK,
            format!("ready position={position}{relay}\n"),
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned())
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    app.metrics.render(&mut out);
    let m = app.commands.metrics();
    let counters = [
        ("accepted", &m.commands_accepted),
        ("rejected", &m.commands_rejected),
        ("replayed", &m.commands_replayed),
        ("failed", &m.commands_failed),
    ];
    out.push_str(
        "# HELP latch_commands_total Commands by outcome.\n# TYPE latch_commands_total counter\n",
    );
    for (outcome, counter) in counters {
        let _ = writeln!(
            out,
            "latch_commands_total{{outcome=\"{outcome}\"}} {}",
            counter.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP latch_events_appended_total Events appended.\n# TYPE latch_events_appended_total counter\nlatch_events_appended_total {}",
        m.events_appended.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP latch_batches_written_total Synced group-commit batches.\n# TYPE latch_batches_written_total counter\nlatch_batches_written_total {}",
        m.batches_written.load(Ordering::Relaxed)
    );
    let (position, accounts, tokens) = {
        let state = app.commands.state();
        (
            state.position().get(),
            state.account_count(),
            state.token_count(),
        )
    };
    let _ = writeln!(
        out,
        "# HELP latch_log_position Position of the last event.\n# TYPE latch_log_position gauge\nlatch_log_position {position}"
    );
    let _ = writeln!(
        out,
        "# HELP latch_accounts Accounts in the projection.\n# TYPE latch_accounts gauge\nlatch_accounts {accounts}"
    );
    let _ = writeln!(
        out,
        "# HELP latch_tokens Tokens in the projection.\n# TYPE latch_tokens gauge\nlatch_tokens {tokens}"
    );
    if let Some(relay) = &app.relay {
        let published = relay.published.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP latch_relay_published_position Last position the NATS stream acknowledged.\n# TYPE latch_relay_published_position gauge\nlatch_relay_published_position {published}"
        );
        let _ = writeln!(
            out,
            "# HELP latch_relay_lag_events Events in the log not yet in the stream.\n# TYPE latch_relay_lag_events gauge\nlatch_relay_lag_events {}",
            position.saturating_sub(published)
        );
        let _ = writeln!(
            out,
            "# HELP latch_relay_connected Whether the relay is connected to NATS.\n# TYPE latch_relay_connected gauge\nlatch_relay_connected {}",
            u8::from(relay.connected.load(Ordering::Relaxed))
        );
        let _ = writeln!(
            out,
            "# HELP latch_relay_failures_total Relay sessions ended by an error.\n# TYPE latch_relay_failures_total counter\nlatch_relay_failures_total {}",
            relay.failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP latch_relay_repairs_total Times the stream was found behind and refilled.\n# TYPE latch_relay_repairs_total counter\nlatch_relay_repairs_total {}",
            relay.repairs.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP latch_relay_foreign_messages_total Messages in the stream that are not Latch events, skipped.\n# TYPE latch_relay_foreign_messages_total counter\nlatch_relay_foreign_messages_total {}",
            relay.foreign_messages.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        out,
        "# HELP latch_nats_replies_refused_total NATS requests dropped because their reply subject is not an inbox.\n# TYPE latch_nats_replies_refused_total counter\nlatch_nats_replies_refused_total {}",
        crate::reply_guard::refused_total()
    );
    let _ = writeln!(
        out,
        "# HELP latch_scheduler_pending_notes Time-based notes (expiring, expired, rotation due) waiting in the deadline index.\n# TYPE latch_scheduler_pending_notes gauge\nlatch_scheduler_pending_notes {}",
        app.scheduler.pending.load(Ordering::Relaxed)
    );
    let _ = writeln!(
        out,
        "# HELP latch_scheduler_notes_total Time-based events the scheduler appended.\n# TYPE latch_scheduler_notes_total counter\nlatch_scheduler_notes_total {}",
        app.scheduler.noted.load(Ordering::Relaxed)
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
