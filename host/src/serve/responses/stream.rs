//! Canonical stream events as the Responses API's event sequence: `response.created`,
//! `response.in_progress`, each output item added, filled and done exactly once (output
//! indexes in the order items start), then one terminal event (`response.completed`,
//! `.incomplete` or `.failed`) carrying the whole response. Every event has a
//! `sequence_number` from 0.

use std::collections::HashMap;

use provider_sdk::{Content, FinishReason, Message, StreamEvent, ToolCall, Usage};
use serde_json::{json, Value};

use super::response::{function_call_item, message_item, new_id, reasoning_item, Head, Status};

/// An output item being written.
enum Item {
    Reasoning {
        id: String,
        text: String,
    },
    Message {
        id: String,
        text: String,
        done: bool,
    },
    Call {
        id: String,
        call_id: String,
        name: String,
        arguments: String,
        done: bool,
    },
}

/// Writes one streamed response.
pub struct EventWriter {
    head: Head,
    sequence: u64,
    items: Vec<Item>,
    /// The output index of the message item taking text, while it is open.
    open_message: Option<usize>,
    /// The output index of each tool call, by its canonical index.
    calls: HashMap<u32, usize>,
    /// Reasoning text not yet written as an item.
    reasoning: String,
    finish: Option<FinishReason>,
    usage: Option<Usage>,
}

impl EventWriter {
    /// A writer for the response `head` describes; writes its first two events.
    pub fn new(head: Head, out: &mut String) -> Self {
        let mut writer = EventWriter {
            head,
            sequence: 0,
            items: Vec::new(),
            open_message: None,
            calls: HashMap::new(),
            reasoning: String::new(),
            finish: None,
            usage: None,
        };
        let response = writer.head.object(&Status::InProgress, &[], None);
        writer.emit(out, "response.created", json!({"response": response}));
        writer.emit(out, "response.in_progress", json!({"response": response}));
        writer
    }

    /// Appends the events `event` becomes to `out`.
    pub fn event(&mut self, event: &StreamEvent, out: &mut String) {
        match event {
            StreamEvent::Start { .. } | StreamEvent::ReasoningDetail { .. } => {}
            StreamEvent::ReasoningDelta { text } => self.reasoning.push_str(text),
            StreamEvent::TextDelta { text } => {
                self.flush_reasoning(out);
                let index = self.message(out);
                let id = self.item_id(index).to_owned();
                if let Item::Message { text: all, .. } = &mut self.items[index] {
                    all.push_str(text);
                }
                self.emit(
                    out,
                    "response.output_text.delta",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": text, "logprobs": []}),
                );
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                self.flush_reasoning(out);
                self.close_message(out, &Status::Completed);
                let item = Item::Call {
                    id: new_id("fc"),
                    call_id: id.clone(),
                    name: name.clone(),
                    arguments: String::new(),
                    done: false,
                };
                let output_index = self.add(item, out);
                self.calls.insert(*index, output_index);
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                let Some(&output_index) = self.calls.get(index) else {
                    return;
                };
                let id = self.item_id(output_index).to_owned();
                if let Item::Call { arguments: all, .. } = &mut self.items[output_index] {
                    all.push_str(arguments);
                }
                self.emit(
                    out,
                    "response.function_call_arguments.delta",
                    json!({"item_id": id, "output_index": output_index, "delta": arguments}),
                );
            }
            StreamEvent::Usage { usage } => self.usage = Some(*usage),
            StreamEvent::Finish { reason } => self.finish = Some(*reason),
        }
    }

    /// Closes every item and writes the terminal event; returns the final response.
    pub fn end(&mut self, out: &mut String) -> Value {
        let status = Status::finished(self.finish);
        self.finish_with(status, out)
    }

    /// A failure after the stream began: an `error` event (with a top-level `error`
    /// object, which OpenAI's SDKs raise on), the items closed as incomplete, and
    /// `response.failed`. Returns the final response.
    pub fn fail(&mut self, code: &str, message: &str, out: &mut String) -> Value {
        self.emit(
            out,
            "error",
            json!({"code": code, "message": message, "param": null,
                   "error": {"type": "server_error", "code": code, "message": message, "param": null}}),
        );
        self.finish_with(
            Status::Failed {
                code: code.to_owned(),
                message: message.to_owned(),
            },
            out,
        )
    }

    /// The assistant turn this stream produced, for a stored conversation.
    pub fn assistant_message(&self) -> Message {
        let mut text = String::new();
        let mut tool_calls = Vec::new();
        for item in &self.items {
            match item {
                Item::Message { text: t, .. } => text.push_str(t),
                Item::Call {
                    call_id,
                    name,
                    arguments,
                    ..
                } => tool_calls.push(ToolCall::function(call_id, name, arguments)),
                Item::Reasoning { .. } => {}
            }
        }
        Message::Assistant {
            content: (!text.is_empty()).then_some(Content::Text(text)),
            reasoning_content: None,
            reasoning_details: Vec::new(),
            tool_calls,
            refusal: None,
            name: None,
        }
    }

