//! A Responses-API request, read as the API documents it and turned into the canonical
//! request. What has no canonical place (hosted tools, file inputs, item references) is
//! refused with a 400 naming it, never dropped.

use provider_sdk::{
    ChatRequest, Content, ContentPart, FunctionDefinition, ImageUrl, Message, NamedFunction,
    ReasoningDetail, ResponseFormat, Tool, ToolCall, ToolChoice, ToolChoiceMode,
};
use serde::Deserialize;
use serde_json::{json, Map, Value};

/// The `format` of reasoning details that came from Responses `reasoning` items.
const REASONING_FORMAT: &str = "openai-responses-v1";

/// `POST /v1/responses`.
#[derive(Debug, Deserialize)]
pub struct ResponsesRequest {
    pub model: String,
    pub input: Input,
    #[serde(default)]
    pub instructions: Option<String>,
    #[serde(default)]
    pub tools: Vec<Value>,
    #[serde(default)]
    pub tool_choice: Option<Value>,
    #[serde(default)]
    pub max_output_tokens: Option<u32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub top_p: Option<f64>,
    #[serde(default)]
    pub parallel_tool_calls: Option<bool>,
    #[serde(default)]
    pub text: Option<TextConfig>,
    #[serde(default)]
    pub store: Option<bool>,
    #[serde(default)]
    pub previous_response_id: Option<String>,
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default)]
    pub reasoning: Option<Reasoning>,
    #[serde(default)]
    pub user: Option<String>,
    /// Everything else; see [`HINTS`].
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// `input`: one user message, or items.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Input {
    Text(String),
    Items(Vec<Value>),
}

#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct TextConfig {
    #[serde(default)]
    pub format: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verbosity: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Reasoning {
    #[serde(default)]
    pub effort: Option<String>,
}

/// Fields the API documents that ask nothing of the answer's content (delivery and
/// caching hints); accepted and not carried.
const HINTS: &[&str] = &[
    "stream_options",
    "include",
    "truncation",
    "service_tier",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
];

/// A request this host cannot serve as asked: the message names the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Refused(pub String);

impl ResponsesRequest {
    /// Whether the answer is to be kept (the API's default is yes).
    pub fn store(&self) -> bool {
        self.store.unwrap_or(true)
    }

    /// The canonical request after `history` (a stored conversation this one continues)
    /// and this request's own input; also the conversation to store, which leaves out
    /// `instructions` (a continuation does not inherit them).
    pub fn to_canonical(
        &self,
        history: Vec<Message>,
    ) -> Result<(ChatRequest, Vec<Message>), Refused> {
        if let Some(field) = self.other.keys().find(|k| !HINTS.contains(&k.as_str())) {
            return Err(Refused(format!(
                "`{field}` is not supported by this host's Responses endpoint"
            )));
        }
        let mut conversation = history;
        match &self.input {
            Input::Text(text) => conversation.push(Message::user(text.clone())),
            Input::Items(items) => {
                for (i, item) in items.iter().enumerate() {
                    push_item(i, item, &mut conversation)?;
                }
            }
        }
        let mut messages = Vec::with_capacity(conversation.len() + 1);
        if let Some(instructions) = self.instructions.as_deref().filter(|i| !i.is_empty()) {
            messages.push(Message::system(instructions));
        }
        messages.extend(conversation.iter().cloned());
        let tools = self
            .tools
            .iter()
            .enumerate()
            .map(|(i, t)| tool(i, t))
            .collect::<Result<Vec<_>, _>>()?;
        let request = ChatRequest {
            model: self.model.clone(),
            messages,
            tools,
            tool_choice: self.tool_choice.as_ref().map(tool_choice).transpose()?,
            parallel_tool_calls: self.parallel_tool_calls,
            temperature: self.temperature,
            top_p: self.top_p,
            max_completion_tokens: self.max_output_tokens,
            user: self.user.clone(),
            response_format: self
                .text
                .as_ref()
                .and_then(|t| t.format.as_ref())
                .map(response_format)
                .transpose()?,
            reasoning_effort: self.reasoning.as_ref().and_then(|r| r.effort.clone()),
            stream: self.stream,
            ..ChatRequest::default()
        };
        Ok((request, conversation))
    }
}

