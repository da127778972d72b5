//! The Anthropic provider through the host, over HTTP: an OpenAI client speaks to the
//! host, the host speaks Anthropic's Messages API to a fake upstream that answers with
//! Anthropic's documented bytes (server-sent events included) and records what it got.
//!
//! Canned upstream bytes, each with its source (docs.claude.com, the pages the plugin's
//! own fixtures cite):
//! - the Messages API reference (`/en/api/messages`), "200" example ([`MESSAGE`]);
//! - the streaming guide (`/en/docs/build-with-claude/streaming`): "Basic streaming
//!   request" ([`BASIC_STREAM`]), "Streaming request with tool use" ([`TOOL_USE_STREAM`]),
//!   "Streaming request with extended thinking" ([`THINKING_STREAM`]) and the overloaded
//!   `error` event of "Error events";
//! - the tool-use guide (`/en/docs/agents-and-tools/tool-use/implement-tool-use`), its
//!   tool-use answer ([`TOOL_USE`]);
//! - the extended-thinking guide (`/en/docs/build-with-claude/extended-thinking`): the
//!   "Extended thinking with tool use" answer ([`THINKING_TOOL_USE`]) and the usage
//!   figures of its prompt-caching example;
//! - error bodies in the documented shape (`/en/api/errors`), real ones where public
//!   reports quote them (named at each one).
//!
//! The docs show no streamed parallel tool use; [`PARALLEL_TOOL_USE_STREAM`] is written
//! by hand in the event shapes of the tool-use stream, not by any encoder of ours.

use e2e::{
    client::{
        self, error_type_and_code, only_request, scripted_host, send_chat, start_host_in_front_of,
        streamed_answer, whole_answer, StreamedAnswer,
    },
    fake::{FakeUpstream, Reply},
    plugin, Scratch, Server,
};
use serde_json::{json, Value};
use std::time::Duration;

/// The plugin's own copies of Anthropic's published bytes (its conformance material),
/// used here byte for byte instead of a second copy.
#[allow(dead_code)]
#[path = "../../providers/anthropic/src/fixtures.rs"]
mod fixtures;

use fixtures::{
    BASIC_STREAM, MESSAGE_RESPONSE as MESSAGE, OVERLOADED_BODY,
    PROMPT_TOO_LONG_BODY as PROMPT_TOO_LONG, THINKING_STREAM,
    THINKING_TOOL_USE_RESPONSE as THINKING_TOOL_USE, TOOL_USE_RESPONSE as TOOL_USE,
    TOOL_USE_STREAM,
};

/// Two `tool_use` blocks in one streamed turn, the case of the parallel-tool-use page
/// (`/en/docs/agents-and-tools/tool-use/parallel-tool-use`: weather and time), in the
/// event shapes of [`TOOL_USE_STREAM`].
const PARALLEL_TOOL_USE_STREAM: &str = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_01ParallelToolUseExample","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","stop_sequence":null,"usage":{"input_tokens":512,"output_tokens":3},"content":[],"stop_reason":null}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_01WeatherCallExample","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"location\":"}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":" \"San Francisco, CA\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_01TimeCallExample","name":"get_time","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{\"timezone\": \"America/"}}

event: content_block_delta
data: {"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"Los_Angeles\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":74}}

event: message_stop
data: {"type":"message_stop"}

"#;

/// The thinking text of [`THINKING_STREAM`], its deltas joined.
const STREAMED_THINKING: &str = "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231";

/// The overloaded `error` event of the streaming guide's "Error events" ("would normally
/// correspond to an HTTP 529 in a non-streaming context").
const OVERLOADED_EVENT: &str = r#"event: error
data: {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}

"#;

/// A 401 for a wrong key: the documented shape with the message the API gives
/// ("invalid x-api-key", as quoted in many client test suites).
const INVALID_KEY: &str =
    r#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}"#;

/// A 429: the documented shape, with the errors page's description of the type.
const RATE_LIMITED: &str = r#"{"type":"error","error":{"type":"rate_limit_error","message":"Your account has hit a rate limit."}}"#;

/// `get_weather` as an OpenAI client declares it (the tool-use guide's tool).
fn weather_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "get_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "The unit of temperature, either \"celsius\" or \"fahrenheit\""}
            },
            "required": ["location"]
        }
    }})
}

