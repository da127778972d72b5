//! Metric handles resolved once per `provider/model`: a label set is built and hashed
//! when a target is first counted, not on every request.
//!
//! Only targets the pipeline counts under their own name reach here (model names the
//! config does not know are counted as one `_other` bucket before this), so the map
//! stays as small as the config.

use std::{
    collections::HashMap,
    sync::{atomic::AtomicU64, Arc, RwLock},
};

use prometheus_client::metrics::{counter::Counter, histogram::Histogram};

/// The handles of every target counted so far.
#[derive(Default)]
pub(super) struct Handles {
    targets: RwLock<HashMap<String, HashMap<String, Arc<TargetMetrics>>>>,
}

impl Handles {
    /// The handles of `provider/model`, made by `resolve` the first time.
    pub(super) fn get(
        &self,
        provider: &str,
        model: &str,
        resolve: impl FnOnce(&str, &str) -> TargetMetrics,
    ) -> Arc<TargetMetrics> {
        let known = self
            .targets
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
            .and_then(|models| models.get(model))
            .cloned();
        if let Some(known) = known {
            return known;
        }
        let mut targets = self.targets.write().unwrap_or_else(|e| e.into_inner());
        targets
            .entry(provider.to_owned())
            .or_default()
            .entry(model.to_owned())
            .or_insert_with(|| Arc::new(resolve(provider, model)))
            .clone()
    }
}

/// One target's series. Clones of a family's metrics share its values.
pub(super) struct TargetMetrics {
    pub(super) provider: String,
    pub(super) model: String,
    /// `requests_total` per HTTP status, added as statuses are seen (a handful).
    pub(super) statuses: RwLock<Vec<(u16, Counter)>>,
    pub(super) latency: Histogram,
    pub(super) ttft: Histogram,
    /// Prompt, completion, cached prompt and reasoning tokens.
    pub(super) tokens: [Counter; 4],
    pub(super) cost: Counter<f64, AtomicU64>,
    /// The provider's retries (one series per provider, shared by its models).
    pub(super) retries: Counter,
    pub(super) fallbacks: Counter,
}

impl TargetMetrics {
    /// Counts one request that ended with `status`.
    pub(super) fn requests(&self, status: u16, resolve: impl FnOnce(u16) -> Counter) {
        let known = self
            .statuses
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(s, _)| *s == status)
            .map(|(_, counter)| counter.clone());
        let counter = match known {
            Some(counter) => counter,
            None => {
                let mut statuses = self.statuses.write().unwrap_or_else(|e| e.into_inner());
                match statuses.iter().find(|(s, _)| *s == status) {
                    Some((_, counter)) => counter.clone(),
                    None => {
                        let counter = resolve(status);
                        statuses.push((status, counter.clone()));
                        counter
                    }
                }
            }
        };
        counter.inc();
    }
}
