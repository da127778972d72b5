//! Where a request goes: model string → targets → plugin → transport → plugin → answer.
//!
//! A model string stands for one target (`provider/model`) or an alias's fallback
//! chain. Each target is tried in order; a failed attempt is retried with backoff when
//! its kind allows, then the next target is tried when the failure is worth a
//! fallback. Circuit breakers skip targets that keep failing. The request's deadline
//! bounds all of it. A stream may fall back until its first event reached the caller.

mod policy;

use std::{
    collections::VecDeque,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use futures_util::{stream, Stream, StreamExt};
use provider_sdk::{
    abi::load::PluginDecoder, Capabilities, ChatRequest, ChatResponse, Content, ContentPart,
    ErrorKind, Header, HttpResponse, Message, ProviderError, StreamEvent,
};

use crate::{
    breaker::{Admission, Breakers},
    config::RetryPolicy,
    host::Snapshot,
    registry::{ReadyProvider, Registry, Target},
    transport::{self, BodyStream, Transport, UpstreamResponse, ERROR_BODY_CAP, RESPONSE_BODY_CAP},
    usage::Meter,
};
pub use policy::{backoff, counts_against_target, fallback_worthy, retryable, Jitter};

/// Why a request was not answered. `Display` is one line for the client and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No alias and no `provider/model` matches.
    #[error(
        "unknown model `{model}`: use `provider/model` with a configured provider, or an alias"
    )]
    UnknownModel {
        /// What the client asked for.
        model: String,
    },
    /// The model's providers exist but none could be tried.
    #[error("no provider can serve `{model}` right now: {}", reasons.join("; "))]
    NotReady {
        /// What the client asked for.
        model: String,
        /// Each target's provider and why it was not tried.
        reasons: Vec<String>,
    },
    /// No target offers what the request needs (tools, images, streaming, reasoning).
    #[error("`{model}` cannot serve this request: {}", reasons.join("; "))]
    Unsupported {
        /// What the client asked for.
        model: String,
        /// Each target and what it lacks.
        reasons: Vec<String>,
    },
    /// Every target's provider has spent its budget.
    #[error("no provider can serve `{model}` within budget: {}", reasons.join("; "))]
    BudgetSpent {
        /// What the client asked for.
        model: String,
        /// Each target and its spent budget.
        reasons: Vec<String>,
    },
    /// The last target tried failed (after its retries).
    #[error("{target}: {error}")]
    Provider {
        /// The target that failed last.
        target: String,
        /// What went wrong.
        error: ProviderError,
        /// Attempts made before giving up (0 when the failure came mid-stream).
        attempts: u32,
    },
}

impl DispatchError {
    /// The error's kind, which decides the status the client sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DispatchError::UnknownModel { .. } => ErrorKind::ModelNotFound,
            DispatchError::NotReady { .. } => ErrorKind::ProviderService,
            DispatchError::BudgetSpent { .. } => ErrorKind::QuotaExceeded,
            DispatchError::Unsupported { .. } => ErrorKind::InvalidRequest,
            DispatchError::Provider { error, .. } => error.kind,
        }
    }
}

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
}

/// Accumulates time spent waiting on upstreams across attempts.
#[derive(Debug, Default)]
struct WaitClock(std::sync::atomic::AtomicU64);

impl WaitClock {
    fn add(&self, d: Duration) {
        self.0
            .fetch_add(d.as_nanos() as u64, std::sync::atomic::Ordering::Relaxed);
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.0.load(std::sync::atomic::Ordering::Relaxed))
    }
}

/// A finished non-streamed answer and who gave it.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The target that answered.
    pub target: Target,
    /// Who answered and what it took.
    pub route: Route,
    /// The answer.
    pub response: ChatResponse,
}

/// What dispatching needs from the host: the snapshot a request started on and the
/// breakers, which outlive snapshots.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    /// Config, registry and transport of this request.
    pub snapshot: &'a Snapshot,
    /// The circuit breakers.
    pub breakers: &'a Arc<Breakers>,
    /// Spend, for provider budgets.
    pub meter: &'a Meter,
}

