//! Retries, fallback chains, deadlines, circuit breakers and raw logs, against a
//! fault-injecting fake upstream that speaks OpenAI's wire format, with the mock
//! provider as the healthy fallback.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use e2e::{
    client::{entry_in_front_of, send_chat, with_fields, StreamedAnswer},
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, sse_data, Scratch, Server,
};
use serde_json::{json, Value};

/// OpenAI's documented `chat.completion` body.
const COMPLETION: &str = r#"{"id":"chatcmpl-123","object":"chat.completion","created":1677652288,"model":"gpt-4o-mini","system_fingerprint":"fp_44709d6fcb","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there, how may I assist you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":12,"total_tokens":21}}"#;

/// OpenAI's documented error bodies.
const SERVER_ERROR: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
const RATE_LIMITED: &str = r#"{"error":{"message":"Rate limit reached for gpt-4o-mini in organization org-123 on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
const OVERLOADED: &str = r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#;
const BAD_REQUEST: &str = r#"{"error":{"message":"Invalid value for 'temperature': expected a number.","type":"invalid_request_error","param":"temperature","code":null}}"#;
const CONTEXT: &str = r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#;
const BAD_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-e2e-res****. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

fn chunk(content: &str) -> String {
    format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"finish_reason\":null}}]}}\n\n")
}

/// An entry called `primary`: the openai plugin over `fake`, its key in `key_env`.
fn primary_entry(fake: &FakeUpstream, key_env: &str) -> Value {
    let fields =
        json!({"name": "primary", "library": plugin("openai_provider"), "base_url": "/v1"});
    entry_in_front_of(fake, key_env, fields)
}

/// A host whose `primary` entry is the openai plugin over `fake`, with `mock` beside it
/// and an alias `chain` = primary, then mock. `extra` is merged into the top level.
async fn host(scratch: &Scratch, fake: &FakeUpstream, extra: Value) -> Server {
    let config = json!({
        "providers": [
            primary_entry(fake, "E2E_RESILIENCE_KEY"),
            {"name": "mock", "library": mock_plugin()}
        ],
        "models": {"chain": {"targets": ["primary/gpt-4o-mini", "mock/echo"]}},
        "retry": {"max_retries": 2, "delay": 0.05, "max_delay": 0.2},
        "timeouts": {"first_byte": 1.0, "idle": 1.0},
        "circuit_breaker": {"enabled": false}
    });
    Server::start_with_keys(
        &scratch.config(with_fields(config, extra)),
        &[("E2E_RESILIENCE_KEY", "sk-e2e-resilience-secret")],
    )
    .await
}

