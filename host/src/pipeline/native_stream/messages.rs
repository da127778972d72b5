//! Anthropic Messages streams: `message_start`, content blocks, `message_delta`s,
//! `message_stop`, read for the answer's start, usage and finish as the anthropic
//! plugin's decoder reads them.

use std::borrow::Cow;

use provider_kit::anthropic::{finish_reason, WireUsage};
use provider_sdk::StreamEvent;
use serde::Deserialize;

use super::Read;

/// What the events so far said, as the anthropic plugin's decoder keeps it.
#[derive(Debug, Default)]
pub(super) struct Messages {
    /// `message_stop` arrived.
    done: bool,
    /// Usage so far: streamed figures are cumulative, the latest wins.
    usage: WireUsage,
    stop_reason: Option<String>,
    tool_calls: u32,
}

impl Messages {
    /// `message_stop` arrived.
    pub(super) fn ended(&self) -> bool {
        self.done
    }

    /// One event's data, trimmed.
    pub(super) fn on_data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Read {
        let Ok(event) = serde_json::from_slice::<Event<'_>>(data) else {
            return Read::Unusual;
        };
        match &*event.kind {
            "message_start" => {
                let Some(message) = event.message else {
                    return Read::Unusual;
                };
                self.usage.update(message.usage.unwrap_or_default());
                out.push(StreamEvent::Start {
                    id: message.id.map(Cow::into_owned),
                    model: message.model.map(Cow::into_owned),
                });
            }
            "content_block_start" => {
                let block = event.content_block.and_then(|b| b.kind);
                if block.as_deref() == Some("tool_use") {
                    self.tool_calls += 1;
                }
            }
            "message_delta" => {
                if let Some(reason) = event.delta.and_then(|d| d.stop_reason) {
                    self.stop_reason = Some(reason.into_owned());
                }
                self.usage.update(event.usage.unwrap_or_default());
            }
            "message_stop" => {
                self.done = true;
                out.push(StreamEvent::Usage {
                    usage: self.usage.to_usage(),
                });
                out.push(StreamEvent::Finish {
                    reason: finish_reason(self.stop_reason.as_deref(), self.tool_calls > 0),
                });
                return Read::Done;
            }
            // The plugin classifies errors.
            "error" => return Read::Unusual,
            // Text, tool input and thinking stay in the bytes; `ping`, and event types
            // added later (the API's versioning policy says to ignore them).
            _ => {}
        }
        Read::More
    }
}

/// One event, as far as the host reads it; unknown members are ignored, as the plugin
/// ignores them. An event without a `type` is the plugin's to read (it falls back on
/// the `event:` name).
#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    message: Option<Message<'a>>,
    #[serde(default, borrow)]
    content_block: Option<Block<'a>>,
    #[serde(default, borrow)]
    delta: Option<Delta<'a>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Message<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Deserialize)]
struct Block<'a> {
    #[serde(default, rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Delta<'a> {
    #[serde(default, borrow)]
    stop_reason: Option<Cow<'a, str>>,
}

/// The anthropic plugin's fixtures: Anthropic's documented streams, byte for byte.
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../../../providers/anthropic/src/fixtures.rs"]
mod fixtures;

#[cfg(test)]
mod tests {
    use super::fixtures::*;
    use crate::pipeline::native_stream::{tests::watch as watch_in, Seen, Watch};
    use provider_sdk::{FinishReason, Protocol, StreamEvent, Usage};

    fn watch(stream: &str, cuts: &[usize]) -> (Seen, Vec<StreamEvent>, Watch) {
        watch_in(Protocol::AnthropicMessages, stream, cuts)
    }

    fn usage(prompt: u64, completion: u64) -> StreamEvent {
        StreamEvent::Usage {
            usage: Usage {
                prompt_tokens: prompt,
                completion_tokens: completion,
                ..Usage::default()
            },
        }
    }

    #[test]
    fn the_guides_basic_stream_gives_start_usage_and_finish_cut_anywhere() {
        let expected = vec![
            StreamEvent::Start {
                id: Some("msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY".into()),
                model: Some("claude-sonnet-4-5-20250929".into()),
            },
            usage(25, 15),
            StreamEvent::Finish {
                reason: FinishReason::Stop,
            },
        ];
        for cut in 0..BASIC_STREAM.len() {
            let (seen, events, _) = watch(BASIC_STREAM, &[cut]);
            assert_eq!(seen, Seen::Done, "cut at {cut}");
            assert_eq!(events, expected, "cut at {cut}");
        }
    }

    #[test]
    fn tool_use_and_thinking_streams_finish_as_the_plugin_says() {
        // The guide's example stops after `message_stop`'s data line: without the blank
        // line that ends the event, the plugin's parser is the one to say what it was.
        let (seen, _, unended) = watch(TOOL_USE_STREAM, &[]);
        assert_eq!(seen, Seen::More);
        assert!(!unended.whole());
        let (seen, events, _) = watch(&format!("{TOOL_USE_STREAM}\n"), &[]);
        assert_eq!(seen, Seen::Done);
        assert_eq!(
            events[1..],
            [
                usage(472, 89),
                StreamEvent::Finish {
                    reason: FinishReason::ToolCalls
                }
            ]
        );
        // No usage anywhere in the guide's thinking example: zeros, as the plugin says.
        let (seen, events, _) = watch(&format!("{THINKING_STREAM}\n"), &[]);
        assert_eq!(seen, Seen::Done);
        assert_eq!(events[1], usage(0, 0));
    }

    #[test]
    fn cache_reads_and_writes_count_in_the_prompt() {
        let stream = BASIC_STREAM.replace(
            "\"usage\": {\"input_tokens\": 25, \"output_tokens\": 1}",
            &format!("\"usage\": {CACHE_READ_USAGE}"),
        );
        assert_ne!(stream, BASIC_STREAM);
        let (_, events, _) = watch(&stream, &[]);
        assert_eq!(
            events[1],
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 303 + 1370,
                    completion_tokens: 15,
                    cached_prompt_tokens: 1370,
                    ..Usage::default()
                }
            }
        );
    }

    #[test]
    fn an_error_event_is_handed_over_at_its_start_and_a_cut_stream_is_not_whole() {
        let start = &BASIC_STREAM[..BASIC_STREAM.find("event: content_block_start").unwrap()];
        let stream = format!("{start}{OVERLOADED_EVENT}\n");
        let (seen, events, _) = watch(&stream, &[start.len() + 3]);
        assert_eq!(
            seen,
            Seen::Unusual {
                at: start.len() as u64
            }
        );
        assert!(matches!(events[..], [StreamEvent::Start { .. }]));

        let (seen, _, watch) = watch(start, &[]);
        assert_eq!(seen, Seen::More);
        assert!(!watch.whole(), "no message_stop");
        assert_eq!(watch.event_start(), start.len() as u64);
    }
}