/// Answers `request` (whose `model` is the client's model string) in one piece.
pub async fn chat(ctx: Ctx<'_>, request: ChatRequest) -> Result<Completion, DispatchError> {
    let transport = &ctx.snapshot.transport;
    let clock = WaitClock::default();
    let waited = &clock;
    let request = ChatRequest {
        stream: false,
        ..request
    };
    let (response, route) = run(
        ctx,
        request,
        waited,
        |provider, json, deadline| async move {
            let started = Instant::now();
            let response = call(transport, &provider, &json, deadline).await;
            let response = response.inspect_err(|_| waited.add(started.elapsed()))?;
            let read = transport::read_capped(response.body, RESPONSE_BODY_CAP).await;
            waited.add(started.elapsed());
            let (body, cut) = read?;
            if cut {
                return Err(ProviderError::new(
                    ErrorKind::ProviderService,
                    format!("the upstream answer is larger than {RESPONSE_BODY_CAP} bytes"),
                ));
            }
            let headers = header_views(&response.headers);
            provider
                .plugin
                .parse_response(&HttpResponse::new(response.status, &headers, &body))
        },
    )
    .await?;
    Ok(Completion {
        target: route.target.clone(),
        route,
        response,
    })
}

/// A streamed answer: canonical events as the upstream produces them. Dropping it
/// cancels the upstream request.
pub struct EventStream {
    /// The target that answers.
    pub target: Target,
    /// Who answered and what it took to get the first event.
    pub route: Route,
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent, DispatchError>> + Send>>,
}

impl Stream for EventStream {
    type Item = Result<StreamEvent, DispatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Answers `request` as a stream. Retries and fallbacks happen until the first event
/// is decoded; after that a failure arrives as the stream's last item.
pub async fn chat_stream(ctx: Ctx<'_>, request: ChatRequest) -> Result<EventStream, DispatchError> {
    let transport = &ctx.snapshot.transport;
    let breakers = ctx.breakers.clone();
    let breaker_policy = ctx.snapshot.config.circuit_breaker;
    let clock = WaitClock::default();
    let waited = &clock;
    let request = ChatRequest {
        stream: true,
        ..request
    };
    let (mut decoding, route) = run(
        ctx,
        request,
        waited,
        |provider, json, deadline| async move {
            let started = Instant::now();
            let response = call(transport, &provider, &json, deadline).await;
            let response = response.inspect_err(|_| waited.add(started.elapsed()))?;
            let decoder = provider.plugin.stream_decoder()?;
            let mut decoding = Decoding {
                provider,
                target: String::new(),
                body: response.body,
                decoder,
                pending: VecDeque::new(),
                scratch: Vec::new(),
                failure: None,
                done: false,
                health: None,
            };
            // The first event decides whether this attempt succeeded.
            let first = decoding.next_raw().await;
            waited.add(started.elapsed());
            match first {
                Some(Ok(first)) => {
                    decoding.pending.push_front(first);
                    Ok(decoding)
                }
                Some(Err(error)) => Err(error),
                None => Err(ProviderError::new(
                    ErrorKind::Connection,
                    "the upstream stream ended before any event",
                )),
            }
        },
    )
    .await?;
    decoding.target = route.target.to_string();
    decoding.health = Some((
        breakers,
        breaker_policy,
        [route.target.provider.clone(), route.target.to_string()],
    ));
    let inner = stream::unfold(decoding, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    });
    Ok(EventStream {
        target: route.target.clone(),
        route,
        inner: Box::pin(inner),
    })
}

