//! Canonical stream events.

use serde::{Deserialize, Serialize};

use crate::{chat::ReasoningDetail, FinishReason, Usage};

/// One event of a streamed answer, in the order the upstream produced it. Its JSON is
/// tagged by `type` in snake case:
///
/// ```
/// use provider_sdk::{FinishReason, StreamEvent};
/// use provider_sdk::serde_json::{from_value, json};
///
/// let events: Vec<StreamEvent> = from_value(json!([
///     {"type": "start", "id": "a-1", "model": "m"},
///     {"type": "text_delta", "text": "Hel"},
///     {"type": "tool_call_start", "index": 0, "id": "c1", "name": "f"},
///     {"type": "tool_call_delta", "index": 0, "arguments": "{}"},
///     {"type": "usage", "usage": {"prompt_tokens": 9, "completion_tokens": 3}},
///     {"type": "finish", "reason": "tool_calls"}
/// ])).unwrap();
/// assert_eq!(events[5], StreamEvent::Finish { reason: FinishReason::ToolCalls });
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StreamEvent {
    /// Metadata about the answer, usually first.
    Start {
        /// The upstream's id for the answer.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The model that answers.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// More answer text.
    TextDelta {
        /// The new text.
        text: String,
    },
    /// More reasoning text.
    ReasoningDelta {
        /// The new reasoning text.
        text: String,
    },
    /// A complete reasoning block (text with its signature, or encrypted data), sent
    /// when the block ends so the client can echo it back on the next turn.
    ReasoningDetail {
        /// The block.
        detail: ReasoningDetail,
    },
    /// The model starts calling a tool; `index` identifies the call in later deltas.
    ToolCallStart {
        /// Position of the call in this answer, from 0.
        index: u32,
        /// The call's id.
        id: String,
        /// The function's name.
        name: String,
    },
    /// More JSON text of a tool call's arguments.
    ToolCallDelta {
        /// Which call, as given by its [`StreamEvent::ToolCallStart`].
        index: u32,
        /// The next piece of the arguments.
        arguments: String,
    },
    /// Token usage of the whole request (may come before or after `Finish`).
    Usage {
        /// The figures.
        usage: Usage,
    },
    /// Generation ended.
    Finish {
        /// Why.
        reason: FinishReason,
    },
}