async fn chat(server: &Server, model: &str, stream: bool) -> reqwest::Response {
    let request = json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "ping"}]});
    send_chat(server, &request).await
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// `/admin/providers`, and in it the entry of the provider called `name`.
async fn provider_status(server: &Server, name: &str) -> (Value, Value) {
    let status: Value = reqwest::get(server.at("/admin/providers"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let provider = status["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap()
        .clone();
    (status, provider)
}

fn gaps(fake: &FakeUpstream) -> Vec<Duration> {
    let at: Vec<Instant> = fake.received().iter().map(|r| r.at).collect();
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

#[tokio::test]
async fn a_transient_failure_is_retried_after_exponential_jittered_waits_up_to_the_cap() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::status_json(500, SERVER_ERROR),
        Reply::status_json(503, OVERLOADED),
        Reply::status_json(500, SERVER_ERROR),
        Reply::json(COMPLETION),
    ]);
    let config = scratch.config(json!({
        "providers": [primary_entry(&fake, "E2E_PRIMARY_KEY")],
        // Binary fractions, so every wait below is exact: 1/16 s, capped at 3/16 s.
        "retry": {"max_retries": 3, "delay": 0.0625, "max_delay": 0.1875},
        "circuit_breaker": {"enabled": false}
    }));
    // The jitter the waits are drawn with, in order.
    let draws = Arc::new(Mutex::new(vec![1.0, 0.5, 1.0].into_iter()));
    let host = provider_host::Host::builder()
        .config_file(&config)
        .api_keys(e2e::key_lookup(&[("E2E_PRIMARY_KEY", "sk-primary")]))
        .jitter(move || draws.lock().unwrap().next().expect("one draw per wait"))
        .build()
        .unwrap();
    let done = host.chat(hello_to("primary/gpt-4o-mini")).await.unwrap();
    assert_eq!(done.route.attempts, 4);
    assert_eq!(done.route.fallback_index, 0);
    let ms = |m: f64| Duration::from_secs_f64(m / 1000.0);
    assert_eq!(
        done.route.backoffs,
        [
            ms(62.5),  // retry 0: the whole of delay * 2^0
            ms(62.5),  // retry 1: half of delay * 2^1
            ms(187.5), // retry 2: all of min(delay * 2^2, max_delay): the cap
        ]
    );
    // And the host did wait them: each retry arrived no sooner than its wait.
    let gaps = gaps(&fake);
    for (gap, wait) in gaps.iter().zip(&done.route.backoffs) {
        assert!(gap >= wait, "{gaps:?} vs {:?}", done.route.backoffs);
    }
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::status_json(429, RATE_LIMITED).with_header("retry-after-ms", "180"),
        Reply::json(COMPLETION),
    ]);
    let server = host(
        &scratch,
        &fake,
        json!({"retry": {"max_retries": 2, "delay": 0.01, "max_delay": 1.0}}),
    )
    .await;
    let response = chat(&server, "primary/gpt-4o-mini", false).await;
    assert_eq!(response.status(), 200);
    let gaps = gaps(&fake);
    assert!(
        gaps[0] >= Duration::from_millis(180),
        "waited only {:?}",
        gaps[0]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_request_the_client_got_wrong_is_neither_retried_nor_sent_elsewhere() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::status_json(400, BAD_REQUEST));
    let server = host(&scratch, &fake, json!({})).await;
    let response = chat(&server, "chain", false).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("temperature"),
        "{body}"
    );
    assert_eq!(fake.received().len(), 1, "one attempt, no retry");
    server.stop().await;
}

#[tokio::test]
async fn every_way_the_primary_fails_falls_back_to_the_healthy_target() {
    let huge = Reply::Full {
        status: 500,
        headers: vec![],
        body: vec![b'x'; 4 * 1024 * 1024],
    };
    let failures: Vec<(&str, Reply)> = vec![
        (
            "429 with retry-after",
            Reply::status_json(429, RATE_LIMITED).with_header("retry-after", "0"),
        ),
        ("500", Reply::status_json(500, SERVER_ERROR)),
        ("503", Reply::status_json(503, OVERLOADED)),
        ("529", Reply::status_json(529, OVERLOADED)),
        ("connection closed", Reply::Close),
        ("hang past the timeout", Reply::Hang),
        (
            "malformed JSON",
            Reply::json("{\"id\": \"chatcmpl-1\", \"choices\": ["),
        ),
        ("huge error body", huge),
        ("rejected key", Reply::status_json(401, BAD_KEY)),
    ];
    for (what, reply) in failures {
        let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
        fake.always(reply);
        let server = host(&scratch, &fake, json!({"timeouts": {"first_byte": 0.3}, "retry": {"max_retries": 1, "delay": 0.01, "max_delay": 0.02}})).await;
        let started = Instant::now();
        let response = chat(&server, "chain", false).await;
        assert_eq!(response.status(), 200, "{what}");
        assert_eq!(header(&response, "x-provider"), "mock", "{what}");
        assert_eq!(header(&response, "x-fallback-index"), "1", "{what}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["choices"][0]["message"]["content"], "ping", "{what}");
        // The 0.3 s first-byte timeout ends a hang, not the 300 s request timeout.
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{what} took {:?}",
            started.elapsed()
        );
        server.stop().await;
    }
}

