//! Live windows: rate limits (requests and tokens per minute, concurrent requests per
//! client, provider and `provider/model`) and, with Redis, the current spend of budgets.
//!
//! One host counts in its memory ([`local`]), exactly; a fleet with
//! `shared_state.redis` counts in Redis ([`shared`]), one script per check. While Redis
//! cannot be reached, `shared_state.on_unavailable` decides: `fail_open` counts in this
//! host's memory until it is back, `fail_closed` refuses.
//!
//! Windows are fixed, 60 s long, and start with the first request after the previous
//! window ended (in Redis: the window's key expires). At a window's end the counts
//! start over, so up to twice a limit can pass within a minute that straddles the end;
//! within a window the count is exact. A request reserves tokens before it is sent
//! (its prompt's estimated size plus its `max_tokens`, or [`DEFAULT_OUTPUT_RESERVE`])
//! and the reservation is corrected to the usage the upstream reports when it ends.

mod local;
pub mod quota;
mod shared;

use std::{
    collections::HashMap,
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
};

use arc_swap::ArcSwap;
use serde::Serialize;

use crate::{
    config::{Budget, Limit, LimitScope, Period, UnavailablePolicy, WINDOW_SECS},
    shared_state::{RedisStatus, SharedState, Unavailable},
    snapshot::Snapshot,
    usage::period,
};
pub use quota::{Dimension, Hit, LimitExceeded, Quota, RateLimits};
pub use shared::{BudgetKey, SpendAdd};

/// Output tokens reserved for a request that names no `max_tokens`.
pub const DEFAULT_OUTPUT_RESERVE: u64 = 1024;

/// Redis work left when a call ends (giving back leases, correcting reservations,
/// adding spend): awaited before a whole answer is returned, spawned otherwise.
pub type Pending = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One configured limit and its live counts.
#[derive(Debug)]
pub struct Entry {
    scope: LimitScope,
    name: String,
    rpm: Option<u64>,
    tpm: Option<u64>,
    concurrent: Option<u64>,
    window_key: String,
    lease_key: String,
    /// Shared with the entries of later configs for the same scope, so a reload keeps
    /// the counts.
    local: Arc<Mutex<local::Window>>,
}

impl Entry {
    /// What it limits.
    pub fn scope(&self) -> LimitScope {
        self.scope
    }

    /// `client team-a`, `provider openai`, `target openai/gpt-4o-mini`.
    pub fn label(&self) -> String {
        format!("{} {}", self.scope.as_str(), self.name)
    }
}

/// A limit's counts at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Requests in the current window.
    pub requests: u64,
    /// Tokens in the current window (reservations of requests in flight included).
    pub tokens: u64,
    /// Until the window ends, in milliseconds (0 when none is open).
    pub reset_ms: u64,
    /// Requests in flight.
    pub in_flight: u64,
}

/// What one admitted request took from one limit.
#[derive(Debug, Clone)]
pub(crate) struct Held {
    entry: Arc<Entry>,
    /// The window it was counted in (its start), so a correction never lands in a
    /// later one.
    window: u64,
    reserved: u64,
    leased: bool,
    /// The limit's counts right after this request was counted.
    usage: Usage,
}

/// What one admitted request holds from a set of limits until it ends.
#[derive(Debug, Default)]
pub struct Grant {
    held: Vec<Held>,
    in_redis: bool,
}

impl Grant {
    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The tightest quotas of the limits held, as they were when counted.
    pub fn quotas(&self) -> RateLimits {
        let mut quotas = RateLimits::default();
        for held in &self.held {
            quotas.tighten(held.entry.quotas(&held.usage));
        }
        quotas
    }

    /// Splits off what it holds from a client limit (kept for the whole call) from the
    /// rest (given back when the call moves to another target).
    pub fn split_client(self) -> (Grant, Grant) {
        let in_redis = self.in_redis;
        let (client, rest) = self
            .held
            .into_iter()
            .partition(|h| h.entry.scope == LimitScope::Client);
        (
            Grant {
                held: client,
                in_redis,
            },
            Grant {
                held: rest,
                in_redis,
            },
        )
    }
}

