//! Builders for conformance fixtures and tests: upstream answers as the wire carries
//! them, and the canonical stream events a decoder should produce from them.
//!
//! ```
//! use provider_kit::fixtures::{error, json, sse, text_stream};
//! use provider_sdk::{Conformance, ErrorKind, FinishReason};
//!
//! let conformance = Conformance {
//!     options: serde_json::json!({}),
//!     response: json(200, r#"{"text": "Hello"}"#),
//!     stream: sse(&[r#"{"delta": "Hello"}"#, "[DONE]"]),
//!     error: Some(error(json(429, r#"{"error": "slow down"}"#), ErrorKind::RateLimited)),
//! };
//! assert_eq!(conformance.stream.chunks[0], b"data: {\"delta\": \"Hello\"}\n\n");
//! assert_eq!(text_stream(Some("id-1"), Some("m"), &["Hel", "lo"], FinishReason::Stop).len(), 4);
//! ```

use provider_sdk::{
    CannedError, ErrorKind, FinishReason, LocalResponse, StreamEvent, ToolCall, Usage,
};

fn header(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

/// A JSON answer with `status`, in one piece.
pub fn json(status: u16, body: &str) -> LocalResponse {
    LocalResponse {
        status,
        headers: vec![header("content-type", "application/json")],
        chunks: vec![body.as_bytes().to_vec()],
        interval_ms: 0,
    }
}

/// A 200 `text/event-stream` answer of `data:` events, one piece per event.
pub fn sse(data: &[&str]) -> LocalResponse {
    sse_events(&data.iter().map(|d| (None, *d)).collect::<Vec<_>>())
}

/// A 200 `text/event-stream` answer of named events (`event:` then `data:`), one piece
/// per event; `None` names none.
pub fn sse_events(events: &[(Option<&str>, &str)]) -> LocalResponse {
    let chunks = events
        .iter()
        .map(|(event, data)| {
            let mut text = String::new();
            if let Some(event) = event {
                text.push_str(&format!("event: {event}\n"));
            }
            for line in data.split('\n') {
                text.push_str(&format!("data: {line}\n"));
            }
            text.push('\n');
            text.into_bytes()
        })
        .collect();
    LocalResponse {
        status: 200,
        headers: vec![header("content-type", "text/event-stream")],
        chunks,
        interval_ms: 0,
    }
}

/// A 200 `text/event-stream` answer from a whole SSE body (as a reference or a capture
/// shows it), cut after each event (`\n\n` or `\r\n\r\n`) as a network delivers it.
pub fn sse_body(body: &[u8]) -> LocalResponse {
    let mut chunks = Vec::new();
    let mut start = 0;
    for end in 1..=body.len() {
        if body[..end].ends_with(b"\n\n") || body[..end].ends_with(b"\r\n\r\n") {
            chunks.push(body[start..end].to_vec());
            start = end;
        }
    }
    if start < body.len() {
        chunks.push(body[start..].to_vec());
    }
    let mut response = sse(&[]);
    response.chunks = chunks;
    response
}

/// Adds a header to an answer (`retry-after`, ...).
pub fn with_header(mut response: LocalResponse, name: &str, value: &str) -> LocalResponse {
    response.headers.push(header(name, value));
    response
}

/// An error answer and the kind `classify_error` must give it.
pub fn error(response: LocalResponse, kind: ErrorKind) -> CannedError {
    CannedError { response, kind }
}

/// The events of a streamed text answer: `Start`, one `TextDelta` per piece, `Finish`.
pub fn text_stream(
    id: Option<&str>,
    model: Option<&str>,
    pieces: &[&str],
    reason: FinishReason,
) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::Start {
        id: id.map(str::to_owned),
        model: model.map(str::to_owned),
    }];
    events.extend(pieces.iter().map(|text| StreamEvent::TextDelta {
        text: (*text).to_owned(),
    }));
    events.push(StreamEvent::Finish { reason });
    events
}

/// The events of one streamed tool call: its start, then one delta per piece of its
/// arguments.
pub fn tool_call_stream(index: u32, call: &ToolCall, pieces: &[&str]) -> Vec<StreamEvent> {
    let mut events = vec![StreamEvent::ToolCallStart {
        index,
        id: call.id.clone(),
        name: call.function.name.clone(),
    }];
    events.extend(pieces.iter().map(|arguments| StreamEvent::ToolCallDelta {
        index,
        arguments: (*arguments).to_owned(),
    }));
    events
}

/// A `Usage` event with prompt and completion tokens.
pub fn usage(prompt_tokens: u64, completion_tokens: u64) -> StreamEvent {
    StreamEvent::Usage {
        usage: Usage {
            prompt_tokens,
            completion_tokens,
            ..Usage::default()
        },
    }
}
