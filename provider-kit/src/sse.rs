//! One decoder for every upstream whose stream is JSON over Server-Sent Events.
//!
//! [`JsonSseDecoder`] does what such decoders all need: SSE framing (bytes split
//! anywhere), skipping empty events, the protocol's `data:` terminator (`[DONE]`),
//! JSON parsing, error events, a body cut inside an event, and a failure that stays
//! failed. A provider implements [`JsonEvents`] for what is its own: turning one
//! event's JSON into canonical events, and deciding at the end whether the stream was
//! whole.
//!
//! ```
//! use provider_kit::sse::{JsonEvents, JsonSseDecoder};
//! use provider_sdk::{serde_json::Value, FinishReason, ProviderError, StreamDecoder, StreamEvent};
//!
//! /// `data: {"text": "..."}` events, then `data: [DONE]`.
//! #[derive(Default)]
//! struct Texts;
//!
//! impl JsonEvents for Texts {
//!     const UPSTREAM: &'static str = "Example";
//!     const DONE: Option<&'static str> = Some("[DONE]");
//!     fn event(&mut self, _name: Option<&str>, data: Value, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
//!         out.push(StreamEvent::TextDelta { text: data["text"].as_str().unwrap_or_default().to_owned() });
//!         Ok(())
//!     }
//!     fn end(&mut self, done: bool, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
//!         if !done {
//!             return Err(Self::cut("before [DONE]"));
//!         }
//!         out.push(StreamEvent::Finish { reason: FinishReason::Stop });
//!         Ok(())
//!     }
//! }
//!
//! let mut decoder = JsonSseDecoder::<Texts>::default();
//! let mut events = Vec::new();
//! decoder.feed(b"data: {\"text\": \"Hi\"}\n\ndata: [DO", &mut events).unwrap();
//! decoder.feed(b"NE]\n\n", &mut events).unwrap();
//! assert!(decoder.is_complete());
//! decoder.finish(&mut events).unwrap();
//! assert_eq!(events.len(), 2);
//! ```

use provider_sdk::{
    serde_json::{self, Value},
    sse::{SseEvent, SseParser},
    ErrorKind, ProviderError, StreamDecoder, StreamEvent,
};

/// What one JSON-over-SSE protocol does with its events; see the module docs.
pub trait JsonEvents: Default + Send + 'static {
    /// Who sends the stream, for error messages (`Anthropic`, `Gemini`).
    const UPSTREAM: &'static str;

    /// The `data:` text that ends the stream (OpenAI's `[DONE]`), if there is one.
    const DONE: Option<&'static str> = None;

    /// Translates one event's JSON; `name` is its `event:` field.
    fn event(
        &mut self,
        name: Option<&str>,
        data: Value,
        out: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError>;

    /// The body ended and every event was translated; `done` says whether [`Self::DONE`]
    /// arrived or [`Self::is_complete`] holds. Flush what is pending, or fail if the
    /// stream was cut (see [`Self::cut`]). By default a stream must be done.
    fn end(&mut self, done: bool, out: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let _ = out;
        match done {
            true => Ok(()),
            false => Err(Self::cut("before its last event")),
        }
    }

    /// The terminator arrived: flush what waits for it. Nothing by default.
    fn on_done(&mut self, out: &mut Vec<StreamEvent>) {
        let _ = out;
    }

    /// Whether the protocol's own last event arrived (Anthropic's `message_stop`):
    /// later events are ignored and the host stops reading. `false` by default.
    fn is_complete(&self) -> bool {
        false
    }

    /// The error an event carries, if it is one. By default an `event: error`, or a
    /// body with a non-null `error` member, is classified with
    /// [`ProviderError::from_http`] as if it had come as a 500 (or as the status its
    /// numeric `code` names).
    fn error_event(&self, name: Option<&str>, data: &Value) -> Option<ProviderError> {
        let error = data.get("error").filter(|e| !e.is_null());
        if error.is_none() && name != Some("error") {
            return None;
        }
        Some(error_from_json(Self::UPSTREAM, error.unwrap_or(data)))
    }

    /// An `event: error` whose data is not JSON.
    fn error_text(&self, text: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::ProviderService,
            format!("{} reported an error mid-stream: {text}", Self::UPSTREAM),
        )
    }

    /// An event whose data is not JSON (or not what the protocol promises).
    fn malformed(&self, detail: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::ProviderService,
            format!(
                "{} sent a stream event that is not JSON: {detail}",
                Self::UPSTREAM
            ),
        )
    }

    /// The stream was cut `where_` (`before message_stop`, `inside an event: ...`): a
    /// `connection` error, which the host may retry.
    fn cut(where_: &str) -> ProviderError {
        ProviderError::new(
            ErrorKind::Connection,
            format!("the {} stream was cut {where_}", Self::UPSTREAM),
        )
    }
}

