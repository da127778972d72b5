//! A canonical answer as an Anthropic `message`, whole.

use provider_sdk::{ChatResponse, FinishReason, ReasoningDetail, Usage};
use serde_json::{json, Value};

/// Anthropic's `stop_reason` for a canonical finish reason.
pub fn stop_reason(reason: FinishReason) -> &'static str {
    match reason {
        FinishReason::Stop | FinishReason::Other => "end_turn",
        FinishReason::Length => "max_tokens",
        FinishReason::ToolCalls => "tool_use",
        FinishReason::ContentFilter => "refusal",
    }
}

/// Anthropic's usage object: `input_tokens` excludes what was read from or written to
/// the prompt cache, which are counted on their own.
pub fn usage(usage: Option<Usage>) -> Value {
    let u = usage.unwrap_or_default();
    json!({
        "input_tokens": u.prompt_tokens.saturating_sub(u.cached_prompt_tokens + u.cache_write_tokens),
        "output_tokens": u.completion_tokens,
        "cache_creation_input_tokens": u.cache_write_tokens,
        "cache_read_input_tokens": u.cached_prompt_tokens,
    })
}

/// A reasoning detail as a thinking or redacted-thinking block.
pub fn thinking_block(detail: &ReasoningDetail) -> Value {
    match (&detail.data, &detail.text) {
        (Some(data), None) => json!({"type": "redacted_thinking", "data": data}),
        (_, text) => json!({
            "type": "thinking",
            "thinking": text.as_deref().unwrap_or(""),
            "signature": detail.signature.as_deref().unwrap_or(""),
        }),
    }
}

/// Tool arguments as the `input` object Anthropic clients expect. Arguments that are
/// not a JSON object (a model's malformed output) are kept whole under `arguments`
/// rather than dropped.
pub fn tool_input(arguments: &str) -> Value {
    match serde_json::from_str::<Value>(arguments) {
        Ok(value @ Value::Object(_)) => value,
        _ if arguments.trim().is_empty() => json!({}),
        _ => json!({ "arguments": arguments }),
    }
}

/// The whole `message`.
pub fn message(id: &str, model: &str, response: &ChatResponse) -> Value {
    let m = &response.message;
    let mut content = Vec::new();
    if m.reasoning_details.is_empty() {
        if let Some(reasoning) = m.reasoning.as_deref().filter(|r| !r.is_empty()) {
            content.push(json!({"type": "thinking", "thinking": reasoning, "signature": ""}));
        }
    }
    content.extend(m.reasoning_details.iter().map(thinking_block));
    if let Some(text) = m
        .content
        .as_deref()
        .or(m.refusal.as_deref())
        .filter(|t| !t.is_empty())
    {
        content.push(json!({"type": "text", "text": text}));
    }
    for call in &m.tool_calls {
        content.push(json!({
            "type": "tool_use",
            "id": call.id,
            "name": call.function.name,
            "input": tool_input(&call.function.arguments),
        }));
    }
    let stop_reason = if !m.tool_calls.is_empty() {
        "tool_use"
    } else {
        stop_reason(response.finish_reason)
    };
    json!({
        "id": id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": null,
        "usage": usage(response.usage),
    })
}
