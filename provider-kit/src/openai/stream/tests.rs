//! The stream decoder, on bytes taken from OpenAI's documentation and from real servers'
//! output quoted in public code and issues (each test says where). Every stream is
//! decoded twice, whole and one byte at a time, and both must agree exactly.

use super::*;
use crate::openai::conformance;
use provider_sdk::FinishReason;
use provider_sdk::StreamDecoder;

fn run(pieces: &[&[u8]]) -> Result<Vec<StreamEvent>, ProviderError> {
    let mut decoder = OpenAiDecoder::default();
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut events)?;
    }
    decoder.finish(&mut events)?;
    Ok(events)
}

/// Decodes `body` whole and byte by byte; both must give the same result.
fn decode(body: &str) -> Result<Vec<StreamEvent>, ProviderError> {
    let whole = run(&[body.as_bytes()]);
    let bytewise: Vec<&[u8]> = body.as_bytes().chunks(1).collect();
    assert_eq!(run(&bytewise), whole, "split input must decode the same");
    whole
}

/// `data: {chunk}` events for each chunk, then `data: [DONE]`.
fn sse(chunks: &[&str]) -> String {
    let mut body: String = chunks.iter().map(|c| format!("data: {c}\n\n")).collect();
    body.push_str("data: [DONE]\n\n");
    body
}

/// Wraps tool-call deltas in the chat.completion.chunk envelope OpenAI uses.
fn tool_chunk(tool_calls: &str) -> String {
    format!(
        r#"{{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{{"index":0,"delta":{{"tool_calls":{tool_calls}}},"finish_reason":null}}]}}"#
    )
}

const TOOL_FINISH: &str = r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"gpt-4o","choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}"#;

fn start(index: u32, id: &str, name: &str) -> StreamEvent {
    StreamEvent::ToolCallStart {
        index,
        id: id.into(),
        name: name.into(),
    }
}

fn args(index: u32, arguments: &str) -> StreamEvent {
    StreamEvent::ToolCallDelta {
        index,
        arguments: arguments.into(),
    }
}

/// Each call's id, name and joined arguments, by canonical index; also checks that
/// every call starts exactly once and before its arguments.
fn calls(events: &[StreamEvent]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for event in events {
        match event {
            StreamEvent::ToolCallStart { index, id, name } => {
                assert_eq!(
                    *index as usize,
                    calls.len(),
                    "indexes go 0, 1, 2... and start once"
                );
                calls.push((id.clone(), name.clone(), String::new()));
            }
            StreamEvent::ToolCallDelta { index, arguments } => {
                calls[*index as usize].2.push_str(arguments);
            }
            _ => {}
        }
    }
    calls
}

