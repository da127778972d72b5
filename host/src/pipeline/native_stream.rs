//! What the host reads itself from a stream in the client's own protocol (exact
//! passthrough). Such a stream is relayed byte for byte, so the pipeline needs only
//! what it counts and decides on: that an answer started (the attempt succeeded), its
//! usage, its finish, and whether it ended whole. Reading them here instead of through
//! the plugin's decoder saves, per chunk, a parse into JSON values, canonical events
//! and their JSON across the plugin boundary and back (about 6 µs a chunk on the bench
//! machine, a sixth of the host's CPU per passed-through stream).
//!
//! The plugin stays the authority on its provider's streams: only plain events are read
//! here. At the first event the host does not read itself (an error, a usage figure it
//! does not know, an `event:` line, anything that does not parse as a plain chunk), or a
//! stream that ends without its terminator, the pipeline hands the stream to the
//! plugin's decoder, which reads it from the start (see `upstream::Decoding`), so the
//! plugin sees every byte in order and its verdict is the one that counts.
//!
//! Sans I/O: [`Watch::feed`] takes bytes split anywhere and says what it saw.

use std::borrow::Cow;

use provider_kit::openai::response::{finish_reason, with_tool_calls};
use provider_sdk::{FinishReason, Protocol, StreamEvent, Usage};
use serde::{de::IgnoredAny, Deserialize};

use super::native_answer::OpenAiUsage;

/// What a piece of the stream left the watcher with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Seen {
    /// Read; the stream goes on.
    More,
    /// The stream's terminator: the answer is whole, and nothing after it is read.
    Done,
    /// An event the host does not read itself: the plugin's decoder reads the stream,
    /// with what it makes of the bytes from `at` (counted from the stream's first byte)
    /// on being what counts. The events before `at` were read here already.
    Unusual {
        /// Where the event the host does not read starts.
        at: u64,
    },
}

/// Reads a passed-through stream of one protocol; see the module docs.
#[derive(Debug)]
pub(super) struct Watch {
    /// Bytes of the stream taken in so far.
    taken: u64,
    /// Where the event being read starts.
    event_start: u64,
    /// The start of a line that continues in the next piece.
    line: Vec<u8>,
    /// The current event's `data:` text, once it has one.
    data: Vec<u8>,
    has_data: bool,
    chat: ChatState,
}

/// What the chunks so far said, as the openai plugin's decoder keeps it.
#[derive(Debug, Default)]
struct ChatState {
    started: bool,
    finished: bool,
    done: bool,
    called_tools: bool,
    last_usage: Option<Usage>,
}

impl Watch {
    /// A watcher for streams in `protocol`, when the host reads that protocol's
    /// streams itself (OpenAI chat completions).
    pub(super) fn for_protocol(protocol: Protocol) -> Option<Watch> {
        match protocol {
            Protocol::OpenAiChat => Some(Watch {
                taken: 0,
                event_start: 0,
                line: Vec::new(),
                data: Vec::new(),
                has_data: false,
                chat: ChatState::default(),
            }),
            _ => None,
        }
    }

    /// Takes in the next piece of the stream; the events read from it are appended to
    /// `out`. After [`Seen::Done`] or [`Seen::Unusual`] nothing more is fed.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<StreamEvent>) -> Seen {
        let mut rest = bytes;
        while let Some(at) = rest.iter().position(|&b| b == b'\n') {
            let line_end = self.taken + at as u64 + 1;
            let seen = if self.line.is_empty() {
                self.on_line(&rest[..at], line_end, out)
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&rest[..at]);
                let seen = self.on_line(&line, line_end, out);
                line.clear();
                self.line = line;
                seen
            };
            self.taken = line_end;
            rest = &rest[at + 1..];
            if seen != Seen::More {
                return seen;
            }
        }
        self.line.extend_from_slice(rest);
        self.taken += rest.len() as u64;
        Seen::More
    }

    /// Whether the stream ended whole where it was fed up to: its terminator (or a
    /// finish) arrived and no event was left half-read. A stream that did not is the
    /// plugin's to judge.
    pub(super) fn whole(&self) -> bool {
        (self.chat.done || self.chat.finished) && self.line.is_empty() && !self.has_data
    }

    /// Where the event being read starts: the plugin reads from there when it takes
    /// over at the end.
    pub(super) fn event_start(&self) -> u64 {
        self.event_start
    }

    /// One line, without its `\n`; `line_end` is where the next one starts.
    fn on_line(&mut self, line: &[u8], line_end: u64, out: &mut Vec<StreamEvent>) -> Seen {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            // A blank line ends the event.
            let seen = match std::mem::take(&mut self.has_data) {
                true => {
                    let data = std::mem::take(&mut self.data);
                    let seen = self.on_data(&data, out);
                    self.data = data;
                    self.data.clear();
                    seen
                }
                false => Seen::More,
            };
            if seen == Seen::More {
                self.event_start = line_end;
            }
            return seen;
        }
        if line[0] == b':' {
            return Seen::More; // a comment (keep-alive)
        }
        match line.strip_prefix(b"data:") {
            // One `data:` line per event is what OpenAI sends; more are joined by the
            // plugin's SSE parser.
            Some(text) if !self.has_data => {
                self.has_data = true;
                self.data.extend_from_slice(text);
                Seen::More
            }
            // `event:`, `id:`, `retry:`, a second `data:` line or anything else.
            _ => self.unusual(),
        }
    }

    fn unusual(&self) -> Seen {
        Seen::Unusual {
            at: self.event_start,
        }
    }

    /// One event's data.
    fn on_data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Seen {
        let data = data.trim_ascii();
        if data.is_empty() {
            return Seen::More;
        }
        if data == b"[DONE]" {
            self.chat.done = true;
            self.chat.finish(None, out);
            return Seen::Done;
        }
        match serde_json::from_slice::<Chunk<'_>>(data) {
            Ok(chunk) if chunk.is_plain() => {
                self.chat.chunk(chunk, out);
                Seen::More
            }
            _ => self.unusual(),
        }
    }
}

