//! Cohere's v2 chat API (docs.cohere.com/reference/chat): `POST {base_url}/v2/chat`,
//! whole or as server-sent events, with tools, images and reasoning.
//!
//! The translation, field by field:
//! - messages: `system` and `developer` become `system`; user text and images
//!   (`image_url` parts, http(s) or base64 `data:` URLs) keep OpenAI's shape, which v2
//!   shares; assistant turns keep their `tool_calls` and send their reasoning back as
//!   `tool_plan`; tool results are `{"role": "tool", "tool_call_id", "content"}`.
//! - `tools` keep OpenAI's shape; a `strict` function turns on `strict_tools`.
//! - `tool_choice`: `required` and `none` are `REQUIRED` and `NONE`; `auto` is the
//!   default (sent as nothing); a named function has no Cohere equivalent and is refused.
//! - `top_p` is `p`, `stop` is `stop_sequences`, the token limit is `max_tokens`;
//!   `response_format` JSON modes become `{"type": "json_object"[, "json_schema"]}`.
//! - Unknown request fields (`k`, `thinking`, `safety_mode`, `documents`, ...) are passed
//!   through.
//!
//! Answers: `text` content is the answer, `thinking` content and `tool_plan` are the
//! reasoning, `finish_reason` maps `COMPLETE`/`STOP_SEQUENCE` to stop, `MAX_TOKENS` to
//! length, `TOOL_CALL` to tool calls; usage is `billed_units` (what Cohere charges for),
//! else `tokens`. Errors are `{"message"}` bodies, which the SDK's default classifies by
//! status ("too many tokens" is a context-window error).

use provider_kit::{
    fixtures,
    manifest::{manifest, Model, CHAT},
    request::{self, put},
    sse::{JsonEvents, JsonSseDecoder},
};
use provider_sdk::{
    serde_json::{from_value, to_value},
    serde_json::{json, Map, Value},
    AssistantMessage, AuthScheme, ChatRequest, ChatResponse, Conformance, ErrorKind, FinishReason,
    HttpRequest, HttpResponse, Manifest, Message, Outbound, Provider, ProviderConfig,
    ProviderError, ResponseFormat, StopSequences, StreamEvent, ToolChoice, ToolChoiceMode, Usage,
};

/// Cohere's API when the entry sets no `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://api.cohere.com";

/// Context windows, output limits and US dollars per million tokens, from
/// docs.cohere.com/docs/models and cohere.com/pricing.
#[rustfmt::skip]
const MODELS: &[Model] = &[
    Model::new("command-a-03-2025", 256_000).max_output(8_000).price(2.50, 10.00),
    Model::new("command-r-plus-08-2024", 128_000).max_output(4_000).price(2.50, 10.00),
    Model::new("command-r-08-2024", 128_000).max_output(4_000).price(0.15, 0.60),
    Model::new("command-r7b-12-2024", 128_000).max_output(4_000).price(0.0375, 0.15),
];

/// The Cohere provider, for one config entry.
pub struct Cohere {
    base_url: String,
}

impl Provider for Cohere {
    type Decoder = CohereDecoder;

    fn manifest() -> Manifest {
        manifest("cohere", env!("CARGO_PKG_VERSION"))
            .description("Cohere's v2 chat API")
            .capabilities(CHAT)
            .base_url(DEFAULT_BASE_URL)
            .api_key_env("CO_API_KEY")
            .auth(AuthScheme::Bearer)
            .models(MODELS)
            .build()
    }

