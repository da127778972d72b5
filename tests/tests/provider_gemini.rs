//! The Gemini provider through the host, over HTTP: an OpenAI client speaks to the host,
//! the host speaks the Gemini API (`generateContent`, `streamGenerateContent?alt=sse`)
//! to a fake upstream that answers with real Gemini bytes and records what it received.
//!
//! The canned bytes are the plugin's fixtures (`providers/gemini/fixtures/`, included
//! unchanged, CRLF line ends and all), whose sources `fixtures/README.md` lists: Google's
//! captured Gemini API responses in FirebaseExtended/vertexai-sdk-test-data
//! (`mock-responses/...`) and two real error bodies quoted in public issues. One more
//! body comes from the same Google repository, named where it is used. Google's API
//! reference prints no full response bodies. Two bodies are edited or written by hand,
//! and say so: a `MAX_TOKENS` copy of the basic reply, and a streamed pair of parallel
//! calls (the captures hold none).

use e2e::{
    client::{
        self, error_type_and_code, only_request, scripted_host, send_chat, streamed_answer,
        whole_answer,
    },
    fake::{FakeUpstream, Reply},
    plugin, Scratch, Server,
};
use serde_json::{json, Value};
use std::time::Duration;

/// `googleai/unary-success-basic-reply-short.txt`.
const BASIC_REPLY: &str =
    include_str!("../../providers/gemini/fixtures/generate-content-basic-reply.json");
/// `googleai/unary-success-thinking-function-call-thought-summary-signature.json`.
const THINKING_FUNCTION_CALL: &str =
    include_str!("../../providers/gemini/fixtures/generate-content-thinking-function-call.json");
/// `vertexai/unary-success-function-call-different-parallel-calls.json`.
const PARALLEL_CALLS: &str =
    include_str!("../../providers/gemini/fixtures/generate-content-parallel-calls.json");
/// `googleai/unary-failure-finish-reason-safety.txt`.
const FINISH_REASON_SAFETY: &str =
    include_str!("../../providers/gemini/fixtures/generate-content-finish-reason-safety.json");
/// `vertexai/unary-success-implicit-caching.json`.
const IMPLICIT_CACHING: &str =
    include_str!("../../providers/gemini/fixtures/generate-content-implicit-caching.json");
/// `googleai/streaming-success-basic-reply-short.txt`.
const STREAM_BASIC_REPLY: &str =
    include_str!("../../providers/gemini/fixtures/stream-basic-reply.sse");
/// `googleai/streaming-success-thinking-function-call-thought-summary-signature.txt` (CRLF).
const STREAM_THINKING_FUNCTION_CALL: &str =
    include_str!("../../providers/gemini/fixtures/stream-thinking-function-call.sse");
/// `googleai/streaming-failure-prompt-blocked-safety.txt` (CRLF).
const STREAM_PROMPT_BLOCKED: &str =
    include_str!("../../providers/gemini/fixtures/stream-prompt-blocked-safety.sse");
/// `googleai/streaming-failure-recitation-no-content.txt`.
const STREAM_RECITATION: &str =
    include_str!("../../providers/gemini/fixtures/stream-recitation-no-content.sse");
/// A `429 RESOURCE_EXHAUSTED` with a `RetryInfo` detail (RooCodeInc/Roo-Code#3883).
const ERROR_429: &str =
    include_str!("../../providers/gemini/fixtures/error-429-resource-exhausted.json");
/// `googleai/unary-failure-api-key.txt`: `400 INVALID_ARGUMENT`, `API_KEY_INVALID`.
const ERROR_API_KEY_INVALID: &str =
    include_str!("../../providers/gemini/fixtures/error-400-api-key-invalid.json");
/// A `400 INVALID_ARGUMENT` for too long an input (google-gemini/gemini-cli#4118).
const ERROR_INPUT_TOKEN_COUNT: &str =
    include_str!("../../providers/gemini/fixtures/error-400-input-token-count.json");