impl ChatState {
    /// The events the openai plugin's decoder would give for `chunk` that the pipeline
    /// uses (`Start`, `Usage`, `Finish`; the text stays in the bytes), in its order.
    fn chunk(&mut self, chunk: Chunk<'_>, out: &mut Vec<StreamEvent>) {
        // The host serves n = 1: only the first choice counts.
        let choice = chunk
            .choices
            .iter()
            .flatten()
            .find(|c| c.index.unwrap_or(0) == 0);
        let mut finish = None;
        if let Some(choice) = choice {
            let delta = choice.delta.as_ref().or(choice.message.as_ref());
            if delta.is_some_and(Delta::calls_tools) {
                self.called_tools = true;
            }
            finish = choice.finish_reason.as_deref().map(finish_reason);
        }
        let usage = chunk
            .usage
            .map(OpenAiUsage::counted)
            .filter(|u| self.last_usage != Some(*u));
        let id = chunk.id.filter(|t| !t.is_empty());
        let model = chunk.model.filter(|t| !t.is_empty());
        if !self.started && (id.is_some() || model.is_some() || choice.is_some() || usage.is_some())
        {
            self.started = true;
            out.push(StreamEvent::Start {
                id: id.map(Cow::into_owned),
                model: model.map(Cow::into_owned),
            });
        }
        if let Some(usage) = usage {
            self.last_usage = Some(usage);
            out.push(StreamEvent::Usage { usage });
        }
        if let Some(reason) = finish {
            self.finish(Some(reason), out);
        }
    }

    fn finish(&mut self, reason: Option<FinishReason>, out: &mut Vec<StreamEvent>) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        if !std::mem::replace(&mut self.started, true) {
            out.push(StreamEvent::Start {
                id: None,
                model: None,
            });
        }
        out.push(StreamEvent::Finish {
            reason: with_tool_calls(reason.unwrap_or(FinishReason::Stop), self.called_tools),
        });
    }
}

/// One chunk of a chat-completions stream, as far as the host reads it. Unknown members
/// are ignored, as the plugin ignores them; the ones that make a chunk unusual are
/// named so that they are seen.
#[derive(Deserialize)]
struct Chunk<'a> {
    #[serde(default, borrow)]
    id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    choices: Option<Vec<Choice<'a>>>,
    #[serde(default)]
    usage: Option<OpenAiUsage>,
    /// An error mid-stream: the plugin classifies it.
    #[serde(default)]
    error: Option<IgnoredAny>,
    #[serde(default, borrow)]
    object: Option<Cow<'a, str>>,
    /// Groq's usage, which the plugin reads from there.
    #[serde(default)]
    x_groq: Option<IgnoredAny>,
}

impl Chunk<'_> {
    fn is_plain(&self) -> bool {
        self.error.is_none() && self.x_groq.is_none() && self.object.as_deref() != Some("error")
    }
}

#[derive(Deserialize)]
struct Choice<'a> {
    #[serde(default)]
    index: Option<u64>,
    #[serde(default)]
    delta: Option<Delta>,
    #[serde(default)]
    message: Option<Delta>,
    #[serde(default, borrow)]
    finish_reason: Option<Cow<'a, str>>,
}

/// What of a delta says that the answer calls tools.
#[derive(Deserialize)]
struct Delta {
    #[serde(default)]
    tool_calls: Option<Vec<IgnoredAny>>,
    #[serde(default)]
    function_call: Option<IgnoredAny>,
}

