//! The NATS micro service protocol (ADR-32), as much of it as latchd's
//! command service needs: discovery and statistics on `$SRV.PING`,
//! `$SRV.INFO` and `$SRV.STATS`, each also as `$SRV.<verb>.<name>` and
//! `$SRV.<verb>.<name>.<id>`, answered with the `io.nats.micro.v1.*`
//! JSON shapes `nats micro ls` and every NATS client's service API read.
//!
//! latchd implements it itself rather than use a client library's service
//! framework so that every reply it sends, discovery included, goes through
//! its reply guard (`reply_guard`): a framework that answers any reply
//! subject lets anyone make latchd publish into `latch.events.>`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};

/// The discovery verbs answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    Ping,
    Info,
    Stats,
}

impl Verb {
    pub const ALL: [Verb; 3] = [Verb::Ping, Verb::Info, Verb::Stats];

    fn as_str(self) -> &'static str {
        match self {
            Verb::Ping => "PING",
            Verb::Info => "INFO",
            Verb::Stats => "STATS",
        }
    }
}

/// One endpoint as discovery shows it, with its counters.
#[derive(Debug)]
pub struct Endpoint {
    pub name: String,
    pub subject: String,
    pub queue_group: String,
    requests: AtomicU64,
    errors: AtomicU64,
    processing_nanos: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Endpoint {
    pub fn new(name: impl Into<String>, subject: impl Into<String>, queue_group: &str) -> Self {
        Self {
            name: name.into(),
            subject: subject.into(),
            queue_group: queue_group.to_owned(),
            requests: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            processing_nanos: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    /// Counts one request served in `took`; `error` is `(code, detail)`
    /// for an error reply.
    pub fn record(&self, took: Duration, error: Option<(u16, &str)>) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.processing_nanos.fetch_add(
            u64::try_from(took.as_nanos()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        if let Some((code, detail)) = error {
            self.errors.fetch_add(1, Ordering::Relaxed);
            if let Ok(mut last) = self.last_error.lock() {
                *last = Some(format!("{code}:{detail}"));
            }
        }
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    fn info(&self) -> Value {
        json!({
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "metadata": {},
        })
    }

    fn stats(&self) -> Value {
        let requests = self.requests.load(Ordering::Relaxed);
        let errors = self.errors();
        let processing = self.processing_nanos.load(Ordering::Relaxed);
        let last_error = self
            .last_error
            .lock()
            .ok()
            .and_then(|last| last.clone())
            .unwrap_or_default();
        json!({
            "name": self.name,
            "subject": self.subject,
            "queue_group": self.queue_group,
            "num_requests": requests,
            "num_errors": errors,
            "processing_time": processing,
            "average_processing_time": processing.checked_div(requests).unwrap_or(0),
            "last_error": last_error,
            // Replies whose Latch-Status is an error.
            "data": { "error_replies": errors },
        })
    }
}

/// A service instance: its identity, its endpoints and their counters.
#[derive(Debug)]
pub struct MicroService {
    pub name: &'static str,
    /// Unique per process; one token.
    pub id: String,
    pub version: &'static str,
    pub description: &'static str,
    pub started: DateTime<Utc>,
    pub endpoints: Vec<Endpoint>,
    by_subject: HashMap<String, usize>,
}

impl MicroService {
    pub fn new(
        name: &'static str,
        version: &'static str,
        description: &'static str,
        endpoints: Vec<Endpoint>,
    ) -> Self {
        let by_subject = endpoints
            .iter()
            .enumerate()
            .map(|(at, e)| (e.subject.clone(), at))
            .collect();
        Self {
            name,
            id: uuid::Uuid::now_v7().simple().to_string(),
            version,
            description,
            started: Utc::now(),
            endpoints,
            by_subject,
        }
    }

    /// The endpoint serving exactly `subject`.
    pub fn endpoint(&self, subject: &str) -> Option<&Endpoint> {
        self.by_subject
            .get(subject)
            .and_then(|&at| self.endpoints.get(at))
    }

    /// The subjects to subscribe to (not in a queue group: every instance
    /// answers discovery) and the verb each one asks.
    pub fn verb_subjects(&self) -> Vec<(String, Verb)> {
        Verb::ALL
            .iter()
            .flat_map(|&verb| {
                let v = verb.as_str();
                [
                    (format!("$SRV.{v}"), verb),
                    (format!("$SRV.{v}.{}", self.name), verb),
                    (format!("$SRV.{v}.{}.{}", self.name, self.id), verb),
                ]
            })
            .collect()
    }

    /// The reply to a discovery request.
    pub fn answer(&self, verb: Verb) -> Vec<u8> {
        let answer = match verb {
            Verb::Ping => json!({
                "type": "io.nats.micro.v1.ping_response",
                "name": self.name,
                "id": self.id,
                "version": self.version,
                "metadata": {},
            }),
            Verb::Info => json!({
                "type": "io.nats.micro.v1.info_response",
                "name": self.name,
                "id": self.id,
                "description": self.description,
                "version": self.version,
                "metadata": {},
                "endpoints": self.endpoints.iter().map(Endpoint::info).collect::<Vec<_>>(),
            }),
            Verb::Stats => json!({
                "type": "io.nats.micro.v1.stats_response",
                "name": self.name,
                "id": self.id,
                "version": self.version,
                "started": self.started.to_rfc3339_opts(SecondsFormat::Nanos, true),
                "endpoints": self.endpoints.iter().map(Endpoint::stats).collect::<Vec<_>>(),
            }),
        };
        serde_json::to_vec(&answer).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> MicroService {
        MicroService::new(
            "latch",
            "0.1.0",
            "test",
            vec![
                Endpoint::new("latch.cmd.a", "latch.cmd.a", "latch"),
                Endpoint::new("unknown", "latch.cmd.>", "latch-unknown"),
            ],
        )
    }

    #[test]
    fn answers_have_the_micro_shapes_async_nats_reads() {
        let service = service();
        service
            .endpoint("latch.cmd.a")
            .unwrap()
            .record(Duration::from_millis(2), Some((403, "missing permission")));
        let ping: async_nats::service::PingResponse =
            serde_json::from_slice(&service.answer(Verb::Ping)).unwrap();
        assert_eq!(
            (ping.kind.as_str(), ping.name.as_str()),
            ("io.nats.micro.v1.ping_response", "latch")
        );
        let info: async_nats::service::Info =
            serde_json::from_slice(&service.answer(Verb::Info)).unwrap();
        assert_eq!(info.endpoints.len(), 2);
        assert_eq!(info.endpoints[0].queue_group, "latch");
        let stats: async_nats::service::Stats =
            serde_json::from_slice(&service.answer(Verb::Stats)).unwrap();
        assert_eq!(stats.kind, "io.nats.micro.v1.stats_response");
        let a = &stats.endpoints[0];
        assert_eq!((a.requests, a.errors), (1, 1));
        assert_eq!(a.data.as_ref().unwrap()["error_replies"], 1);
        assert_eq!(a.last_error.as_ref().unwrap().code, 403);
    }

    #[test]
    fn every_verb_has_three_subjects() {
        let service = service();
        let subjects: Vec<String> = service
            .verb_subjects()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert!(subjects.contains(&"$SRV.PING".to_owned()));
        assert!(subjects.contains(&"$SRV.INFO.latch".to_owned()));
        assert!(subjects.contains(&format!("$SRV.STATS.latch.{}", service.id)));
        assert_eq!(subjects.len(), 9);
    }
}
