//! The OpenAI provider through the host, over HTTP: an OpenAI client speaks to the host,
//! the host speaks to a fake upstream that answers with OpenAI's own bytes (SSE framing
//! included) and records what it received.
//!
//! Canned upstream bytes, each with its source:
//! - the API reference of "Create chat completion" (platform.openai.com/docs/api-reference/
//!   chat/create), "Default" example response, byte for byte ([`OPENAI_CHAT_COMPLETION`]);
//! - a real `include_usage` stream of gpt-4o captured in langchain-ai/langchain
//!   (libs/partners/openai/tests/unit_tests/chat_models/test_base.py, `OPENAI_STREAM_DATA`);
//! - real gpt-4.1 tool-call answers, whole and streamed, recorded in coder/aibridge
//!   (fixtures/openai/chatcompletions/single_builtin_tool.txtar);
//! - a real gpt-4-0125-preview stream with two parallel tool calls, recorded in
//!   discourse/discourse-ai (spec/lib/completions/endpoints/open_ai_spec.rb, "properly
//!   handles multiple tool calls");
//! - error bodies OpenAI sent, as quoted in public bug reports (named at each one);
//! - Azure OpenAI's own example of the GA API (Azure/azure-rest-api-specs,
//!   specification/cognitiveservices/data-plane/AzureOpenAI/inference/stable/2024-10-21/
//!   examples/chat_completions.json, the `200` body).
//!
//! Two bodies are the API reference's example edited, and say so where they are built: its
//! `finish_reason` set to the other documented values, and its `usage` replaced by the
//! one OpenAI's prompt-caching guide shows.
//!
//! An OpenAI client to OpenAI's own API is passed through unchanged by default; these
//! tests are about the plugin's translation (what every client of another protocol, and
//! every quirky OpenAI-compatible server, gets), so their entry sets `passthrough: false`.
//! The passthrough itself is tested at the end.

use e2e::{
    canned::OPENAI_CHAT_COMPLETION,
    client::{
        self, error_type_and_code, only_request, scripted_host, send_chat, start_host_in_front_of,
        streamed_answer, whole_answer, with_fields,
    },
    fake::{FakeUpstream, Reply},
    plugin, Scratch, Server,
};
use serde_json::{json, Value};
use std::time::Duration;

/// A gpt-4o stream with `stream_options.include_usage`, as OpenAI sent it (langchain-ai/
/// langchain, `OPENAI_STREAM_DATA`): `"usage":null` on every chunk, then a `choices: []`
/// chunk with the figures, then `[DONE]`.
const USAGE_STREAM: [&str; 7] = [
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"我是\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"助手\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"。\"},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"stop\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M\",\"object\":\"chat.completion.chunk\",\"created\":1721631035,\"model\":\"gpt-4o-2024-05-13\",\"system_fingerprint\":\"fp_18cc0f1fa0\",\"choices\":[],\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":3,\"total_tokens\":17}}\n\n",
    "data: [DONE]\n\n",
];

/// The request coder/aibridge recorded with its gpt-4.1 tool-call answers (its `-- request
/// --` section): one `read_file` tool.
fn read_file_tool() -> Value {
    json!([{
        "type": "function",
        "function": {
            "name": "read_file",
            "description": "Read the contents of a file at the given path.",
            "parameters": {
                "properties": {"path": {"type": "string"}},
                "required": ["path"],
                "type": "object"
            }
        }
    }])
}

