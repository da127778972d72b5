//! Building `generateContent` requests.

use provider_sdk::{
    serde_json, ChatRequest, Content, ContentPart, ErrorKind, FunctionDefinition, ImageUrl,
    Message, NamedFunction, Provider, ProviderConfig, ReasoningDetail, ResponseFormat,
    StopSequences, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use serde_json::{json, Value};

use super::{body, fixtures, gemini, http_request, parse, refused};
use crate::request::SKIP_SIGNATURE;
use crate::Gemini;

fn chat(messages: Vec<Message>) -> ChatRequest {
    ChatRequest::new("gemini-2.5-flash", messages)
}

fn user_parts(parts: Vec<ContentPart>) -> Message {
    Message::User {
        content: Content::Parts(parts),
        name: None,
    }
}

fn image(url: &str) -> ContentPart {
    ContentPart::ImageUrl {
        image_url: ImageUrl {
            url: url.to_owned(),
            detail: None,
        },
    }
}

fn assistant_calls(calls: Vec<ToolCall>, details: Vec<ReasoningDetail>) -> Message {
    Message::Assistant {
        content: None,
        reasoning_content: None,
        reasoning_details: details,
        tool_calls: calls,
        refusal: None,
        name: None,
    }
}

fn tool_result(id: &str, output: &str) -> Message {
    Message::Tool {
        content: Content::Text(output.to_owned()),
        tool_call_id: id.to_owned(),
    }
}

fn tool(name: &str, parameters: Value) -> Tool {
    Tool {
        kind: "function".to_owned(),
        function: FunctionDefinition {
            name: name.to_owned(),
            description: Some(format!("{name} things")),
            parameters: Some(parameters),
            strict: Some(true),
        },
    }
}

#[test]
fn a_chat_posts_to_generate_content_and_a_stream_to_stream_generate_content_with_sse() {
    let request = chat(vec![Message::user("hi")]);
    let http = http_request(&gemini(), &request);
    assert_eq!(http.method, "POST");
    assert_eq!(
        http.url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
    );
    assert!(http
        .headers
        .contains(&("content-type".to_owned(), "application/json".to_owned())));
    assert!(
        !http
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("x-goog-api-key")),
        "the host adds the key, never the plugin"
    );

    let streamed = ChatRequest {
        stream: true,
        ..request.clone()
    };
    assert_eq!(
        http_request(&gemini(), &streamed).url,
        "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    );
}

#[test]
fn the_entry_base_url_replaces_the_default_and_a_models_prefix_is_not_doubled() {
    let provider = Gemini::new(ProviderConfig {
        name: "gemini-eu".to_owned(),
        base_url: Some("http://127.0.0.1:9000/v1beta/".to_owned()),
        options: Value::Null,
        resolved_base_url: None,
    })
    .unwrap();
    let request = ChatRequest::new("models/gemini-2.0-flash", vec![Message::user("hi")]);
    assert_eq!(
        http_request(&provider, &request).url,
        "http://127.0.0.1:9000/v1beta/models/gemini-2.0-flash:generateContent"
    );
}

#[test]
fn a_model_id_cannot_change_the_url() {
    for model in [
        "",
        "gemini-2.5-flash:streamGenerateContent?alt=sse#",
        "../files/x",
        "a b",
    ] {
        let error = refused(&ChatRequest::new(model, vec![Message::user("hi")]));
        assert_eq!(error.kind, ErrorKind::InvalidRequest, "model `{model}`");
    }
}

#[test]
fn system_and_developer_messages_become_the_system_instruction() {
    let body = body(&chat(vec![
        Message::system("You are terse."),
        Message::user("Say hello."),
        Message::Developer {
            content: Content::Text("Answer in French.".to_owned()),
            name: None,
        },
    ]));
    assert_eq!(
        body["systemInstruction"],
        json!({"parts": [{"text": "You are terse."}, {"text": "Answer in French."}]})
    );
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "Say hello."}]}]),
        "system text never appears among the turns"
    );
}

