//! The SDK's compatibility promise: 1.x changes are additive, so a plugin built against
//! provider-sdk 1.0.0 (the frozen build in `tests/plugins/sdk-1.0`) loads in this host,
//! passes validation and serves, whole and streamed, through every ingress.

use e2e::{
    client::streamed_answer, client::whole_answer, run_host, sdk_1_0_plugin, Scratch, Server,
};
use serde_json::json;

#[test]
fn a_plugin_built_against_sdk_1_0_passes_validate() {
    let plugin = sdk_1_0_plugin();
    let output = run_host(&[&"validate", &plugin]);
    let (stdout, stderr) = e2e::texts(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("1.0.0"),
        "the report names the SDK it was built against: {stdout}"
    );
}

#[tokio::test]
async fn a_plugin_built_against_sdk_1_0_serves_chat_and_messages_whole_and_streamed() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "old", "library": sdk_1_0_plugin()}]
    }));
    let server = Server::start(&config).await;

    let answer = whole_answer(
        &server,
        &json!({"model": "old/echo", "messages": [{"role": "user", "content": "still here"}]}),
    )
    .await;
    assert_eq!(answer["choices"][0]["message"]["content"], "still here");

    let streamed = streamed_answer(
        &server,
        &json!({"model": "old/long", "stream": true, "max_tokens": 3,
                "messages": [{"role": "user", "content": "go"}]}),
    )
    .await;
    assert_eq!(streamed.text(), "word0 word1 word2");

    // The Messages ingress asks the plugin whether it speaks Anthropic natively; a 1.0
    // plugin has no such entry, so the host's default answers "no" and translates.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.url))
        .json(&json!({"model": "old/echo", "max_tokens": 16,
                      "messages": [{"role": "user", "content": "translated"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let message: serde_json::Value = response.json().await.unwrap();
    assert_eq!(message["content"][0]["text"], "translated", "{message}");
    server.stop().await;
}

#[tokio::test]
async fn a_plugin_built_against_sdk_1_0_has_no_embeddings_and_is_never_sent_the_call() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "old", "library": sdk_1_0_plugin()}]
    }));
    let server = Server::start(&config).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/embeddings", server.url))
        .json(&json!({"model": "old/echo", "input": "hi"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unsupported_capability", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("does not offer embeddings")),
        "{body}"
    );
    // It still chats: the refusal changed nothing.
    let answer = whole_answer(
        &server,
        &json!({"model": "old/echo", "messages": [{"role": "user", "content": "still here"}]}),
    )
    .await;
    assert_eq!(answer["choices"][0]["message"]["content"], "still here");
    server.stop().await;
}

#[test]
fn native_requests_are_reused_only_for_plugins_of_sdk_1_4_that_say_they_can_be() {
    // SDK 1.4 added `Provider::native_requests_reusable`: the openai and anthropic
    // plugins build theirs from the entry's settings alone and say so; the mock keeps
    // the default (asked every time); a 1.0 plugin is never asked (it would not know
    // the call) and is asked for each request as before.
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [
            {"name": "openai", "library": e2e::plugin("openai_provider"), "api_key_env": ""},
            {"name": "anthropic", "library": e2e::plugin("anthropic_provider"), "api_key_env": ""},
            {"name": "mock", "library": e2e::mock_plugin()},
            {"name": "old", "library": sdk_1_0_plugin()}
        ]
    }));
    let host = provider_host::Host::from_config_file(&config).unwrap();
    let registry = host.registry();
    let reuses = |name: &str| {
        let status = registry.provider(name).unwrap();
        let ready = status
            .ready
            .as_ref()
            .unwrap_or_else(|| panic!("{name} serves: {}", status.state));
        ready.plugin.reuses_native_requests()
    };
    assert!(reuses("openai"));
    assert!(reuses("anthropic"));
    assert!(!reuses("mock"));
    assert!(!reuses("old"));
}
