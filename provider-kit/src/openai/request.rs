//! Canonical request → chat-completions HTTP request.

use provider_sdk::{ChatRequest, HttpRequest, Message, NativeRequest, ProviderError};
use serde_json::{json, Map, Value};

use super::preset::{EffortField, Settings, TokenLimit};

/// The chat-completions URL for `model`.
fn chat_url(settings: &Settings, model: &str) -> String {
    match &settings.azure {
        // learn.microsoft.com/azure/ai-services/openai/reference: POST
        // {endpoint}/openai/deployments/{deployment-id}/chat/completions?api-version=...
        Some(azure) => format!(
            "{}/openai/deployments/{}/chat/completions?api-version={}",
            settings.base_url,
            encode_component(model),
            encode_component(&azure.api_version)
        ),
        None => format!("{}/chat/completions", settings.base_url),
    }
}

/// How a chat-completions body from an OpenAI client goes upstream unchanged: the
/// same URL and headers as a translated request, and, for a stream from a server that
/// can report usage, `stream_options.include_usage` so the host can count the tokens.
pub fn native(settings: &Settings, model: &str, stream: bool) -> NativeRequest {
    let mut native = NativeRequest::post_json(chat_url(settings, model));
    if stream {
        native = native.header("accept", "text/event-stream");
        if settings.quirks.stream_usage {
            native = native.set("stream_options", json!({ "include_usage": true }));
        }
    }
    for (name, value) in &settings.headers {
        native = native.header(name.clone(), value.clone());
    }
    native
}

/// Builds the upstream request for `request`: URL, headers and JSON body.
pub fn build(settings: &Settings, request: &ChatRequest) -> Result<HttpRequest, ProviderError> {
    if request.model.trim().is_empty() {
        return Err(ProviderError::invalid_request("the request names no model"));
    }
    let url = chat_url(settings, &request.model);
    let body = serde_json::to_vec(&body(settings, request)?)
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the request: {e}")))?;
    let mut http = HttpRequest::post_json(url, body);
    if request.stream {
        http = http.header("accept", "text/event-stream");
    }
    for (name, value) in &settings.headers {
        http = http.header(name.clone(), value.clone());
    }
    Ok(http)
}

/// `GET {base_url}/models` (Azure: `{endpoint}/openai/models?api-version=...`): the
/// cheapest call that proves the server answers and takes the key.
pub fn list_models(settings: &Settings) -> HttpRequest {
    let url = match &settings.azure {
        Some(azure) => format!(
            "{}/openai/models?api-version={}",
            settings.base_url,
            encode_component(&azure.api_version)
        ),
        None => format!("{}/models", settings.base_url),
    };
    let mut http = HttpRequest {
        method: "GET".to_owned(),
        url,
        ..HttpRequest::default()
    };
    for (name, value) in &settings.headers {
        http = http.header(name.clone(), value.clone());
    }
    http
}

fn to_value<T: serde::Serialize>(value: &T) -> Result<Value, ProviderError> {
    serde_json::to_value(value)
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the request: {e}")))
}

