//! Answers of the Responses API kept for `GET /v1/responses/{id}` and for
//! `previous_response_id`: the response object the client got and the conversation
//! that led to it, in canonical messages, so any target of any protocol can continue it.
//!
//! They live in the usage ledger's database (the SQLite file, or the PostgreSQL
//! database a fleet shares, so a conversation started on one host continues on
//! another), or in memory, bounded, when the ledger is off. Entries older than the
//! retention are neither returned nor kept. Every method blocks: call it off the async
//! runtime (`spawn_blocking`).

use std::{
    collections::{HashMap, VecDeque},
    str::FromStr,
    sync::Mutex,
    time::Duration,
};

use provider_sdk::Message;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;

use crate::config::{ResponsesConfig, UsageConfig};

/// One stored answer.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResponse {
    /// `resp_...`.
    pub id: String,
    /// Unix seconds.
    pub created_at: f64,
    /// The response object as the client got it.
    pub response: Value,
    /// The conversation up to and including this answer (without `instructions`,
    /// which a continuation does not inherit).
    pub conversation: Vec<Message>,
}

/// Why the store failed; the message names the backend and never a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("response store ({backend}): {message}")]
pub struct StoreError {
    backend: &'static str,
    message: String,
}

/// Where stored responses live.
pub struct ResponseStore {
    backend: Backend,
    retention: Duration,
}

enum Backend {
    Memory(Mutex<Memory>),
    Sqlite(Mutex<Connection>),
    Postgres(Mutex<postgres::Client>),
}

#[derive(Default)]
struct Memory {
    entries: HashMap<String, StoredResponse>,
    order: VecDeque<String>,
    max: usize,
}

const SQLITE_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    response TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_responses_created_at ON stored_responses (created_at);
";

