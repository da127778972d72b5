//! The Anthropic provider: Claude through the native Messages API.
//!
//! A sans-IO translator, like every provider-host plugin. [`Anthropic::build_request`]
//! turns a canonical (OpenAI-shaped) chat request into `POST {base_url}/v1/messages`
//! with `anthropic-version: 2023-06-01`; the host adds the key as `x-api-key`.
//! Answers come back through [`Anthropic::parse_response`] or [`AnthropicDecoder`] (the
//! server-sent events of a streamed message), and errors through
//! [`Anthropic::classify_error`].
//!
//! # Configuration
//!
//! `base_url` defaults to `https://api.anthropic.com` (a URL that already ends in `/v1`
//! is accepted too). Options, all optional:
//!
//! - `anthropic_version`: the `anthropic-version` header (default `2023-06-01`);
//! - `anthropic_beta`: a beta name or a list of them, sent as `anthropic-beta`
//!   (e.g. `"interleaved-thinking-2025-05-14"`);
//! - `thinking`: the `thinking` object for requests that ask for nothing, e.g.
//!   `{"type": "enabled", "budget_tokens": 4096}`;
//! - `default_max_tokens`: the output limit for requests that set none (otherwise the
//!   model's max output from the manifest, otherwise 4096; Anthropic requires one).
//!
//! # Translation
//!
//! - System and developer messages are hoisted into `system`; consecutive messages of
//!   one role are merged (the API wants user and assistant to alternate); tool results
//!   become `tool_result` blocks of a user turn, ahead of any text; assistant tool calls
//!   become `tool_use` blocks with the parsed arguments as `input`.
//! - Images: base64 `data:` URLs become base64 sources (`application/pdf` a `document`),
//!   http(s) URLs `url` sources.
//! - `tool_choice`: auto → auto, none → none, required → any, a function → tool;
//!   `parallel_tool_calls: false` → `disable_parallel_tool_use`.
//! - `max_completion_tokens` (or `max_tokens`) → `max_tokens`; `stop` → `stop_sequences`;
//!   `user` → `metadata.user_id`; `temperature` as it is, and `top_p` only when no
//!   temperature is sent (the API reference says to alter one "but not both", and
//!   recent models reject the pair).
//! - Extended thinking: a client `thinking` field passes through; otherwise
//!   `reasoning_effort` becomes a budget (minimal 1024, low 2048, medium 8192, high
//!   16384, xhigh 32768 tokens, kept below `max_tokens`; `none` turns it off); otherwise
//!   the `thinking` option applies. With thinking on, a `temperature` other than 1, a
//!   `top_p` below 0.95 and `top_k` are left out, since the API rejects them.
//! - Of the unknown request fields only Anthropic's own (`top_k`, `container`,
//!   `mcp_servers`, `context_management`) are forwarded; the API rejects unknown fields.
//!   `response_format`, penalties and `seed` have no Messages API equivalent and are
//!   not sent.
//!
//! # Thinking round trip
//!
//! Anthropic signs every thinking block, and in a tool loop with thinking the next
//! request must carry the previous assistant turn's `thinking` and `redacted_thinking`
//! blocks back unmodified, or it fails. OpenAI-compatible clients echo back the
//! assistant message they received, so the blocks travel in that message:
//!
//! - the answer's `reasoning` (served as `reasoning_content`) holds the readable thinking
//!   text, for display;
//! - its `reasoning_details` hold the exact blocks, OpenRouter-style:
//!   `{"type": "reasoning.text", "text", "signature", "format": "anthropic-claude-v1"}`
//!   for a thinking block and `{"type": "reasoning.encrypted", "data", "format"}` for a
//!   redacted one. A stream sends each as one `ReasoningDetail` event when its block
//!   ends (the signature arrives last), so streamed and whole answers carry the same
//!   details;
//! - on a later turn, an assistant message's `reasoning_details` become its leading
//!   thinking blocks again, in order, when the request has thinking on. Details of
//!   another format, summaries and unsigned text are dropped (the API would reject
//!   them), and with thinking off no block is sent (the API fails a tool-use turn that
//!   carries thinking while thinking is disabled, and ignores it elsewhere).
//!
//! A client that echoes only `reasoning_content` cannot continue a thinking tool loop:
//! text without its signature cannot be replayed. The mapping lives in one module,
//! `reasoning`.
//!
//! # Usage
//!
//! `prompt_tokens` = `input_tokens` + `cache_read_input_tokens` +
//! `cache_creation_input_tokens` (Anthropic reports the three apart; the canonical count
//! includes cached input); `cached_prompt_tokens` = the cache read, `cache_write_tokens`
//! = the cache write; `completion_tokens` = `output_tokens` (thinking included).