    fn conformance() -> Conformance {
        let limited = fixtures::json(429, include_str!("../fixtures/error-429.json"));
        Conformance {
            options: json!({}),
            response: fixtures::json(200, include_str!("../fixtures/chat-default.json")),
            stream: fixtures::sse_body(include_bytes!("../fixtures/stream-default.sse")),
            error: Some(fixtures::error(limited, ErrorKind::RateLimited)),
        }
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        request::no_options("cohere", &config)?;
        let base_url = request::http_base_url("cohere", &config, DEFAULT_BASE_URL)?;
        Ok(Cohere { base_url })
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        let body = request::json_body(&body(request)?)?;
        let accept = ["application/json", "text/event-stream"][usize::from(request.stream)];
        let http = HttpRequest::post_json(format!("{}/v2/chat", self.base_url), body);
        Ok(Outbound::Http(http.header("accept", accept)))
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        let body = request::json_answer("Cohere", response.body)?;
        let answer = &body["message"];
        let mut message = AssistantMessage {
            tool_calls: from_value(answer["tool_calls"].clone()).unwrap_or_default(),
            ..AssistantMessage::default()
        };
        let plan = [json!({"type": "thinking", "thinking": answer["tool_plan"]})];
        let parts = answer["content"].as_array().into_iter().flatten();
        for part in parts.chain(&plan) {
            let (field, key) = match part["type"].as_str() {
                Some("thinking") => (&mut message.reasoning, "thinking"),
                _ => (&mut message.content, "text"),
            };
            if let Some(text) = part[key].as_str().filter(|t| !t.is_empty()) {
                field.get_or_insert_with(String::new).push_str(text);
            }
        }
        Ok(ChatResponse {
            id: body["id"].as_str().map(str::to_owned),
            model: String::new(),
            finish_reason: finish_reason(body["finish_reason"].as_str()),
            usage: usage(&body["usage"]),
            message,
        })
    }

    fn stream_decoder(&self) -> CohereDecoder {
        CohereDecoder::default()
    }
}

provider_sdk::export_provider!(Cohere);

/// The `/v2/chat` body for `request`.
fn body(request: &ChatRequest) -> Result<Value, ProviderError> {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let messages = request.messages.iter().map(message);
    body.insert("messages".into(), messages.collect::<Result<_, _>>()?);
    if !request.tools.is_empty() {
        let strict = request
            .tools
            .iter()
            .any(|t| t.function.strict == Some(true));
        let mut tools = json!(request.tools);
        for tool in tools.as_array_mut().into_iter().flatten() {
            tool["function"].as_object_mut().map(|f| f.remove("strict"));
        }
        body.insert("tools".into(), tools);
        put(&mut body, "strict_tools", strict.then_some(true));
    }
    let choice = match &request.tool_choice {
        None | Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => None,
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => Some("REQUIRED"),
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => Some("NONE"),
        Some(ToolChoice::Function { .. }) => return Err(ProviderError::invalid_request(
            "cohere cannot be told which tool to call: tool_choice must be auto, none or required",
        )),
    };
    put(&mut body, "tool_choice", choice);
    put(&mut body, "temperature", request.temperature);
    put(&mut body, "p", request.top_p);
    put(&mut body, "max_tokens", request::token_limit(request));
    let stop = request.stop.as_ref().map(StopSequences::to_vec);
    put(&mut body, "stop_sequences", stop);
    put(&mut body, "seed", request.seed);
    put(&mut body, "frequency_penalty", request.frequency_penalty);
    put(&mut body, "presence_penalty", request.presence_penalty);
    let format = match &request.response_format {
        Some(ResponseFormat::JsonObject) => Some(json!({"type": "json_object"})),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            Some(json!({"type": "json_object", "json_schema": json_schema["schema"]}))
        }
        Some(ResponseFormat::Text) | None => None,
    };
    put(&mut body, "response_format", format);
    body.insert("stream".into(), json!(request.stream));
    for (name, value) in &request.extra {
        body.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(body))
}

/// One message in v2's shape, which is OpenAI's (the canonical JSON) but for a few
/// fields: no participant `name`, `developer` is `system`, reasoning goes back as
/// `tool_plan`; image URLs are checked to be http(s) or base64 `data:` URLs.
fn message(message: &Message) -> Result<Value, ProviderError> {
    let Ok(Value::Object(mut turn)) = to_value(message) else {
        return Err(ProviderError::plugin_fault(
            "a message did not encode as an object",
        ));
    };
    for part in turn
        .get("content")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(url) = part["image_url"]["url"].as_str() {
            request::image(url, "cohere")?;
        }
    }
    for field in ["name", "reasoning_details", "refusal"] {
        turn.remove(field);
    }
    if let Some(plan) = turn.remove("reasoning_content") {
        turn.insert("tool_plan".into(), plan);
    }
    if matches!(message, Message::Developer { .. }) {
        turn.insert("role".into(), json!("system"));
    }
    Ok(Value::Object(turn))
}