const POSTGRES_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stored_responses (
    id TEXT PRIMARY KEY,
    created_at DOUBLE PRECISION NOT NULL,
    response TEXT NOT NULL,
    conversation TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS stored_responses_created_at ON stored_responses (created_at);
";

impl ResponseStore {
    /// The store beside the usage ledger `usage` names (in memory when usage is off or
    /// its database cannot be opened, which is logged).
    pub fn open(usage: &UsageConfig, config: &ResponsesConfig) -> ResponseStore {
        let retention = Duration::from_secs_f64(config.retention_hours.max(0.0) * 3600.0);
        let memory = || {
            Backend::Memory(Mutex::new(Memory {
                max: config.max_in_memory.max(1),
                ..Memory::default()
            }))
        };
        let backend = if !usage.enabled {
            memory()
        } else {
            let opened = match &usage.postgres {
                Some(url) => open_postgres(url),
                None => open_sqlite(usage),
            };
            opened.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored responses are kept in memory only");
                memory()
            })
        };
        ResponseStore { backend, retention }
    }

    /// Where responses are kept: `memory`, `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Sqlite(_) => "sqlite",
            Backend::Postgres(_) => "postgres",
        }
    }

    /// Keeps `stored` (replacing one with the same id) and forgets expired ones.
    pub fn put(&self, stored: &StoredResponse) -> Result<(), StoreError> {
        let cutoff = self.cutoff();
        let conversation =
            serde_json::to_string(&stored.conversation).map_err(|e| self.error(e.to_string()))?;
        let response = stored.response.to_string();
        match &self.backend {
            Backend::Memory(memory) => {
                let mut memory = lock(memory);
                memory.order.retain(|id| id != &stored.id);
                memory.order.push_back(stored.id.clone());
                memory.entries.insert(stored.id.clone(), stored.clone());
                while memory.order.len() > memory.max {
                    if let Some(oldest) = memory.order.pop_front() {
                        memory.entries.remove(&oldest);
                    }
                }
                memory.entries.retain(|_, s| s.created_at >= cutoff);
                Ok(())
            }
            Backend::Sqlite(db) => {
                let db = lock(db);
                db.execute(
                    "INSERT OR REPLACE INTO stored_responses (id, created_at, response, conversation) VALUES (?1, ?2, ?3, ?4)",
                    params![stored.id, stored.created_at, response, conversation],
                )
                .and_then(|_| {
                    db.execute(
                        "DELETE FROM stored_responses WHERE created_at < ?1",
                        params![cutoff],
                    )
                })
                .map(drop)
                .map_err(|e| self.error(e.to_string()))
            }
            Backend::Postgres(client) => {
                let mut client = lock(client);
                client
                    .execute(
                        "INSERT INTO stored_responses (id, created_at, response, conversation) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (id) DO UPDATE SET created_at = EXCLUDED.created_at, response = EXCLUDED.response, conversation = EXCLUDED.conversation",
                        &[&stored.id, &stored.created_at, &response, &conversation],
                    )
                    .and_then(|_| {
                        client.execute(
                            "DELETE FROM stored_responses WHERE created_at < $1",
                            &[&cutoff],
                        )
                    })
                    .map(drop)
                    .map_err(|e| self.error(e.to_string()))
            }
        }
    }

    /// The stored response `id`, unless it expired.
    pub fn get(&self, id: &str) -> Result<Option<StoredResponse>, StoreError> {
        let cutoff = self.cutoff();
        let row = match &self.backend {
            Backend::Memory(memory) => {
                return Ok(lock(memory)
                    .entries
                    .get(id)
                    .filter(|s| s.created_at >= cutoff)
                    .cloned())
            }
            Backend::Sqlite(db) => lock(db)
                .query_row(
                    "SELECT created_at, response, conversation FROM stored_responses WHERE id = ?1 AND created_at >= ?2",
                    params![id, cutoff],
                    |row| Ok((row.get::<_, f64>(0)?, row.get::<_, String>(1)?, row.get::<_, String>(2)?)),
                )
                .optional()
                .map_err(|e| self.error(e.to_string()))?,
            Backend::Postgres(client) => lock(client)
                .query_opt(
                    "SELECT created_at, response, conversation FROM stored_responses WHERE id = $1 AND created_at >= $2",
                    &[&id, &cutoff],
                )
                .map_err(|e| self.error(e.to_string()))?
                .map(|row| (row.get::<_, f64>(0), row.get::<_, String>(1), row.get::<_, String>(2))),
        };
        let Some((created_at, response, conversation)) = row else {
            return Ok(None);
        };
        Ok(Some(StoredResponse {
            id: id.to_owned(),
            created_at,
            response: serde_json::from_str(&response).map_err(|e| self.error(e.to_string()))?,
            conversation: serde_json::from_str(&conversation)
                .map_err(|e| self.error(e.to_string()))?,
        }))
    }

    /// Forgets `id`; whether it was there.
    pub fn delete(&self, id: &str) -> Result<bool, StoreError> {
        match &self.backend {
            Backend::Memory(memory) => {
                let mut memory = lock(memory);
                memory.order.retain(|i| i != id);
                Ok(memory.entries.remove(id).is_some())
            }
            Backend::Sqlite(db) => lock(db)
                .execute("DELETE FROM stored_responses WHERE id = ?1", params![id])
                .map(|n| n > 0)
                .map_err(|e| self.error(e.to_string())),
            Backend::Postgres(client) => lock(client)
                .execute("DELETE FROM stored_responses WHERE id = $1", &[&id])
                .map(|n| n > 0)
                .map_err(|e| self.error(e.to_string())),
        }
    }

    fn cutoff(&self) -> f64 {
        crate::usage::now_unix() - self.retention.as_secs_f64()
    }

    fn error(&self, message: String) -> StoreError {
        StoreError {
            backend: self.backend(),
            message,
        }
    }
}

