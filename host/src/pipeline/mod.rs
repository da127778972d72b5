//! The request pipeline: one protocol-independent path from a canonical call to an
//! answer, with every policy on it. Each ingress adapter (and every embedder, through
//! [`crate::Host`]) goes through here, so usage, budgets, rate limits, breakers,
//! retries and fallback are the same whatever protocol the client speaks.
//!
//! ```text
//! Call ──▶ client budget ──▶ attempts::run ─┬─ route (alias or provider/model)
//!                                           ├─ capabilities, admission (budgets and rate
//!                                           │  limits: client, provider, target), breakers
//!                                           └─ attempt: upstream::send ─▶ plugin ─▶ transport
//!      ◀── Completion / EventStream ◀── upstream::read_answer / upstream::Decoding
//!      (record: usage, cost, budgets and metrics, once, when the call ends; what the
//!       call took of the limits is settled with the usage reported)
//! ```

mod admission;
mod attempts;
mod cache;
mod capabilities;
mod embeddings;
mod error;
mod events;
pub mod native;
mod native_answer;
mod native_stream;
mod policy;
mod record;
mod upstream;

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use provider_sdk::{ChatRequest, ChatResponse, ErrorKind, ProviderError};

use crate::{
    breaker::Breakers,
    cache::{Directive, ResponseCache},
    config::{BreakerPolicy, Budget, CacheConfig},
    last_errors::LastErrors,
    limits::{Limiter, LimitsReport, SpendAdd},
    metrics::Metrics,
    registry::Target,
    shared_state::SharedState,
    snapshot::Snapshot,
    traffic::Traffic,
    usage::{Meter, UsageRecord},
};
pub use attempts::Route;
use cache::{Found, Replay};
pub use embeddings::{Embedded, EmbeddingCall};
pub use error::DispatchError;
pub use events::{EventStream, RawStream, Streamed};
pub use native::NativeBody;
use native_stream::Watch;
pub use policy::{
    backoff, counts_against_target, fallback_worthy, retryable, Jitter, JitterSource,
};
use record::Recorder;
use upstream::{Decoding, Prepared};

/// The model label under which every model that is not a configured target is counted
/// (in metrics, the usage summary and breakers): client-chosen names are unbounded.
pub const OTHER_MODEL: &str = "_other";

/// The longest model string a request may name, in bytes; longer ones are refused
/// with a 400 before routing.
pub const MAX_MODEL_NAME_BYTES: usize = 256;

/// How `model` of `provider` is counted: itself when it is a configured target
/// (listed by its plugin, named by an alias or priced in the config), else
/// [`OTHER_MODEL`].
pub fn counted_model<'a>(snapshot: &Snapshot, provider: &str, model: &'a str) -> &'a str {
    let priced = || {
        snapshot
            .config
            .pricing
            .keys()
            .any(|k| k.split_once('/') == Some((provider, model)))
    };
    if snapshot.registry.is_configured(provider, model) || priced() {
        model
    } else {
        OTHER_MODEL
    }
}

/// Who is calling, for usage and budgets.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The client key's name, or `anonymous`.
    pub client: String,
    /// The request id (sent back as `x-request-id`); may be empty.
    pub request_id: String,
    /// When the request arrived, so latency counts the time spent reading it.
    pub received: Instant,
    /// What the request asks of the response cache (`Cache-Control`).
    pub cache: Directive,
}

impl Default for Caller {
    fn default() -> Self {
        Caller {
            client: "anonymous".to_owned(),
            request_id: String::new(),
            received: Instant::now(),
            cache: Directive::default(),
        }
    }
}

/// One canonical call: what to answer and for whom.
#[derive(Debug, Clone)]
pub struct Call {
    /// The request; `model` is the client's model string (`provider/model` or alias).
    pub request: ChatRequest,
    /// Who asks.
    pub caller: Caller,
    /// The client's own body, for targets whose upstream speaks its protocol: they
    /// get it unchanged but for the model (exact passthrough); the others get
    /// `request`, translated by their plugin.
    pub native: Option<NativeBody>,
}

