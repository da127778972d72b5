//! A streamed answer as the caller sees it: canonical events, counted as they pass.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use bytes::Bytes;
use futures_util::Stream;
use provider_sdk::StreamEvent;

use super::{attempts::Route, record::Recorder, DispatchError};
use crate::registry::Target;

/// The events of a stream before they are counted.
pub(super) type Inner = Pin<Box<dyn Stream<Item = Result<StreamEvent, DispatchError>> + Send>>;

/// The pieces of a native stream, each with the events decoded from it.
pub(super) type RawInner =
    Pin<Box<dyn Stream<Item = Result<(Bytes, Vec<StreamEvent>), DispatchError>> + Send>>;

/// A streamed answer: canonical events, or the upstream's own bytes when the target
/// speaks the caller's protocol.
pub enum Streamed {
    /// Canonical events, for the ingress to render in its protocol.
    Events(EventStream),
    /// The upstream's bytes, to relay as they arrive.
    Native(RawStream),
}

impl Streamed {
    /// Who answered and what it took to get the first event.
    pub fn route(&self) -> &Route {
        match self {
            Streamed::Events(s) => &s.route,
            Streamed::Native(s) => &s.route,
        }
    }
}

/// A streamed answer in the upstream's own bytes, relayed as they arrive while the
/// plugin's decoder reads them for usage and errors. A failure arrives as the last
/// item. Dropping it cancels the upstream request and counts the call as cancelled.
pub struct RawStream {
    /// The target that answers.
    pub target: Target,
    /// Who answered and what it took to get the first event.
    pub route: Route,
    pub(super) inner: RawInner,
    pub(super) recorder: Recorder,
}

impl Stream for RawStream {
    type Item = Result<Bytes, DispatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
            return Poll::Ready(match item {
                Some(Ok((bytes, events))) => {
                    for event in &events {
                        this.recorder.saw(event);
                    }
                    if bytes.is_empty() {
                        continue;
                    }
                    Some(Ok(bytes))
                }
                Some(Err(error)) => {
                    this.recorder.failed(&error);
                    Some(Err(error))
                }
                None => {
                    this.recorder.finish(false);
                    this.recorder.detach();
                    None
                }
            });
        }
    }
}

/// A streamed answer: canonical events as the upstream produces them. A failure after
/// the first event arrives as the last item. Dropping it cancels the upstream request
/// and counts the call as cancelled, with the usage seen so far.
pub struct EventStream {
    /// The target that answers.
    pub target: Target,
    /// Who answered and what it took to get the first event.
    pub route: Route,
    pub(super) inner: Inner,
    pub(super) recorder: Recorder,
}

impl Stream for EventStream {
    type Item = Result<StreamEvent, DispatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = std::task::ready!(this.inner.as_mut().poll_next(cx));
        match &item {
            Some(Ok(event)) => this.recorder.saw(event),
            Some(Err(error)) => this.recorder.failed(error),
            None => {
                this.recorder.finish(false);
                this.recorder.detach();
            }
        }
        Poll::Ready(item)
    }
}
