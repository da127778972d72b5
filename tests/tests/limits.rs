//! Rate limits on one host, counted in its memory: exact, refused in each client's
//! protocol with `retry-after`, reported in `x-ratelimit-*` headers and
//! `/admin/limits`, enforced for embedders too, and settled with the usage reported.

use std::time::Duration;

use e2e::{
    client::{entry_in_front_of, with_fields},
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, HandClock, Scratch, Server,
};
use futures_util::StreamExt;
use provider_host::pipeline::{Call, DispatchError};
use provider_sdk::{ChatRequest, Message};
use serde_json::{json, Value};

const KEYS: [(&str, &str); 3] = [
    ("E2E_TEAM_A", "sk-team-a"),
    ("E2E_TEAM_B", "sk-team-b"),
    ("E2E_UPSTREAM_KEY", "sk-upstream"),
];

/// Two mock providers (`mock` and `backup`), two named client keys, and `extra`.
fn config(scratch: &Scratch, extra: Value) -> std::path::PathBuf {
    let base = json!({
        "providers": [
            {"name": "mock", "library": mock_plugin(), "options": {"long_interval_ms": 50}},
            {"name": "backup", "library": mock_plugin()}
        ],
        "models": {"chain": {"targets": ["mock/echo", "backup/echo"]}},
        "auth": {"keys": [{"key": "${E2E_TEAM_A}", "name": "team-a"},
                          {"key": "${E2E_TEAM_B}", "name": "team-b"}]},
        "usage": {"enabled": false},
        "retry": {"max_retries": 0}
    });
    scratch.config(with_fields(base, extra))
}

async fn post(server: &Server, path: &str, key: &str, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

fn chat(model: &str) -> Value {
    json!({"model": model, "max_tokens": 8, "messages": [{"role": "user", "content": "a b c"}]})
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> Option<&'a str> {
    response.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn limits(server: &Server) -> Value {
    reqwest::Client::new()
        .get(server.at("/admin/limits"))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn limit<'a>(report: &'a Value, scope: &str, name: &str) -> &'a Value {
    report["limits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["scope"] == scope && l["name"] == name)
        .unwrap_or_else(|| panic!("no {scope} {name} in {report}"))
}

#[tokio::test]
async fn a_client_limit_of_ten_a_minute_lets_exactly_ten_of_thirty_through() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "rpm": 10}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let mut passed = Vec::new();
    let mut refused = 0;
    for _ in 0..30 {
        let response = post(
            &server,
            "/v1/chat/completions",
            "sk-team-a",
            chat("mock/echo"),
        )
        .await;
        match response.status().as_u16() {
            200 => {
                passed.push(header(&response, "x-ratelimit-remaining-requests").map(str::to_owned))
            }
            429 => {
                refused += 1;
                let retry: u64 = header(&response, "retry-after").unwrap().parse().unwrap();
                assert!((1..=60).contains(&retry), "retry-after {retry}");
                assert_eq!(header(&response, "x-ratelimit-limit-requests"), Some("10"));
                assert_eq!(
                    header(&response, "x-ratelimit-remaining-requests"),
                    Some("0")
                );
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "rate_limit_exceeded", "{body}");
                assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
                let message = body["error"]["message"].as_str().unwrap();
                assert!(
                    message.contains("client team-a: 10 requests per minute"),
                    "{message}"
                );
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(passed.len(), 10, "exactly the limit passes");
    assert_eq!(refused, 20);
    let remaining: Vec<String> = (0..10).rev().map(|n| n.to_string()).collect();
    assert_eq!(
        passed.into_iter().flatten().collect::<Vec<_>>(),
        remaining,
        "each answer says what is left"
    );
    // Another client has its own count (none), and the report agrees.
    let other = post(
        &server,
        "/v1/chat/completions",
        "sk-team-b",
        chat("mock/echo"),
    )
    .await;
    assert_eq!(other.status(), 200);
    assert!(header(&other, "x-ratelimit-limit-requests").is_none());
    let report = limits(&server).await;
    assert_eq!(report["backend"], "memory");
    assert_eq!(report["redis"], Value::Null);
    let team_a = limit(&report, "client", "team-a");
    assert_eq!(team_a["window_secs"], 60);
    assert_eq!(team_a["requests"]["limit"], 10);
    assert_eq!(team_a["requests"]["used"], 10);
    assert_eq!(team_a["requests"]["remaining"], 0);
    assert!(team_a["requests"]["reset_secs"].as_u64().unwrap() <= 60);
    assert_eq!(team_a["tokens"], Value::Null);
    assert_eq!(team_a["concurrent"], Value::Null);
    let metrics = reqwest::Client::new()
        .get(server.at("/metrics"))
        .bearer_auth("sk-team-a")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        r#"provider_host_rate_limit{scope="client",name="team-a",kind="requests"} 10"#,
        r#"provider_host_rate_limit_used{scope="client",name="team-a",kind="requests"} 10"#,
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    server.stop().await;
}

#[tokio::test]
async fn admin_limits_needs_an_admin_key_once_admin_keys_are_set() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"provider": "mock", "concurrent": 3}],
               "auth": {"keys": [{"key": "${E2E_TEAM_A}", "name": "team-a"}],
                        "admin_keys": ["${E2E_TEAM_B}"]}}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let get = |key: &'static str| {
        reqwest::Client::new()
            .get(server.at("/admin/limits"))
            .bearer_auth(key)
            .send()
    };
    assert_eq!(get("sk-team-a").await.unwrap().status(), 403);
    let report: Value = get("sk-team-b").await.unwrap().json().await.unwrap();
    assert_eq!(
        report["limits"],
        json!([{"scope": "provider", "name": "mock", "window_secs": 60, "requests": null,
                "tokens": null, "concurrent": {"limit": 3, "in_flight": 0}}])
    );
    server.stop().await;
}

