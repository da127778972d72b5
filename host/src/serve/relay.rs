//! Answers in the upstream's own bytes, for a client whose protocol the target speaks
//! natively (exact passthrough): relayed as they arrive, with a protocol error event
//! appended if the stream fails after it began.

use std::convert::Infallible;

use axum::{
    body::Body,
    http::{header, HeaderValue},
    response::Response,
};
use bytes::{Bytes, BytesMut};
use futures_util::{stream, StreamExt};

use super::annotate;
use crate::pipeline::{DispatchError, RawStream, Route};

/// A whole answer as the upstream sent it.
pub fn whole(body: Bytes, route: &Route) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    annotate(&mut response, route);
    response
}

/// A stream as the upstream sends it, event by whole event (each run of whole events
/// through `events`, which may drop some); a failure after it began ends it with the
/// client protocol's error event, which `error_event` renders.
pub fn streamed(
    raw: RawStream,
    mut events: impl FnMut(Bytes) -> Bytes + Send + 'static,
    error_event: impl Fn(&DispatchError) -> String + Send + 'static,
) -> Response {
    let route = raw.route.clone();
    let mut framer = SseFramer::default();
    let body = raw
        .map(Some)
        .chain(stream::iter([None]))
        .filter_map(move |item| {
            let piece = match item {
                Some(Ok(bytes)) => framer.push(bytes).map(&mut events),
                // A cut event is never shown: the error event follows whole events.
                Some(Err(error)) => {
                    framer.discard();
                    Some(Bytes::from(error_event(&error)))
                }
                None => framer.rest().map(&mut events),
            };
            let piece = piece.filter(|p| !p.is_empty());
            std::future::ready(piece.map(Ok::<_, Infallible>))
        });
    event_stream(body, &route)
}

/// Whole events as they are.
pub fn unchanged(events: Bytes) -> Bytes {
    events
}

/// Whole events without those whose data contains `needle` (a cheap byte search: the
/// common case copies nothing).
pub fn without_events_containing(events: Bytes, needles: &[&[u8]]) -> Bytes {
    let found = |event: &[u8]| {
        needles
            .iter()
            .any(|n| memchr::memmem::find(event, n).is_some())
    };
    if !found(&events) {
        return events;
    }
    let mut kept = BytesMut::with_capacity(events.len());
    let mut rest: &[u8] = &events;
    while !rest.is_empty() {
        let end = memchr::memmem::find(rest, b"\n\n")
            .map(|i| i + 2)
            .unwrap_or(rest.len());
        let (event, tail) = rest.split_at(end);
        if !found(event) {
            kept.extend_from_slice(event);
        }
        rest = tail;
    }
    kept.freeze()
}

/// A server-sent-event response with `body`, saying who answered (every ingress's
/// streams, relayed or rendered, leave through here).
pub fn event_stream(
    body: impl futures_util::Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
    route: &Route,
) -> Response {
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    annotate(&mut response, route);
    response
}

/// Holds back the part of a server-sent-event stream after its last complete event, so
/// that what reaches the client always ends at an event boundary.
#[derive(Default)]
struct SseFramer {
    held: BytesMut,
}

impl SseFramer {
    /// The complete events `bytes` finishes, if any. A piece that holds whole events
    /// only (the common case: upstreams write an event at a time) passes uncopied.
    fn push(&mut self, bytes: Bytes) -> Option<Bytes> {
        if self.held.is_empty() {
            let Some(end) = last_boundary(&bytes) else {
                self.held.extend_from_slice(&bytes);
                return None;
            };
            self.held.extend_from_slice(&bytes[end..]);
            return Some(bytes.slice(..end));
        }
        self.held.extend_from_slice(&bytes);
        let end = last_boundary(&self.held)?;
        Some(self.held.split_to(end).freeze())
    }

    /// What is held at a clean end of the stream (a last event without its blank line).
    fn rest(&mut self) -> Option<Bytes> {
        (!self.held.is_empty()).then(|| self.held.split().freeze())
    }

    fn discard(&mut self) {
        self.held.clear();
    }
}

/// The end of the last blank line (`\n\n` or `\n\r\n`) in `bytes`.
fn last_boundary(bytes: &[u8]) -> Option<usize> {
    let mut i = bytes.len();
    while i >= 2 {
        if bytes[i - 1] == b'\n' {
            if bytes[i - 2] == b'\n' {
                return Some(i);
            }
            if i >= 3 && bytes[i - 2] == b'\r' && bytes[i - 3] == b'\n' {
                return Some(i);
            }
        }
        i -= 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_containing_a_needle_are_dropped_and_the_others_kept_whole() {
        let events = Bytes::from_static(
            b"data: {\"choices\":[{}]}\n\ndata: {\"choices\":[],\"usage\":{}}\n\ndata: [DONE]\n\n",
        );
        let kept = without_events_containing(events, &[b"\"choices\":[]"]);
        assert_eq!(
            kept,
            Bytes::from_static(b"data: {\"choices\":[{}]}\n\ndata: [DONE]\n\n")
        );
    }

    #[test]
    fn only_whole_events_pass_and_a_cut_one_waits_for_its_end() {
        let mut framer = SseFramer::default();
        let mut push = |piece: &'static [u8]| framer.push(Bytes::from_static(piece));
        assert_eq!(
            push(b"data: {\"a\":1}\n\ndata: {\"b\""),
            Some(Bytes::from_static(b"data: {\"a\":1}\n\n"))
        );
        assert_eq!(push(b":2}"), None);
        assert_eq!(
            push(b"\r\n\r\n"),
            Some(Bytes::from_static(b"data: {\"b\":2}\r\n\r\n"))
        );
        let whole: &[u8] = b"data: {\"c\":3}\n\n";
        let passed = push(whole).unwrap();
        assert_eq!(
            passed.as_ptr(),
            whole.as_ptr(),
            "whole events pass uncopied"
        );
        assert_eq!(push(b"data: [DONE]\n"), None);
        assert_eq!(framer.rest(), Some(Bytes::from_static(b"data: [DONE]\n")));
        assert_eq!(framer.rest(), None);
    }
}
