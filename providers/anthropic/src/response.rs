//! Messages API answers and errors, translated into canonical answers and error kinds.

use provider_kit::errors::{ErrorRules, Rule, When};
use provider_sdk::{
    AssistantMessage, ChatResponse, ErrorKind, HttpResponse, ProviderError, ToolCall,
};
use serde_json::Value;

use crate::reasoning;

pub use provider_kit::anthropic::{finish_reason, WireUsage};

/// Translates a successful non-streamed `message` body.
pub fn parse_message(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let message: Value = serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            ErrorKind::ProviderService,
            format!("Anthropic sent a body that is not JSON: {e}"),
        )
    })?;
    if message["type"] == "error" {
        return Err(error_event(&message));
    }
    let Some(blocks) = message["content"].as_array() else {
        return Err(ProviderError::new(
            ErrorKind::ProviderService,
            "Anthropic sent a message without a `content` array",
        ));
    };
    let mut text = String::new();
    let mut thinking = String::new();
    let mut answer = AssistantMessage::default();
    for block in blocks {
        match block["type"].as_str() {
            Some("text") => text.push_str(block["text"].as_str().unwrap_or_default()),
            Some("tool_use") => answer.tool_calls.push(ToolCall::function(
                block["id"].as_str().unwrap_or_default(),
                block["name"].as_str().unwrap_or_default(),
                block
                    .get("input")
                    .filter(|input| input.is_object())
                    .map_or_else(|| "{}".to_owned(), Value::to_string),
            )),
            Some("thinking") => thinking.push_str(block["thinking"].as_str().unwrap_or_default()),
            // Server tools' blocks (web search, code execution, ...) have no canonical place.
            _ => {}
        }
        answer
            .reasoning_details
            .extend(reasoning::detail_from_block(block));
    }
    answer.content = (!text.is_empty() || answer.tool_calls.is_empty()).then_some(text);
    answer.reasoning = (!thinking.is_empty()).then_some(thinking);
    Ok(ChatResponse {
        id: message["id"].as_str().map(str::to_owned),
        model: message["model"].as_str().unwrap_or_default().to_owned(),
        finish_reason: finish_reason(
            message["stop_reason"].as_str(),
            !answer.tool_calls.is_empty(),
        ),
        usage: message
            .get("usage")
            .map(|u| WireUsage::from_value(u).to_usage()),
        message: answer,
    })
}

/// Classifies a non-2xx response by Anthropic's error `type`, falling back on the status
/// (for bodies that are not Anthropic's, e.g. a proxy's HTML page). The upstream's `type`
/// is kept as `provider_code`; `retry-after` is honoured.
pub fn classify_error(response: &HttpResponse<'_>) -> ProviderError {
    RULES.classify(response)
}

/// The error carried by a streamed `error` event (or an error body), classified by its
/// `type`; an unknown type is the upstream's failure.
pub fn error_event(event: &Value) -> ProviderError {
    let kind = RULES
        .kind_of(None, event)
        .unwrap_or(ErrorKind::ProviderService);
    let error = &event["error"];
    let message = error["message"]
        .as_str()
        .unwrap_or("Anthropic reported an error without a message");
    let mut out = ProviderError::new(kind, message);
    if let Some(code) = error["type"].as_str() {
        out = out.with_provider_code(code);
    }
    out
}

