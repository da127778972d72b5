//! Route → capabilities → admission (budgets, rate limits) → breakers → attempts: the
//! targets of a model string are tried in order; a failed attempt is retried with
//! backoff when its kind allows, then the next target is tried when the failure is
//! worth a fallback. The request's deadline bounds all of it.

use std::{
    future::Future,
    sync::Arc,
    time::{Duration, Instant},
};

use provider_sdk::{ChatRequest, EmbeddingRequest, ErrorKind, HttpRequest, ProviderError};

use super::{
    admission::{Admission, Refused},
    capabilities::missing_capability,
    native::{self, NativeBody},
    policy::{backoff, blame_error, fallback_worthy, retryable, Jitter, JitterSource},
    upstream::{redact, Prepared},
    DispatchError,
};
use crate::{
    breaker::Breakers,
    config::RetryPolicy,
    last_errors::LastErrors,
    registry::{ReadyProvider, Registry, Target},
    snapshot::Snapshot,
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
    /// The tightest rate limits that applied, for the `x-ratelimit-*` headers.
    pub rate_limits: crate::limits::RateLimits,
    /// How the call met the response cache, when its model is cached.
    pub cache: Option<crate::cache::Outcome>,
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

/// What a call asks of the targets it is routed to: the job [`run`] tries them for.
pub(super) trait Job {
    /// The client's model string (`provider/model` or an alias).
    fn model(&self) -> &str;

    /// Why `provider` cannot serve this job (a missing capability), completing the
    /// sentence "`<target>` ...", or `None` when it can.
    fn unfit(&self, provider: &ReadyProvider) -> Option<String>;

    /// What `provider` is sent for its model `model` (async: in process isolation,
    /// asking the plugin whether it takes the client's body is a call to a worker).
    async fn prepare(
        &mut self,
        provider: &ReadyProvider,
        model: &str,
    ) -> Result<Prepare, ProviderError>;
}

/// What one target gets for a job.
pub(super) enum Prepare {
    /// This, on every attempt.
    Send(Arc<Prepared>),
    /// Nothing: it is skipped, for the reason given (completing "`<target>` ...").
    Skip(String),
}

/// A chat: the canonical request, and the client's own body for targets that speak
/// its protocol.
pub(super) struct ChatJob<'a> {
    model: String,
    request: ChatRequest,
    native: Option<&'a NativeBody>,
}

impl<'a> ChatJob<'a> {
    pub(super) fn new(mut request: ChatRequest, native: Option<&'a NativeBody>) -> Self {
        let model = std::mem::take(&mut request.model);
        ChatJob {
            model,
            request,
            native,
        }
    }
}

impl Job for ChatJob<'_> {
    fn model(&self) -> &str {
        &self.model
    }

    fn unfit(&self, provider: &ReadyProvider) -> Option<String> {
        let missing = missing_capability(&self.request, &provider.manifest.capabilities)?;
        Some(format!(
            "does not offer {missing} (its plugin's manifest lacks the capability)"
        ))
    }

    async fn prepare(
        &mut self,
        provider: &ReadyProvider,
        model: &str,
    ) -> Result<Prepare, ProviderError> {
        self.request.model = model.to_owned();
        Ok(match prepare(provider, &self.request, self.native).await? {
            Some(prepared) => Prepare::Send(prepared),
            None => {
                let lost = self.native.map(|n| n.lost.join("; ")).unwrap_or_default();
                Prepare::Skip(format!(
                    "does not speak the client's protocol, and translating the request for it would drop {lost}"
                ))
            }
        })
    }
}

/// An embeddings request, for targets whose plugin serves embeddings, and the
/// client's own body for targets that speak its protocol.
pub(super) struct EmbeddingJob<'a> {
    model: String,
    request: EmbeddingRequest,
    native: Option<&'a NativeBody>,
}

impl<'a> EmbeddingJob<'a> {
    pub(super) fn new(mut request: EmbeddingRequest, native: Option<&'a NativeBody>) -> Self {
        let model = std::mem::take(&mut request.model);
        EmbeddingJob {
            model,
            request,
            native,
        }
    }
}

impl Job for EmbeddingJob<'_> {
    fn model(&self) -> &str {
        &self.model
    }

    fn unfit(&self, provider: &ReadyProvider) -> Option<String> {
        if !provider.manifest.capabilities.embeddings {
            Some("does not offer embeddings (its plugin's manifest lacks the capability)".into())
        } else if !provider.plugin.has_embeddings() {
            Some("does not offer embeddings (its plugin was built against a provider-sdk before 1.2)".into())
        } else {
            None
        }
    }

    async fn prepare(
        &mut self,
        provider: &ReadyProvider,
        model: &str,
    ) -> Result<Prepare, ProviderError> {
        if let Some(http) = passthrough(provider, self.native, model, false).await? {
            return Ok(Prepare::Send(Arc::new(Prepared::Native(http))));
        }
        self.request.model = model.to_owned();
        let json = serde_json::to_string(&self.request)
            .map_err(|e| ProviderError::invalid_request(format!("unencodable request: {e}")))?;
        Ok(Prepare::Send(Arc::new(Prepared::Embedding(json))))
    }
}