/// gpt-4.1's whole answer calling `read_file` (coder/aibridge, `-- non-streaming --`).
const TOOL_CALL_COMPLETION: &str = r#"{
  "id": "chatcmpl-BwkyFElDIr1egmFyfQ9z4vPBto7m2",
  "object": "chat.completion",
  "created": 1753343279,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": null,
        "tool_calls": [
          {
            "id": "call_KjzAbhiZC6nk81tQzL7pwlpc",
            "type": "function",
            "function": {
              "name": "read_file",
              "arguments": "{\"path\":\"README.md\"}"
            }
          }
        ],
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "tool_calls"
    }
  ],
  "usage": {
    "prompt_tokens": 60,
    "completion_tokens": 15,
    "total_tokens": 75,
    "prompt_tokens_details": {
      "cached_tokens": 0,
      "audio_tokens": 0
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "audio_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  },
  "service_tier": "default",
  "system_fingerprint": "fp_b3f1157249"
}"#;

/// gpt-4.1's streamed answer calling `read_file` (coder/aibridge, `-- streaming --`):
/// the call's id and name once, its arguments in pieces, then the usage chunk.
const TOOL_CALL_STREAM: [&str; 10] = [
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_HjeqP7YeRkoNj0de9e3U4X4B\",\"type\":\"function\",\"function\":{\"name\":\"read_file\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"path\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"README\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\".md\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-BwkwXxA0yAyLKZelloERJWtxKor9z\",\"object\":\"chat.completion.chunk\",\"created\":1753343173,\"model\":\"gpt-4.1-2025-04-14\",\"service_tier\":\"default\",\"system_fingerprint\":\"fp_b3f1157249\",\"choices\":[],\"usage\":{\"prompt_tokens\":60,\"completion_tokens\":15,\"total_tokens\":75,\"prompt_tokens_details\":{\"cached_tokens\":0,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
];

/// gpt-4-0125-preview calling `search` twice in one turn (discourse/discourse-ai): the
/// second call opens with `index: 1` once the first one's arguments are complete.
const PARALLEL_TOOL_CALLS_STREAM: [&str; 19] = [
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"call_3Gyr3HylFJwfrtKrL6NaIit1\",\"type\":\"function\",\"function\":{\"name\":\"search\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"se\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"arch_\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"query\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\": \\\"D\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"iscou\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"rse AI\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\" bot\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"call_H7YkbgYurHpyJqzwUN4bghwN\",\"type\":\"function\",\"function\":{\"name\":\"search\",\"arguments\":\"\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{\\\"qu\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"ery\\\":\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\" \\\"Disc\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"ours\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"e AI \"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"bot2\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"chatcmpl-8xjcr5ZOGZ9v8BDYCx0iwe57lJAGk\",\"object\":\"chat.completion.chunk\",\"created\":1709247429,\"model\":\"gpt-4-0125-preview\",\"system_fingerprint\":\"fp_91aa3742b1\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}]}\n\n",
    "data: [DONE]\n\n",
];

/// The API reference's example with its `finish_reason` replaced by another value the
/// reference documents for `choices[].finish_reason` ("`length` if the maximum number of
/// tokens specified in the request was reached, `content_filter` if content was omitted
/// due to a flag from our content filters").
fn completion_finishing_with(reason: &str) -> String {
    let replaced = OPENAI_CHAT_COMPLETION.replace(
        "\"finish_reason\": \"stop\"",
        &format!("\"finish_reason\": \"{reason}\""),
    );
    assert_ne!(replaced, OPENAI_CHAT_COMPLETION, "the example was edited");
    replaced
}

/// The API reference's example with the `usage` object of OpenAI's prompt-caching guide
/// (platform.openai.com/docs/guides/prompt-caching, "Requests using Prompt Caching have a
/// `cached_tokens` value within the `usage.prompt_tokens_details` field").
fn completion_with_cached_prompt() -> String {
    let usage_at = OPENAI_CHAT_COMPLETION.find("\"usage\"").unwrap();
    format!(
        "{}{}",
        &OPENAI_CHAT_COMPLETION[..usage_at],
        r#""usage": {
    "prompt_tokens": 2006,
    "completion_tokens": 300,
    "total_tokens": 2306,
    "prompt_tokens_details": {
      "cached_tokens": 1920
    },
    "completion_tokens_details": {
      "reasoning_tokens": 0,
      "accepted_prediction_tokens": 0,
      "rejected_prediction_tokens": 0
    }
  }
}"#
    )
}

/// The fields of an `openai` entry over the openai plugin, OpenAI's API under `/v1` of the
/// fake; `fields` add to them or replace them.
fn openai_entry(fields: Value) -> Value {
    let openai = json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1",
                        "passthrough": false});
    with_fields(openai, fields)
}

/// A fake upstream with `replies` queued, and a host with an `openai` entry in front.
async fn openai(key_env: &str, replies: Vec<Reply>) -> (Scratch, FakeUpstream, Server) {
    scripted_host((key_env, "sk-test"), openai_entry(json!({})), replies).await
}

