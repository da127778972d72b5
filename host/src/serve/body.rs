//! Reading a request body: at most `max_request_bytes`, within `server.body_timeout`.
//!
//! A body over the limit is not cut off mid-upload: the rest is read and discarded (up
//! to [`LINGER_BYTES`], for at most [`LINGER_TIME`]) before the 413 goes out, because
//! a server that answers and closes while the client is still sending makes the
//! client's kernel see a reset, and the client a broken pipe instead of the 413.

use std::time::Duration;

use axum::{body::Body, http::StatusCode};
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use tokio::time::Instant;

use crate::Host;

/// The most of an oversized body read and discarded before the 413 is sent.
pub const LINGER_BYTES: usize = 64 * 1024 * 1024;

/// The longest an oversized body is read and discarded before the 413 is sent.
pub const LINGER_TIME: Duration = Duration::from_secs(5);

/// Why a request body could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BodyError {
    /// The body is over `max_request_bytes`.
    #[error("the request body is larger than {limit} bytes (max_request_bytes)")]
    TooLarge {
        /// The limit.
        limit: usize,
    },
    /// The client took longer than `server.body_timeout` to send it.
    #[error("the request body did not arrive within {seconds}s (server.body_timeout)")]
    TimedOut {
        /// The timeout.
        seconds: f64,
    },
    /// The connection broke while the body was being read.
    #[error("the request body could not be read: {0}")]
    Broken(String),
}

impl BodyError {
    /// The status the client gets.
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Broken(_) => StatusCode::BAD_REQUEST,
        }
    }
}

/// Reads `body` whole, within the host's limits.
pub async fn read(host: &Host, body: Body) -> Result<Bytes, BodyError> {
    let config = host.config();
    let (limit, seconds) = (config.max_request_bytes, config.server.body_timeout);
    let deadline = Instant::now() + Duration::from_secs_f64(seconds);
    let mut chunks = body.into_data_stream();
    let mut read = BytesMut::new();
    loop {
        let next = tokio::time::timeout_at(deadline, chunks.next()).await;
        let chunk = match next {
            Err(_) => return Err(BodyError::TimedOut { seconds }),
            Ok(None) => return Ok(read.freeze()),
            Ok(Some(Err(error))) => return Err(BodyError::Broken(error.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        if read.len() + chunk.len() > limit {
            drop(read);
            let linger = Instant::now() + LINGER_TIME;
            let mut discarded = chunk.len();
            while discarded < LINGER_BYTES {
                match tokio::time::timeout_at(linger, chunks.next()).await {
                    Ok(Some(Ok(more))) => discarded += more.len(),
                    _ => break,
                }
            }
            return Err(BodyError::TooLarge { limit });
        }
        read.extend_from_slice(&chunk);
    }
}

/// Runs `parse` on `bytes`: inline for a small body, on a blocking thread for one over
/// [`BUDGET_FREE_BYTES`], so that parsing megabytes does not hold up the async workers
/// that answer everyone else (health checks included).
pub async fn parse<T: Send + 'static>(bytes: &Bytes, parse: fn(&[u8]) -> T) -> T {
    if bytes.len() <= BUDGET_FREE_BYTES {
        return parse(bytes);
    }
    let bytes = bytes.clone();
    match tokio::task::spawn_blocking(move || parse(&bytes)).await {
        Ok(parsed) => parsed,
        // As if it had run inline: a parser's panic is the caller's.
        Err(error) => std::panic::resume_unwind(error.into_panic()),
    }
}

/// Requests this large or smaller skip the in-flight budget: they cannot add up to much.
pub const BUDGET_FREE_BYTES: usize = 64 * 1024;

/// Bytes of request bodies being worked on at once, in KiB, bounded by
/// `server.max_inflight_body_bytes` (read when the router is built).
#[derive(Debug, Clone)]
pub struct BodyBudget(std::sync::Arc<tokio::sync::Semaphore>);

impl BodyBudget {
    /// A budget of `bytes`.
    pub fn new(bytes: usize) -> BodyBudget {
        let kib = (bytes / 1024).clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        BodyBudget(std::sync::Arc::new(tokio::sync::Semaphore::new(kib)))
    }

    /// Reserves a request's share of the budget: a request over [`BUDGET_FREE_BYTES`]
    /// (by its `content-length`, or `max_request_bytes` when it sends none) waits for
    /// its share and holds it (the permit) until its response is ready, so large
    /// requests are worked on a few at a time however many arrive; one that waits past
    /// `server.body_timeout` gets a 503. Smaller ones pass at once, holding nothing.
    pub async fn reserve(
        &self,
        host: &Host,
        method: &axum::http::Method,
        headers: &axum::http::HeaderMap,
    ) -> Result<Option<tokio::sync::OwnedSemaphorePermit>, BudgetFull> {
        let config = host.config();
        let bodiless = matches!(
            *method,
            axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::DELETE
        );
        let size = headers
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
            .unwrap_or(if bodiless {
                0
            } else {
                config.max_request_bytes
            })
            .min(config.max_request_bytes);
        if size <= BUDGET_FREE_BYTES {
            return Ok(None);
        }
        let kib = u32::try_from(size.div_ceil(1024)).unwrap_or(u32::MAX);
        let wait = Duration::from_secs_f64(config.server.body_timeout);
        match tokio::time::timeout(wait, self.0.clone().acquire_many_owned(kib)).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            _ => {
                tracing::warn!(
                    bytes = size,
                    "request refused: large requests fill server.max_inflight_body_bytes"
                );
                Err(BudgetFull {
                    bytes: size,
                    waited: config.server.body_timeout,
                })
            }
        }
    }
}

/// A large request that waited past `server.body_timeout` for its share of the
/// in-flight budget: a 503 telling the client to retry.
#[derive(Debug)]
pub struct BudgetFull {
    /// The request's size as counted against the budget.
    pub bytes: usize,
    /// How long it waited, in seconds.
    pub waited: f64,
}

impl axum::response::IntoResponse for BudgetFull {
    fn into_response(self) -> axum::response::Response {
        super::error::ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            kind: "server_error",
            code: "server_busy",
            message: format!(
                "too many large requests at once (server.max_inflight_body_bytes); this one ({} bytes) waited {}s: retry later",
                self.bytes, self.waited
            ),
            param: None,
        }
        .into_response()
    }
}