mod fixtures;
mod reasoning;
mod request;
mod response;
mod stream;

use provider_kit::manifest::{manifest, Model};
use provider_sdk::{
    export_provider, serde_json, AuthScheme, CannedError, Capabilities, ChatRequest, ChatResponse,
    Conformance, ErrorKind, HttpRequest, HttpResponse, LocalResponse, Manifest, NativeRequest,
    Outbound, Protocol, Provider, ProviderConfig, ProviderError,
};
use serde::Deserialize;
use serde_json::{json, Value};

pub use stream::AnthropicDecoder;

/// The API's address when the config entry sets no `base_url`.
pub const DEFAULT_BASE_URL: &str = "https://api.anthropic.com";

/// The `anthropic-version` header sent unless the `anthropic_version` option says otherwise.
pub const DEFAULT_API_VERSION: &str = "2023-06-01";

/// Known models: id, context window, max output, and US dollars per million input,
/// output and cache-read tokens.
///
/// Sources: the models overview (<https://docs.claude.com/en/docs/about-claude/models/overview>,
/// as synced 2026-02-20: "Latest models" Opus 4.6, Sonnet 4.6, Haiku 4.5; "Legacy
/// models" Sonnet 4.5, Opus 4.5, Opus 4.1, Sonnet 4, Opus 4) and, for Claude Sonnet 3.7
/// and Haiku 3.5, its 2025 version; prices and cache-hit prices from the pricing page
/// (<https://docs.claude.com/en/docs/about-claude/pricing>). Claude Sonnet 3.7 and
/// Haiku 3.5 are deprecated (see
/// <https://docs.claude.com/en/docs/about-claude/model-deprecations>). Context windows
/// are the standard ones (Sonnet 4.x and Opus 4.6 offer 1M behind the
/// `context-1m-2025-08-07` beta). Aliases and dated snapshots are listed alike.
#[rustfmt::skip]
const MODELS: &[Model] = &[
    Model::new("claude-opus-4-6", 200_000).max_output(128_000).price(5.0, 25.0).cached(0.50),
    Model::new("claude-sonnet-4-6", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-haiku-4-5", 200_000).max_output(64_000).price(1.0, 5.0).cached(0.10),
    Model::new("claude-haiku-4-5-20251001", 200_000).max_output(64_000).price(1.0, 5.0).cached(0.10),
    Model::new("claude-opus-4-5", 200_000).max_output(64_000).price(5.0, 25.0).cached(0.50),
    Model::new("claude-opus-4-5-20251101", 200_000).max_output(64_000).price(5.0, 25.0).cached(0.50),
    Model::new("claude-sonnet-4-5", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-sonnet-4-5-20250929", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-opus-4-1", 200_000).max_output(32_000).price(15.0, 75.0).cached(1.50),
    Model::new("claude-opus-4-1-20250805", 200_000).max_output(32_000).price(15.0, 75.0).cached(1.50),
    Model::new("claude-opus-4-0", 200_000).max_output(32_000).price(15.0, 75.0).cached(1.50),
    Model::new("claude-opus-4-20250514", 200_000).max_output(32_000).price(15.0, 75.0).cached(1.50),
    Model::new("claude-sonnet-4-0", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-sonnet-4-20250514", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-3-7-sonnet-latest", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-3-7-sonnet-20250219", 200_000).max_output(64_000).price(3.0, 15.0).cached(0.30),
    Model::new("claude-3-5-haiku-latest", 200_000).max_output(8_192).price(0.80, 4.0).cached(0.08),
    Model::new("claude-3-5-haiku-20241022", 200_000).max_output(8_192).price(0.80, 4.0).cached(0.08),
];

/// The manifest's max output for `model`, if the model is listed.
fn model_max_output(model: &str) -> Option<u32> {
    MODELS
        .iter()
        .find(|m| m.id == model)
        .and_then(|m| m.max_output_tokens)
}

/// The Anthropic provider, for one config entry.
#[derive(Debug, Clone)]
pub struct Anthropic {
    messages_url: String,
    models_url: String,
    api_version: String,
    beta: Option<String>,
    thinking: Option<Value>,
    default_max_tokens: Option<u32>,
}

/// The entry's `options`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Options {
    anthropic_version: Option<String>,
    anthropic_beta: Option<Betas>,
    thinking: Option<Value>,
    default_max_tokens: Option<u32>,
}

/// `anthropic_beta`: one beta name or several.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Betas {
    One(String),
    Many(Vec<String>),
}

