//! Usage, cost, budgets and metrics: figures checked by hand against the fakes.

use std::time::Duration;

use e2e::{
    client::{entry_in_front_of, send_chat, send_chat_as, with_fields},
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, sse_data, Scratch, Server,
};
use serde_json::{json, Value};

/// A `chat.completion` with cached prompt tokens, in OpenAI's documented shape.
const CACHED_COMPLETION: &str = r#"{"id":"chatcmpl-abc","object":"chat.completion","created":1741569952,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Sure.","refusal":null},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":64,"audio_tokens":0}}}"#;
const NO_USAGE: &str = r#"{"id":"chatcmpl-abc","object":"chat.completion","created":1741569952,"model":"local","choices":[{"index":0,"message":{"role":"assistant","content":"Sure."},"finish_reason":"stop"}]}"#;

/// Prices for `openai/gpt-4o-mini` in the tests' config: $0.15 in, $0.075 cached, $0.60 out per million.
/// 2006 prompt tokens of which 1920 cached, 300 completion tokens:
/// (86 * 0.15 + 1920 * 0.075 + 300 * 0.60) / 1e6 = (12.9 + 144 + 180) / 1e6.
const CACHED_COST: f64 = 336.9e-6;

fn stream_pieces() -> Vec<String> {
    let chunk = |delta: &str, finish: &str| {
        format!("data: {{\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{delta},\"logprobs\":null,\"finish_reason\":{finish}}}],\"usage\":null}}\n\n")
    };
    vec![
        chunk(r#"{"role":"assistant","content":""}"#, "null"),
        chunk(r#"{"content":"Sure."}"#, "null"),
        chunk("{}", r#""stop""#),
        "data: {\"id\":\"chatcmpl-abc\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":2006,\"completion_tokens\":300,\"total_tokens\":2306,\"prompt_tokens_details\":{\"cached_tokens\":1920},\"completion_tokens_details\":{\"reasoning_tokens\":64}}}\n\n".to_owned(),
        "data: [DONE]\n\n".to_owned(),
    ]
}

/// The variables the tests' configs name, given to the host directly (never through
/// the process environment, which other tests share).
const VARIABLES: [(&str, &str); 2] = [
    ("E2E_USAGE_KEY", "sk-usage"),
    ("E2E_TEAM_A_KEY", "sk-team-a"),
];

/// A server over `config`, reading [`VARIABLES`].
async fn start(config: &std::path::Path) -> Server {
    Server::start_with_keys(config, &VARIABLES).await
}

fn config(scratch: &Scratch, fake: &FakeUpstream, extra: Value) -> std::path::PathBuf {
    let openai = json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"});
    let config = json!({
        "providers": [
            entry_in_front_of(fake, "E2E_USAGE_KEY", openai),
            {"name": "mock", "library": mock_plugin()}
        ],
        "pricing": {"openai/gpt-4o-mini": {"input_per_mtok": 0.15, "output_per_mtok": 0.60, "cached_input_per_mtok": 0.075}},
        "circuit_breaker": {"enabled": false}
    });
    scratch.config(with_fields(config, extra))
}

async fn usage(server: &Server, key: Option<&str>) -> Value {
    let mut request = reqwest::Client::new().get(server.at("/admin/usage"));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    request.send().await.unwrap().json().await.unwrap()
}

fn close(a: &Value, b: f64) -> bool {
    (a.as_f64().unwrap() - b).abs() < 1e-12
}

#[tokio::test]
async fn plain_and_streamed_calls_count_tokens_and_cost_as_computed_by_hand() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::json(CACHED_COMPLETION),
        Reply::Stream {
            status: 200,
            pieces: stream_pieces()
                .into_iter()
                .map(String::into_bytes)
                .collect(),
            pause: Duration::ZERO,
            then_hang: false,
        },
    ]);
    let server = start(&config(&scratch, &fake, json!({}))).await;
    let hello = |stream: bool| json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "hi"}]});
    let plain = send_chat(&server, &hello(false)).await;
    assert_eq!(plain.status(), 200);
    plain.text().await.unwrap();
    // The client did not ask for usage; the host still learns it (the plugin asks upstream).
    let streamed = send_chat(&server, &hello(true)).await.text().await.unwrap();
    assert!(
        !streamed.contains("\"usage\":{"),
        "no usage chunk unless asked: {streamed}"
    );
    assert_eq!(
        fake.received()[1].json()["stream_options"]["include_usage"],
        true
    );

    let summary = usage(&server, None).await;
    let model = &summary["models"]["openai/gpt-4o-mini"];
    assert_eq!(model["calls"], 2);
    assert_eq!(model["prompt_tokens"], 4012);
    assert_eq!(model["cached_prompt_tokens"], 3840);
    assert_eq!(model["completion_tokens"], 600);
    assert_eq!(model["reasoning_tokens"], 128);
    assert!(close(&model["cost_usd"], 2.0 * CACHED_COST), "{model}");
    assert!(close(
        &summary["providers"]["openai"]["cost_usd"],
        2.0 * CACHED_COST
    ));
    assert_eq!(summary["clients"]["anonymous"]["calls"], 2);
    assert!(close(&summary["totals"]["cost_usd"], 2.0 * CACHED_COST));
    server.stop().await;
}

