//! Circuit breakers: a provider (or one of its models) that keeps failing is skipped
//! for a while, then probed with one request before it serves again.
//!
//! State lives in the host, not in a registry snapshot, so a reload keeps what the
//! breakers learnt about an upstream.
//!
//! A half-open breaker must never wait for a probe that will not report: the probe is
//! a [`Permit`] that hands the breaker back (open, ready for the next probe) when it is
//! dropped without an outcome (its request timed out, or its client went away), and a
//! probe that has not reported within `probe_timeout` is replaced by another.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::{
        atomic::{AtomicU64, Ordering},
        Mutex,
    },
    time::{Duration, Instant},
};

use serde::Serialize;

use crate::config::BreakerPolicy;

/// A breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BreakerState {
    /// Calls flow.
    Closed,
    /// Calls are skipped until the instant.
    Open {
        /// When one probe will be let through.
        until: Instant,
    },
    /// One probe is in flight; the others are skipped.
    HalfOpen,
}

impl fmt::Display for BreakerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BreakerState::Closed => f.write_str("closed"),
            BreakerState::Open { .. } => f.write_str("open"),
            BreakerState::HalfOpen => f.write_str("half_open"),
        }
    }
}

/// Whose health a failed call speaks of, which decides the breakers it counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// Nobody's: the request itself was wrong. Counts as a success for both breakers.
    Nobody,
    /// One model's (rate limits, bad answers, a missing model): its `provider/model`
    /// breaker only, so the provider's other models keep serving.
    Model,
    /// One model's for now (a 5xx, a timeout), the provider's once another of its
    /// models fails that way within the window: then the provider's breaker counts it too.
    ModelUnlessWidespread,
    /// The provider's own (connection, authentication, quota): its provider breaker.
    Provider,
}

/// The most models a provider breaker remembers recent failures of, to tell one
/// broken model from a provider failing across its models.
const MODELS_REMEMBERED: usize = 64;

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    consecutive_failures: u32,
    /// Outcomes in the window: (when, succeeded).
    recent: VecDeque<(Instant, bool)>,
    /// The probe in flight while half-open: its id and when it was let through.
    probe: Option<(u64, Instant)>,
    /// For a provider's breaker: the last [`Blame::ModelUnlessWidespread`] failure of
    /// each of its models (`provider/model`, when), within the window.
    model_failures: Vec<(String, Instant)>,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            recent: VecDeque::new(),
            probe: None,
            model_failures: Vec::new(),
        }
    }

    /// Whether a call may go now: `Ok(true)` when it would be the probe.
    fn admits(&self, policy: &BreakerPolicy, now: Instant) -> Result<bool, Duration> {
        match self.state {
            BreakerState::Closed => Ok(false),
            BreakerState::Open { until } if now >= until => Ok(true),
            BreakerState::Open { until } => Err(until - now),
            BreakerState::HalfOpen => {
                let timeout = Duration::from_secs_f64(policy.probe_timeout);
                match self.probe {
                    // The probe never reported: its outcome is lost, so try another.
                    Some((_, since)) if now.saturating_duration_since(since) < timeout => {
                        Err(timeout - now.saturating_duration_since(since))
                    }
                    _ => Ok(true),
                }
            }
        }
    }
}

/// Leave to call a target, from [`Breakers::permit`]. When it is the probe of a
/// half-open breaker and is dropped before [`Breakers::record`] settled that breaker,
/// the breaker goes back to open with its wait over, so the next call probes.
#[must_use = "dropping the permit gives a probe back before the call was made"]
pub struct Permit<'a> {
    breakers: &'a Breakers,
    /// (key, probe id) of each breaker this call probes.
    probes: Vec<(String, u64)>,
}

impl Permit<'_> {
    /// Whether this call is the probe of a half-open breaker.
    pub fn is_probe(&self) -> bool {
        !self.probes.is_empty()
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if self.probes.is_empty() {
            return;
        }
        let mut map = self.breakers.lock();
        for (key, id) in &self.probes {
            if let Some(breaker) = map.get_mut(key) {
                if breaker.state == BreakerState::HalfOpen
                    && breaker.probe.is_some_and(|(p, _)| p == *id)
                {
                    tracing::debug!(breaker = %key, "probe ended without an outcome; the next call probes");
                    breaker.state = BreakerState::Open {
                        until: Instant::now(),
                    };
                    breaker.probe = None;
                }
            }
        }
    }
}

