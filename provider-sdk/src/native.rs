//! Exact passthrough (SDK 1.1): a provider whose upstream speaks a client protocol
//! natively tells the host how to send a client's own request body there unchanged.
//!
//! The host then forwards the body as the client wrote it (the model replaced, plus
//! the fields [`NativeRequest::set`] names), puts the API key where the provider's
//! auth scheme says, and relays the upstream's bytes as they arrive. The provider's
//! `parse_response`, stream decoder and `classify_error` still read those bytes, for
//! usage, errors and the fallback rules, so they must understand the native protocol's
//! answers: a provider declares only the protocol it already translates to.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A client protocol the host serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Protocol {
    /// OpenAI chat completions (`POST /v1/chat/completions`).
    #[serde(rename = "openai.chat_completions")]
    OpenAiChat,
    /// Anthropic Messages (`POST /v1/messages`).
    #[serde(rename = "anthropic.messages")]
    AnthropicMessages,
    /// OpenAI Responses (`POST /v1/responses`).
    #[serde(rename = "openai.responses")]
    OpenAiResponses,
    /// OpenAI embeddings (`POST /v1/embeddings`).
    #[serde(rename = "openai.embeddings")]
    OpenAiEmbeddings,
    /// Anthropic's token count (`POST /v1/messages/count_tokens`): a Messages body,
    /// answered with `{"input_tokens": N}`, never a chat answer.
    #[serde(rename = "anthropic.count_tokens")]
    AnthropicCountTokens,
}

impl Protocol {
    /// The protocol's stable name (`anthropic.messages`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::OpenAiChat => "openai.chat_completions",
            Protocol::AnthropicMessages => "anthropic.messages",
            Protocol::OpenAiResponses => "openai.responses",
            Protocol::OpenAiEmbeddings => "openai.embeddings",
            Protocol::AnthropicCountTokens => "anthropic.count_tokens",
        }
    }
}

/// Where and how to send a client's native request body.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NativeRequest {
    /// `POST`, usually.
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Headers to send (never the API key: the host adds it). Headers the client sent
    /// that the protocol says to forward (such as `anthropic-beta`) replace these.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// Top-level body fields the upstream needs set (for example
    /// `stream_options.include_usage`, so a stream reports its usage). An object value
    /// is merged into the client's object of the same name; anything else replaces it.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set: Map<String, Value>,
}

impl NativeRequest {
    /// A `POST` of the client's JSON body to `url`.
    pub fn post_json(url: impl Into<String>) -> Self {
        NativeRequest {
            method: "POST".to_owned(),
            url: url.into(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            set: Map::new(),
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets a top-level body field.
    pub fn set(mut self, field: impl Into<String>, value: Value) -> Self {
        self.set.insert(field.into(), value);
        self
    }
}

/// What the host asks [`crate::Provider::native_request`] across the ABI.
#[doc(hidden)]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NativeQuery {
    /// The client's protocol.
    pub protocol: Protocol,
    /// The provider's model id.
    pub model: String,
    /// Whether the client asked for a stream.
    pub stream: bool,
}
