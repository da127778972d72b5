//! Decoding real `streamGenerateContent?alt=sse` bodies.

use provider_sdk::{ErrorKind, FinishReason, StreamEvent, Usage};

use super::{decode, decode_whole, fixtures};

fn text(text: &str) -> StreamEvent {
    StreamEvent::TextDelta {
        text: text.to_owned(),
    }
}

fn reasoning_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::ReasoningDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

fn answer_text(events: &[StreamEvent]) -> String {
    events
        .iter()
        .filter_map(|e| match e {
            StreamEvent::TextDelta { text } => Some(text.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_streamed_answer_gives_start_text_deltas_then_usage_and_finish() {
    assert_eq!(
        decode_whole(fixtures::STREAM_BASIC_REPLY),
        vec![
            StreamEvent::Start {
                id: None,
                model: Some("gemini-3.1-flash-lite".to_owned()),
            },
            text("The"),
            text(" capital of Wyoming"),
            text(" is **Cheyenne**.\n"),
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 7,
                    completion_tokens: 10,
                    ..Usage::default()
                }
            },
            StreamEvent::Finish {
                reason: FinishReason::Stop
            },
        ]
    );
}

#[test]
fn streamed_thoughts_are_reasoning_deltas_before_the_answer() {
    let events = decode_whole(fixtures::STREAM_THINKING_REPLY);
    assert_eq!(
        events[0],
        StreamEvent::Start {
            id: Some("0J-HaJetAqv0jrEPwu-tsQ0".to_owned()),
            model: Some("gemini-2.5-flash".to_owned()),
        }
    );
    let first_text = events
        .iter()
        .position(|e| matches!(e, StreamEvent::TextDelta { .. }))
        .unwrap();
    let last_reasoning = events
        .iter()
        .rposition(|e| matches!(e, StreamEvent::ReasoningDelta { .. }))
        .unwrap();
    assert!(last_reasoning < first_text);
    assert!(reasoning_text(&events).starts_with("**Exploring Sky Color**"));
    assert!(reasoning_text(&events).contains("**Constructing a Concise Answer**"));
    assert_eq!(
        answer_text(&events),
        "The sky is blue because tiny gas molecules in Earth's atmosphere scatter blue light \
         from the sun more efficiently than other colors. Blue light has shorter, smaller \
         wavelengths, causing it to be scattered in all directions, making the sky appear \
         blue to our eyes."
    );
    // The last usageMetadata: candidates 48 + thoughts 540, prompt 10 (total 598).
    assert_eq!(
        events[events.len() - 2],
        StreamEvent::Usage {
            usage: Usage {
                prompt_tokens: 10,
                completion_tokens: 588,
                reasoning_tokens: 540,
                ..Usage::default()
            }
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
fn a_streamed_function_call_is_one_start_and_one_delta_with_all_arguments() {
    let events = decode_whole(fixtures::STREAM_THINKING_FUNCTION_CALL);
    let after_reasoning: Vec<&StreamEvent> = events
        .iter()
        .filter(|e| !matches!(e, StreamEvent::ReasoningDelta { .. }))
        .collect();
    assert!(
        matches!(after_reasoning[0], StreamEvent::Start { id: Some(id), .. } if id == "48SHaPHpHKbG-8YPtZCawAk")
    );
    assert_eq!(
        after_reasoning[1],
        &StreamEvent::ToolCallStart {
            index: 0,
            id: "call_0".to_owned(),
            name: "now".to_owned(),
        }
    );
    assert_eq!(
        after_reasoning[2],
        &StreamEvent::ToolCallDelta {
            index: 0,
            arguments: "{}".to_owned(),
        }
    );
    let StreamEvent::ReasoningDetail { detail } = after_reasoning[3] else {
        panic!(
            "the call's thought signature follows it: {:?}",
            after_reasoning[3]
        )
    };
    assert_eq!(detail.kind, "reasoning.encrypted");
    assert_eq!(detail.format.as_deref(), Some("google-gemini-v1"));
    assert!(detail
        .data
        .as_deref()
        .is_some_and(|d| d.starts_with("CiIBVKhc7vB+") && d.ends_with("MlLleEs0")));
    assert_eq!(
        after_reasoning[4..],
        [
            &StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 38,
                    completion_tokens: 6 + 168,
                    reasoning_tokens: 168,
                    ..Usage::default()
                }
            },
            &StreamEvent::Finish {
                reason: FinishReason::ToolCalls
            },
        ]
    );
    assert!(reasoning_text(&events).starts_with("**Calculating the Days**"));
}

/// `provider-host validate` feeds streams one byte at a time; every captured stream,
/// CRLF ones included, must decode to the same events however it is split.
#[test]
fn every_stream_decodes_the_same_when_split_at_every_byte() {
    for (name, body) in [
        ("basic reply", fixtures::STREAM_BASIC_REPLY),
        ("thinking reply", fixtures::STREAM_THINKING_REPLY),
        (
            "thinking function call",
            fixtures::STREAM_THINKING_FUNCTION_CALL,
        ),
        ("prompt blocked", fixtures::STREAM_PROMPT_BLOCKED),
        ("recitation", fixtures::STREAM_RECITATION),
    ] {
        let whole = decode_whole(body);
        let bytewise = decode(body.chunks(1)).unwrap();
        assert_eq!(bytewise, whole, "{name}: one byte at a time");
        for size in [2, 3, 7, 64, 500] {
            assert_eq!(
                decode(body.chunks(size)).unwrap(),
                whole,
                "{name}: pieces of {size}"
            );
        }
        // Split once at every position.
        for at in 1..body.len() {
            let (a, b) = body.split_at(at);
            assert_eq!(decode([a, b]).unwrap(), whole, "{name}: split at byte {at}");
        }
    }
}

#[test]
fn a_stream_cut_before_its_finish_reason_is_a_connection_error() {
    let body = fixtures::STREAM_BASIC_REPLY;
    let last_event = body
        .windows(b"data: ".len())
        .rposition(|w| w == b"data: ")
        .unwrap();
    // Cut between two events: everything before the last event arrived.
    let error = decode([&body[..last_event]]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    // Cut inside the last event, in the middle of its JSON.
    let error = decode([&body[..last_event + 40]]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
    // No body at all.
    let error = decode([&b""[..]]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Connection, "{error}");
}

#[test]
fn a_blocked_prompt_in_a_stream_finishes_as_content_filter() {
    let events = decode_whole(fixtures::STREAM_PROMPT_BLOCKED);
    assert_eq!(answer_text(&events), "text1text2text3");
    assert_eq!(
        events.last(),
        Some(&StreamEvent::Finish {
            reason: FinishReason::ContentFilter
        })
    );
}

#[test]
fn a_stream_stopped_for_recitation_finishes_as_content_filter_with_final_usage() {
    let events = decode_whole(fixtures::STREAM_RECITATION);
    assert_eq!(
        answer_text(&events),
        "text1text2text3text4text5text6text7text8"
    );
    assert_eq!(
        events[events.len() - 2..],
        [
            StreamEvent::Usage {
                usage: Usage {
                    prompt_tokens: 9,
                    completion_tokens: 261,
                    ..Usage::default()
                }
            },
            StreamEvent::Finish {
                reason: FinishReason::ContentFilter
            },
        ]
    );
}

#[test]
fn an_error_event_in_a_stream_is_classified_like_an_error_response() {
    let body = b"data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"Hi\"}],\"role\": \"model\"}}]}\n\n\
data: {\"error\": {\"code\": 503, \"message\": \"The model is overloaded. Please try again later.\", \"status\": \"UNAVAILABLE\"}}\n\n";
    let error = decode([&body[..]]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ProviderService);
    assert_eq!(error.status, Some(503));
    assert_eq!(error.provider_code.as_deref(), Some("UNAVAILABLE"));
    assert_eq!(
        error.message,
        "The model is overloaded. Please try again later."
    );
}

#[test]
fn a_stream_event_that_is_not_json_is_a_provider_error() {
    let error = decode([&b"data: <html>oops</html>\n\n"[..]]).unwrap_err();
    assert_eq!(error.kind, ErrorKind::ProviderService, "{error}");
}
