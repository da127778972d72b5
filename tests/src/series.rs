//! `/admin/usage/series` against buckets computed by hand, the same for every ledger
//! (tests/tests/usage_series.rs runs it on SQLite, tests/tests/usage_postgres.rs on
//! PostgreSQL): five records at chosen times around a month boundary, grouped by hour,
//! day and month, by provider, model and client.

use provider_host::usage::UsageRecord;
use provider_sdk::{ErrorKind, Usage};
use serde_json::{json, Value};

use crate::Server;

/// 2026-12-01T00:00:00Z.
pub const DECEMBER: f64 = 1_796_083_200.0;
/// 2026-11-01T00:00:00Z.
pub const NOVEMBER: f64 = 1_793_491_200.0;

fn record(
    at: f64,
    client: &str,
    target: Option<(&str, &str)>,
    tokens: (u64, u64),
    cost: Option<f64>,
) -> UsageRecord {
    UsageRecord {
        at,
        request_id: format!("req-{at}"),
        client: client.to_owned(),
        provider: target.map(|t| t.0.to_owned()),
        model: target.map(|t| t.1.to_owned()),
        fallback_index: target.map(|_| 0),
        attempts: 1,
        status: if cost.is_some() { 200 } else { 429 },
        error_kind: if cost.is_some() {
            None
        } else {
            Some(ErrorKind::RateLimited)
        },
        stream: false,
        cancelled: false,
        latency_ms: 10.0,
        ttft_ms: None,
        overhead_ms: 1.0,
        usage: cost.map(|_| Usage {
            prompt_tokens: tokens.0,
            completion_tokens: tokens.1,
            ..Usage::default()
        }),
        cost_usd: cost,
        cache_hit: false,
        saved_usd: None,
    }
}

/// The records: two in the last half hour of November, three on 1 December.
pub fn records() -> Vec<UsageRecord> {
    vec![
        // 2026-11-30T23:30:00Z
        record(
            DECEMBER - 1_800.0,
            "team-a",
            Some(("mock", "echo")),
            (10, 20),
            Some(0.25),
        ),
        // 2026-11-30T23:59:59.5Z: still November, still the 23:00 hour
        record(
            DECEMBER - 0.5,
            "team-b",
            Some(("mock", "echo")),
            (1, 2),
            Some(0.125),
        ),
        // 2026-12-01T00:00:00Z exactly: the next hour, day and month
        record(
            DECEMBER,
            "team-a",
            Some(("other", "big")),
            (100, 200),
            Some(1.5),
        ),
        // 2026-12-01T00:45:00Z: a failure, no tokens, no cost
        record(
            DECEMBER + 2_700.0,
            "team-a",
            Some(("mock", "echo")),
            (0, 0),
            None,
        ),
        // 2026-12-01T02:10:00Z
        record(
            DECEMBER + 7_800.0,
            "team-b",
            Some(("mock", "echo")),
            (5, 5),
            Some(0.5),
        ),
    ]
}

/// One expected row: (start, key, calls, errors, prompt, completion, cost).
type Row = (f64, &'static str, i64, i64, i64, i64, f64);

fn rows(expected: &[Row]) -> Value {
    json!(expected
        .iter()
        .map(
            |(start, key, calls, errors, prompt, completion, cost)| json!({
                "start": *start as i64, "key": key, "calls": calls, "errors": errors,
                "prompt_tokens": prompt, "completion_tokens": completion, "cost_usd": cost,
            })
        )
        .collect::<Vec<_>>())
}

async fn series(server: &Server, key: &str, query: &str) -> Value {
    let response = reqwest::Client::new()
        .get(server.at(&format!("/admin/usage/series?{query}")))
        .bearer_auth(key)
        .send()
        .await
        .expect("the host answers");
    assert_eq!(response.status(), 200, "{query}");
    response.json().await.expect("JSON")
}

/// Records [`records`] through `server`'s host and checks every grouping against the
/// buckets computed by hand. `key` opens `/admin/*`.
pub async fn check_hand_computed_buckets(server: &Server, key: &str) {
    for r in records() {
        server.host.record(r);
    }
    let range = format!("since={NOVEMBER}&until={}", DECEMBER + 86_400.0);
    let h23 = DECEMBER - 3_600.0;
    let by_hour_client = series(server, key, &format!("bucket=hour&by=client&{range}")).await;
    assert_eq!(by_hour_client["bucket"], "hour");
    assert_eq!(by_hour_client["by"], "client");
    assert_eq!(by_hour_client["since"], json!(NOVEMBER));
    assert_eq!(by_hour_client["truncated"], false);
    assert_eq!(
        by_hour_client["rows"],
        rows(&[
            (h23, "team-a", 1, 0, 10, 20, 0.25),
            (h23, "team-b", 1, 0, 1, 2, 0.125),
            (DECEMBER, "team-a", 2, 1, 100, 200, 1.5),
            (DECEMBER + 7_200.0, "team-b", 1, 0, 5, 5, 0.5),
        ])
    );
    let by_day_model = series(server, key, &format!("bucket=day&by=model&{range}")).await;
    assert_eq!(
        by_day_model["rows"],
        rows(&[
            (DECEMBER - 86_400.0, "mock/echo", 2, 0, 11, 22, 0.375),
            (DECEMBER, "mock/echo", 2, 1, 5, 5, 0.5),
            (DECEMBER, "other/big", 1, 0, 100, 200, 1.5),
        ])
    );
    let by_month_provider = series(server, key, &format!("bucket=month&by=provider&{range}")).await;
    assert_eq!(
        by_month_provider["rows"],
        rows(&[
            (NOVEMBER, "mock", 2, 0, 11, 22, 0.375),
            (DECEMBER, "mock", 2, 1, 5, 5, 0.5),
            (DECEMBER, "other", 1, 0, 100, 200, 1.5),
        ])
    );
    // `until` is exclusive and `since` starts at its bucket: 00:30 rounds down to 00:00.
    let narrow = series(
        server,
        key,
        &format!(
            "bucket=hour&by=provider&since={}&until={}",
            DECEMBER + 1_800.0,
            DECEMBER + 7_800.0
        ),
    )
    .await;
    assert_eq!(narrow["since"], json!(DECEMBER));
    assert_eq!(
        narrow["rows"],
        rows(&[
            (DECEMBER, "mock", 1, 1, 0, 0, 0.0),
            (DECEMBER, "other", 1, 0, 100, 200, 1.5),
        ])
    );
}