#[tokio::test]
async fn a_context_window_error_falls_back_only_to_larger_context_targets() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::status_json(400, CONTEXT));
    let server = host(
        &scratch,
        &fake,
        json!({"models": {"chain": {"targets": ["primary/gpt-4o-mini", "mock/echo", {"target": "mock/tool", "larger_context": true}]}}}),
    )
    .await;
    let response = chat(&server, "chain", false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        header(&response, "x-model"),
        "tool",
        "mock/echo is skipped: not larger-context"
    );
    assert_eq!(header(&response, "x-fallback-index"), "2");

    let server2 = host(&scratch, &fake, json!({})).await;
    let response = chat(&server2, "chain", false).await;
    assert_eq!(
        response.status(),
        400,
        "no larger-context target: the client learns its prompt is too long"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "context_length_exceeded");
    server.stop().await;
    server2.stop().await;
}

#[tokio::test]
async fn a_stream_falls_back_before_its_first_byte_and_ends_cleanly_after() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // Cut before any event: the client never saw a byte, so the mock answers instead.
    fake.always(Reply::Stream {
        status: 200,
        pieces: vec![b"data: {\"id\":".to_vec()],
        pause: Duration::ZERO,
        then_hang: false,
    });
    let server = host(&scratch, &fake, json!({"retry": {"max_retries": 0}})).await;
    let response = chat(&server, "chain", true).await;
    assert_eq!(header(&response, "x-provider"), "mock");
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    assert!(
        data.iter().any(|d| d.contains("\"content\":\"ping\"")),
        "{data:?}"
    );
    server.stop().await;

    // Cut after the first event: too late to switch; an error event ends the stream.
    let fake = FakeUpstream::start().await;
    let first = chunk("Hel");
    fake.always(Reply::Stream {
        status: 200,
        pieces: vec![first.into_bytes(), b"data: {\"id\":".to_vec()],
        pause: Duration::from_millis(5),
        then_hang: false,
    });
    let server = host(&scratch, &fake, json!({"retry": {"max_retries": 0}})).await;
    let response = chat(&server, "chain", true).await;
    assert_eq!(header(&response, "x-provider"), "primary");
    let body = response.text().await.unwrap();
    let data = sse_data(&body);
    assert!(
        data.iter().any(|d| d.contains("\"content\":\"Hel\"")),
        "{data:?}"
    );
    let streamed = StreamedAnswer::parse(&body);
    let error = streamed.errors.first().expect("an error event");
    assert_eq!(
        error["error"]["code"], "upstream_connection_failed",
        "{error}"
    );
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "the stream still ends cleanly"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_request_timeout_bounds_retries_and_fallbacks() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::Hang);
    let server = host(
        &scratch,
        &fake,
        json!({
            "request_timeout": 0.8,
            "timeouts": {"first_byte": 30.0},
            "retry": {"max_retries": 5, "delay": 0.1, "max_delay": 0.2},
            "models": {"chain": {"targets": ["primary/gpt-4o-mini", "primary/gpt-4o"]}}
        }),
    )
    .await;
    let started = Instant::now();
    let response = chat(&server, "chain", false).await;
    let took = started.elapsed();
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("the request timeout of 0.8s ran out"),
        "{message}"
    );
    // Never before the deadline; and long before one 30 s first-byte wait would end.
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(20),
        "took {took:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_failing_provider_trips_its_breaker_is_skipped_then_probed_back() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // Connections closed without an answer: the provider's own failure.
    fake.always(Reply::Close);
    let server = host(
        &scratch,
        &fake,
        json!({
            "retry": {"max_retries": 0},
            "circuit_breaker": {"enabled": true, "consecutive_failures": 2, "open_for": 0.5, "min_calls": 100}
        }),
    )
    .await;
    for _ in 0..2 {
        assert_eq!(
            header(&chat(&server, "chain", false).await, "x-provider"),
            "mock"
        );
    }
    assert_eq!(fake.received().len(), 2);
    let (status, primary) = provider_status(&server, "primary").await;
    assert_eq!(primary["circuit"], "open", "{status:#}");
    let response = chat(&server, "chain", false).await;
    assert_eq!(header(&response, "x-provider"), "mock");
    assert_eq!(
        fake.received().len(),
        2,
        "the open breaker skipped the primary"
    );
    let direct = chat(&server, "primary/gpt-4o-mini", false).await;
    assert_eq!(
        direct.status(),
        503,
        "no other target: the client is told the circuit is open"
    );

    fake.always(Reply::json(COMPLETION));
    tokio::time::sleep(Duration::from_millis(550)).await;
    let probe = chat(&server, "chain", false).await;
    assert_eq!(
        header(&probe, "x-provider"),
        "primary",
        "the probe went through and succeeded"
    );
    let (_, primary) = provider_status(&server, "primary").await;
    assert_eq!(primary["circuit"], "closed");
    server.stop().await;
}

