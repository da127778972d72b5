//! Where a request goes: model string → target → plugin → transport → plugin → answer.

use std::{
    collections::VecDeque,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use futures_util::{stream, Stream, StreamExt};
use provider_sdk::{
    abi::load::PluginDecoder, ChatRequest, ChatResponse, ErrorKind, Header, HttpResponse,
    ProviderError, StreamEvent,
};

use crate::{
    registry::{ReadyProvider, Registry, Target},
    transport::{self, BodyStream, Transport, UpstreamResponse, ERROR_BODY_CAP, RESPONSE_BODY_CAP},
};

/// Why a request was not answered. `Display` is one line for the client and the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DispatchError {
    /// No alias and no `provider/model` matches.
    #[error(
        "unknown model `{model}`: use `provider/model` with a configured provider, or an alias"
    )]
    UnknownModel {
        /// What the client asked for.
        model: String,
    },
    /// The model's providers exist but none serves right now.
    #[error("no provider can serve `{model}` right now: {}", reasons.join("; "))]
    NotReady {
        /// What the client asked for.
        model: String,
        /// Each target's provider and why it does not serve.
        reasons: Vec<String>,
    },
    /// The provider (or its upstream) failed.
    #[error("{target}: {error}")]
    Provider {
        /// The target that failed.
        target: String,
        /// What went wrong.
        error: ProviderError,
    },
}

impl DispatchError {
    /// The error's kind, which decides the status the client sees.
    pub fn kind(&self) -> ErrorKind {
        match self {
            DispatchError::UnknownModel { .. } => ErrorKind::ModelNotFound,
            DispatchError::NotReady { .. } => ErrorKind::ProviderService,
            DispatchError::Provider { error, .. } => error.kind,
        }
    }
}

/// A finished non-streamed answer and who gave it.
#[derive(Debug, Clone)]
pub struct Completion {
    /// The target that answered.
    pub target: Target,
    /// The answer.
    pub response: ChatResponse,
}

/// Picks the first target whose provider serves.
fn route(registry: &Registry, model: &str) -> Result<(Arc<ReadyProvider>, Target), DispatchError> {
    let targets = registry
        .targets(model)
        .ok_or_else(|| DispatchError::UnknownModel {
            model: model.to_owned(),
        })?;
    let mut reasons = Vec::new();
    for target in targets {
        match registry.provider(&target.provider) {
            Some(status) => match &status.ready {
                Some(ready) => return Ok((ready.clone(), target)),
                None => reasons.push(format!("{} {}", target.provider, status.state)),
            },
            None => reasons.push(format!("{} is not configured", target.provider)),
        }
    }
    Err(DispatchError::NotReady {
        model: model.to_owned(),
        reasons,
    })
}

/// Sends the request to its provider and returns the upstream response, failing on
/// a non-2xx status with the plugin's classification of it.
async fn call(
    transport: &Transport,
    provider: &ReadyProvider,
    target: &Target,
    mut request: ChatRequest,
) -> Result<UpstreamResponse, DispatchError> {
    let fail = |error: ProviderError| DispatchError::Provider {
        target: target.to_string(),
        error: redact(error, provider),
    };
    request.model.clone_from(&target.model);
    let outbound = provider.plugin.build_request(&request).map_err(fail)?;
    let response = transport.send(provider, outbound).await.map_err(fail)?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let (body, _) = transport::read_capped(response.body, ERROR_BODY_CAP)
        .await
        .map_err(fail)?;
    let headers = header_views(&response.headers);
    let error =
        provider
            .plugin
            .classify_error(&HttpResponse::new(response.status, &headers, &body));
    Err(fail(error))
}

/// Answers `request` (whose `model` is the client's model string) in one piece.
pub async fn chat(
    registry: &Registry,
    transport: &Transport,
    request: ChatRequest,
) -> Result<Completion, DispatchError> {
    let (provider, target) = route(registry, &request.model)?;
    let fail = |error: ProviderError| DispatchError::Provider {
        target: target.to_string(),
        error,
    };
    let response = call(
        transport,
        &provider,
        &target,
        ChatRequest {
            stream: false,
            ..request
        },
    )
    .await?;
    let (body, cut) = transport::read_capped(response.body, RESPONSE_BODY_CAP)
        .await
        .map_err(fail)?;
    if cut {
        return Err(fail(ProviderError::new(
            ErrorKind::ProviderService,
            format!("the upstream answer is larger than {RESPONSE_BODY_CAP} bytes"),
        )));
    }
    let headers = header_views(&response.headers);
    let parsed = provider
        .plugin
        .parse_response(&HttpResponse::new(response.status, &headers, &body))
        .map_err(fail)?;
    Ok(Completion {
        target,
        response: parsed,
    })
}

/// A streamed answer: canonical events as the upstream produces them. Dropping it
/// cancels the upstream request.
pub struct EventStream {
    /// The target that answers.
    pub target: Target,
    inner: Pin<Box<dyn Stream<Item = Result<StreamEvent, DispatchError>> + Send>>,
}

impl Stream for EventStream {
    type Item = Result<StreamEvent, DispatchError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Answers `request` as a stream. Routing, the upstream's status and its error come
/// back before the first event, so a caller can still fall back or answer with a
/// plain error.
pub async fn chat_stream(
    registry: &Registry,
    transport: &Transport,
    request: ChatRequest,
) -> Result<EventStream, DispatchError> {
    let (provider, target) = route(registry, &request.model)?;
    let response = call(
        transport,
        &provider,
        &target,
        ChatRequest {
            stream: true,
            ..request
        },
    )
    .await?;
    let decoder = provider
        .plugin
        .stream_decoder()
        .map_err(|error| DispatchError::Provider {
            target: target.to_string(),
            error,
        })?;
    let state = Decoding {
        provider,
        target: target.to_string(),
        body: response.body,
        decoder,
        pending: VecDeque::new(),
        scratch: Vec::new(),
        failure: None,
        done: false,
    };
    let inner = stream::unfold(state, |mut state| async move {
        let item = state.next().await?;
        Some((item, state))
    });
    Ok(EventStream {
        target,
        inner: Box::pin(inner),
    })
}

struct Decoding {
    /// The plugin version this stream started on, kept alive until it ends.
    provider: Arc<ReadyProvider>,
    target: String,
    body: BodyStream,
    decoder: PluginDecoder,
    pending: VecDeque<StreamEvent>,
    scratch: Vec<StreamEvent>,
    /// Delivered after the events decoded before it.
    failure: Option<DispatchError>,
    done: bool,
}

impl Decoding {
    async fn next(&mut self) -> Option<Result<StreamEvent, DispatchError>> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(Ok(event));
            }
            if let Some(failure) = self.failure.take() {
                return Some(Err(failure));
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
                self.failure = Some(DispatchError::Provider {
                    target: self.target.clone(),
                    error: redact(error, &self.provider),
                });
            }
        }
    }
}

/// Upstreams sometimes quote the key they were sent; it never goes further.
fn redact(mut error: ProviderError, provider: &ReadyProvider) -> ProviderError {
    if let Some(key) = &provider.api_key {
        if !key.expose().is_empty() && error.message.contains(key.expose()) {
            error.message = error.message.replace(key.expose(), "***");
        }
    }
    error
}

fn header_views(headers: &[(String, String)]) -> Vec<Header<'_>> {
    headers.iter().map(|(n, v)| Header::new(n, v)).collect()
}
