//! `POST /v1/embeddings` end to end: over HTTP, through the real plugin files, against
//! wire-exact fakes of OpenAI and Gemini.

use base64::Engine as _;
use e2e::{
    client::{entry_in_front_of, error_type_and_code, only_request, with_fields},
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, Scratch, Server,
};
use serde_json::{json, Value};

/// An OpenAI embeddings answer in the documented shape ("Create embeddings" in OpenAI's
/// API reference), two short vectors.
const OPENAI_EMBEDDINGS: &str = r#"{
  "object": "list",
  "data": [
    {
      "object": "embedding",
      "embedding": [
        0.0023064255,
        -0.009327292,
        -0.0028842222
      ],
      "index": 0
    },
    {
      "object": "embedding",
      "embedding": [
        0.5,
        -0.25,
        0.125
      ],
      "index": 1
    }
  ],
  "model": "text-embedding-3-small",
  "usage": {
    "prompt_tokens": 8,
    "total_tokens": 8
  }
}"#;

/// A Gemini `BatchEmbedContentsResponse` ("embeddings": one `ContentEmbedding` per
/// request, in order).
const GEMINI_EMBEDDINGS: &str = r#"{
  "embeddings": [
    {
      "values": [
        0.013168523,
        -0.008711934,
        -0.046782676
      ]
    }
  ]
}"#;

/// A 500 as OpenAI sends it.
const OPENAI_500: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;

