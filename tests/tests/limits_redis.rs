//! Limits and budgets held by a fleet: two hosts in one process, each with its own
//! listener, sharing one real `redis-server`. They enforce one limit and one budget as
//! a single host would, and follow `shared_state.on_unavailable` through an outage.

use std::time::{Duration, Instant};

use e2e::{client::with_fields, mock_plugin, redis::RedisServer, Scratch, Server};
use futures_util::StreamExt;
use serde_json::{json, Value};

const KEYS: [(&str, &str); 1] = [("E2E_TEAM_A", "sk-team-a")];

/// A host sharing `redis`, with its own folder (and so its own usage ledger); `extra`
/// adds top-level fields, and `on_unavailable` in it goes into `shared_state`.
async fn host(scratch: &Scratch, redis: &RedisServer, mut extra: Value) -> Server {
    let policy = extra
        .as_object_mut()
        .and_then(|o| o.remove("on_unavailable"))
        .unwrap_or(json!("fail_open"));
    let base = json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "options": {"long_interval_ms": 50}}],
        "auth": {"keys": [{"key": "${E2E_TEAM_A}", "name": "team-a"}]},
        "shared_state": {"redis": redis.url(), "timeout_ms": 200, "key_prefix": "fleet",
                         "on_unavailable": policy},
        "usage": {"enabled": false},
        "retry": {"max_retries": 0}
    });
    let config = scratch.config(with_fields(base, extra));
    Server::start_with_keys(&config, &KEYS).await
}

async fn fleet(redis: &RedisServer, extra: Value) -> (Scratch, Scratch, Server, Server) {
    let (a, b) = (Scratch::new(), Scratch::new());
    let host_a = host(&a, redis, extra.clone()).await;
    let host_b = host(&b, redis, extra).await;
    (a, b, host_a, host_b)
}

async fn chat(server: &Server, text: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .bearer_auth("sk-team-a")
        .json(&json!({"model": "mock/echo", "max_tokens": 8,
                      "messages": [{"role": "user", "content": text}]}))
        .send()
        .await
        .unwrap()
}

