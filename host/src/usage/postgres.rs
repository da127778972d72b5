//! The usage ledger in PostgreSQL (`usage.postgres`): the SQLite ledger's tables and
//! semantics in a database that a fleet of hosts can share. Each host appends its own
//! records; at start, each loads every host's records since the shared reset mark.
//!
//! The `postgres` client is synchronous, as the writer thread is: each connection
//! drives its own small runtime, apart from the host's. That runtime cannot block on a
//! thread of another runtime, and the ledger is opened and loaded from wherever the
//! host is built (often inside one), so every call here runs on a plain thread.
//!
//! The URL's password never appears in a message: it is masked in the URL shown, and
//! any error text that would quote it is scrubbed.

use std::{str::FromStr, time::Duration};

use postgres::{config::SslMode, fallible_iterator::FallibleIterator, Client, Config, NoTls, Row};
use provider_sdk::{ErrorKind, Usage};

use super::{
    ledger::{Loaded, COLUMNS},
    series::{Dialect, SeriesQuery, SeriesRow},
    UsageRecord,
};

/// Types as in SQLite, made explicit: every integer is a BIGINT (an i64, as SQLite
/// stores it), every real a DOUBLE PRECISION (an f64, sent and read in binary: values
/// come back bit for bit).
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS usage_records (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    request_id TEXT NOT NULL,
    client TEXT NOT NULL,
    provider TEXT,
    model TEXT,
    fallback_index BIGINT,
    attempts BIGINT NOT NULL,
    status BIGINT NOT NULL,
    error_kind TEXT,
    stream BOOLEAN NOT NULL,
    cancelled BOOLEAN NOT NULL,
    latency_ms DOUBLE PRECISION NOT NULL,
    ttft_ms DOUBLE PRECISION,
    overhead_ms DOUBLE PRECISION NOT NULL,
    prompt_tokens BIGINT,
    completion_tokens BIGINT,
    cached_prompt_tokens BIGINT,
    cache_write_tokens BIGINT,
    reasoning_tokens BIGINT,
    cost_usd DOUBLE PRECISION,
    cache_hit BOOLEAN NOT NULL DEFAULT false,
    saved_usd DOUBLE PRECISION
);
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS cache_hit BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE usage_records ADD COLUMN IF NOT EXISTS saved_usd DOUBLE PRECISION;
CREATE INDEX IF NOT EXISTS usage_records_at ON usage_records (at);
CREATE TABLE IF NOT EXISTS usage_meta (key TEXT PRIMARY KEY, value DOUBLE PRECISION NOT NULL);
";

/// Hosts starting together would race in `CREATE TABLE IF NOT EXISTS` (it is not safe
/// against a concurrent creator): each takes this transaction-scoped advisory lock first.
const SCHEMA_LOCK: i64 = 0x7573_6167_655f_6c67; // "usage_lg"

/// A whole batch in one statement (one round trip, one transaction): one array per
/// column, zipped by `unnest` and inserted in the batch's order.
fn insert_sql() -> String {
    let types = [
        "float8", "text", "text", "text", "text", "int8", "int8", "int8", "text", "bool", "bool",
        "float8", "float8", "float8", "int8", "int8", "int8", "int8", "int8", "float8", "bool",
        "float8",
    ];
    let arrays: Vec<String> = types
        .iter()
        .enumerate()
        .map(|(i, t)| format!("${}::{t}[]", i + 1))
        .collect();
    let names: Vec<String> = (1..=types.len()).map(|i| format!("c{i}")).collect();
    format!(
        "INSERT INTO usage_records ({COLUMNS}) SELECT {names} FROM unnest({arrays}) WITH ORDINALITY AS batch({names}, n) ORDER BY n",
        names = names.join(", "),
        arrays = arrays.join(", "),
    )
}

/// The PostgreSQL ledger.
pub struct PostgresLedger {
    config: Config,
    /// `None` after the connection was lost and could not be made again.
    client: Option<Client>,
    secret: Secret,
}

impl PostgresLedger {
    /// Connects to the database `url` names and creates the tables it lacks.
    pub(super) fn open(url: &str) -> Result<PostgresLedger, String> {
        let secret = Secret::of(url);
        let mut config = Config::from_str(url)
            .map_err(|e| secret.error("not a PostgreSQL connection URL", e))?;
        if config.get_ssl_mode() == SslMode::Require {
            return Err(secret.error(
                "cannot connect",
                "sslmode=require, but this build connects without TLS (use a trusted network or a tunnel, and sslmode=prefer or disable)",
            ));
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("provider-host");
        }
        // The server's notices ("relation ... already exists, skipping") are not news.
        config.notice_callback(|notice| {
            tracing::debug!(
                severity = notice.severity(),
                message = notice.message(),
                "PostgreSQL notice"
            );
        });
        let mut ledger = PostgresLedger {
            config,
            client: None,
            secret,
        };
        off_runtime(|| {
            let client = ledger.client()?;
            create_schema(client).map_err(|e| ledger.secret.error("cannot create the tables", e))
        })?;
        Ok(ledger)
    }

