//! An Anthropic Messages request, read as the API documents it and turned into the
//! canonical request.
//!
//! What has no canonical place (server tools, PDF documents, images in tool results,
//! fields this version does not know) is listed in [`Translated::lost`], never dropped
//! silently: an Anthropic target gets the client's body as it is, and any other target
//! is refused with a 400 naming what it would lose. `cache_control` markers are hints
//! to Anthropic's prompt cache; across protocols there is no cache to hint, so they are
//! not carried.

use provider_sdk::{
    ChatRequest, Content, ContentPart, FunctionDefinition, ImageUrl, Message, NamedFunction,
    ReasoningDetail, StopSequences, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The `format` of reasoning details that came from Anthropic thinking blocks, as the
/// anthropic plugin names them, so a later turn can be replayed to Anthropic.
pub const THINKING_FORMAT: &str = "anthropic-claude-v1";

/// `POST /v1/messages`.
#[derive(Debug, Deserialize)]
pub struct MessagesRequest {
    pub model: String,
    pub max_tokens: u32,
    pub messages: Vec<InputMessage>,
    #[serde(default)]
    pub system: Option<System>,
    #[serde(default)]
    pub stop_sequences: Vec<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub top_k: Option<u32>,
    #[serde(default)]
    pub metadata: Option<Metadata>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub tool_choice: Option<AnthropicToolChoice>,
    #[serde(default)]
    pub thinking: Option<Thinking>,
    /// Fields this version does not know; see [`into_canonical`].
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `system`: a string or text blocks.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum System {
    Text(String),
    Blocks(Vec<TextBlock>),
}

#[derive(Debug, Deserialize)]
pub struct TextBlock {
    pub text: String,
}

#[derive(Debug, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub user_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct InputMessage {
    pub role: Role,
    pub content: InputContent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    /// Sent inside `messages` by newer clients; folded into the system prompt.
    System,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum InputContent {
    Text(String),
    Blocks(Vec<Block>),
}

/// A content block of a turn.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Block {
    Text {
        text: String,
    },
    Image {
        source: Source,
    },
    Document {
        source: Source,
        #[serde(default)]
        title: Option<String>,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        #[serde(default)]
        content: Option<InputContent>,
        #[serde(default)]
        is_error: bool,
    },
    Thinking {
        thinking: String,
        #[serde(default)]
        signature: Option<String>,
    },
    RedactedThinking {
        data: String,
    },
}

/// Where an image or document comes from.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Source {
    Base64 {
        media_type: String,
        data: String,
    },
    Url {
        url: String,
    },
    Text {
        data: String,
    },
    Content {
        content: Vec<Block>,
    },
    /// A file id or a source type of a later API version: Anthropic targets only.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AnthropicToolChoice {
    Auto {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Any {
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    Tool {
        name: String,
        #[serde(default)]
        disable_parallel_tool_use: bool,
    },
    None,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Thinking {
    Enabled { budget_tokens: u32 },
    Disabled,
    Adaptive,
}

/// A request that is malformed whatever the target: the message names the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Untranslatable(pub String);

/// The canonical request, and what it could not carry.
#[derive(Debug)]
pub struct Translated {
    /// The canonical request; `model` is still the client's model string.
    pub request: ChatRequest,
    /// What a non-Anthropic target would not get, one line each, naming the place.
    pub lost: Vec<String>,
}

/// Fields Anthropic documents that have no canonical meaning and change nothing in an
/// answer's content; they are accepted and not carried across protocols.
const HINTS: &[&str] = &["cache_control", "service_tier", "container", "speed"];

impl MessagesRequest {
    /// The canonical request and what it could not carry.
    pub fn into_canonical(self) -> Result<Translated, Untranslatable> {
        let mut lost: Vec<String> = self
            .other
            .keys()
            .filter(|k| !HINTS.contains(&k.as_str()))
            .map(|field| format!("the field `{field}`"))
            .collect();
        let mut messages = Vec::new();
        match self.system {
            Some(System::Text(text)) if !text.is_empty() => messages.push(Message::system(text)),
            Some(System::Blocks(blocks)) if !blocks.is_empty() => messages.push(Message::System {
                content: text_content(blocks.into_iter().map(|b| b.text).collect()),
                name: None,
            }),
            _ => {}
        }
        for (i, message) in self.messages.into_iter().enumerate() {
            turn(i, message, &mut messages, &mut lost)?;
        }
        let mut tools = Vec::new();
        for (i, t) in self.tools.into_iter().enumerate() {
            tools.extend(tool(i, t, &mut lost)?);
        }
        let (tool_choice, parallel_tool_calls) = match self.tool_choice {
            None => (None, None),
            Some(choice) => choice.into_canonical(),
        };
        let mut extra = Map::new();
        if let Some(top_k) = self.top_k {
            extra.insert("top_k".into(), top_k.into());
        }
        let request = ChatRequest {
            model: self.model,
            messages,
            tools,
            tool_choice,
            parallel_tool_calls,
            temperature: self.temperature,
            top_p: self.top_p,
            max_tokens: Some(self.max_tokens),
            stop: (!self.stop_sequences.is_empty())
                .then_some(StopSequences::Many(self.stop_sequences)),
            user: self.metadata.and_then(|m| m.user_id),
            reasoning_effort: self.thinking.and_then(Thinking::effort),
            stream: self.stream,
            extra,
            ..ChatRequest::default()
        };
        Ok(Translated { request, lost })
    }
}

impl AnthropicToolChoice {
    fn into_canonical(self) -> (Option<ToolChoice>, Option<bool>) {
        let parallel = |disable: bool| disable.then_some(false);
        match self {
            AnthropicToolChoice::Auto {
                disable_parallel_tool_use,
            } => (
                Some(ToolChoice::Mode(ToolChoiceMode::Auto)),
                parallel(disable_parallel_tool_use),
            ),
            AnthropicToolChoice::Any {
                disable_parallel_tool_use,
            } => (
                Some(ToolChoice::Mode(ToolChoiceMode::Required)),
                parallel(disable_parallel_tool_use),
            ),
            AnthropicToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                Some(ToolChoice::Function {
                    kind: "function".into(),
                    function: NamedFunction { name },
                }),
                parallel(disable_parallel_tool_use),
            ),
            AnthropicToolChoice::None => (Some(ToolChoice::Mode(ToolChoiceMode::None)), None),
        }
    }
}

impl Thinking {
    /// The canonical reasoning effort a thinking budget stands for.
    fn effort(self) -> Option<String> {
        let effort = match self {
            Thinking::Disabled => return None,
            Thinking::Adaptive => "medium",
            Thinking::Enabled { budget_tokens } if budget_tokens <= 4_096 => "low",
            Thinking::Enabled { budget_tokens } if budget_tokens <= 16_384 => "medium",
            Thinking::Enabled { .. } => "high",
        };
        Some(effort.to_owned())
    }
}

fn text_content(mut texts: Vec<String>) -> Content {
    if texts.len() == 1 {
        Content::Text(texts.remove(0))
    } else {
        Content::Parts(
            texts
                .into_iter()
                .map(|text| ContentPart::Text { text })
                .collect(),
        )
    }
}

/// One turn; a user turn's tool results become tool messages, placed before its
/// other content as the OpenAI shape requires.
fn turn(
    i: usize,
    message: InputMessage,
    out: &mut Vec<Message>,
    lost: &mut Vec<String>,
) -> Result<(), Untranslatable> {
    let blocks = match message.content {
        InputContent::Text(text) => vec![Block::Text { text }],
        InputContent::Blocks(blocks) => blocks,
    };
    let at = |j: usize| format!("messages[{i}].content[{j}]");
    match message.role {
        Role::System => {
            let mut texts = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                match block {
                    Block::Text { text } => texts.push(text),
                    _ => {
                        return Err(Untranslatable(format!(
                            "{}: a system turn may hold only text blocks",
                            at(j)
                        )))
                    }
                }
            }
            out.push(Message::System {
                content: text_content(texts),
                name: None,
            });
        }
        Role::User => {
            let mut parts = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                match block {
                    Block::ToolResult {
                        tool_use_id,
                        content,
                        is_error,
                    } => {
                        let text = match content {
                            None => String::new(),
                            Some(InputContent::Text(text)) => text,
                            Some(InputContent::Blocks(blocks)) => {
                                let (text, dropped) = result_text(blocks);
                                if dropped > 0 {
                                    lost.push(format!(
                                        "{}.content: {dropped} non-text block(s) of a tool result",
                                        at(j)
                                    ));
                                }
                                text
                            }
                        };
                        // The OpenAI shape has no error flag on tool results: say it in
                        // the content, where the model reads it.
                        let text = if is_error {
                            format!("Error: {text}")
                        } else {
                            text
                        };
                        out.push(Message::Tool {
                            content: Content::Text(text),
                            tool_call_id: tool_use_id,
                        });
                    }
                    other => match user_part(other) {
                        Ok(Part::Kept(part)) => parts.push(part),
                        Ok(Part::Lost(what)) => lost.push(format!("{}: {what}", at(j))),
                        Err(what) => return Err(Untranslatable(format!("{}: {what}", at(j)))),
                    },
                }
            }
            if !parts.is_empty() {
                let content = match parts.as_slice() {
                    [ContentPart::Text { .. }] => match parts.remove(0) {
                        ContentPart::Text { text } => Content::Text(text),
                        _ => unreachable!("matched a text part"),
                    },
                    _ => Content::Parts(parts),
                };
                out.push(Message::User {
                    content,
                    name: None,
                });
            }
        }
        Role::Assistant => {
            let mut text = String::new();
            let mut tool_calls = Vec::new();
            let mut reasoning_details = Vec::new();
            for (j, block) in blocks.into_iter().enumerate() {
                match block {
                    Block::Text { text: t } => text.push_str(&t),
                    Block::ToolUse { id, name, input } => {
                        let arguments = if input.is_null() {
                            "{}".to_owned()
                        } else {
                            input.to_string()
                        };
                        tool_calls.push(ToolCall::function(id, name, arguments));
                    }
                    Block::Thinking {
                        thinking,
                        signature,
                    } => reasoning_details.push(ReasoningDetail {
                        kind: "reasoning.text".into(),
                        text: Some(thinking),
                        signature,
                        data: None,
                        format: Some(THINKING_FORMAT.into()),
                    }),
                    Block::RedactedThinking { data } => reasoning_details.push(ReasoningDetail {
                        kind: "reasoning.encrypted".into(),
                        text: None,
                        signature: None,
                        data: Some(data),
                        format: Some(THINKING_FORMAT.into()),
                    }),
                    _ => {
                        return Err(Untranslatable(format!(
                            "{}: an assistant turn may hold text, tool_use and thinking blocks",
                            at(j)
                        )))
                    }
                }
            }
            out.push(Message::Assistant {
                content: (!text.is_empty()).then_some(Content::Text(text)),
                reasoning_content: None,
                reasoning_details,
                tool_calls,
                refusal: None,
                name: None,
            });
        }
    }
    Ok(())
}