/// One input item, appended to the conversation. Function calls join the assistant
/// message before them (one assistant turn may call several tools).
fn push_item(i: usize, item: &Value, out: &mut Vec<Message>) -> Result<(), Refused> {
    let at = format!("input[{i}]");
    let kind = item.get("type").and_then(Value::as_str);
    let kind = match (kind, item.get("role")) {
        (Some(kind), _) => kind,
        (None, Some(_)) => "message",
        (None, None) => return Err(Refused(format!("{at}: an item needs a `type` or a `role`"))),
    };
    let text = |field: &str| -> Result<String, Refused> {
        item.get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| Refused(format!("{at}.{field}: a string is required")))
    };
    match kind {
        "message" => {
            let role = text("role")?;
            let content = item.get("content").unwrap_or(&Value::Null);
            match role.as_str() {
                "user" => out.push(Message::User {
                    content: user_content(&at, content)?,
                    name: None,
                }),
                "system" | "developer" => out.push(Message::System {
                    content: Content::Text(plain_text(&at, content)?),
                    name: None,
                }),
                "assistant" => {
                    let (text, refusal) = assistant_text(&at, content)?;
                    let message = assistant_turn(out);
                    if let Message::Assistant {
                        content,
                        refusal: kept_refusal,
                        ..
                    } = message
                    {
                        if !text.is_empty() {
                            let mut joined = content.take().map(|c| c.text()).unwrap_or_default();
                            joined.push_str(&text);
                            *content = Some(Content::Text(joined));
                        }
                        if refusal.is_some() {
                            *kept_refusal = refusal;
                        }
                    }
                }
                other => {
                    return Err(Refused(format!(
                        "{at}.role: `{other}` is not a role (user, assistant, system, developer)"
                    )))
                }
            }
        }
        "function_call" => {
            let call = ToolCall::function(text("call_id")?, text("name")?, text("arguments")?);
            if let Message::Assistant { tool_calls, .. } = assistant_turn(out) {
                tool_calls.push(call);
            }
        }
        "function_call_output" => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(parts @ Value::Array(_)) => plain_text(&at, parts)?,
                _ => return Err(Refused(format!("{at}.output: a string or text parts"))),
            };
            out.push(Message::Tool {
                content: Content::Text(output),
                tool_call_id: text("call_id")?,
            });
        }
        "reasoning" => {
            let detail = reasoning_detail(item);
            if let Message::Assistant {
                reasoning_details, ..
            } = assistant_turn(out)
            {
                reasoning_details.push(detail);
            }
        }
        "item_reference" => {
            return Err(Refused(format!(
                "{at}: item references are not supported; send the item itself, or continue with previous_response_id"
            )))
        }
        other => {
            return Err(Refused(format!(
                "{at}: items of type `{other}` are not supported (message, function_call, function_call_output, reasoning)"
            )))
        }
    }
    Ok(())
}

/// The assistant message at the end of `out`, opened when the last message is not one.
fn assistant_turn(out: &mut Vec<Message>) -> &mut Message {
    if !matches!(out.last(), Some(Message::Assistant { .. })) {
        out.push(Message::Assistant {
            content: None,
            reasoning_content: None,
            reasoning_details: Vec::new(),
            tool_calls: Vec::new(),
            refusal: None,
            name: None,
        });
    }
    out.last_mut().expect("pushed above")
}

fn reasoning_detail(item: &Value) -> ReasoningDetail {
    let joined = |field: &str| {
        item.get(field).and_then(Value::as_array).map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<String>()
        })
    };
    match item.get("encrypted_content").and_then(Value::as_str) {
        Some(data) => ReasoningDetail {
            kind: "reasoning.encrypted".into(),
            data: Some(data.to_owned()),
            format: Some(REASONING_FORMAT.into()),
            ..ReasoningDetail::default()
        },
        None => ReasoningDetail {
            kind: "reasoning.text".into(),
            text: joined("content").or_else(|| joined("summary")),
            format: Some(REASONING_FORMAT.into()),
            ..ReasoningDetail::default()
        },
    }
}

/// A user message's content: a string, or `input_text` / `input_image` parts.
fn user_content(at: &str, content: &Value) -> Result<Content, Refused> {
    let parts = match content {
        Value::String(s) => return Ok(Content::Text(s.clone())),
        Value::Array(parts) => parts,
        _ => {
            return Err(Refused(format!(
                "{at}.content: a string or an array of parts"
            )))
        }
    };
    let mut out = Vec::with_capacity(parts.len());
    for (j, part) in parts.iter().enumerate() {
        let kind = part.get("type").and_then(Value::as_str).unwrap_or_default();
        match kind {
            "input_text" | "output_text" | "text" => out.push(ContentPart::Text {
                text: part
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
            }),
            "input_image" => {
                let url = part.get("image_url").and_then(Value::as_str).ok_or_else(|| {
                    Refused(format!(
                        "{at}.content[{j}]: images by file_id are not supported; send image_url (a URL or a data: URL)"
                    ))
                })?;
                out.push(ContentPart::ImageUrl {
                    image_url: ImageUrl {
                        url: url.to_owned(),
                        detail: part
                            .get("detail")
                            .and_then(Value::as_str)
                            .filter(|d| *d != "original")
                            .map(str::to_owned),
                    },
                });
            }
            other => {
                return Err(Refused(format!(
                    "{at}.content[{j}]: `{other}` parts are not supported (input_text, input_image)"
                )))
            }
        }
    }
    Ok(match out.as_slice() {
        [ContentPart::Text { text }] => Content::Text(text.clone()),
        _ => Content::Parts(out),
    })
}

