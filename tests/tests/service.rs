//! The OpenAI-compatible service, spoken to over real HTTP on loopback.

use e2e::{mock_plugin, sse_data, Scratch, Server};
use serde_json::{json, Value};

fn config(scratch: &Scratch, extra: Value) -> std::path::PathBuf {
    let mut body = json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "models": {"fast": {"targets": ["mock/echo"]}},
        // These tests are about single answers and errors: no retries, no breakers.
        "retry": {"max_retries": 0},
        "circuit_breaker": {"enabled": false}
    });
    if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
        body.extend(extra.clone());
    }
    scratch.config(body)
}

async fn post(server: &Server, body: Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("request sent")
}

#[tokio::test]
async fn a_plain_chat_comes_back_in_openai_shape() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let response = post(
        &server,
        json!({"model": "mock/echo", "messages": [{"role": "user", "content": "hello there"}]}),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-provider"], "mock");
    assert_eq!(response.headers()["x-model"], "echo");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(body["model"], "mock/echo");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "hello there", "refusal": null})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2, "completion_tokens": 2, "total_tokens": 4,
               "prompt_tokens_details": {"cached_tokens": 0}, "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_indexed_argument_deltas_with_usage_last() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let response = post(
        &server,
        json!({
            "model": "mock/tool", "stream": true, "stream_options": {"include_usage": true},
            "tools": [{"type": "function", "function": {"name": "lookup", "parameters": {
                "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}],
            "messages": [{"role": "user", "content": "rust abi"}]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(data.last().map(String::as_str), Some("[DONE]"));
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let calls: Vec<&Value> = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0))
        .collect();
    assert_eq!(
        calls[0]["id"].as_str().map(|id| id.starts_with("call_")),
        Some(true)
    );
    assert_eq!(calls[0]["function"]["name"], "lookup");
    let arguments: String = calls
        .iter()
        .map(|c| c["function"]["arguments"].as_str().unwrap())
        .collect();
    assert_eq!(arguments, r#"{"q":"rust abi"}"#);
    assert!(calls.iter().all(|c| c["index"] == 0));
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "tool_calls");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["total_tokens"], 4);
    server.stop().await;
}

#[tokio::test]
async fn without_include_usage_no_usage_chunk_is_sent() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let response = post(&server, json!({"model": "fast", "stream": true, "messages": [{"role": "user", "content": "a b c"}]})).await;
    let data = sse_data(&response.text().await.unwrap());
    let chunks: Vec<Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert!(
        chunks.iter().all(|c| c.get("usage").is_none()),
        "{chunks:?}"
    );
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(text, "a b c");
    server.stop().await;
}

#[tokio::test]
async fn errors_are_openai_bodies_with_the_right_status() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({"max_request_bytes": 2048}))).await;
    let client = reqwest::Client::new();
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (client.post(server.at("/v1/chat/completions")).body("{not json"), 400, "invalid_request"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/echo"})), 400, "invalid_request"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}], "n": 2})), 400, "invalid_request"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "nobody/x", "messages": [{"role": "user", "content": "x"}]})), 404, "model_not_found"),
        (client.post(server.at("/v1/chat/completions")).body("x".repeat(4096)), 413, "request_too_large"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/fail", "messages": [{"role": "user", "content": "rate_limited"}]})), 429, "rate_limit_exceeded"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/fail", "messages": [{"role": "user", "content": "timeout"}]})), 504, "upstream_timeout"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/fail", "messages": [{"role": "user", "content": "connection"}]})), 502, "upstream_connection_failed"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/fail", "stream": true, "messages": [{"role": "user", "content": "provider_service"}]})), 502, "upstream_error"),
        (client.post(server.at("/v1/chat/completions")).json(&json!({"model": "mock/fail", "messages": [{"role": "user", "content": "plugin_fault"}]})), 500, "plugin_fault"),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
        assert!(body["error"]["type"].is_string(), "{body}");
    }
    server.stop().await;
}