impl Call {
    /// A call by an anonymous caller, arriving now.
    pub fn new(request: ChatRequest) -> Call {
        Call {
            request,
            caller: Caller::default(),
            native: None,
        }
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
    /// The upstream's own body, when the target spoke the client's protocol: the
    /// ingress relays it as it is. `response` is then what was read of it for usage: a
    /// plain success answer is read by the host (id, model, finish reason and usage; the
    /// message stays in these bytes), any other by the plugin.
    pub native: Option<Bytes>,
}

/// The state that outlives snapshots: breakers, spend and metrics.
pub struct Pipeline {
    breakers: Arc<Breakers>,
    meter: Meter,
    metrics: Metrics,
    traffic: Traffic,
    last_errors: LastErrors,
    jitter: Option<JitterSource>,
    shared: Arc<SharedState>,
    limiter: Arc<Limiter>,
    cache: Arc<ResponseCache>,
}

impl Pipeline {
    /// A pipeline counting usage in `meter`.
    pub fn new(meter: Meter) -> Pipeline {
        let shared = Arc::new(SharedState::local());
        Pipeline {
            breakers: Arc::default(),
            meter,
            metrics: Metrics::new(),
            traffic: Traffic::new(),
            last_errors: LastErrors::default(),
            jitter: None,
            limiter: Arc::new(Limiter::new(shared.clone())),
            cache: Arc::new(ResponseCache::new(&CacheConfig::default(), shared.clone())),
            shared,
        }
    }

    /// Keeps live counters in `shared` (a fleet's Redis) instead of this host's memory.
    /// Call [`Pipeline::with_cache`] after it for the cache to be shared too.
    pub fn with_shared_state(mut self, shared: SharedState) -> Pipeline {
        self.shared = Arc::new(shared);
        self.limiter = Arc::new(Limiter::new(self.shared.clone()));
        self
    }

    /// Rate limits and budgets' live spend.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// Every configured limit with its window, usage and what remains, as `snapshot`'s
    /// config sets them.
    pub async fn limits_report(&self, snapshot: &Snapshot) -> LimitsReport {
        self.limiter.report(snapshot, self.meter.now()).await
    }

    /// What `record` adds to the live spend of `budgets` in Redis (nothing without
    /// Redis or a cost). Seeds are this host's count before `record` is.
    fn live_spend(&self, record: &UsageRecord, budgets: &[Budget]) -> Vec<SpendAdd> {
        let Some(cost) = record.cost_usd.filter(|c| *c > 0.0) else {
            return Vec::new();
        };
        if self.shared.redis().is_none() {
            return Vec::new();
        }
        budgets
            .iter()
            .filter(|b| {
                b.client.as_deref() == Some(record.client.as_str())
                    || (b.provider.is_some() && b.provider == record.provider)
            })
            .filter_map(|budget| {
                let (key, expire_at_ms) = self.limiter.budget_key(budget, record.at)?;
                Some(SpendAdd {
                    key,
                    cost,
                    seed: self.meter.spent_on(budget, record.at),
                    expire_at_ms,
                })
            })
            .collect()
    }

    /// [`Pipeline::count`] for a record made outside a call (`Host::record`): its cost
    /// reaches the budgets' live spend in Redis too.
    pub fn count_shared(&self, record: UsageRecord, budgets: &[Budget]) {
        let spends = self.live_spend(&record, budgets);
        if !spends.is_empty() {
            admission::spawn(self.limiter.settle(Vec::new(), None, String::new(), spends));
        }
        self.count(record, budgets);
    }

    /// Caches answers as `config` bounds them, in the shared state's Redis when it has
    /// one, else in this host's memory.
    pub fn with_cache(mut self, config: &CacheConfig) -> Pipeline {
        self.cache = Arc::new(ResponseCache::new(config, self.shared.clone()));
        self
    }

    /// The response cache.
    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    /// Where live counters are kept.
    pub fn shared_state(&self) -> &SharedState {
        &self.shared
    }

    /// Draws backoff jitter from `source` instead of a random generator.
    pub fn with_jitter(mut self, source: JitterSource) -> Pipeline {
        self.jitter = Some(source);
        self
    }

    /// The circuit breakers.
    pub fn breakers(&self) -> &Breakers {
        &self.breakers
    }

