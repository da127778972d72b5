//! One Redis, reached lazily, every round trip bounded, every outage counted and logged
//! once.

use std::{
    future::Future,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwapOption;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::Serialize;

use crate::config::{RedisUrl, SharedStateConfig};

/// The longest wait between two connection attempts while Redis is down.
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);
/// The first wait after a failed connection attempt; it doubles up to the maximum.
const MIN_RECONNECT_DELAY: Duration = Duration::from_millis(100);

/// A shared Redis. Cheap to use from any task: the connection is multiplexed and
/// reconnects by itself; while it is down, [`Redis::run`] fails at once (no request
/// waits on a dead server for longer than `shared_state.timeout_ms`).
pub struct Redis {
    client: redis::Client,
    url: RedisUrl,
    prefix: String,
    timeout: Duration,
    connection: ArcSwapOption<ConnectionManager>,
    reconnect: tokio::sync::Mutex<Reconnect>,
    health: Health,
}

/// When the next connection attempt may be made, so that an outage costs one attempt
/// per delay, not one per request.
struct Reconnect {
    not_before: Option<Instant>,
    delay: Duration,
}

#[derive(Default)]
struct Health {
    down: AtomicBool,
    outages: AtomicU64,
    failed_commands: AtomicU64,
}

/// Why a Redis command did not run. The request it served follows
/// `shared_state.on_unavailable`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("shared state at {url} is unavailable: {reason}")]
pub struct Unavailable {
    /// The server, password hidden.
    pub url: String,
    /// What failed: the connection, a timeout, or the command.
    pub reason: String,
}

/// The health of the shared Redis, for `/admin/*` and `/metrics`.
#[derive(Debug, Clone, Serialize)]
pub struct RedisStatus {
    /// The server, password hidden.
    pub url: String,
    /// Whether the last command succeeded.
    pub healthy: bool,
    /// Outages since start: each run of failures counts once.
    pub outages: u64,
    /// Commands that failed or timed out since start.
    pub failed_commands: u64,
}

impl Redis {
    /// A handle on `url`; nothing connects until the first command.
    pub fn new(url: &RedisUrl, config: &SharedStateConfig) -> Redis {
        // The URL was checked when the config loaded; a client is only a parsed URL.
        let client = redis::Client::open(url.expose()).unwrap_or_else(|_| {
            redis::Client::open("redis://127.0.0.1:1").expect("a fixed, valid URL")
        });
        Redis {
            client,
            url: url.clone(),
            prefix: config.key_prefix.clone(),
            timeout: Duration::from_millis(config.timeout_ms),
            connection: ArcSwapOption::empty(),
            reconnect: tokio::sync::Mutex::new(Reconnect {
                not_before: None,
                delay: MIN_RECONNECT_DELAY,
            }),
            health: Health::default(),
        }
    }

    /// A key under the configured prefix: `key(&["limit", "client", "team-a"])` is
    /// `provider-host:limit:client:team-a`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = self.prefix.clone();
        for part in parts {
            key.push(':');
            key.push_str(part);
        }
        key
    }

    /// Runs `command` on the shared connection within `shared_state.timeout_ms`.
    ///
    /// ```no_run
    /// # async fn demo(redis: &provider_host::shared_state::Redis) {
    /// let key = redis.key(&["demo"]);
    /// use provider_host::shared_state::redis::cmd;
    /// let n: Result<i64, _> = redis
    ///     .run(|mut c| async move { cmd("INCR").arg(&key).query_async(&mut c).await })
    ///     .await;
    /// # let _ = n; }
    /// ```
    pub async fn run<T, F, Fut>(&self, command: F) -> Result<T, Unavailable>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        let outcome = match tokio::time::timeout(self.timeout, command(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "no answer within {} ms (shared_state.timeout_ms)",
                self.timeout.as_millis()
            )),
        };
        match outcome {
            Ok(value) => {
                self.up();
                Ok(value)
            }
            Err(reason) => Err(self.down(reason)),
        }
    }

    /// The health of the server as the last commands saw it.
    pub fn status(&self) -> RedisStatus {
        RedisStatus {
            url: self.url.to_string(),
            healthy: !self.health.down.load(Ordering::Relaxed),
            outages: self.health.outages.load(Ordering::Relaxed),
            failed_commands: self.health.failed_commands.load(Ordering::Relaxed),
        }
    }

    async fn connection(&self) -> Result<ConnectionManager, Unavailable> {
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        let mut reconnect = self.reconnect.lock().await;
        // Another task may have connected while this one waited for the lock.
        if let Some(connection) = self.connection.load_full() {
            return Ok((*connection).clone());
        }
        if reconnect.not_before.is_some_and(|t| Instant::now() < t) {
            return Err(self.down("not connected; the next attempt is scheduled".to_owned()));
        }
        // The manager retries a lost connection by itself; these bound each attempt so a
        // command never waits past the configured timeout for a dead server.
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(1)
            .set_min_delay(MIN_RECONNECT_DELAY)
            .set_max_delay(MAX_RECONNECT_DELAY);
        let attempt = tokio::time::timeout(
            self.timeout * 2,
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match attempt {
            Ok(Ok(connection)) => {
                reconnect.not_before = None;
                reconnect.delay = MIN_RECONNECT_DELAY;
                self.connection.store(Some(Arc::new(connection.clone())));
                Ok(connection)
            }
            Ok(Err(e)) => {
                reconnect.not_before = Some(Instant::now() + reconnect.delay);
                reconnect.delay = (reconnect.delay * 2).min(MAX_RECONNECT_DELAY);
                Err(self.down(format!("cannot connect: {e}")))
            }
            Err(_) => {
                reconnect.not_before = Some(Instant::now() + reconnect.delay);
                reconnect.delay = (reconnect.delay * 2).min(MAX_RECONNECT_DELAY);
                Err(self.down(format!(
                    "cannot connect within {} ms",
                    (self.timeout * 2).as_millis()
                )))
            }
        }
    }

    fn up(&self) {
        if self.health.down.swap(false, Ordering::Relaxed) {
            tracing::warn!(redis = %self.url, "shared state reachable again: counting in Redis resumes");
        }
    }

    fn down(&self, reason: String) -> Unavailable {
        self.health.failed_commands.fetch_add(1, Ordering::Relaxed);
        // One log line per outage, not one per request.
        if !self.health.down.swap(true, Ordering::Relaxed) {
            self.health.outages.fetch_add(1, Ordering::Relaxed);
            tracing::error!(redis = %self.url, %reason, "shared state unreachable: requests follow shared_state.on_unavailable until it is back");
        }
        Unavailable {
            url: self.url.to_string(),
            reason,
        }
    }
}

impl std::fmt::Debug for Redis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redis")
            .field("url", &self.url)
            .field("status", &self.status())
            .finish()
    }
}