/// `googleai/unary-failure-unknown-model.txt`: `404 NOT_FOUND`.
const ERROR_UNKNOWN_MODEL: &str =
    include_str!("../../providers/gemini/fixtures/error-404-unknown-model.json");
/// `googleai/unary-failure-generativelanguage-api-not-enabled.json`: `403 PERMISSION_DENIED`.
const ERROR_API_NOT_ENABLED: &str =
    include_str!("../../providers/gemini/fixtures/error-403-api-not-enabled.json");

/// FirebaseExtended/vertexai-sdk-test-data,
/// `mock-responses/googleai/unary-failure-url-context-url-limit-exceeded.json`: a plain
/// `400 INVALID_ARGUMENT`.
const ERROR_INVALID_ARGUMENT: &str = r#"{
  "error": {
    "code": 400,
    "message": "Number of urls to lookup exceeds the limit (21 \u003e 20). Please reduce the number of urls in the request.",
    "status": "INVALID_ARGUMENT"
  }
}
"#;

/// The signature on the `now` call of [`THINKING_FUNCTION_CALL`].
fn signature_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|p| p["thoughtSignature"].as_str())
        .expect("the fixture has a thought signature")
        .to_owned()
}

/// The thought-summary text parts of a fixture, joined.
fn thoughts_of(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap();
    value["candidates"][0]["content"]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["thought"] == true)
        .filter_map(|p| p["text"].as_str())
        .collect()
}

/// A streamed body cut after each event (`\n\n` or `\r\n\r\n`), as a network delivers it.
fn sse(body: &str) -> Reply {
    let mut pieces = Vec::new();
    let mut start = 0;
    for (end, _) in body.char_indices().map(|(i, c)| (i + c.len_utf8(), c)) {
        let so_far = &body[..end];
        if so_far.ends_with("\n\n") || so_far.ends_with("\r\n\r\n") {
            pieces.push(&body[start..end]);
            start = end;
        }
    }
    if start < body.len() {
        pieces.push(&body[start..]);
    }
    assert!(pieces.len() > 1, "a stream of several events");
    Reply::sse(&pieces, Duration::from_millis(2))
}

/// The fields of a `gemini` entry over the gemini plugin, the Gemini API under `/v1beta` of
/// the fake.
fn gemini_entry() -> Value {
    json!({"name": "gemini", "library": plugin("gemini_provider"), "base_url": "/v1beta"})
}

/// A fake upstream with `replies` queued, and a host in front of it, its key put in
/// `key_env` first.
async fn gemini(key_env: &str, replies: Vec<Reply>) -> (Scratch, FakeUpstream, Server) {
    scripted_host((key_env, "AIzaSy-test-key"), gemini_entry(), replies).await
}

/// `now` as an OpenAI client declares it (the tool of Google's function-call captures).
fn now_tool() -> Value {
    json!({"type": "function", "function": {
        "name": "now",
        "description": "Get the current date and time.",
        "parameters": {"type": "object", "properties": {}}
    }})
}

