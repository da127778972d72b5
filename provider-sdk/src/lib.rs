//! The SDK a provider-host plugin is written against.
//!
//! A provider is a *sans-IO translator*: it turns the host's canonical [`ChatRequest`]
//! into an HTTP request for its upstream ([`Outbound`]), and turns the upstream's bytes
//! back into a canonical [`ChatResponse`] or a stream of [`StreamEvent`]s. It never opens
//! a socket, starts a thread or reads an API key: the host does all I/O and policy, and
//! places the key where the provider's [`AuthScheme`] says.
//!
//! Writing a provider means implementing [`Provider`] over these plain Rust types and
//! calling [`export_provider!`] once. A complete (if useless) provider, which answers
//! every chat with its last user message without calling anyone:
//!
//! ```
//! use provider_sdk::*;
//!
//! pub struct Parrot;
//!
//! impl Provider for Parrot {
//!     type Decoder = ParrotDecoder;
//!     fn manifest() -> Manifest {
//!         Manifest { name: "parrot".into(), version: "1.0.0".into(), ..Manifest::default() }
//!     }
//!     fn conformance() -> Conformance {
//!         let chat = samples::chat_request("any");
//!         let Ok(Outbound::Local(response)) = Parrot.build_request(&chat) else { unreachable!() };
//!         Conformance { response: response.clone(), stream: response, ..Conformance::default() }
//!     }
//!     fn new(_config: ProviderConfig) -> Result<Self, ProviderError> {
//!         Ok(Parrot)
//!     }
//!     fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
//!         let text = request.last_user_text().unwrap_or_default();
//!         Ok(Outbound::Local(LocalResponse { status: 200, chunks: vec![text.into_bytes()], ..LocalResponse::default() }))
//!     }
//!     fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
//!         let text = String::from_utf8_lossy(response.body).into_owned();
//!         Ok(ChatResponse { message: AssistantMessage { content: Some(text), ..Default::default() }, ..Default::default() })
//!     }
//!     fn stream_decoder(&self) -> ParrotDecoder {
//!         ParrotDecoder(String::new())
//!     }
//! }
//!
//! /// Collects the body, then sends it as one piece of text.
//! pub struct ParrotDecoder(String);
//!
//! impl StreamDecoder for ParrotDecoder {
//!     fn feed(&mut self, bytes: &[u8], _events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
//!         self.0.push_str(&String::from_utf8_lossy(bytes));
//!         Ok(())
//!     }
//!     fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
//!         events.push(StreamEvent::Start { id: None, model: None });
//!         events.push(StreamEvent::TextDelta { text: std::mem::take(&mut self.0) });
//!         events.push(StreamEvent::Finish { reason: FinishReason::Stop });
//!         Ok(())
//!     }
//! }
//!
//! export_provider!(Parrot);
//! # let answer = Parrot.parse_response(&HttpResponse::new(200, &[], b"Say hello.")).unwrap();
//! # assert_eq!(answer.message.content.as_deref(), Some("Say hello."));
//! ```
//!
//! Real providers need not start from nothing: the `provider-kit` crate of this
//! workspace holds the OpenAI-compatible translator (a new OpenAI-compatible service is
//! one preset), a decoder for JSON-over-SSE streams, error rules and builders for
//! manifests and fixtures (docs/authoring.md).
//!
//! ## The canonical JSON
//!
//! The canonical types serialize to the JSON of OpenAI's chat completions, which is how
//! a provider may read or write them wholesale (`serde_json::to_value(&request)`):
//! [`ChatRequest`] is a chat-completions request body, [`Message`] one of its messages
//! (tagged by `role`), [`Tool`], [`ToolCall`] and [`ToolChoice`] their OpenAI shapes.
//! [`ChatResponse`] and [`StreamEvent`] are the SDK's own, documented on each type.
//!
//! Since SDK 1.2 a provider may also serve embeddings ([`EmbeddingRequest`] →
//! [`EmbeddingResponse`]) by implementing `build_embedding_request` and
//! `parse_embedding_response` and declaring `capabilities.embeddings` in its manifest.
//!
//! `providers/mock` in this workspace is a complete, small example. The stable ABI lives
//! in [`abi`]; provider authors never need to touch it.

#![warn(missing_docs)]

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