#[tokio::test]
async fn an_answer_without_usage_is_counted_as_such_never_estimated() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(NO_USAGE));
    let server = start(&config(&scratch, &fake, json!({}))).await;
    let response = send_chat(
        &server,
        &json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    let body: Value = response.json().await.unwrap();
    assert!(
        body.get("usage").is_none(),
        "no invented usage in the answer: {body}"
    );
    let summary = usage(&server, None).await;
    let model = &summary["models"]["openai/gpt-4o-mini"];
    assert_eq!(
        (
            model["calls"].as_u64(),
            model["calls_without_usage"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(model["prompt_tokens"], 0);
    assert_eq!(model["cost_usd"], 0.0);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_the_client_abandons_is_counted_with_what_was_seen() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let mut pieces: Vec<Vec<u8>> = stream_pieces()
        .into_iter()
        .map(String::into_bytes)
        .collect();
    pieces.pop(); // no [DONE]: the upstream goes quiet after the usage chunk
    fake.always(Reply::Stream {
        status: 200,
        pieces,
        pause: Duration::ZERO,
        then_hang: true,
    });
    let server = start(&config(
        &scratch,
        &fake,
        json!({"timeouts": {"idle": 30.0}}),
    ))
    .await;
    let mut response = send_chat(&server, &json!({"model": "openai/gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "hi"}]})).await;
    // Read until the usage chunk came through (so the host has seen it), then leave.
    let mut received = String::new();
    while !received.contains("\"usage\":{") {
        let chunk = response.chunk().await.unwrap().expect("the stream goes on");
        received.push_str(&String::from_utf8_lossy(&chunk));
    }
    drop(response);
    // The host counts the call once it notices the client is gone.
    let noticed = std::time::Instant::now();
    let mut summary = usage(&server, None).await;
    while summary["totals"]["calls"] != 1 && noticed.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        summary = usage(&server, None).await;
    }
    assert_eq!(summary["totals"]["calls"], 1, "{summary}");
    assert_eq!(
        summary["totals"]["prompt_tokens"], 2006,
        "the usage seen before the client left counts"
    );
    assert!(close(&summary["totals"]["cost_usd"], CACHED_COST));
    server.stop().await;
}

#[tokio::test]
async fn totals_survive_a_restart_and_reset_starts_them_over() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let config = config(&scratch, &fake, json!({}));
    let server = start(&config).await;
    for words in ["one", "one two", "one two three"] {
        let r = send_chat(
            &server,
            &json!({"model": "mock/echo", "messages": [{"role": "user", "content": words}]}),
        )
        .await;
        assert_eq!(r.status(), 200);
    }
    let before = usage(&server, None).await;
    server.stop().await;
    // Mock prices: $1 in, $2 out per million; echo: prompt = completion = words.
    assert_eq!(before["models"]["mock/echo"]["prompt_tokens"], 6);
    assert!(close(&before["models"]["mock/echo"]["cost_usd"], 18e-6));

    let server = start(&config).await;
    let after = usage(&server, None).await;
    assert_eq!(
        after["models"], before["models"],
        "the ledger restored every figure"
    );
    assert_eq!(after["since"], before["since"]);
    let reset: Value = reqwest::Client::new()
        .post(server.at("/admin/usage/reset"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reset["totals"]["calls"], 0);
    server.stop().await;
    let server = start(&config).await;
    assert_eq!(
        usage(&server, None).await["totals"]["calls"],
        0,
        "the reset survives a restart too"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_client_budget_blocks_the_call_after_the_one_that_spent_it() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let config = config(
        &scratch,
        &fake,
        json!({
            "auth": {"keys": [{"key": "${E2E_TEAM_A_KEY}", "name": "team-a"}, "sk-other"]},
            // Each echo of "a b c" costs 3 * $1 + 3 * $2 per million = $9e-6.
            "budgets": [{"client": "team-a", "limit_usd": 0.00002, "period": "day"}]
        }),
    );
    let server = start(&config).await;
    let call = |key: &'static str| {
        let server = &server;
        async move {
            send_chat_as(
                server,
                Some(key),
                &[],
                &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "a b c"}]}),
            )
            .await
        }
    };
    for _ in 0..3 {
        assert_eq!(
            call("sk-team-a").await.status(),
            200,
            "$9e-6, $18e-6, then $27e-6: the third crosses the limit"
        );
    }
    let blocked = call("sk-team-a").await;
    assert_eq!(blocked.status(), 429);
    let body: Value = blocked.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("client team-a"),
        "{body}"
    );
    assert_eq!(
        call("sk-other").await.status(),
        200,
        "other clients are not affected"
    );
    let summary = usage(&server, Some("sk-other")).await;
    assert_eq!(summary["clients"]["team-a"]["calls"], 4);
    assert_eq!(
        summary["clients"]["team-a"]["errors_by_kind"]["quota_exceeded"],
        1
    );
    assert!(
        summary["clients"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k.starts_with("key-")),
        "unnamed keys are counted by hash: {summary}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_spent_provider_budget_sends_traffic_to_the_next_target_or_refuses_when_none_is_left() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let config = config(
        &scratch,
        &fake,
        json!({
            "providers": [{"name": "mock", "library": mock_plugin()}, {"name": "spare", "library": mock_plugin()}],
            "pricing": {},
            "models": {"chain": {"targets": ["mock/echo", "spare/echo"]}},
            // Each echo of "a b c" costs $9e-6: mock's budget is spent by the second.
            "budgets": [{"provider": "mock", "limit_usd": 0.00001, "period": "month"}, {"provider": "spare", "limit_usd": 1.0, "period": "hour"}]
        }),
    );
    let server = start(&config).await;
    let call = |model: &'static str| {
        let server = &server;
        async move {
            send_chat(
                server,
                &json!({"model": model, "messages": [{"role": "user", "content": "a b c"}]}),
            )
            .await
        }
    };
    let header = |r: &reqwest::Response, name: &str| r.headers()[name].to_str().unwrap().to_owned();
    for (n, spent) in [(1, "$9e-6"), (2, "$18e-6")] {
        let answered = call("chain").await;
        assert_eq!(answered.status(), 200);
        assert_eq!(
            (
                header(&answered, "x-provider"),
                header(&answered, "x-fallback-index")
            ),
            ("mock".to_owned(), "0".to_owned()),
            "call {n}: mock still had budget before it ({spent} after)"
        );
    }
    let moved = call("chain").await;
    assert_eq!(moved.status(), 200);
    assert_eq!(
        (
            header(&moved, "x-provider"),
            header(&moved, "x-fallback-index")
        ),
        ("spare".to_owned(), "1".to_owned()),
        "mock's budget is spent: the chain's next target answered"
    );
    let refused = call("mock/echo").await;
    assert_eq!(refused.status(), 429, "no other target to send it to");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "budget_exceeded");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("provider mock"),
        "{body}"
    );
    let summary = usage(&server, None).await;
    assert_eq!(summary["providers"]["spare"]["calls"], 1, "{summary}");
    server.stop().await;
}