impl Provider for Anthropic {
    type Decoder = AnthropicDecoder;

    fn manifest() -> Manifest {
        manifest("anthropic", env!("CARGO_PKG_VERSION"))
            .description("Claude through Anthropic's Messages API")
            .capabilities(Capabilities {
                streaming: true,
                tools: true,
                vision: true,
                reasoning: true,
                embeddings: false,
            })
            .base_url(DEFAULT_BASE_URL)
            .api_key_env("ANTHROPIC_API_KEY")
            .auth(AuthScheme::Header {
                name: "x-api-key".to_owned(),
            })
            .models(MODELS)
            .build()
    }

    fn conformance() -> Conformance {
        let json_headers = || vec![("content-type".to_owned(), "application/json".to_owned())];
        // The stream arrives in pieces that cut an event in two, as a network may.
        let stream = fixtures::BASIC_STREAM.as_bytes();
        let cut = stream.len() / 3;
        Conformance {
            options: json!({}),
            response: LocalResponse {
                status: 200,
                headers: json_headers(),
                chunks: vec![fixtures::MESSAGE_RESPONSE.as_bytes().to_vec()],
                interval_ms: 0,
            },
            stream: LocalResponse {
                status: 200,
                headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
                chunks: vec![stream[..cut].to_vec(), stream[cut..].to_vec()],
                interval_ms: 0,
            },
            error: Some(CannedError {
                response: LocalResponse {
                    status: 529,
                    headers: json_headers(),
                    chunks: vec![fixtures::OVERLOADED_BODY.as_bytes().to_vec()],
                    interval_ms: 0,
                },
                kind: ErrorKind::ProviderService,
            }),
        }
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        let options: Options = match config.options {
            Value::Null => Options::default(),
            options => serde_json::from_value(options)
                .map_err(|e| ProviderError::invalid_request(format!("anthropic options: {e}")))?,
        };
        let base = config
            .base_url
            .as_deref()
            .unwrap_or(DEFAULT_BASE_URL)
            .trim_end_matches('/');
        if !base.starts_with("https://") && !base.starts_with("http://") {
            return Err(ProviderError::invalid_request(format!(
                "anthropic base_url `{base}` is not an http(s) URL"
            )));
        }
        let api = if base.ends_with("/v1") {
            base.to_owned()
        } else {
            format!("{base}/v1")
        };
        let messages_url = format!("{api}/messages");
        let models_url = format!("{api}/models");
        if let Some(thinking) = &options.thinking {
            if !thinking.is_object() {
                return Err(ProviderError::invalid_request(
                    "anthropic option `thinking` must be an object such as {\"type\": \"enabled\", \"budget_tokens\": 4096}",
                ));
            }
        }
        let beta = match options.anthropic_beta {
            None => None,
            Some(Betas::One(beta)) => Some(beta),
            Some(Betas::Many(betas)) => Some(betas.join(",")),
        }
        .filter(|b| !b.trim().is_empty());
        Ok(Anthropic {
            messages_url,
            models_url,
            api_version: options
                .anthropic_version
                .unwrap_or_else(|| DEFAULT_API_VERSION.to_owned()),
            beta,
            thinking: options.thinking,
            default_max_tokens: options.default_max_tokens,
        })
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        let settings = request::Settings {
            thinking: self.thinking.as_ref(),
            default_max_tokens: self.default_max_tokens,
            model_max_output: model_max_output(&request.model),
        };
        let body = request::build_body(request, &settings)?;
        let body = serde_json::to_vec(&body)
            .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the body: {e}")))?;
        let mut http = HttpRequest::post_json(&self.messages_url, body)
            .header("anthropic-version", &self.api_version);
        if let Some(beta) = &self.beta {
            http = http.header("anthropic-beta", beta);
        }
        Ok(Outbound::Http(http))
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        response::parse_message(response.body)
    }