#[tokio::test]
async fn models_lists_every_routable_model_and_alias() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let body: Value = reqwest::get(server.at("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "mock/echo",
            "mock/tool",
            "mock/long",
            "mock/fail",
            "mock/embed",
            "fast"
        ]
    );
    assert_eq!(body["object"], "list");
    server.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    assert_eq!(
        reqwest::get(server.at("/healthz")).await.unwrap().status(),
        200
    );
    let ready = reqwest::get(server.at("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    server.stop().await;

    let empty = scratch.config(json!({"providers": [{"name": "broken", "library": "missing.so"}]}));
    let server = Server::start(&empty).await;
    assert_eq!(
        reqwest::get(server.at("/healthz")).await.unwrap().status(),
        200,
        "the process is up"
    );
    assert_eq!(
        reqwest::get(server.at("/readyz")).await.unwrap().status(),
        503,
        "but nothing serves"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_keys_are_required_when_configured() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({"auth": {"keys": ["sk-host-1"]}}))).await;
    let client = reqwest::Client::new();
    let body = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    for key in [None, Some("sk-host-2"), Some("sk-host-1x")] {
        let mut request = client.post(server.at("/v1/chat/completions")).json(&body);
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{key:?}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], "invalid_api_key");
    }
    let ok = client
        .post(server.at("/v1/chat/completions"))
        .bearer_auth("sk-host-1")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(
        client
            .get(server.at("/v1/models"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    assert_eq!(
        client
            .get(server.at("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200,
        "health stays open"
    );
    server.stop().await;
}

#[tokio::test]
async fn shutdown_lets_a_stream_in_flight_finish() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin(), "options": {"long_interval_ms": 5}}]
    }));
    let server = Server::start(&config).await;
    let response = post(&server, json!({"model": "mock/long", "stream": true, "max_tokens": 60, "messages": [{"role": "user", "content": "go"}]})).await;
    assert_eq!(response.status(), 200);
    let url = server.url.clone();
    let stopping = tokio::spawn(server.stop());
    let data = sse_data(&response.text().await.unwrap());
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "the stream finished"
    );
    let words = data
        .iter()
        .filter(|d| d.contains("\"content\":\"word"))
        .count();
    assert_eq!(words, 60);
    stopping.await.unwrap();
    assert!(
        reqwest::get(format!("{url}/healthz")).await.is_err(),
        "new connections are refused after shutdown"
    );
}

