//! Circuit breakers: a provider (or one of its models) that keeps failing is skipped
//! for a while, then probed with one request before it serves again.
//!
//! State lives in the host, not in a registry snapshot, so a reload keeps what the
//! breakers learnt about an upstream.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::Mutex,
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

/// Whether a call may go to a target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Go ahead.
    Allowed,
    /// Go ahead: this call is the probe of a half-open breaker.
    Probe,
    /// Skip this target; it may be tried again after the duration.
    Refused(Duration),
}

#[derive(Debug)]
struct Breaker {
    state: BreakerState,
    consecutive_failures: u32,
    /// Outcomes in the window: (when, succeeded).
    recent: VecDeque<(Instant, bool)>,
}

impl Breaker {
    fn new() -> Self {
        Breaker {
            state: BreakerState::Closed,
            consecutive_failures: 0,
            recent: VecDeque::new(),
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
}

impl Breakers {
    /// Asks whether a call to `key` may go ahead now.
    pub fn admit(&self, key: &str, policy: &BreakerPolicy, now: Instant) -> Admission {
        if !policy.enabled {
            return Admission::Allowed;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        let Some(breaker) = map.get_mut(key) else {
            return Admission::Allowed;
        };
        match breaker.state {
            BreakerState::Closed => Admission::Allowed,
            BreakerState::HalfOpen => Admission::Refused(Duration::from_secs_f64(policy.open_for)),
            BreakerState::Open { until } if now >= until => {
                breaker.state = BreakerState::HalfOpen;
                Admission::Probe
            }
            BreakerState::Open { until } => Admission::Refused(until - now),
        }
    }

    /// Records the outcome of a call to `key`.
    pub fn record(&self, key: &str, succeeded: bool, policy: &BreakerPolicy, now: Instant) {
        if !policy.enabled {
            return;
        }
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
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
                breaker.recent.clear();
            }
            return;
        }
        breaker.consecutive_failures += 1;
        match breaker.state {
            BreakerState::HalfOpen => breaker.state = open,
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
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        map.get(key)
            .map(|b| b.state)
            .unwrap_or(BreakerState::Closed)
    }

    /// Every breaker that has seen a call, sorted by key.
    pub fn statuses(&self, now: Instant) -> Vec<BreakerStatus> {
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
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
        }
    }

    #[test]
    fn consecutive_failures_open_the_breaker_and_a_probe_closes_it() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for _ in 0..2 {
            breakers.record("p", false, &p, t0);
        }
        assert_eq!(breakers.admit("p", &p, t0), Admission::Allowed);
        breakers.record("p", false, &p, t0);
        assert!(
            matches!(breakers.admit("p", &p, t0), Admission::Refused(d) if d == Duration::from_secs(5))
        );
        let later = t0 + Duration::from_secs(5);
        assert_eq!(breakers.admit("p", &p, later), Admission::Probe);
        assert!(
            matches!(breakers.admit("p", &p, later), Admission::Refused(_)),
            "one probe at a time"
        );
        breakers.record("p", true, &p, later);
        assert_eq!(breakers.state("p"), BreakerState::Closed);
        assert_eq!(breakers.admit("p", &p, later), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_it_again() {
        let (breakers, p, t0) = (Breakers::default(), policy(), Instant::now());
        for _ in 0..3 {
            breakers.record("p", false, &p, t0);
        }
        let later = t0 + Duration::from_secs(6);
        assert_eq!(breakers.admit("p", &p, later), Admission::Probe);
        breakers.record("p", false, &p, later);
        assert!(
            matches!(breakers.state("p"), BreakerState::Open { until } if until == later + Duration::from_secs(5))
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
