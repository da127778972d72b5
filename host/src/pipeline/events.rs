//! A streamed answer as the caller sees it: canonical events, counted as they pass.

use std::{
    pin::Pin,
    task::{Context, Poll},
};

use futures_util::Stream;
use provider_sdk::StreamEvent;

use super::{attempts::Route, record::Recorder, DispatchError};
use crate::registry::Target;

/// The events of a stream before they are counted.
pub(super) type Inner = Pin<Box<dyn Stream<Item = Result<StreamEvent, DispatchError>> + Send>>;

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
            None => this.recorder.finish(false),
        }
        Poll::Ready(item)
    }
}
