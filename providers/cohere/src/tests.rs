//! Cohere's published examples (fixtures/README.md) through the provider: the answers
//! and streams of the v2 chat reference decode to what they say, and the reference's
//! request is what the provider builds from the same conversation.

use super::*;
use provider_kit::fixtures::{text_stream, usage as usage_event};
use provider_sdk::{serde_json, StreamDecoder, ToolCall};

fn cohere() -> Cohere {
    Cohere::new(ProviderConfig::default()).unwrap()
}

fn parse(body: &str) -> ChatResponse {
    cohere()
        .parse_response(&HttpResponse::new(200, &[], body.as_bytes()))
        .unwrap()
}

fn decode_in(pieces: &[&[u8]]) -> Result<Vec<StreamEvent>, ProviderError> {
    let mut decoder = cohere().stream_decoder();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut events)?;
    }
    decoder.finish(&mut events)?;
    Ok(events)
}

/// Decodes `body` whole and one byte at a time; both must agree.
fn decode(body: &str) -> Result<Vec<StreamEvent>, ProviderError> {
    let whole = decode_in(&[body.as_bytes()]);
    let bytes: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
    assert_eq!(decode_in(&bytes), whole, "split input decodes the same");
    whole
}

fn body_of(request: &ChatRequest) -> Value {
    let Outbound::Http(http) = cohere().build_request(request).unwrap() else {
        panic!("cohere always goes upstream")
    };
    assert_eq!(http.url, "https://api.cohere.com/v2/chat");
    serde_json::from_slice(&http.body).unwrap()
}

fn request(wire: Value) -> ChatRequest {
    serde_json::from_value(wire).unwrap()
}

#[test]
fn the_references_default_answer_is_text_with_billed_usage() {
    let answer = parse(include_str!("../fixtures/chat-default.json"));
    assert_eq!(
        answer.id.as_deref(),
        Some("c14c80c3-18eb-4519-9460-6c92edd8cfb4")
    );
    let text = answer.message.content.unwrap();
    assert!(
        text.starts_with("LLMs stand for Large Language Models"),
        "{text}"
    );
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    let usage = answer.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 418));
}

#[test]
fn the_references_tool_answer_has_its_thinking_and_both_calls() {
    let answer = parse(include_str!("../fixtures/chat-tools.json"));
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.message.content, None);
    assert!(answer
        .message
        .reasoning
        .unwrap()
        .starts_with("I will first find the sales summary"));
    assert_eq!(
        answer.message.tool_calls,
        vec![
            ToolCall::function(
                "query_daily_sales_report_hgxxmkby3wta",
                "query_daily_sales_report",
                "{\"day\": \"2023-09-29\"}"
            ),
            ToolCall::function(
                "query_product_catalog_rpg0z5h8yyz2",
                "query_product_catalog",
                "{\"category\": \"Electronics\"}"
            ),
        ]
    );
    let usage = answer.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (127, 69));
}

#[test]
fn the_references_default_stream_is_text_then_usage_and_stop() {
    let events = decode(include_str!("../fixtures/stream-default.sse")).unwrap();
    let texts: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    let mut expected = text_stream(
        Some("29f14a5a-11de-4cae-9800-25e4747408ea"),
        None,
        &texts,
        FinishReason::Stop,
    );
    expected.insert(expected.len() - 1, usage_event(5, 26));
    assert_eq!(events, expected);
    assert!(texts
        .concat()
        .starts_with("LLMs stand for Large Language Models,"));
}

#[test]
fn the_references_tool_stream_gives_the_plan_and_two_whole_calls() {
    let events = decode(include_str!("../fixtures/stream-tools.sse")).unwrap();
    let plan: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        plan.starts_with("I will use the query_daily_sales_report tool"),
        "{plan}"
    );
    let mut calls: Vec<(u32, String, String, String)> = Vec::new();
    for event in &events {
        match event {
            StreamEvent::ToolCallStart { index, id, name } => {
                assert_eq!(*index as usize, calls.len(), "indexes count from 0");
                calls.push((*index, id.clone(), name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                calls[*index as usize].3.push_str(arguments)
            }
            _ => {}
        }
    }
    let calls: Vec<_> = calls
        .iter()
        .map(|(_, id, name, a)| (id.as_str(), name.as_str(), a.as_str()))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "query_daily_sales_report_j3f0adww9pmr",
                "query_daily_sales_report",
                "{\"day\": \"2023-09-29\"}"
            ),
            (
                "query_product_catalog_c66nf11r6s8g",
                "query_product_catalog",
                "{\"category\": \"Electronics\"}"
            ),
        ]
    );
    assert_eq!(
        events[events.len() - 2..],
        [
            usage_event(126, 84),
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            }
        ]
    );
}

