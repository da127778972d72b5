//! Usage over time from the ledger (`/admin/usage/series`): calls, errors, tokens and
//! dollars per hour, day or month (UTC), by provider, model or client.
//!
//! The grouping is done by the database (one `GROUP BY`, the same in SQLite and
//! PostgreSQL), so the answer's size is bounded by buckets times keys, never by the
//! number of records. Buckets are calendar periods, as budgets use them.

use serde::Serialize;

use crate::config::Period;

/// The most buckets one query may span.
pub const MAX_BUCKETS: u64 = 1_000;
/// The most rows (bucket, key) one answer holds; past it the answer says `truncated`.
pub const MAX_ROWS: usize = 20_000;

/// What the rows are grouped by besides time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    /// The provider that answered (or failed last).
    Provider,
    /// `provider/model`, as `/admin/usage` names models.
    Model,
    /// The client key's name.
    Client,
}

/// A question for the ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesQuery {
    /// Bucket size.
    pub bucket: Period,
    /// Grouping.
    pub by: GroupBy,
    /// From (Unix seconds, rounded down to its bucket's start), inclusive.
    pub since: f64,
    /// To (Unix seconds), exclusive.
    pub until: f64,
}

/// A query parameter that cannot be used, with what to write instead.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SeriesError {
    /// `bucket` is not one of the three.
    #[error("bucket `{0}` is not known: write bucket=hour, bucket=day or bucket=month")]
    Bucket(String),
    /// `by` is not one of the three.
    #[error("by `{0}` is not known: write by=provider, by=model or by=client")]
    By(String),
    /// A time that is not a number of seconds.
    #[error("{name} `{value}` is not a time: write Unix seconds, e.g. {name}=1795352400")]
    Time {
        /// `since` or `until`.
        name: &'static str,
        /// What was given.
        value: String,
    },
    /// `since` is not before `until`.
    #[error("since ({since}) must be before until ({until})")]
    Empty {
        /// From.
        since: f64,
        /// To.
        until: f64,
    },
    /// The range spans too many buckets.
    #[error("the range spans {buckets} {bucket}s, more than {MAX_BUCKETS}: narrow since/until or use a larger bucket")]
    TooLong {
        /// How many.
        buckets: u64,
        /// Their size.
        bucket: &'static str,
    },
    /// Usage is not recorded in a ledger.
    #[error("usage history is kept only in a ledger: set `usage.enabled` (an SQLite file by default, or `usage.postgres`)")]
    NoLedger,
    /// The ledger could not be read.
    #[error("cannot read the usage ledger: {0}")]
    Unreadable(String),
}

impl SeriesQuery {
    /// Reads the query string's parameters (`bucket`, `by`, `since`, `until`), with
    /// defaults: hourly buckets of the last day by model, until `now`.
    pub fn parse(
        bucket: Option<&str>,
        by: Option<&str>,
        since: Option<&str>,
        until: Option<&str>,
        now: f64,
    ) -> Result<SeriesQuery, SeriesError> {
        let bucket = match bucket.unwrap_or("hour") {
            "hour" => Period::Hour,
            "day" => Period::Day,
            "month" => Period::Month,
            other => return Err(SeriesError::Bucket(other.to_owned())),
        };
        let by = match by.unwrap_or("model") {
            "provider" => GroupBy::Provider,
            "model" => GroupBy::Model,
            "client" => GroupBy::Client,
            other => return Err(SeriesError::By(other.to_owned())),
        };
        let time = |name: &'static str, value: Option<&str>| -> Result<Option<f64>, SeriesError> {
            value
                .map(|v| {
                    v.trim()
                        .parse::<f64>()
                        .ok()
                        .filter(|t| t.is_finite() && *t >= 0.0)
                        .ok_or_else(|| SeriesError::Time {
                            name,
                            value: v.chars().take(64).collect(),
                        })
                })
                .transpose()
        };
        let until = time("until", until)?.unwrap_or(now);
        let default_span = match bucket {
            Period::Hour => 86_400.0,
            Period::Day => 31.0 * 86_400.0,
            Period::Month => 366.0 * 86_400.0,
        };
        let since = time("since", since)?.unwrap_or((until - default_span).max(0.0));
        let since = super::period::start(bucket, since);
        if since >= until {
            return Err(SeriesError::Empty { since, until });
        }
        let query = SeriesQuery {
            bucket,
            by,
            since,
            until,
        };
        let buckets = query.buckets();
        if buckets > MAX_BUCKETS {
            return Err(SeriesError::TooLong {
                buckets,
                bucket: bucket_name(bucket),
            });
        }
        Ok(query)
    }

    /// How many buckets the range touches.
    fn buckets(&self) -> u64 {
        let span = self.until - self.since;
        match self.bucket {
            Period::Hour => (span / 3_600.0).ceil() as u64,
            Period::Day => (span / 86_400.0).ceil() as u64,
            // A month is at least 28 days: an upper bound is enough to refuse early.
            Period::Month => (span / (28.0 * 86_400.0)).ceil() as u64,
        }
    }

    /// The SQL that answers it, with `$1`/`?1` as since and `$2`/`?2` as until.
    pub(super) fn sql(&self, dialect: Dialect) -> String {
        let start = match (self.bucket, dialect) {
            (Period::Hour, Dialect::Sqlite) => "CAST(at / 3600 AS INTEGER) * 3600".to_owned(),
            (Period::Day, Dialect::Sqlite) => "CAST(at / 86400 AS INTEGER) * 86400".to_owned(),
            (Period::Month, Dialect::Sqlite) => {
                "CAST(strftime('%s', CAST(at AS INTEGER), 'unixepoch', 'start of month') AS INTEGER)"
                    .to_owned()
            }
            (Period::Hour, Dialect::Postgres) => "(floor(at / 3600) * 3600)::bigint".to_owned(),
            (Period::Day, Dialect::Postgres) => "(floor(at / 86400) * 86400)::bigint".to_owned(),
            (Period::Month, Dialect::Postgres) => {
                "extract(epoch from date_trunc('month', to_timestamp(at) AT TIME ZONE 'UTC'))::bigint"
                    .to_owned()
            }
        };
        let key = match self.by {
            GroupBy::Provider => "provider",
            GroupBy::Model => "provider || '/' || model",
            GroupBy::Client => "client",
        };
        let (p1, p2, int, float) = match dialect {
            Dialect::Sqlite => ("?1", "?2", "", ""),
            Dialect::Postgres => ("$1", "$2", "::bigint", "::float8"),
        };
        format!(
            "SELECT {start} AS bucket, {key} AS key, COUNT(*){int}, \
             COALESCE(SUM(CASE WHEN error_kind IS NULL THEN 0 ELSE 1 END), 0){int}, \
             COALESCE(SUM(prompt_tokens), 0){int}, COALESCE(SUM(completion_tokens), 0){int}, \
             COALESCE(SUM(cost_usd), 0.0){float} \
             FROM usage_records WHERE at >= {p1} AND at < {p2} \
             GROUP BY 1, 2 ORDER BY 1, 2 LIMIT {limit}",
            limit = MAX_ROWS + 1
        )
    }
}