async fn embed(server: &Server, body: &Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let response = reqwest::Client::new()
        .post(server.at("/v1/embeddings"))
        .json(body)
        .send()
        .await
        .expect("the host answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.expect("a JSON body");
    (status, headers, body)
}

/// The vectors of an embeddings list, floats or base64 decoded, checking the list's shape.
fn vectors(body: &Value) -> Vec<Vec<f32>> {
    assert_eq!(body["object"], "list", "{body}");
    let data = body["data"].as_array().unwrap_or_else(|| panic!("{body}"));
    data.iter()
        .enumerate()
        .map(|(i, item)| {
            assert_eq!(item["object"], "embedding", "{item}");
            assert_eq!(item["index"], i, "{item}");
            match &item["embedding"] {
                Value::Array(numbers) => {
                    numbers.iter().map(|n| n.as_f64().unwrap() as f32).collect()
                }
                Value::String(encoded) => {
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(encoded)
                        .expect("base64");
                    bytes
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect()
                }
                other => panic!("not an embedding: {other}"),
            }
        })
        .collect()
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

async fn usage(server: &Server) -> Value {
    reqwest::get(server.at("/admin/usage"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-15)
}

/// A host with the mock and an `openai` entry (with `entry` fields) in front of
/// `fake`, plus `top` fields.
async fn openai_host(
    scratch: &Scratch,
    fake: &FakeUpstream,
    key_env: &str,
    entry: Value,
    top: Value,
) -> Server {
    std::env::set_var(key_env, "sk-embeddings-test");
    let openai = with_fields(
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
        entry,
    );
    let config = json!({
        "providers": [
            entry_in_front_of(fake, key_env, openai),
            {"name": "mock", "library": mock_plugin()}
        ],
        "circuit_breaker": {"enabled": false}
    });
    Server::start(&scratch.config(with_fields(config, top))).await
}

#[tokio::test]
async fn the_mock_gives_the_same_unit_vector_for_the_same_input_at_the_asked_length() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let (status, headers, body) = embed(
        &server,
        &json!({"model": "mock/embed", "input": ["a red fox", "a blue whale", "a red fox"]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-provider"), "mock");
    assert_eq!(header(&headers, "x-model"), "embed");
    assert_eq!(body["model"], "mock/embed");
    let vectors = vectors(&body);
    assert_eq!(vectors.len(), 3);
    assert_eq!(vectors[0], vectors[2], "same input, same vector");
    assert_ne!(vectors[0], vectors[1]);
    for vector in &vectors {
        assert_eq!(vector.len(), 8, "8 dimensions by default");
        let norm = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "unit length: {norm}");
    }
    // Tokens are words: 3 + 3 + 3.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 9, "total_tokens": 9})
    );

    let (_, _, again) = embed(
        &server,
        &json!({"model": "mock/embed", "input": "a red fox", "dimensions": 3}),
    )
    .await;
    let short = e2e_vectors_one(&again);
    assert_eq!(short.len(), 3, "dimensions honoured: {again}");
    let (_, _, same) = embed(
        &server,
        &json!({"model": "mock/embed", "input": "a red fox"}),
    )
    .await;
    assert_eq!(
        e2e_vectors_one(&same),
        vectors[0],
        "a single string is one input"
    );
    server.stop().await;
}

fn e2e_vectors_one(body: &Value) -> Vec<f32> {
    let mut all = vectors(body);
    assert_eq!(all.len(), 1, "{body}");
    all.remove(0)
}

#[tokio::test]
async fn base64_is_the_little_endian_f32s_of_the_float_answer() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let request = |encoding: &str| json!({"model": "mock/embed", "input": ["one", "two"], "dimensions": 16, "encoding_format": encoding});
    let (_, _, floats) = embed(&server, &request("float")).await;
    let (status, _, encoded) = embed(&server, &request("base64")).await;
    assert_eq!(status, 200, "{encoded}");
    assert!(
        encoded["data"][0]["embedding"].is_string(),
        "base64 strings: {encoded}"
    );
    assert!(floats["data"][0]["embedding"].is_array(), "{floats}");
    assert_eq!(vectors(&encoded), vectors(&floats));
    assert_eq!(encoded["usage"], floats["usage"]);
    server.stop().await;
}

#[tokio::test]
async fn translated_the_upstream_is_asked_for_floats_and_the_client_gets_its_encoding_with_usage_and_cost(
) {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(OPENAI_EMBEDDINGS));
    let server = openai_host(
        &scratch,
        &fake,
        "E2E_EMBEDDINGS_OPENAI_KEY",
        json!({"passthrough": false}),
        json!({"pricing": {"openai/text-embedding-3-small": {"input_per_mtok": 0.02, "output_per_mtok": 0.0}}}),
    )
    .await;
    let (status, headers, body) = embed(
        &server,
        &json!({"model": "openai/text-embedding-3-small", "input": ["The food was delicious", "and the waiter"],
                "dimensions": 3, "user": "user-1234", "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-provider"), "openai");

    let sent = only_request(&fake);
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/v1/embeddings")
    );
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer sk-embeddings-test")
    );
    assert_eq!(
        sent.json(),
        json!({"model": "text-embedding-3-small", "input": ["The food was delicious", "and the waiter"],
               "dimensions": 3, "user": "user-1234"}),
        "floats are asked for by OpenAI's default, no encoding_format"
    );

    assert!(
        body["data"][0]["embedding"].is_string(),
        "base64, as asked: {body}"
    );
    assert_eq!(
        vectors(&body),
        vec![
            vec![0.0023064255, -0.009327292, -0.0028842222],
            vec![0.5, -0.25, 0.125]
        ]
    );
    assert_eq!(body["model"], "openai/text-embedding-3-small");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 8, "total_tokens": 8})
    );

    let summary = usage(&server).await;
    let model = &summary["models"]["openai/text-embedding-3-small"];
    assert_eq!(model["calls"], 1, "{summary}");
    assert_eq!(model["prompt_tokens"], 8);
    assert_eq!(model["completion_tokens"], 0);
    assert!(close(&model["cost_usd"], 8.0 * 0.02 / 1e6), "{model}");
    server.stop().await;
}