/// The fields of an `anthropic` entry over the anthropic plugin, Anthropic's API at the
/// fake's root.
fn anthropic_entry() -> Value {
    json!({"name": "anthropic", "library": plugin("anthropic_provider")})
}

/// A fake upstream with `replies` queued, and a host in front of it, its key put in
/// `key_env` first.
async fn anthropic(key_env: &str, replies: Vec<Reply>) -> (Scratch, FakeUpstream, Server) {
    scripted_host((key_env, "sk-ant-api03-test"), anthropic_entry(), replies).await
}

/// An SSE reply written in two pieces cut in the middle of an event, as a network may.
fn sse(body: &str) -> Reply {
    let cut = body.len() / 2;
    let cut = (cut..body.len())
        .find(|&i| body.is_char_boundary(i))
        .unwrap();
    Reply::sse(&[&body[..cut], &body[cut..]], Duration::from_millis(5))
}

#[tokio::test]
async fn a_chat_is_a_messages_request_with_the_key_the_version_and_the_system_prompt_hoisted() {
    let (_scratch, fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_PLAIN", vec![Reply::json(MESSAGE)]).await;
    let response = send_chat(
        &server,
        &json!({
            "model": "anthropic/claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "messages": [
                {"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "Hello, Claude"}
            ]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-provider"], "anthropic");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hi! My name is Claude.", "refusal": null})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // input_tokens 2095 + output_tokens 503 = 2598.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2095, "completion_tokens": 503, "total_tokens": 2598,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    let sent = only_request(&fake);
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/v1/messages")
    );
    assert_eq!(sent.header("x-api-key"), Some("sk-ant-api03-test"));
    assert_eq!(sent.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "the key goes in x-api-key only"
    );
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.json(),
        json!({
            "model": "claude-sonnet-4-5-20250929",
            "max_tokens": 1024,
            "system": [{"type": "text", "text": "You are a helpful assistant."}],
            "messages": [{"role": "user", "content": [{"type": "text", "text": "Hello, Claude"}]}]
        })
    );
    server.stop().await;
}

