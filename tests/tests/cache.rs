//! The response cache, in memory, through the real host and real plugins: the mock for
//! every ingress protocol, and the OpenAI plugin in front of a fake OpenAI upstream
//! where what matters is that a hit never reaches the upstream.

use std::time::Duration;

use e2e::{
    canned::OPENAI_CHAT_COMPLETION,
    client::{self, StreamedAnswer},
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, sdk, sse_data, HandClock, Scratch, Server,
};
use serde_json::{json, Value};

/// What a client got: status, `x-cache` (absent when the model is not cached) and body.
struct Answer {
    status: u16,
    cache: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("JSON ({e}): {}", self.body))
    }
}

/// `POST path` with the raw `body`, as `key` (when given) with `headers`.
async fn post(
    server: &Server,
    path: &str,
    key: Option<&str>,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut request = reqwest::Client::new()
        .post(server.at(path))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("the host answers");
    let status = response.status().as_u16();
    let cache = response
        .headers()
        .get("x-cache")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.text().await.expect("a body");
    Answer {
        status,
        cache,
        body,
    }
}

async fn chat(server: &Server, body: &str) -> Answer {
    post(server, "/v1/chat/completions", None, &[], body).await
}

/// The mock, an alias `cached` (mock/echo, cached a minute), `cached-long` (mock/long)
/// and `plain` (mock/echo, not cached), priced so that savings show; `top` adds to it.
fn mock_config(scratch: &Scratch, top: Value) -> std::path::PathBuf {
    let mut config = json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "models": {
            "cached": {"targets": ["mock/echo"], "cache": {"ttl": 60}},
            "cached-long": {"targets": ["mock/long"], "cache": {"ttl": 60}},
            "plain": {"targets": ["mock/echo"]}
        },
        "pricing": {
            "mock/echo": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0},
            "mock/long": {"input_per_mtok": 1000.0, "output_per_mtok": 2000.0}
        }
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(top.as_object().cloned().unwrap_or_default());
    scratch.config(config)
}

async fn mock_server(scratch: &Scratch, top: Value) -> Server {
    Server::start(&mock_config(scratch, top)).await
}

#[tokio::test]
async fn a_repeated_chat_is_a_hit_whatever_its_field_order_and_whitespace() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let first = chat(
        &server,
        r#"{"model":"cached","messages":[{"role":"user","content":"a b c"}],"temperature":0.2}"#,
    )
    .await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    let again = chat(
        &server,
        r#"{ "temperature": 0.2,
             "messages": [ { "content": "a b c", "role": "user" } ],
             "model": "cached" }"#,
    )
    .await;
    assert_eq!((again.status, again.cache.as_deref()), (200, Some("hit")));
    assert_eq!(
        again.json()["choices"][0]["message"]["content"],
        first.json()["choices"][0]["message"]["content"]
    );
    assert_eq!(again.json()["choices"][0]["message"]["content"], "a b c");

    let other_sampling = chat(
        &server,
        r#"{"model":"cached","messages":[{"role":"user","content":"a b c"}],"temperature":0.9}"#,
    )
    .await;
    assert_eq!(
        other_sampling.cache.as_deref(),
        Some("miss"),
        "another question"
    );

    let uncached = chat(
        &server,
        r#"{"model":"plain","messages":[{"role":"user","content":"a b c"}]}"#,
    )
    .await;
    assert_eq!(uncached.status, 200);
    assert_eq!(uncached.cache, None, "a model without cache says nothing");
    server.stop().await;
}

