//! Canonical chat request → Gemini `GenerateContentRequest`
//! (<https://ai.google.dev/api/generate-content#request-body>).
//!
//! - `system` and `developer` messages, wherever they are, become `systemInstruction`
//!   (one text part each; Gemini has no mid-conversation system turn);
//! - `user` and `tool` messages become `user` turns, `assistant` messages `model` turns;
//!   consecutive turns of the same role are merged into one;
//! - images: `data:` URLs become `inlineData`, http(s) URLs `fileData` when their
//!   extension tells the type;
//! - assistant tool calls become `functionCall` parts, tool results `functionResponse`
//!   parts named after the call they answer;
//! - Gemini thought signatures come back from the assistant turn's `reasoning_details`
//!   (see `response`) and are put back on its `functionCall` parts, in order;
//! - request fields map to `generationConfig`, `tools` and `toolConfig`.
//!
//! Client fields the canonical request does not know (`extra`): Gemini's own
//! `safetySettings` and `cachedContent` are passed as they are, a `generationConfig`
//! object is merged over the one built here, `top_k` becomes `generationConfig.topK`;
//! other OpenAI-only fields (`metadata`, `logit_bias`, ...) are ignored.

use std::collections::HashMap;

use provider_kit::request::{self, Image};
use provider_sdk::{
    serde_json, ChatRequest, Content, ContentPart, HttpRequest, Message, ProviderError,
    ReasoningDetail, ResponseFormat, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use serde_json::{json, Map, Value};

use crate::response::SIGNATURE_FORMAT;
use crate::{schema, GeminiOptions};

/// The signature Google documents for function calls whose real signature is unknown
/// (history from another model, or a client that dropped `reasoning_details`); Gemini 3
/// refuses a function-calling step without one.
/// <https://ai.google.dev/gemini-api/docs/thought-signatures>
pub(crate) const SKIP_SIGNATURE: &str = "skip_thought_signature_validator";

/// Builds the HTTP request for `request`.
pub(crate) fn build(
    base_url: &str,
    options: &GeminiOptions,
    request: &ChatRequest,
) -> Result<HttpRequest, ProviderError> {
    let model = model_id(&request.model)?;
    if request.n.is_some_and(|n| n > 1) {
        return Err(ProviderError::invalid_request(
            "gemini: n > 1 is not supported; ask for one choice per request",
        ));
    }
    let (system, contents) = conversation(model, &request.messages)?;

    let mut body = Map::new();
    body.insert("contents".to_owned(), Value::Array(contents));
    if !system.is_empty() {
        body.insert("systemInstruction".to_owned(), json!({ "parts": system }));
    }
    if !request.tools.is_empty() {
        let declarations = request
            .tools
            .iter()
            .map(function_declaration)
            .collect::<Result<Vec<_>, _>>()?;
        body.insert(
            "tools".to_owned(),
            json!([{ "functionDeclarations": declarations }]),
        );
    }
    if let Some(config) = tool_config(request)? {
        body.insert("toolConfig".to_owned(), config);
    }
    let mut generation = generation_config(model, options, request)?;
    for (key, value) in &request.extra {
        match (key.as_str(), value) {
            ("safetySettings" | "safety_settings", value) => {
                body.insert("safetySettings".to_owned(), value.clone());
            }
            ("cachedContent" | "cached_content", value) => {
                body.insert("cachedContent".to_owned(), value.clone());
            }
            ("generationConfig" | "generation_config", Value::Object(native)) => {
                for (k, v) in native {
                    generation.insert(k.clone(), v.clone());
                }
            }
            ("top_k" | "topK", value @ Value::Number(_)) => {
                generation.insert("topK".to_owned(), value.clone());
            }
            _ => {}
        }
    }
    if !generation.is_empty() {
        body.insert("generationConfig".to_owned(), Value::Object(generation));
    }

    let url = if request.stream {
        format!("{base_url}/models/{model}:streamGenerateContent?alt=sse")
    } else {
        format!("{base_url}/models/{model}:generateContent")
    };
    let body = serde_json::to_vec(&Value::Object(body))
        .map_err(|e| ProviderError::plugin_fault(format!("gemini request body: {e}")))?;
    Ok(HttpRequest::post_json(url, body))
}

/// The model id as it goes in the URL path: `models/` prefix dropped, and only the
/// characters Gemini model ids use, so that a model name cannot change the URL.
pub(crate) fn model_id(model: &str) -> Result<&str, ProviderError> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    let valid = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if valid {
        Ok(id)
    } else {
        Err(ProviderError::invalid_request(format!(
            "gemini: `{model}` is not a Gemini model id (letters, digits, `-`, `.`, `_`)"
        )))
    }
}