#[tokio::test]
async fn max_tokens_is_always_sent_since_the_messages_api_requires_it() {
    let (_scratch, fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_MAX_TOKENS", vec![Reply::json(MESSAGE)]).await;
    whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5-20250929",
                "messages": [{"role": "user", "content": "Hello, Claude"}]}),
    )
    .await;
    assert_eq!(
        only_request(&fake).json()["max_tokens"],
        64_000,
        "without a limit from the client, the model's max output from the manifest"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_chat_turns_the_event_stream_into_chunks_with_usage_and_done() {
    let (_scratch, fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_STREAM", vec![sse(BASIC_STREAM)]).await;
    let streamed = streamed_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5-20250929", "max_tokens": 256,
                    "stream": true, "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert_eq!(streamed.text(), "Hello!");
    assert_eq!(streamed.finish_reasons(), ["stop"]);
    assert!(streamed.errors.is_empty());
    // input 25 (message_start) + output 15 (the last message_delta, cumulative) = 40.
    assert_eq!(
        streamed.usage(),
        Some(
            &json!({"prompt_tokens": 25, "completion_tokens": 15, "total_tokens": 40,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 0}})
        )
    );

    let sent = only_request(&fake);
    assert_eq!(sent.target, "/v1/messages");
    let body = sent.json();
    assert_eq!(body["stream"], true);
    assert!(
        body.get("stream_options").is_none(),
        "the Messages API rejects unknown fields and always streams usage: {body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_tool_use_block_comes_back_as_an_openai_tool_call_with_json_arguments() {
    let (_scratch, fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_TOOL", vec![Reply::json(TOOL_USE)]).await;
    let body = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                "tools": [weather_tool()],
                "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}]}),
    )
    .await;
    let message = &body["choices"][0]["message"];
    assert_eq!(
        message["content"],
        "I'll check the current weather in San Francisco for you."
    );
    let calls = message["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0]["id"], "toolu_01A09q90qw90lq917835lq9");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_weather");
    let arguments: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(
        arguments,
        json!({"location": "San Francisco, CA", "unit": "celsius"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");

    let sent = only_request(&fake).json();
    assert_eq!(
        sent["tools"],
        json!([{"name": "get_weather", "description": "Get the current weather in a given location",
                "input_schema": weather_tool()["function"]["parameters"]}]),
        "OpenAI function tools become Anthropic tools with an input_schema"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_use_arrives_as_index_zero_deltas_that_join_into_the_input() {
    let (_scratch, _fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_TOOL_STREAM", vec![sse(TOOL_USE_STREAM)]).await;
    let request = json!({"model": "anthropic/claude-sonnet-4-5-20250929", "max_tokens": 1024,
                         "stream": true, "stream_options": {"include_usage": true},
                         "tools": [weather_tool()],
                         "messages": [{"role": "user", "content": "What's the weather like in San Francisco?"}]});
    let streamed = streamed_answer(&server, &request).await;
    assert_eq!(
        streamed.text(),
        "Okay, let's check the weather for San Francisco, CA:"
    );
    assert_eq!(
        streamed.tool_calls(),
        vec![(
            0,
            "toolu_01T1x1fJ34qAmk2tNTrN7Up6".to_owned(),
            "get_weather".to_owned(),
            r#"{"location": "San Francisco, CA", "unit": "fahrenheit"}"#.to_owned()
        )]
    );
    assert_eq!(streamed.finish_reasons(), ["tool_calls"]);
    // 472 input + 89 output = 561.
    let usage = streamed.usage().expect("a usage chunk");
    assert_eq!(
        (
            &usage["prompt_tokens"],
            &usage["completion_tokens"],
            &usage["total_tokens"]
        ),
        (&json!(472), &json!(89), &json!(561))
    );
    server.stop().await;
}

#[tokio::test]
async fn parallel_streamed_tool_uses_become_tool_calls_with_indexes_zero_and_one() {
    let (_scratch, _fake, server) = anthropic(
        "E2E_ANTHROPIC_KEY_PARALLEL",
        vec![sse(PARALLEL_TOOL_USE_STREAM)],
    )
    .await;
    let time_tool = json!({"type": "function", "function": {"name": "get_time",
        "description": "Get the current time in a given timezone",
        "parameters": {"type": "object", "properties": {"timezone": {"type": "string"}}, "required": ["timezone"]}}});
    let request = json!({"model": "anthropic/claude-sonnet-4-5-20250929", "max_tokens": 1024,
                         "stream": true, "tools": [weather_tool(), time_tool],
                         "messages": [{"role": "user", "content": "What's the weather in SF, and what time is it there?"}]});
    let streamed = streamed_answer(&server, &request).await;
    assert_eq!(
        streamed.tool_calls(),
        vec![
            (
                0,
                "toolu_01WeatherCallExample".to_owned(),
                "get_weather".to_owned(),
                r#"{"location": "San Francisco, CA"}"#.to_owned()
            ),
            (
                1,
                "toolu_01TimeCallExample".to_owned(),
                "get_time".to_owned(),
                r#"{"timezone": "America/Los_Angeles"}"#.to_owned()
            ),
        ]
    );
    assert_eq!(streamed.finish_reasons(), ["tool_calls"]);
    server.stop().await;
}

#[tokio::test]
async fn the_second_turn_of_a_tool_loop_sends_tool_use_and_tool_result_blocks() {
    let (_scratch, fake, server) = anthropic(
        "E2E_ANTHROPIC_KEY_LOOP",
        vec![Reply::json(TOOL_USE), Reply::json(MESSAGE)],
    )
    .await;
    let system = json!({"role": "system", "content": "Answer briefly."});
    let question = json!({"role": "user", "content": "What's the weather like in San Francisco?"});
    let first = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                "tools": [weather_tool()], "messages": [system, question]}),
    )
    .await;
    // The client echoes the assistant message it got and answers the call.
    let assistant = first["choices"][0]["message"].clone();
    let result = json!({"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"});
    whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                "tools": [weather_tool()], "messages": [system, question, assistant, result]}),
    )
    .await;

    let received = fake.received();
    assert_eq!(received.len(), 2);
    let second = received[1].json();
    assert_eq!(
        second["system"],
        json!([{"type": "text", "text": "Answer briefly."}])
    );
    assert_eq!(
        second["messages"],
        json!([
            {"role": "user", "content": [{"type": "text", "text": "What's the weather like in San Francisco?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}
            ]}
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn extended_thinking_round_trips_its_signed_block_ahead_of_the_tool_use() {
    let (_scratch, fake, server) = anthropic(
        "E2E_ANTHROPIC_KEY_THINKING",
        vec![Reply::json(THINKING_TOOL_USE), Reply::json(MESSAGE)],
    )
    .await;
    let thinking = json!({"type": "enabled", "budget_tokens": 10000});
    let question = json!({"role": "user", "content": "What's the weather in Paris?"});
    let first = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 16000,
                "thinking": thinking, "tools": [weather_tool()], "messages": [question]}),
    )
    .await;
    let message = &first["choices"][0]["message"];
    assert_eq!(
        message["reasoning_content"],
        "The user wants to know the current weather in Paris. I have access to a function `get_weather`..."
    );
    assert_eq!(
        message["reasoning_details"],
        json!([{"type": "reasoning.text",
                "text": "The user wants to know the current weather in Paris. I have access to a function `get_weather`...",
                "signature": "BDaL4VrbR2Oj0hO4XpJxT28J5TILnCrrUXoKiiNBZW9P+nr8XSj1zuZzAl4egiCCpQNvfyUuFFJP5CncdYZEQPPmLxYsNrcs....",
                "format": "anthropic-claude-v1"}])
    );
    assert_eq!(
        message["tool_calls"][0]["id"],
        "toolu_01CswdEQBMshySk6Y9DFKrfq"
    );
    assert_eq!(first["choices"][0]["finish_reason"], "tool_calls");

    // Turn 2: the client echoes the assistant message whole and adds the tool's result
    // (the guide's "Current temperature: 88°F").
    let result = json!({"role": "tool", "tool_call_id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "content": "Current temperature: 88°F"});
    whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 16000,
                "thinking": thinking, "tools": [weather_tool()],
                "messages": [question, message, result]}),
    )
    .await;

    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[0].json()["thinking"], thinking);
    let second = received[1].json();
    assert_eq!(second["thinking"], thinking);
    let documented: Value = serde_json::from_str(THINKING_TOOL_USE).unwrap();
    assert_eq!(
        second["messages"][1],
        json!({"role": "assistant", "content": documented["content"]}),
        "the assistant turn goes back block for block: the thinking block with its signature, the text, then tool_use"
    );
    assert_eq!(
        second["messages"][2]["content"][0],
        json!({"type": "tool_result", "tool_use_id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "content": "Current temperature: 88°F"})
    );
    server.stop().await;
}

#[tokio::test]
async fn streamed_extended_thinking_carries_reasoning_and_its_signed_detail_into_the_next_turn() {
    let (_scratch, fake, server) = anthropic(
        "E2E_ANTHROPIC_KEY_THINKING_STREAM",
        vec![sse(THINKING_STREAM), Reply::json(MESSAGE)],
    )
    .await;
    let thinking = json!({"type": "enabled", "budget_tokens": 16000});
    let question = json!({"role": "user", "content": "What is 27 * 453?"});
    let streamed = streamed_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 20000,
                    "stream": true, "thinking": thinking, "messages": [question]}),
    )
    .await;
    assert_eq!(streamed.reasoning(), STREAMED_THINKING);
    assert_eq!(streamed.text(), "27 * 453 = 12,231");
    let details = streamed.reasoning_details();
    assert_eq!(
        details,
        [json!({"type": "reasoning.text", "text": STREAMED_THINKING,
                "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...",
                "format": "anthropic-claude-v1"})],
        "the block arrives whole, with its signature, when it ends"
    );
    assert_eq!(streamed.finish_reasons(), ["stop"]);

    // The assistant message the client assembled from the chunks, echoed back.
    let assistant = json!({"role": "assistant", "content": streamed.text(),
                           "reasoning_content": streamed.reasoning(), "reasoning_details": details});
    whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 20000, "thinking": thinking,
                "messages": [question, assistant, {"role": "user", "content": "And 27 * 454?"}]}),
    )
    .await;
    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[1].json()["messages"][1]["content"],
        json!([
            {"type": "thinking", "thinking": STREAMED_THINKING,
             "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},
            {"type": "text", "text": "27 * 453 = 12,231"}
        ]),
        "the thinking block goes back first, unmodified"
    );
    server.stop().await;
}