#[tokio::test]
async fn an_embedder_mounts_the_api_under_a_prefix_beside_its_own_routes() {
    let scratch = Scratch::new();
    let text = json!({
        "cache_dir": scratch.path("cache"),
        "providers": [{"name": "mock", "library": mock_plugin(), "api_key_env": "FROM_MY_VAULT"}]
    })
    .to_string();
    let config = provider_host::config::Config::parse(
        &text,
        std::path::Path::new("(memory)"),
        scratch.dir.path(),
        &|_| None,
    )
    .unwrap();
    let host = provider_host::Host::builder()
        .config(config, scratch.dir.path())
        .api_keys(|name| (name == "FROM_MY_VAULT").then(|| "vault-key".to_owned()))
        .build()
        .unwrap();
    assert!(
        host.registry().provider("mock").unwrap().ready.is_some(),
        "the key came from the embedder's lookup"
    );

    let direct = host
        .chat(provider_sdk::ChatRequest::new(
            "mock/echo",
            vec![provider_sdk::Message::user("direct")],
        ))
        .await
        .unwrap();
    assert_eq!(direct.response.message.content.as_deref(), Some("direct"));

    let app = axum::Router::new()
        .route("/own", axum::routing::get(|| async { "mine" }))
        .nest("/llm", provider_host::serve::router(host.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    assert_eq!(
        reqwest::get(format!("{url}/own"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "mine"
    );
    let models: Value = reqwest::get(format!("{url}/llm/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "mock/echo");
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/llm/v1/chat/completions"))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "mounted"}]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["choices"][0]["message"]["content"], "mounted");
    task.abort();
}

#[tokio::test]
async fn a_single_model_is_retrievable_and_unknown_urls_get_openai_error_bodies() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let one: Value = reqwest::get(server.at("/v1/models/mock%2Fecho"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (one["id"].as_str(), one["object"].as_str()),
        (Some("mock/echo"), Some("model"))
    );
    let raw_slash: Value = reqwest::get(server.at("/v1/models/fast"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw_slash["owned_by"], "alias");
    let cases = [
        (
            reqwest::Client::new().get(server.at("/v1/models/mock%2Fnope")),
            404,
            "model_not_found",
        ),
        (
            reqwest::Client::new().get(server.at("/v1/audio/speech")),
            404,
            "unknown_url",
        ),
        (
            reqwest::Client::new().get(server.at("/v1/chat/completions")),
            405,
            "method_not_allowed",
        ),
    ];
    for (request, status, code) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), status, "{code}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_starts_with_the_role_and_the_call_not_an_empty_text() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({}))).await;
    let response = post(
        &server,
        json!({"model": "mock/tool", "stream": true,
               "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}],
               "messages": [{"role": "user", "content": "x"}]}),
    )
    .await;
    let data = sse_data(&response.text().await.unwrap());
    let first: Value = serde_json::from_str(&data[0]).unwrap();
    let delta = &first["choices"][0]["delta"];
    assert_eq!(delta["role"], "assistant");
    assert!(delta.get("content").is_none(), "{delta}");
    assert_eq!(delta["tool_calls"][0]["function"]["name"], "f");
    server.stop().await;
}

/// `status` and `error.code` of `method path` sent with `key` as a bearer key.
async fn admin_call(server: &Server, method: &str, path: &str, key: Option<&str>) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = match method {
        "POST" => client.post(server.at(path)),
        _ => client.get(server.at(path)),
    };
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.expect("the host answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (status, body["error"]["code"].clone())
}

#[tokio::test]
async fn a_client_key_never_opens_an_admin_endpoint_once_admin_keys_are_set() {
    let scratch = Scratch::new();
    let server = Server::start(&config(
        &scratch,
        json!({"auth": {"keys": ["sk-client"], "admin_keys": ["sk-admin"]}}),
    ))
    .await;
    for (method, path) in [
        ("POST", "/admin/usage/reset"),
        ("POST", "/admin/reload"),
        ("GET", "/admin/usage"),
        ("GET", "/admin/providers"),
    ] {
        assert_eq!(
            admin_call(&server, method, path, Some("sk-client")).await,
            (403, json!("not_an_admin_key")),
            "{method} {path} with a client key"
        );
        assert_eq!(
            admin_call(&server, method, path, None).await,
            (401, json!("invalid_api_key")),
            "{method} {path} with no key"
        );
        assert_eq!(
            admin_call(&server, method, path, Some("sk-admin")).await.0,
            200,
            "{method} {path} with the admin key"
        );
    }
    let chat = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    let as_admin = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .bearer_auth("sk-admin")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(as_admin.status(), 401, "an admin key is not a client key");
    server.stop().await;
}

#[tokio::test]
async fn admin_endpoints_are_off_beyond_loopback_without_admin_keys() {
    let scratch = Scratch::new();
    let server =
        Server::start_beyond_loopback(&config(&scratch, json!({"auth": {"keys": ["sk-client"]}})))
            .await;
    for (method, path) in [("POST", "/admin/usage/reset"), ("POST", "/admin/reload")] {
        for key in [None, Some("sk-client")] {
            assert_eq!(
                admin_call(&server, method, path, key).await,
                (403, json!("admin_disabled")),
                "{method} {path} with {key:?}"
            );
        }
    }
    let chat = json!({"model": "mock/echo", "messages": [{"role": "user", "content": "x"}]});
    let served = reqwest::Client::new()
        .post(server.at("/v1/chat/completions"))
        .bearer_auth("sk-client")
        .json(&chat)
        .send()
        .await
        .unwrap();
    assert_eq!(served.status(), 200, "clients are served as before");
    server.stop().await;

    let server = Server::start_beyond_loopback(&config(
        &scratch,
        json!({"auth": {"keys": ["sk-client"], "admin_keys": ["sk-admin"]}}),
    ))
    .await;
    assert_eq!(
        admin_call(&server, "POST", "/admin/reload", Some("sk-admin"))
            .await
            .0,
        200,
        "an admin key opens them on any listener"
    );
    server.stop().await;
}

#[tokio::test]
async fn on_loopback_without_admin_keys_admin_endpoints_take_client_keys_as_before() {
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({"auth": {"keys": ["sk-client"]}}))).await;
    assert_eq!(
        admin_call(&server, "GET", "/admin/usage", None).await.0,
        401
    );
    assert_eq!(
        admin_call(&server, "GET", "/admin/usage", Some("sk-client"))
            .await
            .0,
        200
    );
    server.stop().await;
}

/// A raw connection to `server`, for clients no HTTP library would be.
async fn raw(server: &Server) -> tokio::net::TcpStream {
    let address = server.url.trim_start_matches("http://");
    tokio::net::TcpStream::connect(address)
        .await
        .expect("connects")
}

/// Everything the server sends on `socket` until it closes it (failing after 30 s: a
/// server that keeps the connection that long has no timeout at all).
async fn until_closed(socket: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.read_to_end(&mut got),
    )
    .await;
    assert!(read.is_ok(), "the server never closed the connection");
    String::from_utf8_lossy(&got).into_owned()
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    use tokio::io::AsyncWriteExt;
    let scratch = Scratch::new();
    // The default header timeout (10 s) applies.
    let server = Server::start(&config(&scratch, json!({}))).await;
    let mut slow = raw(&server).await;
    slow.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut slow).await;
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_stops_arriving_gets_a_408() {
    use tokio::io::AsyncWriteExt;
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({"server": {"body_timeout": 0.5}}))).await;
    let mut slow = raw(&server).await;
    slow.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let answer = until_closed(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("server.body_timeout"), "{answer}");
    server.stop().await;
}

#[tokio::test]
async fn connections_past_the_limit_are_answered_503_and_closed() {
    let scratch = Scratch::new();
    let server = Server::start(&config(
        &scratch,
        json!({"server": {"max_connections": 2, "header_timeout": 60}}),
    ))
    .await;
    // Two idle connections hold every slot.
    let mut held = vec![raw(&server).await, raw(&server).await];
    let health = || async {
        reqwest::Client::new()
            .get(server.at("/healthz"))
            .send()
            .await
            .expect("an answer")
    };
    // The listener takes connections in order: once the third is refused, both
    // held ones were accepted.
    let refused = health().await;
    assert_eq!(refused.status(), 503);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    held.clear();
    // Freed slots serve again once the server has seen the close (bounded tries).
    let mut served = false;
    for _ in 0..500 {
        if health().await.status() == 200 {
            served = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "closed connections give their slots back");
    server.stop().await;
}

#[tokio::test]
async fn a_client_still_uploading_an_oversized_body_reads_the_413_not_a_broken_pipe() {
    use tokio::io::AsyncWriteExt;
    let scratch = Scratch::new();
    let server = Server::start(&config(&scratch, json!({"max_request_bytes": 1_048_576}))).await;
    let mut upload = raw(&server).await;
    let body = vec![b' '; 20 << 20];
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    upload.write_all(head.as_bytes()).await.unwrap();
    let sent = upload.write_all(&body).await;
    assert!(sent.is_ok(), "the whole upload was taken: {sent:?}");
    let answer = until_closed(&mut upload).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("max_request_bytes"), "{answer}");
    server.stop().await;
}
