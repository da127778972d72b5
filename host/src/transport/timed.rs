//! An upstream body with its idle and total timeouts.

use std::{
    future::Future,
    pin::Pin,
    task::{ready, Context, Poll},
    time::{Duration, Instant},
};

use bytes::Bytes;
use futures_util::Stream;
use provider_sdk::{ErrorKind, ProviderError};
use tokio::time::{Instant as Clock, Sleep};

/// A body that ends with a timeout error after a gap longer than `idle` between chunks,
/// or at `deadline`.
///
/// One timer per body, not one per chunk: a chunk only notes when it arrived, and the
/// timer, when it fires, checks whether the gap since then really reached `idle`,
/// setting itself again if not. A timer set and cancelled per chunk (two locked trips
/// to the timer wheel) was ~1% of the host's CPU per relayed stream.
pub(super) struct TimedBody<S> {
    body: Pin<Box<S>>,
    idle: Duration,
    deadline: Clock,
    /// When the last chunk arrived (or the body started).
    last: Clock,
    /// Due no later than the gap's real end; moved on when it fires early.
    timer: Pin<Box<Sleep>>,
    ended: bool,
}

impl<S> TimedBody<S> {
    /// `body`, timed from now.
    pub(super) fn new(body: S, idle: Duration, deadline: Instant) -> TimedBody<S> {
        // Tokio's clock, which tests can pause, for every reading.
        let deadline = Clock::from_std(deadline);
        let now = Clock::now();
        TimedBody {
            body: Box::pin(body),
            idle,
            deadline,
            last: now,
            timer: Box::pin(tokio::time::sleep_until(due(now, idle, deadline))),
            ended: false,
        }
    }

    fn timed_out(&mut self, now: Clock) -> ProviderError {
        self.ended = true;
        let message = if now >= self.deadline {
            "the request ran past its total timeout".to_owned()
        } else {
            format!(
                "the upstream sent nothing for {:.1}s mid-response",
                self.idle.as_secs_f64()
            )
        };
        ProviderError::new(ErrorKind::Timeout, message)
    }
}

/// When a gap that started at `from` ends the body: `idle` later, or at `deadline`.
fn due(from: Clock, idle: Duration, deadline: Clock) -> Clock {
    from.checked_add(idle)
        .map_or(deadline, |end| end.min(deadline))
}

impl<S, E> Stream for TimedBody<S>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<ProviderError>,
{
    type Item = Result<Bytes, ProviderError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.ended {
            return Poll::Ready(None);
        }
        match this.body.as_mut().poll_next(cx) {
            Poll::Ready(Some(Ok(bytes))) => {
                this.last = Clock::now();
                return Poll::Ready(Some(Ok(bytes)));
            }
            Poll::Ready(Some(Err(error))) => {
                this.ended = true;
                return Poll::Ready(Some(Err(error.into())));
            }
            Poll::Ready(None) => {
                this.ended = true;
                return Poll::Ready(None);
            }
            Poll::Pending => {}
        }
        loop {
            ready!(this.timer.as_mut().poll(cx));
            let now = Clock::now();
            let due = due(this.last, this.idle, this.deadline);
            if now >= due {
                return Poll::Ready(Some(Err(this.timed_out(now))));
            }
            this.timer.as_mut().reset(due);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    /// Chunks `gap` apart, then silence.
    fn chunks(gap: Duration, count: usize) -> impl Stream<Item = Result<Bytes, ProviderError>> {
        futures_util::stream::iter(0..count)
            .then(move |i| async move {
                tokio::time::sleep(gap).await;
                Ok(Bytes::from(i.to_string()))
            })
            .chain(futures_util::stream::pending())
    }

    #[tokio::test(start_paused = true)]
    async fn chunks_that_keep_coming_outlast_the_idle_timeout_then_a_gap_ends_the_body() {
        let far = Instant::now() + Duration::from_secs(3600);
        let idle = Duration::from_secs(10);
        let mut body = TimedBody::new(chunks(Duration::from_secs(4), 6), idle, far);
        for i in 0..6 {
            let chunk = body.next().await.unwrap().unwrap();
            assert_eq!(chunk, i.to_string(), "24 s of chunks 4 s apart, idle 10 s");
        }
        let started = tokio::time::Instant::now();
        let error = body.next().await.unwrap().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout);
        assert!(
            error.message.contains("sent nothing for 10.0s"),
            "{error:?}"
        );
        let waited = started.elapsed();
        assert!(
            waited >= idle && waited < idle + Duration::from_millis(10),
            "from the last chunk, not the first: {waited:?}"
        );
        assert!(body.next().await.is_none(), "ended");
    }

    #[tokio::test(start_paused = true)]
    async fn the_total_deadline_ends_a_body_that_never_pauses_long() {
        let deadline = Instant::now() + Duration::from_secs(9);
        let mut body = TimedBody::new(
            chunks(Duration::from_secs(2), 100),
            Duration::from_secs(5),
            deadline,
        );
        let mut seen = 0;
        let error = loop {
            match body.next().await.unwrap() {
                Ok(_) => seen += 1,
                Err(error) => break error,
            }
        };
        assert_eq!(seen, 4, "chunks at 2, 4, 6 and 8 s");
        assert!(error.message.contains("total timeout"), "{error:?}");
    }
}
