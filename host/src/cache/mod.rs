//! The response cache: answers kept by question, so that a repeated request (an
//! evaluation run, a retried agent step, one question from many users) is answered
//! without calling the upstream.
//!
//! This module is the store and its figures; `pipeline/cache.rs` decides per call
//! whether to look and whether to keep, and `key.rs` says what makes two requests the
//! same question. Entries live in this host's memory under a byte bound (least
//! recently used evicted first), or in the fleet's Redis when `shared_state.redis` is
//! set, each with its TTL (`SET PX`). A Redis that cannot be reached is a miss, never
//! an error: the cache only ever saves work.

mod directive;
mod entry;
mod key;
mod memory;
mod semantic;

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc, Mutex,
};

use serde::Serialize;

pub use directive::Directive;
pub use entry::{assemble, Answer, Entry};
pub use key::{key, KeyParts};
pub use semantic::SemanticIndex;

use crate::{
    config::CacheConfig,
    shared_state::{redis::cmd, Redis, SharedState},
};

/// How a call met the cache, as the `x-cache` header says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered from the cache.
    Hit,
    /// Not in the cache: answered upstream (and kept, if it may be).
    Miss,
    /// Answered from the cache with the answer to a prompt that means the same (the
    /// alias's semantic cache).
    SemanticHit,
}

impl Outcome {
    /// The header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::SemanticHit => "semantic-hit",
        }
    }
}

/// The most keys one purge deletes from Redis per round trip.
const PURGE_BATCH: usize = 500;

/// The cache: a store and its figures. Lives in the pipeline, across snapshots.
pub struct ResponseCache {
    store: Store,
    max_entry_bytes: u64,
    figures: Figures,
    semantic: SemanticIndex,
}

enum Store {
    Memory(Mutex<memory::Lru>),
    /// The fleet's state, which has a Redis.
    Redis(Arc<SharedState>),
}

impl Store {
    fn redis(shared: &SharedState) -> &Redis {
        shared
            .redis()
            .expect("a Redis store is made only for a shared state with Redis")
    }
}

#[derive(Default)]
struct Figures {
    hits: AtomicU64,
    semantic_hits: AtomicU64,
    misses: AtomicU64,
    stored: AtomicU64,
    too_large: AtomicU64,
    unavailable: AtomicU64,
    /// Dollars saved by hits, in micro-dollars (an atomic integer keeps the sum exact
    /// enough and lock-free).
    saved_micro_usd: AtomicU64,
}

/// What `/admin/cache` and `/metrics` show.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CacheStatus {
    /// `memory` or `redis`.
    pub backend: &'static str,
    /// Entries held (memory only: a shared Redis is not counted by each host).
    pub entries: Option<u64>,
    /// Bytes held against `cache.max_bytes` (memory only).
    pub bytes: Option<u64>,
    /// The byte bound of the memory store.
    pub max_bytes: u64,
    /// The largest entry kept.
    pub max_entry_bytes: u64,
    /// Calls answered from the cache (semantic hits included).
    pub hits: u64,
    /// Of the hits, those answered by the semantic cache.
    pub semantic_hits: u64,
    /// Prompt embeddings in the semantic index (this host's).
    pub semantic_entries: u64,
    /// Calls looked up and not found.
    pub misses: u64,
    /// hits / (hits + misses), 0 before any lookup.
    pub hit_ratio: f64,
    /// Answers kept.
    pub stored: u64,
    /// Answers not kept for being larger than `cache.max_entry_bytes`.
    pub too_large: u64,
    /// Entries evicted to stay under the byte bound (memory only).
    pub evictions: u64,
    /// Lookups and writes that found Redis unreachable (each served as a miss).
    pub unavailable: u64,
    /// Dollars the hits saved (what their answers cost upstream).
    pub saved_usd: f64,
}

impl ResponseCache {
    /// The cache `config` describes, in the fleet's Redis when `shared` has one.
    pub fn new(config: &CacheConfig, shared: Arc<SharedState>) -> ResponseCache {
        let store = match shared.redis() {
            Some(_) => Store::Redis(shared),
            None => Store::Memory(Mutex::new(memory::Lru::new(config.max_bytes))),
        };
        ResponseCache {
            store,
            max_entry_bytes: config.max_entry_bytes.min(config.max_bytes),
            figures: Figures::default(),
            semantic: SemanticIndex::new(config.semantic_max_entries),
        }
    }

    /// The entry under `key` if one is live at `now` (Unix seconds). The caller
    /// counts the lookup as a [`ResponseCache::hit`] or a [`ResponseCache::miss`].
    pub async fn get(&self, key: &str, now: f64) -> Option<Entry> {
        let bytes = match &self.store {
            Store::Memory(lru) => lru.lock().expect("cache lock").get(key, now),
            Store::Redis(shared) => {
                let redis = Store::redis(shared);
                let name = redis.key(&["cache", key]);
                match redis
                    .run(|mut c| async move {
                        cmd("GET")
                            .arg(&name)
                            .query_async::<Option<Vec<u8>>>(&mut c)
                            .await
                    })
                    .await
                {
                    Ok(found) => found,
                    Err(_) => {
                        self.figures.unavailable.fetch_add(1, Ordering::Relaxed);
                        None
                    }
                }
            }
        };
        bytes
            .and_then(|b| Entry::decode(&b))
            .filter(|e| e.expires_at > now)
    }

