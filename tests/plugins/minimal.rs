//! A minimal valid provider, shared by the test-only plugins through `#[path]`.
//! `PANIC_AT` chooses where it panics on purpose: in `new` or in `build_request`.

use provider_sdk::{
    AssistantMessage, CannedError, ChatRequest, ChatResponse, Conformance, ErrorKind, FinishReason,
    HttpResponse, LocalResponse, Manifest, ModelInfo, Outbound, Provider, ProviderConfig,
    ProviderError, StreamDecoder, StreamEvent,
};

pub const CONSTRUCT: u8 = 1;
pub const BUILD_REQUEST: u8 = 2;

pub struct Minimal<const PANIC_AT: u8>;

fn canned(status: u16, body: &str) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![],
        chunks: vec![body.as_bytes().to_vec()],
        interval_ms: 0,
    }
}

impl<const PANIC_AT: u8> Provider for Minimal<PANIC_AT> {
    type Decoder = LineDecoder;

    fn manifest() -> Manifest {
        Manifest {
            name: env!("CARGO_PKG_NAME")
                .trim_start_matches("fixture-")
                .to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            models: vec![ModelInfo {
                id: "m".to_owned(),
                ..ModelInfo::default()
            }],
            ..Manifest::default()
        }
    }

    fn conformance() -> Conformance {
        Conformance {
            options: Default::default(),
            response: canned(200, "hello"),
            stream: canned(200, "hel\nlo\n"),
            error: Some(CannedError {
                response: canned(500, "down"),
                kind: ErrorKind::ProviderService,
            }),
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, ProviderError> {
        if PANIC_AT == CONSTRUCT {
            panic!("fixture panics in construct on purpose");
        }
        Ok(Minimal)
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        if PANIC_AT == BUILD_REQUEST {
            panic!("fixture panics in build_request on purpose");
        }
        let text = request.last_user_text().unwrap_or_default();
        Ok(Outbound::Local(canned(200, &text)))
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        Ok(ChatResponse {
            model: "m".to_owned(),
            message: AssistantMessage {
                content: Some(String::from_utf8_lossy(response.body).into_owned()),
                ..AssistantMessage::default()
            },
            finish_reason: FinishReason::Stop,
            ..ChatResponse::default()
        })
    }

    fn stream_decoder(&self) -> LineDecoder {
        LineDecoder::default()
    }
}

/// Each line of the body is a text delta.
#[derive(Default)]
pub struct LineDecoder {
    buffer: Vec<u8>,
}

impl StreamDecoder for LineDecoder {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            events.push(StreamEvent::TextDelta { text });
        }
        Ok(())
    }

    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        events.push(StreamEvent::Finish {
            reason: FinishReason::Stop,
        });
        Ok(())
    }
}