#[tokio::test]
async fn raw_logs_record_every_attempt_with_credentials_redacted() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::status_json(
            401,
            BAD_KEY
                .replace("sk-e2e-res****", "sk-e2e-resilience-secret")
                .leak(),
        ),
        Reply::json(COMPLETION),
    ]);
    let log = scratch.path("raw.jsonl");
    let server = host(
        &scratch,
        &fake,
        json!({"raw_log": {"to": log, "max_body_bytes": 64}}),
    )
    .await;
    assert_eq!(chat(&server, "chain", false).await.status(), 200);
    assert_eq!(
        chat(&server, "primary/gpt-4o-mini", false).await.status(),
        200
    );
    server.stop().await;
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        !text.contains("sk-e2e-resilience-secret"),
        "the key never reaches the log:\n{text}"
    );
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 4, "request and response, twice:\n{text}");
    assert_eq!(records[0]["direction"], "request");
    assert_eq!(records[0]["method"], "POST");
    assert!(
        records[0]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h[0] == "authorization" && h[1] == "***"),
        "{}",
        records[0]
    );
    assert_eq!(records[1]["status"], 401);
    assert_eq!(records[1]["exchange"], records[0]["exchange"]);
    assert!(
        records
            .iter()
            .all(|r| r["body"].as_str().unwrap().len() <= 64),
        "bodies are capped"
    );
    assert_eq!(records[1]["truncated"], true);
}

#[tokio::test]
async fn embedders_receive_the_same_records_through_a_callback() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(COMPLETION));
    let config =
        scratch.config(json!({"providers": [primary_entry(&fake, "E2E_RESILIENCE_CB_KEY")]}));
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let host = provider_host::Host::builder()
        .config_file(&config)
        .api_keys(e2e::key_lookup(&[(
            "E2E_RESILIENCE_CB_KEY",
            "sk-callback-secret",
        )]))
        .on_upstream_record(move |record| {
            sink.lock()
                .unwrap()
                .push(serde_json::to_string(record).unwrap())
        })
        .build()
        .unwrap();
    let done = host
        .chat(provider_sdk::ChatRequest::new(
            "primary/gpt-4o-mini",
            vec![provider_sdk::Message::user("hi")],
        ))
        .await
        .unwrap();
    assert_eq!(
        done.response.message.content.as_deref(),
        Some("Hello there, how may I assist you today?")
    );
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[1].contains("\"status\":200"));
    assert!(seen.iter().all(|r| !r.contains("sk-callback-secret")));
}

fn with_image(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    ]}]})
}

#[tokio::test]
async fn a_request_needing_a_capability_a_target_lacks_skips_it_or_is_refused_naming_it() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(COMPLETION));
    let server = host(
        &scratch,
        &fake,
        json!({"models": {"chain": {"targets": ["mock/echo", "primary/gpt-4o-mini"]}}}),
    )
    .await;
    let refused = send_chat(&server, &with_image("mock/echo")).await;
    assert_eq!(refused.status(), 400);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_capability");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("image input (vision)"),
        "{body}"
    );
    let skipped = send_chat(&server, &with_image("chain")).await;
    assert_eq!(skipped.status(), 200);
    assert_eq!(
        header(&skipped, "x-provider"),
        "primary",
        "mock offers no vision, so the chain moved on"
    );
    assert_eq!(header(&skipped, "x-fallback-index"), "1");
    assert_eq!(fake.received().len(), 1);
    server.stop().await;
}

