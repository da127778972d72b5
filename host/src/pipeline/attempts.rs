//! Route → capabilities → provider budgets → breakers → attempts: the targets of a
//! model string are tried in order; a failed attempt is retried with backoff when its
//! kind allows, then the next target is tried when the failure is worth a fallback.
//! The request's deadline bounds all of it.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use provider_sdk::{ChatRequest, ErrorKind, ProviderError};

use super::{
    capabilities::missing_capability,
    native::{self, NativeBody},
    policy::{backoff, blame, fallback_worthy, retryable, Jitter, JitterSource},
    upstream::{redact, Prepared},
    DispatchError,
};
use crate::{
    breaker::Breakers,
    config::RetryPolicy,
    registry::{ReadyProvider, Registry, Target},
    snapshot::Snapshot,
    usage::Meter,
};

/// Who answered, and what it took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// The target that answered.
    pub target: Target,
    /// Its position in the fallback chain (0 for the first).
    pub fallback_index: usize,
    /// Attempts made, retries and fallbacks included.
    pub attempts: u32,
    /// Time spent waiting on upstreams (and in backoff) until the answer, or for a
    /// stream until its first event: the rest of the latency is the host's own.
    pub upstream_wait: Duration,
    /// The backoff waited before each retry, in order.
    pub backoffs: Vec<Duration>,
}

/// Accumulates time spent waiting on upstreams across attempts.
#[derive(Debug, Default)]
pub(super) struct WaitClock(std::sync::atomic::AtomicU64);

