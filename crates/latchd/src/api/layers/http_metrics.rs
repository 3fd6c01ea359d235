//! Request counts and latencies by method, route and status, in Prometheus
//! text. Every label comes from a fixed set, so no request can add a
//! series: methods are one of `METHODS` or `other`, routes are route
//! templates (or `unmatched`), statuses are what latchd answers.

use std::collections::BTreeMap;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::api::app_state::AppState;
use crate::api::prometheus_text::{MetricKind, PrometheusText};

const BUCKETS: [f64; 10] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0,
];

/// The method labels: the methods latchd serves or a client may probe
/// with; anything else is `other`.
pub const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/// The label for `method`: itself when it is one of `METHODS`, else `other`.
pub fn method_label(method: &Method) -> &'static str {
    METHODS
        .iter()
        .find(|known| **known == method.as_str())
        .copied()
        .unwrap_or("other")
}

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

#[derive(Default)]
pub struct HttpMetrics(Mutex<BTreeMap<(&'static str, String, u16), Series>>);

impl HttpMetrics {
    pub fn observe(&self, method: &Method, route: &str, status: u16, took: Duration) {
        let seconds = took.as_secs_f64();
        let mut all = self.0.lock().expect("metrics lock");
        let series = all
            .entry((method_label(method), route.to_owned(), status))
            .or_default();
        series.count += 1;
        series.sum += seconds;
        for (slot, bound) in series.buckets.iter_mut().zip(BUCKETS) {
            if seconds <= bound {
                *slot += 1;
            }
        }
    }

    pub fn render(&self, out: &mut PrometheusText) {
        const REQUESTS: &str = "latch_http_requests_total";
        const DURATION: &str = "latch_http_request_duration_seconds";
        let all = self.0.lock().expect("metrics lock");
        out.family(
            REQUESTS,
            MetricKind::Counter,
            "HTTP requests by method, route and status.",
        );
        for ((method, route, status), series) in all.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            out.sample(REQUESTS, &labels, series.count);
        }
        out.family(DURATION, MetricKind::Histogram, "HTTP request latency.");
        for ((method, route, status), series) in all.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (bound, count) in BUCKETS.iter().zip(series.buckets) {
                out.sample(
                    &format!("{DURATION}_bucket"),
                    &format!("{labels},le=\"{bound}\""),
                    count,
                );
            }
            out.sample(
                &format!("{DURATION}_bucket"),
                &format!("{labels},le=\"+Inf\""),
                series.count,
            );
            out.sample(&format!("{DURATION}_sum"), &labels, series.sum);
            out.sample(&format!("{DURATION}_count"), &labels, series.count);
        }
    }
}

/// Route layer: times each request under its route template.
pub async fn layer(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_owned();
    let response = next.run(request).await;
    app.metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_methods_share_one_label() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::OPTIONS), "OPTIONS");
        for odd in ["FOO", "get", "PROPFIND", "X-12345"] {
            let method = Method::from_bytes(odd.as_bytes()).unwrap();
            assert_eq!(method_label(&method), "other", "{odd}");
        }
        let metrics = HttpMetrics::default();
        for n in 0..100 {
            let method = Method::from_bytes(format!("M{n}").as_bytes()).unwrap();
            metrics.observe(&method, "/v1/accounts", 405, Duration::from_millis(1));
        }
        assert_eq!(metrics.0.lock().unwrap().len(), 1);
    }
}