async fn team_a(server: &Server) -> (Value, Value) {
    let report: Value = reqwest::Client::new()
        .get(server.at("/admin/limits"))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let limit = report["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "team-a")
        .cloned()
        .unwrap();
    (report, limit)
}

#[tokio::test]
async fn two_hosts_let_exactly_ten_of_thirty_alternated_requests_through_a_limit_of_ten() {
    let redis = RedisServer::start();
    let (_a, _b, host_a, host_b) =
        fleet(&redis, json!({"limits": [{"client": "team-a", "rpm": 10}]})).await;
    let mut passed = [0, 0];
    for i in 0..30 {
        let server = if i % 2 == 0 { &host_a } else { &host_b };
        let response = chat(server, "a b c").await;
        match response.status().as_u16() {
            200 => passed[i % 2] += 1,
            429 => assert!(response.headers().contains_key("retry-after")),
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(
        passed[0] + passed[1],
        10,
        "one limit for the fleet: {passed:?}"
    );
    assert_eq!(passed, [5, 5], "the first ten alternate between the hosts");
    for server in [&host_a, &host_b] {
        let (report, limit) = team_a(server).await;
        assert_eq!(report["backend"], "redis");
        assert_eq!(report["redis"]["healthy"], true, "{report}");
        assert_eq!(report["redis"]["outages"], 0);
        assert_eq!(
            limit["requests"]["used"], 10,
            "both hosts read the shared window"
        );
        assert_eq!(limit["requests"]["remaining"], 0);
    }
    assert_eq!(
        redis
            .command(&["HINCRBY", "fleet:limit-window:client:team-a", "r", "0"])
            .as_deref(),
        Some(":10"),
        "the window lives in Redis under the key prefix"
    );
}

#[tokio::test]
async fn a_fleets_token_limit_stops_within_one_reservation_of_its_boundary() {
    let redis = RedisServer::start();
    let (_a, _b, host_a, host_b) = fleet(
        &redis,
        json!({"limits": [{"client": "team-a", "tpm": 300}]}),
    )
    .await;
    let mut tokens = 0;
    for i in 0.. {
        let server = if i % 2 == 0 { &host_a } else { &host_b };
        let response = chat(server, "a b c").await;
        if response.status() == 429 {
            break;
        }
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens += body["usage"]["total_tokens"].as_u64().unwrap();
        assert!(i < 100, "the token limit never refused");
    }
    let body = json!({"model": "mock/echo", "max_tokens": 8,
                      "messages": [{"role": "user", "content": "a b c"}]});
    let reservation = serde_json::to_vec(&body).unwrap().len().div_ceil(4) as u64 + 8;
    assert!(
        tokens <= 300 && tokens + reservation > 300,
        "{tokens} + {reservation}"
    );
    let (_, limit) = team_a(&host_b).await;
    assert_eq!(
        limit["tokens"]["used"], tokens,
        "settled to the usage reported"
    );
}

#[tokio::test]
async fn a_client_budget_spent_through_one_host_refuses_on_the_other_at_once() {
    let redis = RedisServer::start();
    // The mock counts words: "a b c" echoed is 3 + 3 tokens, (3 * 1 + 3 * 2) / 1e6 dollars.
    let extra = json!({
        "pricing": {"mock/echo": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "budgets": [{"client": "team-a", "limit_usd": 0.000005, "period": "day"}],
        "usage": {"enabled": true}
    });
    let (_a, _b, host_a, host_b) = fleet(&redis, extra).await;
    assert_eq!(chat(&host_a, "a b c").await.status(), 200, "within budget");
    let refused = chat(&host_b, "a b c").await;
    assert_eq!(refused.status(), 429, "host B sees host A's spend");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client team-a"),
        "{body}"
    );
    assert_eq!(chat(&host_a, "a b c").await.status(), 429);
}

#[tokio::test]
async fn a_concurrency_slot_taken_on_one_host_is_seen_by_the_other() {
    let redis = RedisServer::start();
    let (_a, _b, host_a, host_b) = fleet(
        &redis,
        json!({"limits": [{"client": "team-a", "concurrent": 1}]}),
    )
    .await;
    let open = reqwest::Client::new()
        .post(host_a.at("/v1/chat/completions"))
        .bearer_auth("sk-team-a")
        .json(
            &json!({"model": "mock/long", "max_tokens": 200, "stream": true,
                      "messages": [{"role": "user", "content": "go"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 200);
    let mut stream = open.bytes_stream();
    stream.next().await.unwrap().unwrap();
    assert_eq!(chat(&host_b, "hi").await.status(), 429);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, limit) = team_a(&host_b).await;
        if limit["concurrent"]["in_flight"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the slot never came back: {limit}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(chat(&host_b, "hi").await.status(), 200);
}

/// Sends requests to `server` until one is answered through Redis again (the handle
/// reconnects by itself, with a delay of at most 5 s).
async fn until_counted_in_redis(server: &Server, redis: &RedisServer) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let response = chat(server, "hi").await;
        let (report, _) = team_a(server).await;
        let in_redis = redis
            .command(&["EXISTS", "fleet:limit-window:client:team-a"])
            .as_deref()
            == Some(":1");
        if response.status() == 200 && in_redis && report["redis"]["healthy"] == true {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Redis is back but counting did not resume: {report}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn fail_open_counts_in_memory_through_an_outage_and_counting_resumes_in_redis() {
    let mut redis = RedisServer::start();
    let (_a, _b, host_a, host_b) =
        fleet(&redis, json!({"limits": [{"client": "team-a", "rpm": 4}]})).await;
    assert_eq!(chat(&host_a, "hi").await.status(), 200);
    assert_eq!(chat(&host_b, "hi").await.status(), 200);
    redis.stop();
    // Redis is gone: each host serves, counting the same limit in its own memory.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(chat(&host_a, "hi").await.status().as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 200, 429],
        "the limit holds per host"
    );
    let (report, limit) = team_a(&host_a).await;
    assert_eq!(report["redis"]["healthy"], false, "{report}");
    assert_eq!(report["redis"]["outages"], 1, "one outage, counted once");
    assert_eq!(
        limit["requests"]["used"], 4,
        "the host's own count: {limit}"
    );
    let metrics = reqwest::Client::new()
        .get(host_a.at("/metrics"))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("provider_host_shared_state_healthy 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provider_host_shared_state_outages_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("provider_host_shared_state_local_fallbacks_total 5"),
        "{metrics}"
    );

    redis.start_again();
    until_counted_in_redis(&host_b, &redis).await;
    let (report, limit) = team_a(&host_b).await;
    assert_eq!(report["redis"]["healthy"], true);
    assert!(
        limit["requests"]["used"].as_u64().unwrap() >= 1,
        "counted in the restarted Redis: {limit}"
    );
}

#[tokio::test]
async fn fail_closed_refuses_with_503_through_an_outage_and_serves_when_redis_is_back() {
    let mut redis = RedisServer::start();
    let extra = json!({
        "limits": [{"client": "team-a", "rpm": 100}],
        "on_unavailable": "fail_closed"
    });
    let (_a, _b, host_a, host_b) = fleet(&redis, extra).await;
    assert_eq!(chat(&host_a, "hi").await.status(), 200);
    redis.stop();
    for server in [&host_a, &host_b] {
        let started = Instant::now();
        let refused = chat(server, "hi").await;
        assert_eq!(refused.status(), 503);
        assert!(started.elapsed() < Duration::from_secs(2), "refused fast");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["error"]["code"], "shared_state_unavailable", "{body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("fail_closed"), "{message}");
    }
    redis.start_again();
    until_counted_in_redis(&host_a, &redis).await;
    assert_eq!(chat(&host_b, "hi").await.status(), 200);
}

#[tokio::test]
async fn a_shared_window_lasts_sixty_seconds_from_its_first_request_and_starts_over_when_its_key_expires(
) {
    let redis = RedisServer::start();
    let (_a, _b, host_a, host_b) =
        fleet(&redis, json!({"limits": [{"client": "team-a", "rpm": 2}]})).await;
    let key = "fleet:limit-window:client:team-a";
    assert_eq!(chat(&host_a, "hi").await.status(), 200);
    let ttl: i64 = redis.command(&["PTTL", key]).unwrap()[1..].parse().unwrap();
    assert!(
        (55_000..=60_000).contains(&ttl),
        "the window ends 60 s after its first request: {ttl} ms left"
    );
    assert_eq!(chat(&host_b, "hi").await.status(), 200);
    let refused = chat(&host_a, "hi").await;
    assert_eq!(refused.status(), 429);
    let retry: i64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (ttl / 1000 - 5..=60).contains(&retry),
        "retry-after is the window's end: {retry} s"
    );
    // The window's end, brought forward: Redis expires the key as it would at 60 s.
    assert_eq!(redis.command(&["PEXPIRE", key, "1"]).as_deref(), Some(":1"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.command(&["EXISTS", key]).as_deref() != Some(":0") {
        assert!(Instant::now() < deadline, "the key did not expire");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let again = chat(&host_b, "hi").await;
    assert_eq!(again.status(), 200, "a new window starts");
    assert_eq!(again.headers()["x-ratelimit-remaining-requests"], "1");
    assert_eq!(again.headers()["x-ratelimit-reset-requests"], "1m0s");
}

#[tokio::test]
async fn a_restarted_redis_is_seeded_with_the_spend_the_ledger_knows() {
    let mut redis = RedisServer::start();
    // Each echo of "a b c" costs 9e-6 dollars; the budget is 2e-5. The rate limit is
    // only there for `/admin/limits` to reach Redis.
    let extra = json!({
        "pricing": {"mock/echo": {"input_per_mtok": 1.0, "output_per_mtok": 2.0}},
        "budgets": [{"client": "team-a", "limit_usd": 0.00002, "period": "month"}],
        "limits": [{"client": "team-a", "rpm": 1000}],
        "usage": {"enabled": true}
    });
    let (_a, _b, host_a, host_b) = fleet(&redis, extra).await;
    assert_eq!(chat(&host_a, "a b c").await.status(), 200);
    assert_eq!(chat(&host_a, "a b c").await.status(), 200);
    redis.stop();
    redis.start_again();
    let deadline = Instant::now() + Duration::from_secs(20);
    for server in [&host_a, &host_b] {
        while team_a(server).await.0["redis"]["healthy"] != true {
            assert!(Instant::now() < deadline, "the hosts never reconnected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        redis.command(&["KEYS", "fleet:spend:*"]).as_deref(),
        Some("*0"),
        "Redis lost the live spend"
    );
    // Host A's ledger still holds 1.8e-5 of it and seeds the key with it on its next
    // request (which still fits: 1.8e-5 < 2e-5), adding 9e-6.
    assert_eq!(chat(&host_a, "a b c").await.status(), 200);
    // Host B has spent nothing itself, and sees the fleet's 2.7e-5.
    let refused = chat(&host_b, "a b c").await;
    assert_eq!(refused.status(), 429);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded", "{body}");
}
