//! What the host reads itself from a whole answer in the client's own protocol (exact
//! passthrough). Such an answer is relayed as it is, so the pipeline needs only its
//! usage and finish reason: reading them here instead of asking the plugin's
//! `parse_response` saves the plugin-call hop (a switch to a plugin-call thread and
//! back, about 30 µs per request on the bench machine) and a parse of the whole answer
//! into JSON values, a canonical answer and JSON again across the plugin boundary.
//!
//! The plugin stays the authority on its provider's answers: only a plain success
//! answer is read here, one whose every usage figure the host knows how to count. Any
//! other answer (an `error` member, no choices or content, a usage field the host does
//! not know, such as a provider's own cache counters) goes to the plugin as before.

use provider_kit::anthropic::{finish_reason, WireUsage};
use provider_sdk::{AssistantMessage, ChatResponse, Protocol, Usage};
use serde::{de::IgnoredAny, Deserialize};

/// The answer's id, model, finish reason and usage (the message stays in the bytes),
/// or `None` when the plugin must read this answer.
pub(super) fn read(protocol: Protocol, body: &[u8]) -> Option<ChatResponse> {
    match protocol {
        Protocol::OpenAiChat => openai_chat(body),
        Protocol::AnthropicMessages => anthropic_message(body),
        _ => None,
    }
}

