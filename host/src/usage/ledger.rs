//! Where usage records are kept: an SQLite file beside the config by default, or a
//! PostgreSQL database that a fleet of hosts shares (`usage.postgres`).

use provider_sdk::{ErrorKind, Usage};
use rusqlite::{params, Connection};

use super::{
    postgres::PostgresLedger,
    series::{Dialect, Series, SeriesQuery, SeriesRow},
    UsageRecord,
};
use crate::config::UsageConfig;

/// What the ledger holds that the meter needs at start.
pub struct Loaded {
    /// When the summary was last reset (or the ledger created).
    pub reset_at: f64,
    /// Records since then.
    pub since_reset: Vec<UsageRecord>,
    /// Records of the current month, for budgets.
    pub this_month: Vec<UsageRecord>,
}

/// A usage ledger: the SQLite file, or the PostgreSQL database the config names.
pub enum Ledger {
    /// An SQLite file (`usage.database`).
    Sqlite(SqliteLedger),
    /// A PostgreSQL database (`usage.postgres`), possibly shared by several hosts
    /// (boxed: its client is large, and only one ledger exists per host).
    Postgres(Box<PostgresLedger>),
}

impl Ledger {
    /// Opens (creating its tables if needed) the ledger the config names: PostgreSQL
    /// when `usage.postgres` is set, else the SQLite file.
    pub fn open(config: &UsageConfig) -> Result<Ledger, String> {
        match &config.postgres {
            Some(url) => PostgresLedger::open(url).map(|l| Ledger::Postgres(Box::new(l))),
            None => SqliteLedger::open(config).map(Ledger::Sqlite),
        }
    }

    /// Reads what an existing SQLite ledger holds without writing to it (for a file
    /// that cannot be opened for writing at start: budgets keep their history).
    pub fn load_read_only(config: &UsageConfig, month_start: f64) -> Result<Loaded, String> {
        if config.postgres.is_some() {
            return Err("a PostgreSQL ledger that cannot be opened cannot be read".to_owned());
        }
        let path = &config.database;
        let db = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        SqliteLedger {
            db,
            path: path.clone(),
            inode: None,
        }
        .load(month_start)
    }

    /// Appends records in one transaction. An SQLite file that was deleted or replaced
    /// since it was opened is opened (created) again first: writing on into an
    /// unlinked file would lose every record without an error.
    pub fn append(&mut self, records: &[UsageRecord], config: &UsageConfig) -> Result<(), String> {
        if let Ledger::Sqlite(l) = self {
            if l.vanished() {
                tracing::warn!(path = %l.path.display(), "the usage ledger file was deleted or replaced; opening it again");
                let created = !l.path.exists();
                // The deleted file can still be read through the open connection: the
                // new one continues its summary period rather than starting one now,
                // after the records that wait for it.
                let reset_at = l.reset_at().ok();
                *l = SqliteLedger::open(config)?;
                if let (true, Some(at)) = (created, reset_at) {
                    l.reset(at)?;
                }
            }
        }
        match self {
            Ledger::Sqlite(l) => l.append(records),
            Ledger::Postgres(l) => l.append(records),
        }
    }

    /// Marks `at` as the start of the summary.
    pub fn reset(&mut self, at: f64) -> Result<(), String> {
        match self {
            Ledger::Sqlite(l) => l.reset(at),
            Ledger::Postgres(l) => l.reset(at),
        }
    }

    /// Records since the last reset, and since `month_start`.
    pub fn load(&mut self, month_start: f64) -> Result<Loaded, String> {
        match self {
            Ledger::Sqlite(l) => l.load(month_start),
            Ledger::Postgres(l) => l.load(month_start),
        }
    }

    /// Usage over time, grouped as `query` asks.
    pub fn series(&mut self, query: &SeriesQuery) -> Result<Series, String> {
        let rows = match self {
            Ledger::Sqlite(l) => l.series(query),
            Ledger::Postgres(l) => l.series(query),
        }?;
        Ok(Series::of(query, rows))
    }
}

/// The SQLite ledger.
pub struct SqliteLedger {
    db: Connection,
    path: std::path::PathBuf,
    /// The file's inode when it was opened, to notice it being deleted or replaced.
    inode: Option<u64>,
}

