//! The mock provider through the host's dispatch path: every model, both modes, and
//! every error kind it can produce.

use e2e::Scratch;
use futures_util::StreamExt;
use provider_host::{pipeline::DispatchError, Host};
use provider_sdk::{samples, ChatRequest, ErrorKind, FinishReason, Message, StreamEvent, Usage};

fn host(scratch: &Scratch) -> Host {
    let config = scratch.config(serde_json::json!({
        "providers": [{"name": "mock", "library": e2e::mock_plugin()}],
        "models": {"fast": {"targets": ["mock/echo"]}},
        // These tests are about single answers and errors: no retries, no breakers.
        "retry": {"max_retries": 0},
        "circuit_breaker": {"enabled": false}
    }));
    Host::from_config_file(&config).unwrap()
}

async fn collect(host: &Host, request: ChatRequest) -> Vec<StreamEvent> {
    let stream = host.chat_stream(request).await.expect("stream starts");
    stream.map(|e| e.expect("no stream error")).collect().await
}

#[tokio::test]
async fn echo_answers_with_the_last_user_message_and_usage() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let request = ChatRequest::new(
        "mock/echo",
        vec![Message::system("one two three"), Message::user("four five")],
    );
    let done = host.chat(request).await.unwrap();
    assert_eq!(done.target.to_string(), "mock/echo");
    assert_eq!(done.response.message.content.as_deref(), Some("four five"));
    assert_eq!(done.response.finish_reason, FinishReason::Stop);
    assert_eq!(
        done.response.usage,
        Some(Usage {
            prompt_tokens: 5,
            completion_tokens: 2,
            ..Usage::default()
        })
    );
}

#[tokio::test]
async fn an_alias_routes_to_its_target() {
    let scratch = Scratch::new();
    let done = host(&scratch)
        .chat(ChatRequest::new("fast", vec![Message::user("via alias")]))
        .await
        .unwrap();
    assert_eq!(done.target.to_string(), "mock/echo");
    assert_eq!(done.response.message.content.as_deref(), Some("via alias"));
}

#[tokio::test]
async fn tool_calls_the_first_tool_in_both_modes() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let done = host.chat(samples::tool_request("mock/tool")).await.unwrap();
    let call = &done.response.message.tool_calls[0];
    assert_eq!(
        (
            call.function.name.as_str(),
            call.function.arguments.as_str()
        ),
        ("get_weather", r#"{"city":"Weather in Paris?"}"#)
    );
    assert_eq!(done.response.finish_reason, FinishReason::ToolCalls);

    let events = collect(
        &host,
        ChatRequest {
            stream: true,
            ..samples::tool_request("mock/tool")
        },
    )
    .await;
    let start = events.iter().find_map(|e| match e {
        StreamEvent::ToolCallStart { index, id, name } => Some((*index, id.clone(), name.clone())),
        _ => None,
    });
    assert_eq!(start, Some((0, call.id.clone(), "get_weather".to_owned())));
    let arguments: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ToolCallDelta { arguments, .. } => Some(arguments.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(arguments, call.function.arguments);
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            reason: FinishReason::ToolCalls
        })
    );
}

#[tokio::test]
async fn long_streams_many_small_chunks_with_usage() {
    let scratch = Scratch::new();
    let mut request = ChatRequest::new("mock/long", vec![Message::user("go")]);
    request.max_tokens = Some(300);
    let events = collect(&host(&scratch), request).await;
    let text: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text.len(), 300, "one chunk per word");
    assert_eq!(text[299], "word299");
    assert!(events.contains(&StreamEvent::Usage {
        usage: Usage {
            prompt_tokens: 1,
            completion_tokens: 300,
            ..Usage::default()
        }
    }));
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            reason: FinishReason::Stop
        })
    );
}

#[tokio::test]
async fn fail_produces_each_chosen_error_kind_in_both_modes() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    for kind in ErrorKind::ALL {
        for stream in [false, true] {
            let request = ChatRequest {
                stream,
                ..ChatRequest::new("mock/fail", vec![Message::user(kind.as_str())])
            };
            let error = if stream {
                host.chat_stream(request).await.err()
            } else {
                host.chat(request).await.err()
            };
            let error = error.unwrap_or_else(|| panic!("{kind} must fail"));
            assert_eq!(error.kind(), kind, "{error}");
            assert!(error.to_string().starts_with("mock/fail: "), "{error}");
            if kind == ErrorKind::RateLimited {
                let DispatchError::Provider { error, .. } = &error else {
                    panic!("{error}")
                };
                assert_eq!(error.retry_after_ms, Some(100));
            }
        }
    }
}

#[tokio::test]
async fn a_panic_inside_the_plugin_becomes_a_plugin_fault_and_the_host_serves_on() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    let error = host
        .chat(ChatRequest::new(
            "mock/fail",
            vec![Message::user("plugin_fault")],
        ))
        .await
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::PluginFault);
    assert!(error.to_string().contains("plugin panicked"), "{error}");
    let done = host
        .chat(ChatRequest::new("mock/echo", vec![Message::user("after")]))
        .await
        .unwrap();
    assert_eq!(done.response.message.content.as_deref(), Some("after"));
}

#[tokio::test]
async fn unknown_models_and_providers_are_model_not_found() {
    let scratch = Scratch::new();
    let host = host(&scratch);
    for model in ["gpt-4o", "nobody/echo"] {
        let error = host
            .chat(ChatRequest::new(model, vec![Message::user("x")]))
            .await
            .unwrap_err();
        assert_eq!(
            error,
            DispatchError::UnknownModel {
                model: model.to_owned()
            }
        );
    }
    let error = host
        .chat(ChatRequest::new("mock/nope", vec![Message::user("x")]))
        .await
        .unwrap_err();
    assert_eq!(
        error.kind(),
        ErrorKind::ModelNotFound,
        "the plugin says so: {error}"
    );
}