#[test]
fn a_chat_without_system_message_has_no_system_instruction() {
    let body = body(&chat(vec![Message::user("hi")]));
    assert!(body.get("systemInstruction").is_none());
}

#[test]
fn user_and_assistant_become_user_and_model_and_consecutive_turns_merge() {
    let body = body(&chat(vec![
        Message::user("one"),
        Message::user("two"),
        Message::assistant("three"),
        Message::assistant("four"),
        Message::user("five"),
    ]));
    assert_eq!(
        body["contents"],
        json!([
            {"role": "user", "parts": [{"text": "one"}, {"text": "two"}]},
            {"role": "model", "parts": [{"text": "three"}, {"text": "four"}]},
            {"role": "user", "parts": [{"text": "five"}]}
        ])
    );
}

#[test]
fn empty_texts_are_left_out_and_a_chat_with_nothing_to_send_is_refused() {
    let body = body(&chat(vec![
        Message::user("hi"),
        Message::assistant(""),
        Message::user("again"),
    ]));
    assert_eq!(
        body["contents"],
        json!([{"role": "user", "parts": [{"text": "hi"}, {"text": "again"}]}])
    );
    let error = refused(&chat(vec![Message::system("only instructions")]));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}

#[test]
fn a_data_url_image_becomes_inline_data() {
    let body = body(&chat(vec![user_parts(vec![
        ContentPart::Text {
            text: "What is this?".to_owned(),
        },
        image("data:image/png;base64,iVBORw0KGgo="),
    ])]));
    assert_eq!(
        body["contents"][0]["parts"],
        json!([
            {"text": "What is this?"},
            {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
        ])
    );
    let with_parameter = super::body(&chat(vec![user_parts(vec![image(
        "data:image/webp;name=cat.webp;base64,UklGRg==",
    )])]));
    assert_eq!(
        with_parameter["contents"][0]["parts"][0]["inlineData"]["mimeType"],
        "image/webp"
    );
}

#[test]
fn an_https_image_of_known_type_becomes_file_data() {
    let url = "https://example.com/photos/Cat.JPG?size=large";
    let body = body(&chat(vec![user_parts(vec![image(url)])]));
    assert_eq!(
        body["contents"][0]["parts"][0],
        json!({"fileData": {"mimeType": "image/jpeg", "fileUri": url}})
    );
}

#[test]
fn images_whose_type_cannot_be_known_are_refused_with_the_reason() {
    let error = refused(&chat(vec![user_parts(vec![image(
        "https://example.com/render?id=42",
    )])]));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(
        error.message.contains("cannot tell the image type") && error.message.contains("data:"),
        "{}",
        error.message
    );
    for url in [
        "data:image/png,not-base64",
        "data:;base64,AAAA",
        "ftp://example.com/cat.png",
    ] {
        assert_eq!(
            refused(&chat(vec![user_parts(vec![image(url)])])).kind,
            ErrorKind::InvalidRequest,
            "{url}"
        );
    }
}

#[test]
fn an_image_in_a_system_message_is_refused() {
    let error = refused(&chat(vec![
        Message::System {
            content: Content::Parts(vec![image("data:image/png;base64,AAAA")]),
            name: None,
        },
        Message::user("hi"),
    ]));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
}

#[test]
fn tools_become_function_declarations_in_gemini_schema() {
    let parameters = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "type": "object",
        "additionalProperties": false,
        "properties": {
            "city": {"type": "string", "description": "City name", "format": "hostname"},
            "unit": {"type": ["string", "null"], "enum": ["celsius", "fahrenheit"]},
            "days": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 10},
            "level": {"type": "integer", "enum": [1, 2, 3]},
            "when": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
            "place": {"$ref": "#/$defs/place"},
            "mode": {"const": "fast"},
            "either": {"oneOf": [{"type": "string"}, {"type": "number"}]}
        },
        "required": ["city", "ghost"],
        "$defs": {
            "place": {
                "type": "object",
                "additionalProperties": false,
                "properties": {"lat": {"type": "number"}, "lon": {"type": "number"}},
                "required": ["lat", "lon"]
            }
        }
    });
    let request = ChatRequest {
        tools: vec![tool("get_weather", parameters)],
        ..chat(vec![Message::user("Weather in Paris?")])
    };
    let body = body(&request);
    assert_eq!(
        body["tools"],
        json!([{"functionDeclarations": [{
            "name": "get_weather",
            "description": "get_weather things",
            "parameters": {
                "type": "OBJECT",
                "properties": {
                    "city": {"type": "STRING", "description": "City name"},
                    "unit": {"type": "STRING", "nullable": true, "enum": ["celsius", "fahrenheit"]},
                    "days": {"type": "INTEGER", "format": "int32", "minimum": 1, "maximum": 10},
                    "level": {"type": "INTEGER", "description": "Allowed values: 1, 2, 3."},
                    "when": {"type": "STRING", "format": "date-time"},
                    "tags": {"type": "ARRAY", "items": {"type": "STRING"}, "maxItems": 5},
                    "place": {
                        "type": "OBJECT",
                        "properties": {"lat": {"type": "NUMBER"}, "lon": {"type": "NUMBER"}},
                        "required": ["lat", "lon"]
                    },
                    "mode": {"type": "STRING", "enum": ["fast"]},
                    "either": {"anyOf": [{"type": "STRING"}, {"type": "NUMBER"}]}
                },
                "required": ["city"]
            }
        }]}])
    );
}