#[tokio::test]
async fn a_chat_is_sent_to_chat_completions_with_the_bearer_key_and_answered_as_a_chat_completion()
{
    let (_scratch, fake, server) = openai(
        "E2E_OPENAI_KEY_PLAIN",
        vec![Reply::json(OPENAI_CHAT_COMPLETION)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4.1",
        "messages": [
            {"role": "developer", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Hello!"}
        ],
        "max_tokens": 100
    });
    let response = send_chat(&server, &request).await;
    assert_eq!(response.headers()["x-provider"], "openai");
    assert_eq!(response.headers()["x-model"], "gpt-4.1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
    assert_eq!(
        body["choices"][0]["message"],
        json!({"role": "assistant", "content": "Hello! How can I assist you today?", "refusal": null})
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // 19 prompt + 10 completion = 29, as the upstream reported.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 19, "completion_tokens": 10, "total_tokens": 29,
               "prompt_tokens_details": {"cached_tokens": 0},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );

    let sent = only_request(&fake);
    assert_eq!(
        (sent.method.as_str(), sent.target.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(sent.header("authorization"), Some("Bearer sk-test"));
    assert_eq!(sent.header("content-type"), Some("application/json"));
    let body = sent.json();
    assert_eq!(body["model"], "gpt-4.1", "the routing prefix is stripped");
    assert_eq!(body["messages"], request["messages"]);
    assert_eq!(
        body["max_completion_tokens"], 100,
        "OpenAI deprecated max_tokens in favour of max_completion_tokens"
    );
    assert!(body.get("max_tokens").is_none(), "{body}");
    assert_eq!(body["stream"], false);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_chat_relays_the_text_as_chunks_and_ends_with_the_usage_chunk_and_done() {
    let (_scratch, fake, server) = openai(
        "E2E_OPENAI_KEY_STREAM",
        vec![Reply::sse(&USAGE_STREAM, Duration::ZERO)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4o",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "你是谁？"}]
    });
    let streamed = streamed_answer(&server, &request).await;
    assert_eq!(
        streamed.chunks[0]["choices"][0]["delta"]["role"],
        "assistant"
    );
    assert_eq!(streamed.text(), "我是助手。");
    assert_eq!(streamed.finish_reason(), "stop");
    assert_eq!(
        streamed.usage(),
        Some(
            &json!({"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17,
                     "prompt_tokens_details": {"cached_tokens": 0},
                     "completion_tokens_details": {"reasoning_tokens": 0}})
        )
    );

    let sent = only_request(&fake);
    assert_eq!(sent.target, "/v1/chat/completions");
    assert_eq!(sent.header("accept"), Some("text/event-stream"));
    let body = sent.json();
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_chat_without_include_usage_sends_no_usage_chunk() {
    let (_scratch, fake, server) = openai(
        "E2E_OPENAI_KEY_NO_USAGE",
        vec![Reply::sse(&USAGE_STREAM, Duration::ZERO)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4o",
        "stream": true,
        "messages": [{"role": "user", "content": "你是谁？"}]
    });
    let streamed = streamed_answer(&server, &request).await;
    assert_eq!(streamed.text(), "我是助手。");
    assert!(streamed.usage().is_none());
    assert!(
        streamed.chunks.iter().all(|c| c.get("usage").is_none()),
        "no usage field at all when the client did not ask"
    );
    assert_eq!(
        only_request(&fake).json()["stream_options"],
        json!({"include_usage": true}),
        "the host still asks OpenAI for usage, for its own accounting"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_tool_call_comes_back_whole_with_its_id_name_and_json_arguments() {
    let (_scratch, fake, server) = openai(
        "E2E_OPENAI_KEY_TOOL",
        vec![Reply::json(TOOL_CALL_COMPLETION)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4.1",
        "parallel_tool_calls": true,
        "tools": read_file_tool(),
        "messages": [{"role": "user", "content": "how large is the README.md file in my current path"}]
    });
    let body = whole_answer(&server, &request).await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(
        message["tool_calls"],
        json!([{"id": "call_KjzAbhiZC6nk81tQzL7pwlpc", "type": "function",
                "function": {"name": "read_file", "arguments": "{\"path\":\"README.md\"}"}}])
    );
    assert_eq!(body["choices"][0]["finish_reason"], "tool_calls");
    assert_eq!(body["usage"]["total_tokens"], 75);

    let sent = only_request(&fake).json();
    assert_eq!(sent["tools"], read_file_tool(), "tools go upstream as sent");
    assert_eq!(sent["parallel_tool_calls"], true);
    server.stop().await;
}

#[tokio::test]
async fn a_streamed_tool_call_arrives_as_index_zero_deltas_that_join_into_the_arguments() {
    let (_scratch, _fake, server) = openai(
        "E2E_OPENAI_KEY_TOOL_STREAM",
        vec![Reply::sse(&TOOL_CALL_STREAM, Duration::ZERO)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4.1",
        "stream": true,
        "stream_options": {"include_usage": true},
        "tools": read_file_tool(),
        "messages": [{"role": "user", "content": "how large is the README.md file in my current path"}]
    });
    let streamed = streamed_answer(&server, &request).await;
    assert_eq!(
        streamed.tool_calls(),
        vec![(
            0,
            "call_HjeqP7YeRkoNj0de9e3U4X4B".to_owned(),
            "read_file".to_owned(),
            r#"{"path":"README.md"}"#.to_owned()
        )]
    );
    assert_eq!(streamed.text(), "");
    assert_eq!(streamed.finish_reason(), "tool_calls");
    // 60 + 15 = 75.
    assert_eq!(
        streamed.usage().map(|u| (
            u["prompt_tokens"].clone(),
            u["completion_tokens"].clone(),
            u["total_tokens"].clone()
        )),
        Some((json!(60), json!(15), json!(75)))
    );
    server.stop().await;
}

#[tokio::test]
async fn parallel_streamed_tool_calls_keep_their_indexes_zero_and_one() {
    let (_scratch, _fake, server) = openai(
        "E2E_OPENAI_KEY_PARALLEL",
        vec![Reply::sse(&PARALLEL_TOOL_CALLS_STREAM, Duration::ZERO)],
    )
    .await;
    let request = json!({
        "model": "openai/gpt-4-0125-preview",
        "stream": true,
        "tools": [{"type": "function", "function": {"name": "search", "parameters": {"type": "object"}}}],
        "messages": [{"role": "user", "content": "search for Discourse AI bot, twice"}]
    });
    let streamed = streamed_answer(&server, &request).await;
    let calls = streamed.tool_calls();
    assert_eq!(
        calls,
        vec![
            (
                0,
                "call_3Gyr3HylFJwfrtKrL6NaIit1".to_owned(),
                "search".to_owned(),
                r#"{"search_query": "Discourse AI bot"}"#.to_owned()
            ),
            (
                1,
                "call_H7YkbgYurHpyJqzwUN4bghwN".to_owned(),
                "search".to_owned(),
                r#"{"query": "Discourse AI bot2"}"#.to_owned()
            ),
        ]
    );
    for (_, _, _, arguments) in &calls {
        serde_json::from_str::<Value>(arguments).expect("each call's arguments are JSON");
    }
    assert_eq!(streamed.finish_reason(), "tool_calls");
    server.stop().await;
}

#[tokio::test]
async fn the_second_turn_of_a_tool_loop_carries_the_assistant_call_and_the_tool_result() {
    let (_scratch, fake, server) = openai(
        "E2E_OPENAI_KEY_LOOP",
        vec![
            Reply::json(TOOL_CALL_COMPLETION),
            Reply::json(OPENAI_CHAT_COMPLETION),
        ],
    )
    .await;
    let question =
        json!({"role": "user", "content": "how large is the README.md file in my current path"});
    let first = whole_answer(
        &server,
        &json!({"model": "openai/gpt-4.1", "tools": read_file_tool(), "messages": [question]}),
    )
    .await;
    // The client echoes the assistant message it got, then answers the call.
    let assistant = first["choices"][0]["message"].clone();
    let result = json!({"role": "tool", "tool_call_id": "call_KjzAbhiZC6nk81tQzL7pwlpc", "content": "README.md: 1024 bytes"});
    let second = whole_answer(
        &server,
        &json!({"model": "openai/gpt-4.1", "tools": read_file_tool(),
                "messages": [question, assistant, result]}),
    )
    .await;
    assert_eq!(
        second["choices"][0]["message"]["content"],
        "Hello! How can I assist you today?"
    );

    let received = fake.received();
    assert_eq!(received.len(), 2);
    let messages = &received[1].json()["messages"];
    assert_eq!(messages.as_array().unwrap().len(), 3, "{messages}");
    assert_eq!(messages[0], question);
    assert_eq!(
        messages[1],
        json!({"role": "assistant", "tool_calls": [{"id": "call_KjzAbhiZC6nk81tQzL7pwlpc", "type": "function",
               "function": {"name": "read_file", "arguments": "{\"path\":\"README.md\"}"}}]})
    );
    assert_eq!(messages[2], result);
    server.stop().await;
}

#[tokio::test]
async fn a_length_stop_is_finish_reason_length() {
    let (_scratch, _fake, server) = openai(
        "E2E_OPENAI_KEY_LENGTH",
        vec![Reply::json(&completion_finishing_with("length"))],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "openai/gpt-4.1", "max_tokens": 10, "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "length");
    server.stop().await;
}

#[tokio::test]
async fn a_content_filter_stop_is_finish_reason_content_filter() {
    let (_scratch, _fake, server) = openai(
        "E2E_OPENAI_KEY_FILTER",
        vec![Reply::json(&completion_finishing_with("content_filter"))],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(body["choices"][0]["finish_reason"], "content_filter");
    server.stop().await;
}

#[tokio::test]
async fn cached_prompt_tokens_are_reported_in_prompt_tokens_details() {
    let (_scratch, _fake, server) = openai(
        "E2E_OPENAI_KEY_CACHED",
        vec![Reply::json(&completion_with_cached_prompt())],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    // 2006 prompt tokens, 1920 of them from the cache, + 300 completion = 2306.
    assert_eq!(
        body["usage"],
        json!({"prompt_tokens": 2006, "completion_tokens": 300, "total_tokens": 2306,
               "prompt_tokens_details": {"cached_tokens": 1920},
               "completion_tokens_details": {"reasoning_tokens": 0}})
    );
    server.stop().await;
}

/// What the client gets when the upstream answers every attempt with `reply`: the status
/// and the error body. One request per host: the host may retry, and counts failures.
async fn error_for(key_env: &str, reply: Reply, stream: bool) -> (u16, Value) {
    let request = json!({"model": "openai/gpt-4o", "stream": stream, "messages": [{"role": "user", "content": "Hello!"}]});
    client::error_for(
        (key_env, "sk-test"),
        openai_entry(json!({})),
        json!({}),
        reply,
        &request,
    )
    .await
}

/// A 401 as OpenAI sends it for a wrong key (chatanywhere/GPT_API_free#62,
/// continuedev/continue#11409).
const INVALID_API_KEY: &str = r#"{"error":{"message":"Incorrect API key provided: sk-VKMIs***************************************wjh3. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#;

/// A 429 rate limit (fields as OpenAI sent them, quoted in openai/codex#88), pretty-printed
/// the way OpenAI prints error bodies.
const RATE_LIMITED: &str = "{\n    \"error\": {\n        \"message\": \"Rate limit reached for gpt-4o in organization org-KllXuNW4YzQAfv9Nxc0CGSVl on tokens per min (TPM): Limit 10000, Used 6630, Requested 3787. Please try again in 2.502s. Visit https://platform.openai.com/account/rate-limits to learn more.\",\n        \"type\": \"tokens\",\n        \"param\": null,\n        \"code\": \"rate_limit_exceeded\"\n    }\n}\n";

/// A 429 for spent credit (mattvr/ShellGPT#23).
const INSUFFICIENT_QUOTA: &str = "{\n    \"error\": {\n        \"message\": \"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.\",\n        \"type\": \"insufficient_quota\",\n        \"param\": null,\n        \"code\": \"insufficient_quota\"\n    }\n}\n";

/// A 400 for a prompt over the context window (himanushi/chat-code#17).
const CONTEXT_LENGTH_EXCEEDED: &str = "{\n  \"error\": {\n    \"message\": \"This model's maximum context length is 4097 tokens. However, your messages resulted in 4363 tokens. Please reduce the length of the messages.\",\n    \"type\": \"invalid_request_error\",\n    \"param\": \"messages\",\n    \"code\": \"context_length_exceeded\"\n  }\n}";

/// A 404 for a model the key cannot use (rd-1-2022/ai-openai-helloworld#9).
const MODEL_NOT_FOUND: &str = "{\n    \"error\": {\n        \"message\": \"The model `gpt-4o` does not exist or you do not have access to it.\",\n        \"type\": \"invalid_request_error\",\n        \"param\": null,\n        \"code\": \"model_not_found\"\n    }\n}\n";

/// 500 and 503 with the messages of OpenAI's error-code guide
/// (platform.openai.com/docs/guides/error-codes).
const SERVER_ERROR: &str = r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#;
const OVERLOADED: &str = r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#;

#[tokio::test]
async fn an_invalid_api_key_is_a_502_upstream_authentication_failure_not_the_clients_401() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E401",
        Reply::status_json(401, INVALID_API_KEY),
        false,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_authentication_failed")
    );
}

#[tokio::test]
async fn a_rate_limit_with_retry_after_is_a_429_rate_limit_exceeded() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E429",
        Reply::status_json(429, RATE_LIMITED).with_header("retry-after", "1"),
        false,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("rate_limit_error", "rate_limit_exceeded")
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Rate limit reached for gpt-4o"),
        "the upstream's explanation reaches the client: {body}"
    );
}

#[tokio::test]
async fn a_rate_limit_on_a_streamed_request_is_a_plain_429_before_any_chunk() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E429_STREAM",
        Reply::status_json(429, RATE_LIMITED).with_header("retry-after", "1"),
        true,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("rate_limit_error", "rate_limit_exceeded")
    );
}

#[tokio::test]
async fn insufficient_quota_is_a_429_insufficient_quota_not_a_rate_limit() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_QUOTA",
        Reply::status_json(429, INSUFFICIENT_QUOTA),
        false,
    )
    .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("insufficient_quota", "insufficient_quota")
    );
}

#[tokio::test]
async fn context_length_exceeded_is_a_400_context_length_exceeded() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_CONTEXT",
        Reply::status_json(400, CONTEXT_LENGTH_EXCEEDED),
        false,
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "context_length_exceeded")
    );
}

