//! DeepInfra (deepinfra.com/docs/advanced/openai_api): an OpenAI-compatible API at
//! `https://api.deepinfra.com/v1/openai` for its hosted chat and embedding models, a
//! bearer key. The whole provider is one preset of the kit's OpenAI translator.

use provider_kit::{
    manifest::Model,
    openai::{Compatible, OpenAiCompatible, Preset},
};

/// The DeepInfra plugin's declaration.
pub struct DeepInfra;

impl Compatible for DeepInfra {
    const VERSION: &'static str = env!("CARGO_PKG_VERSION");
    const PRESETS: &'static [Preset] = &[Preset {
        name: "deepinfra",
        title: "DeepInfra",
        description: "DeepInfra's OpenAI-compatible API",
        base_url: "https://api.deepinfra.com/v1/openai",
        api_key_env: Some("DEEPINFRA_API_KEY"),
        // Context windows and prices (US dollars per million tokens) from DeepInfra's
        // model pages, as listed by mastra.ai/models/providers/deepinfra in 2026.
        models: &[
            Model::new("openai/gpt-oss-120b", 131_072).price(0.05, 0.24),
            Model::new("Qwen/Qwen3-Coder-480B-A35B-Instruct-Turbo", 262_144).price(0.30, 1.00),
            Model::new("moonshotai/Kimi-K2-Instruct", 131_072).price(0.50, 2.00),
        ],
        ..Preset::COMPATIBLE
    }];
}

/// The provider.
pub type DeepInfraProvider = OpenAiCompatible<DeepInfra>;

provider_sdk::export_provider!(DeepInfraProvider);
