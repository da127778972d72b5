//! Usage and cost: one record per request, aggregates per provider, model and client,
//! spend per budget period, and a ledger that keeps them across restarts.
//!
//! Recording never waits on storage, and costs no wake-up: records are appended to an
//! in-memory queue that a writer thread drains into the ledger in batches
//! (see `writer.rs`).

pub mod cost;
mod ledger;
pub mod period;
mod postgres;
pub mod series;
mod writer;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{SystemTime, UNIX_EPOCH},
};

use provider_sdk::{ErrorKind, Usage};
use serde::Serialize;

use crate::config::{Budget, Period, UsageConfig};
pub use ledger::Ledger;
use series::{Series, SeriesError, SeriesQuery};
use writer::WriterHandle;

/// What one request did and cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageRecord {
    /// When the request arrived (Unix seconds).
    pub at: f64,
    /// The request id (also sent as `x-request-id`).
    pub request_id: String,
    /// The client key's name, or `anonymous`.
    pub client: String,
    /// The provider that answered (or failed last), when one was tried.
    pub provider: Option<String>,
    /// Its model id.
    pub model: Option<String>,
    /// Position of that target in the fallback chain.
    pub fallback_index: Option<usize>,
    /// Attempts made, retries and fallbacks included.
    pub attempts: u32,
    /// The HTTP status the client got.
    pub status: u16,
    /// The error's kind, when it failed.
    pub error_kind: Option<ErrorKind>,
    /// Whether it was streamed.
    pub stream: bool,
    /// Whether the client went away before the end.
    pub cancelled: bool,
    /// From arrival to the last byte, in milliseconds.
    pub latency_ms: f64,
    /// From arrival to the first streamed event, in milliseconds.
    pub ttft_ms: Option<f64>,
    /// Time spent in the host rather than waiting on the upstream, in milliseconds.
    pub overhead_ms: f64,
    /// Tokens, when the upstream reported them (never estimated).
    pub usage: Option<Usage>,
    /// Dollars, when both usage and prices are known.
    pub cost_usd: Option<f64>,
    /// Answered from the response cache (no upstream tokens).
    pub cache_hit: bool,
    /// For a cache hit, what its answer cost upstream when it was kept: the saving.
    pub saved_usd: Option<f64>,
}

/// Counts and sums over a set of records.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Totals {
    /// Requests.
    pub calls: u64,
    /// Requests that failed.
    pub errors: u64,
    /// Failures by kind.
    pub errors_by_kind: BTreeMap<String, u64>,
    /// Input tokens.
    pub prompt_tokens: u64,
    /// Output tokens.
    pub completion_tokens: u64,
    /// Input tokens served from a prompt cache.
    pub cached_prompt_tokens: u64,
    /// Output tokens spent on reasoning.
    pub reasoning_tokens: u64,
    /// Dollars.
    pub cost_usd: f64,
    /// Successful requests whose upstream reported no usage.
    pub calls_without_usage: u64,
    /// Requests with usage but no known price.
    pub calls_without_price: u64,
    /// Requests answered from the response cache.
    pub cache_hits: u64,
    /// Dollars the response cache saved (what its answers cost upstream).
    pub saved_usd: f64,
}

impl Totals {
    fn add(&mut self, r: &UsageRecord) {
        self.calls += 1;
        if r.cache_hit {
            self.cache_hits += 1;
            self.saved_usd += r.saved_usd.unwrap_or(0.0);
        }
        if let Some(kind) = r.error_kind {
            self.errors += 1;
            *self
                .errors_by_kind
                .entry(kind.as_str().to_owned())
                .or_default() += 1;
        }
        match &r.usage {
            Some(u) => {
                self.prompt_tokens += u.prompt_tokens;
                self.completion_tokens += u.completion_tokens;
                self.cached_prompt_tokens += u.cached_prompt_tokens;
                self.reasoning_tokens += u.reasoning_tokens;
                match r.cost_usd {
                    Some(c) => self.cost_usd += c,
                    None => self.calls_without_price += 1,
                }
            }
            None if r.error_kind.is_none() => self.calls_without_usage += 1,
            None => {}
        }
    }
}