#[tokio::test]
async fn a_chat_goes_to_generate_content_with_the_key_header_system_instruction_and_roles() {
    let (_scratch, fake, server) =
        gemini("E2E_GEMINI_KEY_PLAIN", vec![Reply::json(BASIC_REPLY)]).await;
    let response = send_chat(
        &server,
        &json!({
            "model": "gemini/gemini-2.0-flash",
            "max_tokens": 256,
            "messages": [
                {"role": "system", "content": "Answer in one sentence."},
                {"role": "user", "content": "Hi"},
                {"role": "assistant", "content": "Hello! What would you like to know?"},
                {"role": "user", "content": "Where is Google's headquarters?"}
            ]
        }),
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-provider"], "gemini");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "refusal": null,
               "content": "Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n"})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // promptTokenCount 7 + candidatesTokenCount 22 = totalTokenCount 29.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 7, "completion_tokens": 22, "total_tokens": 29,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    let sent = only_request(&fake);
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/v1beta/models/gemini-2.0-flash:generateContent")
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("AIzaSy-test-key"));
    assert_eq!(sent.header("authorization"), None);
    assert!(!sent.target.contains("key="), "the key is never in the URL");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "Answer in one sentence."}]})
    );
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Hi"}]},
            {"role": "model", "parts": [{"text": "Hello! What would you like to know?"}]},
            {"role": "user", "parts": [{"text": "Where is Google's headquarters?"}]}
        ])
    );
    assert_eq!(body["generationConfig"]["maxOutputTokens"], 256);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_chat_uses_stream_generate_content_sse_and_relays_chunks_usage_and_done() {
    let (_scratch, fake, server) =
        gemini("E2E_GEMINI_KEY_STREAM", vec![sse(STREAM_BASIC_REPLY)]).await;
    let streamed = streamed_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "stream": true,
                    "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "What is the capital of Wyoming?"}]}),
    )
    .await;
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert_eq!(streamed.text(), "The capital of Wyoming is **Cheyenne**.\n");
    assert_eq!(streamed.finish_reasons(), ["stop"]);
    // The last chunk's usageMetadata: 7 prompt + 10 candidates = 17.
    assert_eq!(
        streamed.usage(),
        Some(
            &json!({"prompt_tokens": 7, "completion_tokens": 10, "total_tokens": 17,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 0}})
        )
    );

    let sent = only_request(&fake);
    assert_eq!(
        sent.target,
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse"
    );
    assert_eq!(sent.header("x-goog-api-key"), Some("AIzaSy-test-key"));
    let body = sent.json();
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "What is the capital of Wyoming?"}]}])
    );
    assert!(
        body.get("stream").is_none() && body.get("stream_options").is_none(),
        "{body}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_function_call_comes_back_as_a_tool_call_with_its_thoughts_and_signature() {
    let (_scratch, fake, server) = gemini(
        "E2E_GEMINI_KEY_TOOL",
        vec![Reply::json(THINKING_FUNCTION_CALL)],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.5-pro", "tools": [now_tool()],
                "messages": [{"role": "user", "content": "How many days until New Year's Eve?"}]}),
    )
    .await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "call_0", "type": "function", "function": {"name": "now", "arguments": "{}"}}])
    );
    assert_eq!(
        message["reasoning_content"],
        thoughts_of(THINKING_FUNCTION_CALL)
    );
    assert_eq!(
        message["reasoning_details"],
        json!([{"type": "reasoning.encrypted", "data": signature_of(THINKING_FUNCTION_CALL),
                "format": "google-gemini-v1"}])
    );
    assert_eq!(
        body["choices"][0]["finish_reason"], "tool_calls",
        "Gemini says STOP; a turn that called tools is tool_calls"
    );
    // prompt 38; completion = 8 candidates + 501 thoughts = 509; 38 + 509 = 547, the
    // upstream's totalTokenCount.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 38, "completion_tokens": 509, "total_tokens": 547,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 501}})
    );

    let sent = only_request(&fake).json();
    assert_eq!(
        sent["tools"],
        json!([{"functionDeclarations": [{"name": "now", "description": "Get the current date and time."}]}])
    );
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_function_call_arrives_as_one_index_zero_tool_call_after_the_thoughts() {
    let (_scratch, _fake, server) = gemini(
        "E2E_GEMINI_KEY_TOOL_STREAM",
        vec![sse(STREAM_THINKING_FUNCTION_CALL)],
    )
    .await;
    let request = json!({"model": "gemini/gemini-2.5-flash", "stream": true,
                         "stream_options": {"include_usage": true}, "tools": [now_tool()],
                         "messages": [{"role": "user", "content": "How many days until New Year's Eve?"}]});
    let streamed = streamed_answer(&server, &request).await;
    let reasoning = streamed.reasoning();
    assert!(
        reasoning.starts_with("**Calculating the Days**")
            && reasoning.contains("**Determining the Approach**"),
        "both thought summaries, in order: {reasoning}"
    );
    assert_eq!(streamed.text(), "");
    assert_eq!(
        streamed.tool_calls(),
        vec![(0, "call_0".to_owned(), "now".to_owned(), "{}".to_owned())]
    );
    let details = streamed.reasoning_details();
    assert_eq!(details.len(), 1, "{details:?}");
    assert_eq!(details[0]["type"], "reasoning.encrypted");
    assert_eq!(details[0]["format"], "google-gemini-v1");
    assert!(details[0]["data"]
        .as_str()
        .unwrap()
        .starts_with("CiIBVKhc7vB+vaaq6rA/"));
    assert_eq!(streamed.finish_reasons(), ["tool_calls"]);
    // The last chunk: 38 prompt; 6 candidates + 168 thoughts = 174; 212 in all.
    assert_eq!(
        streamed.usage(),
        Some(
            &json!({"prompt_tokens": 38, "completion_tokens": 174, "total_tokens": 212,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 168}})
        )
    );
    server.stop().await;
}