#[tokio::test]
async fn passed_through_openai_gets_the_clients_bytes_and_the_client_gets_openais() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(OPENAI_EMBEDDINGS));
    // No pricing in the config: the manifest's price for text-embedding-3-small applies.
    let server = openai_host(
        &scratch,
        &fake,
        "E2E_EMBEDDINGS_NATIVE_KEY",
        json!({}),
        json!({}),
    )
    .await;
    let client_body = r#"{"input":["The food was delicious","and the waiter"],"model":"openai/text-embedding-3-small","encoding_format":"float","future_field":{"x":[1,2.50]}}"#;
    let response = reqwest::Client::new()
        .post(server.at("/v1/embeddings"))
        .header("content-type", "application/json")
        .body(client_body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(response.headers(), "x-provider"), "openai");
    let got = response.text().await.unwrap();
    assert_eq!(got, OPENAI_EMBEDDINGS, "the upstream's bytes, whole");

    let sent = only_request(&fake);
    assert_eq!(sent.target, "/v1/embeddings");
    assert_eq!(
        String::from_utf8(sent.body).unwrap(),
        r#"{"input":["The food was delicious","and the waiter"],"model":"text-embedding-3-small","encoding_format":"float","future_field":{"x":[1,2.50]}}"#,
        "the client's body with only the model replaced"
    );

    let summary = usage(&server).await;
    let model = &summary["models"]["openai/text-embedding-3-small"];
    assert_eq!(model["prompt_tokens"], 8, "{summary}");
    assert!(close(&model["cost_usd"], 8.0 * 0.02 / 1e6), "{model}");
    server.stop().await;
}

