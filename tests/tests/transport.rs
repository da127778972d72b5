//! The host's HTTP transport, through the real openai plugin against a fake upstream
//! that speaks OpenAI's wire format: keys, streaming relay, timeouts, the address
//! guard, capped error bodies and cancellation.

use std::time::{Duration, Instant};

use e2e::{
    canned::OPENAI_CHAT_COMPLETION,
    client::{json_body, send_chat, start_host_in_front_of, with_fields, StreamedAnswer},
    fake::{FakeUpstream, Reply},
    plugin, Scratch, Server,
};
use serde_json::{json, Value};

fn chunk(content: &str) -> String {
    format!(
        "data: {{\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"{content}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
    )
}

const FINISH: &str = "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\",\"system_fingerprint\":\"fp_44709d6fcb\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n";
const DONE: &str = "data: [DONE]\n\n";

/// Starts a host with one `openai` entry in front of `fake` (OpenAI's API under `/v1`),
/// `entry` overriding its fields and `top` adding top-level config; `key` is
/// `(variable, value)`, each test using its own variable.
async fn host_for(
    scratch: &Scratch,
    fake: &FakeUpstream,
    key: (&str, &str),
    entry: Value,
    top: Value,
) -> Server {
    let openai = json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"});
    start_host_in_front_of(scratch, fake, key, with_fields(openai, entry), top).await
}

fn hello(stream: bool) -> Value {
    json!({"model": "openai/gpt-4o-mini", "stream": stream, "messages": [{"role": "user", "content": "Hello!"}]})
}

#[tokio::test]
async fn a_chat_goes_upstream_with_the_key_in_the_auth_header_and_comes_back() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_1", "sk-test-one");
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let server = host_for(&scratch, &fake, key, json!({}), json!({})).await;
    let response = send_chat(&server, &hello(false)).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I assist you today?"
    );
    assert_eq!(body["usage"]["total_tokens"], 29);
    let received = fake.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        (received[0].method.as_str(), received[0].target.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        received[0].header("authorization"),
        Some("Bearer sk-test-one")
    );
    assert_eq!(
        received[0].json()["model"],
        "gpt-4o-mini",
        "the routing prefix is stripped"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_stream_is_relayed_as_it_arrives_not_when_it_ends() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_2", "sk-test-two");
    // Two deltas, then silence: a host that buffered the answer would show nothing.
    fake.always(Reply::Stream {
        status: 200,
        pieces: vec![chunk("Hel").into_bytes(), chunk("lo").into_bytes()],
        pause: Duration::from_millis(10),
        then_hang: true,
    });
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({}),
        json!({"timeouts": {"idle": 1.0}}),
    )
    .await;
    let started = Instant::now();
    let response = send_chat(&server, &hello(true)).await;
    assert_eq!(response.status(), 200);
    let streamed = StreamedAnswer::parse(&response.text().await.unwrap());
    let text = streamed.text();
    assert_eq!(
        text, "Hello",
        "both deltas reached the client before the upstream went quiet"
    );
    let error = streamed.errors.first().expect("an error event");
    assert_eq!(error["error"]["code"], "upstream_timeout");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the idle timeout ended the stream"
    );
    server.stop().await;
}

#[tokio::test]
async fn loopback_upstreams_are_refused_unless_the_entry_allows_them() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_3", "sk-test-three");
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({"allow_private_network": false}),
        json!({}),
    )
    .await;
    for stream in [false, true] {
        let response = send_chat(&server, &hello(stream)).await;
        assert_eq!(response.status(), 502);
        let body: Value = response.json().await.unwrap();
        let message = body["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("a loopback address") && message.contains("allow_private_network"),
            "{message}"
        );
    }
    assert!(fake.received().is_empty(), "nothing reached the upstream");
    server.stop().await;
}

#[tokio::test]
async fn names_resolving_to_loopback_are_refused_too() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_4", "sk-test-four");
    let port = fake.url.rsplit(':').next().unwrap();
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({"allow_private_network": false, "base_url": format!("http://localhost:{port}/v1")}),
        json!({}),
    )
    .await;
    let body = json_body(send_chat(&server, &hello(false)).await).await;
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("localhost resolves to"), "{message}");
    assert!(fake.received().is_empty());
    server.stop().await;
}

