//! The mock provider: deterministic answers with no network and no key.
//!
//! It is also the template for a new provider. Like every provider it only translates:
//! `build_request` returns the "upstream" answer as raw bytes ([`Outbound::Local`]), and
//! the host runs those bytes through `parse_response` or the stream decoder exactly as
//! it would run a real upstream's. Its wire format is the SDK's canonical types as JSON,
//! streamed as SSE (`data: {event}` ... `data: [DONE]`).
//!
//! Models:
//! - `echo`: answers with the last user message.
//! - `tool`: calls the first tool offered, filling its required arguments.
//! - `long`: streams a long answer (`max_completion_tokens` or `max_tokens` words, 256 by
//!   default) in one-word chunks,
//!   `long_interval_ms` (option, default 0) apart.
//! - `fail`: fails with the error kind named by the last user message (`rate_limited`,
//!   `authentication`, ...; option `fail_kind` otherwise; `provider_service` by default).
//!   `plugin_fault` makes it panic, to exercise the host's panic barrier.
//!
//! - `embed` (embeddings only): a deterministic unit vector per input, derived from a
//!   hash of the input, `dimensions` long (8 by default, at most 4096). The same input
//!   always gets the same vector. `fail` fails embeddings too, with the kind its first
//!   input names.
//!
//! Tokens are counted as whitespace-separated words (for token-array inputs, the ids).

