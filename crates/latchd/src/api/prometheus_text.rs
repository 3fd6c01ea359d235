//! `PrometheusText`: writes the Prometheus text exposition format (0.0.4),
//! so `/metrics` says each family's `# HELP` and `# TYPE` once, in one shape.

use std::fmt::{Display, Write};

/// A family's type.
#[derive(Debug, Clone, Copy)]
pub enum MetricKind {
    Counter,
    Gauge,
    Histogram,
}

impl MetricKind {
    fn as_str(self) -> &'static str {
        match self {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Histogram => "histogram",
        }
    }
}

#[derive(Debug, Default)]
pub struct PrometheusText(String);

impl PrometheusText {
    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: MetricKind, help: &str) -> &mut Self {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {}", kind.as_str());
        self
    }

    /// One sample; `labels` are written as given (`key="value"` pairs, comma separated).
    pub fn sample(&mut self, name: &str, labels: &str, value: impl Display) -> &mut Self {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
        self
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: MetricKind, help: &str, value: impl Display) {
        self.family(name, kind, help).sample(name, "", value);
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_exposition_format() {
        let mut text = PrometheusText::default();
        text.single("up", MetricKind::Gauge, "Whether it is up.", 1);
        text.family("hits_total", MetricKind::Counter, "Hits.")
            .sample("hits_total", "route=\"/a\"", 3);
        assert_eq!(
            text.into_string(),
            "# HELP up Whether it is up.\n# TYPE up gauge\nup 1\n\
             # HELP hits_total Hits.\n# TYPE hits_total counter\nhits_total{route=\"/a\"} 3\n"
        );
    }
}
