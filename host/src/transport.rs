//! Executes what a provider asked for and hands back the upstream's status, headers
//! and body as a stream of byte chunks.
//!
//! `Outbound::Local` answers are replayed chunk by chunk with the pauses the plugin
//! asked for, so a local provider travels the same decode path as a remote one.

use std::{pin::Pin, time::Duration};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt};
use provider_sdk::{ErrorKind, LocalResponse, Outbound, ProviderError};

use crate::registry::ReadyProvider;

/// An upstream body, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// The most of an upstream error body that is read; the rest is dropped.
pub const ERROR_BODY_CAP: usize = 64 * 1024;

/// The most of a successful non-streamed body that is read.
pub const RESPONSE_BODY_CAP: usize = 32 * 1024 * 1024;

/// An upstream response whose body has not been read yet.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: BodyStream,
}

/// Performs `outbound` for `provider`.
pub async fn send(
    provider: &ReadyProvider,
    outbound: Outbound,
) -> Result<UpstreamResponse, ProviderError> {
    match outbound {
        Outbound::Local(local) => Ok(replay(local)),
        Outbound::Http(http) => Err(ProviderError::new(
            ErrorKind::Connection,
            format!(
                "provider `{}` asked for {} {}, but this build of the host has no HTTP transport",
                provider.name, http.method, http.url
            ),
        )),
    }
}

fn replay(local: LocalResponse) -> UpstreamResponse {
    let interval = Duration::from_millis(u64::from(local.interval_ms));
    let body =
        stream::iter(local.chunks.into_iter().enumerate()).then(move |(i, chunk)| async move {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Ok(Bytes::from(chunk))
        });
    UpstreamResponse {
        status: local.status,
        headers: local.headers,
        body: Box::pin(body),
    }
}

/// Reads a body up to `cap` bytes; what lies beyond is not read. The flag tells
/// whether the body was cut.
pub async fn read_capped(
    mut body: BodyStream,
    cap: usize,
) -> Result<(Vec<u8>, bool), ProviderError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}