    /// Usage, cost and budgets.
    pub fn meter(&self) -> &Meter {
        &self.meter
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The last hour of traffic, in short buckets.
    pub fn traffic(&self) -> &Traffic {
        &self.traffic
    }

    /// The last failure of each provider.
    pub fn last_errors(&self) -> &LastErrors {
        &self.last_errors
    }

    /// Counts a finished call in usage, budgets, metrics and recent traffic.
    pub fn count(&self, record: UsageRecord, budgets: &[Budget]) {
        self.metrics.observe(&record);
        self.traffic.observe(self.meter.now(), &record);
        self.meter.record(record, budgets);
    }

    /// Counts a request an ingress refused before it became a call (malformed,
    /// oversized): `status` is what the caller got.
    pub fn refused(
        self: &Arc<Self>,
        snapshot: Arc<Snapshot>,
        caller: Caller,
        stream: bool,
        status: u16,
        kind: ErrorKind,
    ) {
        let mut recorder = Recorder::new(self.clone(), snapshot, caller, stream);
        recorder.refused(status, kind);
        recorder.finish(false);
    }

    /// Answers `call` in one piece, on `snapshot`, and counts it.
    pub async fn complete(
        self: &Arc<Self>,
        snapshot: Arc<Snapshot>,
        call: Call,
    ) -> Result<Completion, DispatchError> {
        let mut plan = cache::plan(&self.cache, &snapshot, &call, self.meter.now());
        if let Some(Found::Whole(done, saved)) = match &mut plan {
            Some(plan) => plan.lookup(self, &snapshot, &call.caller, false).await,
            None => None,
        } {
            let mut recorder = Recorder::new(self.clone(), snapshot.clone(), call.caller, false);
            recorder.routed(&done.route);
            recorder.cache_hit(saved);
            recorder.finish(false);
            return Ok(*done);
        }
        let mut recorder = Recorder::new(self.clone(), snapshot.clone(), call.caller, false);
        let request = ChatRequest {
            stream: false,
            ..call.request
        };
        let client = recorder.client().to_owned();
        let reserve = admission::chat_reserve(&request, call.native.as_ref().map(|n| n.body.len()));
        let admission = recorder.admission(reserve, true);
        let mut answered = self
            .answer(&snapshot, &client, request, call.native.as_ref(), admission)
            .await;
        if let (Some(plan), Ok(done)) = (&plan, &mut answered) {
            plan.missed(&mut done.route);
            plan.keep_whole(&snapshot, done).await;
        }
        match &answered {
            Ok(done) => {
                recorder.routed(&done.route);
                recorder.usage(done.response.usage);
            }
            Err(error) => recorder.failed(error),
        }
        recorder.finish(false);
        recorder.settled().await;
        answered
    }

    /// Answers `call` as a stream, on `snapshot`. Retries and fallbacks happen until
    /// the first event is decoded; the call is counted when the stream ends or is
    /// dropped.
    pub async fn stream(
        self: &Arc<Self>,
        snapshot: Arc<Snapshot>,
        call: Call,
    ) -> Result<Streamed, DispatchError> {
        let mut plan = cache::plan(&self.cache, &snapshot, &call, self.meter.now());
        let found = match &mut plan {
            Some(plan) => plan.lookup(self, &snapshot, &call.caller, true).await,
            None => None,
        };
        let mut recorder = Recorder::new(self.clone(), snapshot.clone(), call.caller, true);
        if let Some(Found::Stream(route, replay, saved)) = found {
            recorder.routed(&route);
            recorder.cache_hit(saved);
            let target = route.target.clone();
            return Ok(match replay {
                Replay::Events(inner) => Streamed::Events(EventStream {
                    target,
                    route,
                    inner,
                    recorder,
                }),
                Replay::Native(inner) => Streamed::Native(RawStream {
                    target,
                    route,
                    inner,
                    recorder,
                }),
            });
        }
        let request = ChatRequest {
            stream: true,
            ..call.request
        };
        let client = recorder.client().to_owned();
        let reserve = admission::chat_reserve(&request, call.native.as_ref().map(|n| n.body.len()));
        let admission = recorder.admission(reserve, true);
        // The cache keeps a stream's every event: the plugin decodes the streams it keeps.
        let keeps_events = plan.as_ref().is_some_and(|plan| plan.stores());
        match self
            .open_stream(
                snapshot.clone(),
                &client,
                request,
                call.native.as_ref(),
                admission,
                keeps_events,
            )
            .await
        {
            Ok((mut route, Opened::Events(mut inner))) => {
                if let Some(plan) = plan {
                    plan.missed(&mut route);
                    inner = plan.keep_events(snapshot, route.target.clone(), inner);
                }
                recorder.routed(&route);
                Ok(Streamed::Events(EventStream {
                    target: route.target.clone(),
                    route,
                    inner,
                    recorder,
                }))
            }
            Ok((mut route, Opened::Native(mut inner))) => {
                if let Some(plan) = plan {
                    plan.missed(&mut route);
                    inner = plan.keep_native(snapshot, route.target.clone(), inner);
                }
                recorder.routed(&route);
                Ok(Streamed::Native(RawStream {
                    target: route.target.clone(),
                    route,
                    inner,
                    recorder,
                }))
            }
            Err(error) => {
                recorder.failed(&error);
                recorder.finish(false);
                recorder.settled().await;
                Err(error)
            }
        }
    }

    /// Sends `call`'s native body to the first target of its chain whose upstream
    /// speaks its protocol, for requests that have no canonical answer (a token count):
    /// the upstream's answer comes back as it is, with budgets, breakers, retries and
    /// fallback as for a chat. Targets that do not speak the protocol are skipped
    /// (list what they would lose in the body's `lost`); when none does, the error is
    /// [`DispatchError::Unsupported`]. Not counted as a call in usage: no tokens are
    /// generated.
    pub async fn forward(
        self: &Arc<Self>,
        snapshot: Arc<Snapshot>,
        call: Call,
    ) -> Result<(Bytes, Route), DispatchError> {
        self.check_client_budget(&snapshot, &call.caller.client)?;
        let transport = &snapshot.transport;
        let clock = attempts::WaitClock::default();
        let waited = &clock;
        // A token count generates nothing: budgets apply, rate limits do not.
        let mut admission =
            admission::Admission::new(self.clone(), &snapshot, &call.caller.client, 0, false);
        attempts::run(
            &snapshot,
            attempts::Learned {
                breakers: &self.breakers,
                last_errors: &self.last_errors,
            },
            self.jitter.as_ref(),
            &mut attempts::ChatJob::new(call.request, call.native.as_ref()),
            &mut admission,
            waited,
            |provider, prepared, deadline| async move {
                let response = upstream::send(transport, &provider, &prepared, deadline).await?;
                let (body, cut) = crate::transport::read_capped(
                    response.body,
                    crate::transport::RESPONSE_BODY_CAP,
                )
                .await?;
                if cut {
                    return Err(ProviderError::new(
                        ErrorKind::ProviderService,
                        "the upstream answer is larger than the host reads",
                    ));
                }
                Ok(Bytes::from(body))
            },
        )
        .await
    }

    async fn answer(
        &self,
        snapshot: &Snapshot,
        client: &str,
        request: ChatRequest,
        native: Option<&NativeBody>,
        admission: &mut admission::Admission,
    ) -> Result<Completion, DispatchError> {
        self.check_client_budget(snapshot, client)?;
        let transport = &snapshot.transport;
        let clock = attempts::WaitClock::default();
        let waited = &clock;
        let protocol = native.map(|n| n.protocol);
        let ((response, body), route) = attempts::run(
            snapshot,
            attempts::Learned {
                breakers: &self.breakers,
                last_errors: &self.last_errors,
            },
            self.jitter.as_ref(),
            &mut attempts::ChatJob::new(request, native),
            admission,
            waited,
            |provider, prepared, deadline| async move {
                let started = Instant::now();
                let answer = async {
                    let response =
                        upstream::send(transport, &provider, &prepared, deadline).await?;
                    let native = protocol.filter(|_| prepared.is_native());
                    let (parsed, body) = upstream::read_answer(&provider, response, native).await?;
                    Ok((parsed, prepared.is_native().then_some(body)))
                }
                .await;
                waited.add(started.elapsed());
                answer
            },
        )
        .await?;
        Ok(Completion {
            target: route.target.clone(),
            route,
            response,
            native: body,
        })
    }

    async fn open_stream(
        &self,
        snapshot: Arc<Snapshot>,
        client: &str,
        request: ChatRequest,
        native: Option<&NativeBody>,
        admission: &mut admission::Admission,
        keeps_events: bool,
    ) -> Result<(Route, Opened), DispatchError> {
        self.check_client_budget(&snapshot, client)?;
        let transport = &snapshot.transport;
        let limits = snapshot.config.stream_limits;
        // A passed-through stream is read by the host unless every event is needed.
        let watched = native.map(|n| n.protocol).filter(|_| !keeps_events);
        let clock = attempts::WaitClock::default();
        let waited = &clock;
        let ((decoding, held), route) = attempts::run(
            &snapshot,
            attempts::Learned {
                breakers: &self.breakers,
                last_errors: &self.last_errors,
            },
            self.jitter.as_ref(),
            &mut attempts::ChatJob::new(request, native),
            admission,
            waited,
            |provider, prepared, deadline| async move {
                let started = Instant::now();
                let first = async {
                    let response =
                        upstream::send(transport, &provider, &prepared, deadline).await?;
                    let watch = watched
                        .filter(|_| prepared.is_native())
                        .and_then(Watch::for_protocol);
                    let decoding = Decoding::start(provider, response, limits, watch)?;
                    first_event(decoding, &prepared).await
                }
                .await;
                waited.add(started.elapsed());
                first
            },
        )
        .await?;
        let relay = Relay {
            decoding,
            target: route.target.to_string(),
            keys: [
                route.target.provider.clone(),
                format!(
                    "{}/{}",
                    route.target.provider,
                    counted_model(&snapshot, &route.target.provider, &route.target.model)
                ),
            ],
            breakers: self.breakers.clone(),
            policy: snapshot.config.circuit_breaker,
        };
        let Some(held) = held else {
            let inner = stream::unfold(Some(relay), |state| async move {
                let mut relay = state?;
                match relay.decoding.next().await? {
                    Ok(event) => Some((Ok(event), Some(relay))),
                    Err(error) => Some((Err(relay.failed(error)), None)),
                }
            });
            return Ok((route, Opened::Events(Box::pin(inner))));
        };
        // The bytes read while waiting for the first event go first, as they arrived.
        let inner =
            stream::iter([Ok(held)]).chain(stream::unfold(Some(relay), |state| async move {
                let mut relay = state?;
                match relay.decoding.next_piece().await? {
                    Ok(piece) => Some((Ok(piece), Some(relay))),
                    Err(error) => Some((Err(relay.failed(error)), None)),
                }
            }));
        Ok((route, Opened::Native(Box::pin(inner))))
    }

    fn check_client_budget(&self, snapshot: &Snapshot, client: &str) -> Result<(), DispatchError> {
        self.meter
            .check_client(client, &snapshot.config.budgets)
            .map_err(DispatchError::ClientBudgetSpent)
    }
}

/// What a stream attempt opened: canonical events, or the upstream's own bytes (with
/// the events decoded from them) for a caller that speaks the upstream's protocol.
enum Opened {
    Events(events::Inner),
    Native(events::RawInner),
}

/// Reads until the plugin decodes a first event: that decides whether the attempt
/// succeeded (a failure before it may still fall back). For a native stream the bytes
/// read so far are held, with the events decoded from them, to be relayed first.
async fn first_event(
    mut decoding: Decoding,
    prepared: &Prepared,
) -> Result<(Decoding, Option<(Bytes, Vec<provider_sdk::StreamEvent>)>), ProviderError> {
    let ended = || {
        ProviderError::new(
            ErrorKind::Connection,
            "the upstream stream ended before any event",
        )
    };
    if !prepared.is_native() {
        return match decoding.next().await {
            Some(Ok(first)) => {
                decoding.unread(first);
                Ok((decoding, None))
            }
            Some(Err(error)) => Err(error),
            None => Err(ended()),
        };
    }
    let mut held = bytes::BytesMut::new();
    loop {
        match decoding.next_piece().await {
            Some(Ok((bytes, events))) => {
                held.extend_from_slice(&bytes);
                if !events.is_empty() {
                    return Ok((decoding, Some((held.freeze(), events))));
                }
            }
            Some(Err(error)) => return Err(error),
            None => return Err(ended()),
        }
    }
}

/// A stream past its first event: decoding goes on, and a failure still says something
/// about the target's health.
struct Relay {
    decoding: Decoding,
    target: String,
    keys: [String; 2],
    breakers: Arc<Breakers>,
    policy: BreakerPolicy,
}

impl Relay {
    fn failed(&self, error: ProviderError) -> DispatchError {
        // A request the client got wrong said nothing about health mid-stream either;
        // it is not counted as a success after the stream failed.
        if counts_against_target(error.kind) {
            self.breakers.record_failure(
                &self.keys[0],
                &self.keys[1],
                policy::blame_error(&error),
                &self.policy,
                Instant::now(),
            );
        }
        DispatchError::Provider {
            target: self.target.clone(),
            error,
            attempts: 0,
        }
    }
}
