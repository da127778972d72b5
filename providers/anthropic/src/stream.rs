//! The incremental decoder of the Messages API's server-sent events.
//!
//! Event flow (<https://docs.claude.com/en/docs/build-with-claude/streaming>):
//! `message_start`, then per content block `content_block_start`, `content_block_delta`s
//! and `content_block_stop`, then `message_delta`s and a final `message_stop`, with
//! `ping`s anywhere and possibly an `error` event. They become:
//!
//! - `message_start` → [`StreamEvent::Start`] (its usage holds the input tokens);
//! - text blocks and `text_delta` → [`StreamEvent::TextDelta`];
//! - `tool_use` blocks → [`StreamEvent::ToolCallStart`] with an index counting the tool
//!   calls of the answer from 0, and each `input_json_delta` → [`StreamEvent::ToolCallDelta`];
//! - `thinking_delta` → [`StreamEvent::ReasoningDelta`]; when a thinking block stops (its
//!   `signature_delta` came just before) or a `redacted_thinking` block stops →
//!   [`StreamEvent::ReasoningDetail`] with the exact block, for the next turn;
//! - `message_delta` → the stop reason and the output tokens (cumulative);
//! - `message_stop` → one [`StreamEvent::Usage`] with the final totals, then
//!   [`StreamEvent::Finish`];
//! - `error` → an error classified by its type; `ping` and unknown events are ignored.
//!
//! A body that ends before `message_stop` is a broken connection.

use std::collections::HashMap;

use provider_kit::sse::{JsonEvents, JsonSseDecoder};
use provider_sdk::{ErrorKind, ProviderError, StreamEvent};
use serde_json::Value;

use crate::reasoning;
use crate::response::{error_event, finish_reason, WireUsage};

/// Decodes one streamed Messages API response.
pub type AnthropicDecoder = JsonSseDecoder<State>;

/// What the decoder remembers between events.
#[derive(Debug, Default)]
pub struct State {
    /// `message_stop` arrived: the answer is complete.
    done: bool,
    /// Usage so far: input from `message_start`, output from the last `message_delta`.
    usage: WireUsage,
    /// The stop reason from `message_delta`.
    stop_reason: Option<String>,
    /// Open content blocks, by their index in the message.
    blocks: HashMap<u64, Block>,
    /// Tool calls started so far.
    tool_calls: u32,
}

/// An open content block.
#[derive(Debug)]
enum Block {
    /// Answer text.
    Text,
    /// A tool call: its index among the answer's calls, and whether any argument text was sent.
    ToolUse { call: u32, has_arguments: bool },
    /// Thinking text and its signature, collected to rebuild the block when it stops.
    Thinking { text: String, signature: String },
    /// Encrypted thinking.
    Redacted { data: String },
    /// A block without a canonical place (server tool use and results, ...).
    Other,
}

impl JsonEvents for State {
    const UPSTREAM: &'static str = "Anthropic";

    fn event(
        &mut self,
        name: Option<&str>,
        data: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        self.handle(name, data, out)
    }

    /// `error` events are translated with the others, by their type.
    fn error_event(&self, _name: Option<&str>, _data: &Value) -> Option<ProviderError> {
        None
    }

    fn is_complete(&self) -> bool {
        self.done
    }

    fn end(&mut self, done: bool, _out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        if !done {
            return Err(ProviderError::new(
                ErrorKind::Connection,
                "the Anthropic stream ended before message_stop",
            ));
        }
        Ok(())
    }
}

