//! Prometheus metrics, served as text on `GET /metrics`.

use std::sync::atomic::AtomicU64;

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{exponential_buckets, Histogram},
    },
    registry::Registry,
};

use crate::{
    breaker::BreakerStatus,
    cache::CacheStatus,
    limits::LimitsReport,
    usage::{LedgerStatus, UsageRecord},
};

mod handles;

type Labels = Vec<(String, String)>;

fn target_labels(provider: &str, model: &str) -> Labels {
    vec![
        ("provider".to_owned(), provider.to_owned()),
        ("model".to_owned(), model.to_owned()),
    ]
}
type HistogramFamily = Family<Labels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

fn overhead_histogram() -> Histogram {
    // 10 µs to ~330 ms.
    Histogram::new(exponential_buckets(0.000_01, 2.0, 16))
}

/// Every metric the host exports.
pub struct Metrics {
    /// Per `provider/model` handles into the families below, so that counting a
    /// request builds no label set and hashes none.
    handles: handles::Handles,
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: HistogramFamily,
    ttft: HistogramFamily,
    overhead: Histogram,
    tokens: Family<Labels, Counter>,
    cost: Family<Labels, Counter<f64, AtomicU64>>,
    retries: Family<Labels, Counter>,
    fallbacks: Family<Labels, Counter>,
    circuit: Family<Labels, Gauge>,
    reloads: Counter,
    reload_failures: Counter,
    plugins_loaded: Gauge,
    plugins_retired: Gauge,
    faulted: Family<Labels, Gauge>,
    workers: Family<Labels, Gauge>,
    worker_restarts: Family<Labels, Gauge>,
    ledger_pending: Gauge,
    ledger_degraded: Gauge,
    ledger_lost: Counter,
    ledger_write_failures: Counter,
    limit: Family<Labels, Gauge>,
    limit_used: Family<Labels, Gauge>,
    shared_healthy: Gauge,
    shared_outages: Counter,
    shared_failed_commands: Counter,
    shared_fallbacks: Counter,
    cache: CacheMetrics,
}

/// The response cache's figures, caught up with [`CacheStatus`] at each scrape.
struct CacheMetrics {
    hits: Counter,
    semantic_hits: Counter,
    misses: Counter,
    evictions: Counter,
    too_large: Counter,
    entries: Gauge,
    bytes: Gauge,
    saved: Counter<f64, AtomicU64>,
}

impl CacheMetrics {
    fn register(registry: &mut Registry) -> CacheMetrics {
        let metrics = CacheMetrics {
            hits: Counter::default(),
            semantic_hits: Counter::default(),
            misses: Counter::default(),
            evictions: Counter::default(),
            too_large: Counter::default(),
            entries: Gauge::default(),
            bytes: Gauge::default(),
            saved: Counter::default(),
        };
        let m = &metrics;
        registry.register(
            "cache_hits",
            "Calls answered from the response cache",
            m.hits.clone(),
        );
        registry.register(
            "cache_semantic_hits",
            "Of the cache hits, those answered by the semantic cache",
            m.semantic_hits.clone(),
        );
        registry.register(
            "cache_misses",
            "Cached models' calls not found in the response cache",
            m.misses.clone(),
        );
        registry.register(
            "cache_evictions",
            "Cached answers evicted to stay under cache.max_bytes",
            m.evictions.clone(),
        );
        registry.register(
            "cache_too_large",
            "Answers not cached for being over cache.max_entry_bytes",
            m.too_large.clone(),
        );
        registry.register(
            "cache_entries",
            "Answers in the in-memory response cache",
            m.entries.clone(),
        );
        registry.register(
            "cache_bytes",
            "Bytes held by the in-memory response cache",
            m.bytes.clone(),
        );
        registry.register(
            "cache_saved_usd",
            "Dollars the response cache's hits saved",
            m.saved.clone(),
        );
        metrics
    }

