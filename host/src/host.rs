//! The host as a library: one handle that owns the loader and the current snapshot
//! (config, registry, transport), and swaps a new snapshot in on reload.

use std::{
    collections::VecDeque,
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Instant,
};

use arc_swap::ArcSwap;
use provider_sdk::{ChatRequest, EmbeddingRequest, ErrorKind};
use serde::Serialize;

use crate::{
    breaker::Breakers,
    config::{Config, ConfigError, KeyLookup},
    load::Loader,
    pipeline::{
        Call, Caller, Completion, DispatchError, Embedded, EmbeddingCall, EventStream,
        JitterSource, Pipeline, Route, Streamed,
    },
    registry::{Changes, Registry},
    response_store::ResponseStore,
    shared_state::SharedState,
    snapshot::Snapshot,
    transport::{
        rawlog::{RawLog, RecordCallback, UpstreamRecord},
        Transport,
    },
    usage::{Clock, Meter, UsageRecord},
};

/// Builds a [`Host`] from a config file or an in-memory config.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let host = provider_host::Host::builder()
///     .config_file("external_providers.json")
///     .build()?;
/// let app = axum::Router::new().nest("/llm", provider_host::serve::router(host));
/// # let _ = app; Ok(()) }
/// ```
#[derive(Default)]
pub struct HostBuilder {
    file: Option<PathBuf>,
    config: Option<(Config, PathBuf)>,
    keys: Option<Box<KeyLookup>>,
    env: Option<Arc<KeyLookup>>,
    records: Option<Arc<RecordCallback>>,
    jitter: Option<JitterSource>,
    clock: Option<Clock>,
    no_ledger: bool,
    sandbox_binary: Option<PathBuf>,
}

impl HostBuilder {
    /// Reads the config from `path` (and re-reads it on reload).
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Uses an in-memory config; relative paths in it resolve from `dir`.
    pub fn config(mut self, config: Config, dir: impl Into<PathBuf>) -> Self {
        self.config = Some((config, dir.into()));
        self
    }

    /// Where API keys come from (the process environment by default), e.g. a secret store.
    pub fn api_keys(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.keys = Some(Box::new(lookup));
        self
    }

    /// Where `${VAR}` references in the config file and the `LLM_*` overrides are
    /// looked up, on every load and reload (the process environment by default).
    pub fn env(mut self, lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Self {
        self.env = Some(Arc::new(lookup));
        self
    }

    /// Draws retry backoff jitter (a number in `[0, 1]` per wait) from `source` instead
    /// of a random generator, which makes every wait exact.
    pub fn jitter(mut self, source: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.jitter = Some(Arc::new(source));
        self
    }

    /// Reads the time for usage records and budget periods (Unix seconds) from
    /// `clock` instead of the system clock, so a period boundary can be crossed at will.
    pub fn usage_clock(mut self, clock: impl Fn() -> f64 + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// Validates plugin files by re-executing `binary` (a `provider-host`) in a child
    /// process, instead of the config's `sandbox.binary` or the one found beside this
    /// program. For embedders and tests, whose own executable is not the host binary.
    pub fn sandbox_binary(mut self, binary: impl Into<PathBuf>) -> Self {
        self.sandbox_binary = Some(binary.into());
        self
    }

    /// Keeps usage in memory only, whatever the config says about the ledger (for
    /// one-shot tools that should leave no files behind).
    pub fn without_ledger(mut self) -> Self {
        self.no_ledger = true;
        self
    }

    /// Receives every raw upstream request and response record (credentials
    /// redacted, bodies capped by `raw_log.max_body_bytes`, 4 KiB by default).
    pub fn on_upstream_record(
        mut self,
        callback: impl Fn(&UpstreamRecord) + Send + Sync + 'static,
    ) -> Self {
        self.records = Some(Arc::new(callback));
        self
    }

    /// Loads every provider. Only a bad config fails; failed providers are recorded
    /// in the registry with their reason.
    pub fn build(self) -> Result<Arc<Host>, ConfigError> {
        let keys = self
            .keys
            .unwrap_or_else(|| Box::new(|name: &str| std::env::var(name).ok()));
        let env: Arc<KeyLookup> = self
            .env
            .unwrap_or_else(|| Arc::new(|name: &str| std::env::var(name).ok()));
        let hooks = Hooks {
            records: self.records,
            jitter: self.jitter,
            clock: self.clock,
            sandbox_binary: self.sandbox_binary,
        };
        let no_ledger = self.no_ledger;
        let with_ledger = move |mut config: Config| {
            if no_ledger {
                config.usage.enabled = false;
            }
            config
        };
        let host = match (self.config, self.file) {
            (Some((config, dir)), _) => {
                Host::assemble(with_ledger(config), dir, None, keys, env, hooks)
            }
            (None, file) => {
                let path =
                    file.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE));
                let config = with_ledger(Config::load_with_env(&path, &*env)?);
                let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
                Host::assemble(config, dir, Some(path), keys, env, hooks)
            }
        };
        Ok(Arc::new(host))
    }
}