#[tokio::test]
async fn an_upstream_that_never_answers_times_out_at_first_byte() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_5", "sk-test-five");
    fake.always(Reply::Hang);
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({}),
        json!({"timeouts": {"first_byte": 0.5}}),
    )
    .await;
    let started = Instant::now();
    let response = send_chat(&server, &hello(false)).await;
    assert_eq!(response.status(), 504);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_timeout");
    // Three attempts of 0.5 s and their backoff; the default first-byte wait is 120 s.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_connection_closed_without_an_answer_or_refused_is_a_connection_error() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_6", "sk-test-six");
    fake.always(Reply::Close);
    let server = host_for(&scratch, &fake, key, json!({}), json!({})).await;
    let response = send_chat(&server, &hello(false)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_connection_failed");
    server.stop().await;

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({"base_url": format!("http://127.0.0.1:{port}/v1")}),
        json!({}),
    )
    .await;
    let body = json_body(send_chat(&server, &hello(false)).await).await;
    assert_eq!(
        body["error"]["code"], "upstream_connection_failed",
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_up_to_the_cap_and_quoted_briefly() {
    const BODY: usize = 64 * 1024 * 1024;
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_7", "sk-test-seven");
    fake.always(Reply::Full {
        status: 500,
        headers: vec![],
        body: vec![b'x'; BODY],
    });
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({}),
        json!({"retry": {"max_retries": 0}}),
    )
    .await;
    let response = send_chat(&server, &hello(false)).await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.len() < 1024, "message is {} bytes", message.len());
    // What the fake got written before the host hung up: the cap, plus what the two
    // sockets' kernel buffers took in (a few MiB on loopback), far from the whole body.
    let sent = fake.until_sent(1).await;
    let (written, whole) = sent[0];
    assert!(!whole, "the host hung up before the end of the body");
    let cap = provider_host::transport::ERROR_BODY_CAP;
    assert!(
        written < cap + BODY / 4,
        "{written} bytes of {BODY} were sent for a cap of {cap}"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_key_never_reaches_the_client_even_when_the_upstream_quotes_it() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_8", "sk-secret-8f3a9c");
    fake.always(Reply::status_json(
        401,
        r#"{"error": {"message": "Incorrect API key provided: sk-secret-8f3a9c. You can find your API key at https://platform.openai.com/account/api-keys.", "type": "invalid_request_error", "param": null, "code": "invalid_api_key"}}"#,
    ));
    let server = host_for(&scratch, &fake, key, json!({}), json!({})).await;
    for stream in [false, true] {
        let text = send_chat(&server, &hello(stream))
            .await
            .text()
            .await
            .unwrap();
        assert!(!text.contains("sk-secret-8f3a9c"), "{text}");
        assert!(text.contains("Incorrect API key provided: ***"), "{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_disconnects_mid_stream_cancels_the_upstream_request() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_9", "sk-test-nine");
    let mut pieces: Vec<String> = (0..400).map(|i| chunk(&format!("w{i} "))).collect();
    pieces.push(FINISH.to_owned());
    pieces.push(DONE.to_owned());
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    fake.always(Reply::sse(&pieces, Duration::from_millis(10)));
    let server = host_for(&scratch, &fake, key, json!({}), json!({})).await;
    let mut response = send_chat(&server, &hello(true)).await;
    let first = response.chunk().await.unwrap().expect("a first chunk");
    assert!(!first.is_empty());
    drop(response);
    let deadline = Instant::now() + Duration::from_secs(5);
    while fake.abandoned() == 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        fake.abandoned(),
        1,
        "the upstream stream was dropped long before its 4 seconds ran out"
    );
    server.stop().await;
}

/// Runs `provider-host chat --no-stream` once against `config`, with `env` added to its
/// environment (a child's own environment: the test process's is left alone).
async fn chat_once(
    config: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
) -> std::process::Output {
    chat_via_cli(config, env, false).await
}