#[tokio::test]
async fn an_unknown_model_upstream_is_a_404_model_not_found() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E404",
        Reply::status_json(404, MODEL_NOT_FOUND),
        false,
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("invalid_request_error", "model_not_found")
    );
}

#[tokio::test]
async fn a_500_server_error_is_a_502_upstream_error() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E500",
        Reply::status_json(500, SERVER_ERROR),
        false,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_error")
    );
}

#[tokio::test]
async fn a_503_overloaded_is_a_502_upstream_error() {
    let (status, body) = error_for(
        "E2E_OPENAI_KEY_E503",
        Reply::status_json(503, OVERLOADED).with_header("retry-after", "1"),
        false,
    )
    .await;
    assert_eq!(status, 502, "{body}");
    assert_eq!(
        error_type_and_code(&body),
        ("upstream_error", "upstream_error")
    );
}

/// The `200` body of Azure's own example for the GA API version 2024-10-21.
const AZURE_COMPLETION: &str = r#"{
        "id": "chatcmpl-7R1nGnsXO8n4oi9UPz2f3UHdgAYMn",
        "created": 1686676106,
        "choices": [
          {
            "index": 0,
            "finish_reason": "stop",
            "message": {
              "role": "assistant",
              "content": "Ahoy matey! So ye be wantin' to care for a fine squawkin' parrot, eh? Well, shiver me timbers, let ol' Cap'n Assistant share some wisdom with ye! Here be the steps to keepin' yer parrot happy 'n healthy:\n\n1. Secure a sturdy cage: Yer parrot be needin' a comfortable place to lay anchor! Be sure ye get a sturdy cage, at least double the size of the bird's wingspan, with enough space to spread their wings, yarrrr!\n\n2. Perches 'n toys: Aye, parrots need perches of different sizes, shapes, 'n textures to keep their feet healthy. Also, a few toys be helpin' to keep them entertained 'n their minds stimulated, arrrh!\n\n3. Proper grub: Feed yer feathered friend a balanced diet of high-quality pellets, fruits, 'n veggies to keep 'em strong 'n healthy. Give 'em fresh water every day, or ye’ll have a scurvy bird on yer hands!\n\n4. Cleanliness: Swab their cage deck! Clean their cage on a regular basis: fresh water 'n food daily, the floor every couple of days, 'n a thorough scrubbing ev'ry few weeks, so the bird be livin' in a tidy haven, arrhh!\n\n5. Socialize 'n train: Parrots be a sociable lot, arrr! Exercise 'n interact with 'em daily to create a bond 'n maintain their mental 'n physical health. Train 'em with positive reinforcement, treat 'em kindly, yarrr!\n\n6. Proper rest: Yer parrot be needin' ’bout 10-12 hours o' sleep each night. Cover their cage 'n let them slumber in a dim, quiet quarter for a proper night's rest, ye scallywag!\n\n7. Keep a weather eye open for illness: Birds be hidin' their ailments, arrr! Be watchful for signs of sickness, such as lethargy, loss of appetite, puffin' up, or change in droppings, and make haste to a vet if need be.\n\n8. Provide fresh air 'n avoid toxins: Parrots be sensitive to draft and pollutants. Keep yer quarters well ventilated, but no drafts, arrr! Be mindful of toxins like Teflon fumes, candles, or air fresheners.\n\nSo there ye have it, me hearty! With proper care 'n commitment, yer parrot will be squawkin' \"Yo-ho-ho\" for many years to come! Good luck, sailor, and may the wind be at yer back!"
            }
          }
        ],
        "usage": {
          "completion_tokens": 557,
          "prompt_tokens": 33,
          "total_tokens": 590
        }
      }"#;

