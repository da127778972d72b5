//! Counting a call once: usage, cost, budgets and metrics, when it ends or when its
//! caller goes away (then marked cancelled, with the tokens seen so far).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use provider_sdk::{ErrorKind, StreamEvent, Usage};

use super::{
    admission::{self, Admission},
    attempts::Route,
    Caller, DispatchError, Pipeline,
};
use crate::{limits::Pending, snapshot::Snapshot, usage::UsageRecord};

/// Collects what one call did and counts it exactly once.
pub(super) struct Recorder {
    pipeline: Arc<Pipeline>,
    snapshot: Arc<Snapshot>,
    started: Instant,
    at: f64,
    request_id: String,
    client: String,
    stream: bool,
    route: Option<Route>,
    failed_target: Option<String>,
    failed_attempts: u32,
    status: u16,
    error_kind: Option<ErrorKind>,
    first_event: Option<Duration>,
    usage: Option<Usage>,
    /// Answered from the cache: no upstream tokens, and what the answer saved.
    cache_hit: Option<Option<f64>>,
    done: bool,
    /// What the call holds of the limits, settled when it is counted.
    admission: Option<Admission>,
    /// Redis work left from counting it.
    pending: Option<Pending>,
}

impl Recorder {
    pub(super) fn new(
        pipeline: Arc<Pipeline>,
        snapshot: Arc<Snapshot>,
        caller: Caller,
        stream: bool,
    ) -> Recorder {
        let at = pipeline.meter().now();
        Recorder {
            pipeline,
            snapshot,
            started: caller.received,
            at,
            request_id: caller.request_id,
            client: caller.client,
            stream,
            route: None,
            failed_target: None,
            failed_attempts: 0,
            status: 200,
            error_kind: None,
            first_event: None,
            usage: None,
            cache_hit: None,
            done: false,
            admission: None,
            pending: None,
        }
    }

    /// The call's standing with the limits, reserving `reserve` tokens; `limited`
    /// says whether rate limits apply (budgets always do).
    pub(super) fn admission(&mut self, reserve: u64, limited: bool) -> &mut Admission {
        let (pipeline, snapshot, client) = (&self.pipeline, &self.snapshot, &self.client);
        self.admission.get_or_insert_with(|| {
            Admission::new(pipeline.clone(), snapshot, client, reserve, limited)
        })
    }

    /// Waits for the Redis work counting the call left (live spend, settled limits),
    /// so that the next request anywhere in the fleet sees it.
    pub(super) async fn settled(&mut self) {
        if let Some(pending) = self.pending.as_mut() {
            pending.await;
            self.pending = None;
        }
    }

    /// Lets the Redis work counting the call left run on its own.
    pub(super) fn detach(&mut self) {
        admission::spawn(self.pending.take());
    }

    /// The client the call counts under.
    pub(super) fn client(&self) -> &str {
        &self.client
    }

    /// The call was answered by `route`.
    pub(super) fn routed(&mut self, route: &Route) {
        self.route = Some(route.clone());
    }

    /// The call was refused before it reached the pipeline (a malformed or oversized
    /// body): the status the caller got, and why.
    pub(super) fn refused(&mut self, status: u16, kind: ErrorKind) {
        self.status = status;
        self.error_kind = Some(kind);
    }

    /// The upstream reported `usage`.
    pub(super) fn usage(&mut self, usage: Option<Usage>) {
        self.usage = usage;
    }

    /// The call was answered from the cache, saving `saved_usd`: it counts no
    /// upstream tokens, whatever the replayed answer reports.
    pub(super) fn cache_hit(&mut self, saved_usd: Option<f64>) {
        self.cache_hit = Some(saved_usd);
        self.usage = Some(Usage::default());
    }

    /// An event reached the caller.
    pub(super) fn saw(&mut self, event: &StreamEvent) {
        if self.first_event.is_none() {
            self.first_event = Some(self.started.elapsed());
        }
        if let StreamEvent::Usage { usage } = event {
            if self.cache_hit.is_none() {
                self.usage = Some(*usage);
            }
        }
    }

