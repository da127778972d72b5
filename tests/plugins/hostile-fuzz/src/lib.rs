//! A provider that answers its own samples correctly and breaks on upstream bytes the
//! validation fuzzer reliably makes, for the fuzz tests.
//!
//! Its wire format is JSON: an answer is `{"text": ...}`; a stream is one JSON object
//! per line, `{"text": ...}` each, ended by `{"end": true}`; an error is
//! `{"error": ...}`. What it does on bytes that are not that depends on [`MODE`], which
//! tests rewrite in a copy of the file (same length):
//! - `segv_` (as built): `parse_response` dereferences a null pointer on a body that is
//!   not JSON, such as a truncated one;
//! - `panic`: the stream decoder panics on a line that is not JSON, such as a line cut
//!   in the middle of its JSON;
//! - `loop_`: `classify_error` never returns on an error body that is not JSON;
//! - `lenit`: the decoder is lenient, ending a cut stream without an error.
//!
//! In every mode it answers well-formed bytes well.

use provider_sdk::{
    AssistantMessage, CannedError, Capabilities, ChatRequest, ChatResponse, Conformance, ErrorKind,
    FinishReason, HttpResponse, LocalResponse, Manifest, ModelInfo, Outbound, Provider,
    ProviderConfig, ProviderError, StreamDecoder, StreamEvent,
};
use serde_json::{json, Value};

/// Rewritten in place (same length) by tests that want another mode.
#[used]
static MODE: [u8; 23] = *b"HOSTILE-FUZZ-MODE:segv_";

fn mode() -> [u8; 5] {
    // Volatile, so the compiler cannot fold the bytes a test rewrites.
    // SAFETY: reads a static.
    let bytes = unsafe { std::ptr::read_volatile(&MODE) };
    let mut mode = [0; 5];
    mode.copy_from_slice(&bytes[18..]);
    mode
}

/// The fixture provider.
pub struct HostileFuzz;

fn local(status: u16, chunks: Vec<Vec<u8>>) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        chunks,
        interval_ms: 0,
    }
}

fn line(value: Value) -> Vec<u8> {
    let mut line = value.to_string().into_bytes();
    line.push(b'\n');
    line
}

impl Provider for HostileFuzz {
    type Decoder = LineDecoder;

    fn manifest() -> Manifest {
        Manifest {
            name: "hostile-fuzz".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            capabilities: Capabilities {
                streaming: true,
                ..Capabilities::default()
            },
            models: vec![ModelInfo {
                id: "m".to_owned(),
                ..ModelInfo::default()
            }],
            ..Manifest::default()
        }
    }

    fn conformance() -> Conformance {
        Conformance {
            options: Value::Null,
            response: local(200, vec![line(json!({"text": "hello"}))]),
            stream: local(
                200,
                vec![
                    line(json!({"text": "hel"})),
                    line(json!({"text": "lo"})),
                    line(json!({"end": true})),
                ],
            ),
            error: Some(CannedError {
                response: local(500, vec![line(json!({"error": "down"}))]),
                kind: ErrorKind::ProviderService,
            }),
        }
    }

    fn new(_config: ProviderConfig) -> Result<Self, ProviderError> {
        Ok(HostileFuzz)
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        let text = request.last_user_text().unwrap_or_default();
        Ok(Outbound::Local(if request.stream {
            local(
                200,
                vec![line(json!({"text": text})), line(json!({"end": true}))],
            )
        } else {
            local(200, vec![line(json!({"text": text}))])
        }))
    }

    fn parse_response(&self, response: &HttpResponse<'_>) -> Result<ChatResponse, ProviderError> {
        let body: Value = match serde_json::from_slice(response.body) {
            Ok(body) => body,
            Err(_) if &mode() == b"segv_" => {
                // SAFETY: none; crashing on a bad body is the point of this fixture.
                unsafe { std::ptr::null_mut::<u64>().write_volatile(7) };
                unreachable!()
            }
            Err(e) => return Err(ProviderError::plugin_fault(format!("not JSON: {e}"))),
        };
        Ok(ChatResponse {
            model: "m".to_owned(),
            message: AssistantMessage {
                content: body["text"].as_str().map(str::to_owned),
                ..AssistantMessage::default()
            },
            finish_reason: FinishReason::Stop,
            ..ChatResponse::default()
        })
    }

    fn stream_decoder(&self) -> LineDecoder {
        LineDecoder::default()
    }

    fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        if serde_json::from_slice::<Value>(response.body).is_err() && &mode() == b"loop_" {
            loop {
                std::hint::black_box(());
            }
        }
        ProviderError::from_http(response)
    }
}

/// One JSON object per line; `{"end": true}` ends the stream.
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
            let value: Value = match serde_json::from_slice(&line) {
                Ok(value) => value,
                Err(e) if &mode() == b"panic" => panic!("a stream line is not JSON: {e}"),
                Err(e) => {
                    return Err(ProviderError::new(
                        ErrorKind::ProviderService,
                        format!("a stream line is not JSON: {e}"),
                    ))
                }
            };
            if value["end"] == true {
                self.ended = true;
            } else if let Some(text) = value["text"].as_str() {
                events.push(StreamEvent::TextDelta {
                    text: text.to_owned(),
                });
            }
        }
        Ok(())
    }

    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !self.ended && &mode() != b"lenit" {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "the stream ended before its end line",
            ));
        }
        events.push(StreamEvent::Finish {
            reason: FinishReason::Stop,
        });
        Ok(())
    }
}

provider_sdk::export_provider!(HostileFuzz);