use provider_kit::{
    fixtures,
    manifest::{manifest, Model},
    request,
    sse::{JsonEvents, JsonSseDecoder},
};
use provider_sdk::{
    export_provider, serde_json, AssistantMessage, Capabilities, ChatRequest, ChatResponse,
    Conformance, EmbeddingInput, EmbeddingRequest, EmbeddingResponse, EmbeddingUsage, ErrorKind,
    FinishReason, HttpResponse, LocalResponse, Manifest, Message, Outbound, Provider,
    ProviderConfig, ProviderError, StreamEvent, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The mock provider.
pub struct Mock {
    options: MockOptions,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct MockOptions {
    /// Pause between the chunks of the `long` model.
    long_interval_ms: u32,
    /// Error kind of the `fail` model when the message names none.
    fail_kind: Option<ErrorKind>,
}

const ERROR_KIND_HEADER: &str = "x-mock-error-kind";

/// The mock's embedding model.
pub const EMBED_MODEL: &str = "embed";

/// The length of the mock's vectors when the request sets no `dimensions`.
pub const DEFAULT_DIMENSIONS: u32 = 8;

/// The longest vector the mock makes.
pub const MAX_DIMENSIONS: u32 = 4096;

/// The most words `long` generates, whatever `max_tokens` asks.
const LONG_MAX_WORDS: usize = 4096;

/// The chat models cost the same (the figures are only there to exercise cost
/// accounting); `embed` is priced like a small embedding model.
const MODELS: &[Model] = &[
    Model::new("echo", 32_768)
        .max_output(4_096)
        .price(1.0, 2.0)
        .cached(0.5),
    Model::new("tool", 32_768)
        .max_output(4_096)
        .price(1.0, 2.0)
        .cached(0.5),
    Model::new("long", 32_768)
        .max_output(4_096)
        .price(1.0, 2.0)
        .cached(0.5),
    Model::new("fail", 32_768)
        .max_output(4_096)
        .price(1.0, 2.0)
        .cached(0.5),
    Model::new(EMBED_MODEL, 8_192).price(0.02, 0.0),
];

impl Provider for Mock {
    type Decoder = MockDecoder;

    fn manifest() -> Manifest {
        manifest("mock", env!("CARGO_PKG_VERSION"))
            .description("Deterministic answers, no network, no key")
            .capabilities(Capabilities {
                streaming: true,
                tools: true,
                embeddings: true,
                ..Capabilities::default()
            })
            .models(MODELS)
            .build()
    }

    fn conformance() -> Conformance {
        let mock = Mock {
            options: MockOptions::default(),
        };
        let local = |request: ChatRequest| match mock.build_request(&request) {
            Ok(Outbound::Local(local)) => local,
            _ => unreachable!("the mock answers every sample locally"),
        };
        let mut failing = provider_sdk::samples::chat_request("fail");
        failing.messages.push(Message::user("rate_limited"));
        Conformance {
            options: json!({}),
            response: local(provider_sdk::samples::chat_request("echo")),
            stream: local(provider_sdk::samples::stream_request("echo")),
            error: Some(fixtures::error(local(failing), ErrorKind::RateLimited)),
        }
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        Ok(Mock {
            options: request::options("mock", &config)?,
        })
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        let prompt_tokens = request.messages.iter().map(message_words).sum();
        let (message, finish_reason, interval_ms) = match request.model.as_str() {
            "echo" => (
                text(request.last_user_text().unwrap_or_default()),
                FinishReason::Stop,
                0,
            ),
            "tool" => tool_call(request),
            "long" => {
                // Capped: a client's `max_tokens` must not make the mock build an answer
                // of any size it names.
                let limit = request::token_limit(request);
                let words = (limit.unwrap_or(256) as usize).min(LONG_MAX_WORDS);
                let answer = (0..words).map(|i| format!("word{i}")).collect::<Vec<_>>();
                (
                    text(answer.join(" ")),
                    FinishReason::Stop,
                    self.options.long_interval_ms,
                )
            }
            "fail" => {
                return Ok(Outbound::Local(
                    self.failure(request.last_user_text().as_deref()),
                ))
            }
            EMBED_MODEL => {
                let body = json!({"error": {"message": "mock's `embed` is an embedding model: POST /v1/embeddings, or chat with echo, tool, long or fail", "code": "invalid_request"}});
                return Ok(Outbound::Local(error_response(
                    400,
                    ErrorKind::InvalidRequest,
                    &body,
                )));
            }
            other => {
                let body = json!({"error": {"message": format!("mock has no model `{other}`; try echo, tool, long or fail"), "code": "model_not_found"}});
                return Ok(Outbound::Local(error_response(
                    404,
                    ErrorKind::ModelNotFound,
                    &body,
                )));
            }
        };
        let completion_tokens = message.content.as_deref().map(words).unwrap_or(0)
            + message
                .tool_calls
                .iter()
                .map(|c| words(&c.function.arguments))
                .sum::<u64>();
        let response = ChatResponse {
            id: Some(format!("mock-{:016x}", fingerprint(request))),
            model: request.model.clone(),
            message,
            finish_reason,
            usage: Some(Usage {
                prompt_tokens,
                completion_tokens,
                ..Usage::default()
            }),
        };
        Ok(Outbound::Local(if request.stream {
            stream_response(&response, interval_ms)
        } else {
            fixtures::json(
                200,
                &serde_json::to_string(&response).expect("serializable"),
            )
        }))
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        serde_json::from_slice(response.body)
            .map_err(|e| ProviderError::plugin_fault(format!("mock sent a malformed answer: {e}")))
    }

    fn stream_decoder(&self) -> MockDecoder {
        MockDecoder::default()
    }

    fn build_embedding_request(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<Outbound, ProviderError> {
        Ok(Outbound::Local(self.embeddings(request)))
    }

    fn parse_embedding_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<EmbeddingResponse, ProviderError> {
        serde_json::from_slice(response.body).map_err(|e| {
            ProviderError::plugin_fault(format!("mock sent malformed embeddings: {e}"))
        })
    }

    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        let mut error = ProviderError::from_http(response);
        if let Some(kind) = response
            .header(ERROR_KIND_HEADER)
            .and_then(ErrorKind::parse)
        {
            error.kind = kind;
        }
        error
    }
}

impl Mock {
    /// The mock's embeddings answer (its wire format is [`EmbeddingResponse`] as JSON),
    /// or an error response.
    fn embeddings(&self, request: &EmbeddingRequest) -> LocalResponse {
        let refuse = |status: u16, kind: ErrorKind, message: String| {
            let body = json!({"error": {"message": message, "code": kind.as_str()}});
            error_response(status, kind, &body)
        };
        match request.model.as_str() {
            EMBED_MODEL => {}
            "fail" => {
                let first = match &request.input {
                    EmbeddingInput::Texts(texts) => texts.first().map(String::as_str),
                    EmbeddingInput::Tokens(_) => None,
                };
                return self.failure(first);
            }
            "echo" | "tool" | "long" => {
                return refuse(
                    400,
                    ErrorKind::InvalidRequest,
                    format!(
                        "mock's `{}` is a chat model; its embedding model is `{EMBED_MODEL}`",
                        request.model
                    ),
                )
            }
            other => {
                return refuse(
                    404,
                    ErrorKind::ModelNotFound,
                    format!("mock has no model `{other}`; its embedding model is `{EMBED_MODEL}`"),
                )
            }
        }
        let dimensions = request.dimensions.unwrap_or(DEFAULT_DIMENSIONS);
        if dimensions == 0 || dimensions > MAX_DIMENSIONS {
            return refuse(
                400,
                ErrorKind::InvalidRequest,
                format!("mock's `{EMBED_MODEL}` makes vectors of 1 to {MAX_DIMENSIONS} dimensions, not {dimensions}"),
            );
        }
        let (embeddings, tokens): (Vec<Vec<f32>>, u64) = match &request.input {
            EmbeddingInput::Texts(texts) => (
                texts
                    .iter()
                    .map(|t| unit_vector(t.as_bytes(), dimensions))
                    .collect(),
                texts.iter().map(|t| words(t)).sum(),
            ),
            EmbeddingInput::Tokens(arrays) => (
                arrays
                    .iter()
                    .map(|ids| {
                        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_le_bytes()).collect();
                        unit_vector(&bytes, dimensions)
                    })
                    .collect(),
                arrays.iter().map(|ids| ids.len() as u64).sum(),
            ),
        };
        let response = EmbeddingResponse {
            model: EMBED_MODEL.to_owned(),
            embeddings,
            usage: Some(EmbeddingUsage {
                prompt_tokens: tokens,
            }),
        };
        LocalResponse {
            status: 200,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            chunks: vec![serde_json::to_vec(&response).expect("serializable")],
            interval_ms: 0,
        }
    }

    fn failure(&self, said: Option<&str>) -> LocalResponse {
        let named = said.and_then(|t| ErrorKind::parse(t.trim()));
        let kind = named
            .or(self.options.fail_kind)
            .unwrap_or(ErrorKind::ProviderService);
        if kind == ErrorKind::PluginFault {
            panic!("the mock fails with a panic on purpose (plugin_fault)");
        }
        let status = match kind {
            ErrorKind::Authentication => 401,
            ErrorKind::RateLimited | ErrorKind::QuotaExceeded => 429,
            ErrorKind::ContextWindowExceeded | ErrorKind::InvalidRequest => 400,
            ErrorKind::ModelNotFound => 404,
            ErrorKind::Timeout => 504,
            ErrorKind::Connection => 502,
            ErrorKind::ProviderService | ErrorKind::PluginFault => 503,
        };
        let body = json!({"error": {"message": format!("mock failure on purpose: {kind}"), "code": kind.as_str()}});
        let mut response = error_response(status, kind, &body);
        if kind == ErrorKind::RateLimited {
            response
                .headers
                .push(("retry-after-ms".to_owned(), "100".to_owned()));
        }
        response
    }
}

fn error_response(status: u16, kind: ErrorKind, body: &Value) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            (ERROR_KIND_HEADER.to_owned(), kind.as_str().to_owned()),
        ],
        chunks: vec![serde_json::to_vec(body).expect("serializable")],
        interval_ms: 0,
    }
}