#[tokio::test]
async fn a_health_check_makes_one_cheap_live_call_and_reports_latency_or_the_classified_error() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::json(r#"{"object":"list","data":[{"id":"gpt-4o-mini","object":"model","created":1721172741,"owned_by":"system"}]}"#),
        Reply::status_json(401, &BAD_KEY.replace("sk-e2e-res****", "sk-e2e-resilience-secret")),
    ]);
    let server = host(&scratch, &fake, json!({})).await;
    let client = reqwest::Client::new();
    let check = |name: &'static str| {
        let (client, server) = (&client, &server);
        async move {
            client
                .post(server.at(&format!("/admin/providers/{name}/check")))
                .send()
                .await
                .unwrap()
        }
    };
    let healthy: Value = check("primary").await.json().await.unwrap();
    assert_eq!(healthy["healthy"], true, "{healthy}");
    assert_eq!(healthy["status"], 200);
    assert_eq!(healthy["probe"], format!("GET {}/v1/models", fake.url));
    assert!(healthy["latency_ms"].as_f64().unwrap() > 0.0);
    let received = fake.received();
    assert_eq!(
        (received[0].method.as_str(), received[0].target.as_str()),
        ("GET", "/v1/models")
    );
    assert_eq!(
        received[0].header("authorization"),
        Some("Bearer sk-e2e-resilience-secret")
    );

    let broken: Value = check("primary").await.json().await.unwrap();
    assert_eq!(broken["healthy"], false);
    assert_eq!(broken["kind"], "authentication");
    assert!(
        !broken.to_string().contains("sk-e2e-resilience-secret"),
        "{broken}"
    );
    let mock: Value = check("mock").await.json().await.unwrap();
    assert_eq!(
        (mock["healthy"].as_bool(), mock["probe"].as_str()),
        (Some(true), Some("one-token chat to echo"))
    );
    assert_eq!(check("nobody").await.status(), 404);
    server.stop().await;
}

/// A key with characters that JSON escaping and percent-encoding both change.
const ODD_KEY: &str = r#"sk-e2e/raw+log="key"\0123456789"#;

/// The forms [`ODD_KEY`] takes when an upstream quotes it back: literal, in a JSON
/// string (as serde_json escapes it, and with `/` escaped too), and percent-encoded in
/// upper- and lowercase hex (form encoding, as in the query string the transport
/// writes, gives the uppercase form for this key).
fn odd_key_forms() -> Vec<(&'static str, String)> {
    let json = serde_json::to_string(ODD_KEY).unwrap();
    let json = json[1..json.len() - 1].to_owned();
    let upper = r#"sk-e2e%2Fraw%2Blog%3D%22key%22%5C0123456789"#.to_owned();
    vec![
        ("literal", ODD_KEY.to_owned()),
        ("json", json.clone()),
        ("json with \\/", json.replace('/', "\\/")),
        ("percent", upper.clone()),
        ("percent lowercase", upper.to_lowercase()),
    ]
}