/// A user block in canonical form, or what it is when it has none.
enum Part {
    Kept(ContentPart),
    Lost(&'static str),
}

/// A user turn's text, image or text document as a canonical part.
fn user_part(block: Block) -> Result<Part, String> {
    match block {
        Block::Text { text } => Ok(Part::Kept(ContentPart::Text { text })),
        Block::Image { source } => match source {
            Source::Base64 { media_type, data } => Ok(Part::Kept(image(format!(
                "data:{media_type};base64,{data}"
            )))),
            Source::Url { url } => Ok(Part::Kept(image(url))),
            _ => Ok(Part::Lost("an image by file id")),
        },
        Block::Document { source, title } => match source {
            Source::Text { data } => Ok(Part::Kept(titled(title, data))),
            Source::Content { content } => match result_text(content) {
                (text, 0) => Ok(Part::Kept(titled(title, text))),
                _ => Ok(Part::Lost("a document with non-text blocks")),
            },
            _ => Ok(Part::Lost("a PDF or file document")),
        },
        Block::Thinking { .. } | Block::RedactedThinking { .. } | Block::ToolUse { .. } => {
            Err("thinking and tool_use blocks belong in assistant turns".into())
        }
        Block::ToolResult { .. } => unreachable!("tool results are taken out before"),
    }
}

fn titled(title: Option<String>, text: String) -> ContentPart {
    ContentPart::Text {
        text: match title {
            Some(title) => format!("{title}\n\n{text}"),
            None => text,
        },
    }
}

fn image(url: String) -> ContentPart {
    ContentPart::ImageUrl {
        image_url: ImageUrl { url, detail: None },
    }
}

/// The text of blocks, and how many had no text to give (images in tool results have
/// no OpenAI shape).
fn result_text(blocks: Vec<Block>) -> (String, usize) {
    let mut text = String::new();
    let mut dropped = 0;
    for block in blocks {
        match block {
            Block::Text { text: t } => text.push_str(&t),
            Block::Document {
                source: Source::Text { data },
                ..
            } => text.push_str(&data),
            _ => dropped += 1,
        }
    }
    (text, dropped)
}

/// A custom tool; server tools (`web_search_...`, `bash_...`) run at Anthropic only.
fn tool(i: usize, tool: Value, lost: &mut Vec<String>) -> Result<Option<Tool>, Untranslatable> {
    #[derive(Deserialize)]
    struct Custom {
        name: String,
        #[serde(default)]
        description: Option<String>,
        input_schema: Value,
        #[serde(default)]
        strict: Option<bool>,
    }
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or("custom");
    if kind != "custom" {
        lost.push(format!(
            "tools[{i}]: the server tool `{kind}`, which runs only at Anthropic"
        ));
        return Ok(None);
    }
    let custom: Custom =
        serde_json::from_value(tool).map_err(|e| Untranslatable(format!("tools[{i}]: {e}")))?;
    Ok(Some(Tool {
        kind: "function".into(),
        function: FunctionDefinition {
            name: custom.name,
            description: custom.description,
            parameters: Some(custom.input_schema),
            strict: custom.strict,
        },
    }))
}
