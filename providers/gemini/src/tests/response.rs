//! Parsing real `generateContent` answers.

use provider_sdk::{
    serde_json, ErrorKind, FinishReason, HttpResponse, Provider, ReasoningDetail, ToolCall, Usage,
};

use super::{fixtures, gemini, parse};
use crate::response::finish_reason;

#[test]
fn a_plain_answer_gives_its_text_model_finish_and_usage() {
    let answer = parse(fixtures::BASIC_REPLY);
    assert_eq!(
        answer.message.content.as_deref(),
        Some("Google's headquarters, also known as the Googleplex, is located in **Mountain View, California**.\n")
    );
    assert_eq!(answer.model, "gemini-2.0-flash");
    assert_eq!(answer.id, None, "this answer carries no responseId");
    assert_eq!(answer.finish_reason, FinishReason::Stop);
    assert_eq!(answer.message.reasoning, None);
    assert!(answer.message.tool_calls.is_empty());
    assert_eq!(
        answer.usage,
        Some(Usage {
            prompt_tokens: 7,
            completion_tokens: 22,
            ..Usage::default()
        })
    );
}

#[test]
fn thought_parts_are_reasoning_and_thought_tokens_count_as_completion() {
    let answer = parse(fixtures::THINKING_REPLY);
    assert_eq!(answer.message.content.as_deref(), Some("Mountain View"));
    let reasoning = answer.message.reasoning.as_deref().unwrap();
    assert!(
        reasoning.starts_with("**Thinking About Google's Headquarters**"),
        "{reasoning}"
    );
    assert!(!answer.message.content.unwrap().contains("Thinking"));
    assert_eq!(answer.id.as_deref(), Some("2pmHaJqQEoqC-8YP6eStyAY"));
    assert_eq!(answer.model, "gemini-2.5-flash");
    // candidatesTokenCount 2 + thoughtsTokenCount 24; totalTokenCount 40 = 14 + 2 + 24.
    let usage = answer.usage.unwrap();
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 14,
            completion_tokens: 26,
            reasoning_tokens: 24,
            ..Usage::default()
        }
    );
    assert_eq!(usage.total_tokens(), 40, "matches Gemini's totalTokenCount");
}

#[test]
fn a_function_call_becomes_a_tool_call_with_its_thought_signature() {
    let answer = parse(fixtures::THINKING_FUNCTION_CALL);
    assert_eq!(
        answer.message.tool_calls,
        vec![ToolCall::function("call_0", "now", "{}")]
    );
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.message.content, None);
    assert!(answer
        .message
        .reasoning
        .as_deref()
        .unwrap()
        .starts_with("**Thinking Through the New Year's Eve Calculation**"));
    let [ReasoningDetail {
        kind, data, format, ..
    }] = answer.message.reasoning_details.as_slice()
    else {
        panic!(
            "one signature expected: {:?}",
            answer.message.reasoning_details
        )
    };
    assert_eq!(kind, "reasoning.encrypted");
    assert_eq!(format.as_deref(), Some("google-gemini-v1"));
    assert!(data
        .as_deref()
        .unwrap()
        .starts_with("CtQOAVSoXO74PmYr9AFurEIJ"));
    assert!(data.as_deref().unwrap().ends_with("Zdw=="));
    let usage = answer.usage.unwrap();
    assert_eq!(
        (usage.completion_tokens, usage.reasoning_tokens),
        (509, 501)
    );
    assert_eq!(
        usage.total_tokens(),
        547,
        "matches Gemini's totalTokenCount"
    );
}

#[test]
fn parallel_function_calls_get_ids_in_order_and_json_arguments() {
    let answer = parse(fixtures::PARALLEL_CALLS);
    let calls: Vec<(&str, &str, serde_json::Value)> = answer
        .message
        .tool_calls
        .iter()
        .map(|c| {
            (
                c.id.as_str(),
                c.function.name.as_str(),
                serde_json::from_str(&c.function.arguments).unwrap(),
            )
        })
        .collect();
    assert_eq!(
        calls,
        vec![
            ("call_0", "sum", serde_json::json!({"x": 2, "y": 1})),
            ("call_1", "multiply", serde_json::json!({"x": 4, "y": 3})),
            ("call_2", "subtract", serde_json::json!({"x": 6, "y": 5})),
        ]
    );
    assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
    assert_eq!(answer.usage, None, "this capture has no usageMetadata");
}

