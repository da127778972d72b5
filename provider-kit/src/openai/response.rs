//! `chat.completion` bodies → [`ChatResponse`], and the pieces the stream decoder
//! shares: usage, finish reasons, content parts.

use provider_sdk::{
    AssistantMessage, ChatResponse, ErrorKind, FinishReason, HttpResponse, ProviderError,
    ReasoningDetail, ToolCall, Usage,
};
use serde_json::Value;

/// A message for bodies that are not what the protocol promises.
pub fn malformed(what: &str, detail: impl std::fmt::Display) -> ProviderError {
    ProviderError::new(
        ErrorKind::ProviderService,
        format!("the upstream sent {what} that is not valid chat-completions JSON: {detail}"),
    )
}

/// Parses a successful non-streamed answer.
pub fn parse(response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
    let body: Value =
        serde_json::from_slice(response.body).map_err(|e| malformed("a response", e))?;
    if body.get("error").is_some_and(|e| !e.is_null()) && body.get("choices").is_none() {
        // Some servers answer 200 with an error body.
        return Err(super::error::from_event(&body));
    }
    let choice = body
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| malformed("a response", "it has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    let (mut content, mut reasoning) = content_and_reasoning(message.get("content"));
    if let Some(r) = reasoning_field(message) {
        reasoning = Some(reasoning.unwrap_or_default() + r);
    }
    let mut tool_calls: Vec<ToolCall> = message
        .get("tool_calls")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, call)| tool_call(i, call))
        .collect();
    // The deprecated single `function_call` some servers still send.
    if tool_calls.is_empty() {
        if let Some(call) = message.get("function_call").filter(|c| c.is_object()) {
            tool_calls.extend(tool_call(0, &serde_json::json!({"function": call})));
        }
    }
    if content.as_deref() == Some("") && !tool_calls.is_empty() {
        content = None;
    }
    let finish = choice
        .get("finish_reason")
        .and_then(Value::as_str)
        .map(finish_reason)
        .unwrap_or(FinishReason::Stop);
    Ok(ChatResponse {
        id: non_empty(body.get("id")),
        model: non_empty(body.get("model")).unwrap_or_default(),
        message: AssistantMessage {
            content,
            reasoning,
            reasoning_details: reasoning_details(message.get("reasoning_details")),
            refusal: non_empty(message.get("refusal")),
            tool_calls: tool_calls.clone(),
        },
        finish_reason: with_tool_calls(finish, !tool_calls.is_empty()),
        usage: usage(&body),
    })
}

/// A non-empty string field.
pub fn non_empty(value: Option<&Value>) -> Option<String> {
    value
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// `reasoning_content` (DeepSeek, vLLM, llama.cpp) or else `reasoning` (OpenRouter,
/// Ollama, Groq, newer vLLM); servers sending both send the same text twice.
pub fn reasoning_field(message: &Value) -> Option<&str> {
    ["reasoning_content", "reasoning"]
        .iter()
        .filter_map(|k| message.get(*k).and_then(Value::as_str))
        .find(|s| !s.is_empty())
}

/// OpenRouter's `reasoning_details` blocks (`reasoning.text` with a signature,
/// `reasoning.encrypted`, `reasoning.summary`); entries without a `type` are skipped.
pub fn reasoning_details(value: Option<&Value>) -> Vec<ReasoningDetail> {
    value
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|d| serde_json::from_value::<ReasoningDetail>(d.clone()).ok())
        .filter(|d| !d.kind.is_empty())
        .collect()
}

/// Splits `content` into answer text and reasoning text. It is usually a string; some
/// servers (Mistral's reasoning models) send typed parts, `text` and `thinking`.
pub fn content_and_reasoning(content: Option<&Value>) -> (Option<String>, Option<String>) {
    match content {
        Some(Value::String(s)) => (Some(s.clone()), None),
        Some(Value::Array(parts)) => {
            let (mut text, mut thinking) = (String::new(), String::new());
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("thinking") => thinking.push_str(&part_text(part.get("thinking"))),
                    Some("text") | None => text.push_str(&part_text(part.get("text"))),
                    _ => {}
                }
            }
            (
                (!text.is_empty()).then_some(text),
                (!thinking.is_empty()).then_some(thinking),
            )
        }
        _ => (None, None),
    }
}

fn part_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| part_text(i.get("text").or(Some(i))))
            .collect(),
        _ => String::new(),
    }
}