#[tokio::test]
async fn metrics_parse_as_prometheus_text_and_move_with_calls() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let server = start(&config(&scratch, &fake, json!({}))).await;
    let scrape = || async {
        let text = reqwest::get(server.at("/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
    };
    let value = |scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]| -> f64 {
        scrape
            .samples
            .iter()
            .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            })
            .sum()
    };
    let before = scrape().await;
    for _ in 0..3 {
        send_chat(
            &server,
            &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "a b"}]}),
        )
        .await
        .text()
        .await
        .unwrap();
    }
    let failing =
        json!({"model": "mock/fail", "messages": [{"role": "user", "content": "invalid_request"}]});
    send_chat(&server, &failing).await.text().await.unwrap();
    let after = scrape().await;
    let ok = [("provider", "mock"), ("model", "echo"), ("status", "200")];
    assert_eq!(
        value(&after, "provider_host_requests_total", &ok)
            - value(&before, "provider_host_requests_total", &ok),
        3.0
    );
    let failed = [("provider", "mock"), ("model", "fail"), ("status", "400")];
    assert_eq!(value(&after, "provider_host_requests_total", &failed), 1.0);
    let prompt = [("provider", "mock"), ("model", "echo"), ("type", "prompt")];
    assert_eq!(value(&after, "provider_host_tokens_total", &prompt), 6.0);
    assert!(
        (value(&after, "provider_host_cost_usd_total", &[("model", "echo")]) - 18e-6).abs() < 1e-12
    );
    assert_eq!(
        value(
            &after,
            "provider_host_request_duration_seconds_count",
            &[("model", "echo")]
        ),
        3.0
    );
    assert_eq!(
        value(&after, "provider_host_plugins_loaded", &[]),
        2.0,
        "openai and mock"
    );
    assert!(after
        .samples
        .iter()
        .any(|s| s.metric == "provider_host_overhead_seconds_count"));
    server.stop().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_honours_the_clients() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let server = start(&config(&scratch, &fake, json!({}))).await;
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    let generated = send_chat(&server, &body).await;
    assert!(generated.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req-"));
    let mine = send_chat_as(&server, None, &[("x-request-id", "trace-42")], &body).await;
    assert_eq!(mine.headers()["x-request-id"], "trace-42");
    let streamed = send_chat(&server, &json!({"model": "mock/echo", "stream": true, "messages": [{"role": "user", "content": "x"}]})).await;
    assert!(streamed.headers().contains_key("x-request-id"));
    assert_eq!(
        sse_data(&streamed.text().await.unwrap())
            .last()
            .map(String::as_str),
        Some("[DONE]")
    );
    server.stop().await;
}