/// The usage summary served by `/admin/usage`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// Unix time since which usage is counted (the last reset).
    pub since: f64,
    /// Everything.
    pub totals: Totals,
    /// Per provider.
    pub providers: BTreeMap<String, Totals>,
    /// Per `provider/model`.
    pub models: BTreeMap<String, Totals>,
    /// Per client key name.
    pub clients: BTreeMap<String, Totals>,
    /// How the ledger is doing, as of when the summary was taken.
    pub ledger: LedgerStatus,
}

/// The ledger's health: records waiting to be written, records lost, and why.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LedgerStatus {
    /// `ok`, `degraded` (writes are failing; records wait, up to a bound), or `off`
    /// (usage is not recorded, or kept in memory only by config).
    pub state: &'static str,
    /// Records waiting to be written.
    pub pending: u64,
    /// Records given up since the start (the queue was full while writes failed).
    pub lost: u64,
    /// Writes that failed since the start (each is retried).
    pub write_failures: u64,
    /// The last write error while degraded.
    pub last_error: Option<String>,
}

/// Shared between the meter and its writer thread.
#[derive(Debug, Default)]
struct Health {
    pending: AtomicU64,
    lost: AtomicU64,
    write_failures: AtomicU64,
    /// The last error, while writes fail; `None` when the last write succeeded.
    failing: Mutex<Option<String>>,
}

impl Health {
    fn status(&self) -> LedgerStatus {
        let failing = self
            .failing
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        LedgerStatus {
            state: if failing.is_some() { "degraded" } else { "ok" },
            pending: self.pending.load(Ordering::Relaxed),
            lost: self.lost.load(Ordering::Relaxed),
            write_failures: self.write_failures.load(Ordering::Relaxed),
            last_error: failing,
        }
    }

    fn failed(&self, error: String) {
        self.write_failures.fetch_add(1, Ordering::Relaxed);
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    fn wrote(&self) {
        *self.failing.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

impl Summary {
    fn add(&mut self, r: &UsageRecord) {
        self.totals.add(r);
        if let Some(provider) = &r.provider {
            self.providers.entry(provider.clone()).or_default().add(r);
            if let Some(model) = &r.model {
                self.models
                    .entry(format!("{provider}/{model}"))
                    .or_default()
                    .add(r);
            }
        }
        self.clients.entry(r.client.clone()).or_default().add(r);
    }
}

/// What a budget limits.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Scope {
    Client(String),
    Provider(String),
}

/// A budget and what is spent of it (`/admin/budgets`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BudgetStatus {
    /// `client` or `provider`.
    pub scope: &'static str,
    /// The client key's or provider's name.
    pub name: String,
    /// `hour`, `day` or `month` (UTC).
    pub period: Period,
    /// Dollars per period.
    pub limit_usd: f64,
    /// Dollars spent in the current period.
    pub spent_usd: f64,
    /// When the current period began (Unix seconds).
    pub period_start: f64,
}

/// A budget that is spent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the {period:?} budget of ${limit:.2} for {scope} is spent (${spent:.4} so far); it renews at the start of the next {period:?} (UTC)")]
pub struct BudgetSpent {
    /// `client team-a` or `provider openai`.
    pub scope: String,
    /// The period.
    pub period: Period,
    /// The limit.
    pub limit: f64,
    /// Spent in this period.
    pub spent: f64,
}

/// Where the meter reads the time, in Unix seconds: the system clock, or a clock a
/// test moves across a period boundary without waiting for it.
pub type Clock = Arc<dyn Fn() -> f64 + Send + Sync>;

/// Usage bookkeeping for one host.
pub struct Meter {
    summary: Mutex<Summary>,
    /// Spend per scope and period: (period start, dollars).
    spend: Mutex<HashMap<(Scope, Period), (f64, f64)>>,
    writer: Option<WriterHandle>,
    enabled: bool,
    clock: Clock,
    /// `None` when no ledger is written.
    health: Option<Arc<Health>>,
}

/// Unix seconds now.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl Meter {
    /// Opens the ledger the config names and loads what it holds. A ledger that
    /// cannot be opened is logged, and usage is then kept in memory only.
    pub fn open(config: &UsageConfig) -> Meter {
        Meter::open_with_clock(config, Arc::new(now_unix))
    }