/// The Gemini generation of a model id: `gemini-2.5-flash` → (2, 5), `gemini-3-pro` → (3, 0).
/// The `-latest` aliases (`gemini-flash-latest`, ...) point at thinking models that take a
/// `thinkingBudget`; they count as 2.5.
fn version(model: &str) -> Option<(u32, u32)> {
    let rest = model.strip_prefix("gemini-")?;
    if rest.ends_with("-latest") && !rest.bytes().any(|b| b.is_ascii_digit()) {
        return Some((2, 5));
    }
    let number = rest.split('-').next()?;
    let mut pieces = number.split('.');
    let major = pieces.next()?.parse().ok()?;
    let minor = pieces.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// Whether the model thinks (Gemini 2.5 and later) and takes a `thinkingConfig`.
fn thinks(model: &str) -> bool {
    version(model).is_some_and(|v| v >= (2, 5))
}

/// Whether the model is Gemini 3 or later: it takes a `thinkingLevel` rather than a budget,
/// and insists on thought signatures in function-calling steps.
fn gemini_3_or_later(model: &str) -> bool {
    version(model).is_some_and(|(major, _)| major >= 3)
}

/// One turn of `contents` being built.
struct Turn {
    role: &'static str,
    parts: Vec<Value>,
}

/// Splits the messages into `systemInstruction` parts and `contents` turns.
fn conversation(
    model: &str,
    messages: &[Message],
) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<Turn> = Vec::new();
    // Function name of every tool call seen so far, by call id. A later call with the
    // same id (ids like `call_0` repeat across turns) replaces the earlier one, so a tool
    // message finds the closest call before it.
    let mut call_names: HashMap<&str, &str> = HashMap::new();
    for (position, message) in messages.iter().enumerate() {
        match message {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                system.extend(text_parts(content, position)?);
            }
            Message::User { content, .. } => push(&mut turns, "user", content_parts(content)?),
            Message::Assistant {
                content,
                tool_calls,
                reasoning_details,
                ..
            } => {
                let mut parts = match content {
                    Some(content) => content_parts(content)?,
                    None => Vec::new(),
                };
                parts.extend(function_calls(model, tool_calls, reasoning_details)?);
                for call in tool_calls {
                    call_names.insert(call.id.as_str(), call.function.name.as_str());
                }
                push(&mut turns, "model", parts);
            }
            Message::Tool {
                content,
                tool_call_id,
            } => {
                let name = call_names.get(tool_call_id.as_str()).ok_or_else(|| {
                    ProviderError::invalid_request(format!(
                        "gemini: the tool message at position {position} answers tool_call_id \
                         `{tool_call_id}`, but no earlier assistant message made a call with \
                         that id; Gemini needs the function's name"
                    ))
                })?;
                let part = json!({
                    "functionResponse": { "name": name, "response": tool_output(content) }
                });
                push(&mut turns, "user", vec![part]);
            }
        }
    }
    if turns.is_empty() {
        return Err(ProviderError::invalid_request(
            "gemini: the conversation has no user or assistant message to send",
        ));
    }
    let contents = turns
        .into_iter()
        .map(|turn| json!({ "role": turn.role, "parts": turn.parts }))
        .collect();
    Ok((system, contents))
}