    /// The call failed (before an answer: the status is the error's; mid-stream: the
    /// caller already had a 200).
    pub(super) fn failed(&mut self, error: &DispatchError) {
        if self.route.is_none() {
            self.status = error.http_status();
        }
        self.error_kind = Some(error.kind());
        if let DispatchError::Provider {
            target, attempts, ..
        } = error
        {
            self.failed_target = Some(target.clone());
            if *attempts > 0 {
                self.failed_attempts = *attempts;
            }
        }
    }

    /// Counts the call, once.
    pub(super) fn finish(&mut self, cancelled: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let latency = self.started.elapsed();
        let (provider, model) = match (&self.route, &self.failed_target) {
            (Some(route), _) => (
                Some(route.target.provider.clone()),
                Some(route.target.model.clone()),
            ),
            (None, Some(target)) => match target.split_once('/') {
                Some((p, m)) => (Some(p.to_owned()), Some(m.to_owned())),
                None => (None, None),
            },
            (None, None) => (None, None),
        };
        let (config, registry) = (&self.snapshot.config, &self.snapshot.registry);
        let cost = match (&provider, &model, &self.usage) {
            (Some(p), Some(m), Some(usage)) => {
                let manifest = registry.provider(p).and_then(|s| s.manifest.as_deref());
                crate::usage::cost::prices(&config.pricing, p, m, manifest)
                    .map(|price| crate::usage::cost::cost(price, usage))
            }
            _ => None,
        };
        // Cost is the real model's; the counting label is bounded (see `counted_model`).
        let model = match (&provider, model) {
            (Some(p), Some(m)) => Some(super::counted_model(&self.snapshot, p, &m).to_owned()),
            (_, model) => model,
        };
        let waited = self
            .route
            .as_ref()
            .map(|r| r.upstream_wait)
            .unwrap_or_default();
        let host_time = if self.stream {
            self.first_event.unwrap_or(latency)
        } else {
            latency
        };
        let record = UsageRecord {
            at: self.at,
            request_id: std::mem::take(&mut self.request_id),
            client: std::mem::take(&mut self.client),
            provider,
            model,
            fallback_index: self.route.as_ref().map(|r| r.fallback_index),
            attempts: self
                .route
                .as_ref()
                .map(|r| r.attempts)
                .unwrap_or(self.failed_attempts),
            status: self.status,
            error_kind: self.error_kind,
            stream: self.stream,
            cancelled,
            latency_ms: latency.as_secs_f64() * 1000.0,
            ttft_ms: self.first_event.map(|d| d.as_secs_f64() * 1000.0),
            overhead_ms: host_time.saturating_sub(waited).as_secs_f64() * 1000.0,
            usage: self.usage,
            cost_usd: cost,
            cache_hit: self.cache_hit.is_some(),
            saved_usd: self.cache_hit.flatten(),
        };
        // Debug, not info: at thousands of requests a second an access line per request
        // costs more than the request; usage and metrics already count every one.
        tracing::debug!(
            request_id = %record.request_id,
            client = %record.client,
            provider = record.provider.as_deref().unwrap_or("-"),
            model = record.model.as_deref().unwrap_or("-"),
            status = record.status,
            error = record.error_kind.map(|k| k.as_str()).unwrap_or("-"),
            attempts = record.attempts,
            latency_ms = record.latency_ms,
            prompt_tokens = record.usage.map(|u| u.prompt_tokens),
            completion_tokens = record.usage.map(|u| u.completion_tokens),
            cost_usd = record.cost_usd,
            cancelled,
            "request"
        );
        // Settled with the usage reported; a call that failed before an answer used
        // nothing; one that ended without a report keeps its reservation.
        let used = match (record.usage, record.error_kind) {
            (Some(usage), _) => Some(usage.total_tokens()),
            (None, Some(_)) if self.route.is_none() => Some(0),
            (None, _) => None,
        };
        let spends = self.pipeline.live_spend(&record, &config.budgets);
        if let Some(admission) = self.admission.as_mut() {
            self.pending = admission.settle(used, spends);
        } else if !spends.is_empty() {
            self.pending = self
                .pipeline
                .limiter()
                .settle(Vec::new(), None, String::new(), spends);
        }
        self.pipeline.count(record, &config.budgets);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(true);
        self.detach();
    }
}
