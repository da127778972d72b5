//! Canonical stream events as Anthropic's SSE sequence: `message_start`, then each
//! content block opened, filled and closed in turn (indexes 0, 1, 2, ... in the order
//! blocks start), then `message_delta` with the stop reason and usage, then
//! `message_stop`.

use std::collections::HashMap;

use provider_sdk::{FinishReason, ReasoningDetail, StreamEvent, Usage};
use serde_json::{json, Value};

use super::response::{stop_reason, thinking_block, usage};

/// The content block being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text,
    Thinking,
    Tool(u32),
}

/// Writes one streamed answer's events.
pub struct EventWriter {
    id: String,
    model: String,
    started: bool,
    open: Option<(Open, u32)>,
    next_index: u32,
    /// The block index each tool call was given.
    tools: HashMap<u32, u32>,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl EventWriter {
    /// A writer for the message `id` answered by `model`.
    pub fn new(id: String, model: String) -> Self {
        EventWriter {
            id,
            model,
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish: None,
            usage: None,
        }
    }

    /// Appends the SSE text `event` becomes to `out`.
    pub fn event(&mut self, event: &StreamEvent, out: &mut String) {
        self.start(out);
        match event {
            StreamEvent::Start { .. } => {}
            StreamEvent::TextDelta { text } => {
                let index = self.ensure(Open::Text, out);
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
                );
            }
            StreamEvent::ReasoningDelta { text } => {
                let index = self.ensure(Open::Thinking, out);
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": text}}),
                );
            }
            StreamEvent::ReasoningDetail { detail } => self.reasoning_detail(detail, out),
            StreamEvent::ToolCallStart { index, id, name } => {
                self.close(out);
                let block = self.open_block(
                    Open::Tool(*index),
                    json!({"type": "tool_use", "id": id, "name": name, "input": {}}),
                    out,
                );
                self.tools.insert(*index, block);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                // A delta for a call whose block is no longer open (interleaved
                // parallel calls) still goes to that call's own block.
                let block = match self.tools.get(index) {
                    Some(block) => *block,
                    None => {
                        self.close(out);
                        let block = self.open_block(
                            Open::Tool(*index),
                            json!({"type": "tool_use", "id": format!("toolu_{index}"), "name": "", "input": {}}),
                            out,
                        );
                        self.tools.insert(*index, block);
                        block
                    }
                };
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": block, "delta": {"type": "input_json_delta", "partial_json": arguments}}),
                );
            }
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
        }
    }

    /// Closes the message: the open block, `message_delta`, `message_stop`.
    pub fn end(&mut self, out: &mut String) {
        self.start(out);
        self.close(out);
        let reason = match self.finish {
            _ if !self.tools.is_empty() => "tool_use",
            Some(reason) => stop_reason(reason),
            None => "end_turn",
        };
        sse(
            out,
            "message_delta",
            &json!({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": null}, "usage": usage(self.usage)}),
        );
        sse(out, "message_stop", &json!({"type": "message_stop"}));
    }

    /// A failure after the stream began: Anthropic's `error` event; the stream ends.
    pub fn error(&mut self, error_type: &str, message: &str, out: &mut String) {
        self.start(out);
        EventWriter::error_event(error_type, message, out);
    }

    /// Anthropic's `error` event on its own.
    pub fn error_event(error_type: &str, message: &str, out: &mut String) {
        sse(
            out,
            "error",
            &json!({"type": "error", "error": {"type": error_type, "message": message}}),
        );
    }

    fn start(&mut self, out: &mut String) {
        if std::mem::replace(&mut self.started, true) {
            return;
        }
        let message = json!({
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": null,
            "stop_sequence": null,
            "usage": {"input_tokens": 0, "output_tokens": 0, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0},
        });
        sse(
            out,
            "message_start",
            &json!({"type": "message_start", "message": message}),
        );
    }

    /// A complete reasoning block: the signature that closes streamed thinking, or a
    /// block of its own (redacted thinking, or thinking that arrived whole).
    fn reasoning_detail(&mut self, detail: &ReasoningDetail, out: &mut String) {
        let streamed = matches!(self.open, Some((Open::Thinking, _)));
        if streamed && detail.data.is_none() {
            let index = self.open.map(|(_, i)| i).unwrap_or_default();
            if let Some(signature) = detail.signature.as_deref().filter(|s| !s.is_empty()) {
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": {"type": "signature_delta", "signature": signature}}),
                );
            }
            self.close(out);
            return;
        }
        self.close(out);
        let block = thinking_block(detail);
        if block["type"] == "redacted_thinking" {
            self.open_block(Open::Thinking, block, out);
        } else {
            let index = self.open_block(
                Open::Thinking,
                json!({"type": "thinking", "thinking": "", "signature": ""}),
                out,
            );
            let deltas = [
                json!({"type": "thinking_delta", "thinking": block["thinking"]}),
                json!({"type": "signature_delta", "signature": block["signature"]}),
            ];
            for delta in deltas {
                sse(
                    out,
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index, "delta": delta}),
                );
            }
        }
        self.close(out);
    }

    /// The index of an open block of `kind`, opening one when needed.
    fn ensure(&mut self, kind: Open, out: &mut String) -> u32 {
        match self.open {
            Some((open, index)) if open == kind => index,
            _ => {
                self.close(out);
                let block = match kind {
                    Open::Text => json!({"type": "text", "text": ""}),
                    Open::Thinking => json!({"type": "thinking", "thinking": "", "signature": ""}),
                    Open::Tool(_) => unreachable!("tool blocks open at their start event"),
                };
                self.open_block(kind, block, out)
            }
        }
    }

    fn open_block(&mut self, kind: Open, block: Value, out: &mut String) -> u32 {
        let index = self.next_index;
        self.next_index += 1;
        sse(
            out,
            "content_block_start",
            &json!({"type": "content_block_start", "index": index, "content_block": block}),
        );
        self.open = Some((kind, index));
        index
    }

    fn close(&mut self, out: &mut String) {
        if let Some((_, index)) = self.open.take() {
            sse(
                out,
                "content_block_stop",
                &json!({"type": "content_block_stop", "index": index}),
            );
        }
    }
}