#[tokio::test]
async fn parallel_function_calls_become_tool_calls_zero_one_and_two() {
    let (_scratch, _fake, server) =
        gemini("E2E_GEMINI_KEY_PARALLEL", vec![Reply::json(PARALLEL_CALLS)]).await;
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}}})
    };
    let body = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash",
                "tools": [tool("sum"), tool("multiply"), tool("subtract")],
                "messages": [{"role": "user", "content": "2+1, 4*3 and 6-5?"}]}),
    )
    .await;
    let calls: Vec<(String, String, Value)> = body["choices"][0]["message"]["tool_calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_owned(),
                c["function"]["name"].as_str().unwrap().to_owned(),
                serde_json::from_str(c["function"]["arguments"].as_str().unwrap())
                    .expect("the arguments are JSON"),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                "call_0".to_owned(),
                "sum".to_owned(),
                json!({"x": 2, "y": 1})
            ),
            (
                "call_1".to_owned(),
                "multiply".to_owned(),
                json!({"x": 4, "y": 3})
            ),
            (
                "call_2".to_owned(),
                "subtract".to_owned(),
                json!({"x": 6, "y": 5})
            ),
        ]
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    server.stop().await;
}

/// Google's captures hold no streamed parallel calls, so this stream is written by hand:
/// the first two `functionCall` parts of [`PARALLEL_CALLS`] in one `data:` event, in the
/// chunk layout of the streamed captures (`candidates`, then `usageMetadata` and
/// `modelVersion`; Gemini streams each call whole).
const STREAM_PARALLEL_CALLS: &str = "data: {\"candidates\": [{\"content\": {\"parts\": [{\"functionCall\": {\"name\": \"sum\",\"args\": {\"y\": 1,\"x\": 2}}},{\"functionCall\": {\"name\": \"multiply\",\"args\": {\"y\": 3,\"x\": 4}}}],\"role\": \"model\"},\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 41,\"totalTokenCount\": 41},\"modelVersion\": \"gemini-2.0-flash\"}\n\ndata: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"\"}],\"role\": \"model\"},\"finishReason\": \"STOP\",\"index\": 0}],\"usageMetadata\": {\"promptTokenCount\": 41,\"candidatesTokenCount\": 10,\"totalTokenCount\": 51},\"modelVersion\": \"gemini-2.0-flash\"}\n\n";