/// Classifies an error object sent inside a stream: its numeric `code` (or `status`)
/// stands for the HTTP status when it is one, else 500.
pub fn error_from_json(upstream: &str, error: &Value) -> ProviderError {
    let status = ["code", "status"]
        .iter()
        .filter_map(|k| error.get(*k).and_then(Value::as_u64))
        .find(|n| (400..600).contains(n))
        .map(|n| n as u16);
    let body = serde_json::to_vec(&serde_json::json!({ "error": error })).unwrap_or_default();
    let mut classified = ProviderError::from_http(&provider_sdk::HttpResponse::new(
        status.unwrap_or(500),
        &[],
        &body,
    ));
    classified.status = status;
    if classified.message.is_empty() || classified.message == "{}" {
        classified.message = format!("{upstream} reported an error mid-stream");
    }
    classified
}

/// A [`StreamDecoder`] for a JSON-over-SSE protocol `E`; see the module docs.
#[derive(Default)]
pub struct JsonSseDecoder<E> {
    sse: SseParser,
    state: State<E>,
}

#[derive(Default)]
struct State<E> {
    events: E,
    /// The terminator arrived; later events are ignored.
    done: bool,
    /// The body has ended: what the SSE parser still held is being flushed.
    ending: bool,
    /// The stream failed; every later call returns this.
    failed: Option<ProviderError>,
}

impl<E: JsonEvents> JsonSseDecoder<E> {
    /// A decoder over `events`' state.
    pub fn new(events: E) -> Self {
        JsonSseDecoder {
            sse: SseParser::new(),
            state: State {
                events,
                done: false,
                ending: false,
                failed: None,
            },
        }
    }

    /// The protocol state, for tests.
    pub fn events(&self) -> &E {
        &self.state.events
    }
}

impl<E: JsonEvents> State<E> {
    fn on_event(&mut self, event: SseEvent, out: &mut Vec<StreamEvent>) {
        if self.failed.is_some() || self.done || self.events.is_complete() {
            return;
        }
        let data = event.data.trim();
        if data.is_empty() {
            return;
        }
        if E::DONE == Some(data) {
            self.done = true;
            self.events.on_done(out);
            return;
        }
        let name = event.event.as_deref();
        let value: Value = match serde_json::from_str(data) {
            Ok(value) => value,
            Err(_) if name == Some("error") => {
                self.failed = Some(self.events.error_text(data));
                return;
            }
            Err(e) if self.ending => {
                self.failed = Some(E::cut(&format!("inside an event: {e}")));
                return;
            }
            Err(e) => {
                self.failed = Some(self.events.malformed(&e.to_string()));
                return;
            }
        };
        if let Some(error) = self.events.error_event(name, &value) {
            self.failed = Some(error);
            return;
        }
        if let Err(error) = self.events.event(name, value, out) {
            self.failed = Some(error);
        }
    }

    fn result(&self) -> Result<(), ProviderError> {
        match &self.failed {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        }
    }
}

impl<E: JsonEvents> StreamDecoder for JsonSseDecoder<E> {
    fn feed(&mut self, bytes: &[u8], events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        self.state.result()?;
        let state = &mut self.state;
        self.sse.feed(bytes, |event| state.on_event(event, events));
        self.state.result()
    }

    fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        self.state.result()?;
        let state = &mut self.state;
        state.ending = true;
        self.sse.finish(|event| state.on_event(event, events));
        self.state.result()?;
        let done = self.state.done || self.state.events.is_complete();
        let ended = self.state.events.end(done, events);
        if let Err(error) = &ended {
            self.state.failed = Some(error.clone());
        }
        ended
    }

    fn is_complete(&self) -> bool {
        (self.state.done || self.state.events.is_complete()) && self.state.failed.is_none()
    }
}