/// A breaker's state for the status endpoint.
#[derive(Debug, Clone, Serialize)]
pub struct BreakerStatus {
    /// `provider` or `provider/model`.
    pub key: String,
    /// `closed`, `open` or `half_open`.
    pub state: String,
    /// Failures in a row.
    pub consecutive_failures: u32,
    /// Seconds until a probe is let through, when open.
    pub retry_in_s: Option<f64>,
}

/// Every breaker, by key (`provider` and `provider/model`).
#[derive(Debug, Default)]
pub struct Breakers {
    map: Mutex<HashMap<String, Breaker>>,
    next_probe: AtomicU64,
}

impl Breakers {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Breaker>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks whether a call to every one of `keys` (a provider and its `provider/model`)
    /// may go ahead now. All or nothing: a breaker turns half-open only when the call
    /// goes, so a refusal by one key never strands another half-open. `Err` says when
    /// the first refusing breaker may let a call through.
    pub fn permit<'a>(
        &'a self,
        keys: &[String],
        policy: &BreakerPolicy,
        now: Instant,
    ) -> Result<Permit<'a>, Duration> {
        let mut permit = Permit {
            breakers: self,
            probes: Vec::new(),
        };
        if !policy.enabled {
            return Ok(permit);
        }
        let mut map = self.lock();
        let mut probed = Vec::new();
        for key in keys {
            if let Some(breaker) = map.get(key) {
                if breaker.admits(policy, now)? {
                    probed.push(key);
                }
            }
        }
        for key in probed {
            let id = self.next_probe.fetch_add(1, Ordering::Relaxed);
            let breaker = map.get_mut(key).expect("checked above");
            breaker.state = BreakerState::HalfOpen;
            breaker.probe = Some((id, now));
            permit.probes.push((key.clone(), id));
        }
        Ok(permit)
    }

    /// Records a failed call to `model` (`provider/model`) of `provider`, against the
    /// breakers `blame` names (see [`Blame`]).
    pub fn record_failure(
        &self,
        provider: &str,
        model: &str,
        blame: Blame,
        policy: &BreakerPolicy,
        now: Instant,
    ) {
        match blame {
            Blame::Nobody => {
                self.record(provider, true, policy, now);
                self.record(model, true, policy, now);
            }
            Blame::Model => self.record(model, false, policy, now),
            Blame::ModelUnlessWidespread => {
                self.record(model, false, policy, now);
                if self.elsewhere_too(provider, model, policy, now) {
                    self.record(provider, false, policy, now);
                }
            }
            Blame::Provider => self.record(provider, false, policy, now),
        }
    }

    /// Notes a failure of `model` on `provider`'s breaker, and whether another of its
    /// models failed the same way within the window.
    fn elsewhere_too(
        &self,
        provider: &str,
        model: &str,
        policy: &BreakerPolicy,
        now: Instant,
    ) -> bool {
        if !policy.enabled {
            return false;
        }
        let window = Duration::from_secs_f64(policy.window);
        let mut map = self.lock();
        let breaker = map.entry(provider.to_owned()).or_insert_with(Breaker::new);
        let failures = &mut breaker.model_failures;
        failures.retain(|(m, at)| m != model && now.saturating_duration_since(*at) <= window);
        let elsewhere = !failures.is_empty();
        if failures.len() >= MODELS_REMEMBERED {
            failures.remove(0);
        }
        failures.push((model.to_owned(), now));
        elsewhere
    }

    /// Records the outcome of a call to `key`.
    pub fn record(&self, key: &str, succeeded: bool, policy: &BreakerPolicy, now: Instant) {
        if !policy.enabled {
            return;
        }
        let mut map = self.lock();
        let breaker = map.entry(key.to_owned()).or_insert_with(Breaker::new);
        let window = Duration::from_secs_f64(policy.window);
        while breaker
            .recent
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) > window)
        {
            breaker.recent.pop_front();
        }
        breaker.recent.push_back((now, succeeded));
        let open = BreakerState::Open {
            until: now + Duration::from_secs_f64(policy.open_for),
        };
        if succeeded {
            breaker.consecutive_failures = 0;
            if breaker.state == BreakerState::HalfOpen {
                breaker.state = BreakerState::Closed;
                breaker.probe = None;
                breaker.recent.clear();
            }
            return;
        }
        breaker.consecutive_failures += 1;
        match breaker.state {
            BreakerState::HalfOpen => {
                breaker.state = open;
                breaker.probe = None;
            }
            BreakerState::Open { .. } => {}
            BreakerState::Closed => {
                let calls = breaker.recent.len() as u32;
                let failures = breaker.recent.iter().filter(|(_, ok)| !ok).count() as f64;
                let ratio_tripped =
                    calls >= policy.min_calls && failures / f64::from(calls) >= policy.error_ratio;
                if breaker.consecutive_failures >= policy.consecutive_failures || ratio_tripped {
                    tracing::warn!(
                        breaker = key,
                        failures = breaker.consecutive_failures,
                        "circuit opened"
                    );
                    breaker.state = open;
                }
            }
        }
    }

    /// The state of `key`'s breaker.
    pub fn state(&self, key: &str) -> BreakerState {
        let map = self.lock();
        map.get(key)
            .map(|b| b.state)
            .unwrap_or(BreakerState::Closed)
    }

    /// Every breaker that has seen a call, sorted by key.
    pub fn statuses(&self, now: Instant) -> Vec<BreakerStatus> {
        let map = self.lock();
        let mut list: Vec<BreakerStatus> = map
            .iter()
            .map(|(key, b)| BreakerStatus {
                key: key.clone(),
                state: b.state.to_string(),
                consecutive_failures: b.consecutive_failures,
                retry_in_s: match b.state {
                    BreakerState::Open { until } => {
                        Some(until.saturating_duration_since(now).as_secs_f64())
                    }
                    _ => None,
                },
            })
            .collect();
        list.sort_by(|a, b| a.key.cmp(&b.key));
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> BreakerPolicy {
        BreakerPolicy {
            enabled: true,
            consecutive_failures: 3,
            error_ratio: 0.5,
            min_calls: 6,
            window: 10.0,
            open_for: 5.0,
            probe_timeout: 20.0,
        }
    }

    fn keys() -> Vec<String> {
        vec!["p".to_owned(), "p/m".to_owned()]
    }

    /// Opens both of [`keys`]' breakers at `at`.
    fn open_both(breakers: &Breakers, p: &BreakerPolicy, at: Instant) {
        for key in keys() {
            for _ in 0..p.consecutive_failures {
                breakers.record(&key, false, p, at);
            }
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_probe_closes_it() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        let p_only = ["p".to_owned()];
        for _ in 0..2 {
            breakers.record("p", false, &p, t0);
        }
        assert!(!breakers.permit(&p_only, &p, t0).unwrap().is_probe());
        breakers.record("p", false, &p, t0);
        assert_eq!(
            breakers.permit(&p_only, &p, t0).err(),
            Some(Duration::from_secs(5))
        );
        let later = t0 + Duration::from_secs(5);
        let probe = breakers.permit(&p_only, &p, later).unwrap();
        assert!(probe.is_probe());
        assert!(
            breakers.permit(&p_only, &p, later).is_err(),
            "one probe at a time"
        );
        breakers.record("p", true, &p, later);
        drop(probe);
        assert_eq!(breakers.state("p"), BreakerState::Closed);
        assert!(!breakers.permit(&p_only, &p, later).unwrap().is_probe());
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        let p_only = ["p".to_owned()];
        for _ in 0..3 {
            breakers.record("p", false, &p, t0);
        }
        let later = t0 + Duration::from_secs(6);
        let probe = breakers.permit(&p_only, &p, later).unwrap();
        breakers.record("p", false, &p, later);
        drop(probe);
        assert!(
            matches!(breakers.state("p"), BreakerState::Open { until } if until == later + Duration::from_secs(5))
        );
    }

    #[test]
    fn a_probe_dropped_without_an_outcome_lets_the_next_call_probe() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        open_both(&breakers, &p, t0);
        let later = t0 + Duration::from_secs(5);
        let probe = breakers.permit(&keys(), &p, later).unwrap();
        assert_eq!(breakers.state("p"), BreakerState::HalfOpen);
        drop(probe);
        assert!(matches!(breakers.state("p"), BreakerState::Open { .. }));
        assert!(
            breakers.permit(&keys(), &p, later).unwrap().is_probe(),
            "the breaker did not wait for a probe that will never report"
        );
    }

    #[test]
    fn a_probe_that_never_reports_is_replaced_after_the_probe_timeout() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        open_both(&breakers, &p, t0);
        let later = t0 + Duration::from_secs(5);
        // A probe whose task hangs for good: neither an outcome nor a drop.
        std::mem::forget(breakers.permit(&keys(), &p, later).unwrap());
        let before = later + Duration::from_secs(19);
        assert_eq!(
            breakers.permit(&keys(), &p, before).err(),
            Some(Duration::from_secs(1)),
            "within the probe timeout, the probe in flight is waited for"
        );
        let after = later + Duration::from_secs(20);
        let second = breakers.permit(&keys(), &p, after).unwrap();
        assert!(second.is_probe());
        breakers.record("p", true, &p, after);
        breakers.record("p/m", true, &p, after);
        assert_eq!(breakers.state("p/m"), BreakerState::Closed);
    }

    #[test]
    fn a_refusal_by_one_key_leaves_the_others_untouched() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for _ in 0..3 {
            breakers.record("p", false, &p, t0);
        }
        // The model's breaker opened later: still open when the provider's expires.
        for _ in 0..3 {
            breakers.record("p/m", false, &p, t0 + Duration::from_secs(3));
        }
        let at = t0 + Duration::from_secs(5);
        assert!(breakers.permit(&keys(), &p, at).is_err());
        assert!(
            matches!(breakers.state("p"), BreakerState::Open { .. }),
            "not half-open with no probe in flight"
        );
    }

    #[test]
    fn an_error_ratio_over_the_window_opens_it_without_a_streak() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for i in 0..6 {
            breakers.record("p", i % 2 == 0, &p, t0 + Duration::from_millis(i));
        }
        assert!(
            matches!(breakers.state("p"), BreakerState::Open { .. }),
            "3 of 6 failed"
        );
        let (fresh, t1) = (Breakers::default(), t0 + Duration::from_secs(100));
        for i in 0..5 {
            fresh.record("p", i % 2 == 0, &p, t1);
        }
        assert_eq!(
            fresh.state("p"),
            BreakerState::Closed,
            "too few calls to judge a ratio"
        );
    }

    #[test]
    fn one_broken_model_opens_its_own_breaker_not_its_providers() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for blame in [Blame::Model, Blame::ModelUnlessWidespread] {
            for _ in 0..10 {
                breakers.record_failure("p", "p/broken", blame, &p, t0);
            }
            assert!(matches!(
                breakers.state("p/broken"),
                BreakerState::Open { .. }
            ));
            assert_eq!(breakers.state("p"), BreakerState::Closed, "{blame:?}");
            let other = ["p".to_owned(), "p/fine".to_owned()];
            assert!(breakers.permit(&other, &p, t0).is_ok(), "{blame:?}");
        }
    }

    #[test]
    fn failures_across_models_or_of_the_provider_itself_open_the_providers_breaker() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for i in 0..3u64 {
            let model = if i % 2 == 0 { "p/a" } else { "p/b" };
            let at = t0 + Duration::from_millis(i);
            breakers.record_failure("p", model, Blame::ModelUnlessWidespread, &p, at);
        }
        // The first failure had no other model beside it; the next two did.
        assert_eq!(breakers.statuses(t0)[0].consecutive_failures, 2);
        breakers.record_failure("p", "p/a", Blame::ModelUnlessWidespread, &p, t0);
        assert!(matches!(breakers.state("p"), BreakerState::Open { .. }));

        let (own, p) = (Breakers::default(), policy());
        for _ in 0..3 {
            own.record_failure("p", "p/a", Blame::Provider, &p, t0);
        }
        assert!(matches!(own.state("p"), BreakerState::Open { .. }));
        assert_eq!(own.state("p/a"), BreakerState::Closed);
    }

    #[test]
    fn old_outcomes_leave_the_window() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for i in 0..5 {
            breakers.record("p", i % 2 == 1, &p, t0);
        }
        // Counted with the 5 above, 4 failures in 6 calls would open it.
        breakers.record("p", false, &p, t0 + Duration::from_secs(11));
        assert_eq!(breakers.state("p"), BreakerState::Closed);
    }
}