/// A host over `config` whose usage meter reads `clock`.
fn host_on_clock(
    config: &std::path::Path,
    clock: &e2e::HandClock,
) -> std::sync::Arc<provider_host::Host> {
    clock
        .host_builder(config)
        .api_keys(e2e::key_lookup(&VARIABLES))
        .build()
        .unwrap()
}

/// An echo of "a b c" by the mock, as client `team-a`: $9e-6.
async fn echo_as_team_a(
    host: &provider_host::Host,
) -> Result<provider_host::pipeline::Completion, provider_host::pipeline::DispatchError> {
    e2e::echo_as(host, "team-a", "a b c").await
}

fn budget_spent(
    answer: &Result<provider_host::pipeline::Completion, provider_host::pipeline::DispatchError>,
) -> bool {
    matches!(
        answer,
        Err(provider_host::pipeline::DispatchError::ClientBudgetSpent(_))
    )
}

use e2e::BEFORE_TWO_PM;
/// 2026-11-22T23:59:59Z.
const BEFORE_MIDNIGHT: f64 = 1_795_391_999.0;
/// 2026-11-30T23:59:59Z, the last second of November.
const BEFORE_DECEMBER: f64 = 1_796_083_199.0;

#[tokio::test]
async fn a_client_budget_renews_at_the_start_of_its_hour_day_or_month_and_not_before() {
    for (period, last_second, inner_boundary) in [
        ("hour", BEFORE_TWO_PM, None),
        // A day budget outlives the hour boundary before midnight.
        ("day", BEFORE_MIDNIGHT, Some(BEFORE_MIDNIGHT - 3_600.0)),
        // A month budget outlives the day boundary before the month's end.
        ("month", BEFORE_DECEMBER, Some(BEFORE_DECEMBER - 86_400.0)),
    ] {
        let (scratch, clock) = (Scratch::new(), e2e::HandClock::default());
        let config = scratch.config(json!({
            "providers": [{"name": "mock", "library": mock_plugin()}],
            // One echo of "a b c" ($9e-6) spends it.
            "budgets": [{"client": "team-a", "limit_usd": 0.000005, "period": period}]
        }));
        let host = host_on_clock(&config, &clock);
        let start = inner_boundary.unwrap_or(last_second);
        clock.set(start);
        assert!(echo_as_team_a(&host).await.is_ok(), "{period}: unspent");
        assert!(
            budget_spent(&echo_as_team_a(&host).await),
            "{period}: spent by the first call"
        );
        if inner_boundary.is_some() {
            // Across a shorter period's boundary, still within this one.
            clock.set(start + 1.0);
            assert!(
                budget_spent(&echo_as_team_a(&host).await),
                "{period}: a shorter period's boundary does not renew it"
            );
        }
        clock.set(last_second + 0.999);
        assert!(
            budget_spent(&echo_as_team_a(&host).await),
            "{period}: still spent in its last instant"
        );
        clock.set(last_second + 1.0);
        assert!(
            echo_as_team_a(&host).await.is_ok(),
            "{period}: renewed at the boundary"
        );
        assert!(
            budget_spent(&echo_as_team_a(&host).await),
            "{period}: and spent again by that call"
        );
    }
}