    /// Appends records in one transaction.
    pub(super) fn append(&mut self, records: &[UsageRecord]) -> Result<(), String> {
        if records.is_empty() {
            return Ok(());
        }
        off_runtime(|| {
            let client = self.client()?;
            append(client, records).map_err(|e| self.secret.error("cannot append", e))
        })
    }

    /// Marks `at` as the start of the summary (for every host sharing the database).
    pub(super) fn reset(&mut self, at: f64) -> Result<(), String> {
        off_runtime(|| {
            let client = self.client()?;
            client
                .execute(
                    "INSERT INTO usage_meta (key, value) VALUES ('reset_at', $1) \
                     ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
                    &[&at],
                )
                .map(drop)
                .map_err(|e| self.secret.error("cannot record the reset", e))
        })
    }

    /// Records since the last reset, and since `month_start`, read from one snapshot.
    pub(super) fn load(&mut self, month_start: f64) -> Result<Loaded, String> {
        off_runtime(|| {
            let client = self.client()?;
            load(client, month_start).map_err(|e| self.secret.error("cannot read", e))
        })
    }

    /// Usage over time, grouped as `query` asks.
    pub(super) fn series(&mut self, query: &SeriesQuery) -> Result<Vec<SeriesRow>, String> {
        off_runtime(|| {
            let client = self.client()?;
            let rows = client
                .query(&query.sql(Dialect::Postgres), &[&query.since, &query.until])
                .map_err(|e| self.secret.error("cannot read", e))?;
            let row = |row: &Row| -> Result<SeriesRow, postgres::Error> {
                Ok(SeriesRow {
                    start: row.try_get(0)?,
                    key: row.try_get(1)?,
                    calls: row.try_get(2)?,
                    errors: row.try_get(3)?,
                    prompt_tokens: row.try_get(4)?,
                    completion_tokens: row.try_get(5)?,
                    cost_usd: row.try_get(6)?,
                })
            };
            rows.iter()
                .map(row)
                .collect::<Result<_, _>>()
                .map_err(|e| self.secret.error("cannot read", e))
        })
    }

    /// The connection, made again if the server closed it (a restart, an administrator,
    /// an idle timeout) since the last call.
    fn client(&mut self) -> Result<&mut Client, String> {
        // Reading what arrived while idle shows a connection the server closed, so that a
        // batch is not sent to it and lost. The wait (1 ms, spent only when the connection
        // is fine) lets the client's runtime see the socket's news.
        let lost = |client: &mut Client| {
            client.is_closed()
                || client
                    .notifications()
                    .timeout_iter(Duration::from_millis(1))
                    .next()
                    .is_err()
        };
        if self.client.as_mut().is_some_and(lost) {
            tracing::info!(ledger = %self.secret.shown, "the usage ledger's connection was lost; reconnecting");
            self.client = None;
        }
        if self.client.is_none() {
            let client = self
                .config
                .connect(NoTls)
                .map_err(|e| self.secret.error("cannot connect", e))?;
            self.client = Some(client);
        }
        Ok(self.client.as_mut().expect("connected above"))
    }
}

impl Drop for PostgresLedger {
    fn drop(&mut self) {
        // Closing blocks on the connection's own runtime.
        if let Some(client) = self.client.take() {
            off_runtime(move || drop(client));
        }
    }
}

/// Runs `f` on a plain thread when the caller is inside an async runtime, in place
/// otherwise (the writer thread).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| match s.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

fn create_schema(client: &mut Client) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])?;
    tx.batch_execute(SCHEMA)?;
    // Created once, by the first host; a restart or another host keeps it.
    tx.execute(
        "INSERT INTO usage_meta (key, value) VALUES ('reset_at', $1) ON CONFLICT (key) DO NOTHING",
        &[&super::now_unix()],
    )?;
    tx.commit()
}

