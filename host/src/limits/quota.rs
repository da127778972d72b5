//! What a client is told about its limits: the OpenAI-style `x-ratelimit-*` values of
//! the tightest limit that applied, and why a request was refused.

use std::time::Duration;

use serde::Serialize;

/// One dimension (requests or tokens) of a limit, as `x-ratelimit-limit-*`,
/// `-remaining-*` and `-reset-*` report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Quota {
    /// Allowed per window.
    pub limit: u64,
    /// Left in the current window.
    pub remaining: u64,
    /// Until the window starts over, in milliseconds.
    pub reset_ms: u64,
}

/// The request and token quotas of the tightest limits that applied to a request (the
/// smallest remaining of each dimension); `None` where no limit of that dimension
/// applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Requests.
    pub requests: Option<Quota>,
    /// Tokens.
    pub tokens: Option<Quota>,
}

impl RateLimits {
    /// Keeps, per dimension, whichever of the two has less remaining.
    pub fn tighten(&mut self, other: RateLimits) {
        fn tighter(a: Option<Quota>, b: Option<Quota>) -> Option<Quota> {
            match (a, b) {
                (Some(a), Some(b)) if b.remaining < a.remaining => Some(b),
                (Some(a), _) => Some(a),
                (None, b) => b,
            }
        }
        self.requests = tighter(self.requests, other.requests);
        self.tokens = tighter(self.tokens, other.tokens);
    }

    /// Whether no limit applied.
    pub fn is_empty(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none()
    }

    /// The `x-ratelimit-*` headers, OpenAI's names and formats (resets as `1m2s`,
    /// `450ms`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        for (quota, names) in [
            (
                self.requests,
                [
                    "x-ratelimit-limit-requests",
                    "x-ratelimit-remaining-requests",
                    "x-ratelimit-reset-requests",
                ],
            ),
            (
                self.tokens,
                [
                    "x-ratelimit-limit-tokens",
                    "x-ratelimit-remaining-tokens",
                    "x-ratelimit-reset-tokens",
                ],
            ),
        ] {
            if let Some(q) = quota {
                headers.push((names[0], q.limit.to_string()));
                headers.push((names[1], q.remaining.to_string()));
                headers.push((names[2], reset_text(Duration::from_millis(q.reset_ms))));
            }
        }
        headers
    }
}

/// `450ms`, `42s`, `1m2s`: how OpenAI writes a reset.
fn reset_text(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let secs = ms.div_ceil(1000);
    if secs < 60 {
        format!("{secs}s")
    } else {
        format!("{}m{}s", secs / 60, secs % 60)
    }
}

/// Which dimension of a limit refused a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension {
    /// `rpm`.
    Requests,
    /// `tpm`.
    Tokens,
    /// `concurrent`.
    Concurrent,
}

/// One limit that refused a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    /// `client team-a`, `provider openai` or `target openai/gpt-4o-mini`.
    pub scope: String,
    /// What the refusing limit applies to.
    pub kind: crate::config::LimitScope,
    /// What ran out.
    pub dimension: Dimension,
    /// The limit.
    pub limit: u64,
    /// Used in the window (requests, tokens) or in flight (concurrent).
    pub used: u64,
    /// What the request needed (1 request, its token reservation, 1 slot).
    pub asked: u64,
    /// When to try again, in milliseconds.
    pub retry_after_ms: u64,
    /// The refusing limit's quotas, for the `x-ratelimit-*` headers.
    pub quotas: RateLimits,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (limit, used) = (self.limit, self.used);
        match self.dimension {
            Dimension::Requests => write!(
                f,
                "{}: {limit} requests per minute, {used} used",
                self.scope
            ),
            Dimension::Tokens => write!(
                f,
                "{}: {limit} tokens per minute, {used} used, this request reserves {}",
                self.scope, self.asked
            ),
            Dimension::Concurrent => write!(
                f,
                "{}: {limit} concurrent requests, {used} in flight",
                self.scope
            ),
        }
    }
}

/// A request refused by rate limits: a client's own, or those of every target its
/// model could go to. Answered 429 `rate_limit_exceeded` with `retry-after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitExceeded {
    /// The model string, when every target of it was limited.
    pub model: Option<String>,
    /// The limits that refused it.
    pub hits: Vec<Hit>,
}

impl std::fmt::Display for LimitExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(model) = &self.model {
            write!(f, "every target of `{model}` is at its limit: ")?;
        }
        let reasons: Vec<String> = self.hits.iter().map(Hit::to_string).collect();
        write!(
            f,
            "rate limit exceeded: {}; retry in {}s",
            reasons.join("; "),
            self.retry_after_secs()
        )
    }
}

impl std::error::Error for LimitExceeded {}

impl LimitExceeded {
    /// Seconds until the soonest refusing limit frees up (at least 1), for `retry-after`.
    pub fn retry_after_secs(&self) -> u64 {
        let ms = self
            .hits
            .iter()
            .map(|h| h.retry_after_ms)
            .min()
            .unwrap_or(1000);
        ms.div_ceil(1000).max(1)
    }

    /// The `x-ratelimit-*` values of the refusing limit that frees up soonest.
    pub fn quotas(&self) -> RateLimits {
        self.hits
            .iter()
            .min_by_key(|h| h.retry_after_ms)
            .map(|h| h.quotas)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resets_are_written_as_openai_writes_them() {
        assert_eq!(reset_text(Duration::from_millis(450)), "450ms");
        assert_eq!(reset_text(Duration::from_millis(41_200)), "42s");
        assert_eq!(reset_text(Duration::from_millis(62_000)), "1m2s");
    }

    #[test]
    fn the_tightest_limit_of_each_dimension_is_reported() {
        let q = |limit, remaining| Quota {
            limit,
            remaining,
            reset_ms: 1000,
        };
        let mut limits = RateLimits {
            requests: Some(q(60, 50)),
            tokens: None,
        };
        limits.tighten(RateLimits {
            requests: Some(q(10, 9)),
            tokens: Some(q(1000, 10)),
        });
        limits.tighten(RateLimits {
            requests: Some(q(500, 100)),
            tokens: Some(q(5000, 4000)),
        });
        assert_eq!(limits.requests, Some(q(10, 9)));
        assert_eq!(limits.tokens, Some(q(1000, 10)));
    }
}
