//! `cache`: the response cache, off by default. The global section bounds the store and
//! may turn caching on for every model; an alias's own `cache` turns it on (or off) for
//! that alias.

use serde::{Deserialize, Serialize};

/// The global `cache` section.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Cache every model that has no `cache` of its own, with these settings.
    pub enabled: bool,
    /// How long an answer is served from the cache, in seconds (the default of aliases
    /// that do not say, and of requests that opt in with `x-cache-control: cache`).
    pub ttl: u64,
    /// Share answers between client keys (off: each client key has its own cache).
    pub shared: bool,
    /// The most bytes the in-memory cache holds; past it the least recently used
    /// answers are evicted.
    pub max_bytes: u64,
    /// Answers larger than this (in bytes, as stored) are not cached.
    pub max_entry_bytes: u64,
    /// The most prompt embeddings the semantic cache indexes (every alias and client
    /// together); past it the index starts over.
    pub semantic_max_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: false,
            ttl: 3600,
            shared: false,
            max_bytes: 64 << 20,
            max_entry_bytes: 1 << 20,
            semantic_max_entries: 10_000,
        }
    }
}

/// An alias's own `cache`: `{"ttl": 3600}` turns caching on for it, `{"enabled": false}`
/// off whatever the global section says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AliasCache {
    /// Whether the alias is cached (default `true` once the object is given).
    #[serde(default = "enabled_by_default")]
    pub enabled: bool,
    /// Seconds an answer is served; the global `cache.ttl` when absent.
    #[serde(default)]
    pub ttl: Option<u64>,
    /// Share answers between client keys; the global `cache.shared` when absent.
    #[serde(default)]
    pub shared: Option<bool>,
    /// Also answer prompts that mean the same as a kept one (opt-in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub semantic: Option<SemanticCache>,
}

/// An alias's semantic cache: `{"embedding_model": "openai/text-embedding-3-small",
/// "threshold": 0.95}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SemanticCache {
    /// The model (`provider/model` or alias) that embeds prompts; it must offer
    /// embeddings. Each lookup is one embeddings call, counted in usage like any.
    pub embedding_model: String,
    /// The least cosine similarity (0 to 1) at which a kept answer serves a new prompt.
    pub threshold: f32,
}

fn enabled_by_default() -> bool {
    true
}

/// How one model is cached, resolved from its alias and the global section.
#[derive(Debug, Clone, PartialEq)]
pub struct CachePolicy {
    /// Seconds an answer is served.
    pub ttl: u64,
    /// Answers are shared between client keys.
    pub shared: bool,
    /// The alias's semantic cache, if it has one.
    pub semantic: Option<SemanticCache>,
}

impl CacheConfig {
    /// The policy of `alias` (the model's alias, if it is one), when it is cached;
    /// `opted_in` is a request asking for caching where the config does not.
    pub fn policy(&self, alias: Option<&AliasCache>, opted_in: bool) -> Option<CachePolicy> {
        let enabled = match alias {
            Some(own) => own.enabled,
            None => self.enabled || opted_in,
        };
        enabled.then(|| CachePolicy {
            ttl: alias.and_then(|a| a.ttl).unwrap_or(self.ttl),
            shared: alias.and_then(|a| a.shared).unwrap_or(self.shared),
            semantic: alias.and_then(|a| a.semantic.clone()),
        })
    }

    /// Checks the bounds, naming the field at fault.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.ttl == 0 {
            return Err((
                "cache.ttl".to_owned(),
                "must be at least 1 (seconds an answer is served from the cache)".to_owned(),
            ));
        }
        if self.max_entry_bytes == 0 || self.max_entry_bytes > self.max_bytes {
            return Err((
                "cache.max_entry_bytes".to_owned(),
                format!(
                    "must be between 1 and cache.max_bytes ({}): the largest answer the cache keeps",
                    self.max_bytes
                ),
            ));
        }
        Ok(())
    }
}

impl AliasCache {
    /// Checks the TTL, naming the field at fault (`at` is the alias's path).
    pub(super) fn check(&self, at: &str) -> Result<(), (String, String)> {
        if self.ttl == Some(0) {
            return Err((
                format!("{at}.cache.ttl"),
                "must be at least 1 (seconds); to turn caching off write \"enabled\": false"
                    .to_owned(),
            ));
        }
        if let Some(semantic) = &self.semantic {
            if !(semantic.threshold > 0.0 && semantic.threshold <= 1.0) {
                return Err((
                    format!("{at}.cache.semantic.threshold"),
                    format!(
                        "{} is not a cosine similarity in (0, 1]: 0.95 serves only close paraphrases",
                        semantic.threshold
                    ),
                ));
            }
            if semantic.embedding_model.is_empty() {
                return Err((
                    format!("{at}.cache.semantic.embedding_model"),
                    "is empty: name a `provider/model` (or alias) with embeddings".to_owned(),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alias_cache_overrides_the_global_default_and_a_request_opts_in_only_where_unset() {
        let global = CacheConfig::default();
        assert_eq!(global.policy(None, false), None, "off by default");
        assert_eq!(
            global.policy(None, true),
            Some(CachePolicy {
                ttl: 3600,
                shared: false,
                semantic: None,
            })
        );
        let own = AliasCache {
            enabled: true,
            ttl: Some(60),
            shared: Some(true),
            semantic: None,
        };
        assert_eq!(
            global.policy(Some(&own), false),
            Some(CachePolicy {
                ttl: 60,
                shared: true,
                semantic: None,
            })
        );
        let off = AliasCache {
            enabled: false,
            ttl: None,
            shared: None,
            semantic: None,
        };
        let on = CacheConfig {
            enabled: true,
            ..global
        };
        assert_eq!(on.policy(Some(&off), true), None, "an alias that says off");
    }
}
