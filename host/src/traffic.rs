//! The last hour of traffic in short buckets, for `/admin/traffic` and the console:
//! requests, errors by kind, and p50/p99 of latency and of the host's own overhead.
//!
//! The request path only adds to cumulative atomic counters (a few relaxed adds per
//! request, no lock). A bucket is closed by taking the difference between the counters
//! now and when it opened, which happens once per [`BUCKET_SECS`], under a lock, by the
//! first request (or reader) after the boundary. A request finishing at the very edge
//! of a bucket may be counted in its neighbour; nothing is lost. Quantiles come from
//! log-scale histograms (four buckets per octave), so they are within 10% of the truth.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
};

use provider_sdk::ErrorKind;
use serde::Serialize;

use crate::usage::UsageRecord;

/// Seconds per bucket.
pub const BUCKET_SECS: u64 = 10;
/// Buckets kept: one hour.
pub const BUCKETS: usize = 360;
/// Histogram buckets: four per octave from 1 µs, the last one open-ended (past ~4.5 min).
const HISTOGRAM: usize = 112;
const KINDS: usize = ErrorKind::ALL.len();

/// Counters that only grow.
struct Live {
    requests: AtomicU64,
    errors: [AtomicU64; KINDS],
    latency: [AtomicU64; HISTOGRAM],
    overhead: [AtomicU64; HISTOGRAM],
}

/// A copy of [`Live`] at one moment.
#[derive(Clone)]
struct Counts {
    requests: u64,
    errors: [u64; KINDS],
    latency: [u64; HISTOGRAM],
    overhead: [u64; HISTOGRAM],
}

impl Counts {
    fn zero() -> Counts {
        Counts {
            requests: 0,
            errors: [0; KINDS],
            latency: [0; HISTOGRAM],
            overhead: [0; HISTOGRAM],
        }
    }

    /// What happened between `earlier` and `self`.
    fn since(&self, earlier: &Counts) -> Counts {
        let mut delta = self.clone();
        delta.requests -= earlier.requests.min(delta.requests);
        for (d, e) in delta.errors.iter_mut().zip(&earlier.errors) {
            *d = d.saturating_sub(*e);
        }
        for (d, e) in delta.latency.iter_mut().zip(&earlier.latency) {
            *d = d.saturating_sub(*e);
        }
        for (d, e) in delta.overhead.iter_mut().zip(&earlier.overhead) {
            *d = d.saturating_sub(*e);
        }
        delta
    }
}

impl Live {
    fn new() -> Live {
        Live {
            requests: AtomicU64::new(0),
            errors: std::array::from_fn(|_| AtomicU64::new(0)),
            latency: std::array::from_fn(|_| AtomicU64::new(0)),
            overhead: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    fn read(&self) -> Counts {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Counts {
            requests: load(&self.requests),
            errors: std::array::from_fn(|i| load(&self.errors[i])),
            latency: std::array::from_fn(|i| load(&self.latency[i])),
            overhead: std::array::from_fn(|i| load(&self.overhead[i])),
        }
    }
}

/// One closed bucket, summarized.
#[derive(Debug, Clone, PartialEq)]
struct Bucket {
    index: u64,
    requests: u64,
    errors: [u64; KINDS],
    latency: [f64; 2],
    overhead: [f64; 2],
}

impl Bucket {
    fn of(index: u64, counts: &Counts) -> Bucket {
        Bucket {
            index,
            requests: counts.requests,
            errors: counts.errors,
            latency: [
                quantile(&counts.latency, 0.5),
                quantile(&counts.latency, 0.99),
            ],
            overhead: [
                quantile(&counts.overhead, 0.5),
                quantile(&counts.overhead, 0.99),
            ],
        }
    }
}

struct Ring {
    /// The counters when the open bucket opened.
    base: Counts,
    closed: VecDeque<Bucket>,
}

/// The recent-traffic ring. One per pipeline.
pub struct Traffic {
    live: Live,
    /// Index (Unix seconds / [`BUCKET_SECS`]) of the open bucket; 0 before the first.
    open: AtomicU64,
    ring: Mutex<Ring>,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic::new()
    }
}

/// The histogram bucket of a duration in milliseconds.
fn slot(ms: f64) -> usize {
    let micros = (ms * 1000.0).max(1.0);
    ((micros.log2() * 4.0) as usize).min(HISTOGRAM - 1)
}

/// The `q` quantile of a histogram in milliseconds (the geometric middle of its
/// bucket), or NaN when it is empty.
fn quantile(histogram: &[u64; HISTOGRAM], q: f64) -> f64 {
    let total: u64 = histogram.iter().sum();
    if total == 0 {
        return f64::NAN;
    }
    let rank = ((total as f64) * q).ceil().max(1.0) as u64;
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += n;
        if seen >= rank {
            return 2f64.powf((i as f64 + 0.5) / 4.0) / 1000.0;
        }
    }
    f64::NAN
}

