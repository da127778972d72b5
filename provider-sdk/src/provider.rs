//! The trait a provider implements.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    AuthScheme, ChatRequest, ChatResponse, EmbeddingRequest, EmbeddingResponse, ErrorKind,
    HttpResponse, LocalResponse, Manifest, NativeRequest, Outbound, Protocol, ProviderError,
    StreamEvent,
};

/// A provider: a pure translator between the canonical types and one upstream API.
///
/// Implementations must not do I/O, spawn threads or keep thread-locals: the host owns
/// the network, may call any method from any thread, and retires old plugin versions
/// on reload. Panics are caught at the boundary and reported as
/// [`ErrorKind::PluginFault`], but they are bugs.
pub trait Provider: Sized + Send + Sync + 'static {
    /// The incremental decoder of this provider's streaming wire format.
    type Decoder: StreamDecoder;

    /// Describes the plugin: name, version, capabilities, defaults and models.
    fn manifest() -> Manifest;

    /// Canned upstream bytes the host uses to check the plugin before it serves.
    fn conformance() -> Conformance;

    /// Builds an instance for one config entry.
    fn new(config: ProviderConfig) -> Result<Self, ProviderError>;

    /// Where the host must put the API key; defaults to the manifest's choice.
    fn auth(&self) -> AuthScheme {
        Self::manifest().defaults.auth
    }

    /// Translates a canonical request into what the host should send.
    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError>;

    /// Translates a successful (2xx) non-streamed upstream response.
    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError>;

    /// A fresh decoder for one streamed response.
    fn stream_decoder(&self) -> Self::Decoder;

    /// Classifies a non-2xx upstream response.
    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        ProviderError::from_http(response)
    }

    /// The cheapest live request that proves the upstream answers and takes the key,
    /// such as listing models. `None` (the default) lets the host send a one-token chat
    /// to the manifest's first model instead. A 2xx answer means healthy.
    fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        Ok(None)
    }

    /// How to send a request a client wrote in `protocol` to this upstream unchanged,
    /// when the upstream speaks that protocol natively (exact passthrough, SDK 1.1);
    /// `model` is the provider's model id. `None` (the default) makes the host
    /// translate through the canonical types instead. Declare only the protocol your
    /// `parse_response`, stream decoder and `classify_error` already read.
    fn native_request(
        &self,
        protocol: Protocol,
        model: &str,
        stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        let _ = (protocol, model, stream);
        Ok(None)
    }

    /// Whether [`Provider::native_request`] answers the same for the same protocol,
    /// model and stream flag for as long as this instance lives, nothing in it
    /// depending on the request or the time (SDK 1.4). `true` lets the host ask once
    /// per model and reuse the answer, which saves a JSON round trip across the plugin
    /// boundary on every passed-through request. `false` (the default) asks every time.
    fn native_requests_reusable(&self) -> bool {
        false
    }

    /// Translates a canonical embeddings request into what the host should send
    /// (SDK 1.2). The host only asks providers whose manifest declares
    /// `capabilities.embeddings`; the default refuses, for providers without embeddings.
    fn build_embedding_request(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<Outbound, ProviderError> {
        Err(no_embeddings(&request.model))
    }

    /// Translates a successful (2xx) embeddings answer (SDK 1.2): one vector per input
    /// item, in the input's order. Non-2xx answers go to `classify_error`, as for chat.
    fn parse_embedding_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<EmbeddingResponse, ProviderError> {
        let _ = response;
        Err(no_embeddings(""))
    }
}

/// The error of a provider that serves no embeddings.
fn no_embeddings(model: &str) -> ProviderError {
    let model = match model {
        "" => String::new(),
        model => format!(" (asked for `{model}`)"),
    };
    ProviderError::invalid_request(format!("this provider has no embeddings{model}"))
}