#[tokio::test]
async fn every_ingress_refuses_in_its_own_protocol_with_retry_after() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "rpm": 1}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    assert_eq!(
        post(
            &server,
            "/v1/chat/completions",
            "sk-team-a",
            chat("mock/echo")
        )
        .await
        .status(),
        200
    );
    let requests = [
        ("/v1/chat/completions", chat("mock/echo")),
        (
            "/v1/chat/completions",
            with_fields(chat("mock/long"), json!({"stream": true})),
        ),
        (
            "/v1/responses",
            json!({"model": "mock/echo", "input": "hi"}),
        ),
        (
            "/v1/embeddings",
            json!({"model": "mock/embed", "input": "hi"}),
        ),
    ];
    for (path, body) in requests {
        let response = post(&server, path, "sk-team-a", body.clone()).await;
        assert_eq!(response.status(), 429, "{path} {body}");
        assert!(header(&response, "retry-after").is_some(), "{path}");
        assert_eq!(
            header(&response, "x-ratelimit-limit-requests"),
            Some("1"),
            "{path}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["error"]["code"], "rate_limit_exceeded",
            "{path}: {body}"
        );
    }
    let response = post(
        &server,
        "/v1/messages",
        "sk-team-a",
        json!({"model": "mock/echo", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(header(&response, "retry-after").is_some());
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error", "{body}");
    server.stop().await;
}

#[tokio::test]
async fn a_provider_limit_moves_the_chain_on_and_refuses_only_when_every_target_is_limited() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"provider": "mock", "rpm": 1}, {"target": "backup/echo", "rpm": 1}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let first = post(&server, "/v1/chat/completions", "sk-team-a", chat("chain")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-provider"), Some("mock"));
    let second = post(&server, "/v1/chat/completions", "sk-team-a", chat("chain")).await;
    assert_eq!(
        second.status(),
        200,
        "the provider limit moves the chain on"
    );
    assert_eq!(header(&second, "x-provider"), Some("backup"));
    assert_eq!(header(&second, "x-fallback-index"), Some("1"));
    assert_eq!(header(&second, "x-ratelimit-remaining-requests"), Some("0"));
    let third = post(&server, "/v1/chat/completions", "sk-team-a", chat("chain")).await;
    assert_eq!(third.status(), 429);
    assert!(header(&third, "retry-after").is_some());
    let body: Value = third.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("every target of `chain`")
            && message.contains("provider mock")
            && message.contains("target backup/echo"),
        "{message}"
    );
    // A model outside the chain's limits still answers.
    let other = post(
        &server,
        "/v1/chat/completions",
        "sk-team-a",
        chat("backup/tool"),
    )
    .await;
    assert_ne!(other.status(), 429);
    server.stop().await;
}