impl State {
    /// Translates one server-sent event.
    fn handle(
        &mut self,
        name: Option<&str>,
        data: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        let kind = data["type"].as_str().or(name).unwrap_or_default();
        match kind {
            "message_start" => {
                let message = &data["message"];
                self.usage.update(WireUsage::from_value(&message["usage"]));
                out.push(StreamEvent::Start {
                    id: message["id"].as_str().map(str::to_owned),
                    model: message["model"].as_str().map(str::to_owned),
                });
            }
            "content_block_start" => self.block_start(&data, out),
            "content_block_delta" => self.block_delta(&data, out),
            "content_block_stop" => self.block_stop(&data, out),
            "message_delta" => {
                if let Some(reason) = data["delta"]["stop_reason"].as_str() {
                    self.stop_reason = Some(reason.to_owned());
                }
                self.usage.update(WireUsage::from_value(&data["usage"]));
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Usage {
                    usage: self.usage.to_usage(),
                });
                out.push(StreamEvent::Finish {
                    reason: finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0),
                });
            }
            "error" => return Err(error_event(&data)),
            // `ping`, and event types added later (the API's versioning policy says to
            // ignore them).
            _ => {}
        }
        Ok(())
    }

    /// `content_block_start`: opens a block; tool calls are numbered here.
    fn block_start(&mut self, data: &Value, out: &mut Vec<StreamEvent>) {
        let index = data["index"].as_u64().unwrap_or_default();
        let block = &data["content_block"];
        let text = |field: &str| block[field].as_str().unwrap_or_default().to_owned();
        let open = match block["type"].as_str() {
            Some("text") => {
                push_text(out, text("text"));
                Block::Text
            }
            Some("tool_use") => {
                let call = self.tool_calls;
                self.tool_calls += 1;
                out.push(StreamEvent::ToolCallStart {
                    index: call,
                    id: text("id"),
                    name: text("name"),
                });
                // The input normally starts as `{}` and arrives in deltas; a block that
                // starts with its whole input sends it at once.
                let has_arguments = match &block["input"] {
                    Value::Object(input) if !input.is_empty() => {
                        out.push(StreamEvent::ToolCallDelta {
                            index: call,
                            arguments: block["input"].to_string(),
                        });
                        true
                    }
                    _ => false,
                };
                Block::ToolUse {
                    call,
                    has_arguments,
                }
            }
            Some("thinking") => {
                let thinking = text("thinking");
                if !thinking.is_empty() {
                    out.push(StreamEvent::ReasoningDelta {
                        text: thinking.clone(),
                    });
                }
                Block::Thinking {
                    text: thinking,
                    signature: text("signature"),
                }
            }
            Some("redacted_thinking") => Block::Redacted { data: text("data") },
            _ => Block::Other,
        };
        self.blocks.insert(index, open);
    }

    /// `content_block_delta`: text, argument JSON, thinking or signature pieces.
    fn block_delta(&mut self, data: &Value, out: &mut Vec<StreamEvent>) {
        let index = data["index"].as_u64().unwrap_or_default();
        let delta = &data["delta"];
        let piece = |field: &str| delta[field].as_str().unwrap_or_default();
        let block = self.blocks.get_mut(&index);
        match (delta["type"].as_str(), block) {
            (Some("text_delta"), _) => push_text(out, piece("text").to_owned()),
            (
                Some("input_json_delta"),
                Some(Block::ToolUse {
                    call,
                    has_arguments,
                }),
            ) => {
                let json = piece("partial_json");
                if !json.is_empty() {
                    *has_arguments = true;
                    out.push(StreamEvent::ToolCallDelta {
                        index: *call,
                        arguments: json.to_owned(),
                    });
                }
            }
            (Some("thinking_delta"), block) => {
                let thinking = piece("thinking");
                if let Some(Block::Thinking { text, .. }) = block {
                    text.push_str(thinking);
                }
                if !thinking.is_empty() {
                    out.push(StreamEvent::ReasoningDelta {
                        text: thinking.to_owned(),
                    });
                }
            }
            (Some("signature_delta"), Some(Block::Thinking { signature, .. })) => {
                signature.push_str(piece("signature"));
            }
            // `citations_delta` and deltas of blocks without a canonical place.
            _ => {}
        }
    }

    /// `content_block_stop`: closes a block, emitting thinking blocks whole.
    fn block_stop(&mut self, data: &Value, out: &mut Vec<StreamEvent>) {
        let index = data["index"].as_u64().unwrap_or_default();
        match self.blocks.remove(&index) {
            Some(Block::Thinking { text, signature }) => out.push(StreamEvent::ReasoningDetail {
                detail: reasoning::thinking_detail(text, Some(signature)),
            }),
            Some(Block::Redacted { data }) => out.push(StreamEvent::ReasoningDetail {
                detail: reasoning::redacted_detail(data),
            }),
            // A call without arguments still gets a JSON object, as it would unstreamed.
            Some(Block::ToolUse {
                call,
                has_arguments: false,
            }) => out.push(StreamEvent::ToolCallDelta {
                index: call,
                arguments: "{}".to_owned(),
            }),
            _ => {}
        }
    }
}

