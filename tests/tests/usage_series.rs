//! `/admin/usage/series` on the SQLite ledger: buckets computed by hand (the same check
//! runs on PostgreSQL in usage_postgres.rs), and the errors of a bad query.

use e2e::{mock_plugin, Scratch, Server};
use serde_json::{json, Value};

fn config(scratch: &Scratch) -> std::path::PathBuf {
    scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "auth": {"admin_keys": ["sk-admin"]},
        "usage": {"database": scratch.path("usage.db")},
    }))
}

#[tokio::test]
async fn sqlite_series_buckets_are_as_computed_by_hand() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch)).await;
    e2e::series::check_hand_computed_buckets(&server, "sk-admin").await;
    server.stop().await;
}

#[tokio::test]
async fn a_bad_series_query_is_a_400_that_says_what_to_write() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch)).await;
    for (query, expected) in [
        (
            "bucket=week",
            "write bucket=hour, bucket=day or bucket=month",
        ),
        ("by=team", "write by=provider, by=model or by=client"),
        ("since=yesterday", "write Unix seconds"),
        ("since=7200&until=3600", "must be before until"),
        (
            "bucket=hour&since=0",
            "narrow since/until or use a larger bucket",
        ),
    ] {
        let response = reqwest::Client::new()
            .get(server.at(&format!("/admin/usage/series?{query}")))
            .bearer_auth("sk-admin")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{query}: {message}");
    }
    server.stop().await;
}

#[tokio::test]
async fn without_a_ledger_the_series_says_how_to_keep_one() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "auth": {"admin_keys": ["sk-admin"]},
        "usage": {"enabled": false},
    }));
    let server = Server::start(&config).await;
    let response = reqwest::Client::new()
        .get(server.at("/admin/usage/series"))
        .bearer_auth("sk-admin")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("set `usage.enabled`"),
        "{body}"
    );
    server.stop().await;
}