fn append(client: &mut Client, records: &[UsageRecord]) -> Result<(), postgres::Error> {
    fn column<'a, T>(records: &'a [UsageRecord], f: impl Fn(&'a UsageRecord) -> T) -> Vec<T> {
        records.iter().map(f).collect()
    }
    let tokens =
        |f: fn(&Usage) -> u64| column(records, move |r| r.usage.as_ref().map(|u| f(u) as i64));
    let at = column(records, |r| r.at);
    let request_id = column(records, |r| r.request_id.as_str());
    let client_name = column(records, |r| r.client.as_str());
    let provider = column(records, |r| r.provider.as_deref());
    let model = column(records, |r| r.model.as_deref());
    let fallback_index = column(records, |r| r.fallback_index.map(|i| i as i64));
    let attempts = column(records, |r| i64::from(r.attempts));
    let status = column(records, |r| i64::from(r.status));
    let error_kind = column(records, |r| r.error_kind.map(|k| k.as_str()));
    let stream = column(records, |r| r.stream);
    let cancelled = column(records, |r| r.cancelled);
    let latency_ms = column(records, |r| r.latency_ms);
    let ttft_ms = column(records, |r| r.ttft_ms);
    let overhead_ms = column(records, |r| r.overhead_ms);
    let prompt = tokens(|u| u.prompt_tokens);
    let completion = tokens(|u| u.completion_tokens);
    let cached = tokens(|u| u.cached_prompt_tokens);
    let cache_write = tokens(|u| u.cache_write_tokens);
    let reasoning = tokens(|u| u.reasoning_tokens);
    let cost_usd = column(records, |r| r.cost_usd);
    let cache_hit = column(records, |r| r.cache_hit);
    let saved_usd = column(records, |r| r.saved_usd);
    client
        .execute(
            &insert_sql(),
            &[
                &at,
                &request_id,
                &client_name,
                &provider,
                &model,
                &fallback_index,
                &attempts,
                &status,
                &error_kind,
                &stream,
                &cancelled,
                &latency_ms,
                &ttft_ms,
                &overhead_ms,
                &prompt,
                &completion,
                &cached,
                &cache_write,
                &reasoning,
                &cost_usd,
                &cache_hit,
                &saved_usd,
            ],
        )
        .map(drop)
}

