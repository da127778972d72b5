//! Canonical chat types.
//!
//! They are shaped after OpenAI's chat-completions request so that such a request
//! deserializes into [`ChatRequest`] without loss: every documented field has a place,
//! and anything else lands in [`ChatRequest::extra`] and is passed to the provider.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A chat request, as the host hands it to a provider.
///
/// `model` is the provider's own model id (the host has already stripped the
/// `provider/` routing prefix). Its JSON is an OpenAI chat-completions request body,
/// both ways, unknown fields included (they land in [`ChatRequest::extra`]):
///
/// ```
/// use provider_sdk::{ChatRequest, Message, ToolChoice, ToolChoiceMode};
/// use provider_sdk::serde_json::json;
///
/// let wire = json!({
///     "model": "gpt-4o-mini",
///     "messages": [
///         {"role": "system", "content": "Be brief."},
///         {"role": "user", "content": [
///             {"type": "text", "text": "What is this?"},
///             {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
///         ]},
///         {"role": "assistant", "tool_calls": [
///             {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{}"}}
///         ]},
///         {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
///     ],
///     "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
///     "tool_choice": "auto",
///     "max_tokens": 64,
///     "stream": true,
///     "top_k": 40
/// });
/// let request: ChatRequest = provider_sdk::serde_json::from_value(wire.clone()).unwrap();
/// assert!(matches!(request.messages[3], Message::Tool { .. }));
/// assert_eq!(request.tool_choice, Some(ToolChoice::Mode(ToolChoiceMode::Auto)));
/// assert_eq!(request.extra["top_k"], 40);
/// assert_eq!(provider_sdk::serde_json::to_value(&request).unwrap(), wire);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ChatRequest {
    /// The provider's model id.
    pub model: String,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<Tool>,
    /// How the model should choose among `tools`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_choice: Option<ToolChoice>,
    /// Whether the model may call several tools in one turn.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallel_tool_calls: Option<bool>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Nucleus sampling mass.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Legacy output-token limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Output-token limit, reasoning tokens included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_completion_tokens: Option<u32>,
    /// Sequences that end generation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop: Option<StopSequences>,
    /// Presence penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// Frequency penalty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    /// Seed for best-effort determinism.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    /// Number of choices; the host only serves `n = 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// End-user identifier forwarded to the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Required output format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Reasoning effort for reasoning models (`low`, `medium`, `high`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    /// Whether the client asked for a stream.
    #[serde(default)]
    pub stream: bool,
    /// Streaming options (`include_usage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_options: Option<StreamOptions>,
    /// Every other request field, passed through to the provider untouched.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request for `model` with the given messages and nothing else set.
    pub fn new(model: impl Into<String>, messages: Vec<Message>) -> Self {
        ChatRequest {
            model: model.into(),
            messages,
            ..ChatRequest::default()
        }
    }

    /// The text of the last user message, if there is one.
    pub fn last_user_text(&self) -> Option<String> {
        self.messages.iter().rev().find_map(|m| match m {
            Message::User { content, .. } => Some(content.text()),
            _ => None,
        })
    }
}

/// Read member by member: a derived `Deserialize` with `#[serde(flatten)] extra` would
/// first copy the whole request into serde's buffer, every string of every message
/// included, and then read it again from there (about half of what parsing a small
/// request cost, on every request the host serves and every request a plugin reads).
impl<'de> Deserialize<'de> for ChatRequest {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ChatRequestVisitor)
    }
}

struct ChatRequestVisitor;

