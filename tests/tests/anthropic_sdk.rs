//! `POST /v1/messages` against a client we did not write: the official Anthropic Python
//! SDK (PyPI `anthropic`, pinned in `.ci/install-client-sdks`), used as Claude Code's
//! users point it at a gateway: `anthropic.Anthropic(base_url=<host root>, api_key=...)`.
//!
//! Each test starts a host in-process, runs `tests/client/anthropic_sdk_check.py` with a
//! list of steps, and asserts on what the SDK parsed, accumulated or raised. Targets:
//! the mock (translated from canonical events), the openai plugin in front of a fake
//! OpenAI upstream (Messages in, chat completions out), and the anthropic plugin in
//! front of a fake Anthropic upstream answering with Anthropic's published bytes.

use std::time::Duration;

use e2e::{
    client::entry_in_front_of,
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, Scratch, Server,
};
use serde_json::{json, Value};

#[allow(dead_code)]
#[path = "../../providers/anthropic/src/fixtures.rs"]
mod fixtures;

const PROMPT: &str = "Hello from the Anthropic SDK";
const CLIENT_KEY: &str = "sk-e2e-anthropic-sdk-client-key";

/// What the official Anthropic SDK observed against the host at `url`.
async fn sdk(url: &str, key: &str, steps: &str) -> Value {
    e2e::sdk::anthropic(url, key, steps).await
}