#[tokio::test]
async fn the_raw_log_masks_a_quoted_key_in_every_encoding_wherever_the_cap_cuts_it() {
    const CAP: usize = 64;
    let fake = FakeUpstream::start().await;
    let mut cases = Vec::new();
    for (encoding, form) in odd_key_forms() {
        // Where the key starts: at the start, across the cut, ending exactly at the
        // cut, and at the end of a body shorter than the cap.
        let placements = [
            ("at the start", 0, 100),
            ("across the cut", CAP - form.len() / 2, 100),
            ("ending at the cut", CAP - form.len(), 100),
            ("at the end of a short body", 3, 3 + form.len()),
        ];
        for (place, start, total) in placements {
            let mut body = vec![b'.'; total.max(start + form.len())];
            body[start..start + form.len()].copy_from_slice(form.as_bytes());
            // Whole, and in two pieces split at the cut.
            let split = CAP.min(body.len());
            fake.script([
                Reply::Full {
                    status: 400,
                    headers: vec![],
                    body: body.clone(),
                },
                Reply::Stream {
                    status: 400,
                    pieces: vec![body[..split].to_vec(), body[split..].to_vec()],
                    pause: Duration::from_millis(1),
                    then_hang: false,
                },
            ]);
            cases.push(format!("{encoding} {place}"));
            cases.push(format!("{encoding} {place}, in two pieces"));
        }
    }
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [primary_entry(&fake, "E2E_ODD_KEY")],
        "raw_log": {"to": scratch.path("raw.jsonl"), "max_body_bytes": CAP}
    }));
    let seen: Arc<Mutex<Vec<provider_host::transport::rawlog::UpstreamRecord>>> = Arc::default();
    let sink = seen.clone();
    let host = provider_host::Host::builder()
        .config_file(&config)
        .api_keys(|name| (name == "E2E_ODD_KEY").then(|| ODD_KEY.to_owned()))
        .on_upstream_record(move |record| sink.lock().unwrap().push(record.clone()))
        .build()
        .unwrap();
    for case in &cases {
        let answer = host
            .chat(provider_sdk::ChatRequest::new(
                "primary/gpt-4o-mini",
                vec![provider_sdk::Message::user("hi")],
            ))
            .await;
        assert!(answer.is_err(), "{case}: the fake answered 400");
    }
    let responses: Vec<_> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.direction == "response")
        .cloned()
        .collect();
    assert_eq!(responses.len(), cases.len());
    for (case, record) in cases.iter().zip(&responses) {
        assert!(
            !record.body.contains("sk-e2e"),
            "{case}: part of the key reached the log: {:?}",
            record.body
        );
        assert!(
            record.body.contains("***"),
            "{case}: the key started before the cut, so its mask shows: {:?}",
            record.body
        );
        assert!(record.body.len() <= CAP, "{case}: {:?}", record.body);
    }
    let file = std::fs::read_to_string(scratch.path("raw.jsonl")).unwrap();
    assert!(!file.contains("sk-e2e"), "the file holds the same records");
}

/// A breaker that opens on the first failure and stays open for 50 ms.
fn quick_breaker() -> Value {
    json!({"enabled": true, "consecutive_failures": 1, "open_for": 0.05, "min_calls": 100})
}

fn hello_to(model: &str) -> provider_sdk::ChatRequest {
    provider_sdk::ChatRequest::new(model, vec![provider_sdk::Message::user("hi")])
}

