//! The harder stream checks of validation: a tool-call stream, and streams cut short.
//!
//! A tool-call stream comes from the plugin's own sample stream when that one calls a
//! tool, and otherwise (for a plugin whose manifest says it calls tools) from the host's
//! own fixture for the protocol the plugin declares native, written as the upstream's
//! documentation shows it. A stream cut short must make the decoder's `finish` fail:
//! a decoder that ends a cut stream without an error would hand a client half an answer
//! as a whole one. A cut that only loses what follows the answer (usage, a terminator a
//! protocol may omit) is not held against it.

use provider_sdk::{abi::load::PluginProvider, FinishReason, Protocol, ProviderError, StreamEvent};

/// The host's tool-call stream of OpenAI chat completions: `get_weather` called with
/// `{"city":"Paris"}`, arguments in pieces, then usage and `[DONE]`
/// (<https://platform.openai.com/docs/guides/function-calling#streaming>).
pub const OPENAI_TOOL_STREAM: &str = concat!(
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"index\":0,\"id\":\"call_DdmO9pD3xa9XTPNJ32zg2hcA\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}],\"refusal\":null},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"city\\\":\\\"\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"Paris\\\"}\"}}]},\"logprobs\":null,\"finish_reason\":null}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,\"delta\":{},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],\"usage\":null}\n\n",
    "data: {\"id\":\"chatcmpl-9x1\",\"object\":\"chat.completion.chunk\",\"created\":1733000000,\"model\":\"gpt-4o-mini-2024-07-18\",\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[],\"usage\":{\"prompt_tokens\":81,\"completion_tokens\":15,\"total_tokens\":96,\"prompt_tokens_details\":{\"cached_tokens\":0},\"completion_tokens_details\":{\"reasoning_tokens\":0}}}\n\n",
    "data: [DONE]\n\n",
);

/// The host's tool-call stream of Anthropic Messages: a `tool_use` block for
/// `get_weather` whose input arrives as `input_json_delta` pieces
/// (<https://docs.anthropic.com/en/docs/build-with-claude/streaming>).
pub const ANTHROPIC_TOOL_STREAM: &str = concat!(
    "event: message_start\n",
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_014p7gG3wDgGV9EUtLvnow3U\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-5\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":472,\"output_tokens\":2},\"content\":[],\"stop_reason\":null}}\n\n",
    "event: content_block_start\n",
    "data: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01T1x1fJ34qAmk2tNTrN7Up6\",\"name\":\"get_weather\",\"input\":{}}}\n\n",
    "event: ping\n",
    "data: {\"type\": \"ping\"}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \\\"Par\"}}\n\n",
    "event: content_block_delta\n",
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"is\\\"}\"}}\n\n",
    "event: content_block_stop\n",
    "data: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
    "event: message_delta\n",
    "data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}\n\n",
    "event: message_stop\n",
    "data: {\"type\":\"message_stop\"}\n\n",
);

/// At most this many cuts are tried per stream: every line boundary first (a cut
/// between two events is the one a decoder can miss), then evenly spread bytes.
const MAX_CUTS: usize = 320;

