//! The OpenAI-compatible servers this workspace knows, as [`Preset`] values: each
//! default base URL and each quirk says what it is based on. Where a server's
//! documentation is silent the choice is the one that cannot break a request (an
//! ignored field rather than a rejected one), and the comment says so.

use provider_sdk::Capabilities;

use super::preset::{Auth, EffortField, OptionHeader, Preset, Quirks, TokenLimit};
use crate::manifest::Model;

/// OpenAI's own API.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";

/// OpenAI's chat models, standard tier, US dollars per million tokens.
///
/// Prices: OpenAI's pricing page (platform.openai.com/docs/pricing), as reproduced in
/// March–June 2026 by deploybase.ai/articles/openai-pricing and
/// aumiqx.com/ai-tools/openai-api-pricing-gpt4-costs-guide-2026 (input/output),
/// chatgptpricing-akr.pages.dev/api-pricing and llmcalc.app/models/o3-mini (cached
/// input). Context windows and output limits: OpenAI's model pages (GPT-4.1 family
/// 1,047,576 / 32,768; GPT-4o 128k / 16,384; o-series 200k / 100k; GPT-5 family
/// 400k / 128k). Prices change: check the pricing page before relying on cost figures.
/// Embedding models: platform.openai.com/docs/pricing, "Embeddings"; the input limit
/// is 8,192 tokens per input (platform.openai.com/docs/guides/embeddings).
pub const OPENAI_MODELS: &[Model] = &[
    Model::new("gpt-4o", 128_000)
        .max_output(16_384)
        .price(2.50, 10.00)
        .cached(1.25),
    Model::new("gpt-4o-mini", 128_000)
        .max_output(16_384)
        .price(0.15, 0.60)
        .cached(0.075),
    Model::new("gpt-4.1", 1_047_576)
        .max_output(32_768)
        .price(2.00, 8.00)
        .cached(0.50),
    Model::new("gpt-4.1-mini", 1_047_576)
        .max_output(32_768)
        .price(0.40, 1.60)
        .cached(0.10),
    Model::new("gpt-4.1-nano", 1_047_576)
        .max_output(32_768)
        .price(0.10, 0.40)
        .cached(0.025),
    Model::new("o3", 200_000)
        .max_output(100_000)
        .price(2.00, 8.00)
        .cached(0.50),
    Model::new("o4-mini", 200_000)
        .max_output(100_000)
        .price(1.10, 4.40)
        .cached(0.275),
    Model::new("o3-mini", 200_000)
        .max_output(100_000)
        .price(1.10, 4.40)
        .cached(0.55),
    Model::new("gpt-5", 400_000)
        .max_output(128_000)
        .price(1.25, 10.00)
        .cached(0.125),
    Model::new("gpt-5-mini", 400_000)
        .max_output(128_000)
        .price(0.25, 2.00)
        .cached(0.025),
    Model::new("gpt-5-nano", 400_000)
        .max_output(128_000)
        .price(0.05, 0.40)
        .cached(0.005),
    Model::new("text-embedding-3-small", 8_192).price(0.02, 0.0),
    Model::new("text-embedding-3-large", 8_192).price(0.13, 0.0),
    Model::new("text-embedding-ada-002", 8_192).price(0.10, 0.0),
];

/// Every capability; embeddings on.
const ALL: Capabilities = Capabilities {
    streaming: true,
    tools: true,
    vision: true,
    reasoning: true,
    embeddings: true,
};

/// api.openai.com, the default of the `openai` plugin (which also offers Azure mode).
pub const OPENAI: Preset = Preset {
    name: "openai",
    title: "OpenAI",
    description: "OpenAI chat completions",
    base_url: OPENAI_BASE_URL,
    api_key_env: Some("OPENAI_API_KEY"),
    models: OPENAI_MODELS,
    capabilities: ALL,
    passthrough: true,
    azure: true,
    quirks: Quirks::OPENAI,
    ..Preset::COMPATIBLE
};

