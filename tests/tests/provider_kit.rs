//! Providers built only on the author's kit (provider-kit), through the real loader and
//! the host, against fake upstreams on 127.0.0.1 that answer with each service's
//! documented bytes:
//! - DeepInfra, an OpenAI-compatible service written as one preset (providers/deepinfra);
//! - the gateway presets of the `openai` plugin, Portkey and a LiteLLM proxy;
//! - Cohere's v2 chat API (providers/cohere), with the examples of Cohere's API reference
//!   (providers/cohere/fixtures/README.md says where each comes from).

use e2e::{
    canned::OPENAI_CHAT_COMPLETION,
    client::{only_request, scripted_host, streamed_answer, whole_answer},
    fake::Reply,
    plugin,
};
use serde_json::{json, Value};
use std::time::Duration;

/// A chat-completions stream as OpenAI-compatible servers send it (OpenAI's reference
/// chunks): a role chunk, text, a finish chunk, `[DONE]`.
const STREAM: [&str; 4] = [
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\", \"system_fingerprint\": \"fp_44709d6fcb\", \"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\", \"system_fingerprint\": \"fp_44709d6fcb\", \"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hello\"},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-123\",\"object\":\"chat.completion.chunk\",\"created\":1694268190,\"model\":\"gpt-4o-mini\", \"system_fingerprint\": \"fp_44709d6fcb\", \"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}]}\n\n",
    "data: [DONE]\n\n",
];

fn chat(model: &str, stream: bool) -> Value {
    json!({
        "model": model,
        "stream": stream,
        "max_completion_tokens": 64,
        "messages": [{"role": "user", "content": "Say hello."}]
    })
}

/// An SSE body as the network delivers it: one piece per event.
fn events(body: &str) -> Vec<&str> {
    body.split_inclusive("\n\n").collect()
}