/// The outcome of asking the limits for one request.
#[derive(Debug)]
pub enum Admitted {
    /// Counted.
    Granted(Grant),
    /// A limit refused.
    Limited(Hit),
    /// The budget at this index of those asked about is spent (this much so far).
    BudgetSpent(usize, f64),
    /// Redis is unreachable and the policy is `fail_closed`.
    Unavailable(Unavailable),
}

/// The configured limits, indexed for a request's lookups.
#[derive(Default)]
struct Table {
    generation: u64,
    all: Vec<Arc<Entry>>,
    clients: HashMap<String, Arc<Entry>>,
    providers: HashMap<String, Arc<Entry>>,
    targets: HashMap<String, HashMap<String, Arc<Entry>>>,
}

/// The limits that apply to one target of a call.
pub struct Applicable {
    /// The client's limit.
    pub client: Option<Arc<Entry>>,
    /// The target's provider's limit.
    pub provider: Option<Arc<Entry>>,
    /// The target's own limit.
    pub target: Option<Arc<Entry>>,
}

/// Live windows shared by every snapshot: rate limits and, in Redis, budgets' spend.
pub struct Limiter {
    shared: Arc<SharedState>,
    table: ArcSwap<Table>,
    rebuilding: Mutex<()>,
    scripts: shared::Scripts,
    host_id: String,
    next_call: AtomicU64,
    fallbacks: AtomicU64,
}