#[tokio::test]
async fn a_stream_is_kept_whole_replayed_as_a_stream_and_served_to_a_whole_request() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let streamed = r#"{"model":"cached-long","stream":true,"max_tokens":40,"messages":[{"role":"user","content":"go"}]}"#;
    let first = chat(&server, streamed).await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    let replayed = chat(&server, streamed).await;
    assert_eq!(replayed.cache.as_deref(), Some("hit"));
    let (first_text, replayed_text) = (
        StreamedAnswer::parse(&first.body).text(),
        StreamedAnswer::parse(&replayed.body).text(),
    );
    assert_eq!(first_text.split_whitespace().count(), 40);
    assert_eq!(replayed_text, first_text, "the same words, streamed");
    assert_eq!(
        sse_data(&replayed.body).last().map(String::as_str),
        Some("[DONE]")
    );

    let whole = chat(
        &server,
        r#"{"model":"cached-long","max_tokens":40,"messages":[{"role":"user","content":"go"}]}"#,
    )
    .await;
    assert_eq!(
        whole.cache.as_deref(),
        Some("hit"),
        "a stream serves a whole request"
    );
    let whole = whole.json();
    assert_eq!(
        whole["choices"][0]["message"]["content"],
        first_text.as_str()
    );
    assert_eq!(whole["choices"][0]["finish_reason"], "stop");
    server.stop().await;
}

#[tokio::test]
async fn anthropic_messages_are_cached_whole_and_streamed() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let whole = r#"{"model":"cached","max_tokens":64,"messages":[{"role":"user","content":"hello claude"}]}"#;
    let first = post(&server, "/v1/messages", None, &[], whole).await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    let hit = post(&server, "/v1/messages", None, &[], whole).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(hit.json()["type"], "message");
    assert_eq!(hit.json()["content"][0]["text"], "hello claude");
    assert_eq!(hit.json()["content"], first.json()["content"]);

    let streamed = r#"{"model":"cached","max_tokens":64,"stream":true,"messages":[{"role":"user","content":"hello claude"}]}"#;
    let first = post(&server, "/v1/messages", None, &[], streamed).await;
    assert_eq!(
        first.cache.as_deref(),
        Some("miss"),
        "a whole answer has no events to replay"
    );
    let hit = post(&server, "/v1/messages", None, &[], streamed).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    for event in [
        "message_start",
        "content_block_delta",
        "message_delta",
        "message_stop",
    ] {
        assert!(
            hit.body.contains(&format!("event: {event}")),
            "{}",
            hit.body
        );
    }
    let text: String = hit
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["type"] == "content_block_delta")
        .filter_map(|event| event["delta"]["text"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(text, "hello claude", "{}", hit.body);
    server.stop().await;
}

#[tokio::test]
async fn responses_are_cached_whole_and_streamed() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let whole = r#"{"model":"cached","input":"hello responses","store":false}"#;
    let first = post(&server, "/v1/responses", None, &[], whole).await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    let hit = post(&server, "/v1/responses", None, &[], whole).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(hit.json()["status"], "completed");
    assert_eq!(
        hit.json()["output"][0]["content"][0]["text"],
        "hello responses"
    );

    let streamed = r#"{"model":"cached","input":"hello stream","stream":true,"store":false}"#;
    let first = post(&server, "/v1/responses", None, &[], streamed).await;
    assert_eq!(first.cache.as_deref(), Some("miss"));
    let hit = post(&server, "/v1/responses", None, &[], streamed).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert!(hit.body.contains("response.completed"), "{}", hit.body);
    assert!(hit.body.contains("hello stream"), "{}", hit.body);
    server.stop().await;
}