    fn catch_up(&self, status: &CacheStatus) {
        let behind = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        behind(&self.hits, status.hits);
        behind(&self.semantic_hits, status.semantic_hits);
        behind(&self.misses, status.misses);
        behind(&self.evictions, status.evictions);
        behind(&self.too_large, status.too_large);
        self.entries.set(status.entries.unwrap_or(0) as i64);
        self.bytes.set(status.bytes.unwrap_or(0) as i64);
        let saved = status.saved_usd - self.saved.get();
        if saved > 0.0 {
            self.saved.inc_by(saved);
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("provider_host");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Requests by provider, model and HTTP status",
            requests.clone(),
        );
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "request_duration_seconds",
            "Request latency, arrival to last byte",
            latency.clone(),
        );
        let ttft: HistogramFamily = Family::new_with_constructor(latency_histogram);
        registry.register(
            "time_to_first_token_seconds",
            "Streams: arrival to first event",
            ttft.clone(),
        );
        let overhead = overhead_histogram();
        registry.register(
            "overhead_seconds",
            "Time spent in the host rather than waiting on upstreams",
            overhead.clone(),
        );
        let tokens = Family::<Labels, Counter>::default();
        registry.register(
            "tokens",
            "Tokens by provider, model and type",
            tokens.clone(),
        );
        let cost = Family::<Labels, Counter<f64, AtomicU64>>::default();
        registry.register(
            "cost_usd",
            "Dollars spent by provider and model",
            cost.clone(),
        );
        let retries = Family::<Labels, Counter>::default();
        registry.register(
            "retries",
            "Attempts beyond the first, by the provider that finally answered or failed",
            retries.clone(),
        );
        let fallbacks = Family::<Labels, Counter>::default();
        registry.register(
            "fallbacks",
            "Requests answered by a later target of a fallback chain",
            fallbacks.clone(),
        );
        let circuit = Family::<Labels, Gauge>::default();
        registry.register(
            "circuit_state",
            "Circuit breakers: 0 closed, 1 half open, 2 open",
            circuit.clone(),
        );
        let reloads = Counter::default();
        registry.register("reloads", "Reloads run", reloads.clone());
        let reload_failures = Counter::default();
        registry.register(
            "reload_failures",
            "Reload failures (bad config, refused plugin versions)",
            reload_failures.clone(),
        );
        let plugins_loaded = Gauge::default();
        registry.register(
            "plugins_loaded",
            "Plugin library versions serving",
            plugins_loaded.clone(),
        );
        let plugins_retired = Gauge::default();
        registry.register(
            "plugins_retired",
            "Retired plugin library versions still mapped",
            plugins_retired.clone(),
        );
        let faulted = Family::<Labels, Gauge>::default();
        registry.register(
            "plugin_faulted",
            "1 for a provider whose serving plugin version overran a call deadline and is no longer routed to",
            faulted.clone(),
        );
        let workers = Family::<Labels, Gauge>::default();
        registry.register(
            "plugin_workers",
            "Worker processes running for a provider with \"isolation\": \"process\"",
            workers.clone(),
        );
        let worker_restarts = Family::<Labels, Gauge>::default();
        registry.register(
            "plugin_worker_restarts",
            "Worker processes of a provider's serving version started again after one died or was killed",
            worker_restarts.clone(),
        );
        let ledger_pending = Gauge::default();
        registry.register(
            "usage_ledger_pending_records",
            "Usage records waiting to be written to the ledger",
            ledger_pending.clone(),
        );
        let ledger_degraded = Gauge::default();
        registry.register(
            "usage_ledger_degraded",
            "1 while writes to the usage ledger fail",
            ledger_degraded.clone(),
        );
        let ledger_lost = Counter::default();
        registry.register(
            "usage_ledger_lost_records",
            "Usage records given up because the ledger stayed unwritable",
            ledger_lost.clone(),
        );
        let ledger_write_failures = Counter::default();
        registry.register(
            "usage_ledger_write_failures",
            "Failed writes to the usage ledger (each retried)",
            ledger_write_failures.clone(),
        );
        let limit = Family::<Labels, Gauge>::default();
        registry.register(
            "rate_limit",
            "Configured rate limits by scope, name and kind (requests, tokens per window; concurrent)",
            limit.clone(),
        );
        let limit_used = Family::<Labels, Gauge>::default();
        registry.register(
            "rate_limit_used",
            "Requests and tokens used in the current window, and requests in flight, per limit",
            limit_used.clone(),
        );
        let shared_healthy = Gauge::default();
        registry.register(
            "shared_state_healthy",
            "1 while the shared Redis answers (also 1 when none is configured)",
            shared_healthy.clone(),
        );
        let shared_outages = Counter::default();
        registry.register(
            "shared_state_outages",
            "Times the shared Redis became unreachable",
            shared_outages.clone(),
        );
        let shared_failed_commands = Counter::default();
        registry.register(
            "shared_state_failed_commands",
            "Redis commands that failed or timed out",
            shared_failed_commands.clone(),
        );
        let shared_fallbacks = Counter::default();
        registry.register(
            "shared_state_local_fallbacks",
            "Limit checks counted in this host's memory because Redis was unreachable (fail_open)",
            shared_fallbacks.clone(),
        );
        let cache = CacheMetrics::register(&mut registry);
        Metrics {
            cache,
            handles: handles::Handles::default(),
            limit,
            limit_used,
            shared_healthy,
            shared_outages,
            shared_failed_commands,
            shared_fallbacks,
            faulted,
            workers,
            worker_restarts,
            registry,
            ledger_pending,
            ledger_degraded,
            ledger_lost,
            ledger_write_failures,
            requests,
            latency,
            ttft,
            overhead,
            tokens,
            cost,
            retries,
            fallbacks,
            circuit,
            reloads,
            reload_failures,
            plugins_loaded,
            plugins_retired,
        }
    }

    /// Counts a finished request.
    pub fn observe(&self, r: &UsageRecord) {
        let target = self.handles.get(
            r.provider.as_deref().unwrap_or("none"),
            r.model.as_deref().unwrap_or("none"),
            |provider, model| self.resolve(provider, model),
        );
        target.requests(r.status, |status| {
            let mut labels = target_labels(&target.provider, &target.model);
            labels.push(("status".to_owned(), status.to_string()));
            self.requests.get_or_create(&labels).clone()
        });
        target.latency.observe(r.latency_ms / 1000.0);
        if let Some(ttft) = r.ttft_ms {
            target.ttft.observe(ttft / 1000.0);
        }
        self.overhead.observe(r.overhead_ms.max(0.0) / 1000.0);
        if let Some(u) = &r.usage {
            let [prompt, completion, cached, reasoning] = &target.tokens;
            prompt.inc_by(u.prompt_tokens);
            completion.inc_by(u.completion_tokens);
            cached.inc_by(u.cached_prompt_tokens);
            reasoning.inc_by(u.reasoning_tokens);
        }
        if let Some(cost) = r.cost_usd {
            target.cost.inc_by(cost);
        }
        if r.attempts > 1 {
            target.retries.inc_by(u64::from(r.attempts - 1));
        }
        if r.fallback_index.is_some_and(|i| i > 0) {
            target.fallbacks.inc();
        }
    }

    /// The metric handles of one `provider/model`, created in their families once.
    fn resolve(&self, provider: &str, model: &str) -> handles::TargetMetrics {
        let pm = target_labels(provider, model);
        let tokens = ["prompt", "completion", "cached_prompt", "reasoning"].map(|kind| {
            let mut labels = pm.clone();
            labels.push(("type".to_owned(), kind.to_owned()));
            self.tokens.get_or_create(&labels).clone()
        });
        handles::TargetMetrics {
            provider: provider.to_owned(),
            model: model.to_owned(),
            statuses: Default::default(),
            latency: self.latency.get_or_create(&pm).clone(),
            ttft: self.ttft.get_or_create(&pm).clone(),
            tokens,
            cost: self.cost.get_or_create(&pm).clone(),
            retries: self
                .retries
                .get_or_create(&vec![("provider".to_owned(), provider.to_owned())])
                .clone(),
            fallbacks: self.fallbacks.get_or_create(&pm).clone(),
        }
    }

    /// Sets the limits' gauges and the shared state's health from `report`;
    /// `fallbacks` is the running count of checks made in memory during outages.
    pub fn limits(&self, report: &LimitsReport, fallbacks: u64) {
        for limit in &report.limits {
            let labels = |kind: &str| {
                vec![
                    ("scope".to_owned(), limit.scope.to_owned()),
                    ("name".to_owned(), limit.name.clone()),
                    ("kind".to_owned(), kind.to_owned()),
                ]
            };
            let windows = [("requests", &limit.requests), ("tokens", &limit.tokens)];
            for (kind, window) in windows {
                if let Some(w) = window {
                    self.limit.get_or_create(&labels(kind)).set(w.limit as i64);
                    self.limit_used
                        .get_or_create(&labels(kind))
                        .set(w.used as i64);
                }
            }
            if let Some(c) = &limit.concurrent {
                let labels = labels("concurrent");
                self.limit.get_or_create(&labels).set(c.limit as i64);
                self.limit_used
                    .get_or_create(&labels)
                    .set(c.in_flight as i64);
            }
        }
        let behind = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        match &report.redis {
            Some(redis) => {
                self.shared_healthy.set(i64::from(redis.healthy));
                behind(&self.shared_outages, redis.outages);
                behind(&self.shared_failed_commands, redis.failed_commands);
            }
            None => {
                self.shared_healthy.set(1);
            }
        }
        behind(&self.shared_fallbacks, fallbacks);
    }

    /// Counts a reload and its failures.
    pub fn reloaded(&self, failures: u64) {
        self.reloads.inc();
        self.reload_failures.inc_by(failures);
    }

    /// Sets the worker gauges of the providers in process isolation: (provider,
    /// workers running, restarts of its serving version).
    pub fn set_workers(&self, workers: &[(String, usize, u64)]) {
        for (provider, running, restarts) in workers {
            let labels = vec![("provider".to_owned(), provider.clone())];
            self.workers.get_or_create(&labels).set(*running as i64);
            self.worker_restarts
                .get_or_create(&labels)
                .set(*restarts as i64);
        }
    }

    /// Brings the response cache's figures up to `status`, before a render.
    pub fn cache(&self, status: &CacheStatus) {
        self.cache.catch_up(status);
    }

    /// The text exposition, with the gauges read now.
    pub fn render(
        &self,
        breakers: &[BreakerStatus],
        loaded: usize,
        retired: usize,
        faulted: &[(String, bool)],
        ledger: &LedgerStatus,
    ) -> String {
        for (provider, is_faulted) in faulted {
            self.faulted
                .get_or_create(&vec![("provider".to_owned(), provider.clone())])
                .set(i64::from(*is_faulted));
        }
        self.ledger_pending.set(ledger.pending as i64);
        self.ledger_degraded
            .set(i64::from(ledger.state == "degraded"));
        // The meter keeps the running totals; the counters catch up to them.
        let behind = |counter: &Counter, total: u64| {
            counter.inc_by(total.saturating_sub(counter.get()));
        };
        behind(&self.ledger_lost, ledger.lost);
        behind(&self.ledger_write_failures, ledger.write_failures);
        for b in breakers {
            let value = match b.state.as_str() {
                "open" => 2,
                "half_open" => 1,
                _ => 0,
            };
            self.circuit
                .get_or_create(&vec![("breaker".to_owned(), b.key.clone())])
                .set(value);
        }
        self.plugins_loaded.set(loaded as i64);
        self.plugins_retired.set(retired as i64);
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// The OpenMetrics text `render` gives, as Prometheus text format 0.0.4 (what a scraper
/// that does not ask for OpenMetrics parses): counter families are named with their
/// `_total` suffix in `# HELP` and `# TYPE`, as their samples are; `# UNIT` and
/// `# EOF` lines, which 0.0.4 does not have, are left out.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(line.trim_end()),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_keep_their_type_in_prometheus_text() {
        let openmetrics = "# HELP requests Requests.\n# TYPE requests counter\nrequests_total{a=\"b\"} 3\n# HELP up Up.\n# TYPE up gauge\nup 1\n# UNIT x seconds\n# EOF\n";
        assert_eq!(
            to_prometheus_text(openmetrics),
            "# HELP requests_total Requests.\n# TYPE requests_total counter\nrequests_total{a=\"b\"} 3\n# HELP up Up.\n# TYPE up gauge\nup 1\n"
        );
    }
}
