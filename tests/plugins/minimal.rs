//! A minimal valid provider, shared by the test-only plugins through `#[path]`.
//!
//! The including crate sets, at its root: `PANIC_AT` (where it panics on purpose:
//! [`NOWHERE`], [`CONSTRUCT`] or [`BUILD_REQUEST`]) and `ANSWER` (the text it prefixes
//! every answer with, so tests can tell versions apart) and `NAME` (the manifest name).
//!
//! Its wire format is plain text: a whole answer is the body; a stream is one line per
//! text delta, `STREAM_LINES` lines `STREAM_INTERVAL_MS` apart (options override both),
//! then an empty line that ends it (so the decoder can tell a stream cut short).

use provider_sdk::{
    AssistantMessage, CannedError, ChatRequest, ChatResponse, Conformance, ErrorKind, FinishReason,
    HttpResponse, LocalResponse, Manifest, ModelInfo, Outbound, Provider, ProviderConfig,
    ProviderError, StreamDecoder, StreamEvent,
};
use serde::Deserialize;

#[allow(dead_code)]
pub const NOWHERE: u8 = 0;
#[allow(dead_code)]
pub const CONSTRUCT: u8 = 1;
#[allow(dead_code)]
pub const BUILD_REQUEST: u8 = 2;

/// The fixture provider.
pub struct Minimal {
    options: Options,
}

#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Options {
    stream_lines: u32,
    stream_interval_ms: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stream_lines: 3,
            stream_interval_ms: 0,
        }
    }
}

fn canned(status: u16, chunks: Vec<String>, interval_ms: u32) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![],
        chunks: chunks.into_iter().map(String::into_bytes).collect(),
        interval_ms,
    }
}

impl Provider for Minimal {
    type Decoder = LineDecoder;

    fn manifest() -> Manifest {
        Manifest {
            name: crate::NAME.to_owned(),
            capabilities: provider_sdk::Capabilities {
                streaming: true,
                ..Default::default()
            },
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
            response: canned(200, vec!["hello".to_owned()], 0),
            stream: canned(200, vec!["hel\nlo\n\n".to_owned()], 0),
            error: Some(CannedError {
                response: canned(500, vec!["down".to_owned()], 0),
                kind: ErrorKind::ProviderService,
            }),
        }
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        if crate::PANIC_AT == CONSTRUCT {
            panic!("fixture panics in construct on purpose");
        }
        let options = match config.options {
            serde_json::Value::Null => Options::default(),
            o => serde_json::from_value(o)
                .map_err(|e| ProviderError::invalid_request(e.to_string()))?,
        };
        Ok(Minimal { options })
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        if crate::PANIC_AT == BUILD_REQUEST {
            panic!("fixture panics in build_request on purpose");
        }
        let said = request.last_user_text().unwrap_or_default();
        let answer = format!("{}: {said}", crate::ANSWER);
        Ok(Outbound::Local(if request.stream {
            let lines = (0..self.options.stream_lines)
                .map(|i| format!("{} {i}\n", crate::ANSWER))
                .chain(["\n".to_owned()])
                .collect();
            canned(200, lines, self.options.stream_interval_ms)
        } else {
            canned(200, vec![answer], 0)
        }))
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

/// Each line of the body is a text delta (newline included); an empty line ends it.
#[derive(Default)]
pub struct LineDecoder {
    buffer: Vec<u8>,
    ended: bool,
}

impl StreamDecoder for LineDecoder {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        self.buffer.extend_from_slice(bytes);
        while let Some(end) = self.buffer.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.buffer.drain(..=end).collect();
            if self.ended {
                continue;
            }
            if line == b"\n" {
                self.ended = true;
                continue;
            }
            events.push(StreamEvent::TextDelta {
                text: String::from_utf8_lossy(&line).into_owned(),
            });
        }
        Ok(())
    }

    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !self.ended {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "the stream ended before its closing empty line",
            ));
        }
        events.push(StreamEvent::Finish {
            reason: FinishReason::Stop,
        });
        Ok(())
    }
}
