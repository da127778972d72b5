//! The usage part of the config: named client keys, price overrides, budgets and
//! where the usage ledger is kept.

use std::path::PathBuf;

use provider_sdk::Pricing;
use serde::{Deserialize, Serialize};

/// A client key, bare or with a name under which its usage is counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ClientKeySpec {
    /// The key alone; its usage is counted as `key-<first 8 hex of its SHA-256>`.
    Plain(String),
    /// A key with a name.
    Named(NamedKey),
}

/// A named client key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamedKey {
    /// The key (prefer a `${VAR}` reference).
    pub key: String,
    /// The name usage and budgets refer to.
    pub name: String,
}

impl ClientKeySpec {
    /// The key.
    pub fn key(&self) -> &str {
        match self {
            ClientKeySpec::Plain(k) => k,
            ClientKeySpec::Named(n) => &n.key,
        }
    }

    /// The name given in the config, if any.
    pub fn name(&self) -> Option<&str> {
        match self {
            ClientKeySpec::Plain(_) => None,
            ClientKeySpec::Named(n) => Some(&n.name),
        }
    }
}

/// A spend limit over a calendar period (UTC), for one client or one provider.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    /// The client key name this budget limits.
    #[serde(default)]
    pub client: Option<String>,
    /// The provider this budget limits.
    #[serde(default)]
    pub provider: Option<String>,
    /// US dollars per period.
    pub limit_usd: f64,
    /// `hour`, `day` or `month`.
    pub period: Period,
}

/// A budget period, in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    /// The current clock hour.
    Hour,
    /// The current day.
    Day,
    /// The current calendar month.
    Month,
}

/// Where usage is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UsageConfig {
    /// Keep usage at all (in memory and in the ledger).
    pub enabled: bool,
    /// The SQLite ledger file (relative to the config's folder). The default sits in a
    /// folder of its own beside the config, so its writes do not wake the config watcher.
    pub database: PathBuf,
    /// A PostgreSQL URL: a ledger shared by a fleet of hosts, instead of SQLite.
    pub postgres: Option<String>,
    /// The most records kept waiting while the ledger cannot be written; past it the
    /// oldest are given up and counted as lost.
    pub max_pending: usize,
}

impl Default for UsageConfig {
    fn default() -> Self {
        UsageConfig {
            enabled: true,
            database: PathBuf::from(".provider-host/usage.sqlite3"),
            postgres: None,
            max_pending: 100_000,
        }
    }
}

/// Price overrides per `provider/model`, taking precedence over the plugin manifest.
pub type PriceOverrides = std::collections::BTreeMap<String, Pricing>;