#[tokio::test]
async fn one_tenant_never_sees_another_tenants_answer_unless_the_alias_shares() {
    let scratch = Scratch::new();
    let server = mock_server(
        &scratch,
        json!({
            "auth": {"keys": [{"key": "key-a", "name": "team-a"}, {"key": "key-b", "name": "team-b"}]},
            "models": {
                "cached": {"targets": ["mock/echo"], "cache": {"ttl": 60}},
                "shared": {"targets": ["mock/echo"], "cache": {"ttl": 60, "shared": true}}
            }
        }),
    )
    .await;
    let path = "/v1/chat/completions";
    let body = r#"{"model":"cached","messages":[{"role":"user","content":"private"}]}"#;
    let as_a = post(&server, path, Some("key-a"), &[], body).await;
    assert_eq!(as_a.cache.as_deref(), Some("miss"));
    let a_again = post(&server, path, Some("key-a"), &[], body).await;
    assert_eq!(a_again.cache.as_deref(), Some("hit"));
    let as_b = post(&server, path, Some("key-b"), &[], body).await;
    assert_eq!(
        as_b.cache.as_deref(),
        Some("miss"),
        "team-b has its own cache"
    );

    let shared = r#"{"model":"shared","messages":[{"role":"user","content":"public"}]}"#;
    assert_eq!(
        post(&server, path, Some("key-a"), &[], shared)
            .await
            .cache
            .as_deref(),
        Some("miss")
    );
    assert_eq!(
        post(&server, path, Some("key-b"), &[], shared)
            .await
            .cache
            .as_deref(),
        Some("hit"),
        "an alias that shares on purpose"
    );
    server.stop().await;
}

#[tokio::test]
async fn no_store_neither_reads_nor_keeps_no_cache_refreshes_and_a_request_may_opt_in() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let path = "/v1/chat/completions";
    let body = r#"{"model":"cached","messages":[{"role":"user","content":"secret"}]}"#;
    let no_store = post(&server, path, None, &[("cache-control", "no-store")], body).await;
    assert_eq!((no_store.status, no_store.cache), (200, None));
    assert_eq!(
        post(&server, path, None, &[], body).await.cache.as_deref(),
        Some("miss"),
        "the no-store answer was not kept"
    );
    assert_eq!(
        post(&server, path, None, &[], body).await.cache.as_deref(),
        Some("hit")
    );
    let refreshed = post(
        &server,
        path,
        None,
        &[("x-cache-control", "no-cache")],
        body,
    )
    .await;
    assert_eq!(
        refreshed.cache.as_deref(),
        Some("miss"),
        "no-cache goes upstream"
    );

    let plain = r#"{"model":"plain","messages":[{"role":"user","content":"opt in"}]}"#;
    let opted = post(&server, path, None, &[("x-cache-control", "cache")], plain).await;
    assert_eq!(opted.cache.as_deref(), Some("miss"));
    let opted = post(&server, path, None, &[("x-cache-control", "cache")], plain).await;
    assert_eq!(opted.cache.as_deref(), Some("hit"));
    server.stop().await;
}

#[tokio::test]
async fn an_entry_expires_after_its_ttl_on_the_hosts_clock() {
    let scratch = Scratch::new();
    let clock = HandClock::default();
    clock.set(1_800_000_000.0);
    let host = clock
        .host_builder(&mock_config(&scratch, json!({})))
        .build()
        .expect("config loads");
    let server = Server::serve(host, false).await;
    let body = r#"{"model":"cached","messages":[{"role":"user","content":"tick"}]}"#;
    assert_eq!(chat(&server, body).await.cache.as_deref(), Some("miss"));
    clock.set(1_800_000_059.0);
    assert_eq!(
        chat(&server, body).await.cache.as_deref(),
        Some("hit"),
        "59 s of 60"
    );
    clock.set(1_800_000_060.0);
    assert_eq!(
        chat(&server, body).await.cache.as_deref(),
        Some("miss"),
        "expired"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_flood_of_distinct_requests_stays_under_the_byte_bound_evicting_the_oldest() {
    let scratch = Scratch::new();
    let max_bytes = 32 * 1024;
    let server = mock_server(
        &scratch,
        json!({"cache": {"enabled": true, "max_bytes": max_bytes, "max_entry_bytes": 4096}}),
    )
    .await;
    for i in 0..400 {
        let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": format!("question number {i}")}]});
        let answer = chat(&server, &body.to_string()).await;
        assert_eq!(
            (answer.status, answer.cache.as_deref()),
            (200, Some("miss"))
        );
        let status = server.host.cache().status();
        assert!(status.bytes.unwrap() <= max_bytes, "{status:?}");
    }
    let status = server.host.cache().status();
    eprintln!("after 400 distinct answers: {status:?}");
    assert!(status.evictions > 0, "{status:?}");
    assert_eq!(status.stored, 400);
    assert!(
        status.entries.unwrap() < 400 && status.entries.unwrap() > 10,
        "{status:?}"
    );
    let last = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "question number 399"}]});
    assert_eq!(
        chat(&server, &last.to_string()).await.cache.as_deref(),
        Some("hit")
    );
    let first = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "question number 0"}]});
    assert_eq!(
        chat(&server, &first.to_string()).await.cache.as_deref(),
        Some("miss"),
        "evicted"
    );
    server.stop().await;
}

