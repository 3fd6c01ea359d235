//! One module per scenario, each with its `run`, and what they share.

pub(crate) mod append;
pub(crate) mod audit;
pub(crate) mod checkpoint;
pub(crate) mod cold_start;
pub(crate) mod commands;
pub(crate) mod exchange;
pub(crate) mod exchange_fold;
pub(crate) mod feed_verify;
pub(crate) mod ha;
pub(crate) mod http_load;
pub(crate) mod leaks;
pub(crate) mod propagation;
pub(crate) mod propagation_http;
pub(crate) mod records;
pub(crate) mod replay;
pub(crate) mod store_peer;
pub(crate) mod verify;

use std::time::Duration;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .nth(1)
                .and_then(|p| p.parse::<u64>().ok())
        })
        .map_or(0, |pages| pages * 4096)
}