impl Limiter {
    /// Limits kept where `shared` says.
    pub fn new(shared: Arc<SharedState>) -> Limiter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        Limiter {
            shared,
            table: ArcSwap::from_pointee(Table::default()),
            rebuilding: Mutex::new(()),
            scripts: shared::Scripts::default(),
            host_id: format!("{:x}-{nanos:x}", std::process::id()),
            next_call: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// A name for one call's leases, unique across the fleet.
    pub fn lease_name(&self) -> String {
        format!(
            "{}-{}",
            self.host_id,
            self.next_call.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// Where the counts live.
    pub fn shared_state(&self) -> &SharedState {
        &self.shared
    }

    /// Checks counted in this host's memory because Redis was unreachable (`fail_open`).
    pub fn local_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn table(&self, snapshot: &Snapshot) -> Arc<Table> {
        let table = self.table.load_full();
        // Requests on an older snapshot keep the newer table: limits follow the
        // latest config, and the table never flaps during a reload.
        if table.generation >= snapshot.generation {
            return table;
        }
        let _one = self.rebuilding.lock().unwrap_or_else(|e| e.into_inner());
        let table = self.table.load_full();
        if table.generation >= snapshot.generation {
            return table;
        }
        let built = Arc::new(self.build(&snapshot.config.limits, snapshot.generation, &table));
        self.table.store(built.clone());
        built
    }

    fn build(&self, limits: &[Limit], generation: u64, old: &Table) -> Table {
        let mut table = Table {
            generation,
            ..Table::default()
        };
        for limit in limits {
            let Some((scope, name)) = limit.scope() else {
                continue;
            };
            let previous = old
                .all
                .iter()
                .find(|e| e.scope == scope && e.name == name)
                .map(|e| e.local.clone());
            let key = |kind: &str| match self.shared.redis() {
                Some(redis) => redis.key(&[kind, scope.as_str(), name]),
                None => String::new(),
            };
            let entry = Arc::new(Entry {
                scope,
                name: name.to_owned(),
                rpm: limit.rpm,
                tpm: limit.tpm,
                concurrent: limit.concurrent,
                window_key: key("limit-window"),
                lease_key: key("limit-leases"),
                local: previous.unwrap_or_default(),
            });
            table.all.push(entry.clone());
            match scope {
                LimitScope::Client => {
                    table.clients.insert(name.to_owned(), entry);
                }
                LimitScope::Provider => {
                    table.providers.insert(name.to_owned(), entry);
                }
                LimitScope::Target => {
                    if let Some((p, m)) = name.split_once('/') {
                        table
                            .targets
                            .entry(p.to_owned())
                            .or_default()
                            .insert(m.to_owned(), entry);
                    }
                }
            }
        }
        table
    }

    /// The limits that apply to `client` sending to `provider`/`model`.
    pub fn applicable(
        &self,
        snapshot: &Snapshot,
        client: &str,
        provider: &str,
        model: &str,
    ) -> Applicable {
        let table = self.table(snapshot);
        Applicable {
            client: table.clients.get(client).cloned(),
            provider: table.providers.get(provider).cloned(),
            target: table
                .targets
                .get(provider)
                .and_then(|models| models.get(model))
                .cloned(),
        }
    }

    /// The Redis key of `budget`'s live spend in the period that holds `at`, and when
    /// the key lapses (Unix milliseconds: an hour after the period ends); `None`
    /// without Redis.
    pub fn budget_key(&self, budget: &Budget, at: f64) -> Option<(String, u64)> {
        let redis = self.shared.redis()?;
        let (kind, name) = match (&budget.client, &budget.provider) {
            (Some(client), _) => ("client", client),
            (None, Some(provider)) => ("provider", provider),
            _ => return None,
        };
        let start = period::start(budget.period, at);
        let (label, end) = match budget.period {
            Period::Hour => ("hour", start + 3_600.0),
            Period::Day => ("day", start + 86_400.0),
            // 31 days after the first of a month is always in the next month.
            Period::Month => (
                "month",
                period::start(Period::Month, start + 31.0 * 86_400.0),
            ),
        };
        let key = redis.key(&["spend", kind, label, &(start as i64).to_string(), name]);
        Some((key, ((end + 3_600.0) * 1_000.0) as u64))
    }

    /// Takes one request and `reserve` tokens from every limit in `entries` (all or
    /// none), checking `budgets` in Redis first; `now` is the host's clock (memory
    /// windows), `lease_ms` how long a lease may outlive a host that died.
    pub async fn admit(
        &self,
        entries: &[Arc<Entry>],
        budgets: &[BudgetKey],
        reserve: u64,
        member: &str,
        now: f64,
        lease_ms: u64,
    ) -> Admitted {
        if entries.is_empty() && budgets.is_empty() {
            return Admitted::Granted(Grant::default());
        }
        if let Some(redis) = self.shared.redis() {
            let decided = self
                .scripts
                .admit(redis, entries, budgets, reserve, member, lease_ms)
                .await;
            match decided {
                Ok(shared::Decision::Granted(held)) => {
                    return Admitted::Granted(Grant {
                        held,
                        in_redis: true,
                    })
                }
                Ok(shared::Decision::Limited(hit)) => return Admitted::Limited(hit),
                Ok(shared::Decision::Spent(index, spent)) => {
                    return Admitted::BudgetSpent(index, spent)
                }
                Err(unavailable) => {
                    if self.shared.policy() == UnavailablePolicy::FailClosed {
                        return Admitted::Unavailable(unavailable);
                    }
                    // Counted in memory until Redis is back; the handle logged the
                    // outage once.
                    self.fallbacks.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        match local::admit(entries, reserve, now) {
            Ok(held) => Admitted::Granted(Grant {
                held,
                in_redis: false,
            }),
            Err(hit) => Admitted::Limited(*hit),
        }
    }

    /// Gives back what `grants` hold (correcting reservations to `used` tokens when
    /// known) and adds `spends` to budgets in Redis. Memory is settled now; Redis work
    /// is returned, to await or spawn.
    pub fn settle(
        self: &Arc<Self>,
        grants: Vec<Grant>,
        used: Option<u64>,
        member: String,
        spends: Vec<SpendAdd>,
    ) -> Option<Pending> {
        let mut remote = Vec::new();
        for grant in grants {
            if grant.in_redis {
                remote.extend(grant.held);
            } else {
                local::settle(&grant.held, used);
            }
        }
        if remote.is_empty() && spends.is_empty() {
            return None;
        }
        self.shared.redis()?;
        let limiter = self.clone();
        Some(Box::pin(async move {
            let Some(redis) = limiter.shared.redis() else {
                return;
            };
            // A failure is an outage the handle logs and counts; leases lapse by
            // themselves and windows end, so nothing is held for good.
            let _ = limiter
                .scripts
                .settle(redis, &remote, used, &member, &spends)
                .await;
        }))
    }

    /// Every configured limit with its counts now (from Redis when it is configured
    /// and reachable, else this host's memory).
    pub async fn report(&self, snapshot: &Snapshot, now: f64) -> LimitsReport {
        let table = self.table(snapshot);
        let redis = self.shared.redis();
        let mut counts = None;
        if let Some(redis) = redis {
            counts = self.scripts.report(redis, &table.all).await.ok();
        }
        let counts = counts.unwrap_or_else(|| {
            table
                .all
                .iter()
                .map(|e| e.local.lock().unwrap_or_else(|p| p.into_inner()).usage(now))
                .collect()
        });
        let limits = table
            .all
            .iter()
            .zip(counts)
            .map(|(entry, usage)| LimitReport::new(entry, usage))
            .collect();
        LimitsReport {
            backend: self.shared.backend(),
            redis: redis.map(|r| r.status()),
            limits,
        }
    }
}

/// `GET /admin/limits`: where the counts live and every limit's window.
#[derive(Debug, Clone, Serialize)]
pub struct LimitsReport {
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// The shared Redis's health, when configured.
    pub redis: Option<RedisStatus>,
    /// Every configured limit, in config order.
    pub limits: Vec<LimitReport>,
}

/// One limit's window, usage and what remains.
#[derive(Debug, Clone, Serialize)]
pub struct LimitReport {
    /// `client`, `provider` or `target`.
    pub scope: &'static str,
    /// The client key's name, the provider or `provider/model`.
    pub name: String,
    /// The window's length.
    pub window_secs: u64,
    /// `rpm`, when set.
    pub requests: Option<WindowReport>,
    /// `tpm`, when set.
    pub tokens: Option<WindowReport>,
    /// `concurrent`, when set.
    pub concurrent: Option<ConcurrentReport>,
}

/// A windowed limit's state.
#[derive(Debug, Clone, Serialize)]
pub struct WindowReport {
    /// Allowed per window.
    pub limit: u64,
    /// Used in the current window.
    pub used: u64,
    /// Left in it.
    pub remaining: u64,
    /// Seconds until it ends (0 when none is open).
    pub reset_secs: u64,
}

/// A concurrency limit's state.
#[derive(Debug, Clone, Serialize)]
pub struct ConcurrentReport {
    /// Requests allowed in flight.
    pub limit: u64,
    /// Requests in flight.
    pub in_flight: u64,
}

impl LimitReport {
    fn new(entry: &Entry, usage: Usage) -> LimitReport {
        let window = |limit: u64, used: u64| WindowReport {
            limit,
            used,
            remaining: limit.saturating_sub(used),
            reset_secs: usage.reset_ms.div_ceil(1000),
        };
        LimitReport {
            scope: entry.scope.as_str(),
            name: entry.name.clone(),
            window_secs: WINDOW_SECS,
            requests: entry.rpm.map(|l| window(l, usage.requests)),
            tokens: entry.tpm.map(|l| window(l, usage.tokens)),
            concurrent: entry.concurrent.map(|limit| ConcurrentReport {
                limit,
                in_flight: usage.in_flight,
            }),
        }
    }
}