#[test]
fn a_stream_cut_before_message_end_is_a_connection_error_and_a_whole_one_is_complete() {
    let body = include_str!("../fixtures/stream-default.sse");
    let cut = &body[..body.find("event: message-end").unwrap()];
    let error = decode(cut).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    assert!(error.message.contains("was cut"), "{}", error.message);
    let mut decoder = cohere().stream_decoder();
    decoder.feed(body.as_bytes(), &mut Vec::new()).unwrap();
    assert!(decoder.is_complete(), "message-end is the last event");
}

#[test]
fn the_references_tool_request_is_what_the_same_conversation_builds() {
    let reference: Value =
        serde_json::from_str(include_str!("../fixtures/request-tools.json")).unwrap();
    // The canonical request a client sends for the same conversation (OpenAI's shape,
    // which v2's tools and messages share).
    let canonical = request(json!({
        "model": reference["model"],
        "messages": reference["messages"],
        "tools": reference["tools"],
        "stream": true,
    }));
    assert_eq!(body_of(&canonical), reference);
}

#[test]
fn sampling_limits_and_formats_get_their_v2_names() {
    let body = body_of(&request(json!({
        "model": "command-a-03-2025",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3, "top_p": 0.9, "max_completion_tokens": 100, "seed": 7,
        "stop": "END", "frequency_penalty": 0.1, "presence_penalty": 0.2,
        "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
        "tool_choice": "required", "k": 40
    })));
    assert_eq!(
        body,
        json!({
            "model": "command-a-03-2025",
            "messages": [{"role": "user", "content": "hi"}],
            "temperature": 0.3, "p": 0.9, "max_tokens": 100, "seed": 7,
            "stop_sequences": ["END"], "frequency_penalty": 0.1, "presence_penalty": 0.2,
            "response_format": {"type": "json_object", "json_schema": {"type": "object"}},
            "tool_choice": "REQUIRED", "k": 40, "stream": false
        })
    );
}

#[test]
fn history_turns_keep_their_calls_and_send_reasoning_back_as_the_tool_plan() {
    let body = body_of(&request(json!({
        "model": "command-a-03-2025",
        "messages": [
            {"role": "developer", "content": "Be brief.", "name": "ops"},
            {"role": "user", "name": "ann", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "reasoning_content": "I will look it up.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"}
        ]
    })));
    assert_eq!(
        body["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
            ]},
            {"role": "assistant", "tool_plan": "I will look it up.", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
            ]},
            {"role": "tool", "tool_call_id": "c1", "content": "a cat"}
        ])
    );
}

#[test]
fn what_v2_cannot_express_is_refused_with_the_reason() {
    let named = request(json!({
        "model": "m", "messages": [{"role": "user", "content": "hi"}],
        "tools": [{"type": "function", "function": {"name": "f"}}],
        "tool_choice": {"type": "function", "function": {"name": "f"}}
    }));
    let error = cohere().build_request(&named).unwrap_err();
    assert!(
        error
            .message
            .contains("tool_choice must be auto, none or required"),
        "{}",
        error.message
    );
    let ftp = request(
        json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "ftp://example.org/cat.png"}}
        ]}]}),
    );
    assert_eq!(
        cohere().build_request(&ftp).unwrap_err().kind,
        ErrorKind::InvalidRequest
    );
    let options = ProviderConfig {
        options: json!({"region": "eu"}),
        ..ProviderConfig::default()
    };
    assert!(Cohere::new(options)
        .err()
        .unwrap()
        .message
        .contains("takes no options"));
}

#[test]
fn errors_are_classified_by_status_and_message() {
    let classify = |status, body: &str| {
        cohere().classify_error(&HttpResponse::new(status, &[], body.as_bytes()))
    };
    let limited = classify(429, include_str!("../fixtures/error-429.json"));
    assert_eq!(limited.kind, ErrorKind::RateLimited);
    assert!(limited.message.starts_with("You are past the rate limit"));
    let long = classify(
        400,
        r#"{"id":"x","message":"too many tokens: total number of tokens in the prompt cannot exceed 4081 - received 5000"}"#,
    );
    assert_eq!(long.kind, ErrorKind::ContextWindowExceeded);
    assert_eq!(
        classify(401, r#"{"message":"invalid api token"}"#).kind,
        ErrorKind::Authentication
    );
}