/// Tool-call arguments as JSON text: a string as is, an object (some servers) encoded.
pub fn arguments_text(arguments: Option<&Value>) -> String {
    match arguments {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn tool_call(position: usize, call: &Value) -> Option<ToolCall> {
    let function = call.get("function")?;
    let name = non_empty(function.get("name"))?;
    let id = non_empty(call.get("id")).unwrap_or_else(|| format!("call_{position}"));
    Some(ToolCall::function(
        id,
        name,
        arguments_text(function.get("arguments")),
    ))
}

/// Maps a wire `finish_reason`. Besides OpenAI's four: `function_call` (legacy),
/// `eos` (Together), `model_length` (Mistral); anything else is `Other`.
pub fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "stop" | "eos" | "end_turn" | "stop_sequence" => FinishReason::Stop,
        "length" | "max_tokens" | "model_length" => FinishReason::Length,
        "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
        "content_filter" => FinishReason::ContentFilter,
        _ => FinishReason::Other,
    }
}

/// Some local servers end a tool-calling turn with `stop`; clients decide on
/// `tool_calls`, so a turn that called tools and stopped normally says so.
pub fn with_tool_calls(reason: FinishReason, called_tools: bool) -> FinishReason {
    match reason {
        FinishReason::Stop if called_tools => FinishReason::ToolCalls,
        other => other,
    }
}

