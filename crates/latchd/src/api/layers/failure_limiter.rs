//! `FailureLimiter`: how many failed requests (401, 403) each source may
//! make, as a token bucket per source address: `burst` at once, refilled at
//! `per_second`. A source whose bucket is empty gets 429 (with
//! `Retry-After`) for every request without a valid token, and nothing is
//! stored for it; requests with a valid token are still served, so junk
//! from one address cannot lock out a legitimate client behind it.
//!
//! Sources are IPv4 addresses and IPv6 /64 prefixes (one host holds a whole
//! /64), plus one bucket for everything that came over NATS. The map holds
//! at most `max_sources` buckets: when it is full, buckets that have
//! refilled (the same as no bucket) are dropped, and if none has, new
//! sources share one overflow bucket, so the limiter itself cannot be made
//! to grow without bound.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use thiserror::Error;

/// At most this many sources are tracked at once (a few MB at most).
pub const MAX_SOURCES: usize = 16_384;

/// The failed-request budget of one source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FailureBudget {
    /// Failures a source may make at once.
    pub burst: u32,
    /// Failures regained per second.
    pub per_second: f64,
}

impl Default for FailureBudget {
    /// 120 at once, then ten a minute (`--unauthenticated-rate 10/m`).
    fn default() -> Self {
        Self {
            burst: 120,
            per_second: 10.0 / 60.0,
        }
    }
}

/// A rate as operators write it: `60/m`, `5/s`, `100/h`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    count: u32,
    per: Duration,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("rate {0:?} must be a positive whole number, a slash and s, m or h (e.g. 60/m, 5/s)")]
pub struct RateError(String);

impl Rate {
    pub fn per_second(&self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }
}