/// The two SQL dialects of the ledgers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Dialect {
    Sqlite,
    Postgres,
}

fn bucket_name(period: Period) -> &'static str {
    match period {
        Period::Hour => "hour",
        Period::Day => "day",
        Period::Month => "month",
    }
}

/// One bucket of one key.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesRow {
    /// The bucket's start (Unix seconds, UTC).
    pub start: i64,
    /// The provider, `provider/model` or client; `null` for requests refused before
    /// they reached a provider (with `by=provider` or `by=model`).
    pub key: Option<String>,
    /// Requests.
    pub calls: i64,
    /// Requests that failed.
    pub errors: i64,
    /// Input tokens.
    pub prompt_tokens: i64,
    /// Output tokens.
    pub completion_tokens: i64,
    /// Dollars.
    pub cost_usd: f64,
}

/// `/admin/usage/series`'s answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Series {
    /// `hour`, `day` or `month`.
    pub bucket: &'static str,
    /// What `key` is.
    pub by: GroupBy,
    /// From (the start of the first bucket), Unix seconds.
    pub since: f64,
    /// To, exclusive.
    pub until: f64,
    /// Rows ordered by bucket, then key; buckets with no requests are absent.
    pub rows: Vec<SeriesRow>,
    /// Whether rows past [`MAX_ROWS`] were left out.
    pub truncated: bool,
}

impl Series {
    /// The answer to `query` from the rows a ledger returned (at most `MAX_ROWS + 1`).
    pub(super) fn of(query: &SeriesQuery, mut rows: Vec<SeriesRow>) -> Series {
        let truncated = rows.len() > MAX_ROWS;
        rows.truncate(MAX_ROWS);
        Series {
            bucket: bucket_name(query.bucket),
            by: query.by,
            since: query.since,
            until: query.until,
            rows,
            truncated,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_day_of_hours_by_model() {
        let q = SeriesQuery::parse(None, None, None, None, 1_795_355_110.0).unwrap();
        assert_eq!(q.bucket, Period::Hour);
        assert_eq!(q.by, GroupBy::Model);
        assert_eq!(q.until, 1_795_355_110.0);
        assert_eq!(q.since, 1_795_352_400.0 - 86_400.0, "rounded to the hour");
    }

    #[test]
    fn bad_parameters_say_what_to_write() {
        let e = |b, by, s, u| {
            SeriesQuery::parse(b, by, s, u, 1e9)
                .unwrap_err()
                .to_string()
        };
        assert!(e(Some("week"), None, None, None).contains("bucket=day"));
        assert!(e(None, Some("team"), None, None).contains("by=client"));
        assert!(e(None, None, Some("yesterday"), None).contains("Unix seconds"));
        assert!(e(None, None, Some("7200"), Some("3600")).contains("must be before"));
        assert!(e(Some("hour"), None, Some("0"), None).contains("more than 1000"));
    }
}
