//! What a plugin declares about itself.

use serde::{Deserialize, Serialize};

/// A plugin's self-description, read by the host before anything else.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The provider family's name (`mock`, `openai`, ...): lowercase, digits, `-`, `_`.
    pub name: String,
    /// The plugin's own version (semver).
    pub version: String,
    /// The SDK version the plugin was built against; filled in by [`crate::export_provider!`].
    #[serde(default)]
    pub sdk_version: String,
    /// One line about the provider.
    #[serde(default)]
    pub description: String,
    /// What the provider can do.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Defaults for a config entry that names this plugin.
    #[serde(default)]
    pub defaults: Defaults,
    /// Well-known models, with their context window and prices.
    #[serde(default)]
    pub models: Vec<ModelInfo>,
}

/// Feature flags of a provider.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Capabilities {
    /// Streams answers.
    pub streaming: bool,
    /// Calls tools.
    pub tools: bool,
    /// Accepts images.
    pub vision: bool,
    /// Exposes reasoning / thinking.
    pub reasoning: bool,
    /// Serves embeddings.
    pub embeddings: bool,
}

/// Defaults a config entry inherits unless it overrides them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Defaults {
    /// Base URL of the upstream API.
    pub base_url: Option<String>,
    /// Environment variable that holds the API key.
    pub api_key_env: Option<String>,
    /// Where the host puts the API key.
    pub auth: AuthScheme,
}

/// Where the host places the API key on outbound requests. The key itself never
/// reaches the plugin.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthScheme {
    /// No key.
    #[default]
    None,
    /// `Authorization: Bearer <key>`.
    Bearer,
    /// A header of its own, e.g. `x-api-key: <key>`.
    Header {
        /// The header's name.
        name: String,
    },
    /// A query parameter, e.g. `?key=<key>`.
    Query {
        /// The parameter's name.
        name: String,
    },
}

/// A model the provider knows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    /// The provider's model id.
    pub id: String,
    /// Context window in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u32>,
    /// Longest answer in tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    /// Prices, when the provider charges per token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pricing: Option<Pricing>,
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pricing {
    /// Input tokens.
    pub input_per_mtok: f64,
    /// Output tokens.
    pub output_per_mtok: f64,
    /// Input tokens read from the prompt cache (defaults to the input price).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input_per_mtok: Option<f64>,
}