    /// [`Meter::open`], reading the time from `clock`: records are stamped with it and
    /// budget periods start and end by it.
    pub fn open_with_clock(config: &UsageConfig, clock: Clock) -> Meter {
        if !config.enabled {
            return Meter {
                summary: Mutex::default(),
                spend: Mutex::default(),
                writer: None,
                enabled: false,
                clock,
                health: None,
            };
        }
        let now = clock();
        let month = period::start(Period::Month, now);
        let health = Arc::new(Health::default());
        // A ledger that cannot be opened for writing (read-only, locked, a server
        // away) is still read for its history, so budgets keep what was spent, and
        // the writer keeps trying to open it; records wait meanwhile (bounded).
        let (ledger, loaded) = match Ledger::open(config) {
            Ok(mut ledger) => {
                let loaded = ledger.load(month);
                (Some(ledger), loaded)
            }
            Err(e) => {
                tracing::error!(error = %e, "usage ledger unavailable for writing: records wait in memory (bounded) while opening it is retried");
                health.failed(e);
                (None, Ledger::load_read_only(config, month))
            }
        };
        let (summary, spend) = match loaded {
            Ok(loaded) => {
                let mut summary = Summary {
                    since: loaded.reset_at,
                    ..Summary::default()
                };
                for record in &loaded.since_reset {
                    summary.add(record);
                }
                let mut spend = HashMap::new();
                for record in &loaded.this_month {
                    add_spend(&mut spend, record);
                }
                (summary, spend)
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the usage ledger; totals start from zero");
                (
                    Summary {
                        since: now,
                        ..Summary::default()
                    },
                    HashMap::new(),
                )
            }
        };
        let writer = WriterHandle::spawn(ledger, config.clone(), health.clone());
        Meter {
            summary: Mutex::new(summary),
            spend: Mutex::new(spend),
            writer: Some(writer),
            enabled: true,
            clock,
            health: Some(health),
        }
    }

    /// How the ledger is doing.
    pub fn ledger_status(&self) -> LedgerStatus {
        match &self.health {
            Some(health) => health.status(),
            None => LedgerStatus {
                state: "off",
                ..LedgerStatus::default()
            },
        }
    }

    /// The time by this meter's clock, in Unix seconds.
    pub fn now(&self) -> f64 {
        (self.clock)()
    }

    /// Counts a finished request and queues it for the ledger.
    pub fn record(&self, record: UsageRecord, budgets: &[Budget]) {
        if !self.enabled {
            return;
        }
        self.summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .add(&record);
        if record.cost_usd.is_some() {
            let mut spend = self.spend.lock().unwrap_or_else(|e| e.into_inner());
            let before: Vec<f64> = budgets
                .iter()
                .map(|b| spent(&spend, b, record.at))
                .collect();
            add_spend(&mut spend, &record);
            for (budget, before) in budgets.iter().zip(before) {
                let after = spent(&spend, budget, record.at);
                let alert = 0.8 * budget.limit_usd;
                if before < alert && after >= alert {
                    tracing::warn!(scope = %scope_name(budget), limit_usd = budget.limit_usd, spent_usd = after, period = ?budget.period, "budget 80% spent");
                }
            }
        }
        if let Some(writer) = &self.writer {
            writer.record(record);
        }
    }

    /// What this host counts as spent on `budget` in its period at `at` (the ledger as
    /// loaded at start, plus this host's records since): what a fleet's live spend in
    /// Redis is seeded with when its key is missing.
    pub fn spent_on(&self, budget: &Budget, at: f64) -> f64 {
        spent(
            &self.spend.lock().unwrap_or_else(|e| e.into_inner()),
            budget,
            at,
        )
    }

    /// The client's budgets, checked before a request is sent.
    pub fn check_client(&self, client: &str, budgets: &[Budget]) -> Result<(), BudgetSpent> {
        self.check(
            budgets
                .iter()
                .filter(|b| b.client.as_deref() == Some(client)),
        )
    }