#[tokio::test]
async fn an_azure_entry_posts_to_the_deployment_with_the_api_version_and_an_api_key_header() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([Reply::json(AZURE_COMPLETION)]);
    let azure = openai_entry(
        json!({"name": "azure", "base_url": fake.url, "options": {"azure": {"api_version": "2024-10-21"}}}),
    );
    let key = ("E2E_OPENAI_KEY_AZURE", "azure-key-0123");
    let server = start_host_in_front_of(&scratch, &fake, key, azure, json!({})).await;
    // The messages of Azure's example request.
    let messages = json!([
        {"role": "system", "content": "you are a helpful assistant that talks like a pirate"},
        {"role": "user", "content": "can you tell me how to care for a parrot?"}
    ]);
    let body = whole_answer(
        &server,
        &json!({"model": "azure/pirate-gpt-4o", "messages": messages}),
    )
    .await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.starts_with("Ahoy matey!"), "{content}");
    assert!(
        content.ends_with("may the wind be at yer back!"),
        "{content}"
    );
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    // 33 + 557 = 590.
    assert_eq!(
        (
            &body["usage"]["prompt_tokens"],
            &body["usage"]["completion_tokens"],
            &body["usage"]["total_tokens"]
        ),
        (&json!(33), &json!(557), &json!(590))
    );

    let sent = only_request(&fake);
    assert_eq!(
        sent.target,
        "/openai/deployments/pirate-gpt-4o/chat/completions?api-version=2024-10-21"
    );
    assert_eq!(sent.header("api-key"), Some("azure-key-0123"));
    assert_eq!(
        sent.header("authorization"),
        None,
        "Azure keys go in api-key, not a bearer header"
    );
    assert_eq!(sent.json()["messages"], messages);
    server.stop().await;
}