#[tokio::test]
async fn a_token_limit_stops_within_one_reservation_of_its_boundary() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "tpm": 300}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let mut answered = 0u64;
    let mut tokens = 0u64;
    loop {
        let response = post(
            &server,
            "/v1/chat/completions",
            "sk-team-a",
            chat("mock/echo"),
        )
        .await;
        if response.status() == 429 {
            break;
        }
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        tokens += body["usage"]["total_tokens"].as_u64().unwrap();
        answered += 1;
        assert!(answered < 100, "the token limit never refused");
    }
    let report = limits(&server).await;
    let window = &limit(&report, "client", "team-a")["tokens"];
    assert_eq!(
        window["used"].as_u64().unwrap(),
        tokens,
        "reservations are settled to the usage reported"
    );
    // The reservation: the body's bytes / 4 plus max_tokens (8).
    let body_len = serde_json::to_vec(&chat("mock/echo")).unwrap().len() as u64;
    let reservation = body_len.div_ceil(4) + 8;
    assert!(tokens <= 300, "never past the limit: {tokens}");
    assert!(
        tokens + reservation > 300,
        "stopped only when one more reservation would not fit: {tokens} + {reservation}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_window_starts_over_at_its_end_and_embedders_are_limited_too() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "rpm": 2}]}),
    );
    let clock = HandClock::default();
    clock.set(e2e::BEFORE_TWO_PM);
    let host = clock
        .host_builder(&config)
        .api_keys(e2e::key_lookup(&KEYS))
        .env(e2e::key_lookup(&KEYS))
        .build()
        .unwrap();
    let call = || {
        let mut call = Call::new(ChatRequest::new("mock/echo", vec![Message::user("hi")]));
        call.caller.client = "team-a".to_owned();
        call
    };
    let first = host.complete(call()).await.unwrap();
    assert_eq!(first.route.rate_limits.requests.unwrap().remaining, 1);
    clock.set(e2e::BEFORE_TWO_PM + 30.0);
    host.complete(call()).await.unwrap();
    clock.set(e2e::BEFORE_TWO_PM + 59.9);
    let refused = host.complete(call()).await.unwrap_err();
    let DispatchError::RateLimited(exceeded) = &refused else {
        panic!("{refused:?}");
    };
    assert_eq!(refused.http_status(), 429);
    assert_eq!(exceeded.retry_after_secs(), 1, "0.1 s left, rounded up");
    // The window opened by the first request ends 60 s after it.
    clock.set(e2e::BEFORE_TWO_PM + 60.0);
    let again = host.complete(call()).await.unwrap();
    let quota = again.route.rate_limits.requests.unwrap();
    assert_eq!((quota.remaining, quota.reset_ms), (1, 60_000));
}

