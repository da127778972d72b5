//! The OpenAI chat-completions translator, for OpenAI, Azure OpenAI and every server
//! that speaks the same protocol.
//!
//! Like every provider it only translates ([`provider_sdk`]'s sans-IO contract): a
//! canonical request becomes `POST {base_url}/chat/completions`, and the upstream's
//! `chat.completion` body or SSE stream becomes a canonical answer or events.
//!
//! A plugin is [`OpenAiCompatible`] over a type implementing [`Compatible`], which names
//! the plugin's [`Preset`]s (the first is its default and names its manifest). An
//! entry's options (all optional; anything else is refused):
//! - `preset`: one of the plugin's presets, when it has several.
//! - each preset's option headers (OpenRouter's `referer` and `title`, Portkey's
//!   `provider`, `virtual_key` and `config`).
//! - `azure`: `{"api_version": "2024-10-21"}` switches a preset that allows it (OpenAI)
//!   to Azure OpenAI: the request's model is the deployment, the key goes in an
//!   `api-key` header, and the entry's `base_url` (the resource endpoint) is required.
//! - `headers`: extra request headers, `{"name": "value"}` (never a key's header).
//!
//! Embeddings (`POST {base_url}/embeddings`) are served for every preset whose server
//! has them, and Azure (see [`embeddings`]).

pub mod conformance;
pub mod embeddings;
pub mod error;
pub mod preset;
pub mod presets;
pub mod request;
pub mod response;
pub mod stream;

use std::marker::PhantomData;

use provider_sdk::{
    AuthScheme, ChatRequest, ChatResponse, Conformance, EmbeddingRequest, EmbeddingResponse,
    HttpResponse, Manifest, NativeRequest, Outbound, Protocol, Provider, ProviderConfig,
    ProviderError,
};

pub use preset::{Auth, EffortField, OptionHeader, Preset, Quirks, Settings, TokenLimit};
pub use stream::OpenAiDecoder;

/// What an OpenAI-compatible plugin declares: its version and presets.
pub trait Compatible: Send + Sync + 'static {
    /// The plugin's version, usually `env!("CARGO_PKG_VERSION")`.
    const VERSION: &'static str;
    /// The presets an entry may choose among with `options.preset`; the first is the
    /// default, and its name, description, defaults, models and capabilities make the
    /// plugin's manifest.
    const PRESETS: &'static [Preset];
    /// The manifest's description, when it should say more than the first preset's.
    const DESCRIPTION: Option<&'static str> = None;
}

/// One configured OpenAI-protocol upstream: a complete [`Provider`].
pub struct OpenAiCompatible<C> {
    settings: Settings,
    plugin: PhantomData<fn() -> C>,
}

impl<C: Compatible> OpenAiCompatible<C> {
    /// The settings this instance was built with.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }
}

impl<C: Compatible> Provider for OpenAiCompatible<C> {
    type Decoder = OpenAiDecoder;

    fn manifest() -> Manifest {
        let Some(first) = C::PRESETS.first() else {
            return Manifest::default();
        };
        let mut manifest = crate::manifest::manifest(first.name, C::VERSION)
            .description(C::DESCRIPTION.unwrap_or(first.description))
            .capabilities(first.capabilities)
            .base_url(first.base_url)
            .auth(first.auth.scheme())
            .models(first.models)
            .build();
        manifest.defaults.api_key_env = first.api_key_env.map(str::to_owned);
        manifest
    }

    fn conformance() -> Conformance {
        conformance::conformance()
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        Ok(OpenAiCompatible {
            settings: Settings::from_config(C::PRESETS, &config)?,
            plugin: PhantomData,
        })
    }

    fn auth(&self) -> AuthScheme {
        match self.settings.azure {
            // learn.microsoft.com/azure/ai-services/openai/reference#authentication:
            // "API key authentication: ... the API key must be included in the api-key
            // HTTP header".
            Some(_) => AuthScheme::Header {
                name: "api-key".to_owned(),
            },
            None => self.settings.preset.auth.scheme(),
        }
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        request::build(&self.settings, request).map(Outbound::Http)
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        response::parse(response)
    }

    fn stream_decoder(&self) -> OpenAiDecoder {
        OpenAiDecoder::default()
    }

    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        error::classify(response)
    }

    fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        Ok(Some(Outbound::Http(request::list_models(&self.settings))))
    }

    fn native_request(
        &self,
        protocol: Protocol,
        model: &str,
        stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        if !self.settings.preset.passthrough {
            return Ok(None);
        }
        Ok(match protocol {
            Protocol::OpenAiChat => Some(request::native(&self.settings, model, stream)),
            Protocol::OpenAiEmbeddings => Some(embeddings::native(&self.settings, model)),
            _ => None,
        })
    }

    /// Built from the entry's settings alone.
    fn native_requests_reusable(&self) -> bool {
        true
    }

    fn build_embedding_request(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<Outbound, ProviderError> {
        embeddings::build(&self.settings, request).map(Outbound::Http)
    }

    fn parse_embedding_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<EmbeddingResponse, ProviderError> {
        embeddings::parse(response)
    }
}
