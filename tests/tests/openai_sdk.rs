//! The host against a client we did not write: the official OpenAI Python SDK (PyPI
//! `openai`, pinned in `.ci/install-client-sdks`), used as a user would use it,
//! `openai.OpenAI(base_url=..., api_key=...)`.
//!
//! `e2e::sdk` installs the SDK in a venv once (about 15 seconds the first time).
//! Each test starts a host in-process, runs `tests/client/openai_sdk_check.py` against it
//! with a list of steps, and asserts on the JSON the script prints: what the SDK parsed,
//! assembled or raised.

use std::{
    ffi::OsStr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use e2e::{
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, Scratch, Server,
};
use serde_json::{json, Value};

/// What `openai_sdk_check.py` sends, and so what the mock's `echo` answers.
const CHAT_PROMPT: &str = "Hello from the official SDK";
const STREAM_PROMPT: &str = "one two three four five six";
/// The user message of the tool-call step; the mock fills string arguments with it.
const TOOL_PROMPT: &str = "Weather in Paris?";
/// The client key of the host that has `auth.keys`.
const CLIENT_KEY: &str = "sk-e2e-openai-sdk-client-key";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_owned()
}

/// What the official OpenAI SDK observed against the host at `url`.
async fn sdk(url: &str, key: &str, steps: &str) -> Value {
    e2e::sdk::openai(url, key, steps).await
}

/// The host's own error object for a chat with `body`, asked without the SDK.
async fn host_error(url: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&body)
        .send()
        .await
        .expect("host answers");
    let status = response.status().as_u16();
    let body: Value = response.json().await.expect("a JSON error body");
    (status, body["error"].clone())
}

fn string<'a>(value: &'a Value, context: &Value) -> &'a str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("not a string: {value} in {context}"))
}

/// Asserts the SDK raised `class` for `status`, carrying the host's error object.
fn assert_raised(observed: &Value, class: &str, status: u16, host: &Value) {
    assert_eq!(observed["raised"], class, "{observed}");
    assert_eq!(observed["status_code"], status, "{observed}");
    assert_eq!(
        &observed["body"], host,
        "the exception's body is the host's error"
    );
    let message = string(&host["message"], host);
    assert!(!message.is_empty(), "{host}");
    // The SDK's message is "Error code: <status> - <the host's message>".
    assert!(
        string(&observed["message"], observed).ends_with(message),
        "the SDK's message carries the host's: {observed}"
    );
    assert_eq!(observed["code"], host["code"], "{observed}");
    assert_eq!(observed["type"], host["type"], "{observed}");
}

/// A usage object with these counts.
fn assert_usage(usage: &Value, prompt: u64, completion: u64) {
    assert_eq!(usage["prompt_tokens"], prompt, "{usage}");
    assert_eq!(usage["completion_tokens"], completion, "{usage}");
    assert_eq!(usage["total_tokens"], prompt + completion, "{usage}");
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

#[tokio::test]
async fn the_sdk_lists_the_models_and_parses_a_whole_chat() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "unused", "models,chat").await;

    let models = &steps["models"];
    let ids: Vec<&str> = models["ids"]
        .as_array()
        .unwrap_or_else(|| panic!("{models}"))
        .iter()
        .map(|id| string(id, models))
        .collect();
    for model in ["mock/echo", "mock/tool", "mock/long", "mock/fail"] {
        assert!(ids.contains(&model), "{model} is listed: {models}");
        assert_eq!(models["owned_by"][model], "mock", "{models}");
    }
    assert_eq!(models["objects"], json!(["model"]), "{models}");

    let chat = &steps["chat"];
    assert_eq!(chat["object"], "chat.completion", "{chat}");
    assert_eq!(chat["model"], "mock/echo", "{chat}");
    assert_eq!(chat["choices"], 1, "{chat}");
    assert_eq!(chat["role"], "assistant", "{chat}");
    assert_eq!(chat["content"], CHAT_PROMPT, "the echoed prompt: {chat}");
    assert_eq!(chat["tool_calls"], Value::Null, "{chat}");
    assert_eq!(chat["finish_reason"], "stop", "{chat}");
    assert!(string(&chat["id"], chat).starts_with("chatcmpl-"), "{chat}");
    let tokens = words(CHAT_PROMPT);
    assert_usage(&chat["usage"], tokens, tokens);
    server.stop().await;
}