fn finish_of(events: &[StreamEvent]) -> Vec<FinishReason> {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::Finish { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

#[test]
fn streamed_text_from_the_api_reference() {
    let events = decode(&sse(&conformance::STREAM_CHUNKS)).unwrap();
    assert_eq!(
        events,
        vec![
            StreamEvent::Start {
                id: Some("chatcmpl-123".into()),
                model: Some("gpt-4o-mini".into())
            },
            StreamEvent::TextDelta {
                text: "Hello".into()
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
        ]
    );
}

#[test]
fn the_usage_chunk_of_a_real_openai_stream() {
    // An OpenAI stream with `stream_options.include_usage`, captured in langchain-ai/
    // langchain (libs/partners/openai/tests/unit_tests/chat_models/test_base.py):
    // `"usage":null` on every chunk, then `choices: []` with the figures.
    let body = sse(&[
        r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[{"index":0,"delta":{"content":"我是"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[{"index":0,"delta":{"content":"助手"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[{"index":0,"delta":{"content":"。"},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M","object":"chat.completion.chunk","created":1721631035,"model":"gpt-4o-2024-05-13","system_fingerprint":"fp_18cc0f1fa0","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}"#,
        conformance::USAGE_CHUNK,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        events[0],
        StreamEvent::Start {
            id: Some("chatcmpl-9nhARrdUiJWEMd5plwV1Gc9NCjb9M".into()),
            model: Some("gpt-4o-2024-05-13".into())
        }
    );
    let text: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(text, "我是助手。");
    assert_eq!(
        &events[events.len() - 2..],
        &[
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 14,
                    completion_tokens: 3,
                    ..Usage::default()
                }
            },
        ]
    );
}

#[test]
fn a_streamed_tool_call_from_the_function_calling_guide() {
    // platform.openai.com/docs/guides/function-calling ("Streaming"): the guide prints
    // each chunk's `delta.tool_calls`; here they are in their chunk envelopes.
    let deltas = [
        r#"[{"index": 0, "id": "call_DdmO9pD3xa9XTPNJ32zg2hcA", "function": {"arguments": "", "name": "get_weather"}, "type": "function"}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": "{\"", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": "location", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": "\":\"", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": "Paris", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": ",", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": " France", "name": null}, "type": null}]"#,
        r#"[{"index": 0, "id": null, "function": {"arguments": "\"}", "name": null}, "type": null}]"#,
    ];
    let mut chunks: Vec<String> = deltas.iter().map(|d| tool_chunk(d)).collect();
    chunks.push(TOOL_FINISH.to_owned());
    let events = decode(&sse(&chunks.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
    assert_eq!(
        events[1],
        start(0, "call_DdmO9pD3xa9XTPNJ32zg2hcA", "get_weather")
    );
    assert_eq!(events[2], args(0, "{\""), "arguments stream as they come");
    assert_eq!(
        calls(&events),
        vec![(
            "call_DdmO9pD3xa9XTPNJ32zg2hcA".into(),
            "get_weather".into(),
            r#"{"location":"Paris, France"}"#.into()
        )]
    );
    assert_eq!(finish_of(&events), vec![FinishReason::ToolCalls]);
}

#[test]
fn a_deepseek_tool_call_after_text() {
    // A deepseek-chat stream (text, then a tool call, usage on the finish chunk with
    // DeepSeek's cache fields), captured in a public Go test suite; trimmed to a few
    // of its text chunks.
    let fp = r#""id":"1986f9e8-0b5d-4331-88da-d2d2d8dd7a70","object":"chat.completion.chunk","created":1759075956,"model":"deepseek-chat","system_fingerprint":"fp_8333852bec_prod0820_fp8_kvcache""#;
    let body = sse(&[
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"role":"assistant","content":""}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":"I'll check the weather."}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"id":"call_00_Sq0n5HVeFHkS1mBrIGbwBQcK","type":"function","function":{{"name":"get_weather","arguments":""}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"{{\""}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"location"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"\":"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":" \""}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"Tokyo"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"tool_calls":[{{"index":0,"function":{{"arguments":"\"}}"}}}}]}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":""}},"logprobs":null,"finish_reason":"tool_calls"}}],"usage":{{"prompt_tokens":161,"completion_tokens":25,"total_tokens":186,"prompt_tokens_details":{{"cached_tokens":128}},"prompt_cache_hit_tokens":128,"prompt_cache_miss_tokens":33}}}}"#
        ),
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        events[1],
        StreamEvent::TextDelta {
            text: "I'll check the weather.".into()
        }
    );
    assert_eq!(
        calls(&events),
        vec![(
            "call_00_Sq0n5HVeFHkS1mBrIGbwBQcK".into(),
            "get_weather".into(),
            r#"{"location": "Tokyo"}"#.into()
        )]
    );
    let usage = events.iter().find_map(|e| match e {
        StreamEvent::Usage { usage } => Some(*usage),
        _ => None,
    });
    assert_eq!(
        usage.map(|u| (u.prompt_tokens, u.cached_prompt_tokens)),
        Some((161, 128))
    );
    assert_eq!(finish_of(&events), vec![FinishReason::ToolCalls]);
}

#[test]
fn parallel_tool_calls_interleaved_keep_their_own_arguments() {
    // OpenAI's chunk shape (index-keyed `ChatCompletionMessageToolCallChunk`), two calls
    // whose pieces alternate.
    let body = sse(&[
        &tool_chunk(
            r#"[{"index":0,"id":"call_a","type":"function","function":{"name":"list_files","arguments":""}}]"#,
        ),
        &tool_chunk(
            r#"[{"index":1,"id":"call_b","type":"function","function":{"name":"search_files","arguments":""}}]"#,
        ),
        &tool_chunk(r#"[{"index":0,"function":{"arguments":"{\"path\""}}]"#),
        &tool_chunk(r#"[{"index":1,"function":{"arguments":"{\"query\""}}]"#),
        &tool_chunk(r#"[{"index":0,"function":{"arguments":":\"src\"}"}}]"#),
        &tool_chunk(r#"[{"index":1,"function":{"arguments":":\"TODO\"}"}}]"#),
        TOOL_FINISH,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        calls(&events),
        vec![
            (
                "call_a".into(),
                "list_files".into(),
                r#"{"path":"src"}"#.into()
            ),
            (
                "call_b".into(),
                "search_files".into(),
                r#"{"query":"TODO"}"#.into()
            ),
        ]
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| matches!(e, StreamEvent::ToolCallStart { .. }))
            .count(),
        2
    );
}

#[test]
fn calls_are_numbered_in_the_order_they_start_whatever_their_upstream_index() {
    let body = sse(&[
        &tool_chunk(
            r#"[{"index":1,"id":"call_second","type":"function","function":{"name":"second","arguments":"{}"}}]"#,
        ),
        &tool_chunk(
            r#"[{"index":0,"id":"call_first","type":"function","function":{"name":"first","arguments":"{}"}}]"#,
        ),
        TOOL_FINISH,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(events[1], start(0, "call_second", "second"));
    assert_eq!(events[3], start(1, "call_first", "first"));
}

#[test]
fn servers_repeating_id_and_name_in_every_delta_start_each_call_once() {
    let body = sse(&[
        &tool_chunk(
            r#"[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":"}}]"#,
        ),
        &tool_chunk(
            r#"[{"index":0,"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"\"Paris\"}"}}]"#,
        ),
        &tool_chunk(
            r#"[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":"{\"tz\":"}}]"#,
        ),
        &tool_chunk(
            r#"[{"index":1,"id":"call_2","type":"function","function":{"name":"get_time","arguments":"\"CET\"}"}}]"#,
        ),
        TOOL_FINISH,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        calls(&events),
        vec![
            (
                "call_1".into(),
                "get_weather".into(),
                r#"{"city":"Paris"}"#.into()
            ),
            ("call_2".into(), "get_time".into(), r#"{"tz":"CET"}"#.into()),
        ]
    );
}

#[test]
fn servers_omitting_the_index_are_followed_by_id_then_by_position() {
    // chatanywhere/GPT_API_free#254: a first delta with an id and no index; the
    // continuations carry neither.
    let body = sse(&[
        &tool_chunk(
            r#"[{"id":"call_UnVtKL0WOa8iFRgWgrvdf4JY","type":"function","function":{"name":"squareRoot","arguments":""}}]"#,
        ),
        &tool_chunk(r#"[{"function":{"arguments":"{\"x\":"}}]"#),
        &tool_chunk(r#"[{"function":{"arguments":"16}"}}]"#),
        TOOL_FINISH,
    ]);
    assert_eq!(
        calls(&decode(&body).unwrap()),
        vec![(
            "call_UnVtKL0WOa8iFRgWgrvdf4JY".into(),
            "squareRoot".into(),
            r#"{"x":16}"#.into()
        )]
    );
    // Gemini's compatibility endpoint (openai/openai-python#2806): whole calls, each with
    // its own id and no index, two in one chunk.
    let body = sse(&[
        &tool_chunk(
            r#"[{"id":"call_a","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}},{"id":"call_b","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Rome\"}"}}]"#,
        ),
        TOOL_FINISH,
    ]);
    assert_eq!(
        calls(&decode(&body).unwrap()),
        vec![
            (
                "call_a".into(),
                "get_weather".into(),
                r#"{"city":"Paris"}"#.into()
            ),
            (
                "call_b".into(),
                "get_weather".into(),
                r#"{"city":"Rome"}"#.into()
            ),
        ]
    );
}

#[test]
fn ollama_parallel_calls_come_whole_and_may_share_index_zero() {
    // A real Ollama stream (qwen2.5-coder, g0t4/ask-openai.nvim notes): each call whole
    // in one delta, and a finish chunk that repeats `"role"`; no [DONE] was recorded.
    let body = concat!(
        "data: {\"id\":\"chatcmpl-18\",\"object\":\"chat.completion.chunk\",\"created\":1744446075,\"model\":\"qwen2.5-coder:7b-instruct-q8_0\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_wteop8bt\",\"index\":0,\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"arguments\":\"{\\\"command\\\":\\\"ls\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-18\",\"object\":\"chat.completion.chunk\",\"created\":1744446075,\"model\":\"qwen2.5-coder:7b-instruct-q8_0\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_rk2xye1l\",\"index\":1,\"type\":\"function\",\"function\":{\"name\":\"run_command\",\"arguments\":\"{\\\"command\\\":\\\"ls -l\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
        "data: {\"id\":\"chatcmpl-18\",\"object\":\"chat.completion.chunk\",\"created\":1744446075,\"model\":\"qwen2.5-coder:7b-instruct-q8_0\",\"system_fingerprint\":\"fp_ollama\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":\"tool_calls\"}]}\n\n",
    );
    let events = decode(body).unwrap();
    assert_eq!(
        calls(&events),
        vec![
            (
                "call_wteop8bt".into(),
                "run_command".into(),
                r#"{"command":"ls"}"#.into()
            ),
            (
                "call_rk2xye1l".into(),
                "run_command".into(),
                r#"{"command":"ls -l"}"#.into()
            ),
        ]
    );
    // The same calls from an Ollama-compatible server that reuses index 0 for both.
    let reused = body.replace("\"index\":1,\"type\"", "\"index\":0,\"type\"");
    assert!(
        !reused.contains("\"index\":1"),
        "both calls now claim index 0"
    );
    assert_eq!(calls(&decode(&reused).unwrap()), calls(&events));
}

#[test]
fn a_fresh_id_on_an_unfinished_call_continues_it() {
    // Servers that mint an id per delta: the arguments are not complete JSON yet, so
    // the new id cannot be a new call.
    let body = sse(&[
        &tool_chunk(
            r#"[{"index":0,"id":"call_x1","function":{"name":"f","arguments":"{\"a\":"}}]"#,
        ),
        &tool_chunk(r#"[{"index":0,"id":"call_x2","function":{"arguments":"1}"}}]"#),
        TOOL_FINISH,
    ]);
    assert_eq!(
        calls(&decode(&body).unwrap()),
        vec![("call_x1".into(), "f".into(), r#"{"a":1}"#.into())]
    );
}

#[test]
fn a_call_whose_id_comes_after_its_name_starts_once_it_is_known() {
    let body = sse(&[
        &tool_chunk(r#"[{"index":0,"function":{"name":"f"}}]"#),
        &tool_chunk(r#"[{"index":0,"id":"call_late","function":{"arguments":"{}"}}]"#),
        TOOL_FINISH,
    ]);
    assert_eq!(
        calls(&decode(&body).unwrap()),
        vec![("call_late".into(), "f".into(), "{}".into())]
    );
    // And one that never gets an id gets a stable made-up one.
    let body = sse(&[
        &tool_chunk(r#"[{"index":0,"function":{"name":"g","arguments":"{}"}}]"#),
        TOOL_FINISH,
    ]);
    assert_eq!(
        calls(&decode(&body).unwrap()),
        vec![("call_0".into(), "g".into(), "{}".into())]
    );
}

#[test]
fn reasoning_content_deltas_from_deepseek_reasoner() {
    // A deepseek-reasoner stream captured in a public Go test suite (trimmed): reasoning
    // first, then the answer (with an emoji that one-byte feeding splits), usage with
    // reasoning tokens on the finish chunk.
    let fp = r#""id":"f802c271-d4da-4773-b8b3-b1e4dfbf14f3","object":"chat.completion.chunk","created":1759299469,"model":"deepseek-reasoner","system_fingerprint":"fp_ffc7281d48_prod0820_fp8_kvcache""#;
    let body = sse(&[
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"role":"assistant","content":null,"reasoning_content":""}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":null,"reasoning_content":"Hmm, the user just said \"Hello!\" with an exclamation mark, which suggests a friendly and enthusiastic tone."}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":null,"reasoning_content":" \n\n"}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":"Hello","reasoning_content":null}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":"!","reasoning_content":null}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":" 😊","reasoning_content":null}},"logprobs":null,"finish_reason":null}}]}}"#
        ),
        &format!(
            r#"{{{fp},"choices":[{{"index":0,"delta":{{"content":"","reasoning_content":null}},"logprobs":null,"finish_reason":"stop"}}],"usage":{{"prompt_tokens":6,"completion_tokens":169,"total_tokens":175,"prompt_tokens_details":{{"cached_tokens":0}},"completion_tokens_details":{{"reasoning_tokens":117}},"prompt_cache_hit_tokens":1,"prompt_cache_miss_tokens":5}}}}"#
        ),
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        &events[..6],
        &[
            StreamEvent::Start { id: Some("f802c271-d4da-4773-b8b3-b1e4dfbf14f3".into()), model: Some("deepseek-reasoner".into()) },
            StreamEvent::ReasoningDelta { text: "Hmm, the user just said \"Hello!\" with an exclamation mark, which suggests a friendly and enthusiastic tone.".into() },
            StreamEvent::ReasoningDelta { text: " \n\n".into() },
            StreamEvent::TextDelta { text: "Hello".into() },
            StreamEvent::TextDelta { text: "!".into() },
            StreamEvent::TextDelta { text: " 😊".into() },
        ]
    );
    assert_eq!(
        events[6],
        StreamEvent::Usage {
            usage: Usage {
                prompt_tokens: 6,
                completion_tokens: 169,
                cached_prompt_tokens: 0,
                cache_write_tokens: 0,
                reasoning_tokens: 117
            }
        }
    );
    assert_eq!(
        events[7],
        StreamEvent::Finish {
            reason: FinishReason::Stop
        }
    );
}

#[test]
fn reasoning_deltas_from_ollama() {
    // Ollama serving gpt-oss:20b (g0t4/ask-openai.nvim, lua notes): reasoning in
    // `delta.reasoning`, then content.
    let body = sse(&[
        r#"{"id":"chatcmpl-900","object":"chat.completion.chunk","created":1754453131,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"?"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-900","object":"chat.completion.chunk","created":1754453131,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":" }"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-900","object":"chat.completion.chunk","created":1754453131,"model":"gpt-oss:20b","system_fingerprint":"fp_ollama","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":"stop"}]}"#,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        &events[1..],
        &[
            StreamEvent::ReasoningDelta { text: "?".into() },
            StreamEvent::TextDelta { text: " }".into() },
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
        ]
    );
}

#[test]
fn a_server_sending_reasoning_under_both_names_is_not_doubled() {
    let body = sse(&[
        r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{"reasoning_content":"think","reasoning":"think"},"finish_reason":null}]}"#,
        r#"{"id":"c","model":"m","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
    ]);
    let events = decode(&body).unwrap();
    assert_eq!(
        events[1],
        StreamEvent::ReasoningDelta {
            text: "think".into()
        }
    );
    assert_eq!(events.len(), 3);
}

#[test]
fn an_error_event_mid_stream_fails_the_stream_as_its_http_twin_would() {
    let body = format!(
        "data: {}\n\ndata: {}\n\n",
        conformance::STREAM_CHUNKS[1],
        r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#
    );
    let error = decode(&body).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ProviderService);
    assert!(
        error.message.starts_with("The server had an error"),
        "{}",
        error.message
    );
    // OpenRouter's mid-stream errors carry the HTTP status as `error.code` beside a
    // `finish_reason: "error"` choice (openrouter.ai/docs/api/errors).
    let body = sse(&[
        r#"{"id":"cmpl-abc123","object":"chat.completion.chunk","created":1702256478,"model":"openai/gpt-4o","provider":"openai","error":{"code":429,"message":"Rate limit exceeded. Please try again in 20s."},"choices":[{"index":0,"delta":{"content":""},"finish_reason":"error"}]}"#,
    ]);
    let error = decode(&body).unwrap_err();
    assert_eq!(
        (error.kind, error.status, error.retry_after_ms),
        (ErrorKind::RateLimited, Some(429), Some(20_000))
    );
    // After an error the decoder keeps failing rather than resuming.
    let mut decoder = OpenAiDecoder::default();
    let mut events = Vec::new();
    assert!(decoder.feed(body.as_bytes(), &mut events).is_err());
    assert!(decoder.feed(b"data: [DONE]\n\n", &mut events).is_err());
    assert!(decoder.finish(&mut events).is_err());
}

#[test]
fn a_stream_cut_before_done_and_finish_is_a_connection_error() {
    let cut = format!(
        "data: {}\n\ndata: {}\n\n",
        conformance::STREAM_CHUNKS[0],
        conformance::STREAM_CHUNKS[1]
    );
    let error = decode(&cut).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection);
    assert!(
        error.message.contains("stream ended early"),
        "{}",
        error.message
    );
    // Cut in the middle of an event.
    let half = &cut[..cut.len() - 40];
    let error = decode(half).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection);
    assert!(
        error.message.contains("middle of an event"),
        "{}",
        error.message
    );
    // A last event complete but for its blank line still counts.
    assert!(decode(sse(&conformance::STREAM_CHUNKS).trim_end()).is_ok());
    // An empty body too.
    assert_eq!(decode("").unwrap_err().kind, ErrorKind::Connection);
}

#[test]
fn a_finish_reason_without_done_is_a_complete_stream() {
    // llama.cpp's server (some versions) stops after the finish chunk.
    let body = format!(
        "data: {}\n\ndata: {}\n\n",
        r#"{"choices":[{"finish_reason":null,"index":0,"delta":{"content":"Hi"}}],"created":1735689600,"id":"chatcmpl-llama","model":"gpt-3.5-turbo","object":"chat.completion.chunk"}"#,
        r#"{"choices":[{"finish_reason":"stop","index":0,"delta":{}}],"created":1735689600,"id":"chatcmpl-llama","model":"gpt-3.5-turbo","object":"chat.completion.chunk","usage":{"completion_tokens":1,"prompt_tokens":9,"total_tokens":10}}"#
    );
    let events = decode(&body).unwrap();
    assert_eq!(finish_of(&events), vec![FinishReason::Stop]);
    assert!(events.contains(&StreamEvent::TextDelta { text: "Hi".into() }));
}

#[test]
fn done_without_a_finish_reason_still_finishes_once() {
    let body = sse(&[conformance::STREAM_CHUNKS[1]]);
    let events = decode(&body).unwrap();
    assert_eq!(finish_of(&events), vec![FinishReason::Stop]);
    // Nothing after [DONE] counts.
    let after = format!("{body}data: {}\n\n", conformance::STREAM_CHUNKS[1]);
    assert_eq!(decode(&after).unwrap(), events);
}

#[test]
fn azure_content_filter_chunks_and_openrouter_comments_are_skipped() {
    // Azure opens with a chunk that only carries prompt_filter_results, with empty
    // id and model; OpenRouter sends `: OPENROUTER PROCESSING` keep-alive comments.
    let body = format!(
        ": OPENROUTER PROCESSING\n\ndata: {}\n\n{}",
        r#"{"choices":[],"created":0,"id":"","model":"","object":"","prompt_filter_results":[{"prompt_index":0,"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}}]}"#,
        sse(&conformance::STREAM_CHUNKS)
    );
    let events = decode(&body).unwrap();
    assert_eq!(
        events[0],
        StreamEvent::Start {
            id: Some("chatcmpl-123".into()),
            model: Some("gpt-4o-mini".into())
        }
    );
    assert_eq!(events.len(), 3);
}

#[test]
fn groq_usage_on_the_last_chunk_is_reported() {
    let body = sse(&[
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1,"model":"llama-3.3-70b-versatile","choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}]}"#,
        r#"{"id":"chatcmpl-g","object":"chat.completion.chunk","created":1,"model":"llama-3.3-70b-versatile","choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"x_groq":{"id":"req_01","usage":{"queue_time":0.02,"prompt_tokens":40,"prompt_time":0.002,"completion_tokens":2,"completion_time":0.004,"total_tokens":42,"total_time":0.006}}}"#,
    ]);
    let events = decode(&body).unwrap();
    assert!(events.contains(&StreamEvent::Usage {
        usage: Usage {
            prompt_tokens: 40,
            completion_tokens: 2,
            ..Usage::default()
        }
    }));
}

#[test]
fn a_malformed_event_is_an_upstream_error_not_a_plugin_fault() {
    let error = decode("data: {not json}\n\n").unwrap_err();
    assert_eq!(error.kind, ErrorKind::ProviderService);
}

#[test]
fn openrouter_reasoning_details_arrive_as_complete_blocks_before_the_finish() {
    // The delta shape of openrouter.ai/docs/use-cases/reasoning-tokens: the text in
    // pieces, the signature on the last piece of the same `index`.
    let body = sse(&[
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"Let me ","reasoning_details":[{"type":"reasoning.text","text":"Let me ","index":0,"format":"anthropic-claude-v1"}]},"finish_reason":null}]}"#,
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"delta":{"content":"","reasoning":"think.","reasoning_details":[{"type":"reasoning.text","text":"think.","index":0,"format":"anthropic-claude-v1"}]},"finish_reason":null}]}"#,
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"delta":{"content":"","reasoning_details":[{"type":"reasoning.text","signature":"EqQBCkgIBhAB","index":0,"format":"anthropic-claude-v1"}]},"finish_reason":null}]}"#,
        r#"{"id":"gen-1","model":"anthropic/claude-sonnet-4","choices":[{"index":0,"delta":{"content":"42"},"finish_reason":"stop"}]}"#,
    ]);
    let events = decode(&body).unwrap();
    let reasoning: String = events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(reasoning, "Let me think.");
    let n = events.len();
    assert_eq!(
        events[n - 2],
        StreamEvent::ReasoningDetail {
            detail: ReasoningDetail {
                kind: "reasoning.text".into(),
                text: Some("Let me think.".into()),
                signature: Some("EqQBCkgIBhAB".into()),
                data: None,
                format: Some("anthropic-claude-v1".into()),
            }
        }
    );
    assert_eq!(
        events[n - 1],
        StreamEvent::Finish {
            reason: FinishReason::Stop
        }
    );
}
