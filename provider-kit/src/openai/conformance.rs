//! The canned upstream bytes the host checks an OpenAI-compatible plugin against. The bytes are OpenAI's, not this plugin's encoder's.

use provider_sdk::{Conformance, ErrorKind};
use serde_json::json;

use crate::fixtures::{error, json as json_answer, sse, with_header};

/// The default example of "Create chat completion" in OpenAI's API reference
/// (platform.openai.com/docs/api-reference/chat/create, "Default" response), byte for byte.
pub const RESPONSE: &str = r#"{
  "id": "chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT",
  "object": "chat.completion",
  "created": 1741569952,
  "model": "gpt-4.1-2025-04-14",
  "choices": [
    {
      "index": 0,
      "message": {
        "role": "assistant",
        "content": "Hello! How can I assist you today?",
        "refusal": null,
        "annotations": []
      },
      "logprobs": null,
      "finish_reason": "stop"
    }
  ],
  "usage": {
    "prompt_tokens": 19,
    "completion_tokens": 10,
    "total_tokens": 29,
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
  "service_tier": "default"
}"#;

/// The "Streaming" example of "Create chat completion" in OpenAI's API reference: the
/// chunks it shows, byte for byte (the reference elides the middle ones with `....`),
/// each sent as the data-only server-sent event the reference describes ("terminated
/// by a `data: [DONE]` message").
pub const STREAM_CHUNKS: [&str; 3] = [
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-123","object":"chat.completion.chunk","created":1694268190,"model":"gpt-4o-mini", "system_fingerprint": "fp_44709d6fcb", "choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
];

/// The usage chunk OpenAI sends before `[DONE]` when `stream_options.include_usage` is
/// set (`choices: []`, the reference's "usage" field of the chunk object). The reference
/// shows none, so this is one OpenAI's API sent, captured in langchain-ai/langchain
/// (libs/partners/openai/tests/unit_tests/chat_models/test_base.py, OPENAI_STREAM_DATA).
pub const USAGE_CHUNK: &str = r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[],"usage":{"prompt_tokens":14,"completion_tokens":3,"total_tokens":17}}"#;

/// A 429 as OpenAI sends it: the fields of a real one (quoted in openai/codex#88),
/// pretty-printed as OpenAI prints error bodies, with a `retry-after` header.
pub const RATE_LIMITED: &str = "{\n    \"error\": {\n        \"message\": \"Rate limit reached for gpt-4o in organization org-KllXuNW4YzQAfv9Nxc0CGSVl on tokens per min (TPM): Limit 10000, Used 6630, Requested 3787. Please try again in 2.502s. Visit https://platform.openai.com/account/rate-limits to learn more.\",\n        \"type\": \"tokens\",\n        \"param\": null,\n        \"code\": \"rate_limit_exceeded\"\n    }\n}\n";

/// The streamed body as SSE events, one piece per event.
pub fn stream_pieces() -> Vec<Vec<u8>> {
    STREAM_CHUNKS
        .iter()
        .chain([&USAGE_CHUNK])
        .map(|chunk| format!("data: {chunk}\n\n"))
        .chain(["data: [DONE]\n\n".to_owned()])
        .map(String::into_bytes)
        .collect()
}

/// The material for the host's conformance check: OpenAI's own bytes, so every
/// OpenAI-compatible plugin is checked against the real protocol, not its own encoder.
pub fn conformance() -> Conformance {
    let mut stream = sse(&[]);
    stream.chunks = stream_pieces();
    Conformance {
        options: json!({}),
        response: json_answer(200, RESPONSE),
        stream,
        error: Some(error(
            with_header(
                with_header(json_answer(429, RATE_LIMITED), "retry-after", "3"),
                "x-ratelimit-reset-tokens",
                "2.502s",
            ),
            ErrorKind::RateLimited,
        )),
    }
}