#[tokio::test]
async fn parallel_streamed_function_calls_keep_their_indexes_zero_and_one() {
    let (_scratch, _fake, server) = gemini(
        "E2E_GEMINI_KEY_PARALLEL_STREAM",
        vec![sse(STREAM_PARALLEL_CALLS)],
    )
    .await;
    let tool = |name: &str| {
        json!({"type": "function", "function": {"name": name, "parameters": {
            "type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}}})
    };
    let streamed = streamed_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "stream": true,
                    "tools": [tool("sum"), tool("multiply")],
                    "messages": [{"role": "user", "content": "2+1 and 4*3?"}]}),
    )
    .await;
    let calls: Vec<(u64, String, String, Value)> = streamed
        .tool_calls()
        .into_iter()
        .map(|(index, id, name, arguments)| {
            (
                index,
                id,
                name,
                serde_json::from_str(&arguments).expect("JSON arguments"),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            (
                0,
                "call_0".to_owned(),
                "sum".to_owned(),
                json!({"x": 2, "y": 1})
            ),
            (
                1,
                "call_1".to_owned(),
                "multiply".to_owned(),
                json!({"x": 4, "y": 3})
            ),
        ]
    );
    assert_eq!(streamed.finish_reasons(), ["tool_calls"]);
    server.stop().await;
}

#[tokio::test]
async fn the_second_turn_sends_the_function_call_with_its_signature_and_a_named_function_response()
{
    let (_scratch, fake, server) = gemini(
        "E2E_GEMINI_KEY_LOOP",
        vec![
            Reply::json(THINKING_FUNCTION_CALL),
            Reply::json(BASIC_REPLY),
        ],
    )
    .await;
    let question = json!({"role": "user", "content": "How many days until New Year's Eve?"});
    let first = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.5-pro", "tools": [now_tool()], "messages": [question]}),
    )
    .await;
    // The client echoes the assistant message whole; the tool message names only the
    // call id, as OpenAI's format has it.
    let assistant = &first["choices"][0]["message"];
    let result = json!({"role": "tool", "tool_call_id": "call_0", "content": "{\"now\": \"2025-07-28T14:03:00Z\"}"});
    whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.5-pro", "tools": [now_tool()],
                "messages": [question, assistant, result]}),
    )
    .await;

    let received = fake.received();
    assert_eq!(received.len(), 2);
    assert_eq!(
        received[1].json()["contents"],
        json!([
            {"role": "user", "parts": [{"text": "How many days until New Year's Eve?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "now", "args": {}},
                 "thoughtSignature": signature_of(THINKING_FUNCTION_CALL)}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "now", "response": {"now": "2025-07-28T14:03:00Z"}}}
            ]}
        ]),
        "the function's name is recovered from the call id, and the signature goes back on the call"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_safety_stop_is_finish_reason_content_filter() {
    let (_scratch, _fake, server) = gemini(
        "E2E_GEMINI_KEY_SAFETY",
        vec![Reply::json(FINISH_REASON_SAFETY)],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Safety error incoming in 5, 4, 3, 2..."
    );
    // 7 + 20 = 27.
    assert_eq!(body["usage"]["total_tokens"], 27);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_prompt_blocked_for_safety_ends_with_finish_reason_content_filter() {
    let (_scratch, _fake, server) =
        gemini("E2E_GEMINI_KEY_BLOCKED", vec![sse(STREAM_PROMPT_BLOCKED)]).await;
    let streamed = streamed_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "stream": true,
                    "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(streamed.text(), "text1text2text3");
    assert_eq!(streamed.finish_reasons(), ["content_filter"]);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_recitation_stop_is_finish_reason_content_filter_with_its_usage() {
    let (_scratch, _fake, server) =
        gemini("E2E_GEMINI_KEY_RECITATION", vec![sse(STREAM_RECITATION)]).await;
    let streamed = streamed_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "stream": true,
                    "stream_options": {"include_usage": true},
                    "messages": [{"role": "user", "content": "Hello"}]}),
    )
    .await;
    assert_eq!(streamed.text(), "text1text2text3text4text5text6text7text8");
    assert_eq!(streamed.finish_reasons(), ["content_filter"]);
    // 9 prompt + 261 candidates = 270.
    let usage = streamed.usage().expect("a usage chunk");
    assert_eq!(
        (
            &usage["prompt_tokens"],
            &usage["completion_tokens"],
            &usage["total_tokens"]
        ),
        (&json!(9), &json!(261), &json!(270))
    );
    server.stop().await;
}

