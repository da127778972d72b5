//! The streamed answer: `data: {chunk}` ... `data: [DONE]` → canonical events.
//!
//! Tool calls are normalised here, because servers disagree on how to stream them:
//! OpenAI sends `id` and `function.name` once, then argument pieces keyed by `index`;
//! others repeat `id` and `name` in every delta, omit `index` (Gemini's compatibility
//! endpoint, older Ollama), reuse index 0 for parallel calls (Ollama), start calls in
//! any order or interleave them. The host sees each call's `ToolCallStart` exactly once,
//! with indexes 0, 1, 2... in the order calls start, followed by its argument pieces.

use provider_sdk::{ErrorKind, FinishReason, ProviderError, ReasoningDetail, StreamEvent, Usage};
use serde_json::Value;

use super::response::{
    arguments_text, content_and_reasoning, finish_reason, malformed, non_empty, reasoning_field,
    usage, with_tool_calls,
};
use crate::sse::{JsonEvents, JsonSseDecoder};

/// Decodes one streamed chat completion, fed in pieces split anywhere.
pub type OpenAiDecoder = JsonSseDecoder<ChatChunks>;

/// The chat-completions side of [`OpenAiDecoder`]: what the chunks so far said.
#[derive(Default)]
pub struct ChatChunks {
    /// `Start` was emitted.
    started: bool,
    /// `Finish` was emitted.
    finished: bool,
    calls: Vec<Call>,
    /// How many calls have started, i.e. the next canonical index.
    next_index: u32,
    /// The call each position of the previous `tool_calls` array resolved to, for
    /// deltas that carry neither `index` nor `id`.
    last_positions: Vec<usize>,
    last_usage: Option<Usage>,
    /// OpenRouter's `reasoning_details` pieces, merged by their `index`; sent as
    /// complete blocks when the answer finishes.
    details: Vec<(Option<u64>, ReasoningDetail)>,
}

/// One tool call as it builds up.
#[derive(Default)]
struct Call {
    /// The upstream's `index`, when it sends one.
    raw_index: Option<u64>,
    id: Option<String>,
    name: Option<String>,
    /// All argument text received so far.
    arguments: String,
    /// How much of `arguments` has been emitted.
    emitted: usize,
    /// The canonical index, once `ToolCallStart` went out.
    index: Option<u32>,
}

impl Call {
    fn arguments_complete(&self) -> bool {
        !self.arguments.trim().is_empty()
            && serde_json::from_str::<serde::de::IgnoredAny>(&self.arguments).is_ok()
    }
}

impl JsonEvents for ChatChunks {
    const UPSTREAM: &'static str = "chat-completions";
    const DONE: Option<&'static str> = Some("[DONE]");

    fn event(
        &mut self,
        _name: Option<&str>,
        chunk: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        self.chunk(&chunk, out);
        Ok(())
    }

    fn on_done(&mut self, out: &mut Vec<StreamEvent>) {
        self.finish_once(None, out);
    }

    fn end(&mut self, done: bool, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !done && !self.finished {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "stream ended early: the body ended before `data: [DONE]` and without a finish_reason",
            ));
        }
        // Servers that send finish_reason and no [DONE] (llama.cpp variants) are done.
        self.flush_calls(out);
        for (_, detail) in std::mem::take(&mut self.details) {
            out.push(StreamEvent::ReasoningDetail { detail });
        }
        Ok(())
    }

    fn error_event(&self, name: Option<&str>, chunk: &Value) -> Option<ProviderError> {
        let has_error = chunk.get("error").is_some_and(|e| !e.is_null())
            || chunk.get("object").and_then(Value::as_str) == Some("error");
        (name == Some("error") || has_error).then(|| super::error::from_event(chunk))
    }

    fn error_text(&self, text: &str) -> ProviderError {
        super::error::from_event(&Value::String(text.to_owned()))
    }

    fn malformed(&self, detail: &str) -> ProviderError {
        malformed("a stream event", detail)
    }

    fn cut(where_: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::Connection,
            format!("stream ended early: the body ended in the middle of an event ({where_})"),
        )
    }
}