/// [`MESSAGE`] with another documented `stop_reason` (the API reference lists
/// `end_turn`, `max_tokens`, `stop_sequence`, `tool_use`, `pause_turn` and `refusal`).
fn message_stopping_with(reason: &str) -> String {
    let edited = MESSAGE.replace(
        "\"stop_reason\": \"end_turn\"",
        &format!("\"stop_reason\": \"{reason}\""),
    );
    assert_ne!(edited, MESSAGE);
    edited
}

#[tokio::test]
async fn a_max_tokens_stop_is_finish_reason_length() {
    let (_scratch, _fake, server) = anthropic(
        "E2E_ANTHROPIC_KEY_LENGTH",
        vec![Reply::json(&message_stopping_with("max_tokens"))],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 8,
                "messages": [{"role": "user", "content": "Hello, Claude"}]}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_refusal_is_finish_reason_content_filter() {
    let refused = BASIC_STREAM.replace(
        "\"stop_reason\": \"end_turn\"",
        "\"stop_reason\": \"refusal\"",
    );
    assert_ne!(refused, BASIC_STREAM);
    let (_scratch, _fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_REFUSAL", vec![sse(&refused)]).await;
    let streamed = streamed_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 256, "stream": true,
                    "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(streamed.finish_reasons(), ["content_filter"]);
    server.stop().await;
}

#[tokio::test]
async fn cache_reads_count_in_prompt_tokens_and_show_as_cached_tokens() {
    // The "Second response usage" of the extended-thinking guide's prompt-caching example.
    let usage_at = MESSAGE.find("\"usage\"").unwrap();
    let body = format!(
        "{}\"usage\": {{\"cache_creation_input_tokens\": 0, \"cache_read_input_tokens\": 1370, \"input_tokens\": 303, \"output_tokens\": 874}}\n}}",
        &MESSAGE[..usage_at]
    );
    let (_scratch, _fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_CACHE_READ", vec![Reply::json(&body)]).await;
    let answer = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                "messages": [{"role": "user", "content": "Hello, Claude"}]}),
    )
    .await;
    // prompt = 303 uncached + 1370 read from the cache = 1673; 1673 + 874 = 2547.
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 1673, "completion_tokens": 874, "total_tokens": 2547,
               "prompt_tokens_details": {"cached_tokens": 1370},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    server.stop().await;
}