impl Delta {
    fn calls_tools(&self) -> bool {
        self.tool_calls.as_ref().is_some_and(|c| !c.is_empty()) || self.function_call.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use provider_sdk::StreamDecoder;

    /// OpenAI's documented stream with `include_usage`: a role chunk, text, the finish,
    /// the usage-only chunk, `[DONE]`.
    const PLAIN: &str = concat!(
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\\\"lo\"},\"finish_reason\":null}],\"usage\":null}\n\n",
        ": keep-alive\n\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":null}\r\n\r\n",
        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"total_tokens\":11,\"prompt_tokens_details\":{\"cached_tokens\":4,\"audio_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0,\"audio_tokens\":0,\"accepted_prediction_tokens\":0,\"rejected_prediction_tokens\":0}}}\n\n",
        "data: [DONE]\n\n",
    );

    /// The events the pipeline uses, as the openai plugin's decoder gives them.
    fn plugin_events(stream: &str) -> Vec<StreamEvent> {
        let mut decoder = provider_kit::openai::OpenAiDecoder::default();
        let mut events = Vec::new();
        decoder.feed(stream.as_bytes(), &mut events).unwrap();
        decoder.finish(&mut events).unwrap();
        events.retain(|e| {
            matches!(
                e,
                StreamEvent::Start { .. } | StreamEvent::Usage { .. } | StreamEvent::Finish { .. }
            )
        });
        events
    }

    /// Feeds `stream` in pieces cut at `cuts`; what the watcher saw last, and its events.
    fn watch(stream: &str, cuts: &[usize]) -> (Seen, Vec<StreamEvent>, Watch) {
        let mut watch = Watch::for_protocol(Protocol::OpenAiChat).unwrap();
        let mut events = Vec::new();
        let mut from = 0;
        let mut seen = Seen::More;
        for &to in cuts.iter().chain([&stream.len()]) {
            seen = watch.feed(&stream.as_bytes()[from..to], &mut events);
            from = to;
            if seen != Seen::More {
                break;
            }
        }
        (seen, events, watch)
    }

    #[test]
    fn a_plain_stream_gives_the_plugins_start_usage_and_finish_cut_anywhere() {
        let expected = plugin_events(PLAIN);
        assert_eq!(expected.len(), 3, "{expected:?}");
        for cut in 0..PLAIN.len() {
            let (seen, events, watch) = watch(PLAIN, &[cut]);
            assert_eq!(seen, Seen::Done, "cut at {cut}");
            assert_eq!(events, expected, "cut at {cut}");
            assert!(watch.whole());
        }
    }

    #[test]
    fn a_tool_calling_turn_that_stops_finishes_with_tool_calls_as_the_plugin_says() {
        let stream = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"c\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        );
        let (seen, events, watch) = watch(stream, &[]);
        assert_eq!(seen, Seen::More);
        assert!(
            watch.whole(),
            "a finish without [DONE] is whole, as for the plugin"
        );
        assert_eq!(events, plugin_events(stream));
        assert_eq!(
            events.last(),
            Some(&StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            })
        );
    }

    #[test]
    fn what_the_host_does_not_read_is_handed_over_at_the_start_of_its_event() {
        let first =
            "data: {\"id\":\"a\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        for unusual in [
            "data: {\"error\":{\"message\":\"overloaded\",\"type\":\"server_error\"}}\n\n",
            "data: {\"object\":\"error\",\"message\":\"bad\"}\n\n",
            // DeepSeek's cache counters, Groq's usage: the plugin knows them.
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2,\"prompt_cache_hit_tokens\":4}}\n\n",
            "data: {\"choices\":[],\"x_groq\":{\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}}\n\n",
            "event: error\ndata: {\"message\":\"bad\"}\n\n",
            "data: {\"choices\":\n",
            "data: {\"choices\":[]}\ndata: {}\n\n",
            "data: not json\n\n",
        ] {
            let stream = format!("{first}{unusual}data: [DONE]\n\n");
            for cut in [0, first.len() + 3, first.len() + unusual.len() - 1] {
                let (seen, events, _) = watch(&stream, &[cut]);
                assert_eq!(
                    seen,
                    Seen::Unusual {
                        at: first.len() as u64
                    },
                    "{unusual} cut at {cut}"
                );
                assert!(
                    matches!(events[..], [StreamEvent::Start { .. }]),
                    "the first chunk was read: {events:?}"
                );
            }
        }
    }

    #[test]
    fn a_stream_cut_before_its_end_is_not_whole() {
        let text = "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n";
        let finished =
            "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";
        // The stream as cut, and where the plugin is to read from at the end.
        for (cut, event_start) in [
            (text, text.len()),
            (&finished[..finished.len() - 1], 0),
            (&finished[..20], 0),
        ] {
            let (seen, _, watch) = watch(cut, &[]);
            assert_eq!(seen, Seen::More);
            assert!(!watch.whole(), "{cut}");
            assert_eq!(watch.event_start(), event_start as u64, "{cut}");
        }
    }
}