#[tokio::test]
async fn token_arrays_go_upstream_as_token_arrays() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(OPENAI_EMBEDDINGS));
    let server = openai_host(
        &scratch,
        &fake,
        "E2E_EMBEDDINGS_TOKENS_KEY",
        json!({"passthrough": false}),
        json!({}),
    )
    .await;
    let (status, _, body) = embed(
        &server,
        &json!({"model": "openai/text-embedding-3-small", "input": [[1820, 25977], [3, 4]]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        only_request(&fake).json()["input"],
        json!([[1820, 25977], [3, 4]])
    );
    // A flat list of integers is one token array.
    let (status, _, body) =
        embed(&server, &json!({"model": "mock/embed", "input": [5, 6, 7]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(vectors(&body).len(), 1);
    assert_eq!(body["usage"]["prompt_tokens"], 3, "{body}");
    server.stop().await;
}

#[tokio::test]
async fn gemini_embeds_through_batch_embed_contents_and_its_usage_stays_unknown() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(GEMINI_EMBEDDINGS));
    std::env::set_var("E2E_EMBEDDINGS_GEMINI_KEY", "gemini-key");
    let gemini =
        json!({"name": "gemini", "library": plugin("gemini_provider"), "base_url": "/v1beta"});
    let config =
        json!({"providers": [entry_in_front_of(&fake, "E2E_EMBEDDINGS_GEMINI_KEY", gemini)]});
    let server = Server::start(&scratch.config(config)).await;
    let (status, _, body) = embed(
        &server,
        &json!({"model": "gemini/gemini-embedding-001", "input": "What is the meaning of life?",
                "dimensions": 3, "encoding_format": "base64"}),
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let sent = only_request(&fake);
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-embedding-001:batchEmbedContents"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("gemini-key"));
    assert_eq!(
        sent.json(),
        json!({"requests": [{"model": "models/gemini-embedding-001",
                             "content": {"parts": [{"text": "What is the meaning of life?"}]},
                             "outputDimensionality": 3}]})
    );
    assert_eq!(
        vectors(&body),
        vec![vec![0.013168523, -0.008711934, -0.046782676]]
    );
    assert!(body.get("usage").is_none(), "no invented usage: {body}");
    let summary = usage(&server).await;
    let model = &summary["models"]["gemini/gemini-embedding-001"];
    assert_eq!(
        (
            model["calls"].as_u64(),
            model["calls_without_usage"].as_u64()
        ),
        (Some(1), Some(1)),
        "{summary}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_target_without_embeddings_is_refused_alone_and_skipped_in_an_alias() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    std::env::set_var("E2E_EMBEDDINGS_ANTHROPIC_KEY", "sk-ant");
    let anthropic = json!({"name": "anthropic", "library": plugin("anthropic_provider")});
    let config = json!({
        "providers": [
            entry_in_front_of(&fake, "E2E_EMBEDDINGS_ANTHROPIC_KEY", anthropic),
            {"name": "mock", "library": mock_plugin()}
        ],
        "models": {"vectors": {"targets": ["anthropic/claude-sonnet-4-5", "mock/embed"]}}
    });
    let server = Server::start(&scratch.config(config)).await;

    let (status, _, body) = embed(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "input": "hi"}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "unsupported_capability")
    );
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("does not offer embeddings"), "{message}");

    let (status, headers, body) = embed(&server, &json!({"model": "vectors", "input": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-provider"), "mock");
    assert_eq!(header(&headers, "x-fallback-index"), "1");
    assert!(fake.received().is_empty(), "anthropic was never called");
    server.stop().await;
}

#[tokio::test]
async fn after_a_500_the_alias_falls_back_to_the_next_target() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::status_json(500, OPENAI_500));
    let server = openai_host(
        &scratch,
        &fake,
        "E2E_EMBEDDINGS_FALLBACK_KEY",
        json!({}),
        json!({
            "retry": {"max_retries": 1, "delay": 0.001, "max_delay": 0.001},
            "models": {"vectors": {"targets": ["openai/text-embedding-3-small", "mock/embed"]}}
        }),
    )
    .await;
    let (status, headers, body) =
        embed(&server, &json!({"model": "vectors", "input": ["x", "y"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&headers, "x-provider"), "mock");
    assert_eq!(header(&headers, "x-fallback-index"), "1");
    assert_eq!(
        header(&headers, "x-attempts"),
        "3",
        "two tries upstream, then the mock"
    );
    assert_eq!(fake.received().len(), 2);
    assert_eq!(vectors(&body).len(), 2);

    // Alone, the same target's failure is the client's 502 in OpenAI's shape.
    let (status, _, body) = embed(
        &server,
        &json!({"model": "openai/text-embedding-3-small", "input": "x"}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_error")
    );
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_openai_errors_naming_the_field() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    for (body, param) in [
        (json!({"model": "mock/embed", "input": ""}), "input"),
        (json!({"model": "mock/embed", "input": []}), "input"),
        (json!({"model": "mock/embed", "input": ["a", 2]}), "input"),
        (
            json!({"model": "mock/embed", "input": {"text": "a"}}),
            "input",
        ),
        (
            json!({"model": "mock/embed", "input": vec!["x"; 2049]}),
            "input",
        ),
        (json!({"model": "mock/embed"}), "input"),
        (json!({"input": "a"}), "model"),
        (
            json!({"model": "mock/embed", "input": "a", "dimensions": 0}),
            "dimensions",
        ),
        (
            json!({"model": "mock/embed", "input": "a", "dimensions": -3}),
            "dimensions",
        ),
        (
            json!({"model": "mock/embed", "input": "a", "encoding_format": "int8"}),
            "encoding_format",
        ),
    ] {
        let (status, _, answer) = embed(&server, &body).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert_eq!(
            error_type_and_code(&answer),
            ("invalid_request_error", "invalid_request"),
            "{answer}"
        );
        assert_eq!(answer["error"]["param"], param, "{body} -> {answer}");
    }
    let response = reqwest::Client::new()
        .post(server.at("/v1/embeddings"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);

    let (status, _, answer) = embed(&server, &json!({"model": "nobody/embed", "input": "a"})).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(error_type_and_code(&answer).1, "model_not_found");
    // A chat model of a plugin that has embeddings: the plugin says which model embeds.
    let (status, _, answer) = embed(&server, &json!({"model": "mock/echo", "input": "a"})).await;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`embed`"),
        "{answer}"
    );
    server.stop().await;
}