    fn stream_decoder(&self) -> AnthropicDecoder {
        AnthropicDecoder::default()
    }

    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        response::classify_error(response)
    }

    /// A Messages request (or token count) from an Anthropic client goes to the same
    /// URL unchanged; the client's own `anthropic-version` and `anthropic-beta` replace
    /// these defaults.
    fn native_request(
        &self,
        protocol: Protocol,
        _model: &str,
        _stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        let url = match protocol {
            Protocol::AnthropicMessages => self.messages_url.clone(),
            // docs.anthropic.com/en/api/messages-count-tokens
            Protocol::AnthropicCountTokens => format!("{}/count_tokens", self.messages_url),
            _ => return Ok(None),
        };
        let mut native =
            NativeRequest::post_json(url).header("anthropic-version", &self.api_version);
        if let Some(beta) = &self.beta {
            native = native.header("anthropic-beta", beta);
        }
        Ok(Some(native))
    }

    /// Built from the entry's settings alone.
    fn native_requests_reusable(&self) -> bool {
        true
    }

    /// `GET /v1/models` (docs.anthropic.com/en/api/models-list): cheap, and it checks
    /// the key and the version header.
    fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        let http = HttpRequest {
            method: "GET".to_owned(),
            url: self.models_url.clone(),
            ..HttpRequest::default()
        }
        .header("anthropic-version", &self.api_version);
        Ok(Some(Outbound::Http(http)))
    }
}