/// What an embedder (or a test) plugs into the host besides keys and config.
#[derive(Default)]
struct Hooks {
    records: Option<Arc<RecordCallback>>,
    jitter: Option<JitterSource>,
    clock: Option<Clock>,
    sandbox_binary: Option<PathBuf>,
}

/// What one reload did.
#[derive(Debug, Clone, Serialize)]
pub struct ReloadReport {
    /// What asked for it: `start` (the first load), `watch` (a file changed),
    /// `sighup`, `admin` (`POST /admin/reload`), or what an embedder passed.
    pub trigger: String,
    /// When it started (Unix seconds).
    pub at: f64,
    /// The snapshot generation in effect afterwards.
    pub generation: u64,
    /// Why the config was not used, when it was not (the previous one stays).
    pub config_error: Option<String>,
    /// What happened to each provider.
    #[serde(flatten)]
    pub changes: Changes,
    /// How long it took.
    pub duration_ms: f64,
}

impl ReloadReport {
    /// Whether anything failed.
    pub fn has_failures(&self) -> bool {
        self.config_error.is_some() || !self.changes.failed.is_empty()
    }
}

/// Reload counters, for the status endpoint and metrics.
#[derive(Debug, Default)]
pub struct ReloadStats {
    /// Reloads run.
    pub reloads: AtomicU64,
    /// Failures seen (a bad config, or a provider whose new version was refused).
    pub failures: AtomicU64,
    /// The last reload's report.
    pub last: Mutex<Option<ReloadReport>>,
    /// The last [`RELOAD_HISTORY`] reports (the first load included), oldest first.
    history: Mutex<VecDeque<ReloadReport>>,
}

/// How many reload reports [`ReloadStats::history`] keeps.
pub const RELOAD_HISTORY: usize = 50;

impl ReloadStats {
    /// The last reports, oldest first: the first load (`start`) and every reload
    /// since, up to [`RELOAD_HISTORY`].
    pub fn history(&self) -> Vec<ReloadReport> {
        let history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        history.iter().cloned().collect()
    }

    fn remember(&self, report: &ReloadReport) {
        let mut history = self.history.lock().unwrap_or_else(|e| e.into_inner());
        if history.len() >= RELOAD_HISTORY {
            history.pop_front();
        }
        history.push_back(report.clone());
    }
}

/// A running set of providers. Cheap to share: wrap it in an `Arc`.
pub struct Host {
    config_path: Option<PathBuf>,
    config_dir: PathBuf,
    keys: Box<KeyLookup>,
    env: Arc<KeyLookup>,
    records: Option<Arc<RecordCallback>>,
    loader: Loader,
    current: ArcSwap<Snapshot>,
    publishing: Mutex<()>,
    stats: ReloadStats,
    pipeline: Arc<Pipeline>,
    responses: ResponseStore,
}