impl ChatChunks {
    fn chunk(&mut self, chunk: &Value, out: &mut Vec<StreamEvent>) {
        let mut events = Vec::new();
        let mut finish = None;
        let choices = chunk.get("choices").and_then(Value::as_array);
        // The host serves n = 1: only the first choice counts.
        let choice = choices
            .into_iter()
            .flatten()
            .find(|c| c.get("index").and_then(Value::as_u64).unwrap_or(0) == 0);
        if let Some(choice) = choice {
            let delta = choice
                .get("delta")
                .or_else(|| choice.get("message"))
                .unwrap_or(&Value::Null);
            let (text, thinking) = content_and_reasoning(delta.get("content"));
            if let Some(reasoning) = reasoning_field(delta) {
                events.push(StreamEvent::ReasoningDelta {
                    text: reasoning.to_owned(),
                });
            }
            if let Some(thinking) = thinking {
                events.push(StreamEvent::ReasoningDelta { text: thinking });
            }
            if let Some(text) = text.filter(|t| !t.is_empty()) {
                events.push(StreamEvent::TextDelta { text });
            }
            // No canonical refusal event: the refusal is what the user gets to read.
            if let Some(refusal) = non_empty(delta.get("refusal")) {
                events.push(StreamEvent::TextDelta { text: refusal });
            }
            if let Some(details) = delta.get("reasoning_details").and_then(Value::as_array) {
                self.reasoning_details(details);
            }
            if let Some(calls) = delta.get("tool_calls").and_then(Value::as_array) {
                self.tool_deltas(calls, &mut events);
            } else if let Some(call) = delta.get("function_call").filter(|c| c.is_object()) {
                // The deprecated single function call: one call, index 0.
                let legacy = [serde_json::json!({"index": 0, "function": call})];
                self.tool_deltas(&legacy, &mut events);
            }
            finish = choice
                .get("finish_reason")
                .and_then(Value::as_str)
                .map(finish_reason);
        }
        if let Some(u) = usage(chunk) {
            if self.last_usage != Some(u) {
                self.last_usage = Some(u);
                events.push(StreamEvent::Usage { usage: u });
            }
        }
        let (id, model) = (non_empty(chunk.get("id")), non_empty(chunk.get("model")));
        if !self.started
            && (id.is_some() || model.is_some() || !events.is_empty() || finish.is_some())
        {
            self.started = true;
            out.push(StreamEvent::Start { id, model });
        }
        out.append(&mut events);
        if let Some(reason) = finish {
            self.finish_once(Some(reason), out);
        }
    }

    fn tool_deltas(&mut self, deltas: &[Value], out: &mut Vec<StreamEvent>) {
        let mut positions = Vec::with_capacity(deltas.len());
        for (position, delta) in deltas.iter().enumerate() {
            let raw_index = delta.get("index").and_then(Value::as_u64);
            let id = non_empty(delta.get("id"));
            let function = delta.get("function");
            let name = non_empty(function.and_then(|f| f.get("name")));
            let arguments = arguments_text(function.and_then(|f| f.get("arguments")));
            let slot = self.resolve(raw_index, id.as_deref(), position);
            positions.push(slot);
            let call = &mut self.calls[slot];
            if call.index.is_none() {
                // Later repetitions of id and name (some servers send them in every
                // delta) change nothing once the call has started.
                call.id = call.id.take().or(id);
                call.name = call.name.take().or(name);
            }
            call.arguments.push_str(&arguments);
            self.progress(slot, false, out);
        }
        self.last_positions = positions;
    }

