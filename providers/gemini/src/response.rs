//! Gemini `GenerateContentResponse` → canonical answer
//! (<https://ai.google.dev/api/generate-content#generatecontentresponse>).
//!
//! Only `candidates[0]` is read. Its parts become the answer: text parts the content,
//! `thought: true` text parts the reasoning, `functionCall` parts tool calls (id
//! `call_<n>`, `n` counting calls in the answer, unless Gemini gave the call an `id`).
//! A `thoughtSignature` on a `functionCall` part becomes a `reasoning_details` entry
//! (`reasoning.encrypted`, format `google-gemini-v1`, the signature as `data`), which a
//! client sends back on the assistant turn so that `request` can return it to Gemini.
//!
//! A blocked prompt (`promptFeedback` and no candidate) is an answer, not an error: it has
//! no content, `finish_reason` `content_filter` and a `refusal` that says why. It is what
//! the stream decoder reports for the same case, and the host can tell it from a failure.

use provider_sdk::{
    serde_json, AssistantMessage, ChatResponse, ErrorKind, FinishReason, ProviderError,
    ReasoningDetail, ToolCall, Usage,
};
use serde::Deserialize;
use serde_json::Value;

/// The `format` of the `reasoning_details` entries that carry Gemini thought signatures.
pub(crate) const SIGNATURE_FORMAT: &str = "google-gemini-v1";

/// A `GenerateContentResponse`, whole or one chunk of a stream.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct GenerateContentResponse {
    pub candidates: Vec<Candidate>,
    pub prompt_feedback: Option<PromptFeedback>,
    pub usage_metadata: Option<UsageMetadata>,
    pub model_version: Option<String>,
    pub response_id: Option<String>,
}

/// One candidate answer.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Candidate {
    pub content: Option<WireContent>,
    pub finish_reason: Option<String>,
    pub finish_message: Option<String>,
}

/// A `Content`: the model's parts.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireContent {
    pub parts: Vec<Part>,
}

/// One `Part`; the kinds this provider does not translate (inline images, code
/// execution, ...) are skipped.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct Part {
    pub text: Option<String>,
    pub thought: bool,
    pub thought_signature: Option<String>,
    pub function_call: Option<WireFunctionCall>,
}

/// A `FunctionCall`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct WireFunctionCall {
    pub id: Option<String>,
    pub name: String,
    pub args: Option<Value>,
}

/// `promptFeedback`: present when the prompt was blocked.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct PromptFeedback {
    pub block_reason: Option<String>,
    pub block_reason_message: Option<String>,
}

