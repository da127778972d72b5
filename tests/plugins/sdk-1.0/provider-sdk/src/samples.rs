//! Sample requests the host's conformance check sends through every plugin.

use serde_json::json;

use crate::{ChatRequest, FunctionDefinition, Message, StreamOptions, Tool};

/// A short plain chat, not streamed.
pub fn chat_request(model: &str) -> ChatRequest {
    ChatRequest {
        max_tokens: Some(64),
        temperature: Some(0.0),
        ..ChatRequest::new(
            model,
            vec![
                Message::system("You are a terse assistant."),
                Message::user("Say hello."),
            ],
        )
    }
}

/// The same chat, streamed, with usage requested.
pub fn stream_request(model: &str) -> ChatRequest {
    ChatRequest {
        stream: true,
        stream_options: Some(StreamOptions {
            include_usage: true,
        }),
        ..chat_request(model)
    }
}

/// A chat that offers one tool.
pub fn tool_request(model: &str) -> ChatRequest {
    ChatRequest {
        tools: vec![Tool {
            kind: "function".to_owned(),
            function: FunctionDefinition {
                name: "get_weather".to_owned(),
                description: Some("Current weather in a city".to_owned()),
                parameters: Some(json!({
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"]
                })),
                strict: None,
            },
        }],
        ..ChatRequest::new(model, vec![Message::user("Weather in Paris?")])
    }
}