/// Sends text unless it is empty.
fn push_text(out: &mut Vec<StreamEvent>, text: String) {
    if !text.is_empty() {
        out.push(StreamEvent::TextDelta { text });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::*;
    use provider_sdk::StreamDecoder;
    use provider_sdk::{FinishReason, ReasoningDetail, Usage};

    fn decode_in_pieces(input: &str, piece: usize) -> Result<Vec<StreamEvent>, ProviderError> {
        let mut decoder = AnthropicDecoder::default();
        let mut events = Vec::new();
        for chunk in input.as_bytes().chunks(piece) {
            decoder.feed(chunk, &mut events)?;
        }
        decoder.finish(&mut events)?;
        Ok(events)
    }

    fn decode(input: &str) -> Vec<StreamEvent> {
        decode_in_pieces(input, input.len()).unwrap()
    }

    /// Joins consecutive deltas, so streams split differently compare equal.
    fn merged(events: &[StreamEvent]) -> Vec<StreamEvent> {
        let mut out: Vec<StreamEvent> = Vec::new();
        for event in events {
            match (out.last_mut(), event) {
                (Some(StreamEvent::TextDelta { text }), StreamEvent::TextDelta { text: more })
                | (
                    Some(StreamEvent::ReasoningDelta { text }),
                    StreamEvent::ReasoningDelta { text: more },
                ) => text.push_str(more),
                (
                    Some(StreamEvent::ToolCallDelta { index, arguments }),
                    StreamEvent::ToolCallDelta {
                        index: i,
                        arguments: more,
                    },
                ) if index == i => arguments.push_str(more),
                _ => out.push(event.clone()),
            }
        }
        out
    }

    #[test]
    fn the_basic_stream_gives_start_text_usage_and_finish() {
        assert_eq!(
            decode(BASIC_STREAM),
            vec![
                StreamEvent::Start {
                    id: Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY".into()),
                    model: Some("claude-sonnet-4-5-20250929".into()),
                },
                StreamEvent::TextDelta {
                    text: "Hello".into()
                },
                StreamEvent::TextDelta { text: "!".into() },
                StreamEvent::Usage {
                    usage: Usage {
                        prompt_tokens: 25,
                        completion_tokens: 15,
                        ..Usage::default()
                    }
                },
                StreamEvent::Finish {
                    reason: FinishReason::Stop
                },
            ],
            "the ping is ignored; usage is emitted once, with message_start's input and message_delta's output"
        );
    }

    #[test]
    fn a_tool_use_block_streams_as_one_indexed_call_with_argument_pieces() {
        let events = merged(&decode(TOOL_USE_STREAM));
        assert_eq!(
            events[1],
            StreamEvent::TextDelta {
                text: "Okay, let's check the weather for San Francisco, CA:".into()
            }
        );
        assert_eq!(
            events[2],
            StreamEvent::ToolCallStart {
                index: 0,
                id: "toolu_01T1x1fJ34qAmk2tNTrN7Up6".into(),
                name: "get_weather".into(),
            },
            "the tool call is the answer's first (index 0), though it is content block 1"
        );
        let StreamEvent::ToolCallDelta {
            index: 0,
            arguments,
        } = &events[3]
        else {
            panic!("expected the arguments, got {:?}", events[3]);
        };
        assert_eq!(
            serde_json::from_str::<Value>(arguments).unwrap(),
            serde_json::json!({"location": "San Francisco, CA", "unit": "fahrenheit"})
        );
        assert_eq!(
            events[4..],
            [
                StreamEvent::Usage {
                    usage: Usage {
                        prompt_tokens: 472,
                        completion_tokens: 89,
                        ..Usage::default()
                    }
                },
                StreamEvent::Finish {
                    reason: FinishReason::ToolCalls
                },
            ]
        );
        let raw = decode(TOOL_USE_STREAM);
        let pieces = raw
            .iter()
            .filter(|e| matches!(e, StreamEvent::ToolCallDelta { .. }))
            .count();
        assert_eq!(
            pieces, 8,
            "each non-empty input_json_delta is forwarded as it comes"
        );
    }

    #[test]
    fn thinking_streams_as_reasoning_then_one_detail_with_its_signature() {
        let events = merged(&decode(THINKING_STREAM));
        assert_eq!(
            events[1],
            StreamEvent::ReasoningDelta {
                text: "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231".into()
            }
        );
        let StreamEvent::ReasoningDetail { detail } = &events[2] else {
            panic!("expected the thinking block, got {:?}", events[2]);
        };
        assert_eq!(
            detail,
            &reasoning::thinking_detail(
                "Let me solve this step by step:\n\n1. First break down 27 * 453\n2. 453 = 400 + 50 + 3\n3. 27 * 400 = 10,800\n4. 27 * 50 = 1,350\n5. 27 * 3 = 81\n6. 10,800 + 1,350 + 81 = 12,231",
                Some("EqQBCgIYAhIM1gbcDa9GJwZA2b3hGgxBdjrkzLoky3dl1pkiMOYds...".into())
            )
        );
        assert_eq!(
            events[3],
            StreamEvent::TextDelta {
                text: "27 * 453 = 12,231".into()
            }
        );
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::Stop
            })
        );
    }

    #[test]
    fn a_streamed_thinking_block_equals_the_unstreamed_one() {
        // The same thinking + tool use answer, once as JSON and once as events.
        let whole = crate::response::parse_message(THINKING_TOOL_USE_RESPONSE.as_bytes()).unwrap();
        let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_x","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}