impl<'de> serde::de::Visitor<'de> for ChatRequestVisitor {
    type Value = ChatRequest;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a chat completion request (a JSON object)")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<ChatRequest, A::Error> {
        use serde::de::Error;
        let mut request = ChatRequest::default();
        let (mut model, mut messages) = (None, None);
        // One bit per field already read.
        let mut seen = 0u32;
        while let Some(key) = map.next_key::<MemberName<'de>>()? {
            let key = key.0;
            // Members of the request's own fields are read once (as a derived reader
            // would: a second `model` is an error, not a silent override).
            macro_rules! field {
                ($bit:literal, $name:literal, $slot:expr) => {{
                    if seen & (1 << $bit) != 0 {
                        return Err(A::Error::duplicate_field($name));
                    }
                    seen |= 1 << $bit;
                    $slot = map.next_value()?;
                }};
            }
            match key.as_ref() {
                "model" => field!(0, "model", model),
                "messages" => field!(1, "messages", messages),
                "tools" => field!(2, "tools", request.tools),
                "tool_choice" => field!(3, "tool_choice", request.tool_choice),
                "parallel_tool_calls" => {
                    field!(4, "parallel_tool_calls", request.parallel_tool_calls)
                }
                "temperature" => field!(5, "temperature", request.temperature),
                "top_p" => field!(6, "top_p", request.top_p),
                "max_tokens" => field!(7, "max_tokens", request.max_tokens),
                "max_completion_tokens" => {
                    field!(8, "max_completion_tokens", request.max_completion_tokens)
                }
                "stop" => field!(9, "stop", request.stop),
                "presence_penalty" => field!(10, "presence_penalty", request.presence_penalty),
                "frequency_penalty" => field!(11, "frequency_penalty", request.frequency_penalty),
                "seed" => field!(12, "seed", request.seed),
                "n" => field!(13, "n", request.n),
                "user" => field!(14, "user", request.user),
                "response_format" => field!(15, "response_format", request.response_format),
                "reasoning_effort" => field!(16, "reasoning_effort", request.reasoning_effort),
                "stream" => field!(17, "stream", request.stream),
                "stream_options" => field!(18, "stream_options", request.stream_options),
                _ => {
                    let value: Value = map.next_value()?;
                    request.extra.insert(key.into_owned(), value);
                }
            }
        }
        request.model = model.ok_or_else(|| A::Error::missing_field("model"))?;
        request.messages = messages.ok_or_else(|| A::Error::missing_field("messages"))?;
        Ok(request)
    }
}

/// A member's name, borrowed from the input when it holds no escapes.
struct MemberName<'de>(std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for MemberName<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Name;
        impl<'de> serde::de::Visitor<'de> for Name {
            type Value = MemberName<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Owned(name.to_owned())))
            }
            fn visit_string<E>(self, name: String) -> Result<MemberName<'de>, E> {
                Ok(MemberName(std::borrow::Cow::Owned(name)))
            }
        }
        deserializer.deserialize_str(Name)
    }
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum StopSequences {
    /// A single stop sequence.
    One(String),
    /// Several stop sequences.
    Many(Vec<String>),
}

impl StopSequences {
    /// The sequences as a slice-like list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            StopSequences::One(s) => vec![s.clone()],
            StopSequences::Many(v) => v.clone(),
        }
    }
}

/// Streaming options of a request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StreamOptions {
    /// Send a final chunk with the usage of the whole request.
    #[serde(default)]
    pub include_usage: bool,
}

/// One message of the conversation, tagged by `role`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "role", rename_all = "lowercase")]
pub enum Message {
    /// Instructions from the operator.
    System {
        /// The instructions.
        content: Content,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// Instructions from the developer (OpenAI's newer name for system messages).
    Developer {
        /// The instructions.
        content: Content,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// A user turn: text and images.
    User {
        /// The user's content.
        content: Content,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// An earlier assistant turn, possibly with tool calls.
    Assistant {
        /// The answer's text, absent when the turn only called tools.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        content: Option<Content>,
        /// Reasoning text the model produced on this turn, for providers that take it back.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reasoning_content: Option<String>,
        /// The exact reasoning blocks of this turn (with signatures, or encrypted), as the
        /// answer carried them; providers that verify reasoning (Anthropic's thinking)
        /// need them back on later turns.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        reasoning_details: Vec<ReasoningDetail>,
        /// Tools the assistant called on this turn.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall>,
        /// A refusal message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
        /// Optional participant name.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// The result of a tool call.
    Tool {
        /// The tool's output.
        content: Content,
        /// The id of the call this answers.
        tool_call_id: String,
    },
}

impl Message {
    /// A user message with plain text.
    pub fn user(text: impl Into<String>) -> Self {
        Message::User {
            content: Content::Text(text.into()),
            name: None,
        }
    }

    /// A system message with plain text.
    pub fn system(text: impl Into<String>) -> Self {
        Message::System {
            content: Content::Text(text.into()),
            name: None,
        }
    }

    /// An assistant message with plain text.
    pub fn assistant(text: impl Into<String>) -> Self {
        Message::Assistant {
            content: Some(Content::Text(text.into())),
            reasoning_content: None,
            reasoning_details: Vec::new(),
            tool_calls: Vec::new(),
            refusal: None,
            name: None,
        }
    }
}

/// Message content: a plain string or a list of typed parts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Content {
    /// Plain text.
    Text(String),
    /// Text and image parts.
    Parts(Vec<ContentPart>),
}

/// Read by what the JSON holds (a string or an array), without the copy into serde's
/// buffer that a derived untagged enum makes of every message's text.
impl<'de> Deserialize<'de> for Content {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = Content;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string or an array of content parts")
            }
            fn visit_str<E>(self, text: &str) -> Result<Content, E> {
                Ok(Content::Text(text.to_owned()))
            }
            fn visit_string<E>(self, text: String) -> Result<Content, E> {
                Ok(Content::Text(text))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<Content, A::Error> {
                Vec::<ContentPart>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(Content::Parts)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl Content {
    /// The text of the content, parts joined without separator; images are skipped.
    pub fn text(&self) -> String {
        match self {
            Content::Text(s) => s.clone(),
            Content::Parts(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    ContentPart::Text { text } => Some(text.as_str()),
                    _ => None,
                })
                .collect(),
        }
    }
}

/// One part of a multi-part message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    /// A text part.
    Text {
        /// The text.
        text: String,
    },
    /// An image, by URL or `data:` URL.
    ImageUrl {
        /// Where the image is.
        image_url: ImageUrl,
    },
}

/// An image reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageUrl {
    /// `https://...` or `data:image/png;base64,...`.
    pub url: String,
    /// `low`, `high` or `auto`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A tool the model may call. Only function tools exist today.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// The function's definition.
    pub function: FunctionDefinition,
}

fn function_type() -> String {
    "function".to_owned()
}

/// A function tool's name, description and JSON-schema parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionDefinition {
    /// The function's name.
    pub name: String,
    /// What the function does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON schema of the arguments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parameters: Option<Value>,
    /// Strict schema adherence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
}

/// `tool_choice`: a mode or a named function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    /// `none`, `auto` or `required`.
    Mode(ToolChoiceMode),
    /// `{"type": "function", "function": {"name": ...}}`.
    Function {
        /// Always `function`.
        #[serde(rename = "type")]
        kind: String,
        /// The function that must be called.
        function: NamedFunction,
    },
}