    fn reasoning_details(&mut self, pieces: &[Value]) {
        for piece in pieces {
            let index = piece.get("index").and_then(Value::as_u64);
            let text = |key: &str| piece.get(key).and_then(Value::as_str).map(str::to_owned);
            let existing = index.and_then(|i| self.details.iter().position(|(j, _)| *j == Some(i)));
            let slot = match existing {
                Some(slot) => slot,
                None => {
                    let Some(kind) = text("type") else { continue };
                    self.details.push((
                        index,
                        ReasoningDetail {
                            kind,
                            ..ReasoningDetail::default()
                        },
                    ));
                    self.details.len() - 1
                }
            };
            let detail = &mut self.details[slot].1;
            for (key, field) in [("text", &mut detail.text), ("data", &mut detail.data)] {
                if let Some(more) = text(key) {
                    field.get_or_insert_with(String::new).push_str(&more);
                }
            }
            for (key, field) in [
                ("signature", &mut detail.signature),
                ("format", &mut detail.format),
            ] {
                if let Some(value) = text(key) {
                    *field = Some(value);
                }
            }
        }
    }

    /// Which call a delta belongs to; a new one when it belongs to none.
    fn resolve(&mut self, raw_index: Option<u64>, id: Option<&str>, position: usize) -> usize {
        if let Some(id) = id {
            if let Some(slot) = self.calls.iter().position(|c| c.id.as_deref() == Some(id)) {
                return slot;
            }
        }
        let candidate = match raw_index {
            Some(raw) => self.calls.iter().rposition(|c| c.raw_index == Some(raw)),
            None => self
                .last_positions
                .get(position)
                .copied()
                .or_else(|| self.calls.len().checked_sub(1)),
        };
        if let Some(slot) = candidate {
            let call = &self.calls[slot];
            // An id unlike the one the call already has: a new call if that one's
            // arguments are complete (Ollama reuses index 0 for parallel calls, Gemini
            // sends none), the same call otherwise (servers that mint an id per delta).
            let another_call = id.is_some() && call.id.is_some() && call.arguments_complete();
            if !another_call {
                return slot;
            }
        }
        self.calls.push(Call {
            raw_index,
            ..Call::default()
        });
        self.calls.len() - 1
    }

    /// Emits what can be emitted for a call: its start once its name (and id, or its
    /// first arguments) are known, then any arguments not yet sent.
    fn progress(&mut self, slot: usize, force: bool, out: &mut Vec<StreamEvent>) {
        let call = &mut self.calls[slot];
        if call.index.is_none() {
            let ready =
                call.name.is_some() && (force || call.id.is_some() || !call.arguments.is_empty());
            if !ready {
                return;
            }
            let index = self.next_index;
            self.next_index += 1;
            call.index = Some(index);
            out.push(StreamEvent::ToolCallStart {
                index,
                id: call.id.clone().unwrap_or_else(|| format!("call_{index}")),
                name: call.name.clone().unwrap_or_default(),
            });
        }
        if let Some(index) = call.index {
            if call.emitted < call.arguments.len() {
                out.push(StreamEvent::ToolCallDelta {
                    index,
                    arguments: call.arguments[call.emitted..].to_owned(),
                });
                call.emitted = call.arguments.len();
            }
        }
    }

    /// Starts every named call still waiting and sends its arguments.
    fn flush_calls(&mut self, out: &mut Vec<StreamEvent>) {
        for slot in 0..self.calls.len() {
            self.progress(slot, true, out);
        }
    }

    fn finish_once(&mut self, reason: Option<FinishReason>, out: &mut Vec<StreamEvent>) {
        if self.finished {
            return;
        }
        self.flush_calls(out);
        if !self.started {
            self.started = true;
            out.push(StreamEvent::Start {
                id: None,
                model: None,
            });
        }
        self.finished = true;
        for (_, detail) in std::mem::take(&mut self.details) {
            out.push(StreamEvent::ReasoningDetail { detail });
        }
        let called = self.calls.iter().any(|c| c.index.is_some());
        out.push(StreamEvent::Finish {
            reason: with_tool_calls(reason.unwrap_or(FinishReason::Stop), called),
        });
    }
}

#[cfg(test)]
mod tests;