/// [`chat_once`], asking for a stream when `stream`.
async fn chat_via_cli(
    config: std::path::PathBuf,
    env: Vec<(&'static str, String)>,
    stream: bool,
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let mut command = std::process::Command::new(e2e::host_binary());
        command
            .args(["--config".as_ref(), config.as_os_str()])
            .args(["chat", "--model", "openai/gpt-4o-mini"]);
        if !stream {
            command.arg("--no-stream");
        }
        command
            .arg("Hello!")
            .envs(env)
            .env("NO_COLOR", "1")
            .output()
            .expect("the host runs")
    })
    .await
    .expect("the child is awaited")
}

#[tokio::test]
async fn a_proxy_in_the_environment_is_never_used_only_the_configured_one() {
    let (scratch, upstream, proxy) = (
        Scratch::new(),
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    );
    upstream.always(Reply::json(OPENAI_CHAT_COMPLETION));
    proxy.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let entry = e2e::client::entry_in_front_of(
        &upstream,
        "E2E_PROXY_KEY",
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let env = |var: &'static str| (var, proxy.url.clone());
    let output = chat_once(
        config,
        vec![
            ("E2E_PROXY_KEY", "sk-proxy-secret".to_owned()),
            env("HTTP_PROXY"),
            env("http_proxy"),
            env("ALL_PROXY"),
            env("all_proxy"),
        ],
    )
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        upstream.received().len(),
        1,
        "the upstream is called directly"
    );
    assert_eq!(
        proxy.received().len(),
        0,
        "the environment's proxy never sees a request (nor its key)"
    );
}

