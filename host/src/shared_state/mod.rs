//! The state several hosts of a fleet share: live rate-limit windows, the current spend
//! of budgets and cached answers. One host keeps them in memory and needs nothing new;
//! with `shared_state.redis` set every host reads and updates one Redis, atomically
//! (scripts, not read-then-write), so a fleet enforces one limit as one host would.
//!
//! This module owns only the connection and its health. What is kept there, and how,
//! belongs to the features that use it (limits, budgets, the response cache); each asks
//! [`SharedState::redis`] for the handle and runs its commands through [`Redis::run`],
//! which bounds every round trip, counts outages and reconnects by itself.

mod redis_handle;

/// The Redis client the host uses, for commands passed to [`Redis::run`].
pub use ::redis;
pub use redis_handle::{Redis, RedisStatus, Unavailable};

use crate::config::{SharedStateConfig, UnavailablePolicy};

/// Where live counters are kept: this host's memory only, or a Redis shared by a fleet.
#[derive(Debug)]
pub struct SharedState {
    redis: Option<Redis>,
    policy: UnavailablePolicy,
}

impl SharedState {
    /// Counters in this host's memory only.
    pub fn local() -> SharedState {
        SharedState {
            redis: None,
            policy: UnavailablePolicy::FailOpen,
        }
    }

    /// What `config` asks for. Nothing connects yet: the first command does, inside the
    /// runtime, so a host starts while Redis is down.
    pub fn from_config(config: &SharedStateConfig) -> SharedState {
        SharedState {
            redis: config.redis.as_ref().map(|url| Redis::new(url, config)),
            policy: config.on_unavailable,
        }
    }

    /// The shared Redis, when the config names one.
    pub fn redis(&self) -> Option<&Redis> {
        self.redis.as_ref()
    }

    /// What a request meets while Redis cannot be reached.
    pub fn policy(&self) -> UnavailablePolicy {
        self.policy
    }

    /// `"redis"` or `"memory"`: where the counters live, for `/admin/*` and logs.
    pub fn backend(&self) -> &'static str {
        if self.redis.is_some() {
            "redis"
        } else {
            "memory"
        }
    }
}
