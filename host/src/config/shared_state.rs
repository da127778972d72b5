//! `shared_state`: where live counters (rate limits, budget spend, cached answers) are
//! kept when several hosts must agree on them.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The `shared_state` section. Without `redis` every host keeps its counters in its own
/// memory, which is exact for one host and needs nothing new to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedStateConfig {
    /// The Redis server every host of a fleet shares (`redis://[:password@]host:port[/db]`).
    pub redis: Option<RedisUrl>,
    /// What a request meets while Redis cannot be reached.
    pub on_unavailable: UnavailablePolicy,
    /// Prefix of every key the host writes, so that several fleets can share one Redis.
    pub key_prefix: String,
    /// How long one Redis round trip may take, in milliseconds, before it counts as an
    /// outage (the request then follows `on_unavailable` instead of waiting).
    pub timeout_ms: u64,
}

impl Default for SharedStateConfig {
    fn default() -> Self {
        SharedStateConfig {
            redis: None,
            on_unavailable: UnavailablePolicy::FailOpen,
            key_prefix: "provider-host".to_owned(),
            timeout_ms: 250,
        }
    }
}

/// What the host does with a request whose limits or budgets it cannot check because
/// the shared state is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnavailablePolicy {
    /// Serve it, counted in memory until Redis is back (availability first).
    FailOpen,
    /// Refuse it with 503 (limits first).
    FailClosed,
}

/// A Redis URL. It may carry a password, so it never prints whole: `Debug` and
/// `Display` show it with the password replaced.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The URL as written, password included: only for connecting.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Checks the scheme and the host, with what to write instead.
    pub fn check(&self) -> Result<(), String> {
        let url = url::Url::parse(&self.0).map_err(|e| {
            format!(
                "`{self}` is not a URL ({e}): write redis://host:port, e.g. redis://127.0.0.1:6379"
            )
        })?;
        if url.scheme() != "redis" {
            return Err(format!(
                "`{self}` has scheme `{}`: only redis:// is supported (put TLS in front with a local proxy if Redis is remote)",
                url.scheme()
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(format!("`{self}` names no host: write redis://host:port"));
        }
        Ok(())
    }
}

impl From<&str> for RedisUrl {
    fn from(url: &str) -> Self {
        RedisUrl(url.to_owned())
    }
}

impl fmt::Display for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match url::Url::parse(&self.0) {
            Ok(mut url) => {
                if url.password().is_some() {
                    let _ = url.set_password(Some("***"));
                }
                f.write_str(url.as_str())
            }
            // Not a URL: it cannot be parsed for a password, so none of it is shown.
            Err(_) => f.write_str("<not a URL>"),
        }
    }
}

impl fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RedisUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_never_prints() {
        let url = RedisUrl::from("redis://:hunter2@cache.internal:6379/2");
        assert_eq!(url.to_string(), "redis://:***@cache.internal:6379/2");
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(url.expose(), "redis://:hunter2@cache.internal:6379/2");
    }

    #[test]
    fn only_redis_urls_with_a_host_pass() {
        assert!(RedisUrl::from("redis://127.0.0.1:6379").check().is_ok());
        let tls = RedisUrl::from("rediss://cache:6380").check().unwrap_err();
        assert!(tls.contains("only redis://"), "{tls}");
        let bare = RedisUrl::from("127.0.0.1:6379").check().unwrap_err();
        assert!(bare.contains("redis://host:port"), "{bare}");
    }

    #[test]
    fn an_unparsable_url_shows_nothing_of_itself() {
        let url = RedisUrl::from("redis://user:pa ss@[bad");
        assert_eq!(url.to_string(), "<not a URL>");
    }
}