fn block_types(message: &Value) -> Vec<&str> {
    message["content"]
        .as_array()
        .unwrap_or_else(|| panic!("no content: {message}"))
        .iter()
        .map(|b| b["type"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn the_sdk_creates_and_streams_messages_through_the_mock() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(
        &server.url,
        "unused",
        "create:mock/echo,stream_text:mock/long,tool_result:mock/echo,count_tokens:mock/echo",
    )
    .await;

    let create = &steps["create"];
    assert_eq!(create["type"], "message", "{create}");
    assert_eq!(create["role"], "assistant", "{create}");
    assert_eq!(create["model"], "mock/echo", "{create}");
    assert!(
        create["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_")),
        "{create}"
    );
    assert_eq!(
        create["content"],
        json!([{"type": "text", "text": PROMPT, "citations": null}]),
        "the echoed prompt: {create}"
    );
    assert_eq!(create["stop_reason"], "end_turn", "{create}");
    // The mock counts words: the system prompt's two and the prompt's five in, five out.
    assert_eq!(create["usage"]["input_tokens"], 7, "{create}");
    assert_eq!(create["usage"]["output_tokens"], 5, "{create}");
    assert!(
        create["request_id"]
            .as_str()
            .is_some_and(|id| !id.is_empty()),
        "the SDK reads the request-id header: {create}"
    );

    let streamed = &steps["stream_text"];
    let texts: Vec<&str> = streamed["texts"]
        .as_array()
        .unwrap_or_else(|| panic!("{streamed}"))
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(
        texts.len(),
        6,
        "one text event per word, max_tokens 6: {streamed}"
    );
    let final_message = &streamed["final"];
    assert_eq!(block_types(final_message), ["text"], "{streamed}");
    assert_eq!(final_message["content"][0]["text"], texts.concat());
    // The mock's `long` ends its answer at max_tokens words as a natural stop.
    assert_eq!(final_message["stop_reason"], "end_turn", "{streamed}");
    assert_eq!(final_message["usage"]["output_tokens"], 6, "{streamed}");

    let answered = &steps["tool_result"];
    assert_eq!(
        answered["content"][0]["text"], "And tomorrow?",
        "the tool result went in as a tool message, the user's text after it: {answered}"
    );

    let counted = &steps["count_tokens"];
    assert!(
        counted["input_tokens"].as_u64().is_some_and(|n| n > 0),
        "{counted}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_accumulates_into_a_tool_use_block_with_its_input() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "unused", "stream_tools:mock/tool").await;
    let observed = &steps["stream_tools"];
    let events: Vec<&str> = observed["events"]
        .as_array()
        .unwrap_or_else(|| panic!("{observed}"))
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events.first(), Some(&"message_start"), "{observed}");
    assert_eq!(events.last(), Some(&"message_stop"), "{observed}");
    assert!(events.contains(&"input_json"), "{observed}");
    let final_message = &observed["final"];
    assert_eq!(block_types(final_message), ["tool_use"], "{observed}");
    let tool_use = &final_message["content"][0];
    assert_eq!(tool_use["name"], "get_weather", "{observed}");
    assert_eq!(
        tool_use["input"],
        json!({"city": "Weather in Paris?"}),
        "the mock fills the required string argument with the prompt: {observed}"
    );
    assert_eq!(final_message["stop_reason"], "tool_use", "{observed}");
    server.stop().await;
}

#[tokio::test]
async fn errors_reach_the_sdk_as_its_own_exception_classes_with_anthropic_bodies() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(
        &server.url,
        "unused",
        "not_found:mock/no-such-model,not_found_stream:nobody/nothing,bad_request:mock/echo",
    )
    .await;
    for (step, class, status, kind) in [
        ("not_found", "NotFoundError", 404, "not_found_error"),
        ("not_found_stream", "NotFoundError", 404, "not_found_error"),
        (
            "bad_request",
            "BadRequestError",
            400,
            "invalid_request_error",
        ),
    ] {
        let observed = &steps[step];
        assert_eq!(observed["raised"], class, "{step}: {observed}");
        assert_eq!(observed["status_code"], status, "{step}: {observed}");
        assert_eq!(observed["body"]["type"], "error", "{step}: {observed}");
        assert_eq!(
            observed["body"]["error"]["type"], kind,
            "{step}: {observed}"
        );
        assert!(
            observed["body"]["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{step}: {observed}"
        );
    }
    assert!(
        steps["bad_request"]["body"]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("web_search_20250305"),
        "the refusal names the server tool"
    );
    server.stop().await;
}

#[tokio::test]
async fn client_keys_are_accepted_in_the_sdks_header_and_a_wrong_one_is_a_401() {
    let scratch = Scratch::new();
    let config = scratch.config(json!({
        "providers": [{"name": "mock", "library": mock_plugin()}],
        "auth": {"keys": [CLIENT_KEY]}
    }));
    let server = Server::start(&config).await;
    let steps = sdk(&server.url, CLIENT_KEY, "create:mock/echo").await;
    assert_eq!(steps["create"]["content"][0]["text"], PROMPT, "{steps}");
    let steps = sdk(&server.url, "sk-wrong", "wrong_key:mock/echo").await;
    let observed = &steps["wrong_key"];
    assert_eq!(observed["raised"], "AuthenticationError", "{observed}");
    assert_eq!(observed["status_code"], 401, "{observed}");
    assert_eq!(
        observed["body"]["error"]["type"], "authentication_error",
        "{observed}"
    );
    // The older SDKs and Claude Code's ANTHROPIC_API_KEY send `x-api-key`.
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.url))
        .header("x-api-key", CLIENT_KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "mock/echo", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    server.stop().await;
}

#[tokio::test]
async fn a_messages_request_reaches_an_openai_upstream_as_a_chat_completion() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi from OpenAI."},"finish_reason":"stop"}],"usage":{"prompt_tokens":20,"completion_tokens":4,"total_tokens":24,"prompt_tokens_details":{"cached_tokens":8}}}"#,
    ));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "up", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let server = Server::start(&config).await;
    let steps = sdk(&server.url, "unused", "create:up/gpt-4o-mini").await;
    let create = &steps["create"];
    assert_eq!(
        create["content"],
        json!([{"type": "text", "text": "Hi from OpenAI.", "citations": null}])
    );
    assert_eq!(create["stop_reason"], "end_turn");
    assert_eq!(
        (
            &create["usage"]["input_tokens"],
            &create["usage"]["cache_read_input_tokens"],
            &create["usage"]["output_tokens"]
        ),
        (&json!(12), &json!(8), &json!(4)),
        "Anthropic counts cached input apart: {create}"
    );
    let sent = e2e::client::only_request(&fake).json();
    assert_eq!(sent["model"], "gpt-4o-mini");
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": PROMPT}
        ]),
        "system hoisted into a system message; cache_control is Anthropic's alone"
    );
    assert_eq!(
        sent["max_completion_tokens"], 64,
        "OpenAI's current name for the output limit: {sent}"
    );
    assert_eq!(sent["user"], "u-42", "metadata.user_id becomes `user`");
    server.stop().await;
}

