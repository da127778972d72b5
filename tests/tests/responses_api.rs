//! `POST /v1/responses`, `GET` and `DELETE /v1/responses/{id}` against the official
//! OpenAI Python SDK (`responses.create`, `responses.stream` and its accumulator,
//! `retrieve`, `delete`), and what a translated request looks like upstream.
//!
//! The mock counts words as tokens, which makes a continued conversation visible in
//! the usage: a continuation's input holds the earlier turns.

use e2e::{
    client::entry_in_front_of,
    fake::{FakeUpstream, Reply},
    mock_plugin, plugin, Scratch, Server,
};
use serde_json::{json, Value};

const CHAT_PROMPT: &str = "Hello from the official SDK";
const TOOL_PROMPT: &str = "Weather in Paris?";

async fn sdk(url: &str, steps: &str) -> Value {
    e2e::sdk::openai(url, "unused", steps).await
}

fn output_types(response: &Value) -> Vec<&str> {
    response["output"]
        .as_array()
        .unwrap_or_else(|| panic!("no output: {response}"))
        .iter()
        .map(|i| i["type"].as_str().unwrap_or_default())
        .collect()
}

#[tokio::test]
async fn the_sdk_creates_a_response_and_streams_text_through_the_mock() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "responses_create,responses_stream_text").await;

    let created = &steps["responses_create"];
    assert_eq!(created["object"], "response", "{created}");
    assert_eq!(created["status"], "completed", "{created}");
    assert_eq!(created["model"], "mock/echo", "{created}");
    assert!(created["id"]
        .as_str()
        .is_some_and(|id| id.starts_with("resp_")));
    assert_eq!(created["output_text"], CHAT_PROMPT, "{created}");
    assert_eq!(output_types(created), ["message"], "{created}");
    // Instructions (2 words) and the prompt (5) in, the echo (5) out.
    assert_eq!(created["usage"]["input_tokens"], 7, "{created}");
    assert_eq!(created["usage"]["output_tokens"], 5, "{created}");
    assert_eq!(created["usage"]["total_tokens"], 12, "{created}");

    let streamed = &steps["responses_stream_text"];
    let deltas: Vec<&str> = streamed["deltas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(deltas.len() > 1, "text arrives in pieces: {streamed}");
    let final_response = &streamed["final"];
    assert_eq!(final_response["output_text"], deltas.concat());
    assert_eq!(final_response["status"], "completed");
    assert_eq!(output_types(final_response), ["message"]);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_function_call_accumulates_into_a_function_call_item() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "responses_stream").await;
    let observed = &steps["responses_stream"];
    let events: Vec<&str> = observed["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    assert_eq!(events[..2], ["response.created", "response.in_progress"]);
    assert_eq!(events.last(), Some(&"response.completed"));
    for expected in [
        "response.output_item.added",
        "response.function_call_arguments.delta",
        "response.function_call_arguments.done",
        "response.output_item.done",
    ] {
        assert!(events.contains(&expected), "{expected} in {events:?}");
    }
    let calls = observed["calls"].as_array().unwrap();
    assert_eq!(calls.len(), 1, "{observed}");
    assert_eq!(calls[0]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(calls[0]["arguments"].as_str().unwrap()).unwrap()["city"],
        TOOL_PROMPT,
        "the mock fills string arguments with the prompt"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_function_call_output_turn_is_accepted_with_the_calls_items_passed_back() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "responses_tool_loop").await;
    let observed = &steps["responses_tool_loop"];
    assert_eq!(output_types(&observed["first"]), ["function_call"]);
    let second = &observed["second"];
    assert_eq!(second["status"], "completed", "{observed}");
    // The echo answers the last user message: the items before it were understood.
    assert_eq!(second["output_text"], TOOL_PROMPT, "{observed}");
    server.stop().await;
}