#[tokio::test]
async fn a_configured_proxy_is_used_and_guarded_like_an_upstream() {
    let (scratch, upstream, proxy) = (
        Scratch::new(),
        FakeUpstream::start().await,
        FakeUpstream::start().await,
    );
    proxy.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let openai = json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"});
    let through = |allow: bool| {
        let entry = e2e::client::entry_in_front_of(
            &upstream,
            "E2E_PROXY_KEY",
            with_fields(openai.clone(), json!({"allow_private_network": allow})),
        );
        scratch
            .config(json!({"providers": [entry], "retry": {"max_retries": 0}, "proxy": proxy.url}))
    };
    let key = || vec![("E2E_PROXY_KEY", "sk-proxy-secret".to_owned())];
    let output = chat_once(through(true), key()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let carried = proxy.received();
    assert_eq!(carried.len(), 1, "the configured proxy carries the call");
    assert_eq!(
        carried[0].target,
        format!("{}/v1/chat/completions", upstream.url),
        "a plain-http call reaches the proxy with its target in absolute form"
    );
    assert_eq!(
        carried[0].header("authorization"),
        Some("Bearer sk-proxy-secret")
    );
    assert_eq!(upstream.received().len(), 0);

    // A public-only entry may reach neither a loopback target nor a loopback proxy.
    let output = chat_once(through(false), key()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("a loopback address"), "{stderr}");
    assert_eq!(
        proxy.received().len(),
        1,
        "nothing more went through the proxy"
    );
}

#[tokio::test]
async fn a_proxy_with_credentials_gets_them_on_plain_calls_and_on_the_connect_of_https_ones() {
    let (scratch, proxy) = (Scratch::new(), FakeUpstream::start().await);
    proxy.script([
        Reply::json(OPENAI_CHAT_COMPLETION),
        // It refuses the tunnel (TLS with the target would need the target itself);
        // the targets are a documentation address (TEST-NET-3) only the proxy sees.
        Reply::status_json(403, r#"{"error": "no tunnels today"}"#),
    ]);
    let proxy_url = proxy
        .url
        .replacen("http://", "http://gateway:p%40ss%20word@", 1);
    let config = |base_url: &str| {
        let entry = json!({
            "name": "openai", "library": plugin("openai_provider"), "base_url": base_url,
            "api_key_env": "E2E_PROXY_KEY", "allow_private_network": true,
        });
        scratch
            .config(json!({"providers": [entry], "retry": {"max_retries": 0}, "proxy": proxy_url}))
    };
    let key = || vec![("E2E_PROXY_KEY", "sk-proxy-secret".to_owned())];
    // base64("gateway:p@ss word"): the URL's percent-encoding is undone first.
    let credentials = "Basic Z2F0ZXdheTpwQHNzIHdvcmQ=";

    let output = chat_once(config("http://203.0.113.7/v1"), key()).await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let plain = &proxy.received()[0];
    assert_eq!(plain.target, "http://203.0.113.7/v1/chat/completions");
    assert_eq!(plain.header("proxy-authorization"), Some(credentials));
    assert_eq!(plain.header("host"), Some("203.0.113.7"));

    let output = chat_once(config("https://203.0.113.7/v1"), key()).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the tunnel was refused: {stderr}");
    let connect = &proxy.received()[1];
    assert_eq!(connect.method, "CONNECT");
    assert_eq!(connect.target, "203.0.113.7:443");
    assert_eq!(connect.header("proxy-authorization"), Some(credentials));
    assert_eq!(
        connect.header("authorization"),
        None,
        "the API key travels only inside the tunnel, never to the proxy"
    );
    assert!(
        !stderr.contains("sk-proxy-secret") && !stderr.contains("p@ss"),
        "{stderr}"
    );
}

#[tokio::test]
async fn https_upstreams_are_verified_against_the_machines_ca_certificates() {
    let (scratch, upstream) = (Scratch::new(), FakeUpstream::start_tls().await);
    upstream.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let entry = json!({
        "name": "openai", "library": plugin("openai_provider"),
        "base_url": format!("{}/v1", upstream.url), "api_key_env": "E2E_TLS_KEY",
        "allow_private_network": true,
    });
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let certificates = scratch.dir.path().join("certificates");
    std::fs::create_dir(&certificates).unwrap();
    // Only the file named counts (the directory named is empty): the machine's own
    // store is out of the picture.
    let trusting = |name: &str, pem: &str| {
        let file = certificates.join(name);
        std::fs::write(&file, pem).unwrap();
        vec![
            ("E2E_TLS_KEY", "sk-tls-secret".to_owned()),
            ("SSL_CERT_FILE", file.display().to_string()),
            (
                "SSL_CERT_DIR",
                certificates.join("none").display().to_string(),
            ),
        ]
    };
    std::fs::create_dir(certificates.join("none")).unwrap();

    let output = chat_once(config.clone(), trusting("test-ca.pem", e2e::tls::CA)).await;
    assert!(
        output.status.success(),
        "the CA that signed the upstream's certificate is trusted: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(
        received[0].header("authorization"),
        Some("Bearer sk-tls-secret")
    );

    let output = chat_once(config.clone(), trusting("other-ca.pem", e2e::tls::OTHER_CA)).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("certificate") && stderr.contains("UnknownIssuer"),
        "a certificate no trusted CA signed is refused, saying so: {stderr}"
    );

    let output = chat_once(config, trusting("empty.pem", "")).await;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("no CA certificates") && stderr.contains("SSL_CERT_FILE"),
        "without any CA certificate the call fails, saying what to do: {stderr}"
    );
    assert_eq!(
        upstream.received().len(),
        1,
        "no request went out over an unverified connection"
    );
}