/// The streaming guide's extended-thinking example, whose `message_start` and
/// `message_delta` the docs abbreviate: the API always sends `usage` in both (as in the
/// guide's other examples, [`fixtures::BASIC_STREAM`]), and clients rely on it, so it
/// is put back.
fn thinking_stream() -> String {
    fixtures::THINKING_STREAM
        .replacen(
            r#""stop_reason": null, "stop_sequence": null}}"#,
            r#""stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 41, "output_tokens": 1}}}"#,
            1,
        )
        .replacen(
            r#""stop_sequence": null}}"#,
            r#""stop_sequence": null}, "usage": {"output_tokens": 282}}"#,
            1,
        )
}

#[tokio::test]
async fn messages_pass_through_to_an_anthropic_upstream_byte_for_byte_both_ways() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let upstream_stream = thinking_stream();
    assert!(upstream_stream.contains("\"input_tokens\": 41"));
    fake.always(Reply::sse(&[&upstream_stream], Duration::from_millis(1)));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "anthropic", "library": plugin("anthropic_provider")}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let server = Server::start(&config).await;
    let steps = sdk(
        &server.url,
        "unused",
        "thinking:anthropic/claude-sonnet-4-5",
    )
    .await;
    let observed = &steps["thinking"];
    let final_message = &observed["final"];
    assert_eq!(
        block_types(final_message),
        ["thinking", "text"],
        "{observed}"
    );
    let thinking = &final_message["content"][0];
    assert!(
        thinking["thinking"]
            .as_str()
            .is_some_and(|t| t.starts_with("Let me solve this step by step")),
        "{observed}"
    );
    assert_eq!(
        thinking["signature"], "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...",
        "the signature the upstream sent, whole: {observed}"
    );
    assert_eq!(
        final_message["id"], "msg_01...",
        "the upstream's own message id"
    );
    assert_eq!(final_message["usage"]["input_tokens"], 41, "{observed}");
    assert_eq!(final_message["stop_reason"], "end_turn", "{observed}");

    // Upstream: the client's body with only the model replaced: the exact thinking
    // budget and the cache_control markers arrive as the SDK wrote them.
    let received = e2e::client::only_request(&fake);
    let sent = received.json();
    assert_eq!(sent["model"], "claude-sonnet-4-5");
    assert_eq!(
        sent["thinking"],
        json!({"type": "enabled", "budget_tokens": 2048})
    );
    assert_eq!(
        sent["messages"][0]["content"][0]["cache_control"],
        json!({"type": "ephemeral"})
    );
    assert_eq!(
        received.header("anthropic-version"),
        Some("2026-10-21"),
        "the client's API version, not the plugin's default"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_whole_message_from_an_anthropic_upstream_is_relayed_as_it_came() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(fixtures::MESSAGE_RESPONSE));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "anthropic", "library": plugin("anthropic_provider")}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let server = Server::start(&config).await;
    let response = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.url))
        .header("anthropic-beta", "some-future-beta-2099-01-01")
        .json(
            &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 64,
                      "messages": [{"role": "user", "content": "Hello"}],
                      "a_field_from_the_future": {"kept": true}}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-provider"], "anthropic");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        fixtures::MESSAGE_RESPONSE.as_bytes(),
        "the upstream's bytes, untouched"
    );
    let received = e2e::client::only_request(&fake);
    assert_eq!(
        received.json()["a_field_from_the_future"],
        json!({"kept": true})
    );
    assert_eq!(
        received.header("anthropic-beta"),
        Some("some-future-beta-2099-01-01")
    );
    // The plugin read the same bytes for usage.
    let usage = e2e::client::usage(&server).await;
    assert_eq!(usage["totals"]["prompt_tokens"], 2095, "{usage}");
    assert_eq!(usage["totals"]["completion_tokens"], 503, "{usage}");
    server.stop().await;
}