#[tokio::test]
async fn a_concurrency_slot_is_held_by_an_open_stream_and_given_back_when_it_is_abandoned() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "concurrent": 1, "tpm": 100000}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let body = json!({"model": "mock/long", "max_tokens": 200, "stream": true,
                      "messages": [{"role": "user", "content": "go"}]});
    let open = post(&server, "/v1/chat/completions", "sk-team-a", body.clone()).await;
    assert_eq!(open.status(), 200);
    let mut stream = open.bytes_stream();
    stream.next().await.unwrap().unwrap();
    let second = post(
        &server,
        "/v1/chat/completions",
        "sk-team-a",
        chat("mock/echo"),
    )
    .await;
    assert_eq!(second.status(), 429);
    let message = second.json::<Value>().await.unwrap()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        message.contains("1 concurrent requests, 1 in flight"),
        "{message}"
    );
    let reservation = serde_json::to_vec(&body).unwrap().len().div_ceil(4) as u64 + 200;
    assert_eq!(
        limit(&limits(&server).await, "client", "team-a")["tokens"]["used"],
        reservation
    );
    drop(stream);
    // The host notices the client left when it next writes (every 50 ms).
    let report = loop {
        let report = limits(&server).await;
        if limit(&report, "client", "team-a")["concurrent"]["in_flight"] == 0 {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    // The mock reports usage only at its end, so none was seen: the reservation stands.
    assert_eq!(
        limit(&report, "client", "team-a")["tokens"]["used"],
        reservation
    );
    let third = post(
        &server,
        "/v1/chat/completions",
        "sk-team-a",
        chat("mock/echo"),
    )
    .await;
    assert_eq!(third.status(), 200, "the slot came back");
    server.stop().await;
}

/// An OpenAI-compatible upstream that reports usage in every chunk (vLLM's
/// `continuous_usage_stats`), slowly.
fn chunk(n: u64) -> String {
    format!("data: {{\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{n} \"}},\"finish_reason\":null}}],\"usage\":{{\"prompt_tokens\":40,\"completion_tokens\":{n},\"total_tokens\":{}}}}}\n\n", 40 + n)
}

#[tokio::test]
async fn an_abandoned_stream_settles_its_reservation_with_the_usage_seen() {
    let fake = FakeUpstream::start().await;
    let pieces: Vec<String> = (1..=20).map(chunk).collect();
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    fake.always(Reply::sse(&pieces, Duration::from_millis(300)));
    let scratch = Scratch::new();
    let openai = json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"});
    let config = scratch.config(json!({
        "providers": [entry_in_front_of(&fake, "E2E_UPSTREAM_KEY", openai)],
        "auth": {"keys": [{"key": "${E2E_TEAM_A}", "name": "team-a"}]},
        "limits": [{"client": "team-a", "tpm": 100000, "concurrent": 2}],
        "usage": {"enabled": false},
        "retry": {"max_retries": 0}
    }));
    let server = Server::start_with_keys(&config, &KEYS).await;
    let body = json!({"model": "openai/m", "max_tokens": 500, "stream": true,
                      "messages": [{"role": "user", "content": "go"}]});
    let response = post(&server, "/v1/chat/completions", "sk-team-a", body).await;
    assert_eq!(response.status(), 200);
    let mut stream = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("w2 ") {
        let piece = stream.next().await.unwrap().unwrap();
        seen.push_str(&String::from_utf8_lossy(&piece));
    }
    drop(stream);
    let report = loop {
        let report = limits(&server).await;
        if limit(&report, "client", "team-a")["concurrent"]["in_flight"] == 0 {
            break report;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let used = limit(&report, "client", "team-a")["tokens"]["used"]
        .as_u64()
        .unwrap();
    // The last usage the host decoded: 40 prompt tokens and the chunks read by then
    // (the host may have read one more than the client before it noticed).
    assert!(
        (42..=44).contains(&used),
        "settled at {used}, not the reservation"
    );
    server.stop().await;
}

#[test]
fn limits_are_checked_when_the_config_loads() {
    let scratch = Scratch::new();
    let cases = [
        (
            json!([{"client": "nobody", "rpm": 1}]),
            "limits[0].client",
            "no client key is named `nobody`",
        ),
        (
            json!([{"provider": "openai", "rpm": 1}]),
            "limits[0].provider",
            "no provider is called `openai`",
        ),
        (
            json!([{"target": "mock", "rpm": 1}]),
            "limits[0].target",
            "is not `provider/model`",
        ),
        (
            json!([{"client": "team-a"}]),
            "limits[0]",
            "set `rpm`, `tpm` or `concurrent`",
        ),
        (
            json!([{"client": "team-a", "rpm": 0}]),
            "limits[0].rpm",
            "write at least 1",
        ),
        (
            json!([{"client": "team-a", "provider": "mock", "rpm": 1}]),
            "limits[0]",
            "exactly one of",
        ),
        (
            json!([{"provider": "mock", "rpm": 1}, {"provider": "mock", "tpm": 1}]),
            "limits[1]",
            "one entry",
        ),
        (
            json!([{"provider": "mock", "rpn": 1}]),
            "limits[0].rpn",
            "unknown field",
        ),
    ];
    for (limits, location, message) in cases {
        let config = config(&scratch, json!({ "limits": limits }));
        let error = provider_host::config::Config::load_with_env(&config, &e2e::key_lookup(&KEYS))
            .unwrap_err();
        assert_eq!(error.location, location, "{limits}: {error}");
        assert!(error.message.contains(message), "{limits}: {error}");
        assert_eq!(error.file, config, "the error names the file");
    }
}

#[tokio::test]
async fn the_openai_sdk_sees_a_rate_limit_error_with_retry_after() {
    let scratch = Scratch::new();
    let config = config(
        &scratch,
        json!({"limits": [{"client": "team-a", "rpm": 1}]}),
    );
    let server = Server::start_with_keys(&config, &KEYS).await;
    let observed = e2e::sdk::openai(&server.url, "sk-team-a", "rate_limited:mock/echo").await;
    let step = &observed["rate_limited:mock/echo"];
    assert_eq!(step["first"]["x-ratelimit-limit-requests"], "1", "{step}");
    assert_eq!(
        step["first"]["x-ratelimit-remaining-requests"], "0",
        "{step}"
    );
    let second = &step["second"];
    assert_eq!(second["raised"], "RateLimitError", "{step}");
    assert_eq!(second["is_rate_limit"], true);
    assert_eq!(second["status_code"], 429);
    assert_eq!(second["code"], "rate_limit_exceeded");
    let retry: u64 = second["retry_after"].as_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{step}");
    assert_eq!(second["remaining_requests"], "0");
    server.stop().await;
}