#[test]
fn an_answer_stopped_by_safety_keeps_its_text_and_finishes_as_content_filter() {
    let answer = parse(fixtures::FINISH_REASON_SAFETY);
    assert_eq!(answer.finish_reason, FinishReason::ContentFilter);
    assert_eq!(
        answer.message.content.as_deref(),
        Some("Safety error incoming in 5, 4, 3, 2...")
    );
    assert_eq!(answer.usage.map(|u| u.completion_tokens), Some(20));
}

#[test]
fn finish_reasons_map_to_canonical_ones() {
    for (gemini, canonical) in [
        ("STOP", FinishReason::Stop),
        ("MAX_TOKENS", FinishReason::Length),
        ("SAFETY", FinishReason::ContentFilter),
        ("RECITATION", FinishReason::ContentFilter),
        ("BLOCKLIST", FinishReason::ContentFilter),
        ("PROHIBITED_CONTENT", FinishReason::ContentFilter),
        ("SPII", FinishReason::ContentFilter),
        ("IMAGE_SAFETY", FinishReason::ContentFilter),
        ("LANGUAGE", FinishReason::Other),
        ("MALFORMED_FUNCTION_CALL", FinishReason::Other),
        ("OTHER", FinishReason::Other),
        ("SOMETHING_NEW", FinishReason::Other),
    ] {
        assert_eq!(finish_reason(gemini), canonical, "{gemini}");
    }
}

#[test]
fn a_filtered_answer_without_text_says_why_in_the_refusal() {
    let body = br#"{"candidates": [{"finishReason": "RECITATION", "index": 0}], "modelVersion": "gemini-2.5-flash"}"#;
    let answer = parse(body);
    assert_eq!(answer.finish_reason, FinishReason::ContentFilter);
    assert_eq!(answer.message.content, None);
    assert!(answer
        .message
        .refusal
        .as_deref()
        .is_some_and(|r| r.contains("RECITATION")));
}

/// Design choice: a blocked prompt is an answer (content filter, with a refusal), as in
/// the stream, not an error.
#[test]
fn a_blocked_prompt_is_a_content_filtered_answer_with_a_refusal() {
    let answer = parse(fixtures::ONLY_PROMPT_FEEDBACK);
    assert_eq!(answer.finish_reason, FinishReason::ContentFilter);
    assert_eq!(answer.message.content, None);
    assert!(answer.message.tool_calls.is_empty());
    assert_eq!(
        answer.message.refusal.as_deref(),
        Some("Gemini blocked the prompt (BLOCK_REASON_UNSPECIFIED): Message")
    );
    assert_eq!(answer.model, "gemini-2.0-flash");

    // The blocking chunk of Google's captured blocked stream, as a whole answer.
    let blocked = br#"{"promptFeedback": {"blockReason": "SAFETY","safetyRatings": [{"category": "HARM_CATEGORY_HATE_SPEECH","probability": "HIGH"}]}}"#;
    let answer = parse(blocked);
    assert_eq!(answer.finish_reason, FinishReason::ContentFilter);
    assert_eq!(
        answer.message.refusal.as_deref(),
        Some("Gemini blocked the prompt (SAFETY)")
    );
}

#[test]
fn cached_prompt_tokens_are_reported_within_the_prompt() {
    let usage = parse(fixtures::IMPLICIT_CACHING).usage.unwrap();
    assert_eq!(
        usage,
        Usage {
            prompt_tokens: 12013,
            completion_tokens: 15 + 73,
            cached_prompt_tokens: 11243,
            cache_write_tokens: 0,
            reasoning_tokens: 73,
        }
    );
    assert_eq!(
        usage.total_tokens(),
        12101,
        "matches Gemini's totalTokenCount"
    );
}

#[test]
fn a_body_that_is_not_a_gemini_answer_is_a_provider_error() {
    for body in [
        &b"<html>502 Bad Gateway</html>"[..],
        b"{\"candidates\": []}",
    ] {
        let error = gemini()
            .parse_response(&HttpResponse::new(200, &[], body))
            .unwrap_err();
        assert_eq!(error.kind, ErrorKind::ProviderService, "{error}");
    }
}