/// OpenRouter.
pub const OPENROUTER: Preset = Preset {
    name: "openrouter",
    title: "OpenRouter",
    description: "OpenRouter (OpenAI-compatible chat completions)",
    base_url: "https://openrouter.ai/api/v1",
    api_key_env: Some("OPENROUTER_API_KEY"),
    // openrouter.ai/docs (quickstart / app attribution): optional `HTTP-Referer`
    // (site URL) and `X-Title` (site name) headers rank the app on openrouter.ai.
    option_headers: &[
        OptionHeader {
            option: "referer",
            header: "HTTP-Referer",
        },
        OptionHeader {
            option: "title",
            header: "X-Title",
        },
    ],
    capabilities: ALL,
    passthrough: true,
    // openrouter.ai/docs/use-cases/usage-accounting: "The usage: {include: true}
    // and stream_options: {include_usage: true} parameters are deprecated and have
    // no effect. Full usage details are now always included" (last SSE message).
    // openrouter.ai/docs/use-cases/reasoning-tokens: reasoning is controlled by
    // `reasoning: {effort}`, comes back in each message's `reasoning` field and as
    // `reasoning_details` blocks, which are to be passed back unmodified on later
    // turns ("Preserving reasoning blocks").
    quirks: Quirks {
        effort: EffortField::OpenRouterReasoning,
        developer_role: true,
        reasoning_details_history: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Groq.
pub const GROQ: Preset = Preset {
    name: "groq",
    title: "Groq",
    description: "Groq (OpenAI-compatible chat completions)",
    base_url: "https://api.groq.com/openai/v1",
    api_key_env: Some("GROQ_API_KEY"),
    // Groq has no embeddings endpoint.
    capabilities: Capabilities {
        embeddings: false,
        ..ALL
    },
    // Groq rejected `stream_options` in May 2024 ("property 'stream_options' is
    // unsupported", vercel/ai#1578) but accepts it since (Portkey-AI/gateway#1338
    // shows the extra usage chunk, Sept 2025); usage also rides on the last
    // chunk's `x_groq.usage`, which the decoder reads. `max_completion_tokens`
    // since groq/groq-python#175, `max_tokens` deprecated in its favour.
    quirks: Quirks {
        stream_usage: true,
        token_limit: TokenLimit::MaxCompletionTokens,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Together AI.
pub const TOGETHER: Preset = Preset {
    name: "together",
    title: "Together AI",
    description: "Together AI (OpenAI-compatible chat completions)",
    base_url: "https://api.together.xyz/v1",
    api_key_env: Some("TOGETHER_API_KEY"),
    capabilities: ALL,
    // Together's own SDK (together-python types/chat_completions.py) has no
    // `stream_options` in its request and a `usage` on every stream chunk: usage
    // comes without asking. `max_tokens` is its limit field.
    quirks: Quirks::COMPATIBLE,
    ..Preset::COMPATIBLE
};

/// DeepSeek.
pub const DEEPSEEK: Preset = Preset {
    name: "deepseek",
    title: "DeepSeek",
    description: "DeepSeek (OpenAI-compatible chat completions)",
    base_url: "https://api.deepseek.com/v1",
    api_key_env: Some("DEEPSEEK_API_KEY"),
    // DeepSeek has no embeddings endpoint.
    capabilities: Capabilities {
        embeddings: false,
        ..ALL
    },
    // api-docs.deepseek.com (create chat completion): `stream_options.include_usage`
    // and `max_tokens`. Thinking mode: "For turns that do perform tool calls, the
    // reasoning_content must be fully passed back to the API in all subsequent
    // requests" or the API answers 400 (quoted in anomalyco/opencode#24722).
    quirks: Quirks {
        stream_usage: true,
        reasoning_history: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Mistral.
pub const MISTRAL: Preset = Preset {
    name: "mistral",
    title: "Mistral",
    description: "Mistral (OpenAI-compatible chat completions)",
    base_url: "https://api.mistral.ai/v1",
    api_key_env: Some("MISTRAL_API_KEY"),
    capabilities: ALL,
    // Mistral validates strictly (pydantic `extra_forbidden`, HTTP 422):
    // `stream_options` is rejected (avante.nvim#2347), so is
    // `max_completion_tokens` (editor-code-assistant/eca#231). Its request model
    // (mistralai/client-python ChatCompletionStreamRequest) names the seed
    // `random_seed` and has no `user`; its messages have no participant `name`
    // and the roles are system, user, assistant and tool. The final chunk carries
    // `usage` unasked.
    quirks: Quirks {
        seed_field: "random_seed",
        send_user: false,
        message_names: false,
        // docs.mistral.ai (embeddings): Mistral names it `output_dimension` and
        // refuses fields it does not know.
        dimensions_field: "output_dimension",
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Fireworks AI.
pub const FIREWORKS: Preset = Preset {
    name: "fireworks",
    title: "Fireworks AI",
    description: "Fireworks AI (OpenAI-compatible chat completions)",
    base_url: "https://api.fireworks.ai/inference/v1",
    api_key_env: Some("FIREWORKS_API_KEY"),
    capabilities: ALL,
    // docs.fireworks.ai/api-reference/post-chatcompletions: `max_tokens` (default
    // 2000), no `stream_options` and no `max_completion_tokens` in the schema.
    quirks: Quirks::COMPATIBLE,
    ..Preset::COMPATIBLE
};

/// vLLM.
pub const VLLM: Preset = Preset {
    name: "vllm",
    title: "vLLM",
    description: "vLLM (OpenAI-compatible chat completions)",
    base_url: "http://127.0.0.1:8000/v1",
    api_key_env: None,
    capabilities: ALL,
    // vLLM's OpenAI server implements `stream_options.include_usage` (and
    // `continuous_usage_stats`); `max_tokens` works on every version.
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Ollama.
pub const OLLAMA: Preset = Preset {
    name: "ollama",
    title: "Ollama",
    description: "Ollama (OpenAI-compatible chat completions)",
    base_url: "http://127.0.0.1:11434/v1",
    api_key_env: None,
    capabilities: ALL,
    // Ollama returns usage as a final chunk when asked (ollama commit "openai:
    // return usage as final chunk for streams"); docs/openai.md lists `max_tokens`.
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// LM Studio.
pub const LMSTUDIO: Preset = Preset {
    name: "lmstudio",
    title: "LM Studio",
    description: "LM Studio (OpenAI-compatible chat completions)",
    base_url: "http://127.0.0.1:1234/v1",
    api_key_env: None,
    capabilities: ALL,
    // LM Studio ignores `stream_options` (lmstudio-bug-tracker#713, open in 2025:
    // no usage chunk, but no error either), so asking costs nothing and pays off on
    // versions that implement it.
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// llama.cpp's llama-server.
pub const LLAMACPP: Preset = Preset {
    name: "llamacpp",
    title: "llama.cpp's llama-server",
    description: "llama.cpp's llama-server (OpenAI-compatible chat completions)",
    base_url: "http://127.0.0.1:8080/v1",
    api_key_env: None,
    capabilities: ALL,
    // llama-server implements `stream_options.include_usage` (janhq/cortex.llamacpp
    // #265 and mozilla-ai/llamafile#713 brought the same to its forks); some
    // versions end the stream after the finish chunk without `[DONE]`, which the
    // decoder accepts for every preset.
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// Portkey's AI gateway (portkey.ai/docs/api-reference/inference-api/headers): the
/// Portkey key goes in `x-portkey-api-key`, and the entry says where requests go with
/// `provider` (`x-portkey-provider`, a provider slug from Portkey's Model Catalog such
/// as `@openai-prod`), `virtual_key` (`x-portkey-virtual-key`) or `config`
/// (`x-portkey-config`, a saved config's id). The "provider + Authorization" mode,
/// which needs a second key, is not offered: the host places one key per entry.
/// Portkey translates for many upstreams, so only the baseline fields are sent.
pub const PORTKEY: Preset = Preset {
    name: "portkey",
    title: "Portkey",
    description: "Portkey AI gateway (OpenAI-compatible chat completions)",
    base_url: "https://api.portkey.ai/v1",
    api_key_env: Some("PORTKEY_API_KEY"),
    auth: Auth::Header("x-portkey-api-key"),
    option_headers: &[
        OptionHeader {
            option: "provider",
            header: "x-portkey-provider",
        },
        OptionHeader {
            option: "virtual_key",
            header: "x-portkey-virtual-key",
        },
        OptionHeader {
            option: "config",
            header: "x-portkey-config",
        },
    ],
    requires_option_header: true,
    capabilities: ALL,
    // Portkey returns usage on the last chunk when asked, as OpenAI does.
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// A LiteLLM proxy (docs.litellm.ai/docs/simple_proxy): OpenAI's routes on port 4000,
/// a master or virtual key as `Authorization: Bearer`. LiteLLM forwards
/// `stream_options` and answers with a usage chunk.
pub const LITELLM: Preset = Preset {
    name: "litellm",
    title: "LiteLLM",
    description: "LiteLLM proxy (OpenAI-compatible chat completions)",
    base_url: "http://127.0.0.1:4000/v1",
    api_key_env: Some("LITELLM_API_KEY"),
    capabilities: ALL,
    quirks: Quirks {
        stream_usage: true,
        ..Quirks::COMPATIBLE
    },
    ..Preset::COMPATIBLE
};

/// The presets of the `openai` plugin, in the order error messages list them.
pub const ALL_PRESETS: &[Preset] = &[
    OPENAI, OPENROUTER, GROQ, TOGETHER, DEEPSEEK, MISTRAL, FIREWORKS, VLLM, OLLAMA, LMSTUDIO,
    LLAMACPP, PORTKEY, LITELLM,
];
