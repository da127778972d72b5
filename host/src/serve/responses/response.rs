//! The response object of the Responses API, built from a canonical answer: the
//! request's settings echoed, output items (reasoning, message, function calls),
//! status and usage.

use provider_sdk::{ChatResponse, FinishReason, Usage};
use serde_json::{json, Map, Value};

use super::request::ResponsesRequest;

/// What every response object of one request carries besides its output.
pub struct Head {
    /// `resp_...`.
    pub id: String,
    /// Unix seconds.
    pub created_at: u64,
    /// The model that answers (`provider/model`).
    pub model: String,
    echo: Map<String, Value>,
}

impl Head {
    /// The head for `request`, answered by `model`.
    pub fn new(id: String, created_at: u64, model: String, request: &ResponsesRequest) -> Head {
        let mut echo = Map::new();
        let mut put = |k: &str, v: Value| {
            echo.insert(k.to_owned(), v);
        };
        put("instructions", json!(request.instructions));
        put("max_output_tokens", json!(request.max_output_tokens));
        put(
            "parallel_tool_calls",
            json!(request.parallel_tool_calls.unwrap_or(true)),
        );
        put("previous_response_id", json!(request.previous_response_id));
        put("store", json!(request.store()));
        put("temperature", json!(request.temperature));
        put("top_p", json!(request.top_p));
        put(
            "text",
            request
                .text
                .as_ref()
                .and_then(|t| serde_json::to_value(t).ok())
                .filter(|t| t.get("format").is_some_and(|f| !f.is_null()))
                .unwrap_or_else(|| json!({"format": {"type": "text"}})),
        );
        put(
            "tool_choice",
            request.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        );
        put("tools", json!(request.tools));
        put(
            "metadata",
            Value::Object(request.metadata.clone().unwrap_or_default()),
        );
        Head {
            id,
            created_at,
            model,
            echo,
        }
    }

    /// The response object in `status`.
    pub fn object(&self, status: &Status, output: &[Value], usage: Option<Usage>) -> Value {
        let mut object = json!({
            "id": self.id,
            "object": "response",
            "created_at": self.created_at,
            "status": status.name(),
            "completed_at": match status {
                Status::Completed | Status::Incomplete(_) => json!(crate::usage::now_unix() as u64),
                _ => Value::Null,
            },
            "error": match status {
                Status::Failed { code, message } => json!({"code": code, "message": message}),
                _ => Value::Null,
            },
            "incomplete_details": match status {
                Status::Incomplete(reason) => json!({"reason": reason}),
                _ => Value::Null,
            },
            "model": self.model,
            "output": output,
            "usage": usage.map(usage_object),
        });
        let fields = object.as_object_mut().expect("an object");
        for (k, v) in &self.echo {
            fields.insert(k.clone(), v.clone());
        }
        object
    }
}

/// Where a response stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Being generated.
    InProgress,
    /// Done.
    Completed,
    /// Stopped early: `max_output_tokens` or `content_filter`.
    Incomplete(&'static str),
    /// Failed after it began.
    Failed {
        /// `server_error`, `rate_limit_exceeded`, ...
        code: String,
        /// For humans.
        message: String,
    },
}

impl Status {
    /// The finished status for a canonical finish reason.
    pub fn finished(reason: Option<FinishReason>) -> Status {
        match reason {
            Some(FinishReason::Length) => Status::Incomplete("max_output_tokens"),
            Some(FinishReason::ContentFilter) => Status::Incomplete("content_filter"),
            _ => Status::Completed,
        }
    }

    /// The API's name for it.
    pub fn name(&self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
            Status::Incomplete(_) => "incomplete",
            Status::Failed { .. } => "failed",
        }
    }

    /// The status of an output item when the response ends in this one.
    pub fn item_status(&self) -> &'static str {
        match self {
            Status::Completed => "completed",
            _ => "incomplete",
        }
    }
}

/// The usage object: every field the SDK requires.
pub fn usage_object(u: Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.cached_prompt_tokens, "cache_write_tokens": u.cache_write_tokens},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
        "total_tokens": u.total_tokens(),
    })
}

/// A new id with `prefix` (`resp`, `msg`, `fc`, `rs`).
pub fn new_id(prefix: &str) -> String {
    crate::serve::ingress::unique_id(&format!("{prefix}_"))
}

/// A reasoning item.
pub fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"id": id, "type": "reasoning", "summary": [],
           "content": [{"type": "reasoning_text", "text": text}], "status": "completed"})
}

/// A message item with one `output_text` part (or a refusal part).
pub fn message_item(id: &str, status: &str, text: Option<&str>, refusal: Option<&str>) -> Value {
    let mut content = Vec::new();
    if let Some(text) = text {
        content
            .push(json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []}));
    }
    if let Some(refusal) = refusal {
        content.push(json!({"type": "refusal", "refusal": refusal}));
    }
    json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
}

/// A function-call item.
pub fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    json!({"id": id, "type": "function_call", "status": status, "arguments": arguments,
           "call_id": call_id, "name": name})
}

/// The output items of a whole answer, in order: reasoning, message, function calls.
pub fn output_items(response: &ChatResponse, status: &Status) -> Vec<Value> {
    let m = &response.message;
    let item_status = status.item_status();
    let mut items = Vec::new();
    if let Some(reasoning) = m.reasoning.as_deref().filter(|r| !r.is_empty()) {
        items.push(reasoning_item(&new_id("rs"), reasoning));
    }
    let text = m.content.as_deref().filter(|t| !t.is_empty());
    if text.is_some() || m.refusal.is_some() {
        items.push(message_item(
            &new_id("msg"),
            item_status,
            text,
            m.refusal.as_deref(),
        ));
    }
    for call in &m.tool_calls {
        items.push(function_call_item(
            &new_id("fc"),
            item_status,
            &call.id,
            &call.function.name,
            &call.function.arguments,
        ));
    }
    items
}