/// How long a write waits for another process's lock on the file before failing (and
/// being retried with the next batch).
const BUSY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn inode(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_records (
    id INTEGER PRIMARY KEY,
    at REAL NOT NULL,
    request_id TEXT NOT NULL,
    client TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    fallback_index INTEGER,
    attempts INTEGER NOT NULL,
    status INTEGER NOT NULL,
    error_kind TEXT,
    stream INTEGER NOT NULL,
    cancelled INTEGER NOT NULL,
    latency_ms REAL NOT NULL,
    ttft_ms REAL,
    overhead_ms REAL NOT NULL,
    prompt_tokens INTEGER,
    completion_tokens INTEGER,
    cached_prompt_tokens INTEGER,
    cache_write_tokens INTEGER,
    reasoning_tokens INTEGER,
    cost_usd REAL,
    cache_hit INTEGER NOT NULL DEFAULT 0,
    saved_usd REAL
);
CREATE INDEX IF NOT EXISTS usage_records_at ON usage_records (at);
CREATE TABLE IF NOT EXISTS usage_meta (key TEXT PRIMARY KEY, value REAL NOT NULL);
";

/// The record columns, in the order both ledgers write and read them.
pub(super) const COLUMNS: &str = "at, request_id, client, provider, model, fallback_index, attempts, status, error_kind, stream, cancelled, latency_ms, ttft_ms, overhead_ms, prompt_tokens, completion_tokens, cached_prompt_tokens, cache_write_tokens, reasoning_tokens, cost_usd, cache_hit, saved_usd";

/// Columns added after the first schema, with their definitions: a ledger written by
/// an older host gains them at open (its rows read as not cached, nothing saved).
const ADDED_COLUMNS: [(&str, &str); 2] = [
    ("cache_hit", "INTEGER NOT NULL DEFAULT 0"),
    ("saved_usd", "REAL"),
];

/// Adds the [`ADDED_COLUMNS`] a ledger file from an older host lacks.
fn add_columns(db: &Connection) -> rusqlite::Result<()> {
    let mut query = db.prepare("SELECT name FROM pragma_table_info('usage_records')")?;
    let present: Vec<String> = query
        .query_map([], |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    for (name, definition) in ADDED_COLUMNS {
        if !present.iter().any(|p| p == name) {
            db.execute_batch(&format!(
                "ALTER TABLE usage_records ADD COLUMN {name} {definition}"
            ))?;
        }
    }
    Ok(())
}

impl SqliteLedger {
    /// Opens (creating if needed) the SQLite file the config names.
    fn open(config: &UsageConfig) -> Result<SqliteLedger, String> {
        let path = &config.database;
        if let Some(folder) = path.parent().filter(|f| !f.as_os_str().is_empty()) {
            std::fs::create_dir_all(folder).map_err(|e| format!("{}: {e}", folder.display()))?;
        }
        let db = Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        db.busy_timeout(BUSY_TIMEOUT).map_err(|e| e.to_string())?;
        // WAL lets readers (a reporting tool, `sqlite3`) look while the host writes.
        db.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| e.to_string())?;
        db.pragma_update(None, "synchronous", "NORMAL")
            .map_err(|e| e.to_string())?;
        db.execute_batch(SCHEMA)
            .map_err(|e| format!("{}: {e}", path.display()))?;
        add_columns(&db).map_err(|e| format!("{}: {e}", path.display()))?;
        db.execute(
            "INSERT OR IGNORE INTO usage_meta (key, value) VALUES ('reset_at', ?1)",
            params![super::now_unix()],
        )
        .map_err(|e| e.to_string())?;
        Ok(SqliteLedger {
            db,
            path: path.clone(),
            inode: inode(path),
        })
    }

    /// Whether the file at the ledger's path is gone or another file.
    fn vanished(&self) -> bool {
        inode(&self.path) != self.inode
    }

    /// Appends records in one transaction.
    fn append(&mut self, records: &[UsageRecord]) -> Result<(), String> {
        let tx = self.db.transaction().map_err(|e| e.to_string())?;
        {
            let sql = format!("INSERT INTO usage_records ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22)");
            let mut insert = tx.prepare_cached(&sql).map_err(|e| e.to_string())?;
            for r in records {
                let u = r.usage.as_ref();
                insert
                    .execute(params![
                        r.at,
                        r.request_id,
                        r.client,
                        r.provider,
                        r.model,
                        r.fallback_index.map(|i| i as i64),
                        r.attempts,
                        r.status,
                        r.error_kind.map(|k| k.as_str()),
                        r.stream,
                        r.cancelled,
                        r.latency_ms,
                        r.ttft_ms,
                        r.overhead_ms,
                        u.map(|u| u.prompt_tokens as i64),
                        u.map(|u| u.completion_tokens as i64),
                        u.map(|u| u.cached_prompt_tokens as i64),
                        u.map(|u| u.cache_write_tokens as i64),
                        u.map(|u| u.reasoning_tokens as i64),
                        r.cost_usd,
                        r.cache_hit,
                        r.saved_usd,
                    ])
                    .map_err(|e| e.to_string())?;
            }
        }
        tx.commit().map_err(|e| e.to_string())
    }

    /// Marks `at` as the start of the summary.
    fn reset(&mut self, at: f64) -> Result<(), String> {
        self.db
            .execute(
                "INSERT OR REPLACE INTO usage_meta (key, value) VALUES ('reset_at', ?1)",
                params![at],
            )
            .map(drop)
            .map_err(|e| e.to_string())
    }

    /// When the summary was last reset.
    fn reset_at(&self) -> Result<f64, String> {
        self.db
            .query_row(
                "SELECT value FROM usage_meta WHERE key = 'reset_at'",
                [],
                |row| row.get(0),
            )
            .map_err(|e| e.to_string())
    }

    /// Records since the last reset, and since `month_start`.
    fn load(&mut self, month_start: f64) -> Result<Loaded, String> {
        let reset_at = self.reset_at()?;
        Ok(Loaded {
            reset_at,
            since_reset: self.records_since(reset_at)?,
            this_month: self.records_since(month_start)?,
        })
    }

    fn series(&self, query: &SeriesQuery) -> Result<Vec<SeriesRow>, String> {
        let mut statement = self
            .db
            .prepare(&query.sql(Dialect::Sqlite))
            .map_err(|e| e.to_string())?;
        let rows = statement
            .query_map(params![query.since, query.until], |row| {
                Ok(SeriesRow {
                    start: row.get(0)?,
                    key: row.get(1)?,
                    calls: row.get(2)?,
                    errors: row.get(3)?,
                    prompt_tokens: row.get(4)?,
                    completion_tokens: row.get(5)?,
                    cost_usd: row.get(6)?,
                })
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }

    fn records_since(&self, since: f64) -> Result<Vec<UsageRecord>, String> {
        let sql = format!("SELECT {COLUMNS} FROM usage_records WHERE at >= ?1 ORDER BY id");
        let mut query = self.db.prepare(&sql).map_err(|e| e.to_string())?;
        let rows = query
            .query_map(params![since], |row| {
                let tokens: Option<i64> = row.get(14)?;
                let usage = match tokens {
                    None => None,
                    Some(prompt) => Some(Usage {
                        prompt_tokens: prompt as u64,
                        completion_tokens: row.get::<_, i64>(15)? as u64,
                        cached_prompt_tokens: row.get::<_, i64>(16)? as u64,
                        cache_write_tokens: row.get::<_, i64>(17)? as u64,
                        reasoning_tokens: row.get::<_, i64>(18)? as u64,
                    }),
                };
                let kind: Option<String> = row.get(8)?;
                Ok(UsageRecord {
                    at: row.get(0)?,
                    request_id: row.get(1)?,
                    client: row.get(2)?,
                    provider: row.get(3)?,
                    model: row.get(4)?,
                    fallback_index: row.get::<_, Option<i64>>(5)?.map(|i| i as usize),
                    attempts: row.get(6)?,
                    status: row.get(7)?,
                    error_kind: kind.as_deref().and_then(ErrorKind::parse),
                    stream: row.get(9)?,
                    cancelled: row.get(10)?,
                    latency_ms: row.get(11)?,
                    ttft_ms: row.get(12)?,
                    overhead_ms: row.get(13)?,
                    usage,
                    cost_usd: row.get(19)?,
                    cache_hit: row.get(20)?,
                    saved_usd: row.get(21)?,
                })
            })
            .map_err(|e| e.to_string())?;
        rows.collect::<Result<_, _>>().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ledger_written_before_the_cache_columns_gains_them_and_keeps_its_rows() {
        let folder = tempfile::tempdir().unwrap();
        let path = folder.path().join("usage.sqlite3");
        {
            // The first schema, as hosts before the response cache wrote it.
            let old = SCHEMA.replace(
                ",\n    cache_hit INTEGER NOT NULL DEFAULT 0,\n    saved_usd REAL",
                "",
            );
            assert!(!old.contains("cache_hit"), "{old}");
            let db = Connection::open(&path).unwrap();
            db.execute_batch(&old).unwrap();
            db.execute(
                "INSERT INTO usage_records (at, request_id, client, attempts, status, stream, cancelled, latency_ms, overhead_ms) VALUES (5.0, 'old', 'team-a', 1, 200, 0, 0, 1.0, 0.5)",
                [],
            )
            .unwrap();
            db.execute(
                "INSERT INTO usage_meta (key, value) VALUES ('reset_at', 0.0)",
                [],
            )
            .unwrap();
        }
        let config = UsageConfig {
            database: path,
            ..UsageConfig::default()
        };
        let mut ledger = Ledger::open(&config).expect("the old file opens");
        let loaded = ledger.load(0.0).unwrap();
        assert_eq!(loaded.since_reset.len(), 1);
        let old = &loaded.since_reset[0];
        assert_eq!(old.request_id, "old");
        assert!(!old.cache_hit && old.saved_usd.is_none());

        let hit = UsageRecord {
            request_id: "hit".into(),
            cache_hit: true,
            saved_usd: Some(0.25),
            ..old.clone()
        };
        ledger.append(&[hit], &config).unwrap();
        let loaded = ledger.load(0.0).unwrap();
        let hit = &loaded.since_reset[1];
        assert_eq!((hit.cache_hit, hit.saved_usd), (true, Some(0.25)));
    }
}