#[tokio::test]
async fn cache_writes_count_in_prompt_tokens_but_are_not_cached_tokens() {
    // The "First response usage" of the same example.
    let usage_at = MESSAGE.find("\"usage\"").unwrap();
    let body = format!(
        "{}\"usage\": {{\"cache_creation_input_tokens\": 1370, \"cache_read_input_tokens\": 0, \"input_tokens\": 17, \"output_tokens\": 700}}\n}}",
        &MESSAGE[..usage_at]
    );
    let (_scratch, _fake, server) =
        anthropic("E2E_ANTHROPIC_KEY_CACHE_WRITE", vec![Reply::json(&body)]).await;
    let answer = whole_answer(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                "messages": [{"role": "user", "content": "Hello, Claude"}]}),
    )
    .await;
    // prompt = 17 + 1370 written to the cache = 1387; 1387 + 700 = 2087.
    assert_eq!(
        answer["usage"],
        json!({"prompt_tokens": 1387, "completion_tokens": 700, "total_tokens": 2087,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    server.stop().await;
}

/// What the client gets when every attempt is answered with `reply`.
async fn error_for(key_env: &str, reply: Reply) -> (u16, Value) {
    let request = json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 1024,
                         "messages": [{"role": "user", "content": "Hello, Claude"}]});
    let key = (key_env, "sk-ant-api03-test");
    client::error_for(key, anthropic_entry(), json!({}), reply, &request).await
}

#[tokio::test]
async fn a_529_overloaded_error_is_a_502_upstream_error() {
    let (status, body) = error_for(
        "E2E_ANTHROPIC_KEY_E529",
        Reply::status_json(529, OVERLOADED_BODY),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_error")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{body}"
    );
}