/// Turns a streamed response body into canonical events, fed in arbitrary pieces.
///
/// The host calls `feed` with whatever bytes arrived — a piece may end anywhere, even
/// inside a UTF-8 character — and `finish` once at the end of the body.
pub trait StreamDecoder: Send + 'static {
    /// Consumes `bytes`, appending every event that is now complete to `events`.
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// Ends the stream: flushes what is buffered, or fails if the body stopped early.
    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError>;

    /// Whether the stream reached its protocol's terminator (OpenAI's `data: [DONE]`,
    /// Anthropic's `message_stop`): the answer is whole, and the host ends the stream
    /// there instead of waiting for the upstream to close its connection, which some
    /// keep open. Since SDK 1.2; a protocol without a terminator keeps the default, and
    /// its streams end when the body does.
    fn is_complete(&self) -> bool {
        false
    }
}

/// What the host tells a provider instance about its config entry.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProviderConfig {
    /// The entry's name: the routing prefix (`openrouter` in `openrouter/...`).
    pub name: String,
    /// The entry's upstream base URL, when the operator set one; otherwise the plugin
    /// uses its own default (the manifest's, or a preset's).
    #[serde(default)]
    pub base_url: Option<String>,
    /// Provider-specific options from the entry, as written there.
    #[serde(default)]
    pub options: Value,
    /// The base URL the host resolved: the entry's `base_url`, else the manifest's
    /// `defaults.base_url` (SDK 1.3; `None` from older hosts, and when neither is set).
    /// A plugin with one upstream reads this; one whose default depends on its options
    /// (a preset) reads `base_url` to know whether the operator chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_base_url: Option<String>,
}

impl ProviderConfig {
    /// The upstream's base URL without a trailing `/`: [`ProviderConfig::base_url`],
    /// else [`ProviderConfig::resolved_base_url`], else `default` (for hosts older than
    /// SDK 1.3, which resolve nothing).
    pub fn base_url_or(&self, default: &str) -> String {
        [self.base_url.as_deref(), self.resolved_base_url.as_deref()]
            .into_iter()
            .flatten()
            .map(|u| u.trim().trim_end_matches('/'))
            .find(|u| !u.is_empty())
            .unwrap_or(default.trim_end_matches('/'))
            .to_owned()
    }
}

/// Canned material for the host's conformance check, in the provider's own wire format.
///
/// The host builds a request for [`crate::samples::chat_request`], parses `response`,
/// decodes `stream` whole and split at every byte (the events must agree), and checks
/// that `error` is classified as its declared kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Conformance {
    /// Options to construct the provider with for the check.
    #[serde(default)]
    pub options: Value,
    /// A successful non-streamed answer.
    pub response: LocalResponse,
    /// A successful streamed answer.
    pub stream: LocalResponse,
    /// An error response and the kind it must be classified as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<CannedError>,
}

/// An upstream error response and the kind it stands for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CannedError {
    /// The response as the upstream sends it.
    pub response: LocalResponse,
    /// The kind `classify_error` must give it.
    pub kind: ErrorKind,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_url_is_the_entrys_then_the_hosts_resolution_then_the_plugins_default() {
        let mut config = ProviderConfig {
            resolved_base_url: Some("https://default.example/v1/".into()),
            ..ProviderConfig::default()
        };
        assert_eq!(
            config.base_url_or("https://fallback"),
            "https://default.example/v1"
        );
        config.base_url = Some(" https://entry.example/ ".into());
        assert_eq!(
            config.base_url_or("https://fallback"),
            "https://entry.example"
        );
        assert_eq!(
            ProviderConfig::default().base_url_or("https://fallback/"),
            "https://fallback",
            "a host older than 1.3 resolves nothing"
        );
    }

    #[test]
    fn a_config_from_an_older_host_has_no_resolved_url_and_an_old_plugin_ignores_it() {
        let old: ProviderConfig =
            serde_json::from_str(r#"{"name": "x", "base_url": null, "options": {}}"#).unwrap();
        assert_eq!(old.resolved_base_url, None);
        let new = serde_json::to_value(ProviderConfig {
            resolved_base_url: Some("https://a".into()),
            ..ProviderConfig::default()
        })
        .unwrap();
        assert_eq!(new["resolved_base_url"], "https://a");
    }
}