impl Host {
    /// A builder for a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Reads the config at `path` and loads every provider it names, keys from the
    /// environment. Providers that fail are recorded in the registry with their
    /// reason; only a bad config fails.
    pub fn from_config_file(path: &Path) -> Result<Host, ConfigError> {
        let config = Config::load(path)?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
        let keys: Box<KeyLookup> = Box::new(|name: &str| std::env::var(name).ok());
        let env: Arc<KeyLookup> = Arc::new(|name: &str| std::env::var(name).ok());
        Ok(Host::assemble(
            config,
            dir,
            Some(path.to_owned()),
            keys,
            env,
            Hooks::default(),
        ))
    }

    fn assemble(
        config: Config,
        dir: PathBuf,
        path: Option<PathBuf>,
        keys: Box<KeyLookup>,
        env: Arc<KeyLookup>,
        hooks: Hooks,
    ) -> Host {
        let records = hooks.records;
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| Loader::default_cache_dir(&dir));
        // The sandbox is chosen once, at start: a reload cannot swap the binary that
        // vets the files it loads.
        let sandbox =
            crate::sandbox::Sandbox::from_config(&config.sandbox, hooks.sandbox_binary.as_deref());
        let loader = Loader::new(cache_dir).with_sandbox(sandbox);
        let loading = Instant::now();
        let at = crate::usage::now_unix();
        let (registry, changes) = Registry::rebuild(None, &config, &loader, &*keys);
        // The first load is the history's first entry: a plugin refused at start is
        // as visible there as one refused on reload.
        let start = ReloadReport {
            trigger: "start".to_owned(),
            at,
            generation: 1,
            config_error: None,
            changes,
            duration_ms: loading.elapsed().as_secs_f64() * 1000.0,
        };
        let transport = Transport::new(
            config.timeouts,
            config.proxy.as_deref(),
            raw_log(&config, &records),
        );
        let meter = match hooks.clock {
            Some(clock) => Meter::open_with_clock(&config.usage, clock),
            None => Meter::open(&config.usage),
        };
        let mut pipeline =
            Pipeline::new(meter).with_shared_state(SharedState::from_config(&config.shared_state));
        pipeline = pipeline.with_cache(&config.cache);
        if let Some(jitter) = hooks.jitter {
            pipeline = pipeline.with_jitter(jitter);
        }
        let responses = ResponseStore::open(&config.usage, &config.responses);
        let snapshot = Snapshot::new(config, registry, transport, 1, &*keys);
        let stats = ReloadStats::default();
        stats.remember(&start);
        let host = Host {
            config_path: path,
            config_dir: dir,
            keys,
            env,
            records,
            loader,
            current: ArcSwap::from_pointee(snapshot),
            publishing: Mutex::new(()),
            stats,
            pipeline: Arc::new(pipeline),
            responses,
        };
        // Copies left by earlier runs go once they are old enough.
        host.tidy_plugins();
        host
    }

    /// The current snapshot. A request holds it for its whole life, so it finishes on
    /// the versions it started with.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// The config in effect.
    pub fn config(&self) -> Arc<Config> {
        self.current.load().config.clone()
    }

    /// The config file, when the host was built from one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The loader, with the count of mapped plugin libraries.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The current registry.
    pub fn registry(&self) -> Arc<Registry> {
        self.current.load().registry.clone()
    }

    /// The response cache.
    pub fn cache(&self) -> &crate::cache::ResponseCache {
        self.pipeline.cache()
    }

    /// The circuit breakers.
    pub fn breakers(&self) -> &Breakers {
        self.pipeline.breakers()
    }

    /// Where live counters (limits, live spend, cached answers) are kept.
    pub fn shared_state(&self) -> &SharedState {
        self.pipeline.shared_state()
    }

    /// Usage, cost and budgets.
    pub fn usage(&self) -> &Meter {
        self.pipeline.meter()
    }

    /// The last hour of traffic, in short buckets.
    pub fn traffic(&self) -> &crate::traffic::Traffic {
        self.pipeline.traffic()
    }

    /// The last failure of each provider.
    pub fn last_errors(&self) -> &crate::last_errors::LastErrors {
        self.pipeline.last_errors()
    }

    /// Stored Responses-API answers (`store: true`), for retrieval and continuation.
    pub fn responses(&self) -> &ResponseStore {
        &self.responses
    }

    /// Counts a request the host did not answer through [`Host::complete`] or
    /// [`Host::stream`] in usage, budgets and metrics.
    pub fn record(&self, record: UsageRecord) {
        self.pipeline.count_shared(record, &self.config().budgets);
    }

    /// Counts a request an ingress refused before it became a call (a malformed or
    /// oversized body): `status` is what the caller got.
    pub fn refused(&self, caller: Caller, stream: bool, status: u16, kind: ErrorKind) {
        self.pipeline
            .refused(self.snapshot(), caller, stream, status, kind);
    }

    /// The Prometheus text exposition.
    pub fn render_metrics(&self) -> String {
        let breakers = self.breakers().statuses(std::time::Instant::now());
        let loaded = self
            .registry()
            .libraries_in_use()
            .collect::<std::collections::HashSet<_>>()
            .len();
        let faulted: Vec<(String, bool)> = self
            .registry()
            .providers()
            .filter_map(|p| Some((p.name.clone(), p.ready.as_ref()?.faulted().is_some())))
            .collect();
        let workers: Vec<(String, usize, u64)> = self
            .registry()
            .providers()
            .filter_map(|p| {
                let stats = p.ready.as_ref()?.plugin.workers()?;
                Some((p.name.clone(), stats.running, stats.restarts))
            })
            .collect();
        self.pipeline.metrics().set_workers(&workers);
        self.pipeline.metrics().cache(&self.cache().status());
        self.pipeline.metrics().render(
            &breakers,
            loaded,
            self.retired_libraries(),
            &faulted,
            &self.usage().ledger_status(),
        )
    }

    /// Every configured limit with its window, usage and what remains (read from Redis
    /// when the fleet shares one), as `GET /admin/limits` serves it.
    pub async fn limits_report(&self) -> crate::limits::LimitsReport {
        self.pipeline.limits_report(&self.snapshot()).await
    }

    /// [`Host::render_metrics`] with the limits' gauges and the shared state's health
    /// read now (Redis, when configured: one round trip).
    pub async fn render_metrics_live(&self) -> String {
        let report = self.limits_report().await;
        self.pipeline
            .metrics()
            .limits(&report, self.pipeline.limiter().local_fallbacks());
        self.render_metrics()
    }

    /// Reload counters.
    pub fn reload_stats(&self) -> &ReloadStats {
        &self.stats
    }

    /// Plugin library versions still mapped that no ready provider uses any more.
    /// Libraries are never unloaded (see docs/architecture.md); this counts what that costs.
    pub fn retired_libraries(&self) -> usize {
        let registry = self.registry();
        let in_use: std::collections::HashSet<&str> = registry.libraries_in_use().collect();
        self.loader
            .mapped_shas()
            .iter()
            .filter(|sha| !in_use.contains(sha.as_str()))
            .count()
    }

    /// Deletes plugin copies no version uses, and warns when more retired versions stay
    /// mapped than [`RETIRED_WARNING`]. Blocking (file system).
    fn tidy_plugins(&self) {
        let registry = self.registry();
        let in_use: std::collections::HashSet<&str> = registry.libraries_in_use().collect();
        let pruned = self.loader.prune(&in_use);
        if pruned.files > 0 {
            tracing::info!(
                files = pruned.files,
                bytes = pruned.bytes,
                "plugin cache: deleted copies no version uses"
            );
        }
        let retired = self.retired_libraries();
        if retired > RETIRED_WARNING {
            tracing::warn!(
                retired,
                limit = RETIRED_WARNING,
                "retired plugin versions stay mapped (libraries are never unloaded), each costing memory: restart the host to release them"
            );
        }
    }

    /// Re-reads the config (if the host has a file), reloads what changed, and
    /// publishes the result in one swap. A bad config keeps the whole previous one;
    /// a provider whose new version fails keeps its previous version serving.
    /// Blocking: it loads libraries; call it from a blocking context.
    pub fn reload(&self, trigger: &str) -> ReloadReport {
        let started = Instant::now();
        let mut report = ReloadReport {
            trigger: trigger.to_owned(),
            at: crate::usage::now_unix(),
            generation: self.current.load().generation,
            config_error: None,
            changes: Changes::default(),
            duration_ms: 0.0,
        };
        // No lock is held while the next snapshot is built: plugin code runs then (the
        // sandbox child, then opening and constructing what passed), and a reload stuck
        // there must not stop later ones. Only publishing is serialized, and only on
        // top of the snapshot the build started from: when another reload published
        // meanwhile, this one builds again on top of that (unchanged providers are
        // kept, so a rebuild is cheap), a bounded number of times.
        for attempt in 0..4 {
            let current = self.current.load_full();
            let config = match &self.config_path {
                Some(path) => Config::load_with_env(path, &*self.env),
                None => Ok((*current.config).clone()),
            };
            let config = match config {
                Ok(config) => config,
                Err(e) => {
                    tracing::warn!(error = %e, "config reload refused; the previous config stays in effect");
                    report.config_error = Some(e.to_string());
                    break;
                }
            };
            let (registry, changes) =
                Registry::rebuild(Some(&current.registry), &config, &self.loader, &*self.keys);
            let _publishing = self.publishing.lock().unwrap_or_else(|e| e.into_inner());
            let latest = self.current.load_full();
            if !Arc::ptr_eq(&latest, &current) && attempt < 3 {
                continue;
            }
            for (name, reason) in &changes.failed {
                tracing::warn!(provider = %name, %reason, "reload failed; the previous version serves on");
            }
            for name in changes.added.iter().chain(&changes.reloaded) {
                if let Some(p) = registry.provider(name) {
                    tracing::info!(provider = %name, generation = p.generation, state = %p.state, "provider loaded");
                }
            }
            for name in &changes.removed {
                tracing::info!(provider = %name, "provider removed");
            }
            if config.shared_state != latest.config.shared_state {
                // The connection and every live counter hang on it: swapping it under
                // requests in flight would split their windows between two stores.
                tracing::warn!("shared_state changed in the config: the change takes effect at the next start; the host keeps using the state it started with");
            }
            let (cache, was) = (&config.cache, &latest.config.cache);
            if (cache.max_bytes, cache.max_entry_bytes) != (was.max_bytes, was.max_entry_bytes) {
                // The store is sized once; which models are cached, and for how long,
                // follows every reload.
                tracing::warn!("cache.max_bytes or cache.max_entry_bytes changed in the config: the change takes effect at the next start");
            }
            let generation = latest.generation + 1;
            let raw = raw_log(&config, &self.records);
            let transport = if config.timeouts == latest.config.timeouts
                && config.proxy == latest.config.proxy
            {
                latest.transport.with_raw_log(raw)
            } else {
                Transport::new(config.timeouts, config.proxy.as_deref(), raw)
            };
            self.current.store(Arc::new(Snapshot::new(
                config,
                registry,
                transport,
                generation,
                &*self.keys,
            )));
            report.generation = generation;
            report.changes = changes;
            break;
        }
        report.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        self.tidy_plugins();
        release_freed_memory();
        self.stats.reloads.fetch_add(1, Ordering::Relaxed);
        let failures =
            report.changes.failed.len() as u64 + u64::from(report.config_error.is_some());
        self.stats.failures.fetch_add(failures, Ordering::Relaxed);
        self.pipeline.metrics().reloaded(failures);
        *self.stats.last.lock().unwrap_or_else(|e| e.into_inner()) = Some(report.clone());
        self.stats.remember(&report);
        report
    }

    /// [`Host::reload`] on a blocking thread.
    pub async fn reload_async(self: &Arc<Self>, trigger: &str) -> ReloadReport {
        let host = self.clone();
        let trigger = trigger.to_owned();
        tokio::task::spawn_blocking(move || host.reload(&trigger))
            .await
            .expect("reload does not panic")
    }

    /// The folder relative paths of the config resolve from.
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Makes one cheap live call to the provider called `name` and reports how it went;
    /// `None` when there is no such provider.
    pub async fn check_provider(&self, name: &str) -> Option<crate::health::HealthReport> {
        crate::health::check(&self.snapshot(), name).await
    }

    /// Answers a chat request in one piece, as an anonymous caller; `request.model` is
    /// `provider/model` or an alias. Counted in usage, budgets and metrics like any
    /// HTTP request.
    pub async fn chat(&self, request: ChatRequest) -> Result<Completion, DispatchError> {
        self.complete(Call::new(request)).await
    }

    /// Answers a chat request as a stream of events, as an anonymous caller.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, DispatchError> {
        match self.stream(Call::new(request)).await? {
            Streamed::Events(events) => Ok(events),
            Streamed::Native(_) => unreachable!("a call without a native body is translated"),
        }
    }

    /// Answers `call` in one piece through the pipeline (budgets, breakers, retries,
    /// fallback, usage), on the current snapshot.
    pub async fn complete(&self, call: Call) -> Result<Completion, DispatchError> {
        self.pipeline.complete(self.snapshot(), call).await
    }

    /// Sends `call`'s native body to the first target that speaks its protocol and
    /// returns the upstream's answer as it is (see [`Pipeline::forward`]).
    pub async fn forward(&self, call: Call) -> Result<(bytes::Bytes, Route), DispatchError> {
        self.pipeline.forward(self.snapshot(), call).await
    }

    /// Answers `call` as a stream through the pipeline, on the current snapshot; the
    /// stream holds that snapshot until it ends. It is the upstream's own bytes
    /// ([`Streamed::Native`]) only when the call carries a native body and the target
    /// speaks its protocol.
    pub async fn stream(&self, call: Call) -> Result<Streamed, DispatchError> {
        self.pipeline.stream(self.snapshot(), call).await
    }

    /// Embeds `request.input` with `request.model` (`provider/model` or an alias) as
    /// an anonymous caller: one vector per input item, in order.
    pub async fn embeddings(&self, request: EmbeddingRequest) -> Result<Embedded, DispatchError> {
        self.embed(EmbeddingCall::new(request)).await
    }

    /// Answers an embeddings `call` through the pipeline (budgets, breakers, retries,
    /// fallback, usage), on the current snapshot.
    pub async fn embed(&self, call: EmbeddingCall) -> Result<Embedded, DispatchError> {
        self.pipeline.embed(self.snapshot(), call).await
    }
}

/// A reload reads whole plugin files (megabytes each) and frees them; glibc keeps such
/// freed heap for reuse, which reads as a permanent RSS step after the first reloads.
/// Handing it back to the system costs well under a millisecond, once per reload.
/// How many retired plugin versions may stay mapped before each reload warns.
pub const RETIRED_WARNING: usize = 32;

fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The raw log the config and the embedder's callback ask for.
fn raw_log(config: &Config, records: &Option<Arc<RecordCallback>>) -> Option<Arc<RawLog>> {
    let to = config.raw_log.as_ref().map(|r| r.to.as_path());
    let cap = config
        .raw_log
        .as_ref()
        .map(|r| r.max_body_bytes)
        .unwrap_or(4096);
    match RawLog::new(to, cap, records.clone()) {
        Ok(log) => log.map(Arc::new),
        Err(e) => {
            tracing::warn!(error = %e, "cannot open the raw log; upstream traffic is not logged");
            None
        }
    }
}