#[tokio::test]
async fn a_rate_limit_error_is_a_429_rate_limit_exceeded() {
    let (status, body) = error_for(
        "E2E_ANTHROPIC_KEY_E429",
        Reply::status_json(429, RATE_LIMITED).with_header("retry-after", "1"),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("rate_limit_error", "rate_limit_exceeded")
    );
}

#[tokio::test]
async fn a_prompt_too_long_invalid_request_is_a_400_context_length_exceeded() {
    let (status, body) = error_for(
        "E2E_ANTHROPIC_KEY_E400",
        Reply::status_json(400, PROMPT_TOO_LONG),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "context_length_exceeded")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("prompt is too long: 200251 tokens > 200000 maximum"),
        "{body}"
    );
}

#[tokio::test]
async fn an_authentication_error_is_a_502_upstream_authentication_failure() {
    let (status, body) = error_for(
        "E2E_ANTHROPIC_KEY_E401",
        Reply::status_json(401, INVALID_KEY),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_authentication_failed")
    );
}

/// The basic stream up to and including its "Hello" delta, split after the `ping`: the
/// events before the text, and the text delta.
fn stream_until_hello() -> (&'static str, &'static str) {
    let ping = "event: ping\ndata: {\"type\": \"ping\"}\n\n";
    let after_ping = BASIC_STREAM.find(ping).unwrap() + ping.len();
    let exclamation = BASIC_STREAM
        .find("event: content_block_delta\ndata: {\"type\": \"content_block_delta\", \"index\": 0, \"delta\": {\"type\": \"text_delta\", \"text\": \"!\"")
        .unwrap();
    (
        &BASIC_STREAM[..after_ping],
        &BASIC_STREAM[after_ping..exclamation],
    )
}

/// Streams `pieces`, reads the answer and checks that it broke off with an overloaded
/// error event after relaying "Hello".
async fn overloaded_after_hello(key_env: &str, pieces: &[&str]) {
    let (_scratch, _fake, server) =
        anthropic(key_env, vec![Reply::sse(pieces, Duration::from_millis(20))]).await;
    let request = json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 256, "stream": true,
                         "messages": [{"role": "user", "content": "Hello"}]});
    let streamed = StreamedAnswer::read_allowing_errors(send_chat(&server, &request).await).await;
    assert_eq!(
        streamed.text(),
        "Hello",
        "what came before the error was relayed"
    );
    assert!(
        streamed.finish_reasons().is_empty(),
        "no finish_reason: the answer broke off"
    );
    assert_eq!(streamed.errors.len(), 1, "{:?}", streamed.errors);
    let error = &streamed.errors[0]["error"];
    assert_eq!(error["code"], "upstream_error");
    assert!(
        error["message"].as_str().unwrap().contains("Overloaded"),
        "{error}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_overloaded_error_event_mid_stream_ends_the_stream_with_an_error_event() {
    let (head, hello) = stream_until_hello();
    overloaded_after_hello(
        "E2E_ANTHROPIC_KEY_MID_STREAM",
        &[head, hello, OVERLOADED_EVENT],
    )
    .await;
}

#[tokio::test]
async fn text_that_arrives_in_the_same_read_as_an_error_event_is_still_relayed() {
    let (head, hello) = stream_until_hello();
    let hello_then_error = format!("{hello}{OVERLOADED_EVENT}");
    overloaded_after_hello(
        "E2E_ANTHROPIC_KEY_MID_STREAM_SAME_READ",
        &[head, &hello_then_error],
    )
    .await;
}

#[tokio::test]
async fn an_overloaded_error_event_before_any_content_is_a_plain_502_upstream_error() {
    // The stream opens with the guide's error event and nothing else: nothing has reached
    // the client yet, so it gets an ordinary error response, not a broken stream.
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::sse(&[OVERLOADED_EVENT], Duration::ZERO));
    let key = ("E2E_ANTHROPIC_KEY_FIRST_EVENT_ERROR", "sk-ant-api03-test");
    let server = start_host_in_front_of(&scratch, &fake, key, anthropic_entry(), json!({})).await;
    let response = send_chat(
        &server,
        &json!({"model": "anthropic/claude-sonnet-4-5", "max_tokens": 256, "stream": true,
                "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(response.status(), 502);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_error")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded"),
        "{body}"
    );
    assert!(!fake.received().is_empty());
    server.stop().await;
}