/// What attempts teach the pipeline beyond one call: the circuit breakers, and the last
/// failure of each provider (for `/admin/providers`).
pub(super) struct Learned<'a> {
    pub breakers: &'a Breakers,
    pub last_errors: &'a LastErrors,
}

/// Tries the targets of the job's model string in order, with retries, until
/// `attempt` succeeds. `attempt` gets the provider, what the job prepared for it (for
/// a chat, the client's own body when the target speaks its protocol, else the
/// canonical request; model set to the target's) and the request's deadline.
pub(super) async fn run<T, F, Fut>(
    snapshot: &Snapshot,
    learned: Learned<'_>,
    jitter_source: Option<&JitterSource>,
    job: &mut impl Job,
    admission: &mut Admission,
    waited: &WaitClock,
    mut attempt: F,
) -> Result<(T, Route), DispatchError>
where
    F: FnMut(Arc<ReadyProvider>, Arc<Prepared>, Instant) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let (registry, config) = (&snapshot.registry, &snapshot.config);
    let Learned {
        breakers,
        last_errors,
    } = learned;
    let model = job.model().to_owned();
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
        let provider = match ready(registry, &target) {
            Ok(provider) => provider,
            Err(reason) => {
                reasons.push(reason);
                continue;
            }
        };
        if let Some(unfit) = job.unfit(&provider) {
            reasons.push(format!("{target} {unfit}"));
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
        let prepared = match job.prepare(&provider, &target.model).await {
            Ok(Prepare::Send(prepared)) => prepared,
            Ok(Prepare::Skip(reason)) => {
                reasons.push(format!("{target} {reason}"));
                unsupported = true;
                continue;
            }
            // The plugin failed while asked what to send (its worker died): the next
            // target may serve.
            Err(error) if error.kind == ErrorKind::PluginFault => {
                let error = redact(error, &provider);
                tracing::info!(%target, kind = %error.kind, message = %error.message, "preparing the request failed");
                last = Some((target.clone(), error));
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
        match admission.admit(snapshot, &target).await {
            Ok(()) => {}
            Err(Refused::Limited(reason)) => {
                reasons.push(reason);
                continue;
            }
            Err(Refused::BudgetSpent(reason)) => {
                reasons.push(reason);
                budget_blocked = true;
                continue;
            }
            Err(Refused::Call(error)) => return Err(error),
        }
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
                        rate_limits: admission.quotas(),
                        cache: None,
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
                            blame_error(&error),
                            breaker_policy,
                            Instant::now(),
                        );
                    }
                    tracing::info!(%target, attempt = attempts, kind = %error.kind, message = %error.message, "attempt failed");
                    last_errors.failed(&target.provider, counted, &error, admission.now());
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
        // The target is done with: its reservation and slot go back.
        admission.release_target();
        if last.as_ref().is_some_and(|(_, e)| !fallback_worthy(e.kind)) {
            break;
        }
    }
    if last.is_none() {
        if let Some(limited) = admission.all_limited(&model) {
            return Err(limited);
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
        Some(status) => match &status.ready {
            Some(ready) => match ready.faulted() {
                Some(reason) => Err(format!("{} is faulted: {reason}", target.provider)),
                None => Ok(ready.clone()),
            },
            None => Err(format!("{} {}", target.provider, status.state)),
        },
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
async fn prepare(
    provider: &ReadyProvider,
    request: &ChatRequest,
    native: Option<&NativeBody>,
) -> Result<Option<Arc<Prepared>>, ProviderError> {
    if let Some(http) = passthrough(provider, native, &request.model, request.stream).await? {
        return Ok(Some(Arc::new(Prepared::Native(http))));
    }
    if native.is_some_and(|body| !body.lost.is_empty()) {
        return Ok(None);
    }
    let json = serde_json::to_string(request)
        .map_err(|e| ProviderError::invalid_request(format!("unencodable request: {e}")))?;
    Ok(Some(Arc::new(Prepared::Canonical(json))))
}

/// The client's own body, for `model` of a provider whose plugin speaks the client's
/// protocol natively (and whose entry allows passthrough); `None` otherwise.
async fn passthrough(
    provider: &ReadyProvider,
    native: Option<&NativeBody>,
    model: &str,
    stream: bool,
) -> Result<Option<HttpRequest>, ProviderError> {
    let Some(body) = native.filter(|_| provider.passthrough) else {
        return Ok(None);
    };
    let Some(wanted) = provider
        .plugin
        .native_request(body.protocol, model, stream)
        .await?
    else {
        return Ok(None);
    };
    native::upstream_request(body, wanted, model)
        .map(Some)
        .map_err(|e| ProviderError::invalid_request(e.to_string()))
}