/// The OpenAI plugin in front of `fake`, passing OpenAI clients through, its model
/// `openai/gpt-4.1` cached through the alias `gpt`; `top` adds to the config.
async fn openai_host(scratch: &Scratch, fake: &FakeUpstream, top: Value) -> Server {
    let entry = client::entry_in_front_of(
        fake,
        "",
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let mut config = json!({
        "providers": [entry],
        "retry": {"max_retries": 0},
        "models": {"gpt": {"targets": ["openai/gpt-4.1"], "cache": {"ttl": 60}}}
    });
    config
        .as_object_mut()
        .unwrap()
        .extend(top.as_object().cloned().unwrap_or_default());
    Server::start(&scratch.config(config)).await
}

/// A real gpt-4o stream with `include_usage` (langchain-ai/langchain,
/// `OPENAI_STREAM_DATA`, as in provider_openai.rs), in its pieces.
const USAGE_STREAM: [&str; 7] = [
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"我是\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"助手\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"。\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":3,\"total_tokens\":17}}\n\n",
    "data: [DONE]\n\n",
];

#[tokio::test]
async fn a_passed_through_answer_is_replayed_byte_for_byte_without_reaching_the_upstream() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let server = openai_host(&scratch, &fake, json!({})).await;
    let body = r#"{"model":"gpt","messages":[{"role":"user","content":"Hello!"}],"a_field_openai_added_last_week":{"x":1}}"#;
    let first = chat(&server, body).await;
    assert_eq!((first.status, first.cache.as_deref()), (200, Some("miss")));
    assert_eq!(first.body, OPENAI_CHAT_COMPLETION);
    let hit = chat(&server, body).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(
        hit.body, OPENAI_CHAT_COMPLETION,
        "the upstream's bytes, from the cache"
    );
    assert_eq!(
        fake.received().len(),
        1,
        "the hit never reached the upstream"
    );

    let unknown_field_changed = body.replace("\"x\":1", "\"x\":2");
    assert_eq!(
        chat(&server, &unknown_field_changed).await.cache.as_deref(),
        Some("miss")
    );
    assert_eq!(fake.received().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_passed_through_stream_is_replayed_and_a_cut_one_is_never_kept() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // First the stream breaks off before its finish, then it comes whole.
    fake.script([
        Reply::sse(&USAGE_STREAM[..3], Duration::from_millis(1)),
        Reply::sse(&USAGE_STREAM, Duration::from_millis(1)),
    ]);
    let server = openai_host(&scratch, &fake, json!({})).await;
    let body = r#"{"model":"gpt","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"who are you?"}]}"#;
    let cut = chat(&server, body).await;
    assert_eq!((cut.status, cut.cache.as_deref()), (200, Some("miss")));
    let whole = chat(&server, body).await;
    assert_eq!(
        whole.cache.as_deref(),
        Some("miss"),
        "the cut stream was not kept"
    );
    assert_eq!(whole.body, USAGE_STREAM.concat());
    let hit = chat(&server, body).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert_eq!(
        hit.body,
        USAGE_STREAM.concat(),
        "the upstream's bytes, replayed"
    );
    assert_eq!(fake.received().len(), 2);

    // Without include_usage the replay, like the relay, keeps the usage-only chunk back.
    let unasked =
        r#"{"model":"gpt","stream":true,"messages":[{"role":"user","content":"who are you?"}]}"#;
    let hit = chat(&server, unasked).await;
    assert_eq!(hit.cache.as_deref(), Some("hit"));
    assert!(!hit.body.contains("\"choices\":[]"), "{}", hit.body);
    assert_eq!(StreamedAnswer::parse(&hit.body).text(), "我是助手。");
    assert_eq!(fake.received().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_hit_bills_no_upstream_tokens_records_the_saved_cost_and_shows_in_admin_and_metrics() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    let body = r#"{"model":"cached","messages":[{"role":"user","content":"one two three four"}]}"#;
    assert_eq!(chat(&server, body).await.cache.as_deref(), Some("miss"));
    assert_eq!(chat(&server, body).await.cache.as_deref(), Some("hit"));
    let usage = server.host.usage().summary();
    let totals = &usage.totals;
    assert_eq!(totals.calls, 2);
    assert_eq!(totals.cache_hits, 1);
    // The miss: 4 prompt and 4 completion tokens at 1000 and 2000 $/Mtok.
    assert_eq!((totals.prompt_tokens, totals.completion_tokens), (4, 4));
    let cost = 4.0 * 1000.0 / 1e6 + 4.0 * 2000.0 / 1e6;
    assert!((totals.cost_usd - cost).abs() < 1e-9, "{totals:?}");
    assert!((totals.saved_usd - cost).abs() < 1e-9, "{totals:?}");

    let admin: Value = reqwest::get(server.at("/admin/cache"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(admin["backend"], "memory");
    assert_eq!(
        (admin["hits"].as_u64(), admin["misses"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(admin["hit_ratio"], 0.5);
    assert_eq!(admin["entries"], 1);
    assert!(
        (admin["saved_usd"].as_f64().unwrap() - cost).abs() < 1e-6,
        "{admin}"
    );

    let metrics = reqwest::get(server.at("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "provider_host_cache_hits_total 1",
        "provider_host_cache_misses_total 1",
        "provider_host_cache_entries 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }
    assert!(
        metrics.contains("provider_host_cache_saved_usd_total"),
        "{metrics}"
    );
    assert!(metrics.contains("provider_host_cache_bytes"), "{metrics}");
    assert!(
        metrics.contains("provider_host_cache_evictions_total"),
        "{metrics}"
    );

    let purged: Value = reqwest::Client::new()
        .delete(server.at("/admin/cache"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(purged["purged"], 1);
    assert_eq!(
        chat(&server, body).await.cache.as_deref(),
        Some("miss"),
        "purged"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_cache_admin_needs_an_admin_key() {
    let scratch = Scratch::new();
    let server = mock_server(
        &scratch,
        json!({"auth": {"keys": ["client-key"], "admin_keys": ["admin-key"]}}),
    )
    .await;
    let http = reqwest::Client::new();
    let as_client = http
        .delete(server.at("/admin/cache"))
        .bearer_auth("client-key")
        .send()
        .await
        .unwrap();
    assert_eq!(as_client.status(), 403);
    let as_admin = http
        .get(server.at("/admin/cache"))
        .bearer_auth("admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(as_admin.status(), 200);
    let purge = http
        .post(server.at("/admin/cache/purge"))
        .bearer_auth("admin-key")
        .send()
        .await
        .unwrap();
    assert_eq!(purge.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn the_official_openai_sdk_reads_cached_answers_whole_and_streamed() {
    let scratch = Scratch::new();
    let server = mock_server(&scratch, json!({})).await;
    // Each answer gets an id of its own, from the cache too; the rest is the same.
    let without_ids = |mut steps: Value| {
        steps["chat:cached"]["id"].take();
        steps["stream:cached"]["ids"].take();
        steps
    };
    let first = without_ids(sdk::openai(&server.url, "any", "chat:cached,stream:cached").await);
    let second = without_ids(sdk::openai(&server.url, "any", "chat:cached,stream:cached").await);
    assert_eq!(
        first["chat:cached"]["content"],
        "Hello from the official SDK"
    );
    assert_eq!(
        first["stream:cached"]["text"],
        "one two three four five six"
    );
    assert_eq!(
        first, second,
        "the SDK sees the same answers from the cache"
    );
    let status = server.host.cache().status();
    assert_eq!((status.hits, status.misses), (2, 2), "{status:?}");
    server.stop().await;
}

/// The mock's embedding of `text` (`mock/embed`, a deterministic unit vector per input).
async fn mock_embedding(server: &Server, text: &str) -> Vec<f64> {
    let body = json!({"model": "mock/embed", "input": text}).to_string();
    let answer = post(server, "/v1/embeddings", None, &[], &body).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer.json()["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

fn cosine(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

fn question(model: &str, text: &str) -> String {
    json!({"model": model, "messages": [{"role": "user", "content": text}]}).to_string()
}

#[tokio::test]
async fn a_prompt_near_a_kept_one_is_a_semantic_hit_above_the_threshold_and_a_miss_below() {
    // The semantic cache embeds `role: text` lines, lower-cased, spaces collapsed. With
    // the mock's embeddings, find a second prompt at a middling similarity to the first,
    // then put one alias's threshold just under it and another's just over it.
    let first = "What is the capital of France?";
    let probe = Scratch::new();
    let embedder = mock_server(&probe, json!({})).await;
    let base = mock_embedding(&embedder, "user: what is the capital of france?").await;
    let mut near = None;
    for i in 0..64 {
        let text = format!("Which city is the capital of France, take {i}?");
        let line = format!("user: {}", text.to_lowercase());
        let similarity = cosine(&base, &mock_embedding(&embedder, &line).await);
        if (0.3..0.9).contains(&similarity) {
            near = Some((text, similarity));
            break;
        }
    }
    embedder.stop().await;
    let (second, similarity) = near.expect("a prompt at a similarity between 0.3 and 0.9");

    let scratch = Scratch::new();
    let semantic = |threshold: f64| json!({"targets": ["mock/echo"], "cache": {"ttl": 60, "semantic": {"embedding_model": "mock/embed", "threshold": threshold}}});
    let server = mock_server(
        &scratch,
        json!({"models": {"loose": semantic(similarity - 0.05), "strict": semantic(similarity + 0.05)}}),
    )
    .await;

    let kept = chat(&server, &question("loose", first)).await;
    assert_eq!((kept.status, kept.cache.as_deref()), (200, Some("miss")));
    let respelled = chat(
        &server,
        &question("loose", "what is  the capital of FRANCE?"),
    )
    .await;
    assert_eq!(respelled.cache.as_deref(), Some("semantic-hit"));
    assert_eq!(
        respelled.json()["choices"][0]["message"]["content"],
        first,
        "the kept answer (the echo of the first prompt)"
    );
    let near_hit = chat(&server, &question("loose", &second)).await;
    assert_eq!(
        near_hit.cache.as_deref(),
        Some("semantic-hit"),
        "similarity {similarity} is above {}",
        similarity - 0.05
    );
    assert_eq!(near_hit.json()["choices"][0]["message"]["content"], first);

    assert_eq!(
        chat(&server, &question("strict", first))
            .await
            .cache
            .as_deref(),
        Some("miss")
    );
    let below = chat(&server, &question("strict", &second)).await;
    assert_eq!(
        below.cache.as_deref(),
        Some("miss"),
        "similarity {similarity} is below {}",
        similarity + 0.05
    );
    assert_eq!(
        below.json()["choices"][0]["message"]["content"],
        second.as_str()
    );

    // Other sampling settings are another space: never served across.
    let warmer = json!({"model": "loose", "temperature": 1.5, "messages": [{"role": "user", "content": first}]});
    assert_eq!(
        chat(&server, &warmer.to_string()).await.cache.as_deref(),
        Some("miss")
    );

    let status = server.host.cache().status();
    assert_eq!((status.hits, status.semantic_hits), (2, 2), "{status:?}");
    server.stop().await;
}
