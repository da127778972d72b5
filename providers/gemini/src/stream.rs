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

use provider_kit::sse::{JsonEvents, JsonSseDecoder};
use provider_sdk::{serde_json, ErrorKind, FinishReason, ProviderError, StreamEvent, Usage};
use serde_json::Value;

use crate::error;
use crate::response::{final_reason, finish_reason, signature_detail, GenerateContentResponse};

/// Decodes one Gemini SSE stream, fed in pieces that may end anywhere.
pub type GeminiDecoder = JsonSseDecoder<GeminiChunks>;

/// The Gemini side of [`GeminiDecoder`]: what the chunks so far said.
#[derive(Debug, Default)]
pub struct GeminiChunks {
    started: bool,
    tool_calls: u32,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl JsonEvents for GeminiChunks {
    const UPSTREAM: &'static str = "Gemini";

    fn event(
        &mut self,
        _name: Option<&str>,
        value: Value,
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        self.chunk(value, events)
    }

    fn error_event(&self, _name: Option<&str>, value: &Value) -> Option<ProviderError> {
        value.get("error").map(|e| error::from_body(None, e))
    }

    fn end(&mut self, _done: bool, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let Some(reason) = self.finish else {
            return Err(Self::cut("before a chunk gave a finishReason"));
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

impl GeminiChunks {
    /// Decodes one event's chunk.
    fn chunk(&mut self, value: Value, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
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