#[tokio::test]
async fn a_passed_through_stream_is_counted_whether_the_host_or_the_plugin_reads_it() {
    // The host reads a plain Messages stream itself; the plugin's decoder takes over at an
    // error event, and at an end the host cannot judge (the guide's tool-use example
    // stops without the blank line after `message_stop`). The client gets Anthropic's
    // bytes either way, and every token is counted.
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let cached = format!("{}\n", fixtures::BASIC_STREAM).replace(
        "\"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}",
        &format!("\"usage\": {}", fixtures::CACHE_READ_USAGE),
    );
    assert!(cached.contains("1370"));
    let started = &fixtures::BASIC_STREAM[..fixtures::BASIC_STREAM
        .find("event: content_block_start")
        .unwrap()];
    let overloaded = format!("{started}{}\n", fixtures::OVERLOADED_EVENT);
    fake.script([
        Reply::sse(&[&cached], Duration::ZERO),
        Reply::sse(&[&overloaded], Duration::ZERO),
        Reply::sse(&[fixtures::TOOL_USE_STREAM], Duration::ZERO),
    ]);
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "anthropic", "library": plugin("anthropic_provider")}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let server = Server::start(&config).await;
    let stream =
        || async {
            let response = reqwest::Client::new()
            .post(format!("{}/v1/messages", server.url))
            .json(&json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 64, "stream": true,
                          "messages": [{"role": "user", "content": "Hello"}]}))
            .send()
            .await
            .unwrap();
            assert_eq!(response.status(), 200);
            response.text().await.unwrap()
        };
    assert_eq!(stream().await, cached, "relayed as Anthropic sent it");
    let failed = stream().await;
    assert!(failed.starts_with(&overloaded), "{failed}");
    assert!(
        failed[overloaded.len()..].contains("overloaded_error"),
        "the plugin's verdict, in Anthropic's error event: {failed}"
    );
    assert_eq!(stream().await, fixtures::TOOL_USE_STREAM);

    let usage = e2e::client::usage(&server).await;
    let totals = &usage["totals"];
    assert_eq!(totals["calls"], 3, "{usage}");
    assert_eq!(totals["errors"], 1, "{usage}");
    assert_eq!(totals["prompt_tokens"], 303 + 1370 + 472, "{usage}");
    assert_eq!(totals["completion_tokens"], 15 + 89, "{usage}");
    assert_eq!(totals["cached_prompt_tokens"], 1370, "{usage}");
    server.stop().await;
}

#[tokio::test]
async fn count_tokens_is_the_anthropic_upstreams_own_count_and_an_estimate_elsewhere() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // The count_tokens reference's example answer.
    fake.always(Reply::json(r#"{"input_tokens":2095}"#));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "anthropic", "library": plugin("anthropic_provider")}),
    );
    let config = scratch.config(json!({
        "providers": [entry, {"name": "mock", "library": mock_plugin()}],
        "retry": {"max_retries": 0}
    }));
    let server = Server::start(&config).await;
    let steps = sdk(
        &server.url,
        "unused",
        "count_tokens:anthropic/claude-sonnet-4-5",
    )
    .await;
    assert_eq!(steps["count_tokens"]["input_tokens"], 2095, "{steps}");
    let received = e2e::client::only_request(&fake);
    assert_eq!(received.target, "/v1/messages/count_tokens");
    assert_eq!(received.json()["model"], "claude-sonnet-4-5");

    let estimated = reqwest::Client::new()
        .post(format!("{}/v1/messages/count_tokens", server.url))
        .json(&json!({"model": "mock/echo", "messages": [{"role": "user", "content": "twelve chars"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(estimated.headers()["x-token-count"], "estimate");
    let counted: Value = estimated.json().await.unwrap();
    assert_eq!(counted["input_tokens"], 3, "12 characters, about 4 a token");
    server.stop().await;
}