/// Appends parts as a turn of `role`, merged into the previous turn when it has the same
/// role (Gemini expects user and model turns to alternate).
fn push(turns: &mut Vec<Turn>, role: &'static str, parts: Vec<Value>) {
    if parts.is_empty() {
        return;
    }
    match turns.last_mut() {
        Some(last) if last.role == role => last.parts.extend(parts),
        _ => turns.push(Turn { role, parts }),
    }
}

/// The text of a system or developer message, one part.
fn text_parts(content: &Content, position: usize) -> Result<Vec<Value>, ProviderError> {
    if let Content::Parts(parts) = content {
        if parts
            .iter()
            .any(|p| matches!(p, ContentPart::ImageUrl { .. }))
        {
            return Err(ProviderError::invalid_request(format!(
                "gemini: the system message at position {position} has an image; Gemini's \
                 system instruction takes text only"
            )));
        }
    }
    let text = content.text();
    Ok(if text.is_empty() {
        Vec::new()
    } else {
        vec![json!({ "text": text })]
    })
}

/// Text and image parts of a user or assistant message; empty texts are left out
/// (Gemini refuses empty parts).
fn content_parts(content: &Content) -> Result<Vec<Value>, ProviderError> {
    match content {
        Content::Text(text) if text.is_empty() => Ok(Vec::new()),
        Content::Text(text) => Ok(vec![json!({ "text": text })]),
        Content::Parts(parts) => parts
            .iter()
            .filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty()))
            .map(|p| match p {
                ContentPart::Text { text } => Ok(json!({ "text": text })),
                ContentPart::ImageUrl { image_url } => image_part(&image_url.url),
            })
            .collect(),
    }
}

/// Image types Gemini accepts, by file extension
/// (<https://ai.google.dev/gemini-api/docs/image-understanding>).
const IMAGE_TYPES: [(&str, &str); 6] = [
    ("png", "image/png"),
    ("jpg", "image/jpeg"),
    ("jpeg", "image/jpeg"),
    ("webp", "image/webp"),
    ("heic", "image/heic"),
    ("heif", "image/heif"),
];

/// An image URL as a Gemini part: `inlineData` for a base64 `data:` URL, `fileData` for
/// an http(s) URL whose extension names a supported image type.
fn image_part(url: &str) -> Result<Value, ProviderError> {
    match request::image(url, "gemini")? {
        Image::Base64 { media_type, data } => {
            Ok(json!({ "inlineData": { "mimeType": media_type, "data": data } }))
        }
        Image::Url(url) => {
            let path = url.split(['?', '#']).next().unwrap_or(url);
            let last = path.rsplit('/').next().unwrap_or("");
            let extension = last
                .rsplit_once('.')
                .map(|(_, e)| e.to_ascii_lowercase())
                .unwrap_or_default();
            match IMAGE_TYPES.iter().find(|(e, _)| *e == extension) {
                Some((_, mime)) => Ok(json!({ "fileData": { "mimeType": mime, "fileUri": url } })),
                None => Err(ProviderError::invalid_request(format!(
                    "gemini: cannot tell the image type of `{url}`: Gemini needs a MIME type with \
                     an image URL, and this plugin takes it from the extension (.png, .jpg, .jpeg, \
                     .webp, .heic, .heif); send the image as a data: URL instead"
                ))),
            }
        }
    }
}

