//! Limits counted in this host's memory: exact for one host, one small lock per limit
//! (never one for all requests), a few hundred nanoseconds per request.

use std::sync::MutexGuard;

use super::{
    quota::{Dimension, Hit, Quota, RateLimits},
    Entry, Held, Usage,
};
use crate::config::WINDOW_SECS;

/// One limit's counts: the current window (which starts with the first request after
/// the last one ended and lasts [`WINDOW_SECS`]) and the requests in flight.
#[derive(Debug, Default)]
pub(super) struct Window {
    start: Option<f64>,
    requests: u64,
    tokens: u64,
    in_flight: u64,
}

impl Window {
    /// Ends the window when its time is up.
    fn roll(&mut self, now: f64) {
        if self
            .start
            .is_some_and(|start| now >= start + WINDOW_SECS as f64)
        {
            self.start = None;
            self.requests = 0;
            self.tokens = 0;
        }
    }

    /// Until the window ends, in milliseconds (a whole window when none is open).
    fn reset_ms(&self, now: f64) -> u64 {
        match self.start {
            Some(start) => ((start + WINDOW_SECS as f64 - now) * 1000.0)
                .ceil()
                .max(0.0) as u64,
            None => WINDOW_SECS * 1000,
        }
    }

    /// What is used now, for reports.
    pub(super) fn usage(&mut self, now: f64) -> Usage {
        self.roll(now);
        Usage {
            requests: self.requests,
            tokens: self.tokens,
            reset_ms: if self.start.is_some() {
                self.reset_ms(now)
            } else {
                0
            },
            in_flight: self.in_flight,
        }
    }
}

fn lock(entry: &Entry) -> MutexGuard<'_, Window> {
    entry.local.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes one request, `reserve` tokens (at most each limit's `tpm`) and a concurrency
/// slot from every limit in `entries`, or from none of them: the first limit that
/// cannot give is the refusal. Locks are taken in the order given (client, provider,
/// target), so two requests cannot wait on each other.
pub(super) fn admit(
    entries: &[std::sync::Arc<Entry>],
    reserve: u64,
    now: f64,
) -> Result<Vec<Held>, Box<Hit>> {
    let mut windows: Vec<MutexGuard<'_, Window>> = entries.iter().map(|e| lock(e)).collect();
    for (entry, window) in entries.iter().zip(windows.iter_mut()) {
        window.roll(now);
        let usage = Usage {
            requests: window.requests,
            tokens: window.tokens,
            reset_ms: window.reset_ms(now),
            in_flight: window.in_flight,
        };
        if let Some(hit) = entry.refuses(&usage, reserve) {
            return Err(Box::new(hit));
        }
    }
    let mut held = Vec::with_capacity(entries.len());
    for (entry, window) in entries.iter().zip(windows.iter_mut()) {
        let start = *window.start.get_or_insert(now);
        let reserved = entry.reservation(reserve);
        window.requests += 1;
        window.tokens += reserved;
        window.in_flight += 1;
        let usage = Usage {
            requests: window.requests,
            tokens: window.tokens,
            reset_ms: window.reset_ms(now),
            in_flight: window.in_flight,
        };
        held.push(Held {
            entry: entry.clone(),
            window: start.to_bits(),
            reserved,
            leased: true,
            usage,
        });
    }
    Ok(held)
}

/// Gives back what `held` took: the concurrency slot, and the difference between the
/// tokens reserved and `used` (when known) if its window is still the same.
pub(super) fn settle(held: &[Held], used: Option<u64>) {
    for held in held {
        let mut window = lock(&held.entry);
        let same_window = window.start.is_some_and(|s| s.to_bits() == held.window);
        if let (Some(used), true) = (used, same_window) {
            window.tokens = (window.tokens + used).saturating_sub(held.reserved);
        }
        window.in_flight = window.in_flight.saturating_sub(1);
    }
}

impl Entry {
    /// The tokens a request reserves against this limit: its estimate, at most a whole
    /// window's (a larger request waits for an empty window instead of never passing).
    pub(super) fn reservation(&self, reserve: u64) -> u64 {
        self.tpm.map_or(reserve, |tpm| reserve.min(tpm))
    }

    /// Why this limit refuses one more request with `reserve` tokens, given `usage`.
    pub(super) fn refuses(&self, usage: &Usage, reserve: u64) -> Option<Hit> {
        let hit = |dimension, limit, used, asked, retry_after_ms| Hit {
            scope: self.label(),
            kind: self.scope,
            dimension,
            limit,
            used,
            asked,
            retry_after_ms,
            quotas: self.quotas(usage),
        };
        if let Some(rpm) = self.rpm.filter(|&rpm| usage.requests + 1 > rpm) {
            return Some(hit(
                Dimension::Requests,
                rpm,
                usage.requests,
                1,
                usage.reset_ms,
            ));
        }
        let asked = self.reservation(reserve);
        if let Some(tpm) = self.tpm.filter(|&tpm| usage.tokens + asked > tpm) {
            return Some(hit(
                Dimension::Tokens,
                tpm,
                usage.tokens,
                asked,
                usage.reset_ms,
            ));
        }
        if let Some(limit) = self.concurrent.filter(|&c| usage.in_flight + 1 > c) {
            // A slot frees when a request ends: there is no reset to wait for.
            return Some(hit(Dimension::Concurrent, limit, usage.in_flight, 1, 1000));
        }
        None
    }

    /// The quotas this limit reports when its counts are `usage`.
    pub(super) fn quotas(&self, usage: &Usage) -> RateLimits {
        let quota = |limit: u64, used: u64| Quota {
            limit,
            remaining: limit.saturating_sub(used),
            reset_ms: usage.reset_ms,
        };
        RateLimits {
            requests: self.rpm.map(|rpm| quota(rpm, usage.requests)),
            tokens: self.tpm.map(|tpm| quota(tpm, usage.tokens)),
        }
    }
}