/// `usageMetadata`.
#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct UsageMetadata {
    pub prompt_token_count: u64,
    pub candidates_token_count: u64,
    pub cached_content_token_count: u64,
    pub thoughts_token_count: u64,
    pub tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// The canonical figures.
    ///
    /// Gemini counts thinking apart: `candidatesTokenCount` is the visible answer only and
    /// `thoughtsTokenCount` the thinking (`totalTokenCount` = prompt + tool-use prompt +
    /// candidates + thoughts). Thinking is billed as output, so completion tokens are
    /// candidates + thoughts, and reasoning tokens are the thoughts. `promptTokenCount`
    /// already includes the cached part (`cachedContentTokenCount`); tokens of tool-use
    /// prompts (search, code execution results) are input too.
    pub(crate) fn usage(&self) -> Usage {
        Usage {
            prompt_tokens: self.prompt_token_count + self.tool_use_prompt_token_count,
            completion_tokens: self.candidates_token_count + self.thoughts_token_count,
            cached_prompt_tokens: self.cached_content_token_count,
            cache_write_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

impl GenerateContentResponse {
    /// Why the prompt was blocked, when it was: a `blockReason`, or feedback with no
    /// candidate at all.
    pub(crate) fn blocked(&self) -> Option<String> {
        let feedback = self.prompt_feedback.as_ref()?;
        if feedback.block_reason.is_none() && !self.candidates.is_empty() {
            return None;
        }
        let reason = feedback
            .block_reason
            .as_deref()
            .unwrap_or("BLOCK_REASON_UNSPECIFIED");
        Some(match &feedback.block_reason_message {
            Some(message) => format!("Gemini blocked the prompt ({reason}): {message}"),
            None => format!("Gemini blocked the prompt ({reason})"),
        })
    }
}

impl WireFunctionCall {
    /// The call's id: Gemini's own when it sent one, `call_<index>` otherwise.
    pub(crate) fn id(&self, index: u32) -> String {
        match &self.id {
            Some(id) if !id.is_empty() => id.clone(),
            _ => format!("call_{index}"),
        }
    }

    /// The arguments as JSON text (`{}` when there are none).
    pub(crate) fn arguments(&self) -> String {
        match &self.args {
            None | Some(Value::Null) => "{}".to_owned(),
            Some(args) => args.to_string(),
        }
    }
}

/// A thought signature as a `reasoning_details` entry.
pub(crate) fn signature_detail(signature: &str) -> ReasoningDetail {
    ReasoningDetail {
        kind: "reasoning.encrypted".to_owned(),
        data: Some(signature.to_owned()),
        format: Some(SIGNATURE_FORMAT.to_owned()),
        ..ReasoningDetail::default()
    }
}

/// A Gemini `finishReason` in canonical terms
/// (<https://ai.google.dev/api/generate-content#FinishReason>).
pub(crate) fn finish_reason(reason: &str) -> FinishReason {
    match reason {
        "STOP" => FinishReason::Stop,
        "MAX_TOKENS" => FinishReason::Length,
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT"
        | "IMAGE_RECITATION" => FinishReason::ContentFilter,
        // LANGUAGE, OTHER, MALFORMED_FUNCTION_CALL, UNEXPECTED_TOOL_CALL,
        // TOO_MANY_TOOL_CALLS, FINISH_REASON_UNSPECIFIED and anything newer.
        _ => FinishReason::Other,
    }
}

/// The finish reason of an answer: a natural stop that called tools is `tool_calls`.
pub(crate) fn final_reason(reason: FinishReason, called_tools: bool) -> FinishReason {
    if called_tools && reason == FinishReason::Stop {
        FinishReason::ToolCalls
    } else {
        reason
    }
}

/// Parses a `generateContent` response body.
pub(crate) fn parse(body: &[u8]) -> Result<ChatResponse, ProviderError> {
    let wire: GenerateContentResponse = serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            ErrorKind::ProviderService,
            format!("Gemini sent a body that is not a GenerateContentResponse: {e}"),
        )
    })?;
    let usage = wire.usage_metadata.as_ref().map(UsageMetadata::usage);
    let model = wire.model_version.clone().unwrap_or_default();
    let id = wire.response_id.clone();

    if let Some(why) = wire.blocked() {
        return Ok(ChatResponse {
            id,
            model,
            message: AssistantMessage {
                refusal: Some(why),
                ..AssistantMessage::default()
            },
            finish_reason: FinishReason::ContentFilter,
            usage,
        });
    }
    let candidate = wire.candidates.first().ok_or_else(|| {
        ProviderError::new(
            ErrorKind::ProviderService,
            "Gemini answered with no candidate and no prompt feedback",
        )
    })?;

    let mut text = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut details = Vec::new();
    for part in candidate.content.iter().flat_map(|c| &c.parts) {
        if let Some(call) = &part.function_call {
            let index = tool_calls.len() as u32;
            tool_calls.push(ToolCall::function(
                call.id(index),
                call.name.clone(),
                call.arguments(),
            ));
            if let Some(signature) = &part.thought_signature {
                details.push(signature_detail(signature));
            }
        } else if let Some(piece) = &part.text {
            if part.thought {
                reasoning.push_str(piece);
            } else {
                text.push_str(piece);
            }
        }
    }

    let reason = candidate
        .finish_reason
        .as_deref()
        .map_or(FinishReason::Stop, finish_reason);
    let reason = final_reason(reason, !tool_calls.is_empty());
    let refusal = (reason == FinishReason::ContentFilter && text.is_empty()).then(|| {
        candidate.finish_message.clone().unwrap_or_else(|| {
            format!(
                "Gemini stopped the answer (finishReason {})",
                candidate.finish_reason.as_deref().unwrap_or("unspecified")
            )
        })
    });
    Ok(ChatResponse {
        id,
        model,
        message: AssistantMessage {
            content: (!text.is_empty()).then_some(text),
            reasoning: (!reasoning.is_empty()).then_some(reasoning),
            reasoning_details: details,
            tool_calls,
            refusal,
        },
        finish_reason: reason,
        usage,
    })
}
