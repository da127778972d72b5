//! Builders for what a plugin declares: its manifest and its models with prices.
//!
//! [`Model`] is `const` data, so a model table is a `const` array:
//!
//! ```
//! use provider_kit::manifest::{manifest, Model};
//! use provider_sdk::{AuthScheme, Capabilities};
//!
//! const MODELS: &[Model] = &[
//!     Model::new("fast-1", 128_000).max_output(8_192).price(0.20, 0.80).cached(0.05),
//!     Model::new("embed-1", 8_192).price(0.02, 0.0),
//! ];
//! let m = manifest("example", "1.0.0")
//!     .description("Example upstream")
//!     .capabilities(Capabilities { streaming: true, tools: true, ..Capabilities::default() })
//!     .base_url("https://api.example.com/v1")
//!     .api_key_env("EXAMPLE_API_KEY")
//!     .auth(AuthScheme::Bearer)
//!     .models(MODELS)
//!     .build();
//! assert_eq!(m.models[0].pricing.unwrap().cached_input_per_mtok, Some(0.05));
//! assert_eq!(m.defaults.api_key_env.as_deref(), Some("EXAMPLE_API_KEY"));
//! ```

use provider_sdk::{AuthScheme, Capabilities, Defaults, Manifest, ModelInfo, Pricing};

/// What a chat provider with streaming, tools, images and reasoning declares (no
/// embeddings): `.capabilities(CHAT)`.
pub const CHAT: Capabilities = Capabilities {
    streaming: true,
    tools: true,
    vision: true,
    reasoning: true,
    embeddings: false,
};

/// A model with its context window and prices (US dollars per million tokens), as
/// `const` data; [`Model::info`] gives the SDK's [`ModelInfo`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// The provider's model id.
    pub id: &'static str,
    /// Context window in tokens.
    pub context_window: u32,
    /// Longest answer in tokens, when known.
    pub max_output_tokens: Option<u32>,
    /// Prices, when the provider charges per token.
    pub pricing: Option<Pricing>,
}

impl Model {
    /// A model with its context window, no output limit and no prices yet.
    pub const fn new(id: &'static str, context_window: u32) -> Model {
        Model {
            id,
            context_window,
            max_output_tokens: None,
            pricing: None,
        }
    }

    /// Sets the longest answer.
    pub const fn max_output(self, tokens: u32) -> Model {
        Model {
            max_output_tokens: Some(tokens),
            ..self
        }
    }

    /// Sets the input and output prices per million tokens (cached input costs the
    /// input price unless [`Model::cached`] says otherwise).
    pub const fn price(self, input_per_mtok: f64, output_per_mtok: f64) -> Model {
        Model {
            pricing: Some(Pricing {
                input_per_mtok,
                output_per_mtok,
                cached_input_per_mtok: None,
            }),
            ..self
        }
    }

    /// Sets the price of cached input per million tokens; call after [`Model::price`].
    pub const fn cached(self, cached_input_per_mtok: f64) -> Model {
        let pricing = match self.pricing {
            Some(p) => Pricing {
                cached_input_per_mtok: Some(cached_input_per_mtok),
                ..p
            },
            None => Pricing {
                input_per_mtok: 0.0,
                output_per_mtok: 0.0,
                cached_input_per_mtok: Some(cached_input_per_mtok),
            },
        };
        Model {
            pricing: Some(pricing),
            ..self
        }
    }

    /// The SDK's description of the model.
    pub fn info(&self) -> ModelInfo {
        ModelInfo {
            id: self.id.to_owned(),
            context_window: Some(self.context_window),
            max_output_tokens: self.max_output_tokens,
            pricing: self.pricing,
        }
    }
}

/// Starts a manifest for plugin `name` at `version` (usually
/// `env!("CARGO_PKG_VERSION")`).
pub fn manifest(name: &str, version: &str) -> ManifestBuilder {
    ManifestBuilder(Manifest {
        name: name.to_owned(),
        version: version.to_owned(),
        ..Manifest::default()
    })
}

/// A [`Manifest`] under construction; see [`manifest`].
#[derive(Debug, Clone)]
#[must_use = "call .build() to get the manifest"]
pub struct ManifestBuilder(Manifest);

impl ManifestBuilder {
    /// One line about the provider.
    pub fn description(mut self, text: &str) -> Self {
        self.0.description = text.to_owned();
        self
    }

    /// What the provider can do.
    pub fn capabilities(mut self, capabilities: Capabilities) -> Self {
        self.0.capabilities = capabilities;
        self
    }

    /// The upstream's default base URL.
    pub fn base_url(mut self, url: &str) -> Self {
        self.0.defaults.base_url = Some(url.to_owned());
        self
    }

    /// The environment variable that holds the API key by default.
    pub fn api_key_env(mut self, variable: &str) -> Self {
        self.0.defaults.api_key_env = Some(variable.to_owned());
        self
    }

    /// Where the host puts the API key.
    pub fn auth(mut self, auth: AuthScheme) -> Self {
        self.0.defaults.auth = auth;
        self
    }

    /// Adds models.
    pub fn models(mut self, models: &[Model]) -> Self {
        self.0.models.extend(models.iter().map(Model::info));
        self
    }

    /// The manifest.
    pub fn build(self) -> Manifest {
        self.0
    }
}

/// Defaults from their parts, for manifests written as struct literals.
pub fn defaults(base_url: &str, api_key_env: Option<&str>, auth: AuthScheme) -> Defaults {
    Defaults {
        base_url: Some(base_url.to_owned()),
        api_key_env: api_key_env.map(str::to_owned),
        auth,
    }
}