    /// A provider's budgets.
    pub fn check_provider(&self, provider: &str, budgets: &[Budget]) -> Result<(), BudgetSpent> {
        self.check(
            budgets
                .iter()
                .filter(|b| b.provider.as_deref() == Some(provider)),
        )
    }

    fn check<'a>(&self, budgets: impl Iterator<Item = &'a Budget>) -> Result<(), BudgetSpent> {
        let spend = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.now();
        for budget in budgets {
            let spent = spent(&spend, budget, now);
            if spent >= budget.limit_usd {
                return Err(BudgetSpent {
                    scope: scope_name(budget),
                    period: budget.period,
                    limit: budget.limit_usd,
                    spent,
                });
            }
        }
        Ok(())
    }

    /// Each budget with what is spent of it in its current period.
    pub fn budgets(&self, budgets: &[Budget]) -> Vec<BudgetStatus> {
        let spend = self.spend.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.now();
        budgets
            .iter()
            .map(|budget| {
                let (scope, name) = match scope_of(budget) {
                    Some(Scope::Client(c)) => ("client", c),
                    Some(Scope::Provider(p)) => ("provider", p),
                    None => ("none", String::new()),
                };
                BudgetStatus {
                    scope,
                    name,
                    period: budget.period,
                    limit_usd: budget.limit_usd,
                    spent_usd: spent(&spend, budget, now),
                    period_start: period::start(budget.period, now),
                }
            })
            .collect()
    }

    /// The summary since the last reset, with the ledger's health.
    pub fn summary(&self) -> Summary {
        let mut summary = self
            .summary
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        summary.ledger = self.ledger_status();
        summary
    }

    /// Starts the summary over (budgets keep counting their periods).
    pub fn reset(&self) {
        let now = self.now();
        *self.summary.lock().unwrap_or_else(|e| e.into_inner()) = Summary {
            since: now,
            ..Summary::default()
        };
        if let Some(writer) = &self.writer {
            writer.reset(now);
        }
    }

    /// Usage over time from the ledger. The query goes through the writer, after the
    /// records counted before it, so what was recorded is in the answer. Blocking (at
    /// most 30 s).
    pub fn series(&self, query: SeriesQuery) -> Result<Series, SeriesError> {
        match &self.writer {
            Some(writer) => writer.series(query),
            None => Err(SeriesError::NoLedger),
        }
    }

    /// Waits until every record so far is in the ledger.
    pub fn flush(&self) {
        if let Some(writer) = &self.writer {
            writer.flush();
        }
    }
}

fn scope_of(budget: &Budget) -> Option<Scope> {
    match (&budget.client, &budget.provider) {
        (Some(c), _) => Some(Scope::Client(c.clone())),
        (None, Some(p)) => Some(Scope::Provider(p.clone())),
        _ => None,
    }
}

fn scope_name(budget: &Budget) -> String {
    match scope_of(budget) {
        Some(Scope::Client(c)) => format!("client {c}"),
        Some(Scope::Provider(p)) => format!("provider {p}"),
        None => "nothing".to_owned(),
    }
}

fn spent(spend: &HashMap<(Scope, Period), (f64, f64)>, budget: &Budget, now: f64) -> f64 {
    let Some(scope) = scope_of(budget) else {
        return 0.0;
    };
    match spend.get(&(scope, budget.period)) {
        Some((start, dollars)) if *start == period::start(budget.period, now) => *dollars,
        _ => 0.0,
    }
}

fn add_spend(spend: &mut HashMap<(Scope, Period), (f64, f64)>, record: &UsageRecord) {
    let Some(cost) = record.cost_usd else { return };
    let scopes = std::iter::once(Scope::Client(record.client.clone()))
        .chain(record.provider.clone().map(Scope::Provider));
    for scope in scopes {
        for p in [Period::Hour, Period::Day, Period::Month] {
            let start = period::start(p, record.at);
            let entry = spend.entry((scope.clone(), p)).or_insert((start, 0.0));
            if entry.0 < start {
                *entry = (start, 0.0);
            }
            if entry.0 == start {
                entry.1 += cost;
            }
        }
    }
}