/// An OpenAI `chat.completion`; unknown top-level members are ignored, as the openai
/// plugin's reader ignores them.
#[derive(Deserialize)]
struct OpenAiAnswer {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    choices: Vec<OpenAiChoice>,
    usage: OpenAiUsage,
    /// Some servers answer 200 with an error: the plugin says what it means.
    #[serde(default)]
    error: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct OpenAiChoice {
    message: OpenAiMessage,
    finish_reason: Option<String>,
}

#[derive(Deserialize)]
struct OpenAiMessage {
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

/// Only the fields of OpenAI's own usage object: a provider that reports more (its own
/// cache counters, another name for them) is read by its plugin. Fields named `_...`
/// are not counted; they are named so that `deny_unknown_fields` knows them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct OpenAiUsage {
    prompt_tokens: u64,
    completion_tokens: u64,
    #[serde(default, rename = "total_tokens")]
    _total_tokens: Option<IgnoredAny>,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
    #[serde(default)]
    cache_write_tokens: Option<u64>,
    #[serde(default, rename = "audio_tokens")]
    _audio_tokens: Option<IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
    #[serde(default, rename = "audio_tokens")]
    _audio_tokens: Option<IgnoredAny>,
    #[serde(default, rename = "accepted_prediction_tokens")]
    _accepted_prediction_tokens: Option<IgnoredAny>,
    #[serde(default, rename = "rejected_prediction_tokens")]
    _rejected_prediction_tokens: Option<IgnoredAny>,
}

impl OpenAiUsage {
    /// The canonical figures, as the openai plugin counts them.
    pub(super) fn counted(self) -> Usage {
        let prompt = self.prompt_tokens_details.unwrap_or(PromptDetails {
            cached_tokens: None,
            cache_write_tokens: None,
            _audio_tokens: None,
        });
        Usage {
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.completion_tokens,
            cached_prompt_tokens: prompt.cached_tokens.unwrap_or(0),
            cache_write_tokens: prompt.cache_write_tokens.unwrap_or(0),
            reasoning_tokens: self
                .completion_tokens_details
                .and_then(|d| d.reasoning_tokens)
                .unwrap_or(0),
        }
    }
}

fn openai_chat(body: &[u8]) -> Option<ChatResponse> {
    let answer: OpenAiAnswer = serde_json::from_slice(body).ok()?;
    if answer.error.is_some() {
        return None;
    }
    let choice = answer.choices.first()?;
    let called_tools = choice
        .message
        .tool_calls
        .as_ref()
        .is_some_and(|calls| !calls.is_empty())
        || choice.message.function_call.is_some();
    let finish = provider_kit::openai::response::finish_reason(choice.finish_reason.as_deref()?);
    Some(ChatResponse {
        id: answer.id.filter(|id| !id.is_empty()),
        model: answer.model.unwrap_or_default(),
        message: AssistantMessage::default(),
        finish_reason: provider_kit::openai::response::with_tool_calls(finish, called_tools),
        usage: Some(answer.usage.counted()),
    })
}

/// An Anthropic `message`.
#[derive(Deserialize)]
struct AnthropicAnswer {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    model: Option<String>,
    /// Must be there (a message without content is the plugin's to explain).
    #[serde(rename = "content")]
    _content: Vec<IgnoredAny>,
    stop_reason: Option<String>,
    /// Read as the anthropic plugin reads it; other members (the cache write's split
    /// by lifetime, server tool counts, the service tier) are not tokens.
    usage: WireUsage,
}

fn anthropic_message(body: &[u8]) -> Option<ChatResponse> {
    let answer: AnthropicAnswer = serde_json::from_slice(body).ok()?;
    if answer.kind != "message" {
        return None;
    }
    let finish = finish_reason(Some(answer.stop_reason.as_deref()?), false);
    // A message without both figures is the plugin's to explain.
    answer.usage.input_tokens?;
    answer.usage.output_tokens?;
    Some(ChatResponse {
        id: answer.id.filter(|id| !id.is_empty()),
        model: answer.model.unwrap_or_default(),
        message: AssistantMessage::default(),
        finish_reason: finish,
        usage: Some(answer.usage.to_usage()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::FinishReason;

    #[test]
    fn an_openai_answer_gives_its_usage_and_finish_reason() {
        let body = br#"{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"hi"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":3,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":2,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}},"system_fingerprint":"fp"}"#;
        let read = read(Protocol::OpenAiChat, body).unwrap();
        assert_eq!(read.id.as_deref(), Some("chatcmpl-1"));
        assert_eq!(read.model, "gpt-4o-mini");
        assert_eq!(read.finish_reason, FinishReason::Stop);
        let usage = read.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.completion_tokens,
                usage.cached_prompt_tokens,
                usage.reasoning_tokens
            ),
            (12, 3, 4, 2)
        );
    }

    #[test]
    fn a_turn_that_called_tools_and_stopped_says_tool_calls() {
        let body = br#"{"choices":[{"message":{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#;
        let read = read(Protocol::OpenAiChat, body).unwrap();
        assert_eq!(read.finish_reason, FinishReason::ToolCalls);
    }

    #[test]
    fn what_the_host_does_not_fully_understand_goes_to_the_plugin() {
        let plugin_reads = [
            // A provider's own cache counter (DeepSeek).
            r#"{"choices":[{"message":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"prompt_cache_hit_tokens":1}}"#,
            // An error beside the choices, no usage, no choices, no finish reason.
            r#"{"choices":[{"message":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1},"error":{"message":"x"}}"#,
            r#"{"choices":[{"message":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            r#"{"choices":[{"message":{}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}"#,
            // Tokens as floats, and not JSON at all.
            r#"{"choices":[{"message":{},"finish_reason":"stop"}],"usage":{"prompt_tokens":1.0,"completion_tokens":1}}"#,
            "not json",
        ];
        for body in plugin_reads {
            assert!(
                read(Protocol::OpenAiChat, body.as_bytes()).is_none(),
                "{body}"
            );
        }
        assert!(read(Protocol::OpenAiResponses, b"{}").is_none());
    }

    #[test]
    fn an_anthropic_message_counts_its_cache_reads_and_writes_in_the_input() {
        let body = br#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[{"type":"text","text":"hi"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5,"cache_creation_input_tokens":20,"cache_read_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":20,"ephemeral_1h_input_tokens":0},"service_tier":"standard"}}"#;
        let read = read(Protocol::AnthropicMessages, body).unwrap();
        assert_eq!(read.finish_reason, FinishReason::Length);
        let usage = read.usage.unwrap();
        assert_eq!(
            (
                usage.prompt_tokens,
                usage.cached_prompt_tokens,
                usage.cache_write_tokens
            ),
            (60, 30, 20)
        );
        let error =
            br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert!(super::read(Protocol::AnthropicMessages, error).is_none());
    }
}