#[tokio::test]
async fn previous_response_id_continues_a_stored_conversation_until_it_is_deleted() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "responses_previous,responses_no_store").await;
    let observed = &steps["responses_previous"];
    let (first, second) = (&observed["first"], &observed["second"]);
    assert_eq!(first["output_text"], "one two");
    assert_eq!(second["output_text"], "three");
    assert_eq!(second["previous_response_id"], first["id"]);
    // "one two" + the answer "one two" + "three": the stored turns were sent along.
    assert_eq!(second["usage"]["input_tokens"], 5, "{observed}");
    assert_eq!(observed["retrieved"]["id"], first["id"]);
    assert_eq!(observed["retrieved"]["output_text"], "one two");
    assert_eq!(
        observed["retrieve_deleted"]["raised"], "NotFoundError",
        "{observed}"
    );
    let continued = &observed["continue_deleted"];
    assert_eq!(continued["raised"], "BadRequestError", "{observed}");
    assert_eq!(continued["code"], "previous_response_not_found");

    let unstored = &steps["responses_no_store"];
    assert_eq!(unstored["response"]["status"], "completed");
    assert_eq!(
        unstored["retrieve"]["raised"], "NotFoundError",
        "{unstored}"
    );
    server.stop().await;
}

#[tokio::test]
async fn errors_and_refusals_come_in_openai_shape() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch.mock_config()).await;
    let steps = sdk(&server.url, "responses_not_found").await;
    let observed = &steps["responses_not_found"];
    assert_eq!(observed["raised"], "NotFoundError", "{observed}");
    assert_eq!(observed["code"], "model_not_found");

    let client = reqwest::Client::new();
    for (body, needle) in [
        (
            json!({"model": "mock/echo", "input": "x", "tools": [{"type": "web_search"}]}),
            "web_search",
        ),
        (
            json!({"model": "mock/echo", "input": [{"type": "item_reference", "id": "msg_1"}]}),
            "item references",
        ),
        (
            json!({"model": "mock/echo", "input": "x", "background": true}),
            "background",
        ),
        (json!({"model": "mock/echo"}), "input"),
    ] {
        let response = client
            .post(format!("{}/v1/responses", server.url))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{needle} in {error}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_responses_request_reaches_an_openai_upstream_as_a_chat_completion_and_back() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(
        r#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":null,"tool_calls":[{"id":"call_7","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":30,"completion_tokens":9,"total_tokens":39}}"#,
    ));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "up", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({
        "providers": [entry, {"name": "mock", "library": mock_plugin()}],
        "retry": {"max_retries": 0}
    }));
    let server = Server::start(&config).await;
    let request = json!({
        "model": "up/gpt-4o-mini",
        "instructions": "Use tools.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": TOOL_PROMPT}]},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Lyon\"}", "id": "fc_1", "status": "completed"},
            {"type": "function_call_output", "call_id": "call_1", "output": "12C"}
        ],
        "tools": [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}, "strict": false}],
        "tool_choice": "required",
        "max_output_tokens": 50,
        "text": {"format": {"type": "json_schema", "name": "out", "schema": {"type": "object"}, "strict": true}}
    });
    let response = reqwest::Client::new()
        .post(format!("{}/v1/responses", server.url))
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(output_types(&body), ["function_call"], "{body}");
    assert_eq!(body["output"][0]["call_id"], "call_7");
    assert_eq!(body["output"][0]["arguments"], "{\"city\":\"Paris\"}");
    assert_eq!(body["usage"]["input_tokens"], 30);
    assert_eq!(
        body["tools"], request["tools"],
        "the request's tools echoed"
    );

    let sent = e2e::client::only_request(&fake).json();
    assert_eq!(
        sent["messages"],
        json!([
            {"role": "system", "content": "Use tools."},
            {"role": "user", "content": TOOL_PROMPT},
            {"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Lyon\"}"}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "12C"}
        ]),
        "{sent}"
    );
    assert_eq!(
        sent["tools"],
        json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": false}}])
    );
    assert_eq!(sent["tool_choice"], "required");
    assert_eq!(sent["max_completion_tokens"], 50);
    assert_eq!(
        sent["response_format"],
        json!({"type": "json_schema", "json_schema": {"name": "out", "schema": {"type": "object"}, "strict": true}})
    );
    server.stop().await;
}