/// The assistant's tool calls as `functionCall` parts, with the turn's Gemini thought
/// signatures put back on them in order (Gemini signs the first call of a step).
fn function_calls(
    model: &str,
    calls: &[ToolCall],
    details: &[ReasoningDetail],
) -> Result<Vec<Value>, ProviderError> {
    let mut signatures = details
        .iter()
        .filter(|d| {
            d.kind == "reasoning.encrypted" && d.format.as_deref() == Some(SIGNATURE_FORMAT)
        })
        .filter_map(|d| d.data.as_deref());
    let mut parts = Vec::with_capacity(calls.len());
    for (index, call) in calls.iter().enumerate() {
        let arguments = call.function.arguments.trim();
        let args: Value = if arguments.is_empty() {
            json!({})
        } else {
            serde_json::from_str(arguments).map_err(|e| {
                ProviderError::invalid_request(format!(
                    "gemini: the arguments of tool call `{}` are not JSON: {e}",
                    call.id
                ))
            })?
        };
        if !args.is_object() {
            return Err(ProviderError::invalid_request(format!(
                "gemini: the arguments of tool call `{}` must be a JSON object",
                call.id
            )));
        }
        let mut part = json!({ "functionCall": { "name": call.function.name, "args": args } });
        match signatures.next() {
            Some(signature) => part["thoughtSignature"] = json!(signature),
            None if index == 0 && gemini_3_or_later(model) => {
                part["thoughtSignature"] = json!(SKIP_SIGNATURE)
            }
            None => {}
        }
        parts.push(part);
    }
    Ok(parts)
}

/// A tool's output as a `functionResponse.response` object: a JSON object as it is,
/// anything else under `result`.
fn tool_output(content: &Content) -> Value {
    let text = content.text();
    match serde_json::from_str::<Value>(&text) {
        Ok(object @ Value::Object(_)) => object,
        Ok(other) => json!({ "result": other }),
        Err(_) => json!({ "result": text }),
    }
}

/// A function tool as a Gemini `FunctionDeclaration`.
fn function_declaration(tool: &Tool) -> Result<Value, ProviderError> {
    if tool.kind != "function" {
        return Err(ProviderError::invalid_request(format!(
            "gemini: tools of type `{}` are not supported, only `function`",
            tool.kind
        )));
    }
    let mut declaration = json!({ "name": tool.function.name });
    if let Some(description) = &tool.function.description {
        declaration["description"] = json!(description);
    }
    if let Some(parameters) = &tool.function.parameters {
        let parameters = schema::convert(parameters).map_err(|e| {
            ProviderError::invalid_request(format!(
                "gemini: parameters of tool `{}`: {}",
                tool.function.name, e.message
            ))
        })?;
        if !schema::is_empty_object(&parameters) {
            declaration["parameters"] = parameters;
        }
    }
    Ok(declaration)
}

/// `tool_choice` as `toolConfig.functionCallingConfig`: `none` → NONE, `auto` → AUTO,
/// `required` → ANY, a named function → ANY restricted to it.
fn tool_config(request: &ChatRequest) -> Result<Option<Value>, ProviderError> {
    let Some(choice) = &request.tool_choice else {
        return Ok(None);
    };
    let config = match choice {
        ToolChoice::Mode(_) | ToolChoice::Function { .. } if request.tools.is_empty() => {
            if matches!(
                choice,
                ToolChoice::Mode(ToolChoiceMode::None | ToolChoiceMode::Auto)
            ) {
                return Ok(None);
            }
            return Err(ProviderError::invalid_request(
                "gemini: tool_choice asks for a tool call, but the request offers no tools",
            ));
        }
        ToolChoice::Mode(ToolChoiceMode::None) => json!({ "mode": "NONE" }),
        ToolChoice::Mode(ToolChoiceMode::Auto) => json!({ "mode": "AUTO" }),
        ToolChoice::Mode(ToolChoiceMode::Required) => json!({ "mode": "ANY" }),
        ToolChoice::Function { function, .. } => {
            if !request
                .tools
                .iter()
                .any(|t| t.function.name == function.name)
            {
                return Err(ProviderError::invalid_request(format!(
                    "gemini: tool_choice names `{}`, which is not among the tools",
                    function.name
                )));
            }
            json!({ "mode": "ANY", "allowedFunctionNames": [function.name] })
        }
    };
    Ok(Some(json!({ "functionCallingConfig": config })))
}