    /// Counts a lookup that found nothing to serve.
    pub fn miss(&self) {
        self.figures.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// The semantic cache's index of prompts.
    pub fn semantic(&self) -> &SemanticIndex {
        &self.semantic
    }

    /// Counts a hit (`semantic` or exact) that saved `cost_usd`.
    pub fn hit(&self, cost_usd: Option<f64>, semantic: bool) {
        self.figures.hits.fetch_add(1, Ordering::Relaxed);
        if semantic {
            self.figures.semantic_hits.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(cost) = cost_usd.filter(|c| c.is_finite() && *c > 0.0) {
            self.figures
                .saved_micro_usd
                .fetch_add((cost * 1e6).round() as u64, Ordering::Relaxed);
        }
    }

    /// Keeps `entry` under `key` for `ttl` seconds from `now`, unless it is larger
    /// than `cache.max_entry_bytes`. Whether it was kept.
    pub async fn put(&self, key: &str, entry: &Entry, ttl: u64) -> bool {
        let bytes = entry.encode();
        if bytes.len() as u64 > self.max_entry_bytes {
            self.figures.too_large.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                bytes = bytes.len(),
                max = self.max_entry_bytes,
                "answer not cached: larger than cache.max_entry_bytes"
            );
            return false;
        }
        let kept = match &self.store {
            Store::Memory(lru) => {
                lru.lock()
                    .expect("cache lock")
                    .put(key, bytes, entry.expires_at);
                true
            }
            Store::Redis(shared) => {
                let redis = Store::redis(shared);
                let name = redis.key(&["cache", key]);
                let ttl_ms = ttl.saturating_mul(1000);
                let set = redis
                    .run(|mut c| async move {
                        cmd("SET")
                            .arg(&name)
                            .arg(bytes)
                            .arg("PX")
                            .arg(ttl_ms)
                            .query_async::<()>(&mut c)
                            .await
                    })
                    .await;
                if set.is_err() {
                    self.figures.unavailable.fetch_add(1, Ordering::Relaxed);
                }
                set.is_ok()
            }
        };
        if kept {
            self.figures.stored.fetch_add(1, Ordering::Relaxed);
        }
        kept
    }

    /// Drops every entry (in Redis, every key under this fleet's cache prefix);
    /// returns how many.
    pub async fn purge(&self) -> Result<u64, crate::shared_state::Unavailable> {
        self.semantic.clear();
        match &self.store {
            Store::Memory(lru) => Ok(lru.lock().expect("cache lock").clear()),
            Store::Redis(shared) => {
                let redis = Store::redis(shared);
                let pattern = redis.key(&["cache", "*"]);
                let mut cursor: u64 = 0;
                let mut purged = 0u64;
                loop {
                    let pattern = pattern.clone();
                    let (next, keys): (u64, Vec<String>) = redis
                        .run(|mut c| async move {
                            cmd("SCAN")
                                .arg(cursor)
                                .arg("MATCH")
                                .arg(&pattern)
                                .arg("COUNT")
                                .arg(PURGE_BATCH)
                                .query_async(&mut c)
                                .await
                        })
                        .await?;
                    if !keys.is_empty() {
                        let deleted: u64 = redis
                            .run(|mut c| async move {
                                cmd("UNLINK").arg(&keys).query_async(&mut c).await
                            })
                            .await?;
                        purged += deleted;
                    }
                    if next == 0 {
                        return Ok(purged);
                    }
                    cursor = next;
                }
            }
        }
    }

    /// The figures.
    pub fn status(&self) -> CacheStatus {
        let f = &self.figures;
        let (hits, misses) = (
            f.hits.load(Ordering::Relaxed),
            f.misses.load(Ordering::Relaxed),
        );
        let (backend, entries, bytes, evictions, max_bytes) = match &self.store {
            Store::Memory(lru) => {
                let lru = lru.lock().expect("cache lock");
                (
                    "memory",
                    Some(lru.len()),
                    Some(lru.bytes()),
                    lru.evictions(),
                    lru.max_bytes(),
                )
            }
            Store::Redis(_) => ("redis", None, None, 0, 0),
        };
        CacheStatus {
            backend,
            entries,
            bytes,
            max_bytes,
            max_entry_bytes: self.max_entry_bytes,
            hits,
            semantic_hits: f.semantic_hits.load(Ordering::Relaxed),
            semantic_entries: self.semantic.len() as u64,
            misses,
            hit_ratio: if hits + misses == 0 {
                0.0
            } else {
                hits as f64 / (hits + misses) as f64
            },
            stored: f.stored.load(Ordering::Relaxed),
            too_large: f.too_large.load(Ordering::Relaxed),
            evictions,
            unavailable: f.unavailable.load(Ordering::Relaxed),
            saved_usd: f.saved_micro_usd.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}