/// A host whose `up` entry is the openai plugin in front of `fake`.
async fn openai_host(scratch: &Scratch, fake: &FakeUpstream) -> Server {
    let entry = entry_in_front_of(
        fake,
        "",
        json!({"name": "up", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({
        "providers": [entry],
        "retry": {"max_retries": 0},
        "timeouts": {"first_byte": 5.0, "idle": 5.0}
    }));
    Server::start(&config).await
}

#[tokio::test]
async fn a_stream_that_fails_midway_raises_in_the_sdk_after_its_text() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // One chunk, then a broken one, and the upstream closes.
    let first = "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n";
    fake.always(Reply::sse(
        &[first, "data: {\"id\":"],
        std::time::Duration::from_millis(5),
    ));
    let server = openai_host(&scratch, &fake).await;
    let steps = sdk(&server.url, "responses_stream_error:up/gpt-4o-mini").await;
    let observed = &steps["responses_stream_error:up/gpt-4o-mini"];
    assert_eq!(observed["text_before"], "Hel", "{observed}");
    assert_eq!(observed["raised"], "APIError", "{observed}");
    assert!(
        observed["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{observed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn an_answer_cut_at_the_token_limit_is_an_incomplete_response() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(
        r#"{"id":"chatcmpl-2","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Once upon a"},"finish_reason":"length"}],"usage":{"prompt_tokens":8,"completion_tokens":3,"total_tokens":11}}"#,
    ));
    let server = openai_host(&scratch, &fake).await;
    let response: Value = reqwest::Client::new()
        .post(format!("{}/v1/responses", server.url))
        .json(&json!({"model": "up/gpt-4o-mini", "input": "A story?", "max_output_tokens": 3}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(response["status"], "incomplete", "{response}");
    assert_eq!(
        response["incomplete_details"],
        json!({"reason": "max_output_tokens"})
    );
    assert_eq!(response["output"][0]["status"], "incomplete");
    assert_eq!(response["output"][0]["content"][0]["text"], "Once upon a");
    server.stop().await;
}

#[allow(dead_code)]
#[path = "../../providers/anthropic/src/fixtures.rs"]
mod anthropic_fixtures;

#[tokio::test]
async fn the_openai_sdk_speaks_chat_and_responses_to_an_anthropic_target() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    // The Messages reference's example answer, for every request.
    fake.always(Reply::json(anthropic_fixtures::MESSAGE_RESPONSE));
    let entry = entry_in_front_of(
        &fake,
        "",
        json!({"name": "anthropic", "library": plugin("anthropic_provider")}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    let server = Server::start(&config).await;
    let steps = sdk(
        &server.url,
        "chat:anthropic/claude-sonnet-4-5,responses_create:anthropic/claude-sonnet-4-5",
    )
    .await;
    let chat = &steps["chat:anthropic/claude-sonnet-4-5"];
    assert_eq!(chat["content"], "Hi! My name is Claude.", "{chat}");
    assert_eq!(chat["usage"]["prompt_tokens"], 2095, "{chat}");
    let response = &steps["responses_create:anthropic/claude-sonnet-4-5"];
    assert_eq!(
        response["output_text"], "Hi! My name is Claude.",
        "{response}"
    );
    assert_eq!(response["usage"]["output_tokens"], 503, "{response}");
    // Both went upstream as Messages requests, the instructions as the system prompt.
    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.target == "/v1/messages"));
    assert_eq!(
        received[1].json()["system"],
        json!([{"type": "text", "text": "Be brief."}])
    );
    server.stop().await;
}