/// The JSON body: every canonical field in its wire place, adjusted for the server's
/// quirks, then the client's unknown fields as they came.
pub fn body(settings: &Settings, request: &ChatRequest) -> Result<Value, ProviderError> {
    let quirks = &settings.quirks;
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    let messages = request
        .messages
        .iter()
        .map(|m| message(settings, m))
        .collect::<Result<Vec<_>, _>>()?;
    body.insert("messages".into(), Value::Array(messages));
    if !request.tools.is_empty() {
        body.insert("tools".into(), to_value(&request.tools)?);
    }
    if let Some(choice) = &request.tool_choice {
        body.insert("tool_choice".into(), to_value(choice)?);
    }
    if let Some(parallel) = request.parallel_tool_calls {
        body.insert("parallel_tool_calls".into(), json!(parallel));
    }
    let numbers = [
        ("temperature", request.temperature),
        ("top_p", request.top_p),
        ("presence_penalty", request.presence_penalty),
        ("frequency_penalty", request.frequency_penalty),
    ];
    for (name, value) in numbers {
        if let Some(value) = value {
            body.insert(name.into(), json!(value));
        }
    }
    match quirks.token_limit {
        TokenLimit::MaxCompletionTokens => {
            if let Some(n) = request.max_completion_tokens.or(request.max_tokens) {
                body.insert("max_completion_tokens".into(), json!(n));
            }
        }
        TokenLimit::MaxTokens => {
            if let Some(n) = request.max_tokens.or(request.max_completion_tokens) {
                body.insert("max_tokens".into(), json!(n));
            }
        }
        TokenLimit::AsSent => {
            if let Some(n) = request.max_tokens {
                body.insert("max_tokens".into(), json!(n));
            }
            if let Some(n) = request.max_completion_tokens {
                body.insert("max_completion_tokens".into(), json!(n));
            }
        }
    }
    if let Some(stop) = &request.stop {
        body.insert("stop".into(), to_value(stop)?);
    }
    if let Some(seed) = request.seed {
        body.insert(quirks.seed_field.into(), json!(seed));
    }
    if let Some(n) = request.n {
        body.insert("n".into(), json!(n));
    }
    if let Some(user) = request.user.as_ref().filter(|_| quirks.send_user) {
        body.insert("user".into(), json!(user));
    }
    if let Some(format) = &request.response_format {
        body.insert("response_format".into(), to_value(format)?);
    }
    if let Some(effort) = &request.reasoning_effort {
        match quirks.effort {
            EffortField::ReasoningEffort => {
                body.insert("reasoning_effort".into(), json!(effort));
            }
            EffortField::OpenRouterReasoning => {
                body.insert("reasoning".into(), json!({ "effort": effort }));
            }
        }
    }
    body.insert("stream".into(), json!(request.stream));
    // Usage is always asked for when the server can give it, whatever the client said:
    // the host decides whether the client sees it. A server that cannot is not sent the
    // field at all (some reject it).
    if request.stream && quirks.stream_usage {
        body.insert("stream_options".into(), json!({ "include_usage": true }));
    }
    for (name, value) in &request.extra {
        body.insert(name.clone(), value.clone());
    }
    Ok(Value::Object(body))
}