#[test]
fn a_function_without_arguments_is_declared_without_parameters() {
    let request = ChatRequest {
        tools: vec![tool("now", json!({"type": "object", "properties": {}}))],
        ..chat(vec![Message::user("What time is it?")])
    };
    let declaration = &body(&request)["tools"][0]["functionDeclarations"][0];
    assert_eq!(declaration["name"], "now");
    assert!(declaration.get("parameters").is_none(), "{declaration}");
}

#[test]
fn a_recursive_schema_is_refused() {
    let request = ChatRequest {
        tools: vec![tool(
            "tree",
            json!({"type": "object", "properties": {"child": {"$ref": "#"}}}),
        )],
        ..chat(vec![Message::user("hi")])
    };
    let error = refused(&request);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("tree"), "{}", error.message);
}

#[test]
fn tool_choice_becomes_the_function_calling_mode() {
    let offered = |choice: ToolChoice| ChatRequest {
        tools: vec![tool(
            "get_weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )],
        tool_choice: Some(choice),
        ..chat(vec![Message::user("Weather in Paris?")])
    };
    let config = |choice| body(&offered(choice))["toolConfig"].clone();
    assert_eq!(
        config(ToolChoice::Mode(ToolChoiceMode::Auto)),
        json!({"functionCallingConfig": {"mode": "AUTO"}})
    );
    assert_eq!(
        config(ToolChoice::Mode(ToolChoiceMode::None)),
        json!({"functionCallingConfig": {"mode": "NONE"}})
    );
    assert_eq!(
        config(ToolChoice::Mode(ToolChoiceMode::Required)),
        json!({"functionCallingConfig": {"mode": "ANY"}})
    );
    let named = |name: &str| ToolChoice::Function {
        kind: "function".to_owned(),
        function: NamedFunction {
            name: name.to_owned(),
        },
    };
    assert_eq!(
        config(named("get_weather")),
        json!({"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["get_weather"]}})
    );
    assert_eq!(
        refused(&offered(named("launch_rockets"))).kind,
        ErrorKind::InvalidRequest,
        "a named function must be among the tools"
    );
    assert!(
        body(&chat(vec![Message::user("hi")]))
            .get("toolConfig")
            .is_none(),
        "no tool_choice, no toolConfig"
    );
}

/// The Gemini function-calling loop: the model calls, the client answers with the
/// call's id only, and Gemini gets the function's name back.
#[test]
fn a_multi_turn_function_call_recovers_the_function_name_for_the_response() {
    let request = ChatRequest {
        tools: vec![tool(
            "get_weather",
            json!({"type": "object", "properties": {"city": {"type": "string"}}}),
        )],
        ..chat(vec![
            Message::user("Weather in Paris and Lyon?"),
            assistant_calls(
                vec![
                    ToolCall::function("call_0", "get_weather", r#"{"city":"Paris"}"#),
                    ToolCall::function("call_1", "get_weather", r#"{"city":"Lyon"}"#),
                ],
                vec![],
            ),
            tool_result("call_0", r#"{"temperature": 21, "sky": "clear"}"#),
            tool_result("call_1", "rain, 14 degrees"),
            Message::assistant("Paris is clear at 21°C; Lyon has rain at 14°C."),
            Message::user("And Nice?"),
            assistant_calls(
                vec![ToolCall::function(
                    "call_0",
                    "get_forecast",
                    r#"{"city":"Nice"}"#,
                )],
                vec![],
            ),
            tool_result("call_0", "[18, 19, 22]"),
        ])
    };
    assert_eq!(
        body(&request)["contents"],
        json!([
            {"role": "user", "parts": [{"text": "Weather in Paris and Lyon?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_weather", "args": {"city": "Paris"}}},
                {"functionCall": {"name": "get_weather", "args": {"city": "Lyon"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"temperature": 21, "sky": "clear"}}},
                {"functionResponse": {"name": "get_weather", "response": {"result": "rain, 14 degrees"}}}
            ]},
            {"role": "model", "parts": [{"text": "Paris is clear at 21°C; Lyon has rain at 14°C."}]},
            {"role": "user", "parts": [{"text": "And Nice?"}]},
            {"role": "model", "parts": [
                {"functionCall": {"name": "get_forecast", "args": {"city": "Nice"}}}
            ]},
            {"role": "user", "parts": [
                {"functionResponse": {"name": "get_forecast", "response": {"result": [18, 19, 22]}}}
            ]}
        ]),
        "the reused id `call_0` names the closest earlier call"
    );
}

#[test]
fn a_tool_result_for_an_unknown_call_is_refused() {
    let error = refused(&chat(vec![
        Message::user("hi"),
        tool_result("call_9", "42"),
    ]));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert!(error.message.contains("call_9"), "{}", error.message);
}

#[test]
fn tool_call_arguments_that_are_not_a_json_object_are_refused() {
    let error = refused(&chat(vec![
        Message::user("hi"),
        assistant_calls(vec![ToolCall::function("c", "f", "{not json")], vec![]),
    ]));
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    let error = refused(&chat(vec![
        Message::user("hi"),
        assistant_calls(vec![ToolCall::function("c", "f", "[1, 2]")], vec![]),
    ]));
    assert!(error.message.contains("JSON object"), "{}", error.message);
}

/// A real Gemini 2.5 answer with a signed function call, parsed, sent back as the
/// assistant turn: the signature returns on the same `functionCall` part.
#[test]
fn a_thought_signature_goes_back_on_the_function_call_it_came_with() {
    let answer = parse(fixtures::THINKING_FUNCTION_CALL);
    let signature = answer.message.reasoning_details[0].data.clone().unwrap();
    let request = ChatRequest::new(
        "gemini-2.5-pro",
        vec![
            Message::user("How many days until New Year's Eve?"),
            assistant_calls(
                answer.message.tool_calls.clone(),
                answer.message.reasoning_details.clone(),
            ),
            tool_result(&answer.message.tool_calls[0].id, r#"{"now": "2025-07-28"}"#),
        ],
    );
    let body = body(&request);
    assert_eq!(
        body["contents"][1]["parts"][0],
        json!({"functionCall": {"name": "now", "args": {}}, "thoughtSignature": signature})
    );
    assert_eq!(
        body["contents"][2]["parts"][0]["functionResponse"]["name"],
        "now"
    );
}

#[test]
fn gemini_3_gets_the_documented_placeholder_when_a_call_lost_its_signature() {
    let calls = vec![
        ToolCall::function("call_0", "sum", r#"{"x":2,"y":1}"#),
        ToolCall::function("call_1", "multiply", r#"{"x":4,"y":3}"#),
    ];
    let messages = vec![
        Message::user("Compute."),
        assistant_calls(calls, vec![]),
        tool_result("call_0", "3"),
        tool_result("call_1", "12"),
    ];
    let gemini_3 = body(&ChatRequest::new("gemini-3-pro-preview", messages.clone()));
    let parts = &gemini_3["contents"][1]["parts"];
    assert_eq!(parts[0]["thoughtSignature"], SKIP_SIGNATURE);
    assert!(
        parts[1].get("thoughtSignature").is_none(),
        "only the first call of a step is signed"
    );
    let gemini_25 = body(&ChatRequest::new("gemini-2.5-flash", messages));
    assert!(gemini_25["contents"][1]["parts"][0]
        .get("thoughtSignature")
        .is_none());
}

#[test]
fn sampling_limits_stops_and_seed_go_to_the_generation_config() {
    let request = ChatRequest {
        temperature: Some(0.2),
        top_p: Some(0.9),
        max_tokens: Some(64),
        max_completion_tokens: Some(128),
        stop: Some(StopSequences::Many(vec![
            "\n\n".to_owned(),
            "END".to_owned(),
        ])),
        seed: Some(7),
        presence_penalty: Some(0.5),
        frequency_penalty: Some(-0.5),
        user: Some("someone".to_owned()),
        ..chat(vec![Message::user("hi")])
    };
    assert_eq!(
        body(&request)["generationConfig"],
        json!({
            "temperature": 0.2,
            "topP": 0.9,
            "maxOutputTokens": 128,
            "stopSequences": ["\n\n", "END"],
            "seed": 7,
            "presencePenalty": 0.5,
            "frequencyPenalty": -0.5
        }),
        "max_completion_tokens wins over the legacy max_tokens"
    );
    let legacy = ChatRequest {
        max_tokens: Some(64),
        stop: Some(StopSequences::One("END".to_owned())),
        ..chat(vec![Message::user("hi")])
    };
    assert_eq!(
        body(&legacy)["generationConfig"],
        json!({"maxOutputTokens": 64, "stopSequences": ["END"]})
    );
    assert!(
        body(&chat(vec![Message::user("hi")]))
            .get("generationConfig")
            .is_none(),
        "nothing asked, nothing sent"
    );
}

#[test]
fn response_format_asks_for_json_and_a_schema() {
    let json_object = ChatRequest {
        response_format: Some(ResponseFormat::JsonObject),
        ..chat(vec![Message::user("hi")])
    };
    assert_eq!(
        body(&json_object)["generationConfig"],
        json!({"responseMimeType": "application/json"})
    );
    let json_schema = ChatRequest {
        response_format: Some(ResponseFormat::JsonSchema {
            json_schema: json!({
                "name": "recipe",
                "strict": true,
                "schema": {
                    "type": "object",
                    "additionalProperties": false,
                    "properties": {"name": {"type": "string"}, "minutes": {"type": "integer"}},
                    "required": ["name", "minutes"]
                }
            }),
        }),
        ..chat(vec![Message::user("A recipe, please.")])
    };
    assert_eq!(
        body(&json_schema)["generationConfig"],
        json!({
            "responseMimeType": "application/json",
            "responseSchema": {
                "type": "OBJECT",
                "properties": {"name": {"type": "STRING"}, "minutes": {"type": "INTEGER"}},
                "required": ["name", "minutes"]
            }
        })
    );
}

#[test]
fn reasoning_effort_becomes_a_thinking_budget_or_level() {
    let thinking = |model: &str, effort: &str| {
        let request = ChatRequest {
            reasoning_effort: Some(effort.to_owned()),
            ..ChatRequest::new(model, vec![Message::user("hi")])
        };
        body(&request)["generationConfig"]["thinkingConfig"].clone()
    };
    assert_eq!(
        thinking("gemini-2.5-flash", "low"),
        json!({"thinkingBudget": 1024, "includeThoughts": true})
    );
    assert_eq!(
        thinking("gemini-2.5-flash", "high"),
        json!({"thinkingBudget": 24576, "includeThoughts": true})
    );
    assert_eq!(
        thinking("gemini-2.5-flash-lite", "none"),
        json!({"thinkingBudget": 0, "includeThoughts": false})
    );
    assert_eq!(
        thinking("gemini-2.5-pro", "none"),
        json!({"thinkingBudget": 128, "includeThoughts": false}),
        "2.5 Pro cannot turn thinking off"
    );
    assert_eq!(
        thinking("gemini-3-pro-preview", "medium"),
        json!({"thinkingLevel": "high", "includeThoughts": true})
    );
    assert_eq!(
        thinking("gemini-3-flash-preview", "minimal"),
        json!({"thinkingLevel": "low", "includeThoughts": true})
    );
    assert_eq!(
        thinking("gemini-flash-latest", "medium"),
        json!({"thinkingBudget": 8192, "includeThoughts": true})
    );
    assert_eq!(
        thinking("gemini-2.0-flash", "high"),
        Value::Null,
        "models that do not think get no thinkingConfig"
    );
    let unknown = ChatRequest {
        reasoning_effort: Some("extreme".to_owned()),
        ..chat(vec![Message::user("hi")])
    };
    assert_eq!(refused(&unknown).kind, ErrorKind::InvalidRequest);
}

#[test]
fn the_include_thoughts_option_asks_thinking_models_for_thought_summaries() {
    let provider = Gemini::new(ProviderConfig {
        options: json!({"include_thoughts": true}),
        ..ProviderConfig::default()
    })
    .unwrap();
    let config = |model: &str| {
        let http = http_request(
            &provider,
            &ChatRequest::new(model, vec![Message::user("hi")]),
        );
        serde_json::from_slice::<Value>(&http.body).unwrap()["generationConfig"].clone()
    };
    assert_eq!(
        config("gemini-2.5-flash"),
        json!({"thinkingConfig": {"includeThoughts": true}})
    );
    assert_eq!(config("gemini-2.0-flash"), Value::Null);
}

#[test]
fn gemini_native_fields_pass_through_and_openai_only_fields_do_not() {
    let mut request = ChatRequest {
        temperature: Some(1.0),
        ..chat(vec![Message::user("hi")])
    };
    let safety = json!([{"category": "HARM_CATEGORY_HARASSMENT", "threshold": "BLOCK_ONLY_HIGH"}]);
    request
        .extra
        .insert("safetySettings".to_owned(), safety.clone());
    request
        .extra
        .insert("cachedContent".to_owned(), json!("cachedContents/abc123"));
    request.extra.insert("top_k".to_owned(), json!(40));
    request.extra.insert(
        "generationConfig".to_owned(),
        json!({"candidateCount": 1, "temperature": 0.3}),
    );
    request
        .extra
        .insert("logit_bias".to_owned(), json!({"50256": -100}));
    let body = body(&request);
    assert_eq!(body["safetySettings"], safety);
    assert_eq!(body["cachedContent"], "cachedContents/abc123");
    assert_eq!(
        body["generationConfig"],
        json!({"temperature": 0.3, "topK": 40, "candidateCount": 1}),
        "a native generationConfig is merged over the translated one"
    );
    assert!(body.get("logit_bias").is_none());
}

#[test]
fn more_than_one_choice_is_refused() {
    let request = ChatRequest {
        n: Some(2),
        ..chat(vec![Message::user("hi")])
    };
    assert_eq!(refused(&request).kind, ErrorKind::InvalidRequest);
}

#[test]
fn the_host_sample_requests_all_build() {
    let provider = gemini();
    let model = crate::Gemini::manifest().models[0].id.clone();
    for request in [
        provider_sdk::samples::chat_request(&model),
        provider_sdk::samples::stream_request(&model),
        provider_sdk::samples::tool_request(&model),
    ] {
        let http = http_request(&provider, &request);
        let body: Value = serde_json::from_slice(&http.body).unwrap();
        assert!(body["contents"].as_array().is_some_and(|c| !c.is_empty()));
    }
}