#[tokio::test]
async fn an_openrouter_entry_sends_its_attribution_headers_and_the_bearer_key() {
    let openrouter = openai_entry(json!({
        "name": "openrouter",
        "base_url": "/api/v1",
        "options": {"preset": "openrouter", "referer": "https://example.org/app", "title": "Example App"}
    }));
    // OpenRouter answers in OpenAI's chat-completion shape.
    let (_scratch, fake, server) = scripted_host(
        ("E2E_OPENAI_KEY_OPENROUTER", "sk-or-v1-test"),
        openrouter,
        [Reply::json(OPENAI_CHAT_COMPLETION)],
    )
    .await;
    let body = whole_answer(
        &server,
        &json!({"model": "openrouter/openai/gpt-4.1", "messages": [{"role": "user", "content": "Hello!"}]}),
    )
    .await;
    assert_eq!(
        body["choices"][0]["message"]["content"],
        "Hello! How can I assist you today?"
    );

    let sent = only_request(&fake);
    assert_eq!(sent.target, "/api/v1/chat/completions");
    assert_eq!(sent.header("authorization"), Some("Bearer sk-or-v1-test"));
    assert_eq!(sent.header("http-referer"), Some("https://example.org/app"));
    assert_eq!(sent.header("x-title"), Some("Example App"));
    assert_eq!(
        sent.json()["model"],
        "openai/gpt-4.1",
        "only the entry's prefix is stripped from the model"
    );
    server.stop().await;
}