/// Text of a string or of text parts.
fn plain_text(at: &str, content: &Value) -> Result<String, Refused> {
    match user_content(at, content)? {
        Content::Text(text) => Ok(text),
        Content::Parts(parts) => parts
            .into_iter()
            .map(|p| match p {
                ContentPart::Text { text } => Ok(text),
                ContentPart::ImageUrl { .. } => {
                    Err(Refused(format!("{at}: images belong in user messages")))
                }
            })
            .collect(),
    }
}

/// An assistant message's text and refusal (`output_text` and `refusal` parts).
fn assistant_text(at: &str, content: &Value) -> Result<(String, Option<String>), Refused> {
    match content {
        Value::String(s) => Ok((s.clone(), None)),
        Value::Array(parts) => {
            let mut text = String::new();
            let mut refusal = None;
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("refusal") => {
                        refusal = part
                            .get("refusal")
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    }
                    _ => {
                        text.push_str(part.get("text").and_then(Value::as_str).unwrap_or_default())
                    }
                }
            }
            Ok((text, refusal))
        }
        _ => Err(Refused(format!(
            "{at}.content: a string or an array of parts"
        ))),
    }
}

/// A flat function tool; hosted tools (web search, file search, ...) are not served.
fn tool(i: usize, tool: &Value) -> Result<Tool, Refused> {
    let kind = tool.get("type").and_then(Value::as_str).unwrap_or_default();
    if kind != "function" {
        return Err(Refused(format!(
            "tools[{i}]: `{kind}` tools are not supported; only function tools are"
        )));
    }
    let name = tool
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| Refused(format!("tools[{i}].name: a string is required")))?;
    Ok(Tool {
        kind: "function".into(),
        function: FunctionDefinition {
            name: name.to_owned(),
            description: tool
                .get("description")
                .and_then(Value::as_str)
                .map(str::to_owned),
            parameters: tool.get("parameters").filter(|p| !p.is_null()).cloned(),
            strict: tool.get("strict").and_then(Value::as_bool),
        },
    })
}

fn tool_choice(choice: &Value) -> Result<ToolChoice, Refused> {
    let named = |name: &str| ToolChoice::Function {
        kind: "function".into(),
        function: NamedFunction {
            name: name.to_owned(),
        },
    };
    match choice {
        Value::String(mode) => match mode.as_str() {
            "none" => Ok(ToolChoice::Mode(ToolChoiceMode::None)),
            "auto" => Ok(ToolChoice::Mode(ToolChoiceMode::Auto)),
            "required" => Ok(ToolChoice::Mode(ToolChoiceMode::Required)),
            other => Err(Refused(format!(
                "tool_choice: `{other}` is not none, auto or required"
            ))),
        },
        Value::Object(object) => match (
            object.get("type").and_then(Value::as_str),
            object.get("name").and_then(Value::as_str),
        ) {
            (Some("function"), Some(name)) => Ok(named(name)),
            _ => Err(Refused(
                "tool_choice: only none, auto, required or {\"type\":\"function\",\"name\":...} are supported"
                    .to_owned(),
            )),
        },
        _ => Err(Refused("tool_choice: a string or an object".to_owned())),
    }
}

/// `text.format` (flat) as the canonical response format (nested, as chat has it).
fn response_format(format: &Value) -> Result<ResponseFormat, Refused> {
    match format.get("type").and_then(Value::as_str) {
        Some("text") => Ok(ResponseFormat::Text),
        Some("json_object") => Ok(ResponseFormat::JsonObject),
        Some("json_schema") => {
            let mut schema = json!({});
            for field in ["name", "schema", "description", "strict"] {
                if let Some(value) = format.get(field) {
                    schema[field] = value.clone();
                }
            }
            Ok(ResponseFormat::JsonSchema {
                json_schema: schema,
            })
        }
        _ => Err(Refused(
            "text.format.type: text, json_object or json_schema".to_owned(),
        )),
    }
}