fn sse(out: &mut String, event: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(event);
    out.push_str("\ndata: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(sse: &str) -> Vec<&str> {
        sse.lines()
            .filter_map(|l| l.strip_prefix("event: "))
            .collect()
    }

    fn data(sse: &str) -> Vec<Value> {
        sse.lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).unwrap())
            .collect()
    }

    #[test]
    fn text_then_two_tool_calls_get_distinct_block_indexes_in_start_order() {
        let mut w = EventWriter::new("msg_1".into(), "mock/tool".into());
        let mut out = String::new();
        for event in [
            StreamEvent::TextDelta {
                text: "Let me check.".into(),
            },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_a".into(),
                name: "weather".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"city\":".into(),
            },
            StreamEvent::ToolCallStart {
                index: 1,
                id: "call_b".into(),
                name: "time".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 1,
                arguments: "{}".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "\"Paris\"}".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 10,
                    completion_tokens: 7,
                    cached_prompt_tokens: 4,
                    ..Usage::default()
                },
            },
        ] {
            w.event(&event, &mut out);
        }
        w.end(&mut out);
        assert_eq!(
            names(&out),
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "content_block_start",
                "content_block_delta",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        let events = data(&out);
        let starts: Vec<_> = events
            .iter()
            .filter(|e| e["type"] == "content_block_start")
            .map(|e| {
                (
                    e["index"].as_u64().unwrap(),
                    e["content_block"]["type"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        assert_eq!(
            starts,
            [
                (0, "text".to_owned()),
                (1, "tool_use".to_owned()),
                (2, "tool_use".to_owned())
            ]
        );
        let late = &events[9];
        assert_eq!(
            late["index"], 1,
            "the first call's late delta goes to its own block"
        );
        assert_eq!(late["delta"]["partial_json"], "\"Paris\"}");
        let delta = &events[11];
        assert_eq!(delta["delta"]["stop_reason"], "tool_use");
        assert_eq!(
            delta["usage"],
            json!({"input_tokens": 6, "output_tokens": 7, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 4})
        );
    }

    #[test]
    fn streamed_thinking_closes_with_its_signature_and_redacted_thinking_stands_alone() {
        let mut w = EventWriter::new("msg_1".into(), "m".into());
        let mut out = String::new();
        let signed = ReasoningDetail {
            kind: "reasoning.text".into(),
            text: Some("hmm".into()),
            signature: Some("sig".into()),
            ..ReasoningDetail::default()
        };
        let redacted = ReasoningDetail {
            kind: "reasoning.encrypted".into(),
            data: Some("opaque".into()),
            ..ReasoningDetail::default()
        };
        for event in [
            StreamEvent::ReasoningDelta { text: "hmm".into() },
            StreamEvent::ReasoningDetail { detail: signed },
            StreamEvent::ReasoningDetail { detail: redacted },
            StreamEvent::TextDelta {
                text: "Yes.".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop,
            },
        ] {
            w.event(&event, &mut out);
        }
        w.end(&mut out);
        let events = data(&out);
        let kinds: Vec<String> = events
            .iter()
            .map(|e| match e["type"].as_str().unwrap() {
                "content_block_delta" => e["delta"]["type"].as_str().unwrap().to_owned(),
                "content_block_start" => {
                    format!("start {}", e["content_block"]["type"].as_str().unwrap())
                }
                other => other.to_owned(),
            })
            .collect();
        assert_eq!(
            kinds,
            [
                "message_start",
                "start thinking",
                "thinking_delta",
                "signature_delta",
                "content_block_stop",
                "start redacted_thinking",
                "content_block_stop",
                "start text",
                "text_delta",
                "content_block_stop",
                "message_delta",
                "message_stop"
            ]
        );
        assert_eq!(events[5]["content_block"]["data"], "opaque");
        assert_eq!(events[10]["delta"]["stop_reason"], "end_turn");
    }
}