impl Traffic {
    /// An empty ring.
    pub fn new() -> Traffic {
        Traffic {
            live: Live::new(),
            open: AtomicU64::new(0),
            ring: Mutex::new(Ring {
                base: Counts::zero(),
                closed: VecDeque::with_capacity(BUCKETS),
            }),
        }
    }

    /// Counts a finished request at `now` (Unix seconds).
    pub fn observe(&self, now: f64, record: &UsageRecord) {
        self.turn(now);
        let add = |a: &AtomicU64| a.fetch_add(1, Ordering::Relaxed);
        add(&self.live.requests);
        if let Some(kind) = record.error_kind {
            if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
                add(&self.live.errors[i]);
            }
        }
        add(&self.live.latency[slot(record.latency_ms)]);
        add(&self.live.overhead[slot(record.overhead_ms)]);
    }

    /// Closes the open bucket when `now` is past it.
    fn turn(&self, now: f64) {
        let index = (now.max(0.0) as u64) / BUCKET_SECS;
        if index <= self.open.load(Ordering::Acquire) {
            return;
        }
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let open = self.open.load(Ordering::Acquire);
        if index <= open {
            return; // another thread turned it meanwhile
        }
        let now_counts = self.live.read();
        if open > 0 {
            let bucket = Bucket::of(open, &now_counts.since(&ring.base));
            ring.closed.push_back(bucket);
        }
        let oldest = index.saturating_sub(BUCKETS as u64 - 1);
        while ring.closed.front().is_some_and(|b| b.index < oldest) {
            ring.closed.pop_front();
        }
        ring.base = now_counts;
        self.open.store(index, Ordering::Release);
    }

    /// The last hour up to `now`, one entry per bucket (empty buckets included), the
    /// open one last.
    pub fn series(&self, now: f64) -> TrafficSeries {
        self.turn(now);
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let open = self.open.load(Ordering::Acquire);
        let current = (now.max(0.0) as u64) / BUCKET_SECS;
        let last = current.max(open);
        let first = last.saturating_sub(BUCKETS as u64 - 1);
        let open_bucket = (open > 0).then(|| Bucket::of(open, &self.live.read().since(&ring.base)));
        let mut found = ring.closed.iter().chain(open_bucket.iter()).peekable();
        let mut out = TrafficSeries::new(BUCKETS);
        for index in first..=last {
            while found.peek().is_some_and(|b| b.index < index) {
                found.next();
            }
            match found.peek() {
                Some(b) if b.index == index => out.push(index, Some(b)),
                _ => out.push(index, None),
            }
        }
        out
    }
}

/// `/admin/traffic`: the last hour in [`BUCKET_SECS`] buckets, as columns (one value
/// per bucket, oldest first), the form a chart takes.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficSeries {
    /// Seconds per bucket.
    pub bucket_secs: u64,
    /// Each bucket's start, Unix seconds.
    pub start: Vec<u64>,
    /// Requests finished in each bucket.
    pub requests: Vec<u64>,
    /// Failed requests in each bucket.
    pub errors: Vec<u64>,
    /// Failed requests by kind (only kinds seen within the hour).
    pub errors_by_kind: std::collections::BTreeMap<&'static str, Vec<u64>>,
    /// Median latency, arrival to last byte, in ms (`null` for an empty bucket).
    pub latency_p50_ms: Vec<Option<f64>>,
    /// 99th percentile latency, in ms.
    pub latency_p99_ms: Vec<Option<f64>>,
    /// Median time spent in the host rather than waiting on upstreams, in ms.
    pub overhead_p50_ms: Vec<Option<f64>>,
    /// 99th percentile of that overhead, in ms.
    pub overhead_p99_ms: Vec<Option<f64>>,
}

impl TrafficSeries {
    fn new(capacity: usize) -> TrafficSeries {
        TrafficSeries {
            bucket_secs: BUCKET_SECS,
            start: Vec::with_capacity(capacity),
            requests: Vec::with_capacity(capacity),
            errors: Vec::with_capacity(capacity),
            errors_by_kind: Default::default(),
            latency_p50_ms: Vec::with_capacity(capacity),
            latency_p99_ms: Vec::with_capacity(capacity),
            overhead_p50_ms: Vec::with_capacity(capacity),
            overhead_p99_ms: Vec::with_capacity(capacity),
        }
    }

