//! The `streamGenerateContent?alt=sse` stream → canonical events.
//!
//! Every SSE `data:` event is a whole `GenerateContentResponse` chunk. The decoder emits
//! `Start` on the first chunk, then per part: `TextDelta`, `ReasoningDelta` (thought
//! parts), `ToolCallStart` plus one `ToolCallDelta` with all the arguments (Gemini sends
//! each `functionCall` whole), and a `ReasoningDetail` for a function call's thought
//! signature.
//!
//! Every chunk repeats `usageMetadata` and older models repeat `finishReason` on every
//! chunk, so both are kept and reported once, when the body ends: `Usage` with the last
//! figures, then `Finish` with the last reason (`tool_calls` if the answer called tools;
//! `content_filter` if `promptFeedback` blocked the prompt). Gemini streams have no
//! `[DONE]`: a body that ends before any chunk gave a finish reason was cut, which is a
//! `connection` error. A `data: {"error": ...}` event is classified like an error response.

use provider_sdk::{
    serde_json, sse::SseParser, ErrorKind, FinishReason, ProviderError, StreamDecoder, StreamEvent,
    Usage,
};
use serde_json::Value;

use crate::error;
use crate::response::{final_reason, finish_reason, signature_detail, GenerateContentResponse};

/// Decodes one Gemini SSE stream, fed in pieces that may end anywhere.
#[derive(Debug, Default)]
pub struct GeminiDecoder {
    sse: SseParser,
    started: bool,
    tool_calls: u32,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl GeminiDecoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one event's data.
    fn chunk(&mut self, data: &str, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let data = data.trim();
        if data.is_empty() {
            return Ok(());
        }
        let value: Value = serde_json::from_str(data).map_err(|e| {
            ProviderError::new(
                ErrorKind::ProviderService,
                format!("Gemini sent a stream event that is not JSON: {e}"),
            )
        })?;
        if let Some(error) = value.get("error") {
            return Err(error::from_body(None, error));
        }
        let chunk: GenerateContentResponse = serde_json::from_value(value).map_err(|e| {
            ProviderError::new(
                ErrorKind::ProviderService,
                format!("Gemini sent a stream event that is not a GenerateContentResponse: {e}"),
            )
        })?;

        if !self.started {
            self.started = true;
            events.push(StreamEvent::Start {
                id: chunk.response_id.clone(),
                model: chunk.model_version.clone(),
            });
        }
        if let Some(usage) = &chunk.usage_metadata {
            self.usage = Some(usage.usage());
        }
        if chunk.blocked().is_some() {
            self.finish = Some(FinishReason::ContentFilter);
            return Ok(());
        }
        let Some(candidate) = chunk.candidates.first() else {
            return Ok(());
        };
        for part in candidate.content.iter().flat_map(|c| &c.parts) {
            if let Some(call) = &part.function_call {
                let index = self.tool_calls;
                self.tool_calls += 1;
                events.push(StreamEvent::ToolCallStart {
                    index,
                    id: call.id(index),
                    name: call.name.clone(),
                });
                events.push(StreamEvent::ToolCallDelta {
                    index,
                    arguments: call.arguments(),
                });
                if let Some(signature) = &part.thought_signature {
                    events.push(StreamEvent::ReasoningDetail {
                        detail: signature_detail(signature),
                    });
                }
            } else if let Some(text) = part.text.as_ref().filter(|t| !t.is_empty()) {
                events.push(if part.thought {
                    StreamEvent::ReasoningDelta { text: text.clone() }
                } else {
                    StreamEvent::TextDelta { text: text.clone() }
                });
            }
        }
        if let Some(reason) = &candidate.finish_reason {
            self.finish = Some(finish_reason(reason));
        }
        Ok(())
    }
}

impl StreamDecoder for GeminiDecoder {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let mut data = Vec::new();
        self.sse.feed(bytes, |event| data.push(event.data));
        for data in data {
            self.chunk(&data, events)?;
        }
        Ok(())
    }

    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let mut last = None;
        self.sse.finish(|event| last = Some(event.data));
        if let Some(data) = last {
            // An event without its closing blank line: the body ended inside it.
            self.chunk(&data, events).map_err(|e| {
                if e.kind == ErrorKind::ProviderService {
                    ProviderError::new(
                        ErrorKind::Connection,
                        format!("the Gemini stream was cut inside an event: {}", e.message),
                    )
                } else {
                    e
                }
            })?;
        }
        let Some(reason) = self.finish else {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "the Gemini stream ended before a chunk gave a finishReason: the body was cut",
            ));
        };
        if let Some(usage) = self.usage {
            events.push(StreamEvent::Usage { usage });
        }
        events.push(StreamEvent::Finish {
            reason: final_reason(reason, self.tool_calls > 0),
        });
        Ok(())
    }
}
