//! The OpenAI chat-completions response shapes: a whole answer, and stream chunks.

use provider_sdk::{ChatResponse, FinishReason, ReasoningDetail, StreamEvent, ToolCall, Usage};
use serde::Serialize;

/// `chat.completion`.
#[derive(Serialize)]
pub struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: [Choice<'a>; 1],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<UsageOut>,
}

#[derive(Serialize)]
struct Choice<'a> {
    index: u32,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "<[ReasoningDetail]>::is_empty")]
    reasoning_details: &'a [ReasoningDetail],
    #[serde(skip_serializing_if = "<[ToolCall]>::is_empty")]
    tool_calls: &'a [ToolCall],
    refusal: Option<&'a str>,
}

/// OpenAI's usage object.
#[derive(Serialize, Clone, Copy)]
pub struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: PromptDetails,
    completion_tokens_details: CompletionDetails,
}

#[derive(Serialize, Clone, Copy)]
struct PromptDetails {
    cached_tokens: u64,
}

#[derive(Serialize, Clone, Copy)]
struct CompletionDetails {
    reasoning_tokens: u64,
}

impl From<Usage> for UsageOut {
    fn from(u: Usage) -> Self {
        UsageOut {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens(),
            prompt_tokens_details: PromptDetails {
                cached_tokens: u.cached_prompt_tokens,
            },
            completion_tokens_details: CompletionDetails {
                reasoning_tokens: u.reasoning_tokens,
            },
        }
    }
}

impl<'a> Completion<'a> {
    /// The OpenAI form of `response`.
    pub fn new(id: &'a str, created: u64, model: &'a str, response: &'a ChatResponse) -> Self {
        let m = &response.message;
        Completion {
            id,
            object: "chat.completion",
            created,
            model,
            choices: [Choice {
                index: 0,
                message: MessageOut {
                    role: "assistant",
                    content: m.content.as_deref(),
                    reasoning_content: m.reasoning.as_deref(),
                    reasoning_details: &m.reasoning_details,
                    tool_calls: &m.tool_calls,
                    refusal: m.refusal.as_deref(),
                },
                logprobs: None,
                finish_reason: response.finish_reason.as_str(),
            }],
            usage: response.usage.map(UsageOut::from),
        }
    }
}

/// Turns canonical stream events into `chat.completion.chunk` JSON, one event at a time.
pub struct ChunkWriter {
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    sent_role: bool,
    usage: Option<Usage>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: &'a [ChunkChoice<'a>],
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: u32,
    delta: Delta<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize, Default)]
struct Delta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_details: Option<[&'a ReasoningDetail; 1]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<[ToolCallDelta<'a>; 1]>,
}

#[derive(Serialize)]
struct ToolCallDelta<'a> {
    index: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a str>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    function: FunctionDelta<'a>,
}

#[derive(Serialize)]
struct FunctionDelta<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    arguments: &'a str,
}

impl ChunkWriter {
    /// A writer for one streamed answer.
    pub fn new(id: String, created: u64, model: String, include_usage: bool) -> Self {
        ChunkWriter {
            id,
            created,
            model,
            include_usage,
            sent_role: false,
            usage: None,
        }
    }

    /// The JSON chunks `event` becomes (none for events the client does not see yet).
    pub fn event(&mut self, event: &StreamEvent, out: &mut Vec<String>) {
        let delta = match event {
            // The role goes out with the first delta that says something, as OpenAI
            // does: a tool call's first chunk then carries no empty `content`.
            StreamEvent::Start { .. } => return,
            StreamEvent::TextDelta { text } => Delta {
                content: Some(text),
                ..Delta::default()
            },
            StreamEvent::ReasoningDelta { text } => Delta {
                reasoning_content: Some(text),
                ..Delta::default()
            },
            StreamEvent::ReasoningDetail { detail } => Delta {
                reasoning_details: Some([detail]),
                ..Delta::default()
            },
            StreamEvent::ToolCallStart { index, id, name } => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: *index,
                    id: Some(id),
                    kind: Some("function"),
                    function: FunctionDelta {
                        name: Some(name),
                        arguments: "",
                    },
                }]),
                ..Delta::default()
            },
            StreamEvent::ToolCallDelta { index, arguments } => Delta {
                tool_calls: Some([ToolCallDelta {
                    index: *index,
                    id: None,
                    kind: None,
                    function: FunctionDelta {
                        name: None,
                        arguments,
                    },
                }]),
                ..Delta::default()
            },
            StreamEvent::Usage { usage } => {
                self.usage = Some(*usage);
                return;
            }
            StreamEvent::Finish { reason } => {
                self.push(out, Delta::default(), Some(*reason));
                return;
            }
        };
        self.push(out, delta, None);
    }

    /// The chunks that close the stream: the usage chunk when the client asked for it.
    pub fn end(&mut self, out: &mut Vec<String>) {
        if !self.sent_role {
            // An answer with no delta at all still names its role.
            self.push(out, Delta::default(), None);
        }
        if self.include_usage {
            let chunk = Chunk {
                id: &self.id,
                object: "chat.completion.chunk",
                created: self.created,
                model: &self.model,
                choices: &[],
                usage: Some(self.usage.map(UsageOut::from)),
            };
            out.push(serde_json::to_string(&chunk).expect("serializable"));
        }
    }

    fn push(&mut self, out: &mut Vec<String>, mut delta: Delta<'_>, finish: Option<FinishReason>) {
        if !self.sent_role {
            self.sent_role = true;
            delta.role = Some("assistant");
            if delta.content.is_none()
                && delta.tool_calls.is_none()
                && delta.reasoning_content.is_none()
            {
                delta.content = Some("");
            }
        }
        let choices = [ChunkChoice {
            index: 0,
            delta,
            logprobs: None,
            finish_reason: finish.map(FinishReason::as_str),
        }];
        let chunk = Chunk {
            id: &self.id,
            object: "chat.completion.chunk",
            created: self.created,
            model: &self.model,
            choices: &choices,
            usage: self.include_usage.then_some(None),
        };
        out.push(serde_json::to_string(&chunk).expect("serializable"));
    }
}