#[tokio::test]
async fn an_upstream_that_offers_http2_is_spoken_to_in_http2_whole_and_streamed() {
    // What the upstream saw of each request: its HTTP version and its credentials.
    type Seen = Vec<(String, Option<String>)>;
    let seen: std::sync::Arc<std::sync::Mutex<Seen>> = Default::default();
    let record = seen.clone();
    let router = axum::Router::new().route(
        "/v1/chat/completions",
        axum::routing::post(move |request: axum::extract::Request| {
            let record = record.clone();
            async move {
                let version = format!("{:?}", request.version());
                let auth = request
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                record.lock().unwrap().push((version, auth));
                let body = axum::body::to_bytes(request.into_body(), 1 << 20)
                    .await
                    .unwrap();
                let asked: Value = serde_json::from_slice(&body).unwrap();
                if asked["stream"] == true {
                    let sse = [
                        chunk("Hel"),
                        chunk("lo"),
                        FINISH.to_owned(),
                        DONE.to_owned(),
                    ];
                    ([("content-type", "text/event-stream")], sse.concat())
                } else {
                    (
                        [("content-type", "application/json")],
                        OPENAI_CHAT_COMPLETION.to_owned(),
                    )
                }
            }
        }),
    );
    let upstream = e2e::tls::serve_h2(router).await;
    let scratch = Scratch::new();
    let entry = json!({
        "name": "openai", "library": plugin("openai_provider"),
        "base_url": format!("{upstream}/v1"), "api_key_env": "E2E_H2_KEY",
        "allow_private_network": true,
    });
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let ca = scratch.dir.path().join("test-ca.pem");
    std::fs::write(&ca, e2e::tls::CA).unwrap();
    let env = || {
        vec![
            ("E2E_H2_KEY", "sk-h2-secret".to_owned()),
            ("SSL_CERT_FILE", ca.display().to_string()),
            (
                "SSL_CERT_DIR",
                ca.with_extension("none").display().to_string(),
            ),
        ]
    };
    let whole = chat_via_cli(config.clone(), env(), false).await;
    let (stdout, stderr) = e2e::texts(&whole);
    assert!(whole.status.success(), "{stderr}");
    assert!(
        stdout.contains("Hello! How can I assist you today?"),
        "{stdout}"
    );
    let streamed = chat_via_cli(config, env(), true).await;
    let (stdout, stderr) = e2e::texts(&streamed);
    assert!(streamed.status.success(), "{stderr}");
    assert!(stdout.contains("Hello"), "{stdout}");
    let seen = seen.lock().unwrap().clone();
    let bearer = Some("Bearer sk-h2-secret".to_owned());
    assert_eq!(
        seen,
        vec![
            ("HTTP/2.0".to_owned(), bearer.clone()),
            ("HTTP/2.0".to_owned(), bearer)
        ]
    );
}

#[tokio::test]
async fn a_stream_is_complete_at_done_even_when_the_upstream_keeps_the_connection_open() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_DONE", "sk-test-done");
    // The whole answer, [DONE] included, then silence on an open connection.
    fake.always(Reply::Stream {
        status: 200,
        pieces: vec![
            chunk("Hel").into_bytes(),
            chunk("lo").into_bytes(),
            FINISH.as_bytes().to_vec(),
            DONE.as_bytes().to_vec(),
        ],
        pause: Duration::ZERO,
        then_hang: true,
    });
    // Relayed as the upstream's bytes (passthrough) and translated by the plugin.
    for (passthrough, let_go) in [(true, 1), (false, 2)] {
        let server = host_for(
            &scratch,
            &fake,
            key,
            json!({"passthrough": passthrough}),
            // Were the host to wait for the close, the idle timeout would end the
            // stream with an error event.
            json!({"timeouts": {"idle": 3.0}}),
        )
        .await;
        let response = send_chat(&server, &hello(true)).await;
        let streamed = StreamedAnswer::read(response).await;
        assert_eq!(streamed.text(), "Hello", "passthrough: {passthrough}");
        assert_eq!(streamed.finish_reason(), "stop");
        fake.until_let_go(let_go).await;
        server.stop().await;
    }
}

/// A stream of `first` then, a moment later (so that `first` reaches the client as
/// the stream's start, not in one read with `rest`), `rest`; silent afterwards on an
/// open connection.
fn stream_then_hang(first: String, rest: Vec<u8>) -> Reply {
    Reply::Stream {
        status: 200,
        pieces: vec![first.into_bytes(), rest],
        pause: Duration::from_millis(50),
        then_hang: true,
    }
}

#[tokio::test]
async fn an_endless_line_ends_the_stream_at_the_default_cap_with_an_error_event() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_CAP", "sk-test-cap");
    // 5 MiB without a newline: past the default 4 MiB line cap.
    fake.always(stream_then_hang(
        chunk("Hel"),
        [b"data: {\"x\":\"".as_slice(), &vec![b'a'; 5 << 20]].concat(),
    ));
    for (passthrough, let_go) in [(true, 1), (false, 2)] {
        let server = host_for(
            &scratch,
            &fake,
            key,
            json!({"passthrough": passthrough}),
            // A host without the cap waits for more of the line until this runs out.
            json!({"timeouts": {"idle": 5.0}, "retry": {"max_retries": 0}}),
        )
        .await;
        let response = send_chat(&server, &hello(true)).await;
        let streamed = StreamedAnswer::read_allowing_errors(response).await;
        assert_eq!(streamed.text(), "Hel", "passthrough: {passthrough}");
        let error = &streamed.errors.first().expect("an error event")["error"];
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("stream_limits.max_line_bytes"),
            "{error}"
        );
        fake.until_let_go(let_go).await;
        server.stop().await;
    }
}

