//! One attempt's I/O: the plugin builds the upstream request, the transport sends it,
//! the plugin reads the answer back, whole or as a stream of events.

use std::{collections::VecDeque, sync::Arc, time::Instant};

use futures_util::StreamExt;
use provider_sdk::{
    abi::load::PluginDecoder, ChatResponse, ErrorKind, Header, HttpResponse, ProviderError,
    StreamEvent,
};

use crate::{
    registry::ReadyProvider,
    transport::{self, BodyStream, Transport, UpstreamResponse, ERROR_BODY_CAP, RESPONSE_BODY_CAP},
};

/// Sends the request to its provider and returns the upstream response, failing on
/// a non-2xx status with the plugin's classification of it.
pub(super) async fn send(
    transport: &Transport,
    provider: &ReadyProvider,
    request_json: &str,
    deadline: Instant,
) -> Result<UpstreamResponse, ProviderError> {
    let outbound = provider.plugin.build_request_json(request_json)?;
    let response = transport.send(provider, outbound, deadline).await?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let (body, _) = transport::read_capped(response.body, ERROR_BODY_CAP).await?;
    let headers = header_views(&response.headers);
    Err(provider
        .plugin
        .classify_error(&HttpResponse::new(response.status, &headers, &body)))
}

/// Reads a whole answer (up to [`RESPONSE_BODY_CAP`]) and lets the plugin parse it.
pub(super) async fn read_answer(
    provider: &ReadyProvider,
    response: UpstreamResponse,
) -> Result<ChatResponse, ProviderError> {
    let (body, cut) = transport::read_capped(response.body, RESPONSE_BODY_CAP).await?;
    if cut {
        return Err(ProviderError::new(
            ErrorKind::ProviderService,
            format!("the upstream answer is larger than {RESPONSE_BODY_CAP} bytes"),
        ));
    }
    let headers = header_views(&response.headers);
    provider
        .plugin
        .parse_response(&HttpResponse::new(response.status, &headers, &body))
}

/// An upstream body run through the plugin's stream decoder, event by event.
pub(super) struct Decoding {
    /// The plugin version this stream started on, kept alive until it ends.
    provider: Arc<ReadyProvider>,
    body: BodyStream,
    decoder: PluginDecoder,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// Delivered after the events decoded before it.
    failure: Option<ProviderError>,
    done: bool,
}

impl Decoding {
    /// Starts decoding `response` with a fresh decoder of `provider`'s plugin.
    pub(super) fn start(
        provider: Arc<ReadyProvider>,
        response: UpstreamResponse,
    ) -> Result<Decoding, ProviderError> {
        let decoder = provider.plugin.stream_decoder()?;
        Ok(Decoding {
            provider,
            body: response.body,
            decoder,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            failure: None,
            done: false,
        })
    }

    /// Puts an event back in front, to be delivered next.
    pub(super) fn unread(&mut self, event: StreamEvent) {
        self.pending.push_front(event);
    }

    /// The next event, or the failure that ends the stream (key redacted).
    pub(super) async fn next(&mut self) -> Option<Result<StreamEvent, ProviderError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(failure) = self.failure.take() {
                return Some(Err(redact(failure, &self.provider)));
            }
            if self.done {
                return None;
            }
            let step = match self.body.next().await {
                Some(Ok(bytes)) => self.decoder.feed(&bytes, &mut self.scratch),
                Some(Err(e)) => Err(e),
                None => {
                    self.done = true;
                    self.decoder.finish(&mut self.scratch)
                }
            };
            self.pending.extend(self.scratch.drain(..));
            if let Err(error) = step {
                self.done = true;
                self.failure = Some(error);
            }
        }
    }
}

/// Upstreams sometimes quote the key they were sent (escaped in JSON, or in a URL);
/// it never goes further.
pub(super) fn redact(mut error: ProviderError, provider: &ReadyProvider) -> ProviderError {
    error.message = transport::redactor_for(provider).redact(&error.message);
    error
}

fn header_views(headers: &[(String, String)]) -> Vec<Header<'_>> {
    headers.iter().map(|(n, v)| Header::new(n, v)).collect()
}