/// Fails one call to `primary/gpt-4o-mini` (the fake's first reply must be a failure),
/// which opens its breakers, and waits until they would let a probe through.
async fn trip_primary(host: &provider_host::Host) {
    assert!(host.chat(hello_to("primary/gpt-4o-mini")).await.is_err());
    assert!(matches!(
        host.breakers().state("primary/gpt-4o-mini"),
        provider_host::breaker::BreakerState::Open { .. }
    ));
    // open_for is 50 ms; waiting longer only makes the breaker readier.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn a_request_past_its_deadline_leaves_an_expired_breaker_ready_for_a_probe() {
    let (scratch, fake, slow) = (
        Scratch::new(),
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    );
    fake.script([Reply::status_json(500, SERVER_ERROR)]);
    fake.always(Reply::json(COMPLETION));
    slow.always(Reply::Hang);
    let slow_entry = entry_in_front_of(
        &slow,
        "E2E_SLOW_KEY",
        json!({"name": "slow", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({
        "providers": [primary_entry(&fake, "E2E_PRIMARY_KEY"), slow_entry],
        // The slow target uses up the whole request deadline; the primary comes after.
        "models": {"late": {"targets": ["slow/gpt-4o-mini", "primary/gpt-4o-mini"]}},
        "request_timeout": 1.0,
        "timeouts": {"first_byte": 30.0},
        "retry": {"max_retries": 0},
        "circuit_breaker": quick_breaker()
    }));
    let host = e2e::host_with_keys(
        &config,
        &[
            ("E2E_PRIMARY_KEY", "sk-primary"),
            ("E2E_SLOW_KEY", "sk-slow"),
        ],
    );
    trip_primary(&host).await;

    let late = host.chat(hello_to("late")).await.unwrap_err();
    assert_eq!(late.http_status(), 504, "{late}");
    assert_eq!(fake.received().len(), 1, "the primary was never called");
    assert!(
        !matches!(
            host.breakers().state("primary"),
            provider_host::breaker::BreakerState::HalfOpen
        ),
        "no probe went out, so the breaker is not waiting for one"
    );
    let probe = host.chat(hello_to("primary/gpt-4o-mini")).await.unwrap();
    assert_eq!(
        probe.target.provider, "primary",
        "the next call was the probe"
    );
    assert_eq!(
        host.breakers().state("primary/gpt-4o-mini"),
        provider_host::breaker::BreakerState::Closed
    );
}

#[tokio::test]
async fn a_probe_whose_client_goes_away_hands_the_breaker_to_the_next_call() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // A 5xx to open the model's breaker, then a probe that never gets an answer.
    fake.script([Reply::status_json(500, SERVER_ERROR), Reply::Hang]);
    fake.always(Reply::json(COMPLETION));
    let config = scratch.config(json!({
        "providers": [primary_entry(&fake, "E2E_PRIMARY_KEY")],
        "timeouts": {"first_byte": 60.0},
        "retry": {"max_retries": 0},
        "circuit_breaker": quick_breaker()
    }));
    let host = e2e::host_with_keys(&config, &[("E2E_PRIMARY_KEY", "sk-primary")]);
    trip_primary(&host).await;

    let caller = host.clone();
    let probe = tokio::spawn(async move { caller.chat(hello_to("primary/gpt-4o-mini")).await });
    fake.until_received(2).await;
    assert_eq!(
        host.breakers().state("primary/gpt-4o-mini"),
        provider_host::breaker::BreakerState::HalfOpen,
        "the probe is in flight"
    );
    // The client goes away mid-probe.
    probe.abort();
    assert!(probe.await.unwrap_err().is_cancelled());

    let next = host.chat(hello_to("primary/gpt-4o-mini")).await.unwrap();
    assert_eq!(next.target.provider, "primary", "the next call probed");
    assert_eq!(fake.received().len(), 3);
    assert_eq!(
        host.breakers().state("primary/gpt-4o-mini"),
        provider_host::breaker::BreakerState::Closed
    );
}

/// `mock/fail` answers with the error kind its message names.
async fn fail_with(server: &Server, kind: &str) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/fail", "messages": [{"role": "user", "content": kind}]}))
        .send()
        .await
        .expect("the host answers")
}

#[tokio::test]
async fn one_broken_model_opens_its_own_breaker_and_the_providers_other_models_keep_serving() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "retry": {"max_retries": 2, "delay": 0.001, "max_delay": 0.001},
        "circuit_breaker": {"enabled": true, "consecutive_failures": 5, "open_for": 30, "min_calls": 100}
    }));
    let server = Server::start(&config).await;
    // Two requests, six attempts, every one a 5xx of `mock/fail`.
    for _ in 0..2 {
        assert_eq!(fail_with(&server, "provider_service").await.status(), 502);
    }
    assert_eq!(
        fail_with(&server, "provider_service").await.status(),
        503,
        "the broken model's own breaker is open"
    );
    let echo = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(
            &json!({"model": "mock/echo", "messages": [{"role": "user", "content": "still here"}]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        echo.status(),
        200,
        "the provider's other models still answer"
    );
    let (_, mock) = provider_status(&server, "mock").await;
    assert_eq!(mock["circuit"], "closed", "{mock:#}");
    server.stop().await;
}

#[tokio::test]
async fn the_providers_own_failures_open_the_providers_breaker() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "retry": {"max_retries": 0},
        "circuit_breaker": {"enabled": true, "consecutive_failures": 2, "open_for": 30, "min_calls": 100}
    }));
    let server = Server::start(&config).await;
    for _ in 0..2 {
        assert_eq!(fail_with(&server, "authentication").await.status(), 502);
    }
    let (_, mock) = provider_status(&server, "mock").await;
    assert_eq!(mock["circuit"], "open", "{mock:#}");
    let echo = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        echo.status(),
        503,
        "every model of a provider failing so is skipped"
    );
    server.stop().await;
}