/// An entry in front of `fake` with passthrough on (the default) and no key.
async fn passthrough_host(fake: &FakeUpstream, scratch: &Scratch) -> Server {
    let entry = client::entry_in_front_of(
        fake,
        "",
        json!({"name": "openai", "library": plugin("openai_provider"), "base_url": "/v1"}),
    );
    let config = scratch.config(json!({"providers": [entry], "retry": {"max_retries": 0}}));
    Server::start(&config).await
}

#[tokio::test]
async fn an_openai_client_to_openai_is_passed_through_byte_for_byte() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::json(OPENAI_CHAT_COMPLETION));
    let server = passthrough_host(&fake, &scratch).await;
    let request = json!({
        "model": "openai/gpt-4.1",
        "messages": [{"role": "developer", "content": "You are a helpful assistant."},
                     {"role": "user", "content": "Hello!"}],
        "max_tokens": 100,
        "a_field_openai_added_last_week": {"x": 1}
    });
    let response = send_chat(&server, &request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-provider"], "openai");
    let body = response.bytes().await.unwrap();
    assert_eq!(
        body.as_ref(),
        OPENAI_CHAT_COMPLETION.as_bytes(),
        "the upstream's bytes"
    );
    let sent = only_request(&fake).json();
    let mut expected = request.clone();
    expected["model"] = json!("gpt-4.1");
    assert_eq!(
        sent, expected,
        "the client's body, model replaced: max_tokens and the developer role stay as sent"
    );
    server.stop().await;
}

/// DeepSeek's answer (api-docs.deepseek.com, "Create Chat Completion"): OpenAI's shape
/// with cache counters of its own beside the usage OpenAI defines.
const DEEPSEEK_COMPLETION: &str = r#"{"id":"930c60df-bf64-41c9-a88e-3ec75f81e00e","object":"chat.completion","created":1705651092,"model":"deepseek-chat","choices":[{"index":0,"message":{"role":"assistant","content":"Hello! How can I help you today?"},"logprobs":null,"finish_reason":"stop"}],"usage":{"prompt_tokens":16,"completion_tokens":10,"total_tokens":26,"prompt_cache_hit_tokens":3,"prompt_cache_miss_tokens":13}}"#;

#[tokio::test]
async fn a_passed_through_answer_is_counted_whether_the_host_or_the_plugin_reads_it() {
    // The host reads a plain answer's usage itself (no plugin call); an answer with usage
    // fields of the provider's own goes to the plugin, which knows them; a 200 that
    // carries an error is the plugin's to classify, and is not relayed as an answer.
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.script([
        Reply::json(&completion_with_cached_prompt()),
        Reply::json(DEEPSEEK_COMPLETION),
        Reply::json(r#"{"error":{"message":"The server is overloaded","type":"server_error"}}"#),
    ]);
    let server = passthrough_host(&fake, &scratch).await;
    let request =
        json!({"model": "openai/gpt-4.1", "messages": [{"role": "user", "content": "Hello!"}]});
    for expected in [
        completion_with_cached_prompt(),
        DEEPSEEK_COMPLETION.to_owned(),
    ] {
        let response = send_chat(&server, &request).await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.text().await.unwrap(), expected, "relayed as sent");
    }
    let failed = send_chat(&server, &request).await;
    assert!(!failed.status().is_success(), "{}", failed.status());
    let error: Value = failed.json().await.unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("overloaded"),
        "{error}"
    );

    let usage = e2e::client::usage(&server).await;
    let totals = &usage["totals"];
    assert_eq!(totals["prompt_tokens"], 2006 + 16, "{usage}");
    assert_eq!(totals["completion_tokens"], 300 + 10, "{usage}");
    assert_eq!(
        totals["cached_prompt_tokens"],
        1920 + 3,
        "OpenAI's cached tokens read by the host, DeepSeek's by the plugin: {usage}"
    );
    server.stop().await;
}

#[tokio::test]
async fn a_passed_through_stream_asks_for_usage_relays_the_chunks_and_counts_the_tokens() {
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    fake.always(Reply::sse(&USAGE_STREAM, Duration::from_millis(1)));
    let server = passthrough_host(&fake, &scratch).await;
    let asked = json!({
        "model": "openai/gpt-4o",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hello!"}]
    });
    let response = send_chat(&server, &asked).await;
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert_eq!(
        body,
        USAGE_STREAM.concat(),
        "chunk for chunk what OpenAI sent"
    );

    // A client that did not ask for usage: the host still asks (it counts the tokens),
    // and keeps the usage-only chunk from the client; every other byte is OpenAI's.
    let mut unasked = asked.clone();
    unasked.as_object_mut().unwrap().remove("stream_options");
    let body = send_chat(&server, &unasked).await.text().await.unwrap();
    let usage_chunk = USAGE_STREAM[USAGE_STREAM.len() - 2];
    assert!(usage_chunk.contains("\"choices\":[]"), "{usage_chunk}");
    assert_eq!(body, USAGE_STREAM.concat().replace(usage_chunk, ""));
    let received = fake.received();
    assert_eq!(received.len(), 2);
    for request in &received {
        assert_eq!(
            request.json()["stream_options"],
            json!({"include_usage": true}),
            "the host asks for the usage it counts"
        );
    }

    let usage = e2e::client::usage(&server).await;
    let figures: Value =
        serde_json::from_str(usage_chunk.trim().trim_start_matches("data: ")).unwrap();
    for field in ["prompt_tokens", "completion_tokens"] {
        let each = figures["usage"][field].as_u64().unwrap();
        assert_eq!(usage["totals"][field], 2 * each, "{field}: {usage}");
    }
    server.stop().await;
}

