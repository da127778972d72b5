//! The resilience part of the config: retries, the request deadline, circuit breakers
//! and raw upstream logging, with the `LLM_*` environment overrides.

use std::{path::PathBuf, time::Duration};

use serde::{Deserialize, Serialize};

/// How failed attempts are retried: exponential backoff with full jitter, capped.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt, per target.
    pub max_retries: u32,
    /// Base delay in seconds; attempt `n` waits a random time up to `delay * 2^n`.
    pub delay: f64,
    /// The longest wait between two attempts, in seconds.
    pub max_delay: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 2,
            delay: 0.5,
            max_delay: 8.0,
        }
    }
}

impl RetryPolicy {
    /// The base delay.
    pub fn base(&self) -> Duration {
        Duration::from_secs_f64(self.delay)
    }

    /// The delay cap.
    pub fn cap(&self) -> Duration {
        Duration::from_secs_f64(self.max_delay)
    }
}

/// When a provider (or one of its models) is taken out of rotation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BreakerPolicy {
    /// Breakers on or off.
    pub enabled: bool,
    /// Open after this many failures in a row.
    pub consecutive_failures: u32,
    /// Or open when this share of the calls in the window failed...
    pub error_ratio: f64,
    /// ...counting only windows with at least this many calls.
    pub min_calls: u32,
    /// The window, in seconds.
    pub window: f64,
    /// How long a breaker stays open before one probe is let through, in seconds.
    pub open_for: f64,
    /// How long a half-open breaker waits for its probe to report before it lets
    /// another through, in seconds: a probe whose task is lost must not keep the
    /// target out of rotation until a restart.
    pub probe_timeout: f64,
}

impl Default for BreakerPolicy {
    fn default() -> Self {
        BreakerPolicy {
            enabled: true,
            consecutive_failures: 5,
            error_ratio: 0.5,
            min_calls: 10,
            window: 30.0,
            open_for: 30.0,
            probe_timeout: 60.0,
        }
    }
}

/// Raw logging of upstream requests and responses (off unless configured).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLogConfig {
    /// `stderr`, or a file to append JSON lines to (relative to the config's folder).
    pub to: PathBuf,
    /// Bodies are cut after this many bytes.
    #[serde(default = "default_raw_body_cap")]
    pub max_body_bytes: usize,
}

fn default_raw_body_cap() -> usize {
    4096
}

/// Applies `LLM_MAX_RETRIES`, `LLM_RETRY_DELAY`, `LLM_RETRY_MAX_DELAY` and
/// `LLM_REQUEST_TIMEOUT` (seconds, fractions allowed) over the config's global values.
pub fn apply_env_overrides(
    retry: &mut RetryPolicy,
    request_timeout: &mut f64,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(), (String, String)> {
    let seconds = |name: &str| -> Result<Option<f64>, (String, String)> {
        let Some(text) = env(name) else {
            return Ok(None);
        };
        match text.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err((
                format!("environment variable {name}"),
                format!("`{text}` is not a number of seconds"),
            )),
        }
    };
    if let Some(text) = env("LLM_MAX_RETRIES") {
        retry.max_retries = text.trim().parse().map_err(|_| {
            (
                "environment variable LLM_MAX_RETRIES".to_owned(),
                format!("`{text}` is not a whole number"),
            )
        })?;
    }
    if let Some(v) = seconds("LLM_RETRY_DELAY")? {
        retry.delay = v;
    }
    if let Some(v) = seconds("LLM_RETRY_MAX_DELAY")? {
        retry.max_delay = v;
    }
    if let Some(v) = seconds("LLM_REQUEST_TIMEOUT")? {
        *request_timeout = v;
    }
    Ok(())
}
