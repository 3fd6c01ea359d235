//! `/healthz`, `/readyz`, `/metrics`: for the people who run latchd.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::api::app_state::AppState;
use crate::api::prometheus_text::{MetricKind, PrometheusText};

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
        // A standby runs no relay (the leader publishes): no relay fields.
        let standby = app
            .ha
            .get()
            .is_some_and(|ha| ha.role() == crate::ha::Role::Standby);
        let relay = match &app.relay {
            Some(relay) if !standby => {
                let published = relay.published.load(Ordering::Relaxed);
                let connected = relay.connected.load(Ordering::Relaxed);
                format!(
                    " relay_connected={connected} relay_published={published} relay_lag={}",
                    position.saturating_sub(published)
                )
            }
            _ => String::new(),
        };
        let ha = match app.ha.get() {
            Some(ha) => {
                let leader = ha.leader();
                format!(
                    " ha_node={} ha_role={} ha_leader={} ha_leader_url={} ha_lease_revision={} ha_stream_sequence={} ha_lag={}",
                    ha.node_id,
                    match ha.role() {
                        crate::ha::Role::Leader => "leader",
                        crate::ha::Role::Standby => "standby",
                    },
                    leader.as_ref().map_or("none", |l| l.node_id.as_str()),
                    leader.as_ref().map_or("none", |l| l.url.as_str()),
                    ha.lease_revision().unwrap_or(0),
                    ha.applied_sequence.load(Ordering::Relaxed),
                    ha.lag(),
                )
            }
            None => String::new(),
        };
        (
            StatusCode::OK,
            format!("ready position={position}{relay}{ha}\n"),
        )
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n".to_owned())
    }
}

/// Prometheus text format.
#[utoipa::path(get, path = "/metrics", tag = "operations", responses((status = 200, description = "Prometheus text")))]
pub async fn metrics(State(app): State<AppState>) -> impl IntoResponse {
    use MetricKind::{Counter, Gauge};
    let mut out = PrometheusText::default();
    app.metrics.render(&mut out);
    let m = app.commands.metrics();
    out.family("latch_commands_total", Counter, "Commands by outcome.");
    for (outcome, counter) in [
        ("accepted", &m.commands_accepted),
        ("rejected", &m.commands_rejected),
        ("replayed", &m.commands_replayed),
        ("failed", &m.commands_failed),
    ] {
        out.sample(
            "latch_commands_total",
            &format!("outcome=\"{outcome}\""),
            counter.load(Ordering::Relaxed),
        );
    }
    let (position, accounts, tokens) = {
        let state = app.commands.state();
        (
            state.position().get(),
            state.account_count() as u64,
            state.token_count() as u64,
        )
    };
    // One line per metric: name, type, help, value.
    #[rustfmt::skip]
    let mut singles: Vec<(&str, MetricKind, &str, u64)> = vec![
        ("latch_events_appended_total", Counter, "Events appended.", m.events_appended.load(Ordering::Relaxed)),
        ("latch_batches_written_total", Counter, "Synced group-commit batches.", m.batches_written.load(Ordering::Relaxed)),
        ("latch_log_position", Gauge, "Position of the last event.", position),
        ("latch_accounts", Gauge, "Accounts in the projection.", accounts),
        ("latch_tokens", Gauge, "Tokens in the projection.", tokens),
    ];
    let standby = app
        .ha
        .get()
        .is_some_and(|ha| ha.role() == crate::ha::Role::Standby);
    if let Some(relay) = app.relay.as_ref().filter(|_| !standby) {
        let published = relay.published.load(Ordering::Relaxed);
        #[rustfmt::skip]
        singles.extend([
            ("latch_relay_published_position", Gauge, "Last position the NATS stream acknowledged.", published),
            ("latch_relay_lag_events", Gauge, "Events in the log not yet in the stream.", position.saturating_sub(published)),
            ("latch_relay_connected", Gauge, "Whether the relay is connected to NATS.", u64::from(relay.connected.load(Ordering::Relaxed))),
            ("latch_relay_failures_total", Counter, "Relay sessions ended by an error.", relay.failures.load(Ordering::Relaxed)),
            ("latch_relay_repairs_total", Counter, "Times the stream was found behind and refilled.", relay.repairs.load(Ordering::Relaxed)),
            ("latch_relay_foreign_messages_total", Counter, "Messages in the stream that are not Latch events, skipped.", relay.foreign_messages.load(Ordering::Relaxed)),
        ]);
    }
    if let Some(ha) = app.ha.get() {
        #[rustfmt::skip]
        singles.extend([
            ("latch_ha_leader", Gauge, "1 while this node leads its HA cluster, 0 as a standby.", u64::from(ha.role() == crate::ha::Role::Leader)),
            ("latch_ha_stream_sequence", Gauge, "The replicated stream's sequence this node's log holds up to.", ha.applied_sequence.load(Ordering::Relaxed)),
            ("latch_ha_replication_lag_messages", Gauge, "Stream messages not yet in this node's log.", ha.lag()),
            ("latch_ha_elections_won_total", Counter, "Times this node became leader.", ha.elections_won.load(Ordering::Relaxed)),
            ("latch_ha_step_downs_total", Counter, "Times this node stopped leading.", ha.step_downs.load(Ordering::Relaxed)),
            ("latch_ha_events_replicated_total", Counter, "Events this node appended from the stream.", ha.events_replicated.load(Ordering::Relaxed)),
            ("latch_ha_foreign_messages_total", Counter, "Stream messages that are no event of this cluster, skipped.", ha.foreign_messages.load(Ordering::Relaxed)),
            ("latch_ha_tails_set_aside_total", Counter, "Local tails set aside because the stream holds other events.", ha.tails_set_aside.load(Ordering::Relaxed)),
        ]);
    }
    #[rustfmt::skip]
    singles.extend([
        ("latch_nats_replies_refused_total", Counter, "NATS requests dropped because their reply subject is not an inbox.", crate::reply_guard::refused_total()),
        ("latch_scheduler_pending_notes", Gauge, "Time-based notes (expiring, expired, rotation due) waiting in the deadline index.", app.scheduler.pending.load(Ordering::Relaxed)),
        ("latch_scheduler_notes_total", Counter, "Time-based events the scheduler appended.", app.scheduler.noted.load(Ordering::Relaxed)),
    ]);
    for (name, kind, help, value) in singles {
        out.single(name, kind, help, value);
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        out.into_string(),
    )
}