/// The `usage` of a body or chunk (or Groq's `x_groq.usage`), when it has one.
pub fn usage(body: &Value) -> Option<Usage> {
    let usage = body
        .get("usage")
        .filter(|u| u.is_object())
        .or_else(|| body.pointer("/x_groq/usage").filter(|u| u.is_object()))?;
    let count = |pointer: &str| {
        usage.pointer(pointer).and_then(|v| {
            v.as_u64()
                .or_else(|| v.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
        })
    };
    let (prompt, completion) = (count("/prompt_tokens"), count("/completion_tokens"));
    if prompt.is_none() && completion.is_none() {
        return None;
    }
    Some(Usage {
        prompt_tokens: prompt.unwrap_or(0),
        completion_tokens: completion.unwrap_or(0),
        // DeepSeek reports cache hits as `prompt_cache_hit_tokens`.
        cached_prompt_tokens: count("/prompt_tokens_details/cached_tokens")
            .or_else(|| count("/prompt_cache_hit_tokens"))
            .unwrap_or(0),
        // OpenRouter reports cache writes.
        cache_write_tokens: count("/prompt_tokens_details/cache_write_tokens").unwrap_or(0),
        reasoning_tokens: count("/completion_tokens_details/reasoning_tokens").unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::conformance;
    use provider_sdk::Header;

    fn parse_str(body: &str) -> Result<ChatResponse, ProviderError> {
        let headers: [Header<'_>; 0] = [];
        parse(&HttpResponse::new(200, &headers, body.as_bytes()))
    }

    #[test]
    fn the_api_reference_example_parses_with_its_usage() {
        let r = parse_str(conformance::RESPONSE).unwrap();
        assert_eq!(
            r.id.as_deref(),
            Some("chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT")
        );
        assert_eq!(r.model, "gpt-4.1-2025-04-14");
        assert_eq!(
            r.message.content.as_deref(),
            Some("Hello! How can I assist you today?")
        );
        assert_eq!(r.message.refusal, None, "null refusal is no refusal");
        assert_eq!(r.finish_reason, FinishReason::Stop);
        assert_eq!(
            r.usage,
            Some(Usage {
                prompt_tokens: 19,
                completion_tokens: 10,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn tool_calls_cached_and_reasoning_tokens_come_through() {
        // DeepSeek capture (deepseek-chat) quoted in a public Go test suite; cached
        // tokens in both OpenAI's field and DeepSeek's own.
        let r = parse_str(
            r#"{
    "id": "fd8b3b63-8112-403f-aa52-57a46f320424",
    "object": "chat.completion",
    "created": 1759074553,
    "model": "deepseek-chat",
    "choices": [
        {
            "index": 0,
            "message": {
                "role": "assistant",
                "content": "I'll check the current weather in Tokyo for you.",
                "tool_calls": [
                    {
                        "index": 0,
                        "id": "call_00_wVp0FIPEgzSN4qfP502y9zG8",
                        "type": "function",
                        "function": {
                            "name": "get_weather",
                            "arguments": "{\"location\": \"Tokyo\"}"
                        }
                    }
                ]
            },
            "logprobs": null,
            "finish_reason": "tool_calls"
        }
    ],
    "usage": {
        "prompt_tokens": 161,
        "completion_tokens": 25,
        "total_tokens": 186,
        "prompt_tokens_details": {
            "cached_tokens": 128
        },
        "prompt_cache_hit_tokens": 128,
        "prompt_cache_miss_tokens": 33
    },
    "system_fingerprint": "fp_8333852bec_prod0820_fp8_kvcache"
}"#,
        )
        .unwrap();
        assert_eq!(r.finish_reason, FinishReason::ToolCalls);
        assert_eq!(
            r.message.tool_calls,
            vec![ToolCall::function(
                "call_00_wVp0FIPEgzSN4qfP502y9zG8",
                "get_weather",
                "{\"location\": \"Tokyo\"}"
            )]
        );
        assert_eq!(
            r.message.content.as_deref(),
            Some("I'll check the current weather in Tokyo for you.")
        );
        assert_eq!(r.usage.unwrap().cached_prompt_tokens, 128);
    }

    #[test]
    fn reasoning_content_and_reasoning_both_become_the_reasoning() {
        // deepseek-reasoner capture (same suite), trimmed to the fields that matter.
        let r = parse_str(r#"{"id":"x","object":"chat.completion","model":"deepseek-reasoner","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?","reasoning_content":"Hmm, the user just said \"Hello!\"."},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"completion_tokens_details":{"reasoning_tokens":5},"prompt_cache_hit_tokens":3,"prompt_cache_miss_tokens":9}}"#).unwrap();
        assert_eq!(
            r.message.reasoning.as_deref(),
            Some("Hmm, the user just said \"Hello!\".")
        );
        let u = r.usage.unwrap();
        assert_eq!((u.reasoning_tokens, u.cached_prompt_tokens), (5, 3));
        // Ollama / OpenRouter name it `reasoning`.
        let r = parse_str(r#"{"choices":[{"message":{"role":"assistant","content":"4","reasoning":"2+2"},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(
            (r.message.content.as_deref(), r.message.reasoning.as_deref()),
            (Some("4"), Some("2+2"))
        );
    }

    #[test]
    fn openrouter_reasoning_details_are_kept_for_the_next_turn() {
        // The shape of openrouter.ai/docs/use-cases/reasoning-tokens ("reasoning_details").
        let r = parse_str(r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"message":{"role":"assistant","content":"42","reasoning":"Compute.","reasoning_details":[{"type":"reasoning.text","text":"Compute.","signature":"sig-1","format":"anthropic-claude-v1","index":0},{"type":"reasoning.encrypted","data":"opaque","format":"anthropic-claude-v1","index":1},{"text":"no type"}]},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(r.message.reasoning.as_deref(), Some("Compute."));
        assert_eq!(r.message.reasoning_details.len(), 2);
        assert_eq!(
            r.message.reasoning_details[0].signature.as_deref(),
            Some("sig-1")
        );
        assert_eq!(
            r.message.reasoning_details[1].data.as_deref(),
            Some("opaque")
        );
    }

    #[test]
    fn a_refusal_is_kept_apart_from_the_content() {
        let r = parse_str(r#"{"id":"chatcmpl-1","model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":null,"refusal":"I'm sorry, I cannot assist with that request."},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(r.message.content, None);
        assert_eq!(
            r.message.refusal.as_deref(),
            Some("I'm sorry, I cannot assist with that request.")
        );
    }

    #[test]
    fn finish_reasons_map_to_the_canonical_ones() {
        assert_eq!(finish_reason("length"), FinishReason::Length);
        assert_eq!(finish_reason("content_filter"), FinishReason::ContentFilter);
        assert_eq!(finish_reason("function_call"), FinishReason::ToolCalls);
        assert_eq!(finish_reason("eos"), FinishReason::Stop);
        assert_eq!(finish_reason("error"), FinishReason::Other);
        assert_eq!(
            with_tool_calls(FinishReason::Stop, true),
            FinishReason::ToolCalls
        );
        assert_eq!(
            with_tool_calls(FinishReason::Length, true),
            FinishReason::Length
        );
    }

    #[test]
    fn mistral_thinking_parts_become_reasoning() {
        let (text, thinking) = content_and_reasoning(Some(&serde_json::json!([
            {"type": "thinking", "thinking": [{"type": "text", "text": "Let me see."}]},
            {"type": "text", "text": "Yes."}
        ])));
        assert_eq!(
            (text.as_deref(), thinking.as_deref()),
            (Some("Yes."), Some("Let me see."))
        );
    }

    #[test]
    fn an_error_body_with_status_200_is_an_error_and_garbage_is_a_service_error() {
        let e = parse_str(r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#).unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProviderService);
        assert!(e.message.contains("The server had an error"));
        let e = parse_str("<html>Bad gateway</html>").unwrap_err();
        assert_eq!(e.kind, ErrorKind::ProviderService);
        let e = parse_str(r#"{"choices":[]}"#).unwrap_err();
        assert!(e.message.contains("no choices"), "{}", e.message);
    }

    #[test]
    fn groq_usage_is_read_from_x_groq() {
        let u = usage(&serde_json::json!({"x_groq": {"id": "req_1", "usage": {"prompt_tokens": 48, "completion_tokens": 20, "total_tokens": 68}}})).unwrap();
        assert_eq!((u.prompt_tokens, u.completion_tokens), (48, 20));
        assert_eq!(usage(&serde_json::json!({"usage": null})), None);
        assert_eq!(usage(&serde_json::json!({"usage": {}})), None);
    }
}