export_provider!(Anthropic);

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::{
        FinishReason, Header, Message, ReasoningDetail, StreamDecoder, StreamEvent, ToolCall,
    };

    fn provider(base_url: Option<&str>, options: Value) -> Anthropic {
        Anthropic::new(ProviderConfig {
            name: "anthropic".into(),
            base_url: base_url.map(str::to_owned),
            options,
            resolved_base_url: None,
        })
        .unwrap()
    }

    fn http(outbound: Outbound) -> HttpRequest {
        match outbound {
            Outbound::Http(http) => http,
            Outbound::Local(_) => panic!("Anthropic is always called over HTTP"),
        }
    }

    fn sent(anthropic: &Anthropic, request: &ChatRequest) -> (HttpRequest, Value) {
        let http = http(anthropic.build_request(request).unwrap());
        let body = serde_json::from_slice(&http.body).unwrap();
        (http, body)
    }

    fn header<'a>(http: &'a HttpRequest, name: &str) -> Option<&'a str> {
        http.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_chat_is_a_json_post_to_v1_messages_with_the_version_header_and_no_key() {
        let anthropic = provider(None, Value::Null);
        let (http, body) = sent(
            &anthropic,
            &provider_sdk::samples::chat_request("claude-sonnet-4-5"),
        );
        assert_eq!(http.method, "POST");
        assert_eq!(http.url, "https://api.anthropic.com/v1/messages");
        assert_eq!(header(&http, "anthropic-version"), Some("2023-06-01"));
        assert_eq!(header(&http, "content-type"), Some("application/json"));
        assert_eq!(header(&http, "anthropic-beta"), None);
        assert!(
            header(&http, "x-api-key").is_none(),
            "the host adds the key, never the plugin"
        );
        assert_eq!(
            anthropic.auth(),
            AuthScheme::Header {
                name: "x-api-key".into()
            }
        );
        assert_eq!(
            body,
            json!({
                "model": "claude-sonnet-4-5",
                "max_tokens": 64,
                "system": [{"type": "text", "text": "You are a terse assistant."}],
                "messages": [{"role": "user", "content": [{"type": "text", "text": "Say hello."}]}],
                "temperature": 0.0
            })
        );
        let (_, streamed) = sent(
            &anthropic,
            &provider_sdk::samples::stream_request("claude-sonnet-4-5"),
        );
        assert_eq!(streamed["stream"], true);
        assert!(
            streamed.get("stream_options").is_none(),
            "Anthropic always streams usage"
        );
    }

    #[test]
    fn base_url_and_options_shape_the_request() {
        let request = ChatRequest::new("claude-opus-4-1", vec![Message::user("hi")]);
        for (base, url) in [
            (
                "https://proxy.example/anthropic/",
                "https://proxy.example/anthropic/v1/messages",
            ),
            (
                "http://127.0.0.1:9000/v1",
                "http://127.0.0.1:9000/v1/messages",
            ),
        ] {
            let (http, _) = sent(&provider(Some(base), Value::Null), &request);
            assert_eq!(http.url, url);
        }
        let anthropic = provider(
            None,
            json!({
                "anthropic_version": "2023-01-01",
                "anthropic_beta": ["interleaved-thinking-2025-05-14", "context-1m-2025-08-07"],
                "thinking": {"type": "enabled", "budget_tokens": 4096},
                "default_max_tokens": 8000
            }),
        );
        let (http, body) = sent(&anthropic, &request);
        assert_eq!(header(&http, "anthropic-version"), Some("2023-01-01"));
        assert_eq!(
            header(&http, "anthropic-beta"),
            Some("interleaved-thinking-2025-05-14,context-1m-2025-08-07")
        );
        assert_eq!(
            body["thinking"],
            json!({"type": "enabled", "budget_tokens": 4096})
        );
        assert_eq!(body["max_tokens"], 8000);
        let (_, body) = sent(&provider(None, Value::Null), &request);
        assert_eq!(
            body["max_tokens"], 32_000,
            "without a limit, the model's max output from the manifest"
        );
    }

    #[test]
    fn bad_configuration_is_refused_at_construction() {
        let build = |base: Option<&str>, options: Value| {
            Anthropic::new(ProviderConfig {
                name: "anthropic".into(),
                base_url: base.map(str::to_owned),
                options,
                resolved_base_url: None,
            })
        };
        assert!(build(None, json!({"api_key": "sk-ant-..."})).is_err());
        assert!(build(None, json!({"thinking": 4096})).is_err());
        assert!(build(Some("api.anthropic.com"), Value::Null).is_err());
        assert!(build(None, json!({"anthropic_beta": "a"})).is_ok());
    }

    #[test]
    fn the_manifest_describes_anthropic_and_prices_its_models() {
        let manifest = Anthropic::manifest();
        assert_eq!(manifest.name, "anthropic");
        assert_eq!(manifest.version, "1.0.0");
        let c = manifest.capabilities;
        assert!(c.streaming && c.tools && c.vision && c.reasoning && !c.embeddings);
        assert_eq!(
            manifest.defaults.api_key_env.as_deref(),
            Some("ANTHROPIC_API_KEY")
        );
        let sonnet = manifest
            .models
            .iter()
            .find(|m| m.id == "claude-sonnet-4-5-20250929")
            .unwrap();
        assert_eq!(
            (sonnet.context_window, sonnet.max_output_tokens),
            (Some(200_000), Some(64_000))
        );
        assert_eq!(
            sonnet.pricing,
            Some(provider_sdk::Pricing {
                input_per_mtok: 3.0,
                output_per_mtok: 15.0,
                cached_input_per_mtok: Some(0.30)
            })
        );
        let mut ids: Vec<_> = manifest.models.iter().map(|m| m.id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), manifest.models.len(), "no model is listed twice");
    }

    #[test]
    fn the_conformance_material_passes_the_hosts_checks() {
        let anthropic = provider(None, Anthropic::conformance().options);
        let conformance = Anthropic::conformance();
        let body = conformance.response.chunks.concat();
        let answer = anthropic
            .parse_response(&HttpResponse::new(200, &[], &body))
            .unwrap();
        assert_eq!(
            answer.message.content.as_deref(),
            Some("Hi! My name is Claude.")
        );

        let decode = |pieces: Vec<&[u8]>| {
            let mut decoder = anthropic.stream_decoder();
            let mut events = Vec::new();
            for piece in pieces {
                decoder.feed(piece, &mut events).unwrap();
            }
            decoder.finish(&mut events).unwrap();
            events
        };
        let whole = decode(
            conformance
                .stream
                .chunks
                .iter()
                .map(Vec::as_slice)
                .collect(),
        );
        let stream = conformance.stream.chunks.concat();
        let bytewise = decode(stream.chunks(1).collect());
        assert!(whole.contains(&StreamEvent::Finish {
            reason: FinishReason::Stop
        }));
        assert_eq!(
            whole
                .iter()
                .filter(|e| !matches!(e, StreamEvent::TextDelta { .. }))
                .count(),
            bytewise
                .iter()
                .filter(|e| !matches!(e, StreamEvent::TextDelta { .. }))
                .count()
        );

        let canned = conformance.error.unwrap();
        let headers: Vec<Header<'_>> = canned
            .response
            .headers
            .iter()
            .map(|(n, v)| Header::new(n, v))
            .collect();
        let body = canned.response.chunks.concat();
        let error =
            anthropic.classify_error(&HttpResponse::new(canned.response.status, &headers, &body));
        assert_eq!(error.kind, canned.kind);
        assert_eq!(error.status, Some(529));
    }

    /// The assistant message as an OpenAI client echoes it: the host serves the answer's
    /// `reasoning` as `reasoning_content`, next to `reasoning_details` and `tool_calls`.
    fn echoed(
        content: Option<&str>,
        reasoning: Option<&str>,
        details: &[ReasoningDetail],
        calls: &[ToolCall],
    ) -> Value {
        json!({
            "role": "assistant",
            "content": content,
            "reasoning_content": reasoning,
            "reasoning_details": details,
            "tool_calls": calls,
        })
    }

    #[test]
    fn a_thinking_tool_loop_sends_the_signed_thinking_block_back_unmodified() {
        // Turn 1: the extended-thinking guide's "thinking with tool use" answer.
        let anthropic = provider(None, Value::Null);
        let answer = anthropic
            .parse_response(&HttpResponse::new(
                200,
                &[],
                fixtures::THINKING_TOOL_USE_RESPONSE.as_bytes(),
            ))
            .unwrap();
        assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
        let m = &answer.message;
        // Turn 2: the client echoes the message and adds the tool's result.
        let wire = json!({
            "model": "claude-sonnet-4-5",
            "max_tokens": 16000,
            "thinking": {"type": "enabled", "budget_tokens": 10000},
            "tools": [{"type": "function", "function": {"name": "get_weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}}],
            "messages": [
                {"role": "user", "content": "What's the weather in Paris?"},
                echoed(m.content.as_deref(), m.reasoning.as_deref(), &m.reasoning_details, &m.tool_calls),
                {"role": "tool", "tool_call_id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "content": "Current temperature: 88°F"}
            ]
        });
        let request: ChatRequest = serde_json::from_value(wire).unwrap();
        let (_, body) = sent(&anthropic, &request);
        let documented: Value = serde_json::from_str(fixtures::THINKING_TOOL_USE_RESPONSE).unwrap();
        assert_eq!(
            body["messages"][1],
            json!({"role": "assistant", "content": documented["content"]}),
            "the assistant turn goes back block for block: thinking (with its signature), text, tool_use"
        );
        assert_eq!(
            body["messages"][2]["content"][0],
            json!({"type": "tool_result", "tool_use_id": "toolu_01CswdEQBMshySk6Y9DFKrfq", "content": "Current temperature: 88°F"})
        );

        let mut without_thinking = request.clone();
        without_thinking.extra.remove("thinking");
        let (_, body) = sent(&anthropic, &without_thinking);
        assert_eq!(
            body["messages"][1]["content"][0]["type"], "text",
            "with thinking off, no thinking block is sent back"
        );
    }

    #[test]
    fn a_streamed_thinking_turn_round_trips_like_a_whole_one() {
        let anthropic = provider(
            None,
            json!({"thinking": {"type": "enabled", "budget_tokens": 16000}}),
        );
        let mut decoder = anthropic.stream_decoder();
        let mut events = Vec::new();
        for byte in fixtures::THINKING_STREAM.as_bytes().chunks(1) {
            decoder.feed(byte, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        // What a client accumulates from the chunks.
        let (mut text, mut reasoning, mut details) = (String::new(), String::new(), Vec::new());
        for event in events {
            match event {
                StreamEvent::TextDelta { text: t } => text.push_str(&t),
                StreamEvent::ReasoningDelta { text: t } => reasoning.push_str(&t),
                StreamEvent::ReasoningDetail { detail } => details.push(detail),
                _ => {}
            }
        }
        let wire = json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "What is 27 * 453?"},
                echoed(Some(&text), Some(&reasoning), &details, &[]),
                {"role": "user", "content": "And 27 * 454?"}
            ]
        });
        let (_, body) = sent(&anthropic, &serde_json::from_value(wire).unwrap());
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking",
                 "thinking": "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231",
                 "signature": "EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds..."},
                {"type": "text", "text": "27 * 453 = 12,231"}
            ])
        );
        let only_text = json!({
            "model": "claude-sonnet-4-5",
            "messages": [
                {"role": "user", "content": "What is 27 * 453?"},
                {"role": "assistant", "content": text, "reasoning_content": reasoning},
                {"role": "user", "content": "And 27 * 454?"}
            ]
        });
        let (_, body) = sent(&anthropic, &serde_json::from_value(only_text).unwrap());
        assert_eq!(
            body["messages"][1]["content"],
            json!([{"type": "text", "text": "27 * 453 = 12,231"}]),
            "reasoning_content alone has no signature, so it is not replayed"
        );
    }
}
