//! Specs of the Gemini provider, on real Gemini bytes (`fixtures/`, sources in
//! `fixtures/README.md`) and on requests built from canonical chats.

mod embeddings;
mod errors;
mod provider;
mod request;
mod response;
mod stream;

use provider_sdk::{
    serde_json, ChatRequest, ChatResponse, Header, HttpRequest, HttpResponse, Outbound, Provider,
    ProviderConfig, ProviderError, StreamDecoder, StreamEvent,
};
use serde_json::Value;

use crate::Gemini;

/// Real `generateContent` answers.
mod fixtures {
    pub const BASIC_REPLY: &[u8] =
        include_bytes!("../../fixtures/generate-content-basic-reply.json");
    pub const THINKING_REPLY: &[u8] =
        include_bytes!("../../fixtures/generate-content-thinking-reply.json");
    pub const THINKING_FUNCTION_CALL: &[u8] =
        include_bytes!("../../fixtures/generate-content-thinking-function-call.json");
    pub const PARALLEL_CALLS: &[u8] =
        include_bytes!("../../fixtures/generate-content-parallel-calls.json");
    pub const FINISH_REASON_SAFETY: &[u8] =
        include_bytes!("../../fixtures/generate-content-finish-reason-safety.json");
    pub const ONLY_PROMPT_FEEDBACK: &[u8] =
        include_bytes!("../../fixtures/generate-content-only-prompt-feedback.json");
    pub const IMPLICIT_CACHING: &[u8] =
        include_bytes!("../../fixtures/generate-content-implicit-caching.json");

    pub const STREAM_BASIC_REPLY: &[u8] = include_bytes!("../../fixtures/stream-basic-reply.sse");
    pub const STREAM_THINKING_REPLY: &[u8] =
        include_bytes!("../../fixtures/stream-thinking-reply.sse");
    pub const STREAM_THINKING_FUNCTION_CALL: &[u8] =
        include_bytes!("../../fixtures/stream-thinking-function-call.sse");
    pub const STREAM_PROMPT_BLOCKED: &[u8] =
        include_bytes!("../../fixtures/stream-prompt-blocked-safety.sse");
    pub const STREAM_RECITATION: &[u8] =
        include_bytes!("../../fixtures/stream-recitation-no-content.sse");

    pub const ERROR_429: &[u8] = include_bytes!("../../fixtures/error-429-resource-exhausted.json");
    pub const ERROR_400_API_KEY: &[u8] =
        include_bytes!("../../fixtures/error-400-api-key-invalid.json");
    pub const ERROR_400_TOKEN_COUNT: &[u8] =
        include_bytes!("../../fixtures/error-400-input-token-count.json");
    pub const ERROR_403: &[u8] = include_bytes!("../../fixtures/error-403-api-not-enabled.json");
    pub const ERROR_404: &[u8] = include_bytes!("../../fixtures/error-404-unknown-model.json");
}

fn gemini() -> Gemini {
    Gemini::new(ProviderConfig::default()).expect("default config")
}

fn http_request(provider: &Gemini, request: &ChatRequest) -> HttpRequest {
    match provider.build_request(request) {
        Ok(Outbound::Http(http)) => http,
        other => panic!("expected an HTTP request, got {other:?}"),
    }
}

/// The JSON body sent for `request` by a default instance.
fn body(request: &ChatRequest) -> Value {
    serde_json::from_slice(&http_request(&gemini(), request).body).expect("JSON body")
}

/// The error building `request` fails with.
fn refused(request: &ChatRequest) -> ProviderError {
    gemini()
        .build_request(request)
        .expect_err("the request should be refused")
}

fn parse(bytes: &[u8]) -> ChatResponse {
    gemini()
        .parse_response(&HttpResponse::new(200, &[], bytes))
        .expect("a parsable answer")
}

/// Decodes a body fed in the given pieces.
fn decode<'a>(
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<StreamEvent>, ProviderError> {
    let mut decoder = gemini().stream_decoder();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut events)?;
    }
    decoder.finish(&mut events)?;
    Ok(events)
}

fn decode_whole(body: &[u8]) -> Vec<StreamEvent> {
    decode([body]).expect("a complete stream")
}

fn classify(status: u16, headers: &[(&str, &str)], body: &[u8]) -> ProviderError {
    let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| Header::new(n, v)).collect();
    gemini().classify_error(&HttpResponse::new(status, &headers, body))
}