fn text(content: String) -> AssistantMessage {
    AssistantMessage {
        content: Some(content),
        ..AssistantMessage::default()
    }
}

/// Calls the first tool offered with its required arguments filled in.
fn tool_call(request: &ChatRequest) -> (AssistantMessage, FinishReason, u32) {
    let Some(tool) = request.tools.first() else {
        return (
            text("no tools were offered".to_owned()),
            FinishReason::Stop,
            0,
        );
    };
    let said = request.last_user_text().unwrap_or_default();
    let schema = tool.function.parameters.clone().unwrap_or(Value::Null);
    let mut arguments = Map::new();
    for name in schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        let value = match schema["properties"][name]["type"].as_str() {
            Some("number") | Some("integer") => json!(0),
            Some("boolean") => json!(false),
            Some("array") => json!([]),
            Some("object") => json!({}),
            _ => json!(said),
        };
        arguments.insert(name.to_owned(), value);
    }
    let call = ToolCall::function(
        format!("call_{:08x}", fingerprint(request) as u32),
        tool.function.name.clone(),
        Value::Object(arguments).to_string(),
    );
    let message = AssistantMessage {
        tool_calls: vec![call],
        ..AssistantMessage::default()
    };
    (message, FinishReason::ToolCalls, 0)
}

/// The answer as SSE: one event per word of text, tool arguments in two pieces.
fn stream_response(response: &ChatResponse, interval_ms: u32) -> LocalResponse {
    let mut events = vec![StreamEvent::Start {
        id: response.id.clone(),
        model: Some(response.model.clone()),
    }];
    if let Some(content) = &response.message.content {
        events.extend(
            content
                .split_inclusive(' ')
                .map(|word| StreamEvent::TextDelta {
                    text: word.to_owned(),
                }),
        );
    }
    for (index, call) in response.message.tool_calls.iter().enumerate() {
        let index = index as u32;
        events.push(StreamEvent::ToolCallStart {
            index,
            id: call.id.clone(),
            name: call.function.name.clone(),
        });
        let args = &call.function.arguments;
        let mut half = args.len() / 2;
        while !args.is_char_boundary(half) {
            half += 1;
        }
        for piece in [&args[..half], &args[half..]] {
            events.push(StreamEvent::ToolCallDelta {
                index,
                arguments: piece.to_owned(),
            });
        }
    }
    if let Some(usage) = response.usage {
        events.push(StreamEvent::Usage { usage });
    }
    events.push(StreamEvent::Finish {
        reason: response.finish_reason,
    });
    let mut chunks: Vec<Vec<u8>> = events
        .iter()
        .map(|e| {
            format!(
                "data: {}\n\n",
                serde_json::to_string(e).expect("serializable")
            )
            .into_bytes()
        })
        .collect();
    chunks.push(b"data: [DONE]\n\n".to_vec());
    LocalResponse {
        status: 200,
        headers: vec![("content-type".to_owned(), "text/event-stream".to_owned())],
        chunks,
        interval_ms,
    }
}