/// v2's `finish_reason`.
fn finish_reason(reason: Option<&str>) -> FinishReason {
    match reason {
        Some("COMPLETE" | "STOP_SEQUENCE") | None => FinishReason::Stop,
        Some("MAX_TOKENS") => FinishReason::Length,
        Some("TOOL_CALL") => FinishReason::ToolCalls,
        Some(_) => FinishReason::Other,
    }
}

/// `usage`: `billed_units`, what Cohere charges, else `tokens`.
fn usage(usage: &Value) -> Option<Usage> {
    let counts = [&usage["billed_units"], &usage["tokens"]];
    let counts = counts.into_iter().find(|c| c["input_tokens"].is_number())?;
    let count = |key: &str| counts[key].as_f64().unwrap_or(0.0).max(0.0) as u64;
    Some(Usage {
        prompt_tokens: count("input_tokens"),
        completion_tokens: count("output_tokens"),
        ..Usage::default()
    })
}

/// Decodes one v2 chat stream.
pub type CohereDecoder = JsonSseDecoder<CohereEvents>;

/// What a v2 stream said so far.
#[derive(Debug, Default)]
pub struct CohereEvents {
    /// Cohere's `index` of each tool call, in the order they started (the canonical index).
    calls: Vec<u64>,
    /// `message-end` arrived.
    done: bool,
}

impl JsonEvents for CohereEvents {
    const UPSTREAM: &'static str = "Cohere";

    fn event(
        &mut self,
        name: Option<&str>,
        data: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        let delta = &data["delta"]["message"];
        let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
        let index = data["index"].as_u64().unwrap_or(0);
        match data["type"].as_str().or(name).unwrap_or_default() {
            "message-start" => out.push(StreamEvent::Start {
                id: data["id"].as_str().map(str::to_owned),
                model: None,
            }),
            "content-start" | "content-delta" => {
                let content = &delta["content"];
                let (thinking, answer) = (text(&content["thinking"]), text(&content["text"]));
                if !thinking.is_empty() {
                    out.push(StreamEvent::ReasoningDelta { text: thinking });
                } else if !answer.is_empty() {
                    out.push(StreamEvent::TextDelta { text: answer });
                }
            }
            "tool-plan-delta" => out.push(StreamEvent::ReasoningDelta {
                text: text(&delta["tool_plan"]),
            }),
            "tool-call-start" => {
                self.calls.push(index);
                out.push(StreamEvent::ToolCallStart {
                    index: self.calls.len() as u32 - 1,
                    id: text(&delta["tool_calls"]["id"]),
                    name: text(&delta["tool_calls"]["function"]["name"]),
                });
            }
            "tool-call-delta" => {
                let Some(ours) = self.calls.iter().position(|&theirs| theirs == index) else {
                    return Err(self.malformed(&format!("tool call {index} never started")));
                };
                out.push(StreamEvent::ToolCallDelta {
                    index: ours as u32,
                    arguments: text(&delta["tool_calls"]["function"]["arguments"]),
                });
            }
            "message-end" => {
                self.done = true;
                out.extend(
                    usage(&data["delta"]["usage"]).map(|usage| StreamEvent::Usage { usage }),
                );
                let reason = finish_reason(data["delta"]["finish_reason"].as_str());
                out.push(StreamEvent::Finish { reason });
            }
            // content-end, tool-call-end, citations and later event types.
            _ => {}
        }
        Ok(())
    }

    fn is_complete(&self) -> bool {
        self.done
    }
}

#[cfg(test)]
mod tests;