/// One message in the wire shape, adjusted for the server's quirks.
fn message(settings: &Settings, message: &Message) -> Result<Value, ProviderError> {
    let quirks = &settings.quirks;
    let mut value = to_value(message)?;
    let Some(object) = value.as_object_mut() else {
        return Err(ProviderError::plugin_fault(
            "a message did not encode as an object",
        ));
    };
    if matches!(message, Message::Developer { .. }) && !quirks.developer_role {
        object.insert("role".into(), json!("system"));
    }
    if !quirks.message_names {
        object.remove("name");
    }
    if !quirks.reasoning_history {
        object.remove("reasoning_content");
    }
    if !quirks.reasoning_details_history {
        object.remove("reasoning_details");
    }
    Ok(value)
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a path segment
/// or a query value.
pub(crate) fn encode_component(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::{
        Content, ContentPart, FunctionDefinition, ImageUrl, ProviderConfig, ResponseFormat,
        StopSequences, StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceMode,
    };

    fn settings(options: Value) -> Settings {
        settings_at(None, options)
    }

    fn settings_at(base_url: Option<&str>, options: Value) -> Settings {
        Settings::from_config(
            super::super::presets::ALL_PRESETS,
            &ProviderConfig {
                name: "entry".into(),
                base_url: base_url.map(str::to_owned),
                options,
                resolved_base_url: None,
            },
        )
        .unwrap()
    }

    fn header<'a>(http: &'a HttpRequest, name: &str) -> Option<&'a str> {
        http.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json_body(http: &HttpRequest) -> Value {
        serde_json::from_slice(&http.body).unwrap()
    }

    /// A request that sets every canonical field, as a client would send it.
    fn everything() -> ChatRequest {
        let wire = json!({
            "model": "gpt-4o",
            "messages": [
                {"role": "developer", "content": "Answer in French."},
                {"role": "system", "content": "Be terse.", "name": "ops"},
                {"role": "user", "name": "ann", "content": [
                    {"type": "text", "text": "What is in this image?"},
                    {"type": "image_url", "image_url": {"url": "https://example.org/cat.png", "detail": "low"}}
                ]},
                {"role": "assistant", "reasoning_content": "They want the weather.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "12°C"}
            ],
            "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}, "strict": true}}],
            "tool_choice": "required",
            "parallel_tool_calls": false,
            "temperature": 0.2,
            "top_p": 0.9,
            "presence_penalty": 0.1,
            "frequency_penalty": 0.3,
            "max_tokens": 256,
            "stop": ["\n\n"],
            "seed": 42,
            "n": 1,
            "user": "user-1234",
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "reasoning_effort": "high",
            "stream": true,
            "logit_bias": {"50256": -100},
            "metadata": {"team": "a"}
        });
        serde_json::from_value(wire).unwrap()
    }

    #[test]
    fn openai_gets_every_field_in_its_documented_place() {
        let http = build(&settings(Value::Null), &everything()).unwrap();
        assert_eq!(http.method, "POST");
        assert_eq!(http.url, "https://api.openai.com/v1/chat/completions");
        assert_eq!(header(&http, "content-type"), Some("application/json"));
        assert_eq!(header(&http, "accept"), Some("text/event-stream"));
        let body = json_body(&http);
        assert_eq!(body["model"], "gpt-4o");
        assert_eq!(
            body["messages"][0],
            json!({"role": "developer", "content": "Answer in French."})
        );
        assert_eq!(body["messages"][1]["name"], "ops");
        assert_eq!(
            body["messages"][2]["content"][1],
            json!({"type": "image_url", "image_url": {"url": "https://example.org/cat.png", "detail": "low"}})
        );
        assert_eq!(
            body["messages"][3],
            json!({"role": "assistant", "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]}),
            "OpenAI does not take reasoning back"
        );
        assert_eq!(
            body["messages"][4],
            json!({"role": "tool", "tool_call_id": "call_1", "content": "12°C"})
        );
        assert_eq!(body["tools"][0]["function"]["strict"], true);
        assert_eq!(body["tool_choice"], "required");
        assert_eq!(body["parallel_tool_calls"], false);
        assert_eq!(
            (
                &body["temperature"],
                &body["top_p"],
                &body["presence_penalty"],
                &body["frequency_penalty"]
            ),
            (&json!(0.2), &json!(0.9), &json!(0.1), &json!(0.3))
        );
        assert_eq!(
            body["max_completion_tokens"], 256,
            "max_tokens is deprecated on OpenAI"
        );
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["stop"], json!(["\n\n"]));
        assert_eq!(
            (&body["seed"], &body["n"], &body["user"]),
            (&json!(42), &json!(1), &json!("user-1234"))
        );
        assert_eq!(body["response_format"]["type"], "json_schema");
        assert_eq!(body["reasoning_effort"], "high");
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert_eq!(
            body["logit_bias"],
            json!({"50256": -100}),
            "unknown fields pass through"
        );
        assert_eq!(body["metadata"], json!({"team": "a"}));
    }

    #[test]
    fn usage_is_asked_for_even_when_the_client_did_not_and_never_when_not_streaming() {
        let mut request = provider_sdk::samples::chat_request("gpt-4o-mini");
        request.stream = true;
        request.stream_options = Some(StreamOptions {
            include_usage: false,
        });
        let body = body(&settings(Value::Null), &request).unwrap();
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let plain = super::body(
            &settings(Value::Null),
            &provider_sdk::samples::chat_request("gpt-4o-mini"),
        )
        .unwrap();
        assert_eq!(plain["stream"], false);
        assert!(plain.get("stream_options").is_none());
    }

    #[test]
    fn max_completion_tokens_becomes_max_tokens_for_servers_that_only_know_that() {
        let mut request = ChatRequest::new("m", vec![Message::user("hi")]);
        request.max_completion_tokens = Some(100);
        for preset in [
            "together",
            "deepseek",
            "mistral",
            "fireworks",
            "vllm",
            "ollama",
            "lmstudio",
            "llamacpp",
            "openrouter",
        ] {
            let body = body(&settings(json!({"preset": preset})), &request).unwrap();
            assert_eq!(body["max_tokens"], 100, "{preset}");
            assert!(body.get("max_completion_tokens").is_none(), "{preset}");
        }
        request.max_completion_tokens = None;
        request.max_tokens = Some(50);
        let groq = body(&settings(json!({"preset": "groq"})), &request).unwrap();
        assert_eq!(groq["max_completion_tokens"], 50);
    }

    #[test]
    fn stream_options_go_only_to_servers_that_accept_them() {
        let mut request = ChatRequest::new("m", vec![Message::user("hi")]);
        request.stream = true;
        for (preset, asked) in [
            ("openai", true),
            ("openrouter", false),
            ("groq", true),
            ("together", false),
            ("deepseek", true),
            ("mistral", false),
            ("fireworks", false),
            ("vllm", true),
            ("ollama", true),
            ("lmstudio", true),
            ("llamacpp", true),
        ] {
            let body = body(&settings(json!({"preset": preset})), &request).unwrap();
            assert_eq!(body.get("stream_options").is_some(), asked, "{preset}");
        }
    }

    #[test]
    fn mistral_gets_random_seed_and_neither_user_nor_names_nor_developer() {
        let body = body(&settings(json!({"preset": "mistral"})), &everything()).unwrap();
        assert_eq!(body["random_seed"], 42);
        assert!(body.get("seed").is_none() && body.get("user").is_none());
        assert_eq!(body["messages"][0]["role"], "system");
        assert!(body["messages"][1].get("name").is_none());
        assert!(body["messages"][2].get("name").is_none());
        assert_eq!(body["max_tokens"], 256);
    }

    #[test]
    fn deepseek_gets_the_reasoning_of_earlier_turns_back() {
        let body = body(&settings(json!({"preset": "deepseek"})), &everything()).unwrap();
        assert_eq!(
            body["messages"][3]["reasoning_content"],
            "They want the weather."
        );
        assert_eq!(body["messages"][0]["role"], "system");
        assert_eq!(body["reasoning_effort"], "high");
    }

    #[test]
    fn openrouter_gets_its_reasoning_object_and_attribution_headers() {
        let s = settings(
            json!({"preset": "openrouter", "referer": "https://example.org", "title": "Example"}),
        );
        let http = build(&s, &everything()).unwrap();
        assert_eq!(http.url, "https://openrouter.ai/api/v1/chat/completions");
        assert_eq!(header(&http, "HTTP-Referer"), Some("https://example.org"));
        assert_eq!(header(&http, "X-Title"), Some("Example"));
        let body = json_body(&http);
        assert_eq!(body["reasoning"], json!({"effort": "high"}));
        assert!(body.get("reasoning_effort").is_none());
        assert_eq!(body["messages"][0]["role"], "developer");
        let plain = build(&settings(json!({"preset": "openrouter"})), &everything()).unwrap();
        assert!(header(&plain, "HTTP-Referer").is_none() && header(&plain, "X-Title").is_none());
    }

    #[test]
    fn reasoning_blocks_go_back_only_to_openrouter() {
        let mut request = everything();
        if let Message::Assistant {
            reasoning_details, ..
        } = &mut request.messages[3]
        {
            reasoning_details.push(provider_sdk::ReasoningDetail {
                kind: "reasoning.text".into(),
                text: Some("They want the weather.".into()),
                signature: Some("sig".into()),
                ..Default::default()
            });
        }
        let openrouter = body(&settings(json!({"preset": "openrouter"})), &request).unwrap();
        assert_eq!(
            openrouter["messages"][3]["reasoning_details"][0]["signature"],
            "sig"
        );
        let openai = body(&settings(Value::Null), &request).unwrap();
        assert!(openai["messages"][3].get("reasoning_details").is_none());
    }

    #[test]
    fn a_client_field_overrides_what_the_plugin_would_send() {
        let mut request = everything();
        request
            .extra
            .insert("reasoning".into(), json!({"max_tokens": 2000}));
        let body = body(&settings(json!({"preset": "openrouter"})), &request).unwrap();
        assert_eq!(body["reasoning"], json!({"max_tokens": 2000}));
    }

    #[test]
    fn each_preset_posts_to_its_own_chat_completions_url() {
        for preset in super::super::presets::ALL_PRESETS {
            let mut options = json!({"preset": preset.name});
            if preset.requires_option_header {
                options[preset.option_headers[0].option] = json!("x");
            }
            let http = build(&settings(options), &everything()).unwrap();
            assert_eq!(http.url, format!("{}/chat/completions", preset.base_url));
        }
    }

    #[test]
    fn azure_addresses_the_deployment_with_the_api_version() {
        let s = settings_at(
            Some("https://my-res.openai.azure.com/"),
            json!({"azure": {"api_version": "2025-04-01-preview"}}),
        );
        let mut request = everything();
        request.model = "gpt-4o prod/eu".into();
        let http = build(&s, &request).unwrap();
        assert_eq!(
            http.url,
            "https://my-res.openai.azure.com/openai/deployments/gpt-4o%20prod%2Feu/chat/completions?api-version=2025-04-01-preview"
        );
        let body = json_body(&http);
        assert_eq!(
            body["max_tokens"], 256,
            "Azure gets the field the client chose"
        );
        assert!(body.get("max_completion_tokens").is_none());
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        let ga = settings_at(
            Some("https://my-res.openai.azure.com"),
            json!({"azure": {}}),
        );
        let body = json_body(&build(&ga, &request).unwrap());
        assert!(
            body.get("stream_options").is_none(),
            "2024-10-21 GA has no stream_options"
        );
    }

    #[test]
    fn a_request_without_a_model_is_refused() {
        let e = build(
            &settings(Value::Null),
            &ChatRequest::new(" ", vec![Message::user("hi")]),
        )
        .unwrap_err();
        assert_eq!(e.kind, provider_sdk::ErrorKind::InvalidRequest);
    }

    #[test]
    fn canonical_types_encode_in_openai_shape() {
        // Guards the places where the plugin relies on the SDK's serde shapes.
        let tool = Tool {
            kind: "function".into(),
            function: FunctionDefinition {
                name: "f".into(),
                description: None,
                parameters: None,
                strict: None,
            },
        };
        assert_eq!(
            to_value(&tool).unwrap(),
            json!({"type": "function", "function": {"name": "f"}})
        );
        assert_eq!(
            to_value(&ToolChoice::Mode(ToolChoiceMode::Auto)).unwrap(),
            json!("auto")
        );
        assert_eq!(
            to_value(&ResponseFormat::JsonObject).unwrap(),
            json!({"type": "json_object"})
        );
        assert_eq!(
            to_value(&StopSequences::One("x".into())).unwrap(),
            json!("x")
        );
        let part = ContentPart::ImageUrl {
            image_url: ImageUrl {
                url: "data:image/png;base64,AA".into(),
                detail: None,
            },
        };
        assert_eq!(
            to_value(&Content::Parts(vec![part])).unwrap(),
            json!([{"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}])
        );
        assert_eq!(
            to_value(&ToolCall::function("c", "f", "{}")).unwrap()["type"],
            "function"
        );
    }
}
