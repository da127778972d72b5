//! The canonical (OpenAI-shaped) request, translated into a Messages API request body.

use provider_kit::request::{self, Image};
use provider_sdk::{
    ChatRequest, Content, ContentPart, Message, ProviderError, Tool, ToolCall, ToolChoice,
    ToolChoiceMode,
};
use serde_json::{json, Map, Value};

use crate::reasoning;

/// Output-token limit when neither the request, the options nor the manifest give one.
pub const FALLBACK_MAX_TOKENS: u32 = 4096;

/// The smallest `budget_tokens` the API accepts for extended thinking.
pub const MIN_THINKING_BUDGET: u32 = 1024;

/// Request fields that are Anthropic's own: when a client sends them (they land in
/// [`ChatRequest::extra`]) they are passed through untouched. Every other unknown field
/// is OpenAI's or nobody's, and the Messages API rejects unknown fields, so it is dropped.
pub const PASSTHROUGH_FIELDS: [&str; 4] =
    ["top_k", "container", "mcp_servers", "context_management"];

/// What the body builder needs from the provider's options and manifest.
#[derive(Debug, Clone, Copy, Default)]
pub struct Settings<'a> {
    /// The `thinking` object applied when the request asks for nothing (option `thinking`).
    pub thinking: Option<&'a Value>,
    /// The output-token limit applied when the request sets none (option `default_max_tokens`).
    pub default_max_tokens: Option<u32>,
    /// The model's longest answer, from the manifest.
    pub model_max_output: Option<u32>,
}

/// Builds the JSON body of `POST /v1/messages` for `request`.
pub fn build_body(request: &ChatRequest, settings: &Settings<'_>) -> Result<Value, ProviderError> {
    let max_tokens = request
        .max_completion_tokens
        .or(request.max_tokens)
        .or(settings.default_max_tokens)
        .or(settings.model_max_output)
        .unwrap_or(FALLBACK_MAX_TOKENS);
    let thinking = thinking(request, settings, max_tokens)?;
    let thinking_on = thinking
        .as_ref()
        .is_some_and(|t| t["type"].as_str() != Some("disabled"));
    let (system, messages) = conversation(&request.messages, thinking_on)?;
    if messages.is_empty() {
        return Err(ProviderError::invalid_request(
            "the request has no user or assistant message; Anthropic needs at least one",
        ));
    }

    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(max_tokens));
    if !system.is_empty() {
        body.insert("system".into(), Value::Array(system));
    }
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        let tools = request.tools.iter().map(tool).collect::<Result<_, _>>()?;
        body.insert("tools".into(), Value::Array(tools));
        if let Some(choice) = tool_choice(request) {
            body.insert("tool_choice".into(), choice);
        }
    }
    if let Some(thinking) = thinking {
        body.insert("thinking".into(), thinking);
    }
    // With thinking on, the API accepts neither a changed temperature nor top_k, and
    // top_p only in [0.95, 1]: values it would reject are left out rather than sent.
    // The API reference says to alter temperature or top_p "but not both", and recent
    // models reject the two together, so top_p goes only when temperature does not.
    let temperature = request.temperature.filter(|&t| !thinking_on || t == 1.0);
    let top_p = request
        .top_p
        .filter(|&p| temperature.is_none() && (!thinking_on || p >= 0.95));
    if let Some(t) = temperature {
        body.insert("temperature".into(), json!(t));
    }
    if let Some(p) = top_p {
        body.insert("top_p".into(), json!(p));
    }
    let stop = request
        .stop
        .as_ref()
        .map(|s| s.to_vec())
        .unwrap_or_default();
    if !stop.is_empty() {
        body.insert("stop_sequences".into(), json!(stop));
    }
    let user_id = request.user.clone().or_else(|| {
        request.extra.get("metadata")?["user_id"]
            .as_str()
            .map(str::to_owned)
    });
    if let Some(user_id) = user_id {
        body.insert("metadata".into(), json!({ "user_id": user_id }));
    }
    if request.stream {
        body.insert("stream".into(), json!(true));
    }
    for field in PASSTHROUGH_FIELDS {
        if field == "top_k" && thinking_on {
            continue;
        }
        if let Some(value) = request.extra.get(field) {
            body.insert(field.into(), value.clone());
        }
    }
    Ok(Value::Object(body))
}

