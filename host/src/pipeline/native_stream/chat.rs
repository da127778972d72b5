//! OpenAI chat-completions streams: `data: {chunk}` ... `data: [DONE]`, read for the
//! answer's start, usage and finish as the openai plugin's decoder reads them.

use std::borrow::Cow;

use provider_kit::openai::response::{finish_reason, with_tool_calls};
use provider_sdk::{FinishReason, StreamEvent, Usage};
use serde::{de::IgnoredAny, Deserialize};

use super::Read;
use crate::pipeline::native_answer::OpenAiUsage;

/// What the chunks so far said, as the openai plugin's decoder keeps it.
#[derive(Debug, Default)]
pub(super) struct Chat {
    started: bool,
    finished: bool,
    done: bool,
    called_tools: bool,
    last_usage: Option<Usage>,
}

impl Chat {
    /// `[DONE]`, or a finish without it (some servers end so), as for the plugin.
    pub(super) fn ended(&self) -> bool {
        self.done || self.finished
    }

    /// One event's data, trimmed.
    pub(super) fn on_data(&mut self, data: &[u8], out: &mut Vec<StreamEvent>) -> Read {
        if data == b"[DONE]" {
            self.done = true;
            self.finish(None, out);
            return Read::Done;
        }
        match serde_json::from_slice::<Chunk<'_>>(data) {
            Ok(chunk) if chunk.is_plain() => {
                self.chunk(chunk, out);
                Read::More
            }
            _ => Read::Unusual,
        }
    }

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
    use crate::pipeline::native_stream::{tests::watch as watch_in, Seen, Watch};
    use provider_sdk::{Protocol, StreamDecoder};

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

    fn watch(stream: &str, cuts: &[usize]) -> (Seen, Vec<StreamEvent>, Watch) {
        watch_in(Protocol::OpenAiChat, stream, cuts)
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