    fn finish_with(&mut self, status: Status, out: &mut String) -> Value {
        self.flush_reasoning(out);
        self.close_message(out, &status);
        for index in 0..self.items.len() {
            self.close_call(index, &status, out);
        }
        let output: Vec<Value> = (0..self.items.len())
            .map(|i| self.item_json(i, status.item_status()))
            .collect();
        let response = self.head.object(&status, &output, self.usage);
        let event = match status {
            Status::Completed => "response.completed",
            Status::Incomplete(_) => "response.incomplete",
            _ => "response.failed",
        };
        self.emit(out, event, json!({"response": response}));
        response
    }

    fn flush_reasoning(&mut self, out: &mut String) {
        if self.reasoning.is_empty() {
            return;
        }
        let text = std::mem::take(&mut self.reasoning);
        let index = self.add(
            Item::Reasoning {
                id: new_id("rs"),
                text,
            },
            out,
        );
        let item = self.item_json(index, "completed");
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }

    /// The open message item's index, opening one (item and its text part) if needed.
    fn message(&mut self, out: &mut String) -> usize {
        if let Some(index) = self.open_message {
            return index;
        }
        let id = new_id("msg");
        let index = self.add(
            Item::Message {
                id: id.clone(),
                text: String::new(),
                done: false,
            },
            out,
        );
        self.emit(
            out,
            "response.content_part.added",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
        );
        self.open_message = Some(index);
        index
    }

    fn close_message(&mut self, out: &mut String, status: &Status) {
        let Some(index) = self.open_message.take() else {
            return;
        };
        let (id, text) = match &mut self.items[index] {
            Item::Message { id, text, done } => {
                *done = true;
                (id.clone(), text.clone())
            }
            _ => unreachable!("open_message names a message item"),
        };
        self.emit(
            out,
            "response.output_text.done",
            json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
        );
        self.emit(
            out,
            "response.content_part.done",
            json!({"item_id": id, "output_index": index, "content_index": 0,
                   "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
        );
        let item = self.item_json(index, status.item_status());
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }

    fn close_call(&mut self, index: usize, status: &Status, out: &mut String) {
        let (id, arguments) = match &mut self.items[index] {
            Item::Call {
                id,
                arguments,
                done: done @ false,
                ..
            } => {
                *done = true;
                (id.clone(), arguments.clone())
            }
            _ => return,
        };
        let name = match &self.items[index] {
            Item::Call { name, .. } => name.clone(),
            _ => unreachable!("matched a call above"),
        };
        self.emit(
            out,
            "response.function_call_arguments.done",
            json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments}),
        );
        let item = self.item_json(index, status.item_status());
        self.emit(
            out,
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
    }

    /// Adds an item (in progress) and announces it; its output index.
    fn add(&mut self, item: Item, out: &mut String) -> usize {
        self.items.push(item);
        let index = self.items.len() - 1;
        let announced = match &self.items[index] {
            // Reasoning arrives whole: it is announced as it is.
            Item::Reasoning { .. } => self.item_json(index, "completed"),
            _ => self.item_json(index, "in_progress"),
        };
        let announced = match &self.items[index] {
            Item::Message { id, .. } => {
                json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []})
            }
            _ => announced,
        };
        self.emit(
            out,
            "response.output_item.added",
            json!({"output_index": index, "item": announced}),
        );
        index
    }

    fn item_id(&self, index: usize) -> &str {
        match &self.items[index] {
            Item::Reasoning { id, .. } | Item::Message { id, .. } | Item::Call { id, .. } => id,
        }
    }

    fn item_json(&self, index: usize, status: &str) -> Value {
        match &self.items[index] {
            Item::Reasoning { id, text } => reasoning_item(id, text),
            Item::Message { id, text, .. } => message_item(id, status, Some(text), None),
            Item::Call {
                id,
                call_id,
                name,
                arguments,
                ..
            } => function_call_item(id, status, call_id, name, arguments),
        }
    }

    fn emit(&mut self, out: &mut String, event: &str, mut data: Value) {
        let fields = data.as_object_mut().expect("event data is an object");
        fields.insert("type".into(), json!(event));
        fields.insert("sequence_number".into(), json!(self.sequence));
        self.sequence += 1;
        out.push_str("event: ");
        out.push_str(event);
        out.push_str("\ndata: ");
        out.push_str(&data.to_string());
        out.push_str("\n\n");
    }
}