/// Tries the targets of `request.model` in order, with retries, until `attempt`
/// succeeds. `attempt` gets the provider, the request as JSON (model set to the
/// target's) and the request's deadline.
async fn run<T, F, Fut>(
    ctx: Ctx<'_>,
    mut request: ChatRequest,
    waited: &WaitClock,
    mut attempt: F,
) -> Result<(T, Route), DispatchError>
where
    F: FnMut(Arc<ReadyProvider>, String, Instant) -> Fut,
    Fut: Future<Output = Result<T, ProviderError>>,
{
    let Ctx {
        snapshot,
        breakers,
        meter,
    } = ctx;
    let (registry, config) = (&snapshot.registry, &snapshot.config);
    let model = std::mem::take(&mut request.model);
    let targets = registry
        .targets(&model)
        .ok_or_else(|| DispatchError::UnknownModel {
            model: model.clone(),
        })?;
    let deadline = Instant::now() + Duration::from_secs_f64(config.request_timeout);
    let breaker_policy = &config.circuit_breaker;
    let mut jitter = Jitter::new();
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
        let keys = [target.provider.clone(), target.to_string()];
        request.model.clone_from(&target.model);
        let json = serde_json::to_string(&request).map_err(|e| DispatchError::Provider {
            target: target.to_string(),
            error: ProviderError::invalid_request(format!("unencodable request: {e}")),
            attempts,
        })?;
        let mut retry = 0;
        loop {
            let now = Instant::now();
            if let Some(wait) =
                keys.iter()
                    .find_map(|k| match breakers.admit(k, breaker_policy, now) {
                        Admission::Refused(wait) => Some(wait),
                        _ => None,
                    })
            {
                reasons.push(format!(
                    "{target} skipped: circuit open (next probe in {:.1}s)",
                    wait.as_secs_f64()
                ));
                break;
            }
            if now >= deadline {
                return Err(deadline_error(
                    &target,
                    config.request_timeout,
                    attempts,
                    last,
                ));
            }
            attempts += 1;
            match attempt(provider.clone(), json.clone(), deadline).await {
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
                    };
                    return Ok((value, route));
                }
                Err(error) => {
                    let error = redact(error, &provider);
                    let healthy = !counts_against_target(error.kind);
                    breakers.record(
                        &keys[0],
                        healthy || error.kind == ErrorKind::ModelNotFound,
                        breaker_policy,
                        Instant::now(),
                    );
                    breakers.record(
                        &keys[1],
                        healthy && error.kind != ErrorKind::ModelNotFound,
                        breaker_policy,
                        Instant::now(),
                    );
                    tracing::info!(%target, attempt = attempts, kind = %error.kind, message = %error.message, "attempt failed");
                    if retryable(error.kind) && retry < policy.max_retries {
                        let wait = backoff(&policy, retry, &error, jitter.sample());
                        if Instant::now() + wait < deadline {
                            tokio::time::sleep(wait).await;
                            waited.add(wait);
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

/// The capability `request` needs that `offered` lacks, if any.
fn missing_capability(request: &ChatRequest, offered: &Capabilities) -> Option<&'static str> {
    let images = request.messages.iter().any(|m| match m {
        Message::User {
            content: Content::Parts(parts),
            ..
        } => parts
            .iter()
            .any(|p| matches!(p, ContentPart::ImageUrl { .. })),
        _ => false,
    });
    if request.stream && !offered.streaming {
        Some("streaming")
    } else if !request.tools.is_empty() && !offered.tools {
        Some("tools")
    } else if images && !offered.vision {
        Some("image input (vision)")
    } else if request.reasoning_effort.is_some() && !offered.reasoning {
        Some("reasoning")
    } else {
        None
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

/// Sends the request to its provider and returns the upstream response, failing on
/// a non-2xx status with the plugin's classification of it.
async fn call(
    transport: &Transport,
    provider: &ReadyProvider,
    request_json: &str,
    deadline: Instant,
) -> Result<UpstreamResponse, ProviderError> {
    let outbound = provider.plugin.build_request_json(request_json)?;
    let response = transport.send(provider, outbound, deadline).await?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let (body, _) = transport::read_capped(response.body, ERROR_BODY_CAP).await?;
    let headers = header_views(&response.headers);
    Err(provider
        .plugin
        .classify_error(&HttpResponse::new(response.status, &headers, &body)))
}

struct Decoding {
    /// The plugin version this stream started on, kept alive until it ends.
    provider: Arc<ReadyProvider>,
    target: String,
    body: BodyStream,
    decoder: PluginDecoder,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// Delivered after the events decoded before it.
    failure: Option<ProviderError>,
    done: bool,
    /// Where a failure after the first event is recorded.
    health: Option<(Arc<Breakers>, crate::config::BreakerPolicy, [String; 2])>,
}

impl Decoding {
    /// The next event, or the failure that ends the stream.
    async fn next_raw(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(failure) = self.failure.take() {
                return Some(Err(redact(failure, &self.provider)));
            }
            if self.done {
                return None;
            }
            let step = match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.feed(&bytes, &mut self.scratch),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.decoder.finish(&mut self.scratch)
                }
            };
            self.pending.extend(self.scratch.drain(..));
            if let Err(error) = step {
                self.done = true;
                self.failure = Some(error);
            }
        }
    }

    async fn next(&mut self) -> Option<Result<StreamEvent, DispatchError>> {
        match self.next_raw().await? {
            Ok(event) => Some(Ok(event)),
            Err(error) => {
                if let Some((breakers, policy, keys)) = &self.health {
                    if counts_against_target(error.kind) {
                        for key in keys {
                            breakers.record(key, false, policy, Instant::now());
                        }
                    }
                }
                Some(Err(DispatchError::Provider {
                    target: self.target.clone(),
                    error,
                    attempts: 0,
                }))
            }
        }
    }
}

/// Upstreams sometimes quote the key they were sent; it never goes further.
fn redact(mut error: ProviderError, provider: &ReadyProvider) -> ProviderError {
    if let Some(key) = &provider.api_key {
        if !key.expose().is_empty() && error.message.contains(key.expose()) {
            error.message = error.message.replace(key.expose(), "***");
        }
    }
    error
}

fn header_views(headers: &[(String, String)]) -> Vec<Header<'_>> {
    headers.iter().map(|(n, v)| Header::new(n, v)).collect()
}