/// The tool-choice modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoiceMode {
    /// Never call a tool.
    None,
    /// The model decides.
    Auto,
    /// Call at least one tool.
    Required,
}

/// A function named by `tool_choice`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamedFunction {
    /// The function's name.
    pub name: String,
}

/// `response_format`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text.
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// `{name, schema, strict, description}` as the client sent it.
        json_schema: Value,
    },
}

/// A tool call made by the assistant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The call's id, echoed back by the tool message that answers it.
    pub id: String,
    /// Always `function`.
    #[serde(rename = "type", default = "function_type")]
    pub kind: String,
    /// Which function, with which arguments.
    pub function: FunctionCall,
}

impl ToolCall {
    /// A function call with its id, name and JSON arguments.
    pub fn function(
        id: impl Into<String>,
        name: impl Into<String>,
        arguments: impl Into<String>,
    ) -> Self {
        ToolCall {
            id: id.into(),
            kind: function_type(),
            function: FunctionCall {
                name: name.into(),
                arguments: arguments.into(),
            },
        }
    }
}

/// A function call's name and its arguments as a JSON string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionCall {
    /// The function's name.
    pub name: String,
    /// The arguments, a JSON document as text.
    pub arguments: String,
}

/// A complete (non-streamed) answer, the SDK's own shape:
///
/// ```
/// use provider_sdk::{ChatResponse, FinishReason};
/// use provider_sdk::serde_json::json;
///
/// let answer: ChatResponse = provider_sdk::serde_json::from_value(json!({
///     "id": "answer-1",
///     "model": "some-model",
///     "message": {"content": "Hello", "tool_calls": [
///         {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
///     ]},
///     "finish_reason": "tool_calls",
///     "usage": {"prompt_tokens": 9, "completion_tokens": 3}
/// })).unwrap();
/// assert_eq!(answer.finish_reason, FinishReason::ToolCalls);
/// assert_eq!(answer.usage.unwrap().total_tokens(), 12);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The upstream's id for this answer, if it gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The model that answered, as the upstream names it.
    pub model: String,
    /// The answer.
    pub message: AssistantMessage,
    /// Why generation stopped.
    pub finish_reason: FinishReason,
    /// Token usage, when the upstream reported it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
}

/// The assistant's answer in a [`ChatResponse`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AssistantMessage {
    /// The answer's text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// The model's visible reasoning, for models that expose it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reasoning: Option<String>,
    /// The exact reasoning blocks, to be sent back on later turns.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reasoning_details: Vec<ReasoningDetail>,
    /// Tools the model called.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// A refusal message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refusal: Option<String>,
}

/// One reasoning block, in the shape OpenAI-compatible gateways use for
/// `reasoning_details` (`reasoning.text` with an optional signature, or
/// `reasoning.encrypted` with opaque data), so clients can echo it back unchanged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReasoningDetail {
    /// `reasoning.text`, `reasoning.encrypted` or `reasoning.summary`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The reasoning text (`reasoning.text`, `reasoning.summary`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The provider's signature over the text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Opaque reasoning (`reasoning.encrypted`, Anthropic's redacted thinking).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    /// Which provider format the block is in (e.g. `anthropic-claude-v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// Why the model stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// A natural end or a stop sequence.
    #[default]
    Stop,
    /// The output-token limit.
    Length,
    /// The model called tools.
    ToolCalls,
    /// The provider's safety filter.
    ContentFilter,
    /// Anything else the upstream reported.
    #[serde(other)]
    Other,
}