/// The tool-call stream to check a plugin with, and where it came from; `None` when
/// there is none (a note says why).
pub fn tool_stream(
    provider: &PluginProvider,
    model: &str,
    calls_tools: bool,
    sample_events: &[StreamEvent],
    sample: &[u8],
) -> Result<(Vec<u8>, &'static str, bool), String> {
    if sample_events
        .iter()
        .any(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
    {
        return Ok((sample.to_vec(), "the plugin's sample stream", false));
    }
    if !calls_tools {
        return Err("the manifest declares no tool calls".to_owned());
    }
    for (protocol, fixture) in [
        (Protocol::OpenAiChat, OPENAI_TOOL_STREAM),
        (Protocol::AnthropicMessages, ANTHROPIC_TOOL_STREAM),
    ] {
        if let Ok(Some(_)) = provider.native_request(protocol, model, true) {
            return Ok((
                fixture.as_bytes().to_vec(),
                match protocol {
                    Protocol::OpenAiChat => "the host's OpenAI chat completions fixture",
                    _ => "the host's Anthropic Messages fixture",
                },
                true,
            ));
        }
    }
    Err("the plugin's sample stream calls no tool and it declares no protocol the host has a tool-call stream for".to_owned())
}

/// Checks a tool-call stream: decoded whole and one byte at a time to the same
/// answer, with at least one whole call whose arguments are JSON, and a finish. With
/// `expect_weather` (the host's fixtures), the call must be `get_weather` with
/// `{"city":"Paris"}` and the finish `tool_calls`.
pub fn check_tool_stream(
    provider: &PluginProvider,
    body: &[u8],
    expect_weather: bool,
) -> Result<usize, String> {
    let whole = decode(provider, [body].into_iter()).map_err(|e| e.to_string())?;
    let bytewise =
        decode(provider, body.chunks(1)).map_err(|e| format!("fed one byte at a time: {e}"))?;
    if answer(&whole) != answer(&bytewise) {
        return Err("decoding it one byte at a time gave a different answer than decoding it whole: the decoder mishandles split input".to_owned());
    }
    let calls = tool_calls(&whole)?;
    if calls.is_empty() {
        return Err("it decoded to no tool call".to_owned());
    }
    let finish = whole.iter().rev().find_map(|e| match e {
        StreamEvent::Finish { reason } => Some(*reason),
        _ => None,
    });
    let Some(finish) = finish else {
        return Err("it decoded to no finish event".to_owned());
    };
    if expect_weather {
        let (name, arguments) = &calls[0];
        let city = arguments.get("city").and_then(|c| c.as_str());
        if name != "get_weather" || city != Some("Paris") {
            return Err(format!(
                "it decoded to a call of `{name}` with {arguments}, not `get_weather` with {{\"city\":\"Paris\"}}"
            ));
        }
        if finish != FinishReason::ToolCalls {
            return Err(format!(
                "it decoded to the finish reason {finish:?}, not tool_calls"
            ));
        }
    }
    Ok(calls.len())
}

/// Each call's name and parsed arguments, in order of their starts.
fn tool_calls(events: &[StreamEvent]) -> Result<Vec<(String, serde_json::Value)>, String> {
    let mut calls: Vec<(u32, String, String)> = Vec::new();
    for event in events {
        match event {
            StreamEvent::ToolCallStart { index, id, name } => {
                if id.is_empty() || name.is_empty() {
                    return Err(format!(
                        "tool call {index} started with an empty id or name"
                    ));
                }
                calls.push((*index, name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                match calls.iter_mut().rev().find(|c| c.0 == *index) {
                    Some(call) => call.2.push_str(arguments),
                    None => {
                        return Err(format!(
                            "arguments of tool call {index} came before the call started"
                        ))
                    }
                }
            }
            _ => {}
        }
    }
    calls
        .into_iter()
        .map(|(index, name, arguments)| {
            let text = if arguments.trim().is_empty() {
                "{}"
            } else {
                &arguments
            };
            serde_json::from_str(text)
                .map(|value| (name, value))
                .map_err(|e| {
                    format!("the arguments of tool call {index} are not JSON once joined ({e})")
                })
        })
        .collect()
}

/// Decodes `body` cut after each of up to [`MAX_CUTS`] points: `finish` must fail on
/// every cut unless what was cut off carried nothing of the answer. Returns how many
/// cuts were tried.
pub fn check_cuts(provider: &PluginProvider, body: &[u8]) -> Result<usize, String> {
    let full = answer(&decode(provider, [body].into_iter()).map_err(|e| e.to_string())?);
    let cuts = cut_points(body);
    for &cut in &cuts {
        let Ok(events) = decode(provider, [&body[..cut]].into_iter()) else {
            continue;
        };
        let partial = answer(&events);
        if partial != full {
            return Err(format!(
                "treats a stream cut short as complete: cut after {cut} of its {} bytes, it ended without an error but lacks {}; `finish` must fail when the body ends before the protocol's end",
                body.len(),
                missing(&partial, &full)
            ));
        }
    }
    Ok(cuts.len())
}

/// The line boundaries of `body`, then evenly spread bytes, at most [`MAX_CUTS`], each
/// shorter than the body.
fn cut_points(body: &[u8]) -> Vec<usize> {
    let mut cuts: Vec<usize> = std::iter::once(0)
        .chain(
            body.iter()
                .enumerate()
                .filter(|(_, &b)| b == b'\n')
                .map(|(i, _)| i + 1),
        )
        .filter(|&c| c < body.len())
        .take(MAX_CUTS / 2)
        .collect();
    let spread = MAX_CUTS - cuts.len();
    let step = (body.len() / spread.max(1)).max(1);
    cuts.extend((0..body.len()).step_by(step).take(spread));
    cuts.sort_unstable();
    cuts.dedup();
    cuts
}

/// What `partial` lacks of `full`, in a few words.
fn missing(partial: &[StreamEvent], full: &[StreamEvent]) -> String {
    let has_finish = |events: &[StreamEvent]| {
        events
            .iter()
            .any(|e| matches!(e, StreamEvent::Finish { .. }))
    };
    if has_finish(full) && !has_finish(partial) {
        return "the finish event".to_owned();
    }
    "part of the answer (text, reasoning or tool calls)".to_owned()
}

/// Decodes pieces as the pipeline does; the events, or the first error.
pub fn decode<'a>(
    provider: &PluginProvider,
    pieces: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<StreamEvent>, ProviderError> {
    let mut decoder = provider.stream_decoder()?;
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut events)?;
    }
    decoder.finish(&mut events)?;
    Ok(events)
}

/// The answer a stream carries: its events with consecutive deltas joined, without
/// what may be lost after the answer (usage) or differs by how it was split (start).
fn answer(events: &[StreamEvent]) -> Vec<StreamEvent> {
    let mut merged: Vec<StreamEvent> = Vec::with_capacity(events.len());
    for event in events {
        match (merged.last_mut(), event) {
            (_, StreamEvent::Usage { .. } | StreamEvent::Start { .. }) => {}
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
            _ => merged.push(event.clone()),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_include_every_line_boundary_and_never_the_whole_body() {
        let body = b"data: a\n\ndata: b\n\n";
        let cuts = cut_points(body);
        for boundary in [0, 8, 9, 17] {
            assert!(cuts.contains(&boundary), "{boundary} missing from {cuts:?}");
        }
        assert!(cuts.iter().all(|&c| c < body.len()));
        assert!(cut_points(&vec![b'x'; 100_000]).len() <= MAX_CUTS);
    }

    #[test]
    fn the_answer_ignores_usage_and_how_deltas_were_split() {
        let text = |t: &str| StreamEvent::TextDelta { text: t.to_owned() };
        let usage = StreamEvent::Usage {
            usage: provider_sdk::Usage::default(),
        };
        assert_eq!(
            answer(&[text("hel"), text("lo"), usage]),
            answer(&[text("hello")])
        );
    }

    #[test]
    fn the_host_fixtures_are_the_documented_wire_formats() {
        for line in OPENAI_TOOL_STREAM.lines().filter(|l| !l.is_empty()) {
            let data = line.strip_prefix("data: ").expect("data lines only");
            if data != "[DONE]" {
                serde_json::from_str::<serde_json::Value>(data).expect("JSON chunk");
            }
        }
        let events = ANTHROPIC_TOOL_STREAM
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str::<serde_json::Value>(d).expect("JSON event"))
            .collect::<Vec<_>>();
        assert_eq!(events.last().unwrap()["type"], "message_stop");
    }
}