#[tokio::test]
async fn a_ledger_batch_whose_write_fails_is_written_with_the_next_one() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({"providers": [{"name": "mock", "library": mock_plugin()}]}));
    let echo = |host: std::sync::Arc<provider_host::Host>, words: &'static str| async move {
        host.chat(provider_sdk::ChatRequest::new(
            "mock/echo",
            vec![provider_sdk::Message::user(words)],
        ))
        .await
        .unwrap();
        // Returns when the writer has tried to write what was recorded so far.
        tokio::task::spawn_blocking(move || host.usage().flush())
            .await
            .unwrap();
    };
    let host = e2e::host_with_keys(&config, &[]);
    let ledger = rusqlite::Connection::open(scratch.path(".provider-host/usage.sqlite3")).unwrap();
    let rows = |db: &rusqlite::Connection| -> i64 {
        db.query_row("SELECT count(*) FROM usage_records", [], |r| r.get(0))
            .unwrap()
    };
    echo(host.clone(), "one").await;
    assert_eq!(rows(&ledger), 1);

    // The table is away when the next batch is written: the write fails.
    ledger
        .execute_batch("ALTER TABLE usage_records RENAME TO usage_records_away")
        .unwrap();
    echo(host.clone(), "one two").await;
    ledger
        .execute_batch("ALTER TABLE usage_records_away RENAME TO usage_records")
        .unwrap();
    assert_eq!(rows(&ledger), 1, "the second record's write failed");

    echo(host.clone(), "one two three").await;
    assert_eq!(
        rows(&ledger),
        3,
        "the failed batch went again with the next"
    );
    let prompts: Vec<i64> = ledger
        .prepare("SELECT prompt_tokens FROM usage_records ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(prompts, [1, 2, 3], "in the order they were recorded");
    drop(host);
    let restarted = e2e::host_with_keys(&config, &[]);
    assert_eq!(restarted.usage().summary().totals.calls, 3);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_typed_counters_unless_openmetrics_is_asked_for() {
    let scratch = Scratch::new();
    let config =
        scratch.config(json!({"providers": [{"name": "mock", "library": e2e::mock_plugin()}]}));
    let server = Server::start(&config).await;
    let chat = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]});
    assert_eq!(send_chat(&server, &chat).await.status(), 200);
    let client = reqwest::Client::new();

    let plain = client.get(server.at("/metrics")).send().await.unwrap();
    assert_eq!(
        plain.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = plain.text().await.unwrap();
    assert!(!text.contains("# EOF"), "0.0.4 text has no EOF marker");
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    let requests: Vec<_> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "provider_host_requests_total")
        .collect();
    assert!(!requests.is_empty(), "{text}");
    assert!(
        requests
            .iter()
            .all(|s| matches!(s.value, prometheus_parse::Value::Counter(_))),
        "a 0.0.4 parser sees counters as counters: {requests:?}"
    );

    let open = client
        .get(server.at("/metrics"))
        .header("accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .unwrap();
    assert_eq!(
        open.headers()["content-type"],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let text = open.text().await.unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    assert!(
        text.contains("# TYPE provider_host_requests counter"),
        "{text}"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_chosen_model_names_share_one_bucket_and_a_long_one_is_refused() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // The upstream answers any model; the mock refuses unknown ones with a 404.
    fake.always(Reply::json(CACHED_COMPLETION));
    let server = start(&config(
        &scratch,
        &fake,
        json!({"circuit_breaker": {"enabled": true}}),
    ))
    .await;
    for i in 0..20 {
        for (provider, status) in [("openai", 200), ("mock", 404)] {
            let model = format!("{provider}/invented-{i}");
            let r = send_chat(
                &server,
                &json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}),
            )
            .await;
            assert_eq!(r.status(), status, "{model}");
        }
    }
    let long = format!("openai/{}", "x".repeat(100_000));
    let refused = send_chat(
        &server,
        &json!({"model": long, "messages": [{"role": "user", "content": "hi"}]}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let text = refused.text().await.unwrap();
    assert!(
        text.len() < 1_000,
        "the name is not echoed back: {} bytes",
        text.len()
    );
    assert!(text.contains("at most 256"), "{text}");

    let summary = usage(&server, None).await;
    let rows: Vec<&String> = summary["models"].as_object().unwrap().keys().collect();
    assert_eq!(rows, ["mock/_other", "openai/_other"], "{summary:#}");
    assert_eq!(summary["models"]["openai/_other"]["calls"], 20);
    let metrics = reqwest::get(server.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!metrics.contains("invented"), "no label per invented name");
    assert!(metrics.contains("model=\"_other\""));
    let status: Value = reqwest::get(server.at("/admin/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let breakers = status["circuit_breakers"].to_string();
    assert!(!breakers.contains("invented"), "{breakers}");
    server.stop().await;
}

/// Answers one `mock/echo` chat through `host` and waits until the ledger writer has
/// tried to write what was recorded so far.
async fn echo_and_flush(host: &std::sync::Arc<provider_host::Host>, words: &str) {
    host.chat(provider_sdk::ChatRequest::new(
        "mock/echo",
        vec![provider_sdk::Message::user(words)],
    ))
    .await
    .unwrap();
    let host = host.clone();
    tokio::task::spawn_blocking(move || host.usage().flush())
        .await
        .unwrap();
}

fn ledger_rows(db: &rusqlite::Connection) -> i64 {
    db.query_row("SELECT count(*) FROM usage_records", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn records_wait_while_the_ledger_refuses_writes_and_all_arrive_once_it_is_back() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({"providers": [{"name": "mock", "library": mock_plugin()}]}));
    let host = e2e::host_with_keys(&config, &[]);
    let ledger = rusqlite::Connection::open(scratch.path(".provider-host/usage.sqlite3")).unwrap();
    echo_and_flush(&host, "one").await;
    // Every write fails for longer than any fixed number of retries (a full disk).
    ledger
        .execute_batch("ALTER TABLE usage_records RENAME TO usage_records_away")
        .unwrap();
    for _ in 0..8 {
        echo_and_flush(&host, "two words").await;
    }
    let status = host.usage().ledger_status();
    assert_eq!(status.state, "degraded");
    assert_eq!(status.pending, 8);
    assert_eq!(status.lost, 0);
    assert!(status.write_failures >= 8, "{status:?}");
    assert!(host.render_metrics().contains("usage_ledger_degraded 1"));
    assert_eq!(host.usage().summary().ledger.state, "degraded");

    ledger
        .execute_batch("ALTER TABLE usage_records_away RENAME TO usage_records")
        .unwrap();
    echo_and_flush(&host, "three words here").await;
    assert_eq!(ledger_rows(&ledger), 10, "nothing was given up");
    let status = host.usage().ledger_status();
    assert_eq!((status.state, status.pending), ("ok", 0));
}

#[tokio::test]
async fn past_max_pending_the_oldest_records_are_given_up_and_counted() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "usage": {"max_pending": 3}
    }));
    let server = Server::start(&config).await;
    let host = server.host.clone();
    let ledger = rusqlite::Connection::open(scratch.path(".provider-host/usage.sqlite3")).unwrap();
    ledger
        .execute_batch("ALTER TABLE usage_records RENAME TO usage_records_away")
        .unwrap();
    for _ in 0..5 {
        echo_and_flush(&host, "x").await;
    }
    let ready: Value = reqwest::get(server.at("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["degraded"], true, "{ready}");
    assert_eq!(ready["ledger"]["lost"], 2, "{ready}");
    assert_eq!(ready["ledger"]["pending"], 3, "{ready}");
    let metrics = host.render_metrics();
    assert!(
        metrics.contains("usage_ledger_lost_records_total 2"),
        "{metrics}"
    );
    assert_eq!(usage(&server, None).await["ledger"]["lost"], 2);
    ledger
        .execute_batch("ALTER TABLE usage_records_away RENAME TO usage_records")
        .unwrap();
    let flushing = host.clone();
    tokio::task::spawn_blocking(move || flushing.usage().flush())
        .await
        .unwrap();
    assert_eq!(ledger_rows(&ledger), 3, "the 3 that waited");
    assert_eq!(host.usage().ledger_status().state, "ok");
    server.stop().await;
}

#[tokio::test]
async fn a_deleted_ledger_folder_is_created_again_and_later_records_survive() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({"providers": [{"name": "mock", "library": mock_plugin()}]}));
    let host = e2e::host_with_keys(&config, &[]);
    echo_and_flush(&host, "before").await;
    std::fs::remove_dir_all(scratch.path(".provider-host")).unwrap();
    for _ in 0..3 {
        echo_and_flush(&host, "after the deletion").await;
    }
    drop(host);
    let restarted = e2e::host_with_keys(&config, &[]);
    assert_eq!(
        restarted.usage().summary().totals.calls,
        3,
        "the records after the deletion are in the new file"
    );
}

