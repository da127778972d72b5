//! The provider author's kit: what plugins for provider-host share, so that a provider
//! is only what is particular to its upstream.
//!
//! - [`openai`]: the whole OpenAI chat-completions translator (requests, answers,
//!   streams, errors, embeddings) behind a [`openai::Preset`]. A provider for another
//!   OpenAI-compatible service is one preset and one `export_provider!` line:
//!
//!   ```
//!   use provider_kit::{manifest::Model, openai::{Compatible, OpenAiCompatible, Preset}};
//!
//!   pub struct Example;
//!   impl Compatible for Example {
//!       const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!       const PRESETS: &'static [Preset] = &[Preset {
//!           name: "example",
//!           title: "Example",
//!           description: "Example's OpenAI-compatible API",
//!           base_url: "https://api.example.com/v1",
//!           api_key_env: Some("EXAMPLE_API_KEY"),
//!           models: &[Model::new("example-large", 131_072).price(0.5, 1.5)],
//!           ..Preset::COMPATIBLE
//!       }];
//!   }
//!   // In the plugin crate: provider_sdk::export_provider!(OpenAiCompatible<Example>);
//!   # use provider_sdk::Provider;
//!   # assert_eq!(OpenAiCompatible::<Example>::manifest().name, "example");
//!   ```
//! - [`sse`]: a stream decoder for any JSON-over-SSE protocol (framing, terminator,
//!   malformed and cut streams, error events handled once).
//! - [`errors`]: declarative error rules (status, code and phrase to kind).
//! - [`manifest`]: manifest and model builders, prices included.
//! - [`fixtures`]: conformance fixtures (`json`, `sse`) and expected stream events.
//! - [`request`]: the recurring request pieces (token limits, image and `data:` URLs,
//!   optional fields, typed options).
//! - [`anthropic`]: Anthropic's usage figures and stop reasons, read alike by the
//!   anthropic plugin and by the host for passed-through messages.
//!
//! The kit is a companion crate rather than part of `provider-sdk` on purpose: the
//! SDK is the ABI contract, versioned so that old plugins keep loading, while the kit
//! is ordinary code compiled into each plugin, free to grow without touching the ABI.

#![warn(missing_docs)]

pub mod anthropic;
pub mod errors;
pub mod fixtures;
pub mod manifest;
pub mod openai;
pub mod request;
pub mod sse;