/// What the error types of <https://docs.claude.com/en/api/errors> mean; an
/// `invalid_request_error` that says the prompt does not fit (`prompt is too long:
/// 200251 tokens > 200000 maximum`, `input length and max_tokens exceed context limit:
/// ...`) is a context-window error.
const RULES: ErrorRules = ErrorRules {
    code_fields: &["type"],
    rules: &[
        Rule::new(
            &[When::Code(&["invalid_request_error"]), When::ContextWindow],
            ErrorKind::ContextWindowExceeded,
        ),
        Rule::new(
            &[When::Code(&["invalid_request_error", "request_too_large"])],
            ErrorKind::InvalidRequest,
        ),
        Rule::new(
            &[When::Code(&["authentication_error", "permission_error"])],
            ErrorKind::Authentication,
        ),
        Rule::new(&[When::Code(&["billing_error"])], ErrorKind::QuotaExceeded),
        Rule::new(
            &[When::Code(&["not_found_error"])],
            ErrorKind::ModelNotFound,
        ),
        Rule::new(&[When::Code(&["rate_limit_error"])], ErrorKind::RateLimited),
        Rule::new(&[When::Code(&["timeout_error"])], ErrorKind::Timeout),
        Rule::new(
            &[When::Code(&["api_error", "overloaded_error"])],
            ErrorKind::ProviderService,
        ),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use provider_sdk::Header;
    use provider_sdk::{FinishReason, Usage};
    use serde_json::json;

    fn with(body: &str, field: &str, value: Value) -> Vec<u8> {
        let mut message: Value = serde_json::from_str(body).unwrap();
        message[field] = value;
        serde_json::to_vec(&message).unwrap()
    }

    #[test]
    fn the_documented_message_becomes_text_a_stop_and_usage() {
        let response = parse_message(MESSAGE_RESPONSE.as_bytes()).unwrap();
        assert_eq!(response.id.as_deref(), Some("msg_013Zva2CMHLNnXjNJJKqJ2EF"));
        assert_eq!(response.model, "claude-sonnet-4-5-20250929");
        assert_eq!(
            response.message.content.as_deref(),
            Some("Hi! My name is Claude.")
        );
        assert_eq!(response.finish_reason, FinishReason::Stop);
        assert_eq!(
            response.usage,
            Some(Usage {
                prompt_tokens: 2095,
                completion_tokens: 503,
                ..Usage::default()
            })
        );
        assert!(response.message.tool_calls.is_empty());
        assert!(response.message.reasoning.is_none());
    }

    #[test]
    fn text_blocks_are_joined_and_tool_use_becomes_a_tool_call() {
        let response = parse_message(TOOL_USE_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            response.message.content.as_deref(),
            Some("I'll check the current weather in San Francisco for you.")
        );
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let call = &response.message.tool_calls[0];
        assert_eq!(
            (call.id.as_str(), call.function.name.as_str()),
            ("toolu_01A09q90qw90lq917835lq9", "get_weather")
        );
        let arguments: Value = serde_json::from_str(&call.function.arguments).unwrap();
        assert_eq!(
            arguments,
            json!({"location": "San Francisco, CA", "unit": "celsius"})
        );
        assert_eq!(response.usage, None, "the guide's example has no usage");

        let split = with(
            MESSAGE_RESPONSE,
            "content",
            json!([{"type": "text", "text": "Hello"}, {"type": "text", "text": ", world"}]),
        );
        assert_eq!(
            parse_message(&split).unwrap().message.content.as_deref(),
            Some("Hello, world")
        );
    }

    #[test]
    fn thinking_becomes_reasoning_text_and_exact_reasoning_details() {
        let response = parse_message(REDACTED_THINKING_RESPONSE.as_bytes()).unwrap();
        assert_eq!(
            response.message.reasoning.as_deref(),
            Some("Let me analyze this step by step...")
        );
        assert_eq!(
            response.message.content.as_deref(),
            Some("Based on my analysis...")
        );
        let details = &response.message.reasoning_details;
        assert_eq!(details.len(), 2);
        assert_eq!(details[0].signature.as_deref(), Some("WaUjzkypQ2mUEVM36O2TxuC06KN8xyfbJwyem2dw3URve/op91XWHOEBLLqIOMfFG/UvLEczmEsUjavL...."));
        assert_eq!(details[0].format.as_deref(), Some(reasoning::FORMAT));
        assert_eq!(details[1].kind, "reasoning.encrypted");
        assert!(details[1]
            .data
            .as_deref()
            .unwrap()
            .starts_with("EmwKAhgBEgy3va3pzix"));
    }

    #[test]
    fn every_stop_reason_maps_to_a_finish_reason() {
        for (stop_reason, expected) in [
            ("end_turn", FinishReason::Stop),
            ("stop_sequence", FinishReason::Stop),
            ("max_tokens", FinishReason::Length),
            ("model_context_window_exceeded", FinishReason::Length),
            ("tool_use", FinishReason::ToolCalls),
            ("refusal", FinishReason::ContentFilter),
            ("pause_turn", FinishReason::Other),
            ("something_new", FinishReason::Other),
        ] {
            let body = with(MESSAGE_RESPONSE, "stop_reason", json!(stop_reason));
            assert_eq!(
                parse_message(&body).unwrap().finish_reason,
                expected,
                "{stop_reason}"
            );
        }
    }

    #[test]
    fn cache_reads_and_writes_count_in_prompt_tokens_and_are_reported_apart() {
        let write = with(
            MESSAGE_RESPONSE,
            "usage",
            serde_json::from_str(CACHE_WRITE_USAGE).unwrap(),
        );
        assert_eq!(
            parse_message(&write).unwrap().usage,
            Some(Usage {
                prompt_tokens: 17 + 1370,
                completion_tokens: 700,
                cached_prompt_tokens: 0,
                cache_write_tokens: 1370,
                reasoning_tokens: 0,
            })
        );
        let read = with(
            MESSAGE_RESPONSE,
            "usage",
            serde_json::from_str(CACHE_READ_USAGE).unwrap(),
        );
        assert_eq!(
            parse_message(&read).unwrap().usage,
            Some(Usage {
                prompt_tokens: 303 + 1370,
                completion_tokens: 874,
                cached_prompt_tokens: 1370,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
            })
        );
    }

    #[test]
    fn bodies_that_are_not_a_message_are_errors() {
        let error = parse_message(OVERLOADED_BODY.as_bytes()).unwrap_err();
        assert_eq!(
            (error.kind, error.provider_code.as_deref()),
            (ErrorKind::ProviderService, Some("overloaded_error"))
        );
        assert_eq!(
            parse_message(b"<html>").unwrap_err().kind,
            ErrorKind::ProviderService
        );
        assert_eq!(
            parse_message(b"{\"type\":\"message\"}").unwrap_err().kind,
            ErrorKind::ProviderService
        );
    }

    fn classify(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderError {
        let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| Header::new(n, v)).collect();
        classify_error(&HttpResponse::new(status, &headers, body.as_bytes()))
    }

    /// A body in the documented error shape, for the types the docs list without an example.
    fn shaped(kind: &str, message: &str) -> String {
        json!({"type": "error", "error": {"type": kind, "message": message}}).to_string()
    }

    #[test]
    fn each_documented_error_type_maps_to_its_kind_and_keeps_the_code() {
        let cases = [
            (400, shaped("invalid_request_error", "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row"), ErrorKind::InvalidRequest, "invalid_request_error"),
            (400, PROMPT_TOO_LONG_BODY.to_owned(), ErrorKind::ContextWindowExceeded, "invalid_request_error"),
            (401, shaped("authentication_error", "invalid x-api-key"), ErrorKind::Authentication, "authentication_error"),
            (402, shaped("billing_error", "Your credit balance is too low"), ErrorKind::QuotaExceeded, "billing_error"),
            (403, shaped("permission_error", "Your API key does not have permission to use the specified resource."), ErrorKind::Authentication, "permission_error"),
            (404, NOT_FOUND_BODY.to_owned(), ErrorKind::ModelNotFound, "not_found_error"),
            (413, shaped("request_too_large", "Request exceeds the maximum allowed number of bytes."), ErrorKind::InvalidRequest, "request_too_large"),
            (429, shaped("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit"), ErrorKind::RateLimited, "rate_limit_error"),
            (500, shaped("api_error", "Internal server error"), ErrorKind::ProviderService, "api_error"),
            (504, shaped("timeout_error", "Request timed out"), ErrorKind::Timeout, "timeout_error"),
            (529, OVERLOADED_BODY.to_owned(), ErrorKind::ProviderService, "overloaded_error"),
        ];
        for (status, body, kind, code) in cases {
            let error = classify(status, &[], &body);
            assert_eq!(error.kind, kind, "{status} {code}");
            assert_eq!(error.provider_code.as_deref(), Some(code));
            assert_eq!(error.status, Some(status));
        }
        let e = classify(404, &[], NOT_FOUND_BODY);
        assert_eq!(e.message, "The requested resource could not be found.");
    }

    #[test]
    fn a_rate_limit_carries_the_retry_after_wait() {
        let e = classify(
            429,
            &[("retry-after", "13")],
            &shaped("rate_limit_error", "rate limited"),
        );
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::RateLimited, Some(13_000))
        );
    }

    #[test]
    fn a_body_that_is_not_anthropics_falls_back_on_the_status() {
        assert_eq!(
            classify(502, &[], "<html>Bad gateway</html>").kind,
            ErrorKind::ProviderService
        );
        assert_eq!(classify(401, &[], "").kind, ErrorKind::Authentication);
        let new_type = classify(418, &[], &shaped("teapot_error", "short and stout"));
        assert_eq!(new_type.kind, ErrorKind::InvalidRequest);
        assert_eq!(new_type.provider_code.as_deref(), Some("teapot_error"));
    }
}