#[tokio::test]
async fn a_ledger_locked_at_start_is_still_read_for_its_history_and_written_once_free() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({"providers": [{"name": "mock", "library": mock_plugin()}]}));
    let host = e2e::host_with_keys(&config, &[]);
    for _ in 0..3 {
        echo_and_flush(&host, "a b").await;
    }
    drop(host);
    // Another process holds the write lock while the host starts.
    let ledger = rusqlite::Connection::open(scratch.path(".provider-host/usage.sqlite3")).unwrap();
    ledger.execute_batch("BEGIN IMMEDIATE").unwrap();
    let host = e2e::host_with_keys(&config, &[]);
    let summary = host.usage().summary();
    assert_eq!(
        summary.totals.calls, 3,
        "totals and budgets keep their history"
    );
    assert_eq!(summary.ledger.state, "degraded");
    let answered = host
        .chat(provider_sdk::ChatRequest::new(
            "mock/echo",
            vec![provider_sdk::Message::user("while locked")],
        ))
        .await;
    assert!(answered.is_ok(), "answers go on");
    ledger.execute_batch("COMMIT").unwrap();
    let flushing = host.clone();
    tokio::task::spawn_blocking(move || flushing.usage().flush())
        .await
        .unwrap();
    let status = host.usage().ledger_status();
    assert_eq!((status.state, status.pending, status.lost), ("ok", 0, 0));
    assert_eq!(ledger_rows(&ledger), 4);
}