#[tokio::test]
async fn deepinfra_is_one_preset_served_through_the_real_loader() {
    let entry = json!({"name": "deepinfra", "library": plugin("deepinfra_provider"), "base_url": "/v1/openai"});
    let (_scratch, fake, server) = scripted_host(
        ("DEEPINFRA_API_KEY", "di-test-key"),
        entry,
        [Reply::json(OPENAI_CHAT_COMPLETION)],
    )
    .await;
    let answer = whole_answer(&server, &chat("deepinfra/openai/gpt-oss-120b", false)).await;
    assert_eq!(
        answer["choices"][0]["message"]["content"],
        "Hello! How can I assist you today?"
    );
    let sent = only_request(&fake);
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/v1/openai/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer di-test-key"));
    let body = sent.json();
    assert_eq!(body["model"], "openai/gpt-oss-120b");
    assert_eq!(
        (&body["max_tokens"], body.get("max_completion_tokens")),
        (&json!(64), None),
        "a compatible server gets the limit every server knows"
    );
    server.stop().await;

    let entry = json!({"name": "deepinfra", "library": plugin("deepinfra_provider"), "base_url": "/v1/openai"});
    let (_scratch, fake, server) = scripted_host(
        ("DEEPINFRA_API_KEY", "di-test-key"),
        entry,
        [Reply::sse(&STREAM, Duration::ZERO)],
    )
    .await;
    let answer = streamed_answer(&server, &chat("deepinfra/openai/gpt-oss-120b", true)).await;
    assert_eq!(
        (answer.text(), answer.finish_reason()),
        ("Hello".into(), "stop".into())
    );
    let body = only_request(&fake).json();
    assert!(
        body.get("stream_options").is_none(),
        "not asked of a server that may refuse it"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_portkey_preset_sends_its_key_and_provider_in_portkeys_headers() {
    let entry = json!({
        "name": "portkey", "library": plugin("openai_provider"), "base_url": "/v1",
        "options": {"preset": "portkey", "provider": "@openai-prod"}
    });
    let (_scratch, fake, server) = scripted_host(
        ("PORTKEY_API_KEY", "pk-test-key"),
        entry,
        [Reply::json(OPENAI_CHAT_COMPLETION)],
    )
    .await;
    whole_answer(&server, &chat("portkey/gpt-4o-mini", false)).await;
    let sent = only_request(&fake);
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(sent.header("x-portkey-api-key"), Some("pk-test-key"));
    assert_eq!(sent.header("x-portkey-provider"), Some("@openai-prod"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "the key goes in Portkey's header only"
    );
    server.stop().await;
}

#[tokio::test]
async fn the_litellm_preset_asks_for_stream_usage_and_carries_the_entrys_headers() {
    let entry = json!({
        "name": "litellm", "library": plugin("openai_provider"), "base_url": "/v1",
        "options": {"preset": "litellm", "headers": {"X-Team": "search"}}
    });
    let (_scratch, fake, server) = scripted_host(
        ("LITELLM_API_KEY", "sk-litellm"),
        entry,
        [Reply::sse(&STREAM, Duration::ZERO)],
    )
    .await;
    let answer = streamed_answer(&server, &chat("litellm/my-model", true)).await;
    assert_eq!(answer.text(), "Hello");
    let sent = only_request(&fake);
    assert_eq!(sent.header("authorization"), Some("Bearer sk-litellm"));
    assert_eq!(sent.header("x-team"), Some("search"));
    assert_eq!(
        sent.json()["stream_options"],
        json!({"include_usage": true})
    );
    server.stop().await;
}

#[tokio::test]
async fn cohere_answers_whole_from_the_references_example() {
    let entry = json!({"name": "cohere", "library": plugin("cohere_provider")});
    let (_scratch, fake, server) = scripted_host(
        ("CO_API_KEY", "co-test-key"),
        entry,
        [Reply::json(include_str!(
            "../../providers/cohere/fixtures/chat-default.json"
        ))],
    )
    .await;
    let answer = whole_answer(&server, &chat("cohere/command-a-03-2025", false)).await;
    let text = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        text.starts_with("LLMs stand for Large Language Models"),
        "{text}"
    );
    assert_eq!(answer["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        (
            &answer["usage"]["prompt_tokens"],
            &answer["usage"]["completion_tokens"]
        ),
        (&json!(5), &json!(418))
    );
    let sent = only_request(&fake);
    assert_eq!(sent.target, "/v2/chat");
    assert_eq!(sent.header("authorization"), Some("Bearer co-test-key"));
    assert_eq!(
        sent.json(),
        json!({
            "model": "command-a-03-2025",
            "messages": [{"role": "user", "content": "Say hello."}],
            "max_tokens": 64,
            "stream": false
        })
    );
    server.stop().await;
}

#[tokio::test]
async fn cohere_streams_the_references_tool_calls_to_an_openai_client() {
    let stream = include_str!("../../providers/cohere/fixtures/stream-tools.sse");
    let entry = json!({"name": "cohere", "library": plugin("cohere_provider")});
    let (_scratch, fake, server) = scripted_host(
        ("CO_API_KEY", "co-test-key"),
        entry,
        [Reply::sse(&events(stream), Duration::ZERO)],
    )
    .await;
    let mut request = chat("cohere/command-a-03-2025", true);
    request["tools"] = json!([{"type": "function", "function": {"name": "query_daily_sales_report", "parameters": {"type": "object"}}}]);
    let answer = streamed_answer(&server, &request).await;
    let calls: Vec<(String, String)> = answer
        .tool_calls()
        .into_iter()
        .map(|(_, _, name, arguments)| (name, arguments))
        .collect();
    assert_eq!(
        calls,
        [
            (
                "query_daily_sales_report".to_owned(),
                "{\"day\": \"2023-09-29\"}".to_owned()
            ),
            (
                "query_product_catalog".to_owned(),
                "{\"category\": \"Electronics\"}".to_owned()
            ),
        ]
    );
    assert_eq!(answer.finish_reason(), "tool_calls");
    assert!(answer
        .reasoning()
        .starts_with("I will use the query_daily_sales_report tool"));
    assert_eq!(
        only_request(&fake).header("accept"),
        Some("text/event-stream")
    );
    server.stop().await;
}