fn load(client: &mut Client, month_start: f64) -> Result<Loaded, postgres::Error> {
    let mut tx = client
        .build_transaction()
        .isolation_level(postgres::IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()?;
    let reset_at: f64 = tx
        .query_one("SELECT value FROM usage_meta WHERE key = 'reset_at'", &[])?
        .try_get(0)?;
    let sql = format!("SELECT {COLUMNS} FROM usage_records WHERE at >= $1 ORDER BY id");
    let since =
        |tx: &mut postgres::Transaction, since: f64| -> Result<Vec<UsageRecord>, postgres::Error> {
            tx.query(&sql, &[&since])?.iter().map(record).collect()
        };
    let since_reset = since(&mut tx, reset_at)?;
    let this_month = since(&mut tx, month_start)?;
    tx.commit()?;
    Ok(Loaded {
        reset_at,
        since_reset,
        this_month,
    })
}

fn record(row: &Row) -> Result<UsageRecord, postgres::Error> {
    let usage = match row.try_get::<_, Option<i64>>(14)? {
        None => None,
        Some(prompt) => Some(Usage {
            prompt_tokens: prompt as u64,
            completion_tokens: row.try_get::<_, i64>(15)? as u64,
            cached_prompt_tokens: row.try_get::<_, i64>(16)? as u64,
            cache_write_tokens: row.try_get::<_, i64>(17)? as u64,
            reasoning_tokens: row.try_get::<_, i64>(18)? as u64,
        }),
    };
    let kind: Option<String> = row.try_get(8)?;
    Ok(UsageRecord {
        at: row.try_get(0)?,
        request_id: row.try_get(1)?,
        client: row.try_get(2)?,
        provider: row.try_get(3)?,
        model: row.try_get(4)?,
        fallback_index: row.try_get::<_, Option<i64>>(5)?.map(|i| i as usize),
        attempts: row.try_get::<_, i64>(6)? as u32,
        status: row.try_get::<_, i64>(7)? as u16,
        error_kind: kind.as_deref().and_then(ErrorKind::parse),
        stream: row.try_get(9)?,
        cancelled: row.try_get(10)?,
        latency_ms: row.try_get(11)?,
        ttft_ms: row.try_get(12)?,
        overhead_ms: row.try_get(13)?,
        usage,
        cost_usd: row.try_get(19)?,
        cache_hit: row.try_get(20)?,
        saved_usd: row.try_get(21)?,
    })
}

/// The URL as it may be shown, and the password strings no message may contain.
struct Secret {
    shown: String,
    passwords: Vec<String>,
}

impl Secret {
    fn of(url: &str) -> Secret {
        let (shown, mut passwords) = redact(url);
        // As the server receives it: percent-decoded.
        if let Ok(config) = Config::from_str(url) {
            if let Some(password) = config.get_password() {
                passwords.push(String::from_utf8_lossy(password).into_owned());
            }
        }
        passwords.retain(|p| !p.is_empty());
        // The longest first, so that a password inside another leaves nothing behind.
        passwords.sort_by_key(|p| std::cmp::Reverse(p.len()));
        Secret { shown, passwords }
    }

    /// `<url, password masked>: <what>: <error>`, scrubbed of the password.
    fn error(&self, what: &str, e: impl std::fmt::Display) -> String {
        let mut message = format!("{}: {what}: {e}", self.shown);
        for password in &self.passwords {
            message = message.replace(password.as_str(), "***");
        }
        message
    }
}

/// The URL with its passwords replaced by `***`, and the passwords as written: the
/// one in `scheme://user:password@host` (up to the first `@`, as the client reads it)
/// and any `password=` parameter (in a URL's query or a `key=value` string).
fn redact(url: &str) -> (String, Vec<String>) {
    let mut shown = url.to_owned();
    let mut passwords = Vec::new();
    if let Some(scheme) = shown.find("://") {
        let start = scheme + 3;
        if let Some(at) = shown[start..].find('@') {
            if let Some(colon) = shown[start..start + at].find(':') {
                let range = start + colon + 1..start + at;
                passwords.push(shown[range.clone()].to_owned());
                shown.replace_range(range, "***");
            }
        }
    }
    let mut from = 0;
    while let Some(found) = shown[from..].find("password") {
        let key_end = from + found + "password".len();
        let preceded = shown[..from + found]
            .chars()
            .next_back()
            .is_none_or(|c| matches!(c, '?' | '&' | ' ' | '\t' | '\n'));
        let rest = &shown[key_end..];
        let value_start = key_end + (rest.len() - rest.trim_start().len());
        if !preceded || !shown[value_start..].starts_with('=') {
            from = key_end;
            continue;
        }
        let value_start = value_start + 1;
        let value_start =
            value_start + (shown[value_start..].len() - shown[value_start..].trim_start().len());
        let value = &shown[value_start..];
        let len = if let Some(quoted) = value.strip_prefix('\'') {
            // 'a \' b': up to the first quote not escaped by a backslash.
            let mut escaped = false;
            quoted
                .char_indices()
                .find(|&(_, c)| {
                    let end = c == '\'' && !escaped;
                    escaped = c == '\\' && !escaped;
                    end
                })
                .map_or(value.len(), |(i, _)| i + 2)
        } else {
            value
                .find(|c: char| c == '&' || c.is_whitespace())
                .unwrap_or(value.len())
        };
        if len > 0 {
            let written = value[..len].to_owned();
            let inner = written.trim_matches('\'').to_owned();
            passwords.push(written);
            passwords.push(inner);
            shown.replace_range(value_start..value_start + len, "***");
            from = value_start + 3;
        } else {
            from = value_start;
        }
    }
    (shown, passwords)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_in_every_form_of_url() {
        let cases = [
            (
                "postgres://ledger:s3cret@db.internal:5432/usage",
                "postgres://ledger:***@db.internal:5432/usage",
            ),
            (
                "postgresql://ledger:p%40ss/w:rd@h1,h2/usage?sslmode=disable",
                "postgresql://ledger:***@h1,h2/usage?sslmode=disable",
            ),
            (
                "postgres://ledger@db/usage?sslmode=disable&password=s3cret&application_name=x",
                "postgres://ledger@db/usage?sslmode=disable&password=***&application_name=x",
            ),
            (
                "host=db user=ledger password = 'se cr\\'et' dbname=usage",
                "host=db user=ledger password = *** dbname=usage",
            ),
            ("host=db password=s3cret", "host=db password=***"),
            (
                "postgres://ledger@db/usage?mypassword=visible",
                "postgres://ledger@db/usage?mypassword=visible",
            ),
            ("postgres://db/usage", "postgres://db/usage"),
        ];
        for (url, shown) in cases {
            assert_eq!(redact(url).0, shown, "{url}");
        }
    }

    #[test]
    fn error_messages_are_scrubbed_of_the_decoded_password_too() {
        let secret = Secret::of("postgres://ledger:p%40ss@db/usage");
        let message = secret.error("cannot connect", "the server said p@ss and p%40ss");
        assert_eq!(
            message,
            "postgres://ledger:***@db/usage: cannot connect: the server said *** and ***"
        );
    }

    #[test]
    fn a_url_that_does_not_parse_is_refused_without_its_password() {
        let error = PostgresLedger::open("postgres://ledger:s3cret@db:notaport/usage")
            .err()
            .expect("a bad port is refused");
        assert!(
            error.starts_with("postgres://ledger:***@db:notaport/usage: "),
            "{error}"
        );
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn sslmode_require_is_refused_with_a_reason() {
        let error = PostgresLedger::open("postgres://ledger:s3cret@db/usage?sslmode=require")
            .err()
            .expect("refused");
        assert!(error.contains("without TLS"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn the_batch_insert_names_every_column_once() {
        let sql = insert_sql();
        assert!(
            sql.contains("$22::float8[]") && !sql.contains("$23"),
            "{sql}"
        );
        assert_eq!(COLUMNS.split(", ").count(), 22);
    }
}
