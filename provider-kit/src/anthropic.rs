//! What Anthropic's Messages API says the same way to everyone who reads it: its usage
//! figures and stop reasons. The anthropic plugin translates answers with these; the
//! host reads passed-through answers and streams with the same ones, so both count a
//! message alike.

use provider_sdk::{FinishReason, Usage};
use serde::Deserialize;
use serde_json::Value;

/// The `usage` object of a message, of `message_start` and of `message_delta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct WireUsage {
    /// Input tokens after the last cache breakpoint (neither read from nor written to the cache).
    pub input_tokens: Option<u64>,
    /// Output tokens, thinking included.
    pub output_tokens: Option<u64>,
    /// Input tokens written to the prompt cache.
    pub cache_creation_input_tokens: Option<u64>,
    /// Input tokens read from the prompt cache.
    pub cache_read_input_tokens: Option<u64>,
}

impl WireUsage {
    /// Reads a `usage` object; anything unreadable counts as absent.
    pub fn from_value(value: &Value) -> WireUsage {
        WireUsage::deserialize(value).unwrap_or_default()
    }

    /// Takes every figure `later` reports (streamed usage is cumulative, so the latest wins).
    pub fn update(&mut self, later: WireUsage) {
        self.input_tokens = later.input_tokens.or(self.input_tokens);
        self.output_tokens = later.output_tokens.or(self.output_tokens);
        self.cache_creation_input_tokens = later
            .cache_creation_input_tokens
            .or(self.cache_creation_input_tokens);
        self.cache_read_input_tokens = later
            .cache_read_input_tokens
            .or(self.cache_read_input_tokens);
    }

    /// The canonical usage.
    ///
    /// How tokens are counted: Anthropic reports the input in three disjoint parts:
    /// `input_tokens` (after the last cache breakpoint), `cache_read_input_tokens` and
    /// `cache_creation_input_tokens`. The canonical `prompt_tokens` is the whole input,
    /// cached tokens included, so it is the sum of the three; `cached_prompt_tokens` is
    /// the cache read and `cache_write_tokens` the cache write. `completion_tokens` is
    /// `output_tokens`, which already includes thinking; Anthropic does not report
    /// thinking tokens apart, so `reasoning_tokens` stays 0.
    pub fn to_usage(self) -> Usage {
        let read = self.cache_read_input_tokens.unwrap_or(0);
        let written = self.cache_creation_input_tokens.unwrap_or(0);
        Usage {
            prompt_tokens: self.input_tokens.unwrap_or(0) + read + written,
            completion_tokens: self.output_tokens.unwrap_or(0),
            cached_prompt_tokens: read,
            cache_write_tokens: written,
            reasoning_tokens: 0,
        }
    }
}

/// The canonical finish reason of a `stop_reason`.
///
/// `end_turn` and `stop_sequence` are a normal stop, `max_tokens` and
/// `model_context_window_exceeded` a length stop, `tool_use` a tool call, `refusal` the
/// content filter, and `pause_turn` (a server tool paused a long turn) or anything new
/// is `Other`. Without a stop reason, the answer's own tool calls decide.
pub fn finish_reason(stop_reason: Option<&str>, has_tool_calls: bool) -> FinishReason {
    match stop_reason {
        Some("end_turn" | "stop_sequence") => FinishReason::Stop,
        Some("max_tokens" | "model_context_window_exceeded") => FinishReason::Length,
        Some("tool_use") => FinishReason::ToolCalls,
        Some("refusal") => FinishReason::ContentFilter,
        Some(_) => FinishReason::Other,
        None if has_tool_calls => FinishReason::ToolCalls,
        None => FinishReason::Stop,
    }
}