impl Drop for ResponseStore {
    fn drop(&mut self) {
        // Closing a PostgreSQL client blocks on its own runtime, which panics inside an
        // async one: close it on a plain thread.
        let backend = std::mem::replace(&mut self.backend, Backend::Memory(Mutex::default()));
        if let Backend::Postgres(client) = backend {
            std::thread::scope(|s| {
                s.spawn(move || drop(client));
            });
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn open_sqlite(usage: &UsageConfig) -> Result<Backend, String> {
    let path = &usage.database;
    if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
    }
    let db = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The usage writer shares the file: wait for its short transactions, never fail.
    db.busy_timeout(Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    db.execute_batch(SQLITE_SCHEMA)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(Backend::Sqlite(Mutex::new(db)))
}

fn open_postgres(url: &str) -> Result<Backend, String> {
    // Connecting runs the client's own runtime: not from inside an async one.
    let url = url.to_owned();
    let connect = move || -> Result<postgres::Client, String> {
        let mut config = postgres::Config::from_str(&url)
            .map_err(|_| "usage.postgres is not a PostgreSQL connection URL".to_owned())?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        let mut client = config.connect(postgres::NoTls).map_err(|e| {
            format!(
                "cannot connect to the usage database: {}",
                e.code().map(|c| c.code()).unwrap_or("connection failed")
            )
        })?;
        client.batch_execute(POSTGRES_SCHEMA).map_err(|e| {
            format!(
                "cannot create the stored_responses table: {}",
                e.code().map(|c| c.code()).unwrap_or("error")
            )
        })?;
        Ok(client)
    };
    let client = if tokio::runtime::Handle::try_current().is_ok() {
        std::thread::scope(|s| s.spawn(connect).join().expect("connect does not panic"))
    } else {
        connect()
    }?;
    Ok(Backend::Postgres(Mutex::new(client)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn stored(id: &str, at: f64) -> StoredResponse {
        StoredResponse {
            id: id.to_owned(),
            created_at: at,
            response: json!({"id": id}),
            conversation: vec![Message::user("hi"), Message::assistant("hello")],
        }
    }

    fn stores() -> (tempfile::TempDir, Vec<ResponseStore>) {
        let dir = tempfile::tempdir().unwrap();
        let usage = UsageConfig {
            database: dir.path().join("usage.sqlite3"),
            ..UsageConfig::default()
        };
        let config = ResponsesConfig {
            retention_hours: 1.0,
            max_in_memory: 2,
        };
        let off = UsageConfig {
            enabled: false,
            ..usage.clone()
        };
        let both = vec![
            ResponseStore::open(&usage, &config),
            ResponseStore::open(&off, &config),
        ];
        assert_eq!(
            both.iter().map(ResponseStore::backend).collect::<Vec<_>>(),
            ["sqlite", "memory"]
        );
        (dir, both)
    }

    #[test]
    fn a_stored_response_comes_back_whole_until_deleted() {
        let (_dir, stores) = stores();
        let now = crate::usage::now_unix();
        for store in stores {
            store.put(&stored("resp_1", now)).unwrap();
            assert_eq!(store.get("resp_1").unwrap(), Some(stored("resp_1", now)));
            assert!(store.delete("resp_1").unwrap());
            assert_eq!(store.get("resp_1").unwrap(), None);
            assert!(!store.delete("resp_1").unwrap(), "{}", store.backend());
        }
    }

    #[test]
    fn responses_past_the_retention_are_not_returned() {
        let (_dir, stores) = stores();
        let two_hours_ago = crate::usage::now_unix() - 7200.0;
        for store in stores {
            store.put(&stored("resp_old", two_hours_ago)).unwrap();
            assert_eq!(store.get("resp_old").unwrap(), None, "{}", store.backend());
        }
    }

    #[test]
    fn memory_keeps_only_the_newest_up_to_its_bound() {
        let (_dir, stores) = stores();
        let memory = &stores[1];
        let now = crate::usage::now_unix();
        for id in ["a", "b", "c"] {
            memory.put(&stored(id, now)).unwrap();
        }
        assert_eq!(memory.get("a").unwrap(), None, "the oldest went first");
        assert!(memory.get("b").unwrap().is_some() && memory.get("c").unwrap().is_some());
    }
}