/// Decodes the mock's SSE stream.
pub type MockDecoder = JsonSseDecoder<MockEvents>;

/// The mock's stream events: each `data:` is a canonical event, then `data: [DONE]`.
#[derive(Default)]
pub struct MockEvents;

impl JsonEvents for MockEvents {
    const UPSTREAM: &'static str = "mock";
    const DONE: Option<&'static str> = Some("[DONE]");

    fn event(
        &mut self,
        _name: Option<&str>,
        data: Value,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        let event = serde_json::from_value(data).map_err(|e| self.malformed(&e.to_string()))?;
        events.push(event);
        Ok(())
    }

    fn error_event(&self, _name: Option<&str>, _data: &Value) -> Option<ProviderError> {
        None
    }

    fn malformed(&self, detail: &str) -> ProviderError {
        ProviderError::plugin_fault(format!("mock sent a malformed stream event: {detail}"))
    }

    fn end(&mut self, done: bool, _events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !done {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "the stream ended before [DONE]",
            ));
        }
        Ok(())
    }
}

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn message_words(message: &Message) -> u64 {
    match message {
        Message::System { content, .. }
        | Message::Developer { content, .. }
        | Message::User { content, .. }
        | Message::Tool { content, .. } => words(&content.text()),
        Message::Assistant {
            content,
            tool_calls,
            ..
        } => {
            content.as_ref().map(|c| words(&c.text())).unwrap_or(0)
                + tool_calls
                    .iter()
                    .map(|c| words(&c.function.arguments))
                    .sum::<u64>()
        }
    }
}

/// A unit vector of `dimensions` numbers determined by `input`: a hash of the input
/// seeds a splitmix64 sequence, each number is drawn from [-1, 1), then the vector is
/// scaled to length 1.
fn unit_vector(input: &[u8], dimensions: u32) -> Vec<f32> {
    let mut state = fnv1a(input);
    let mut vector: Vec<f64> = (0..dimensions)
        .map(|_| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
        })
        .collect();
    let norm = vector.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.iter_mut().for_each(|x| *x /= norm);
    }
    vector.into_iter().map(|x| x as f32).collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// A stable hash of the conversation, so ids are deterministic.
fn fingerprint(request: &ChatRequest) -> u64 {
    fnv1a(
        serde_json::to_string(&request.messages)
            .unwrap_or_default()
            .as_bytes(),
    )
}

