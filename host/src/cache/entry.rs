//! What the cache keeps for one question: the answer (whole, or a stream's complete
//! event sequence, with the upstream's own bytes when they were passed through), who
//! gave it and what it cost, encoded as JSON so that memory and Redis hold the same
//! bytes.

use provider_sdk::{AssistantMessage, ChatResponse, FinishReason, StreamEvent, ToolCall, Usage};
use serde::{Deserialize, Serialize};

/// One cached answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The provider that answered.
    pub provider: String,
    /// Its model.
    pub model: String,
    /// When the entry stops being served (Unix seconds, on the usage clock).
    pub expires_at: f64,
    /// The tokens the answer took upstream.
    #[serde(default)]
    pub usage: Option<Usage>,
    /// What the answer cost upstream: what each hit saves.
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// The answer.
    pub answer: Answer,
}

/// A cached answer, as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Answer {
    /// A whole answer: it serves whole requests only.
    Whole {
        /// The canonical answer.
        response: ChatResponse,
        /// The upstream's own body, when it spoke the client's protocol.
        #[serde(default)]
        native: Option<String>,
    },
    /// A stream's complete event sequence: replayed as a stream, or assembled into
    /// a whole answer.
    Stream {
        /// The canonical events, in order.
        events: Vec<StreamEvent>,
        /// The upstream's own bytes, when it spoke the client's protocol.
        #[serde(default)]
        native: Option<String>,
    },
}

impl Entry {
    /// The entry as stored.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("an entry serializes")
    }

    /// An entry read back; `None` when it does not decode (written by another
    /// version, or damaged), which is a miss.
    pub fn decode(bytes: &[u8]) -> Option<Entry> {
        serde_json::from_slice(bytes).ok()
    }

    /// The answer in one piece, for a whole request.
    pub fn whole(&self) -> (ChatResponse, Option<&str>) {
        match &self.answer {
            Answer::Whole { response, native } => (response.clone(), native.as_deref()),
            Answer::Stream { events, .. } => (assemble(events, &self.model), None),
        }
    }
}

/// The whole answer a complete event sequence adds up to.
pub fn assemble(events: &[StreamEvent], model: &str) -> ChatResponse {
    let mut response = ChatResponse {
        id: None,
        model: model.to_owned(),
        message: AssistantMessage::default(),
        finish_reason: FinishReason::Stop,
        usage: None,
    };
    let mut calls: Vec<(u32, ToolCall)> = Vec::new();
    for event in events {
        match event {
            StreamEvent::Start { id, model } => {
                response.id = id.clone().or(response.id.take());
                if let Some(model) = model {
                    response.model = model.clone();
                }
            }
            StreamEvent::TextDelta { text } => response
                .message
                .content
                .get_or_insert_with(String::new)
                .push_str(text),
            StreamEvent::ReasoningDelta { text } => response
                .message
                .reasoning
                .get_or_insert_with(String::new)
                .push_str(text),
            StreamEvent::ReasoningDetail { detail } => {
                response.message.reasoning_details.push(detail.clone())
            }
            StreamEvent::ToolCallStart { index, id, name } => {
                calls.push((*index, ToolCall::function(id.clone(), name.clone(), "")))
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                if let Some((_, call)) = calls.iter_mut().rev().find(|(i, _)| i == index) {
                    call.function.arguments.push_str(arguments);
                }
            }
            StreamEvent::Usage { usage } => response.usage = Some(*usage),
            StreamEvent::Finish { reason } => response.finish_reason = *reason,
        }
    }
    calls.sort_by_key(|(index, _)| *index);
    response.message.tool_calls = calls.into_iter().map(|(_, call)| call).collect();
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_adds_up_to_the_whole_answer_it_streamed() {
        let events = vec![
            StreamEvent::Start {
                id: Some("up-1".into()),
                model: Some("echo".into()),
            },
            StreamEvent::TextDelta { text: "Hel".into() },
            StreamEvent::TextDelta { text: "lo".into() },
            StreamEvent::ToolCallStart {
                index: 0,
                id: "call_1".into(),
                name: "lookup".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{\"q\":".into(),
            },
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "1}".into(),
            },
            StreamEvent::Finish {
                reason: FinishReason::ToolCalls,
            },
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 3,
                    completion_tokens: 2,
                    ..Usage::default()
                },
            },
        ];
        let whole = assemble(&events, "fallback-name");
        assert_eq!(whole.id.as_deref(), Some("up-1"));
        assert_eq!(whole.model, "echo");
        assert_eq!(whole.message.content.as_deref(), Some("Hello"));
        assert_eq!(whole.message.tool_calls.len(), 1);
        assert_eq!(whole.message.tool_calls[0].function.arguments, "{\"q\":1}");
        assert_eq!(whole.finish_reason, FinishReason::ToolCalls);
        assert_eq!(whole.usage.map(|u| u.total_tokens()), Some(5));
    }

    #[test]
    fn an_entry_reads_back_as_written_and_garbage_is_a_miss() {
        let entry = Entry {
            provider: "mock".into(),
            model: "echo".into(),
            expires_at: 10.0,
            usage: None,
            cost_usd: Some(0.5),
            answer: Answer::Stream {
                events: vec![StreamEvent::TextDelta { text: "a".into() }],
                native: Some("data: {}\n\n".into()),
            },
        };
        assert_eq!(Entry::decode(&entry.encode()), Some(entry));
        assert_eq!(Entry::decode(b"{\"not\":\"an entry\"}"), None);
    }
}