/// The `thinking` object: the client's own `thinking` field wins, then
/// `reasoning_effort` (as a budget), then the provider's default.
fn thinking(
    request: &ChatRequest,
    settings: &Settings<'_>,
    max_tokens: u32,
) -> Result<Option<Value>, ProviderError> {
    if let Some(thinking) = request.extra.get("thinking") {
        return Ok((!thinking.is_null()).then(|| thinking.clone()));
    }
    let Some(effort) = request.reasoning_effort.as_deref() else {
        return Ok(settings.thinking.cloned());
    };
    let Some(budget) = effort_budget(effort)? else {
        return Ok(None);
    };
    // `budget_tokens` must stay below `max_tokens`, which counts the thinking too.
    let budget = budget.min(max_tokens.saturating_sub(1));
    if budget < MIN_THINKING_BUDGET {
        return Err(ProviderError::invalid_request(format!(
            "reasoning_effort `{effort}` needs a thinking budget of at least {MIN_THINKING_BUDGET} tokens below max_tokens, and max_tokens is {max_tokens}"
        )));
    }
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

/// Thinking budget for an OpenAI `reasoning_effort`; `None` turns thinking off.
pub fn effort_budget(effort: &str) -> Result<Option<u32>, ProviderError> {
    Ok(Some(match effort {
        "none" => return Ok(None),
        "minimal" => MIN_THINKING_BUDGET,
        "low" => 2_048,
        "medium" => 8_192,
        "high" => 16_384,
        "xhigh" => 32_768,
        other => {
            return Err(ProviderError::invalid_request(format!(
                "unknown reasoning_effort `{other}`: use none, minimal, low, medium, high or xhigh"
            )))
        }
    }))
}

/// Splits the conversation into `system` blocks and alternating `messages`.
///
/// System and developer messages are hoisted into `system` wherever they stand; tool
/// results become `tool_result` blocks of a user turn; consecutive turns of the same
/// role are merged, because the API requires user and assistant to alternate.
fn conversation(
    messages: &[Message],
    replay_thinking: bool,
) -> Result<(Vec<Value>, Vec<Value>), ProviderError> {
    let mut system = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for message in messages {
        let (role, blocks) = match message {
            Message::System { content, .. } | Message::Developer { content, .. } => {
                system.extend(text_block(&content.text()));
                continue;
            }
            Message::User { content, .. } => ("user", content_blocks(content)?),
            Message::Tool {
                content,
                tool_call_id,
            } => ("user", vec![tool_result(tool_call_id, content)?]),
            Message::Assistant {
                content,
                reasoning_details,
                tool_calls,
                ..
            } => {
                let mut blocks = Vec::new();
                if replay_thinking {
                    blocks.extend(
                        reasoning_details
                            .iter()
                            .filter_map(reasoning::block_from_detail),
                    );
                }
                if let Some(content) = content {
                    // Assistant turns carry text only: the API takes no images from them.
                    blocks.extend(text_block(&content.text()));
                }
                for call in tool_calls {
                    blocks.push(tool_use(call)?);
                }
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last, merged)) if *last == role => merged.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    let messages = turns
        .into_iter()
        .map(|(role, mut content)| {
            if role == "user" {
                // A user turn must open with its tool results; the order within each
                // group is kept.
                content.sort_by_key(|b| b["type"] != "tool_result");
            }
            json!({"role": role, "content": content})
        })
        .collect();
    Ok((system, messages))
}

/// A text block, or nothing for empty text (the API rejects empty text blocks).
fn text_block(text: &str) -> Option<Value> {
    (!text.is_empty()).then(|| json!({"type": "text", "text": text}))
}

/// The blocks of user content: text, images and PDFs.
fn content_blocks(content: &Content) -> Result<Vec<Value>, ProviderError> {
    match content {
        Content::Text(text) => Ok(text_block(text).into_iter().collect()),
        Content::Parts(parts) => parts
            .iter()
            .filter_map(|part| match part {
                ContentPart::Text { text } => text_block(text).map(Ok),
                ContentPart::ImageUrl { image_url } => Some(image(&image_url.url)),
            })
            .collect(),
    }
}

/// An image part: a base64 `data:` URL becomes a base64 source with its media type
/// (`application/pdf` becomes a `document` block), an http(s) URL a `url` source.
fn image(url: &str) -> Result<Value, ProviderError> {
    Ok(match request::image(url, "anthropic")? {
        Image::Base64 { media_type, data } => {
            let kind = if media_type == "application/pdf" {
                "document"
            } else {
                "image"
            };
            json!({
                "type": kind,
                "source": {"type": "base64", "media_type": media_type, "data": data},
            })
        }
        Image::Url(url) => json!({"type": "image", "source": {"type": "url", "url": url}}),
    })
}

/// A tool message as a `tool_result` block.
fn tool_result(tool_call_id: &str, content: &Content) -> Result<Value, ProviderError> {
    let mut block = json!({"type": "tool_result", "tool_use_id": tool_call_id});
    match content {
        Content::Text(text) if text.is_empty() => {}
        Content::Text(text) => block["content"] = json!(text),
        Content::Parts(_) => {
            let blocks = content_blocks(content)?;
            if !blocks.is_empty() {
                block["content"] = Value::Array(blocks);
            }
        }
    }
    Ok(block)
}

/// An assistant tool call as a `tool_use` block, its JSON arguments parsed into `input`.
fn tool_use(call: &ToolCall) -> Result<Value, ProviderError> {
    let arguments = call.function.arguments.trim();
    let input = if arguments.is_empty() {
        json!({})
    } else {
        match serde_json::from_str::<Value>(arguments) {
            Ok(input @ Value::Object(_)) => input,
            _ => {
                return Err(ProviderError::invalid_request(format!(
                    "the arguments of tool call `{}` are not a JSON object",
                    call.id
                )))
            }
        }
    };
    Ok(json!({
        "type": "tool_use",
        "id": call.id,
        "name": call.function.name,
        "input": input,
    }))
}

/// A function tool as `{name, description, input_schema}`.
fn tool(tool: &Tool) -> Result<Value, ProviderError> {
    if tool.kind != "function" {
        return Err(ProviderError::invalid_request(format!(
            "tools of type `{}` are not supported; only `function`",
            tool.kind
        )));
    }
    let function = &tool.function;
    let schema = function
        .parameters
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    let mut out = json!({"name": function.name, "input_schema": schema});
    if let Some(description) = &function.description {
        out["description"] = json!(description);
    }
    Ok(out)
}

/// `tool_choice`: auto → auto, none → none, required → any, a named function → tool;
/// `parallel_tool_calls: false` becomes `disable_parallel_tool_use`.
fn tool_choice(request: &ChatRequest) -> Option<Value> {
    let one_at_a_time = request.parallel_tool_calls == Some(false);
    let mut choice = match &request.tool_choice {
        None if one_at_a_time => json!({"type": "auto"}),
        None => return None,
        Some(ToolChoice::Mode(ToolChoiceMode::None)) => return Some(json!({"type": "none"})),
        Some(ToolChoice::Mode(ToolChoiceMode::Auto)) => json!({"type": "auto"}),
        Some(ToolChoice::Mode(ToolChoiceMode::Required)) => json!({"type": "any"}),
        Some(ToolChoice::Function { function, .. }) => {
            json!({"type": "tool", "name": function.name})
        }
    };
    if one_at_a_time {
        choice["disable_parallel_tool_use"] = json!(true);
    }
    Some(choice)
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::{FunctionDefinition, ImageUrl, NamedFunction, StopSequences};

    fn sent_body(request: &ChatRequest) -> Value {
        build_body(request, &Settings::default()).unwrap()
    }

    fn wire(request: Value) -> ChatRequest {
        serde_json::from_value(request).expect("an OpenAI-shaped request")
    }

    #[test]
    fn system_and_developer_messages_are_hoisted_into_system_wherever_they_stand() {
        let request = wire(json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "system", "content": "You are terse."},
                {"role": "user", "content": "Hi"},
                {"role": "developer", "content": [{"type": "text", "text": "Answer in French."}]},
                {"role": "assistant", "content": "Salut"}
            ]
        }));
        let body = sent_body(&request);
        assert_eq!(
            body["system"],
            json!([
                {"type": "text", "text": "You are terse."},
                {"type": "text", "text": "Answer in French."}
            ])
        );
        assert_eq!(
            body["messages"],
            json!([
                {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
                {"role": "assistant", "content": [{"type": "text", "text": "Salut"}]}
            ]),
            "no system role is left among the messages"
        );
    }

    #[test]
    fn consecutive_messages_of_one_role_are_merged_so_roles_alternate() {
        let request = wire(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "first"},
                {"role": "user", "content": "second"},
                {"role": "assistant", "content": "a"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "b"},
                {"role": "user", "content": "third"}
            ]
        }));
        let messages = sent_body(&request)["messages"].clone();
        assert_eq!(
            messages,
            json!([
                {"role": "user", "content": [
                    {"type": "text", "text": "first"}, {"type": "text", "text": "second"}]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "user", "content": [{"type": "text", "text": "third"}]}
            ])
        );
    }

    #[test]
    fn image_parts_become_base64_or_url_sources() {
        // Source shapes as in the vision guide (docs.claude.com/en/docs/build-with-claude/vision).
        let request = wire(json!({
            "model": "m",
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQSkZJRg=="}},
                {"type": "image_url", "image_url": {"url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:application/pdf;base64,JVBERi0x"}},
                {"type": "text", "text": "Describe these."}
            ]}]
        }));
        assert_eq!(
            sent_body(&request)["messages"][0]["content"],
            json!([
                {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQSkZJRg=="}},
                {"type": "image", "source": {"type": "url", "url": "https://upload.wikimedia.org/wikipedia/commons/a/a7/Camponotus_flavomarginatus_ant.jpg"}},
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}},
                {"type": "text", "text": "Describe these."}
            ])
        );
        let mut bad = request.clone();
        bad.messages = vec![Message::User {
            content: Content::Parts(vec![ContentPart::ImageUrl {
                image_url: ImageUrl {
                    url: "data:image/svg+xml,%3Csvg%3E".into(),
                    detail: None,
                },
            }]),
            name: None,
        }];
        let error = build_body(&bad, &Settings::default()).unwrap_err();
        assert_eq!(error.kind, provider_sdk::ErrorKind::InvalidRequest);
    }

    #[test]
    fn tools_become_name_description_input_schema() {
        let request = provider_sdk::samples::tool_request("claude-sonnet-4-5");
        let body = sent_body(&request);
        assert_eq!(
            body["tools"],
            json!([{
                "name": "get_weather",
                "description": "Current weather in a city",
                "input_schema": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"]
                }
            }])
        );
        assert!(
            body.get("tool_choice").is_none(),
            "no choice given: the API default (auto)"
        );
        let mut bare = request.clone();
        bare.tools[0].function = FunctionDefinition {
            name: "ping".into(),
            description: None,
            parameters: None,
            strict: None,
        };
        assert_eq!(
            sent_body(&bare)["tools"][0],
            json!({"name": "ping", "input_schema": {"type": "object", "properties": {}}}),
            "input_schema is required, so a tool without parameters gets an empty object schema"
        );
    }

    #[test]
    fn tool_choice_maps_auto_none_required_and_named() {
        let mut request = provider_sdk::samples::tool_request("m");
        let mut choice = |c: Option<ToolChoice>, parallel: Option<bool>| {
            request.tool_choice = c;
            request.parallel_tool_calls = parallel;
            sent_body(&request).get("tool_choice").cloned()
        };
        assert_eq!(
            choice(Some(ToolChoice::Mode(ToolChoiceMode::Auto)), None),
            Some(json!({"type": "auto"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::Mode(ToolChoiceMode::None)), None),
            Some(json!({"type": "none"}))
        );
        assert_eq!(
            choice(Some(ToolChoice::Mode(ToolChoiceMode::Required)), None),
            Some(json!({"type": "any"}))
        );
        let named = ToolChoice::Function {
            kind: "function".into(),
            function: NamedFunction {
                name: "get_weather".into(),
            },
        };
        assert_eq!(
            choice(Some(named), Some(false)),
            Some(json!({"type": "tool", "name": "get_weather", "disable_parallel_tool_use": true}))
        );
        assert_eq!(
            choice(None, Some(false)),
            Some(json!({"type": "auto", "disable_parallel_tool_use": true}))
        );
        assert_eq!(choice(None, Some(true)), None);
    }

    #[test]
    fn a_tool_call_and_its_result_become_tool_use_and_tool_result_as_in_the_tool_use_guide() {
        // The OpenAI form of the second request of the tool-use guide
        // (docs.claude.com/en/docs/agents-and-tools/tool-use/overview, "Single tool example").
        let request = wire(json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 1024,
            "messages": [
                {"role": "user", "content": "What is the weather like in San Francisco?"},
                {"role": "assistant",
                 "content": "I'll check the current weather in San Francisco for you.",
                 "tool_calls": [{"id": "toolu_01A09q90qw90lq917835lq9", "type": "function",
                    "function": {"name": "get_weather",
                                 "arguments": "{\"location\": \"San Francisco, CA\", \"unit\": \"celsius\"}"}}]},
                {"role": "tool", "tool_call_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}
            ]
        }));
        // The guide's `messages`, with string contents written as the equivalent text blocks.
        let documented = json!([
            {"role": "user", "content": [{"type": "text", "text": "What is the weather like in San Francisco?"}]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll check the current weather in San Francisco for you."},
                {"type": "tool_use", "id": "toolu_01A09q90qw90lq917835lq9", "name": "get_weather",
                 "input": {"location": "San Francisco, CA", "unit": "celsius"}}
            ]},
            {"role": "user", "content": [
                {"type": "tool_result", "tool_use_id": "toolu_01A09q90qw90lq917835lq9", "content": "15 degrees"}
            ]}
        ]);
        assert_eq!(sent_body(&request)["messages"], documented);
    }

    #[test]
    fn parallel_tool_results_and_a_follow_up_share_one_user_turn_results_first() {
        let request = wire(json!({
            "model": "m",
            "messages": [
                {"role": "user", "content": "Weather and time in NYC?"},
                {"role": "assistant", "tool_calls": [
                    {"id": "toolu_a", "type": "function", "function": {"name": "get_weather", "arguments": "{\"location\":\"NYC\"}"}},
                    {"id": "toolu_b", "type": "function", "function": {"name": "get_time", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_a", "content": "12C"},
                {"role": "tool", "tool_call_id": "toolu_b", "content": [{"type": "text", "text": "09:00"}]},
                {"role": "user", "content": "Thanks, and tomorrow?"}
            ]
        }));
        let messages = sent_body(&request)["messages"].clone();
        assert_eq!(messages.as_array().unwrap().len(), 3);
        assert_eq!(
            messages[1]["content"][1]["input"],
            json!({}),
            "empty arguments are an empty input object"
        );
        assert_eq!(
            messages[2]["content"],
            json!([
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "12C"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": [{"type": "text", "text": "09:00"}]},
                {"type": "text", "text": "Thanks, and tomorrow?"}
            ])
        );
        let mut broken = request.clone();
        if let Message::Assistant { tool_calls, .. } = &mut broken.messages[1] {
            tool_calls[0].function.arguments = "{\"location\":".into();
        }
        assert_eq!(
            build_body(&broken, &Settings::default()).unwrap_err().kind,
            provider_sdk::ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn max_tokens_comes_from_the_request_then_the_options_then_the_model_then_4096() {
        let mut request = ChatRequest::new("m", vec![Message::user("hi")]);
        let model = Settings {
            model_max_output: Some(64_000),
            ..Settings::default()
        };
        let option = Settings {
            default_max_tokens: Some(2_000),
            ..model
        };
        assert_eq!(
            build_body(&request, &Settings::default()).unwrap()["max_tokens"],
            4096
        );
        assert_eq!(build_body(&request, &model).unwrap()["max_tokens"], 64_000);
        assert_eq!(build_body(&request, &option).unwrap()["max_tokens"], 2_000);
        request.max_tokens = Some(100);
        assert_eq!(build_body(&request, &option).unwrap()["max_tokens"], 100);
        request.max_completion_tokens = Some(200);
        assert_eq!(
            build_body(&request, &option).unwrap()["max_tokens"],
            200,
            "max_completion_tokens wins over the legacy max_tokens"
        );
    }

    #[test]
    fn sampling_stop_user_and_stream_map_to_their_anthropic_names() {
        let mut request = ChatRequest::new("m", vec![Message::user("hi")]);
        request.temperature = Some(0.2);
        request.top_p = Some(0.9);
        request.stop = Some(StopSequences::One("\n\nHuman:".into()));
        request.user = Some("user-42".into());
        request.stream = true;
        request.seed = Some(7);
        request.extra.insert("top_k".into(), json!(5));
        request
            .extra
            .insert("logit_bias".into(), json!({"50256": -100}));
        request
            .extra
            .insert("metadata".into(), json!({"team": "a"}));
        let body = sent_body(&request);
        assert_eq!(body["temperature"], 0.2);
        assert!(
            body.get("top_p").is_none(),
            "temperature or top_p, not both (recent models reject the pair)"
        );
        assert_eq!(body["top_k"], 5, "Anthropic's own fields pass through");
        assert_eq!(body["stop_sequences"], json!(["\n\nHuman:"]));
        assert_eq!(body["metadata"], json!({"user_id": "user-42"}));
        assert_eq!(body["stream"], true);
        for dropped in ["logit_bias", "seed", "user", "stop"] {
            assert!(
                body.get(dropped).is_none(),
                "`{dropped}` is not a Messages API field"
            );
        }
        request.temperature = None;
        assert_eq!(sent_body(&request)["top_p"], 0.9, "top_p alone is sent");
    }

    #[test]
    fn reasoning_effort_becomes_a_thinking_budget_below_max_tokens() {
        let mut request = ChatRequest::new("m", vec![Message::user("27 * 453?")]);
        request.reasoning_effort = Some("medium".into());
        request.temperature = Some(0.2);
        request.top_p = Some(0.97);
        request.max_tokens = Some(20_000);
        let body = sent_body(&request);
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 8192})
        );
        assert!(
            body.get("temperature").is_none(),
            "thinking is not compatible with a changed temperature"
        );
        assert_eq!(body["top_p"], 0.97, "top_p in [0.95, 1] is allowed");

        request.max_tokens = Some(4_000);
        request.reasoning_effort = Some("high".into());
        assert_eq!(sent_body(&request)["thinking"]["budget_tokens"], 3_999);
        request.max_tokens = Some(1_000);
        assert_eq!(
            build_body(&request, &Settings::default()).unwrap_err().kind,
            provider_sdk::ErrorKind::InvalidRequest,
            "no room for the minimum budget"
        );
        request.reasoning_effort = Some("none".into());
        assert!(sent_body(&request).get("thinking").is_none());
    }

    #[test]
    fn a_client_thinking_field_passes_through_and_beats_effort_and_the_default() {
        let default = json!({"type": "enabled", "budget_tokens": 2048});
        let settings = Settings {
            thinking: Some(&default),
            ..Settings::default()
        };
        let mut request = ChatRequest::new("m", vec![Message::user("hi")]);
        assert_eq!(
            build_body(&request, &settings).unwrap()["thinking"],
            default
        );
        request.reasoning_effort = Some("low".into());
        request.extra.insert(
            "thinking".into(),
            json!({"type": "enabled", "budget_tokens": 10000}),
        );
        request.max_tokens = Some(16_000);
        assert_eq!(
            build_body(&request, &settings).unwrap()["thinking"],
            json!({"type": "enabled", "budget_tokens": 10000})
        );
    }
}