export_provider!(Mock);

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::StreamDecoder;

    fn mock() -> Mock {
        Mock::new(ProviderConfig::default()).unwrap()
    }

    fn answer(request: &ChatRequest) -> ChatResponse {
        let Outbound::Local(local) = mock().build_request(request).unwrap() else {
            panic!("mock answers locally")
        };
        let body = local.chunks.concat();
        mock()
            .parse_response(&HttpResponse::new(local.status, &[], &body))
            .unwrap()
    }

    fn stream(request: &ChatRequest) -> Vec<StreamEvent> {
        let Outbound::Local(local) = mock().build_request(request).unwrap() else {
            panic!("mock answers locally")
        };
        let mut decoder = mock().stream_decoder();
        let mut events = Vec::new();
        for chunk in &local.chunks {
            decoder.feed(chunk, &mut events).unwrap();
        }
        decoder.finish(&mut events).unwrap();
        events
    }

    #[test]
    fn echo_repeats_the_last_user_message_and_counts_words() {
        let request = ChatRequest::new(
            "echo",
            vec![Message::system("be nice"), Message::user("hello there")],
        );
        let response = answer(&request);
        assert_eq!(response.message.content.as_deref(), Some("hello there"));
        assert_eq!(
            response.usage,
            Some(Usage {
                prompt_tokens: 4,
                completion_tokens: 2,
                ..Usage::default()
            })
        );
    }

    #[test]
    fn tool_calls_the_first_tool_with_its_required_arguments() {
        let response = answer(&provider_sdk::samples::tool_request("tool"));
        assert_eq!(response.finish_reason, FinishReason::ToolCalls);
        let call = &response.message.tool_calls[0];
        assert_eq!(call.function.name, "get_weather");
        assert_eq!(call.function.arguments, r#"{"city":"Weather in Paris?"}"#);
    }

    #[test]
    fn long_generates_at_most_its_cap_whatever_max_tokens_asks() {
        let mut request = provider_sdk::samples::stream_request("long");
        request.max_tokens = Some(u32::MAX);
        let deltas = stream(&request)
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        assert_eq!(deltas, LONG_MAX_WORDS);
    }

    #[test]
    fn long_streams_one_word_per_event() {
        let mut request = provider_sdk::samples::stream_request("long");
        request.max_tokens = Some(50);
        let events = stream(&request);
        let deltas = events
            .iter()
            .filter(|e| matches!(e, StreamEvent::TextDelta { .. }))
            .count();
        assert_eq!(deltas, 50);
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::Stop
            })
        );
    }

    #[test]
    fn fail_answers_with_the_named_kind() {
        let mut request = ChatRequest::new("fail", vec![Message::user("quota_exceeded")]);
        let Outbound::Local(local) = mock().build_request(&request).unwrap() else {
            panic!()
        };
        let headers: Vec<_> = local
            .headers
            .iter()
            .map(|(n, v)| provider_sdk::Header::new(n, v))
            .collect();
        let body = local.chunks.concat();
        let error = mock().classify_error(&HttpResponse::new(local.status, &headers, &body));
        assert_eq!(
            (error.kind, error.status),
            (ErrorKind::QuotaExceeded, Some(429))
        );
        request.messages = vec![Message::user("plugin_fault")];
        let panicked = std::panic::catch_unwind(|| mock().build_request(&request));
        assert!(panicked.is_err(), "plugin_fault panics on purpose");
    }

    fn embed(request: &EmbeddingRequest) -> EmbeddingResponse {
        let Outbound::Local(local) = mock().build_embedding_request(request).unwrap() else {
            panic!("mock answers locally")
        };
        assert_eq!(
            local.status,
            200,
            "{:?}",
            String::from_utf8_lossy(&local.chunks.concat())
        );
        let body = local.chunks.concat();
        mock()
            .parse_embedding_response(&HttpResponse::new(200, &[], &body))
            .unwrap()
    }

    #[test]
    fn embed_gives_the_same_unit_vector_for_the_same_input() {
        let mut request = EmbeddingRequest::texts(
            "embed",
            vec!["a cat".into(), "a dog".into(), "a cat".into()],
        );
        let answer = embed(&request);
        assert_eq!(answer.embeddings.len(), 3);
        assert_eq!(answer.embeddings[0], answer.embeddings[2]);
        assert_ne!(answer.embeddings[0], answer.embeddings[1]);
        for vector in &answer.embeddings {
            assert_eq!(vector.len(), DEFAULT_DIMENSIONS as usize);
            let norm: f32 = vector.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        }
        assert_eq!(answer.usage, Some(EmbeddingUsage { prompt_tokens: 6 }));
        request.dimensions = Some(3);
        assert_eq!(embed(&request).embeddings[1].len(), 3);
    }

    #[test]
    fn a_stream_cut_before_done_is_a_connection_error() {
        let mut decoder = mock().stream_decoder();
        let mut events = Vec::new();
        decoder
            .feed(
                b"data: {\"type\":\"text_delta\",\"text\":\"hi\"}\n\n",
                &mut events,
            )
            .unwrap();
        assert_eq!(
            decoder.finish(&mut events).unwrap_err().kind,
            ErrorKind::Connection
        );
    }
}