#[tokio::test]
async fn events_and_whole_streams_past_their_configured_caps_end_the_stream() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_CAP2", "sk-test-cap2");
    let many_lines = "data: {\"pad\":\"0123456789\"}\n".repeat(100).into_bytes();
    let many_events = chunk("more").repeat(100).into_bytes();
    for (piece, cap) in [
        (many_lines, "stream_limits.max_event_bytes"),
        (many_events, "stream_limits.max_stream_bytes"),
    ] {
        fake.always(stream_then_hang(chunk("Hel"), piece));
        let server = host_for(
            &scratch,
            &fake,
            key,
            json!({}),
            json!({
                "timeouts": {"idle": 5.0},
                "retry": {"max_retries": 0},
                "stream_limits": {"max_line_bytes": 1024, "max_event_bytes": 2048, "max_stream_bytes": 8192}
            }),
        )
        .await;
        let streamed =
            StreamedAnswer::read_allowing_errors(send_chat(&server, &hello(true)).await).await;
        assert_eq!(streamed.text(), "Hel");
        let error = &streamed.errors.first().expect("an error event")["error"];
        assert!(error["message"].as_str().unwrap().contains(cap), "{error}");
        server.stop().await;
    }
}

#[tokio::test]
async fn shutdown_ends_within_the_drain_deadline_when_a_request_never_finishes() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_DRAIN", "sk-test-drain");
    fake.always(Reply::Hang);
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({}),
        json!({"server": {"drain_timeout": 0.5}, "retry": {"max_retries": 0}}),
    )
    .await;
    let url = server.at("/v1/chat/completions");
    let stuck = tokio::spawn(async move {
        let _ = reqwest::Client::new()
            .post(url)
            .json(&hello(false))
            .send()
            .await;
    });
    fake.until_received(1).await;
    let stopped = tokio::time::timeout(Duration::from_secs(20), server.stop()).await;
    assert!(stopped.is_ok(), "shutdown waited past its drain deadline");
    stuck.abort();
}

#[tokio::test]
async fn large_requests_beyond_the_in_flight_budget_wait_then_get_a_503_while_health_answers() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let key = ("E2E_TRANSPORT_KEY_BUDGET", "sk-test-budget");
    // The first request's upstream never answers (until its first-byte timeout).
    fake.script([Reply::Hang]);
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let server = host_for(
        &scratch,
        &fake,
        key,
        json!({}),
        json!({
            "max_request_bytes": 1_048_576,
            "timeouts": {"first_byte": 5.0},
            "retry": {"max_retries": 0},
            "server": {"max_inflight_body_bytes": 1_048_576, "body_timeout": 0.5}
        }),
    )
    .await;
    let sized = |bytes: usize| json!({"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "x".repeat(bytes)}]});
    let url = server.at("/v1/chat/completions");
    let first = sized(900_000);
    let holding = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .post(url)
            .json(&first)
            .send()
            .await
            .unwrap();
        response.status()
    });
    // Upstream: the 900 kB request is in the pipeline, holding its share.
    fake.until_received(1).await;
    let refused = send_chat(&server, &sized(500_000)).await;
    assert_eq!(refused.status(), 503, "500 kB more does not fit beside it");
    let body = json_body(refused).await;
    assert_eq!(body["error"]["code"], "server_busy", "{body}");
    let small = send_chat(&server, &hello(false)).await;
    assert_eq!(small.status(), 200, "small requests are not held up");
    assert_eq!(
        reqwest::get(server.at("/healthz")).await.unwrap().status(),
        200,
        "health answers meanwhile"
    );
    assert_eq!(
        holding.await.unwrap(),
        504,
        "the first ran out its own time"
    );
    let after = send_chat(&server, &sized(500_000)).await;
    assert_eq!(after.status(), 200, "its share came back");
    server.stop().await;
}