#[tokio::test]
async fn a_stream_iterated_with_the_sdk_has_the_text_the_finish_reason_and_usage() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "unused", "stream").await;
    let stream = &steps["stream"];
    assert_eq!(stream["text"], STREAM_PROMPT, "{stream}");
    assert!(
        stream["pieces"].as_array().is_some_and(|p| p.len() > 1),
        "the text arrives in several chunks: {stream}"
    );
    assert_eq!(stream["roles"], json!(["assistant"]), "{stream}");
    assert_eq!(stream["finish_reasons"], json!(["stop"]), "{stream}");
    assert_eq!(
        stream["objects"],
        json!(["chat.completion.chunk"]),
        "{stream}"
    );
    assert_eq!(stream["models"], json!(["mock/echo"]), "{stream}");
    assert_eq!(
        stream["ids"].as_array().map(Vec::len),
        Some(1),
        "one id: {stream}"
    );
    // include_usage: one final chunk with no choices carries the usage.
    assert_eq!(stream["chunks_with_usage"], 1, "{stream}");
    assert_eq!(stream["last_choices"], 0, "{stream}");
    let tokens = words(STREAM_PROMPT);
    assert_usage(&stream["usage"], tokens, tokens);
    server.stop().await;
}

#[tokio::test]
async fn the_sdks_stream_helper_assembles_the_mocks_tool_call() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "unused", "tool_stream").await;
    let tool = &steps["tool_stream"];
    // The mock calls the first tool offered (get_weather, required: city (string), days
    // (integer)) and fills string arguments with the last user message, numbers with 0.
    let arguments = json!({"city": TOOL_PROMPT, "days": 0});
    let calls = tool["tool_calls"]
        .as_array()
        .unwrap_or_else(|| panic!("{tool}"));
    assert_eq!(calls.len(), 1, "{tool}");
    let call = &calls[0];
    assert_eq!(call["type"], "function", "{call}");
    assert_eq!(call["name"], "get_weather", "{call}");
    assert!(string(&call["id"], call).starts_with("call_"), "{call}");
    let assembled: Value = serde_json::from_str(string(&call["arguments"], call))
        .unwrap_or_else(|e| panic!("the assembled arguments are not JSON ({e}): {call}"));
    assert_eq!(assembled, arguments, "{call}");
    // A strict tool: the SDK also parsed them.
    assert_eq!(call["parsed_arguments"], arguments, "{call}");
    assert_eq!(tool["finish_reason"], "tool_calls", "{tool}");
    assert_eq!(tool["model"], "mock/tool", "{tool}");
    // No text: the host's first chunk carries `"content": ""`, which the SDK keeps.
    assert!(
        tool["content"].as_str().unwrap_or_default().is_empty(),
        "{tool}"
    );

    // The helper's events: argument deltas, then one `done` with the whole call.
    let events = tool["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{tool}"));
    assert!(
        events.contains(&json!("tool_calls.function.arguments.delta")),
        "{tool}"
    );
    let done = &tool["arguments_done"];
    assert_eq!(done.as_array().map(Vec::len), Some(1), "{tool}");
    assert_eq!(done[0]["name"], "get_weather", "{tool}");
    assert_eq!(done[0]["index"], 0, "{tool}");
    assert_eq!(done[0]["parsed_arguments"], arguments, "{tool}");
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_model_raises_not_found_with_the_hosts_message() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    // The script's models: one the mock plugin does not have, whole; one no provider or
    // alias names, streamed (the host answers 404 before the stream starts).
    let steps = sdk(
        &server.url,
        "unused",
        "not_found:mock/no-such-model,not_found_stream:no-such-model",
    )
    .await;
    for (step, model, stream) in [
        ("not_found:mock/no-such-model", "mock/no-such-model", false),
        ("not_found_stream:no-such-model", "no-such-model", true),
    ] {
        let (status, host) = host_error(
            &server.url,
            json!({"model": model, "stream": stream, "messages": [{"role": "user", "content": "hi"}]}),
        )
        .await;
        assert_eq!(status, 404, "{host}");
        let observed = &steps[step];
        assert_raised(observed, "NotFoundError", 404, &host);
        assert_eq!(observed["is_not_found"], true, "{observed}");
        assert_eq!(observed["code"], "model_not_found", "{observed}");
        assert!(
            string(&observed["message"], observed).contains(model),
            "the message names the model: {observed}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn with_client_keys_the_sdk_works_with_a_key_and_raises_authentication_error_without() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "auth": {"keys": [CLIENT_KEY]}
    }));
    let server = Server::start(&config).await;
    let steps = sdk(&server.url, CLIENT_KEY, "models,chat,stream,wrong_key").await;
    assert!(
        steps["models"]["ids"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!("mock/echo"))),
        "{steps}"
    );
    assert_eq!(steps["chat"]["content"], CHAT_PROMPT, "{steps}");
    assert_eq!(steps["stream"]["text"], STREAM_PROMPT, "{steps}");

    let response = reqwest::get(server.at("/v1/models")).await.unwrap();
    assert_eq!(response.status(), 401);
    let host: Value = response.json().await.unwrap();
    let host = &host["error"];
    let wrong = &steps["wrong_key"];
    for call in ["models", "chat", "stream"] {
        let observed = &wrong[call];
        assert_raised(observed, "AuthenticationError", 401, host);
        assert_eq!(observed["is_authentication"], true, "{observed}");
        assert_eq!(observed["type"], "authentication_error", "{observed}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_stream_that_fails_midway_raises_an_api_error_after_its_text() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // An OpenAI-compatible upstream that sends one chunk, then a broken one, and closes:
    // the client already has text, so the host ends the stream with an error event.
    let first = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n";
    fake.always(Reply::sse(
        &[first, "data: {\"id\":"],
        Duration::from_millis(5),
    ));
    let config = scratch.config(json!({
        "providers": [{
            "name": "up",
            "library": plugin("openai_provider"),
            "base_url": format!("{}/v1", fake.url),
            "api_key_env": "",
            "allow_private_network": true
        }],
        "retry": {"max_retries": 0},
        "timeouts": {"first_byte": 5.0, "idle": 5.0}
    }));
    let server = Server::start(&config).await;
    let steps = sdk(&server.url, "unused", "stream_error:up/gpt-4o-mini").await;
    let observed = &steps["stream_error:up/gpt-4o-mini"];
    assert_eq!(observed["text_before"], "Hel", "{observed}");
    // The status was 200 already: the SDK raises its base `APIError`, with the error
    // event's object as its body.
    assert_eq!(observed["raised"], "APIError", "{observed}");
    assert_eq!(observed["status_code"], Value::Null, "{observed}");
    assert_eq!(observed["code"], "upstream_connection_failed", "{observed}");
    let message = string(&observed["body"]["message"], observed);
    assert!(!message.is_empty(), "{observed}");
    assert_eq!(observed["message"], message, "{observed}");
    server.stop().await;
}

/// The providers of `external_providers.json` whose key variable the default config names.
const KEYED_PROVIDERS: [&str; 5] = ["openai", "anthropic", "gemini", "openrouter", "groq"];

/// `external_providers.json` as it is, with each `library` pointing at the debug build
/// of the same plugin (`target/release/libopenai_provider.so` → `plugin("openai_provider")`).
fn default_config() -> Value {
    let path = repo_root().join("external_providers.json");
    let text = std::fs::read_to_string(&path).expect("external_providers.json");
    let mut config: Value = serde_json::from_str(&text).expect("external_providers.json is JSON");
    let providers = config["providers"]
        .as_array_mut()
        .expect("external_providers.json has providers");
    for provider in providers {
        let library = string(&provider["library"], provider).to_owned();
        let file = Path::new(&library)
            .file_name()
            .and_then(OsStr::to_str)
            .unwrap_or_else(|| panic!("no file name in {library}"));
        let name = file
            .strip_prefix(std::env::consts::DLL_PREFIX)
            .and_then(|f| f.strip_suffix(std::env::consts::DLL_SUFFIX))
            .unwrap_or_else(|| panic!("{library} is not a plugin file name"));
        provider["library"] = json!(plugin(name));
    }
    config
}

/// A host over `config` that finds no API key anywhere, whatever this process's
/// environment holds: as on a machine where none of the key variables is set.
struct KeylessServer {
    url: String,
    shutdown: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl KeylessServer {
    async fn start(config: &Path) -> KeylessServer {
        let host: Arc<provider_host::Host> = provider_host::Host::builder()
            .config_file(config)
            .api_keys(|_| None)
            .build()
            .expect("the default config loads");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let (shutdown, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(provider_host::serve::serve(host, listener, async {
            let _ = rx.await;
        }));
        KeylessServer {
            url,
            shutdown,
            task,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        self.task.await.expect("server task").expect("server ran");
    }
}

#[test]
fn no_alias_in_the_shipped_config_falls_back_to_the_mock() {
    let config = default_config();
    let mock_entries: Vec<&str> = config["providers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| string(&p["library"], p).contains("mock_provider"))
        .map(|p| string(&p["name"], p))
        .collect();
    assert_eq!(
        mock_entries,
        ["mock"],
        "the mock stays, for trying the host out"
    );
    let aliases = config["models"].as_object().expect("aliases");
    assert!(!aliases.is_empty());
    for (alias, model) in aliases {
        for target in model["targets"].as_array().unwrap() {
            let target = target
                .as_str()
                .or_else(|| target["target"].as_str())
                .unwrap();
            let provider = target.split('/').next().unwrap();
            assert!(
                !mock_entries.contains(&provider),
                "`{alias}` falls back to {target}: a client whose providers fail would get its own prompt back with a 200"
            );
        }
    }
}

#[tokio::test]
async fn the_default_config_serves_the_sdk_with_no_api_key() {
    let scratch = Scratch::new();
    let server = KeylessServer::start(&scratch.config(default_config())).await;

    // What `provider-host serve` shows on a fresh machine: the mock serves, the
    // providers that need a key wait for it.
    let admin: Value = reqwest::get(format!("{}/admin/providers", server.url))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let state = |name: &str| {
        admin["providers"]
            .as_array()
            .and_then(|all| all.iter().find(|p| p["name"] == name))
            .unwrap_or_else(|| panic!("{name} is in /admin/providers: {admin}"))
            .clone()
    };
    assert_eq!(state("mock")["state"], "ready", "{admin}");
    for name in KEYED_PROVIDERS {
        let provider = state(name);
        assert_ne!(provider["state"], "ready", "{provider}");
        assert!(
            provider["reason"]
                .as_str()
                .is_some_and(|r| r.contains("missing key")),
            "{provider}"
        );
    }

    let steps = sdk(
        &server.url,
        "unused",
        "models,chat:mock/echo,stream:mock/echo",
    )
    .await;
    let models = &steps["models"];
    assert!(
        models["ids"]
            .as_array()
            .is_some_and(|ids| ids.contains(&json!("mock/echo"))),
        "{models}"
    );
    let chat = &steps["chat:mock/echo"];
    assert_eq!(chat["content"], CHAT_PROMPT, "{chat}");
    assert_eq!(chat["model"], "mock/echo", "{chat}");
    assert_eq!(chat["finish_reason"], "stop", "{chat}");
    let tokens = words(CHAT_PROMPT);
    assert_usage(&chat["usage"], tokens, tokens);
    let stream = &steps["stream:mock/echo"];
    assert_eq!(stream["text"], STREAM_PROMPT, "{stream}");
    assert_eq!(stream["finish_reasons"], json!(["stop"]), "{stream}");
    assert_eq!(stream["models"], json!(["mock/echo"]), "{stream}");

    // The alias has no provider with a key: the client is told so, and never gets its
    // own prompt back as an answer.
    let (status, error) = host_error(
        &server.url,
        json!({"model": "fast", "messages": [{"role": "user", "content": CHAT_PROMPT}]}),
    )
    .await;
    assert_eq!(status, 503, "{error}");
    let message = string(&error["message"], &error);
    assert!(message.contains("missing key"), "{error}");
    server.stop().await;
}

#[tokio::test]
async fn the_sdks_embeddings_create_decodes_the_hosts_base64_and_reads_its_floats() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "unused", "embeddings").await;
    let step = &steps["embeddings"];
    // Without an encoding_format, the SDK asks for base64 and decodes it itself.
    assert_eq!(step["sent"]["encoding_format"], "base64", "{step}");
    assert_eq!(step["wire_types"], json!(["str", "str", "str"]), "{step}");
    assert_eq!(step["object"], "list", "{step}");
    assert_eq!(step["model"], "mock/embed", "{step}");
    assert_eq!(step["indexes"], json!([0, 1, 2]), "{step}");
    assert_eq!(step["item_objects"], json!(["embedding"]), "{step}");
    // Python reads both as doubles: the decoded f32s exactly, the JSON floats as printed
    // (the shortest text of each f32). As f32s they are the same numbers.
    let vectors = |name: &str| -> Vec<Vec<f32>> {
        let doubles: Vec<Vec<f64>> = serde_json::from_value(step[name].clone())
            .unwrap_or_else(|e| panic!("{name}: {e}: {step}"));
        doubles
            .into_iter()
            .map(|v| v.into_iter().map(|x| x as f32).collect())
            .collect()
    };
    let (decoded, floats) = (vectors("default_vectors"), vectors("float_vectors"));
    assert_eq!(decoded, floats, "the decoded base64 is the float answer");
    assert_eq!(decoded.len(), 3);
    assert_eq!(decoded[0], decoded[2], "the same input, the same vector");
    assert!(decoded.iter().all(|v| v.len() == 8), "{step}");
    let tokens: u64 = ["a red fox", "a blue whale", "a red fox"]
        .iter()
        .map(|t| words(t))
        .sum();
    assert_eq!(
        step["usage"],
        json!({"prompt_tokens": tokens, "total_tokens": tokens})
    );
    assert_eq!(vectors("single")[0].len(), 3, "dimensions honoured: {step}");
    let empty = &step["empty_input"];
    assert_eq!(empty["raised"], "BadRequestError", "{empty}");
    assert_eq!(empty["status_code"], 400, "{empty}");
    assert_eq!(empty["param"], "input", "{empty}");
    server.stop().await;
}