event: content_block_start
data: {"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":"","signature":""}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"The user wants to know the current weather in Paris. "}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"thinking_delta","thinking":"I have access to a function `get_weather`..."}}

event: content_block_delta
data: {"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"BDaL4VrbR2Oj0hO4XpJxT28J5TILnCrrUXoKiiNBZW9P+nr8XSj1zuZzAl4egiCCpQNvfyUuFFJP5CncdYZEQPPmLxYsNrcs...."}}

event: content_block_stop
data: {"type":"content_block_stop","index":0}

event: content_block_start
data: {"type":"content_block_start","index":1,"content_block":{"type":"redacted_thinking","data":"EmwKAhgBEgy3va3pzix"}}

event: content_block_stop
data: {"type":"content_block_stop","index":1}

event: content_block_start
data: {"type":"content_block_start","index":2,"content_block":{"type":"tool_use","id":"toolu_01CswdEQBMshySk6Y9DFKrfq","name":"get_weather","input":{}}}

event: content_block_delta
data: {"type":"content_block_delta","index":2,"delta":{"type":"input_json_delta","partial_json":"{\"location\": \"Paris\"}"}}

event: content_block_stop
data: {"type":"content_block_stop","index":2}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"tool_use","stop_sequence":null},"usage":{"output_tokens":80}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let details: Vec<ReasoningDetail> = decode(stream)
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::ReasoningDetail { detail } => Some(detail),
                _ => None,
            })
            .collect();
        assert_eq!(details[0], whole.message.reasoning_details[0]);
        assert_eq!(
            details[1],
            reasoning::redacted_detail("EmwKAhgBEgy3va3pzix")
        );
    }

    #[test]
    fn every_way_of_splitting_the_bytes_gives_the_same_events() {
        for stream in [BASIC_STREAM, TOOL_USE_STREAM, THINKING_STREAM] {
            let whole = merged(&decode(stream));
            for piece in [1, 2, 3, 7, 64] {
                assert_eq!(
                    merged(&decode_in_pieces(stream, piece).unwrap()),
                    whole,
                    "split every {piece} bytes"
                );
            }
        }
        let with_crlf = BASIC_STREAM.replace('\n', "\r\n");
        assert_eq!(
            merged(&decode_in_pieces(&with_crlf, 1).unwrap()),
            merged(&decode(BASIC_STREAM))
        );
    }

    #[test]
    fn a_stream_cut_before_message_stop_is_a_connection_error() {
        let cut = BASIC_STREAM.split("event: message_stop").next().unwrap();
        let error = decode_in_pieces(cut, 5).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Connection);
        let mut decoder = AnthropicDecoder::default();
        let mut events = Vec::new();
        decoder.feed(cut.as_bytes(), &mut events).unwrap();
        assert!(
            !events
                .iter()
                .any(|e| matches!(e, StreamEvent::Finish { .. })),
            "no finish is invented for a cut stream"
        );
        assert_eq!(
            decode_in_pieces("", 1).unwrap_err().kind,
            ErrorKind::Connection
        );
    }

    #[test]
    fn an_error_event_mid_stream_fails_with_its_classified_kind() {
        let head = BASIC_STREAM
            .split("event: content_block_stop")
            .next()
            .unwrap();
        let stream = format!("{head}{OVERLOADED_EVENT}\n");
        let mut decoder = AnthropicDecoder::default();
        let mut events = Vec::new();
        let error = stream
            .as_bytes()
            .chunks(1)
            .find_map(|byte| decoder.feed(byte, &mut events).err())
            .expect("the error event fails the stream");
        assert_eq!(error.kind, ErrorKind::ProviderService);
        assert_eq!(error.provider_code.as_deref(), Some("overloaded_error"));
        assert_eq!(error.message, "Overloaded");
        assert_eq!(
            merged(&events)[1],
            StreamEvent::TextDelta {
                text: "Hello!".into()
            },
            "what came before the error was delivered"
        );
        let rate = "event: error\ndata: {\"type\": \"error\", \"error\": {\"type\": \"rate_limit_error\", \"message\": \"slow down\"}}\n\n";
        assert_eq!(
            decode_in_pieces(rate, 4).unwrap_err().kind,
            ErrorKind::RateLimited
        );
    }

    #[test]
    fn streamed_usage_counts_cache_tokens_and_keeps_the_latest_cumulative_figures() {
        let stream = r#"event: message_start
data: {"type":"message_start","message":{"id":"msg_c","type":"message","role":"assistant","content":[],"model":"claude-sonnet-4-5","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":303,"cache_creation_input_tokens":0,"cache_read_input_tokens":1370,"output_tokens":1}}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":null},"usage":{"output_tokens":400}}

event: message_delta
data: {"type":"message_delta","delta":{"stop_reason":"max_tokens","stop_sequence":null},"usage":{"output_tokens":874}}

event: message_stop
data: {"type":"message_stop"}
"#;
        let events = decode(stream);
        let usages: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Usage { usage } => Some(*usage),
                _ => None,
            })
            .collect();
        assert_eq!(
            usages,
            vec![Usage {
                prompt_tokens: 303 + 1370,
                completion_tokens: 874,
                cached_prompt_tokens: 1370,
                cache_write_tokens: 0,
                reasoning_tokens: 0,
            }],
            "one usage event, with the last (cumulative) output count"
        );
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::Length
            })
        );
    }

    #[test]
    fn a_tool_call_without_arguments_still_gets_an_empty_object() {
        let stream = r#"data: {"type":"message_start","message":{"id":"m","model":"x","usage":{"input_tokens":1,"output_tokens":1}}}

data: {"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_1","name":"now","input":{}}}

data: {"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":""}}

data: {"type":"content_block_stop","index":0}

data: {"type":"message_delta","delta":{"stop_reason":"tool_use"},"usage":{"output_tokens":5}}

data: {"type":"message_stop"}
"#;
        let events = decode(stream);
        assert_eq!(
            events[2],
            StreamEvent::ToolCallDelta {
                index: 0,
                arguments: "{}".into()
            },
            "events are told apart by their data's `type` when the SSE `event:` line is missing"
        );
    }
}
