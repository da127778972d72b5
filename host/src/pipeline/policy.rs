//! What each error kind means for retries, fallback and circuit breakers, and how
//! long to wait before the next attempt.

use std::time::Duration;

use provider_sdk::{ErrorKind, ProviderError};

use crate::{breaker::Blame, config::RetryPolicy};

/// Whether trying the same target again may succeed.
pub fn retryable(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::RateLimited
            | ErrorKind::Timeout
            | ErrorKind::Connection
            | ErrorKind::ProviderService
    )
}

/// Whether another target may succeed where this one failed. Never for a request the
/// client got wrong; a context-window error only moves to larger-context targets.
pub fn fallback_worthy(kind: ErrorKind) -> bool {
    !matches!(kind, ErrorKind::InvalidRequest)
}

/// Whether the failure says something about the target's health (for breakers).
pub fn counts_against_target(kind: ErrorKind) -> bool {
    !matches!(
        kind,
        ErrorKind::InvalidRequest | ErrorKind::ContextWindowExceeded | ErrorKind::ModelNotFound
    )
}

/// Whose breaker a failure counts against. Connection, authentication and quota
/// failures are the provider's (another model would fail the same way); rate limits,
/// bad answers (`plugin_fault`) and a missing model are one model's; a 5xx or a timeout
/// is one model's until another model of the provider fails so too.
pub fn blame(kind: ErrorKind) -> Blame {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::ContextWindowExceeded => Blame::Nobody,
        ErrorKind::ModelNotFound | ErrorKind::RateLimited | ErrorKind::PluginFault => Blame::Model,
        ErrorKind::ProviderService | ErrorKind::Timeout => Blame::ModelUnlessWidespread,
        ErrorKind::Connection | ErrorKind::Authentication | ErrorKind::QuotaExceeded => {
            Blame::Provider
        }
    }
}

/// Whose breaker `error` counts against: [`blame`] of its kind, except that a plugin
/// worker process that died (or was killed) under a call is the provider's, whatever
/// model was asked: the whole plugin runs there, so repeated crashes open the
/// provider's breaker.
pub fn blame_error(error: &ProviderError) -> Blame {
    if error.kind == ErrorKind::PluginFault
        && error.provider_code.as_deref() == Some(crate::worker::WORKER_DIED)
    {
        return Blame::Provider;
    }
    blame(error.kind)
}

/// Exponential backoff with full jitter: a random wait in `[0, min(cap, base * 2^n)]`
/// before retry `n` (from 0), or what the upstream asked for (`retry-after`), capped.
pub fn backoff(policy: &RetryPolicy, retry: u32, error: &ProviderError, random: f64) -> Duration {
    let cap = policy.cap();
    if let Some(ms) = error.retry_after_ms {
        return Duration::from_millis(ms).min(cap);
    }
    let ceiling = policy.base().saturating_mul(1u32 << retry.min(20)).min(cap);
    ceiling.mul_f64(random.clamp(0.0, 1.0))
}

/// A source of jitter in `[0, 1]` that replaces the random one: an embedder's own, or a
/// test's fixed sequence, which makes every backoff wait exact.
pub type JitterSource = std::sync::Arc<dyn Fn() -> f64 + Send + Sync>;

/// A small per-request random source for jitter (no need for cryptographic quality).
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the clock and a counter, so concurrent requests differ.
    pub fn new() -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Jitter(nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed))
    }

    /// A number in `[0, 1)` (splitmix64).
    pub fn sample(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Default for Jitter {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_retries: 5,
            delay: 0.1,
            max_delay: 1.0,
        }
    }

    #[test]
    fn waits_grow_exponentially_under_full_jitter_and_stop_at_the_cap() {
        let error = ProviderError::new(ErrorKind::ProviderService, "boom");
        let p = policy();
        assert_eq!(backoff(&p, 0, &error, 1.0), Duration::from_millis(100));
        assert_eq!(backoff(&p, 2, &error, 1.0), Duration::from_millis(400));
        assert_eq!(
            backoff(&p, 6, &error, 1.0),
            Duration::from_secs(1),
            "capped"
        );
        assert_eq!(
            backoff(&p, 2, &error, 0.0),
            Duration::ZERO,
            "full jitter starts at zero"
        );
        assert_eq!(backoff(&p, 2, &error, 0.5), Duration::from_millis(200));
    }

    #[test]
    fn retry_after_is_honoured_up_to_the_cap() {
        let p = policy();
        let asked = ProviderError::new(ErrorKind::RateLimited, "slow").with_retry_after_ms(750);
        assert_eq!(backoff(&p, 0, &asked, 0.0), Duration::from_millis(750));
        let too_long =
            ProviderError::new(ErrorKind::RateLimited, "slow").with_retry_after_ms(60_000);
        assert_eq!(backoff(&p, 0, &too_long, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_uniform_enough_and_differs_between_requests() {
        let mut j = Jitter::new();
        let samples: Vec<f64> = (0..10_000).map(|_| j.sample()).collect();
        assert!(samples.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = samples.iter().sum::<f64>() / samples.len() as f64;
        assert!((0.45..0.55).contains(&mean), "mean {mean}");
        assert_ne!(Jitter::new().sample(), Jitter::new().sample());
    }

    #[test]
    fn kinds_decide_retry_fallback_and_health() {
        assert!(retryable(ErrorKind::RateLimited) && !retryable(ErrorKind::QuotaExceeded));
        assert!(
            !retryable(ErrorKind::InvalidRequest) && !fallback_worthy(ErrorKind::InvalidRequest)
        );
        assert!(
            fallback_worthy(ErrorKind::Authentication),
            "the host's upstream key, not the client's"
        );
        assert!(!counts_against_target(ErrorKind::ContextWindowExceeded));
    }
}