impl FromStr for Rate {
    type Err = RateError;
    fn from_str(text: &str) -> Result<Self, RateError> {
        let bad = || RateError(text.to_owned());
        let (count, unit) = text.split_once('/').ok_or_else(bad)?;
        let count: u32 = count.trim().parse().map_err(|_| bad())?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if count == 0 {
            return Err(bad());
        }
        Ok(Self { count, per })
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// Whose bucket a request draws on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceKey {
    V4(u32),
    /// The /64 prefix of an IPv6 address.
    V6(u64),
    /// Requests that came over NATS (latchd's command service).
    Nats,
    /// New sources while the map is full of active ones.
    Overflow,
}

impl SourceKey {
    pub fn of(address: IpAddr) -> Self {
        match address.to_canonical() {
            IpAddr::V4(v4) => SourceKey::V4(u32::from(v4)),
            IpAddr::V6(v6) => SourceKey::V6((u128::from(v6) >> 64) as u64),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

struct Buckets {
    map: HashMap<SourceKey, Bucket>,
    last_sweep: Option<Instant>,
}

pub struct FailureLimiter {
    budget: FailureBudget,
    max_sources: usize,
    buckets: Mutex<Buckets>,
}

impl FailureLimiter {
    pub fn new(budget: FailureBudget, max_sources: usize) -> Self {
        Self {
            budget,
            max_sources: max_sources.max(1),
            buckets: Mutex::new(Buckets {
                map: HashMap::new(),
                last_sweep: None,
            }),
        }
    }

    /// Takes one failure from the source's budget, or says how long until
    /// it has one again.
    pub fn take(&self, source: SourceKey, now: Instant) -> Result<(), Duration> {
        self.draw(source, now)
    }

    /// Takes one failure if the budget has one (a request that has already
    /// been served failed authorization).
    pub fn charge(&self, source: SourceKey, now: Instant) {
        let _ = self.draw(source, now);
    }

    /// How long until the source may fail again, when its budget is spent
    /// now; takes nothing. For routes that would do work (read a large
    /// body, verify a signature) before they know whether a request fails.
    pub fn spent(&self, source: SourceKey, now: Instant) -> Option<Duration> {
        let budget = self.budget;
        let buckets = self.lock();
        let bucket = buckets.map.get(&source)?;
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        let tokens = (bucket.tokens + elapsed * budget.per_second).min(f64::from(budget.burst));
        (tokens < 1.0).then(|| {
            let wait = (1.0 - tokens) / budget.per_second.max(f64::MIN_POSITIVE);
            Duration::from_secs_f64(wait.min(86_400.0))
        })
    }

    /// Sources tracked now.
    #[cfg(test)]
    fn sources(&self) -> usize {
        self.lock().map.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Buckets> {
        // A panic while holding the lock leaves only counters behind.
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn draw(&self, source: SourceKey, now: Instant) -> Result<(), Duration> {
        let budget = self.budget;
        let burst = f64::from(budget.burst);
        let mut buckets = self.lock();
        let key = if buckets.map.contains_key(&source) || buckets.map.len() < self.max_sources {
            source
        } else {
            self.sweep(&mut buckets, now);
            if buckets.map.len() < self.max_sources {
                source
            } else {
                SourceKey::Overflow
            }
        };
        let bucket = buckets.map.entry(key).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * budget.per_second).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / budget.per_second.max(f64::MIN_POSITIVE);
            Err(Duration::from_secs_f64(wait.min(86_400.0)))
        }
    }

    /// Drops buckets that have refilled (at most once a second: under a
    /// flood from many sources a sweep finds nothing and costs a scan).
    fn sweep(&self, buckets: &mut Buckets, now: Instant) {
        if buckets
            .last_sweep
            .is_some_and(|at| now.saturating_duration_since(at) < Duration::from_secs(1))
        {
            return;
        }
        buckets.last_sweep = Some(now);
        let budget = self.budget;
        let burst = f64::from(budget.burst);
        buckets.map.retain(|_, bucket| {
            let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
            bucket.tokens + elapsed * budget.per_second < burst
        });
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn limiter(burst: u32, per_second: f64, max_sources: usize) -> FailureLimiter {
        FailureLimiter::new(FailureBudget { burst, per_second }, max_sources)
    }

    #[test]
    fn spent_tells_without_taking() {
        let limiter = limiter(2, 1.0, 10);
        let now = Instant::now();
        let source = SourceKey::of(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        assert_eq!(limiter.spent(source, now), None, "an unknown source has its budget");
        limiter.charge(source, now);
        assert_eq!(limiter.spent(source, now), None);
        limiter.charge(source, now);
        assert!(limiter.spent(source, now).is_some());
        assert!(limiter.spent(source, now).is_some(), "asking takes nothing");
        assert_eq!(limiter.spent(source, now + Duration::from_secs(1)), None);
    }

    #[test]
    fn a_source_may_fail_burst_times_then_waits() {
        let limiter = limiter(3, 1.0, 10);
        let now = Instant::now();
        let source = SourceKey::of(IpAddr::V4(Ipv4Addr::LOCALHOST));
        for _ in 0..3 {
            assert!(limiter.take(source, now).is_ok());
        }
        let wait = limiter.take(source, now).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert!(limiter.take(source, now + Duration::from_secs(1)).is_ok());
    }

    #[test]
    fn sources_do_not_share_a_budget() {
        let limiter = limiter(1, 1.0, 10);
        let now = Instant::now();
        assert!(limiter.take(SourceKey::V4(1), now).is_ok());
        assert!(limiter.take(SourceKey::V4(1), now).is_err());
        assert!(limiter.take(SourceKey::V4(2), now).is_ok());
    }

    #[test]
    fn ipv6_hosts_in_one_slash_64_share_a_budget() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let c: IpAddr = "2001:db8:0:1::1".parse().unwrap();
        assert_eq!(SourceKey::of(a), SourceKey::of(b));
        assert_ne!(SourceKey::of(a), SourceKey::of(c));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(
            SourceKey::of(mapped),
            SourceKey::of(IpAddr::V4(Ipv4Addr::LOCALHOST))
        );
    }

    #[test]
    fn the_map_is_bounded_and_full_sources_overflow_into_one_bucket() {
        let limiter = limiter(1, 0.001, 4);
        let now = Instant::now();
        for n in 0..1000 {
            let _ = limiter.take(SourceKey::V4(n), now);
        }
        assert!(limiter.sources() <= 5, "{}", limiter.sources());
        // The overflow bucket is spent: new sources wait.
        assert!(limiter.take(SourceKey::V4(5000), now).is_err());
    }

    #[test]
    fn refilled_buckets_make_room() {
        let limiter = limiter(1, 1.0, 2);
        let now = Instant::now();
        assert!(limiter.take(SourceKey::V4(1), now).is_ok());
        assert!(limiter.take(SourceKey::V4(2), now).is_ok());
        let later = now + Duration::from_secs(5);
        assert!(limiter.take(SourceKey::V4(3), later).is_ok());
        assert!(limiter.take(SourceKey::V4(3), later).is_err());
        assert!(limiter.sources() <= 2);
    }

    #[test]
    fn rates_parse() {
        assert_eq!("60/m".parse::<Rate>().unwrap().per_second(), 1.0);
        assert_eq!("5/s".parse::<Rate>().unwrap().per_second(), 5.0);
        assert_eq!("5/s".parse::<Rate>().unwrap().to_string(), "5/s");
        for bad in ["", "0/s", "5", "5/d", "-1/s", "x/m"] {
            assert!(bad.parse::<Rate>().is_err(), "{bad}");
        }
    }
}