impl FinishReason {
    /// The OpenAI wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::ToolCalls => "tool_calls",
            FinishReason::ContentFilter => "content_filter",
            FinishReason::Other => "stop",
        }
    }
}

/// Token usage of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Input tokens, cached ones included.
    pub prompt_tokens: u64,
    /// Output tokens, reasoning ones included.
    pub completion_tokens: u64,
    /// Input tokens served from the provider's prompt cache.
    #[serde(default)]
    pub cached_prompt_tokens: u64,
    /// Input tokens written to the provider's prompt cache.
    #[serde(default)]
    pub cache_write_tokens: u64,
    /// Output tokens spent on reasoning.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_openai_request_deserializes_without_loss() {
        let wire = json!({
            "model": "gpt-4o-mini",
            "messages": [
                {"role": "system", "content": "be brief"},
                {"role": "user", "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"}}
                ]},
                {"role": "assistant", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "look", "arguments": "{\"x\":1}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"}
            ],
            "tools": [{"type": "function", "function": {"name": "look", "parameters": {"type": "object"}}}],
            "tool_choice": {"type": "function", "function": {"name": "look"}},
            "temperature": 0.2,
            "stop": ["\n\n"],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}},
            "stream": true,
            "stream_options": {"include_usage": true},
            "logit_bias": {"50256": -100},
            "metadata": {"team": "a"}
        });
        let request: ChatRequest = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(request.messages.len(), 4);
        assert!(request.stream);
        assert_eq!(request.extra["metadata"], json!({"team": "a"}));
        assert_eq!(request.extra["logit_bias"], json!({"50256": -100}));
        let back = serde_json::to_value(&request).unwrap();
        assert_eq!(back, wire, "a round trip must not lose or invent fields");
    }

    #[test]
    fn a_request_read_from_text_is_the_request_read_from_a_value_and_its_faults_are_named() {
        let text = r#"{"top_k": 40, "messages": [{"role": "user", "content": "hi"},
            {"role": "user", "content": [{"type": "text", "text": "again"}]}],
            "model": "m", "max_tokens": 8, "temperature": null, "na\u006De": "escaped"}"#;
        let from_text: ChatRequest = serde_json::from_str(text).unwrap();
        let value: Value = serde_json::from_str(text).unwrap();
        assert_eq!(
            from_text,
            serde_json::from_value::<ChatRequest>(value).unwrap()
        );
        assert_eq!(from_text.model, "m");
        assert_eq!(from_text.max_tokens, Some(8));
        assert_eq!(from_text.temperature, None);
        assert_eq!(from_text.extra["top_k"], 40);
        assert_eq!(
            from_text.extra["name"], "escaped",
            "escaped member names are read"
        );
        assert!(matches!(
            &from_text.messages[1],
            Message::User { content: Content::Parts(parts), .. }
                if parts == &[ContentPart::Text { text: "again".to_owned() }]
        ));

        let error = |text: &str| {
            serde_json::from_str::<ChatRequest>(text)
                .unwrap_err()
                .to_string()
        };
        assert!(error(r#"{"model": "a", "model": "b", "messages": []}"#)
            .contains("duplicate field `model`"));
        assert!(error(r#"{"messages": []}"#).contains("missing field `model`"));
        assert!(error(r#"{"model": "m"}"#).contains("missing field `messages`"));
        assert!(
            error(r#"{"model": "m", "messages": [{"role": "user", "content": 7}]}"#)
                .contains("a string or an array of content parts")
        );
        assert!(error(r#"["model"]"#).contains("a chat completion request"));
    }

    #[test]
    fn an_assistant_turn_with_null_content_is_accepted() {
        let m: Message =
            serde_json::from_value(json!({"role": "assistant", "content": null})).unwrap();
        assert!(matches!(m, Message::Assistant { content: None, .. }));
    }

    #[test]
    fn tool_choice_accepts_modes_and_named_functions() {
        let auto: ToolChoice = serde_json::from_value(json!("auto")).unwrap();
        assert_eq!(auto, ToolChoice::Mode(ToolChoiceMode::Auto));
        let named: ToolChoice =
            serde_json::from_value(json!({"type": "function", "function": {"name": "f"}})).unwrap();
        assert!(matches!(named, ToolChoice::Function { function, .. } if function.name == "f"));
    }

    #[test]
    fn unknown_finish_reasons_become_other() {
        let r: FinishReason = serde_json::from_value(json!("function_call")).unwrap();
        assert_eq!(r, FinishReason::Other);
    }
}