/// [`USAGE_STREAM`] with DeepSeek's usage in place of OpenAI's (api-docs.deepseek.com,
/// "Create Chat Completion": cache counters of its own beside OpenAI's figures).
fn deepseek_stream() -> Vec<String> {
    let mut pieces: Vec<String> = USAGE_STREAM.iter().map(|p| p.to_string()).collect();
    pieces[5] = pieces[5].replace(
        "\"usage\":{\"prompt_tokens\":14,\"completion_tokens\":3,\"total_tokens\":17}",
        "\"usage\":{\"prompt_tokens\":16,\"completion_tokens\":10,\"total_tokens\":26,\"prompt_cache_hit_tokens\":3,\"prompt_cache_miss_tokens\":13}",
    );
    assert_ne!(pieces[5], USAGE_STREAM[5]);
    pieces
}

#[tokio::test]
async fn a_passed_through_stream_is_read_by_the_host_and_by_the_plugin_where_the_host_cannot() {
    // The host reads a plain passed-through stream itself; the plugin's decoder takes over
    // at what the host does not read (DeepSeek's cache counters, an error mid-stream, a
    // stream cut before its end) and past the bytes the host keeps for such a hand-over.
    // Either way the client gets OpenAI's bytes and the tokens are counted.
    let (scratch, fake) = (Scratch::new(), FakeUpstream::start().await);
    let deepseek = deepseek_stream();
    let text = &USAGE_STREAM[..4];
    let overloaded =
        "data: {\"error\":{\"message\":\"The server is overloaded\",\"type\":\"server_error\"}}\n\n";
    let broken: Vec<&str> = text.iter().copied().chain([overloaded]).collect();
    // ~190 KiB of text chunks: longer than the host reads itself (128 KiB).
    let long: Vec<&str> = std::iter::repeat_n(USAGE_STREAM[1], 1000)
        .chain(USAGE_STREAM[4..].iter().copied())
        .collect();
    let deepseek_pieces: Vec<&str> = deepseek.iter().map(String::as_str).collect();
    fake.script([
        Reply::sse(&USAGE_STREAM, Duration::ZERO),
        Reply::sse(&deepseek_pieces, Duration::ZERO),
        Reply::sse(&broken, Duration::ZERO),
        Reply::sse(text, Duration::ZERO),
        Reply::sse(&long, Duration::from_micros(10)),
    ]);
    let server = passthrough_host(&fake, &scratch).await;
    let request = json!({
        "model": "openai/gpt-4o",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "Hello!"}]
    });
    let body = |response: reqwest::Response| async move {
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    };
    let plain = body(send_chat(&server, &request).await).await;
    assert_eq!(plain, USAGE_STREAM.concat());
    let read_by_plugin = body(send_chat(&server, &request).await).await;
    assert_eq!(
        read_by_plugin,
        deepseek.concat(),
        "relayed as DeepSeek sent it"
    );

    for (pieces, says) in [(&broken, "overloaded"), (&text.to_vec(), "ended early")] {
        let failed = body(send_chat(&server, &request).await).await;
        assert!(
            failed.starts_with(&pieces.concat()),
            "what arrived is relayed first: {failed}"
        );
        let events = e2e::sse_data(&failed);
        assert_eq!(events.last().map(String::as_str), Some("[DONE]"));
        let error: Value = serde_json::from_str(&events[events.len() - 2]).unwrap();
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(says), "the plugin's verdict: {error}");
    }

    let long_body = body(send_chat(&server, &request).await).await;
    assert_eq!(long_body, long.concat());

    let usage = e2e::client::usage(&server).await;
    let totals = &usage["totals"];
    assert_eq!(totals["calls"], 5, "{usage}");
    assert_eq!(totals["errors"], 2, "the error and the cut stream: {usage}");
    assert_eq!(totals["prompt_tokens"], 14 + 16 + 14, "{usage}");
    assert_eq!(totals["completion_tokens"], 3 + 10 + 3, "{usage}");
    assert_eq!(
        totals["cached_prompt_tokens"], 3,
        "DeepSeek's cache hits, read by the plugin: {usage}"
    );
    server.stop().await;
}