/// Sampling, limits, output format and thinking as `generationConfig`.
fn generation_config(
    model: &str,
    options: &GeminiOptions,
    request: &ChatRequest,
) -> Result<Map<String, Value>, ProviderError> {
    let mut config = Map::new();
    let mut set = |key: &str, value: Value| {
        config.insert(key.to_owned(), value);
    };
    if let Some(t) = request.temperature {
        set("temperature", json!(t));
    }
    if let Some(p) = request.top_p {
        set("topP", json!(p));
    }
    if let Some(max) = request.max_completion_tokens.or(request.max_tokens) {
        set("maxOutputTokens", json!(max));
    }
    if let Some(stop) = &request.stop {
        let stop = stop.to_vec();
        if !stop.is_empty() {
            set("stopSequences", json!(stop));
        }
    }
    if let Some(seed) = request.seed {
        set("seed", json!(seed));
    }
    if let Some(p) = request.presence_penalty {
        set("presencePenalty", json!(p));
    }
    if let Some(p) = request.frequency_penalty {
        set("frequencyPenalty", json!(p));
    }
    match &request.response_format {
        None | Some(ResponseFormat::Text) => {}
        Some(ResponseFormat::JsonObject) => set("responseMimeType", json!("application/json")),
        Some(ResponseFormat::JsonSchema { json_schema }) => {
            set("responseMimeType", json!("application/json"));
            if let Some(schema) = json_schema.get("schema") {
                let schema = schema::convert(schema).map_err(|e| {
                    ProviderError::invalid_request(format!(
                        "gemini: response_format schema: {}",
                        e.message
                    ))
                })?;
                set("responseSchema", schema);
            }
        }
    }
    if let Some(thinking) = thinking_config(model, options, request)? {
        set("thinkingConfig", thinking);
    }
    Ok(config)
}

/// `reasoning_effort` as a `thinkingConfig` (<https://ai.google.dev/gemini-api/docs/thinking>):
///
/// | effort | Gemini 2.5 (`thinkingBudget`) | Gemini 3 (`thinkingLevel`) |
/// |---|---|---|
/// | `none` | 0 (2.5 Pro cannot stop thinking: 128, its minimum) | `low` |
/// | `minimal` | 512 | `low` |
/// | `low` | 1024 | `low` |
/// | `medium` | 8192 | `high` |
/// | `high`, `xhigh` | 24576 | `high` |
///
/// Thought summaries are asked for (`includeThoughts`) unless the effort is `none`, so
/// the answer carries the reasoning. Models that do not think (Gemini 2.0 and older) get no
/// `thinkingConfig`: the effort is ignored rather than refused.
fn thinking_config(
    model: &str,
    options: &GeminiOptions,
    request: &ChatRequest,
) -> Result<Option<Value>, ProviderError> {
    if !thinks(model) {
        return Ok(None);
    }
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(options
            .include_thoughts
            .then(|| json!({ "includeThoughts": true })));
    };
    let effort = effort.to_ascii_lowercase();
    if !matches!(
        effort.as_str(),
        "none" | "minimal" | "low" | "medium" | "high" | "xhigh"
    ) {
        return Err(ProviderError::invalid_request(format!(
            "gemini: reasoning_effort `{effort}` is not one of none, minimal, low, medium, high"
        )));
    }
    if gemini_3_or_later(model) {
        let level = match effort.as_str() {
            "medium" | "high" | "xhigh" => "high",
            _ => "low",
        };
        return Ok(Some(
            json!({ "thinkingLevel": level, "includeThoughts": effort != "none" }),
        ));
    }
    let budget = match effort.as_str() {
        "none" if model.starts_with("gemini-2.5-pro") => 128,
        "none" => 0,
        "minimal" => 512,
        "low" => 1024,
        "medium" => 8192,
        _ => 24576,
    };
    Ok(Some(
        json!({ "thinkingBudget": budget, "includeThoughts": effort != "none" }),
    ))
}