impl WaitClock {
    pub(super) fn add(&self, d: Duration) {
        self.0
            .fetch_add(d.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// Tries the targets of `request.model` in order, with retries, until `attempt`
/// succeeds. `attempt` gets the provider, what to send it (the client's own body when
/// the target speaks `native`'s protocol, else the canonical request; model set to the
/// target's) and the request's deadline.
#[allow(clippy::too_many_arguments)]
pub(super) async fn run<T, F, Fut>(
    snapshot: &Snapshot,
    breakers: &Breakers,
    meter: &Meter,
    jitter_source: Option<&JitterSource>,
    mut request: ChatRequest,
    native: Option<&NativeBody>,
    waited: &WaitClock,
    mut attempt: F,
) -> Result<(T, Route), DispatchError>
where
    F: FnMut(Arc<ReadyProvider>, Arc<Prepared>, Instant) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let (registry, config) = (&snapshot.registry, &snapshot.config);
    let model = std::mem::take(&mut request.model);
    if model.len() > super::MAX_MODEL_NAME_BYTES {
        return Err(DispatchError::ModelNameTooLong {
            length: model.len(),
        });
    }
    let targets = registry
        .targets(&model)
        .ok_or_else(|| DispatchError::UnknownModel {
            model: model.clone(),
        })?;
    let deadline = Instant::now() + Duration::from_secs_f64(config.request_timeout);
    let breaker_policy = &config.circuit_breaker;
    let mut jitter = Jitter::new();
    let mut sample = || match jitter_source {
        Some(source) => source(),
        None => jitter.sample(),
    };
    let mut backoffs = Vec::new();
    let mut reasons = Vec::new();
    let mut last: Option<(Target, ProviderError)> = None;
    let mut attempts = 0u32;
    let mut budget_blocked = false;
    let mut unsupported = false;
    for (index, target) in targets.into_iter().enumerate() {
        if let Some((_, error)) = &last {
            if error.kind == ErrorKind::ContextWindowExceeded && !target.larger_context {
                reasons.push(format!("{target} skipped: not marked larger_context"));
                continue;
            }
        }
        if let Err(spent) = meter.check_provider(&target.provider, &config.budgets) {
            reasons.push(format!("{target}: {spent}"));
            budget_blocked = true;
            continue;
        }
        let provider = match ready(registry, &target) {
            Ok(provider) => provider,
            Err(reason) => {
                reasons.push(reason);
                continue;
            }
        };
        if let Some(missing) = missing_capability(&request, &provider.manifest.capabilities) {
            reasons.push(format!(
                "{target} does not offer {missing} (its plugin's manifest lacks the capability)"
            ));
            unsupported = true;
            continue;
        }
        let policy = retry_policy(registry, &target, &config.retry);
        // Breakers of configured targets only: one for every other name of a provider.
        let counted = super::counted_model(snapshot, &target.provider, &target.model);
        let unlisted = counted == super::OTHER_MODEL;
        let keys = [
            target.provider.clone(),
            format!("{}/{counted}", target.provider),
        ];
        request.model.clone_from(&target.model);
        let prepared = match prepare(&provider, &request, native) {
            Ok(Some(prepared)) => prepared,
            Ok(None) => {
                let lost = native.map(|n| n.lost.join("; ")).unwrap_or_default();
                reasons.push(format!(
                    "{target} does not speak the client's protocol, and translating the request for it would drop {lost}"
                ));
                unsupported = true;
                continue;
            }
            Err(error) => {
                return Err(DispatchError::Provider {
                    target: target.to_string(),
                    error,
                    attempts,
                })
            }
        };
        let mut retry = 0;
        loop {
            let now = Instant::now();
            // The deadline first: a request that cannot be sent must not take a
            // breaker's probe.
            if now >= deadline {
                return Err(deadline_error(
                    &target,
                    config.request_timeout,
                    attempts,
                    last,
                ));
            }
            // Held until the attempt has an outcome: when this future is dropped first
            // (the client left), a probe it carried is handed back.
            let _permit = match breakers.permit(&keys, breaker_policy, now) {
                Ok(permit) => permit,
                Err(wait) => {
                    reasons.push(format!(
                        "{target} skipped: circuit open (next probe in {:.1}s)",
                        wait.as_secs_f64()
                    ));
                    break;
                }
            };
            attempts += 1;
            match attempt(provider.clone(), prepared.clone(), deadline).await {
                Ok(value) => {
                    for key in &keys {
                        breakers.record(key, true, breaker_policy, Instant::now());
                    }
                    if index > 0 || attempts > 1 {
                        tracing::info!(%target, fallback_index = index, attempts, "answered after retries or fallback");
                    }
                    let route = Route {
                        target,
                        fallback_index: index,
                        attempts,
                        upstream_wait: waited.total(),
                        backoffs,
                    };
                    return Ok((value, route));
                }
                Err(error) => {
                    let error = redact(error, &provider);
                    // A name that does not exist says nothing about the other unlisted
                    // names that share its breaker.
                    if !(unlisted && error.kind == ErrorKind::ModelNotFound) {
                        breakers.record_failure(
                            &keys[0],
                            &keys[1],
                            blame(error.kind),
                            breaker_policy,
                            Instant::now(),
                        );
                    }
                    tracing::info!(%target, attempt = attempts, kind = %error.kind, message = %error.message, "attempt failed");
                    if retryable(error.kind) && retry < policy.max_retries {
                        let wait = backoff(&policy, retry, &error, sample());
                        if Instant::now() + wait < deadline {
                            tokio::time::sleep(wait).await;
                            waited.add(wait);
                            backoffs.push(wait);
                            retry += 1;
                            last = Some((target.clone(), error));
                            continue;
                        }
                    }
                    last = Some((target.clone(), error));
                    break;
                }
            }
        }
        if last.as_ref().is_some_and(|(_, e)| !fallback_worthy(e.kind)) {
            break;
        }
    }
    match last {
        Some((target, error)) => Err(DispatchError::Provider {
            target: target.to_string(),
            error,
            attempts,
        }),
        None if budget_blocked => Err(DispatchError::BudgetSpent { model, reasons }),
        None if unsupported => Err(DispatchError::Unsupported { model, reasons }),
        None => Err(DispatchError::NotReady { model, reasons }),
    }
}

fn deadline_error(
    target: &Target,
    timeout: f64,
    attempts: u32,
    last: Option<(Target, ProviderError)>,
) -> DispatchError {
    let mut message =
        format!("the request timeout of {timeout}s ran out after {attempts} attempts");
    if let Some((_, error)) = &last {
        message.push_str(&format!("; last error: {error}"));
    }
    DispatchError::Provider {
        target: last
            .map(|(t, _)| t)
            .unwrap_or_else(|| target.clone())
            .to_string(),
        error: ProviderError::new(ErrorKind::Timeout, message),
        attempts,
    }
}

/// The serving instance of a target's provider, or why there is none.
fn ready(registry: &Registry, target: &Target) -> Result<Arc<ReadyProvider>, String> {
    match registry.provider(&target.provider) {
        Some(status) => status
            .ready
            .clone()
            .ok_or_else(|| format!("{} {}", target.provider, status.state)),
        None => Err(format!("{} is not configured", target.provider)),
    }
}

fn retry_policy(registry: &Registry, target: &Target, global: &RetryPolicy) -> RetryPolicy {
    registry
        .provider(&target.provider)
        .and_then(|p| p.entry.retry)
        .unwrap_or(*global)
}

/// What `provider` is sent for `request`: the client's own body when its plugin speaks
/// the client's protocol natively, else the canonical request for it to translate;
/// `None` when translating would drop part of the client's request.
fn prepare(
    provider: &ReadyProvider,
    request: &ChatRequest,
    native: Option<&NativeBody>,
) -> Result<Option<Arc<Prepared>>, ProviderError> {
    if let Some(body) = native {
        let wanted = match provider.passthrough {
            true => {
                provider
                    .plugin
                    .native_request(body.protocol, &request.model, request.stream)?
            }
            false => None,
        };
        if let Some(wanted) = wanted {
            let http = native::upstream_request(body, wanted, &request.model)
                .map_err(|e| ProviderError::invalid_request(e.to_string()))?;
            return Ok(Some(Arc::new(Prepared::Native(http))));
        }
        if !body.lost.is_empty() {
            return Ok(None);
        }
    }
    let json = serde_json::to_string(request)
        .map_err(|e| ProviderError::invalid_request(format!("unencodable request: {e}")))?;
    Ok(Some(Arc::new(Prepared::Canonical(json))))
}
