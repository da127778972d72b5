//! The SDK a provider-host plugin is written against.
//!
//! A provider is a *sans-IO translator*: it turns the host's canonical [`ChatRequest`]
//! into an HTTP request for its upstream ([`Outbound`]), and turns the upstream's bytes
//! back into a canonical [`ChatResponse`] or a stream of [`StreamEvent`]s. It never opens
//! a socket, starts a thread or reads an API key: the host does all I/O and policy, and
//! places the key where the provider's [`AuthScheme`] says.
//!
//! Writing a provider means implementing [`Provider`] over these plain Rust types and
//! calling [`export_provider!`] once:
//!
//! ```text
//! use provider_sdk::*;
//!
//! pub struct MyProvider { base_url: String }
//!
//! impl Provider for MyProvider {
//!     type Decoder = MyDecoder;
//!     fn manifest() -> Manifest { /* name, version, models, defaults */ }
//!     fn conformance() -> Conformance { /* canned upstream bytes for validation */ }
//!     fn new(config: ProviderConfig) -> Result<Self, ProviderError> { /* ... */ }
//!     fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> { /* ... */ }
//!     fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> { /* ... */ }
//!     fn stream_decoder(&self) -> MyDecoder { /* ... */ }
//! }
//!
//! export_provider!(MyProvider);
//! ```
//!
//! Since SDK 1.2 a provider may also serve embeddings ([`EmbeddingRequest`] →
//! [`EmbeddingResponse`]) by implementing `build_embedding_request` and
//! `parse_embedding_response` and declaring `capabilities.embeddings` in its manifest.
//!
//! `providers/mock` in this workspace is a complete, small example. The stable ABI lives
//! in [`abi`]; provider authors never need to touch it.

pub mod abi;
mod chat;
mod embeddings;
mod error;
mod http;
mod manifest;
mod native;
mod provider;
pub mod samples;
pub mod sse;
mod stream;

pub use chat::{
    AssistantMessage, ChatRequest, ChatResponse, Content, ContentPart, FinishReason, FunctionCall,
    FunctionDefinition, ImageUrl, Message, NamedFunction, ReasoningDetail, ResponseFormat,
    StopSequences, StreamOptions, Tool, ToolCall, ToolChoice, ToolChoiceMode, Usage,
};
#[doc(hidden)]
pub use embeddings::EmbeddingAnswer;
pub use embeddings::{EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage};
pub use error::{mentions_context_window, ErrorKind, ProviderError, CONTEXT_WINDOW_PHRASES};
pub use http::{Header, HttpRequest, HttpResponse, LocalResponse, Outbound};
pub use manifest::{AuthScheme, Capabilities, Defaults, Manifest, ModelInfo, Pricing};
#[doc(hidden)]
pub use native::NativeQuery;
pub use native::{NativeRequest, Protocol};
pub use provider::{CannedError, Conformance, Provider, ProviderConfig, StreamDecoder};
pub use stream::StreamEvent;

/// The version of this SDK, recorded in every plugin's manifest at export time.
pub const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// Re-exported so that plugins use the same `serde_json` the SDK's types are built on.
pub use serde_json;
