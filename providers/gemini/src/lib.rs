//! The Google Gemini provider: the Gemini API's `generateContent` and
//! `streamGenerateContent?alt=sse` endpoints (<https://ai.google.dev/api/generate-content>).
//!
//! Like every provider it only translates, never does I/O:
//! - `request` turns a canonical chat into a `GenerateContentRequest`
//!   (`systemInstruction`, `contents`, `tools`, `toolConfig`, `generationConfig`), and
//!   `schema` narrows JSON schemas to the subset Gemini accepts;
//! - `response` turns a `GenerateContentResponse` into a canonical answer;
//! - `stream` decodes the SSE stream, one `GenerateContentResponse` per `data:` event;
//! - `error` classifies Google's `{"error": {"code", "message", "status", "details"}}`;
//! - `embeddings` serves embeddings through `batchEmbedContents`;
//! - `conformance` ships real Gemini bytes (see `fixtures/README.md`) for `validate`.
//!
//! The host adds the API key as the `x-goog-api-key` header.
//!
//! Options (`options` of the config entry):
//! - `include_thoughts` (bool, default false): ask thinking models for thought summaries
//!   (they come back as reasoning) even when the request sets no `reasoning_effort`.

mod conformance;
mod embeddings;
mod error;
mod request;
mod response;
mod schema;
mod stream;
#[cfg(test)]
mod tests;

use provider_kit::manifest::{manifest, Model};
use provider_sdk::{
    export_provider, AuthScheme, Capabilities, ChatRequest, ChatResponse, Conformance,
    EmbeddingRequest, EmbeddingResponse, HttpResponse, Manifest, Outbound, Provider,
    ProviderConfig, ProviderError,
};
use serde::Deserialize;

pub use stream::GeminiDecoder;

/// The Gemini API's base URL, used when the config entry sets none.
pub const DEFAULT_BASE_URL: &str = "https://generativelanguage.googleapis.com/v1beta";

/// The environment variable that holds the API key by default.
pub const API_KEY_ENV: &str = "GEMINI_API_KEY";

/// The header the host puts the API key in.
pub const API_KEY_HEADER: &str = "x-goog-api-key";

/// Gemini's embedding model.
pub const EMBEDDING_MODEL: &str = "gemini-embedding-001";

/// The Gemini provider, one instance per config entry.
#[derive(Debug, Clone)]
pub struct Gemini {
    base_url: String,
    options: GeminiOptions,
}

/// The provider's options, from the config entry's `options`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeminiOptions {
    /// Ask thinking models for thought summaries on every request.
    pub include_thoughts: bool,
}

impl Gemini {
    /// The base URL requests go to, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The options this instance was built with.
    pub fn options(&self) -> &GeminiOptions {
        &self.options
    }
}

/// Context windows and output limits: https://ai.google.dev/gemini-api/docs/models
/// Prices (standard paid tier, text, prompts <= 200k tokens; output includes thinking
/// tokens; "context caching price" is the cached-input price):
/// https://ai.google.dev/gemini-api/docs/pricing
#[rustfmt::skip]
const MODELS: &[Model] = &[
    Model::new("gemini-2.5-pro", 1_048_576).max_output(65_536).price(1.25, 10.00).cached(0.125),
    Model::new("gemini-2.5-flash", 1_048_576).max_output(65_536).price(0.30, 2.50).cached(0.03),
    Model::new("gemini-2.5-flash-lite", 1_048_576).max_output(65_536).price(0.10, 0.40).cached(0.01),
    Model::new("gemini-2.0-flash", 1_048_576).max_output(8_192).price(0.10, 0.40).cached(0.025),
    // No context caching for 2.0 Flash-Lite: cached input costs the input price.
    Model::new("gemini-2.0-flash-lite", 1_048_576).max_output(8_192).price(0.075, 0.30),
    Model::new("gemini-3-pro-preview", 1_048_576).max_output(65_536).price(2.00, 12.00).cached(0.20),
    Model::new("gemini-3-flash-preview", 1_048_576).max_output(65_536).price(0.50, 3.00).cached(0.05),
    // Embeddings (https://ai.google.dev/gemini-api/docs/embeddings): 2,048 input tokens,
    // $0.15 per million input tokens (pricing page, "Gemini Embedding").
    Model::new(EMBEDDING_MODEL, 2_048).price(0.15, 0.0),
];

impl Provider for Gemini {
    type Decoder = GeminiDecoder;

    fn manifest() -> Manifest {
        manifest("gemini", env!("CARGO_PKG_VERSION"))
            .description("Google Gemini API: generateContent and streamGenerateContent (SSE)")
            .capabilities(Capabilities {
                streaming: true,
                tools: true,
                vision: true,
                reasoning: true,
                embeddings: true,
            })
            .base_url(DEFAULT_BASE_URL)
            .api_key_env(API_KEY_ENV)
            .auth(AuthScheme::Header {
                name: API_KEY_HEADER.to_owned(),
            })
            .models(MODELS)
            .build()
    }

    fn conformance() -> Conformance {
        conformance::conformance()
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let options: GeminiOptions = provider_kit::request::options("gemini", &config)?;
        let base_url = provider_kit::request::http_base_url("gemini", &config, DEFAULT_BASE_URL)?;
        Ok(Gemini { base_url, options })
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        request::build(&self.base_url, &self.options, request).map(Outbound::Http)
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        response::parse(response.body)
    }

    fn stream_decoder(&self) -> GeminiDecoder {
        GeminiDecoder::default()
    }

    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        error::classify(response)
    }

    fn build_embedding_request(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<Outbound, ProviderError> {
        embeddings::build(&self.base_url, request).map(Outbound::Http)
    }

    fn parse_embedding_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<EmbeddingResponse, ProviderError> {
        embeddings::parse(response.body)
    }

    /// `GET {base}/models` (ai.google.dev/api/models#method:-models.list): cheap, and
    /// it checks the key.
    fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        Ok(Some(Outbound::Http(provider_sdk::HttpRequest {
            method: "GET".to_owned(),
            url: format!("{}/models", self.base_url),
            ..provider_sdk::HttpRequest::default()
        })))
    }
}

export_provider!(Gemini);