    fn push(&mut self, index: u64, bucket: Option<&Bucket>) {
        let position = self.start.len();
        self.start.push(index * BUCKET_SECS);
        let finite = |v: f64| v.is_finite().then_some(v);
        match bucket {
            Some(b) => {
                self.requests.push(b.requests);
                self.errors.push(b.errors.iter().sum());
                for (kind, n) in ErrorKind::ALL.iter().zip(b.errors) {
                    if n > 0 {
                        self.errors_by_kind
                            .entry(kind.as_str())
                            .or_insert_with(|| vec![0; position])
                            .push(n);
                    }
                }
                self.latency_p50_ms.push(finite(b.latency[0]));
                self.latency_p99_ms.push(finite(b.latency[1]));
                self.overhead_p50_ms.push(finite(b.overhead[0]));
                self.overhead_p99_ms.push(finite(b.overhead[1]));
            }
            None => {
                self.requests.push(0);
                self.errors.push(0);
                self.latency_p50_ms.push(None);
                self.latency_p99_ms.push(None);
                self.overhead_p50_ms.push(None);
                self.overhead_p99_ms.push(None);
            }
        }
        // Kinds not seen in this bucket get a zero, so every column is as long.
        for column in self.errors_by_kind.values_mut() {
            column.resize(position + 1, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(latency_ms: f64, error_kind: Option<ErrorKind>) -> UsageRecord {
        UsageRecord {
            at: 0.0,
            request_id: "r".into(),
            client: "c".into(),
            provider: None,
            model: None,
            fallback_index: None,
            attempts: 1,
            status: if error_kind.is_some() { 429 } else { 200 },
            error_kind,
            stream: false,
            cancelled: false,
            latency_ms,
            ttft_ms: None,
            overhead_ms: latency_ms / 10.0,
            usage: None,
            cost_usd: None,
            cache_hit: false,
            saved_usd: None,
        }
    }

    #[test]
    fn requests_land_in_the_bucket_they_finish_in() {
        let traffic = Traffic::new();
        let t0 = 1_800_000_000.0; // a bucket boundary
        traffic.observe(t0 + 1.0, &record(100.0, None));
        traffic.observe(t0 + 2.0, &record(100.0, Some(ErrorKind::RateLimited)));
        traffic.observe(t0 + 25.0, &record(100.0, None));
        let series = traffic.series(t0 + 31.0);
        assert_eq!(series.start.len(), BUCKETS);
        assert_eq!(*series.start.last().unwrap(), 1_800_000_030);
        let tail = |v: &Vec<u64>| v[BUCKETS - 4..].to_vec();
        assert_eq!(tail(&series.requests), [2, 0, 1, 0]);
        assert_eq!(tail(&series.errors), [1, 0, 0, 0]);
        assert_eq!(tail(&series.errors_by_kind["rate_limited"]), [1, 0, 0, 0]);
        assert_eq!(series.errors_by_kind.len(), 1);
        assert!(series.latency_p50_ms[BUCKETS - 3].is_none());
    }

    #[test]
    fn quantiles_are_within_a_tenth() {
        let traffic = Traffic::new();
        let t0 = 1_800_000_000.0;
        for i in 1..=100 {
            traffic.observe(t0, &record(f64::from(i), None));
        }
        let series = traffic.series(t0 + 1.0);
        let p50 = series.latency_p50_ms[BUCKETS - 1].unwrap();
        let p99 = series.latency_p99_ms[BUCKETS - 1].unwrap();
        assert!((45.0..=55.0).contains(&p50), "p50 {p50}");
        assert!((89.0..=109.0).contains(&p99), "p99 {p99}");
        let overhead = series.overhead_p50_ms[BUCKETS - 1].unwrap();
        assert!((4.5..=5.5).contains(&overhead), "overhead p50 {overhead}");
    }

    #[test]
    fn buckets_older_than_an_hour_are_dropped() {
        let traffic = Traffic::new();
        let t0 = 1_800_000_000.0;
        traffic.observe(t0, &record(1.0, None));
        traffic.observe(t0 + 3_600.0, &record(1.0, None));
        let series = traffic.series(t0 + 3_600.0);
        assert_eq!(series.requests.iter().sum::<u64>(), 1);
        assert_eq!(series.start[0], 1_800_000_010);
    }
}