#[tokio::test]
async fn a_max_tokens_stop_is_finish_reason_length() {
    // The basic reply with the FinishReason Google documents for "the maximum number of
    // tokens as specified in the request was reached" (ai.google.dev/api/generate-content
    // #FinishReason).
    let truncated = BASIC_REPLY.replace(
        "\"finishReason\": \"STOP\"",
        "\"finishReason\": \"MAX_TOKENS\"",
    );
    assert_ne!(truncated, BASIC_REPLY);
    let (_scratch, _fake, server) =
        gemini("E2E_GEMINI_KEY_LENGTH", vec![Reply::json(&truncated)]).await;
    let body = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.0-flash", "max_tokens": 22,
                "messages": [{"role": "user", "content": "Where is Google's headquarters?"}]}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    server.stop().await;
}

#[tokio::test]
async fn implicitly_cached_tokens_and_thoughts_are_reported_in_usage() {
    let (_scratch, _fake, server) =
        gemini("E2E_GEMINI_KEY_CACHED", vec![Reply::json(IMPLICIT_CACHING)]).await;
    let body = whole_answer(
        &server,
        &json!({"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "Where is Red Riding Hood?"}]}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Red Riding Hood is looking for **directions** in the forest."
    );
    // prompt 12013 (11243 of them cached); completion = 15 candidates + 73 thoughts = 88;
    // 12013 + 88 = 12101, the upstream's totalTokenCount.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 12013, "completion_tokens": 88, "total_tokens": 12101,
               "prompt_tokens_details": {"cached_tokens": 11243},
               "completion_tokens_details": {"reasoning_tokens": 73}})
    );
    server.stop().await;
}

/// What the client gets when every attempt is answered with `status` and `body`; `top`
/// adds config.
async fn error_for(key_env: &str, status: u16, body: &str, top: Value) -> (u16, Value) {
    // Google sends its error bodies as `application/json; charset=UTF-8`.
    let reply = Reply::Full {
        status,
        headers: vec![(
            "content-type".to_owned(),
            "application/json; charset=UTF-8".to_owned(),
        )],
        body: body.as_bytes().to_vec(),
    };
    let request = json!({"model": "gemini/gemini-2.5-flash", "messages": [{"role": "user", "content": "Hello"}]});
    client::error_for(
        (key_env, "AIzaSy-test-key"),
        gemini_entry(),
        top,
        reply,
        &request,
    )
    .await
}

#[tokio::test]
async fn resource_exhausted_is_a_429_rate_limit_exceeded() {
    // The body asks for a 26 s wait (RetryInfo); retries are off so the test does not
    // sit through the host's backoff.
    let (status, body) = error_for(
        "E2E_GEMINI_KEY_E429",
        429,
        ERROR_429,
        json!({"retry": {"max_retries": 0}}),
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("rate_limit_error", "rate_limit_exceeded")
    );
}

#[tokio::test]
async fn invalid_argument_is_a_400_invalid_request() {
    let (status, body) = error_for(
        "E2E_GEMINI_KEY_E400",
        400,
        ERROR_INVALID_ARGUMENT,
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "invalid_request")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Number of urls to lookup exceeds the limit"),
        "{body}"
    );
}

#[tokio::test]
async fn an_input_over_the_token_limit_is_a_400_context_length_exceeded() {
    let (status, body) = error_for(
        "E2E_GEMINI_KEY_CONTEXT",
        400,
        ERROR_INPUT_TOKEN_COUNT,
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "context_length_exceeded")
    );
}

#[tokio::test]
async fn not_found_is_a_404_model_not_found() {
    let (status, body) =
        error_for("E2E_GEMINI_KEY_E404", 404, ERROR_UNKNOWN_MODEL, json!({})).await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "model_not_found")
    );
}

#[tokio::test]
async fn an_invalid_api_key_is_a_502_upstream_authentication_failure_not_a_400() {
    let (status, body) = error_for(
        "E2E_GEMINI_KEY_BAD_KEY",
        400,
        ERROR_API_KEY_INVALID,
        json!({}),
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_authentication_failed")
    );
}

#[tokio::test]
async fn a_disabled_api_is_a_502_upstream_authentication_failure() {
    let (status, body) =
        error_for("E2E_GEMINI_KEY_E403", 403, ERROR_API_NOT_ENABLED, json!({})).await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_authentication_failed")
    );
}
