//! The manifest (models, prices) and the canned upstream bytes the host checks the
//! plugin against. The bytes are OpenAI's, not this plugin's encoder's.

use provider_sdk::{
    AuthScheme, CannedError, Capabilities, Conformance, Defaults, ErrorKind, LocalResponse,
    Manifest, ModelInfo, Pricing,
};
use serde_json::json;

use crate::presets::OPENAI_BASE_URL;

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

fn json_headers() -> Vec<(String, String)> {
    vec![("content-type".to_owned(), "application/json".to_owned())]
}

/// The material for the host's conformance check.
pub fn conformance() -> Conformance {
    Conformance {
        options: json!({}),
        response: LocalResponse {
            status: 200,
            headers: json_headers(),
            chunks: vec![RESPONSE.as_bytes().to_vec()],
            interval_ms: 0,
        },
        stream: LocalResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
            chunks: stream_pieces(),
            interval_ms: 0,
        },
        error: Some(CannedError {
            response: LocalResponse {
                status: 429,
                headers: [
                    json_headers(),
                    vec![
                        ("retry-after".to_owned(), "3".to_owned()),
                        ("x-ratelimit-reset-tokens".to_owned(), "2.502s".to_owned()),
                    ],
                ]
                .concat(),
                chunks: vec![RATE_LIMITED.as_bytes().to_vec()],
                interval_ms: 0,
            },
            kind: ErrorKind::RateLimited,
        }),
    }
}

/// `(id, context window, max output, input, output, cached input)` in US dollars per
/// million tokens, standard tier.
///
/// Prices: OpenAI's pricing page (platform.openai.com/docs/pricing), as reproduced in
/// March–June 2026 by deploybase.ai/articles/openai-pricing and
/// aumiqx.com/ai-tools/openai-api-pricing-gpt4-costs-guide-2026 (input/output),
/// chatgptpricing-akr.pages.dev/api-pricing and llmcalc.app/models/o3-mini (cached
/// input). Context windows and output limits: OpenAI's model pages (GPT-4.1 family
/// 1,047,576 / 32,768; GPT-4o 128k / 16,384; o-series 200k / 100k; GPT-5 family
/// 400k / 128k). Prices change: check the pricing page before relying on cost figures.
const MODELS: [(&str, u32, u32, f64, f64, f64); 11] = [
    ("gpt-4o", 128_000, 16_384, 2.50, 10.00, 1.25),
    ("gpt-4o-mini", 128_000, 16_384, 0.15, 0.60, 0.075),
    ("gpt-4.1", 1_047_576, 32_768, 2.00, 8.00, 0.50),
    ("gpt-4.1-mini", 1_047_576, 32_768, 0.40, 1.60, 0.10),
    ("gpt-4.1-nano", 1_047_576, 32_768, 0.10, 0.40, 0.025),
    ("o3", 200_000, 100_000, 2.00, 8.00, 0.50),
    ("o4-mini", 200_000, 100_000, 1.10, 4.40, 0.275),
    ("o3-mini", 200_000, 100_000, 1.10, 4.40, 0.55),
    ("gpt-5", 400_000, 128_000, 1.25, 10.00, 0.125),
    ("gpt-5-mini", 400_000, 128_000, 0.25, 2.00, 0.025),
    ("gpt-5-nano", 400_000, 128_000, 0.05, 0.40, 0.005),
];

/// `(id, input limit, input price)` of OpenAI's embedding models, US dollars per
/// million tokens (platform.openai.com/docs/pricing, "Embeddings"; the input limit is
/// 8,192 tokens per input, platform.openai.com/docs/guides/embeddings).
const EMBEDDING_MODELS: [(&str, u32, f64); 3] = [
    ("text-embedding-3-small", 8_192, 0.02),
    ("text-embedding-3-large", 8_192, 0.13),
    ("text-embedding-ada-002", 8_192, 0.10),
];

/// The plugin's self-description.
pub fn manifest() -> Manifest {
    Manifest {
        name: "openai".to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        description: "OpenAI chat completions; Azure OpenAI and OpenAI-compatible servers via options (preset, azure)".to_owned(),
        capabilities: Capabilities {
            streaming: true,
            tools: true,
            vision: true,
            reasoning: true,
            embeddings: true,
        },
        defaults: Defaults {
            base_url: Some(OPENAI_BASE_URL.to_owned()),
            api_key_env: Some("OPENAI_API_KEY".to_owned()),
            auth: AuthScheme::Bearer,
        },
        models: MODELS
            .iter()
            .map(|&(id, context, output, input, out, cached)| ModelInfo {
                id: id.to_owned(),
                context_window: Some(context),
                max_output_tokens: Some(output),
                pricing: Some(Pricing {
                    input_per_mtok: input,
                    output_per_mtok: out,
                    cached_input_per_mtok: Some(cached),
                }),
            })
            .chain(EMBEDDING_MODELS.iter().map(|&(id, context, input)| ModelInfo {
                id: id.to_owned(),
                context_window: Some(context),
                max_output_tokens: None,
                pricing: Some(Pricing {
                    input_per_mtok: input,
                    output_per_mtok: 0.0,
                    cached_input_per_mtok: None,
                }),
            }))
            .collect(),
        ..Manifest::default()
    }
}
