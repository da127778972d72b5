//! `POST /v1/chat/completions`.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use axum::{
    body::{to_bytes, Body},
    extract::{Extension, State},
    http::{header, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use provider_sdk::{ChatRequest, ErrorKind, StreamEvent, Usage};

use super::{auth::ClientName, RequestId};
use super::{
    error::ApiError,
    wire::{ChunkWriter, Completion},
};
use crate::{
    dispatch::{DispatchError, Route},
    usage::UsageRecord,
    Host,
};

/// Answers a chat completion, whole or as SSE, and counts it.
pub async fn completions(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    body: Body,
) -> Response {
    let client = client
        .map(|c| c.0 .0)
        .unwrap_or_else(|| "anonymous".to_owned());
    let id = id.map(|i| i.0 .0).unwrap_or_default();
    let mut recorder = Recorder::new(host.clone(), id, client);
    match answer(host, body, &mut recorder).await {
        Ok(response) => response,
        Err(error) => {
            recorder.status = error.status.as_u16();
            recorder.finish(false);
            error.into_response()
        }
    }
}

async fn answer(
    host: Arc<Host>,
    body: Body,
    recorder: &mut Recorder,
) -> Result<Response, ApiError> {
    let config = host.config();
    let limit = config.max_request_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let request = parse(&bytes)?;
    recorder.stream = request.stream;
    if let Err(spent) = host.usage().check_client(&recorder.client, &config.budgets) {
        recorder.error_kind = Some(ErrorKind::QuotaExceeded);
        return Err(ApiError::budget(&spent.to_string()));
    }
    let id = completion_id();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if !request.stream {
        let done = host.chat(request).await.map_err(|e| recorder.failed(&e))?;
        let model = done.target.to_string();
        let mut response =
            Json(Completion::new(&id, created, &model, &done.response)).into_response();
        annotate(&mut response, &done.route);
        recorder.usage = done.response.usage;
        recorder.route = Some(done.route);
        recorder.finish(false);
        return Ok(response);
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let events = host
        .chat_stream(request)
        .await
        .map_err(|e| recorder.failed(&e))?;
    let model = events.target.to_string();
    let route = events.route.clone();
    recorder.route = Some(route.clone());
    let mut recorder = recorder.take();
    let mut writer = ChunkWriter::new(id, created, model.clone(), include_usage);
    let mut chunks = Vec::new();
    // Events decoded from one upstream read are written to the client in one write:
    // a write per event costs more than the relay itself.
    let body = events
        .map(Some)
        .chain(stream::iter([None]))
        .ready_chunks(64)
        .map(move |items| {
            let mut out = String::new();
            for item in items {
                chunks.clear();
                let end = item.is_none();
                match item {
                    Some(Ok(event)) => {
                        recorder.saw(&event);
                        writer.event(&event, &mut chunks);
                    }
                    // Mid-stream failure: the client gets an error event and the stream ends.
                    Some(Err(error)) => {
                        let error = recorder.failed(&error);
                        chunks.push(serde_json::to_string(&error.body()).expect("serializable"));
                    }
                    None => {
                        writer.end(&mut chunks);
                        recorder.finish(false);
                    }
                }
                for chunk in chunks.drain(..) {
                    out.push_str("data: ");
                    out.push_str(&chunk);
                    out.push_str("\n\n");
                }
                if end {
                    out.push_str("data: [DONE]\n\n");
                }
            }
            Ok::<_, Infallible>(Bytes::from(out))
        })
        .filter(|piece| std::future::ready(!matches!(piece, Ok(bytes) if bytes.is_empty())));
    let mut response = Response::new(Body::from_stream(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    annotate(&mut response, &route);
    Ok(response)
}

/// Collects what one request did and counts it once: when it ends, or when the client
/// goes away (then it is marked cancelled, with the tokens seen so far).
struct Recorder {
    host: Arc<Host>,
    started: Instant,
    at: f64,
    request_id: String,
    client: String,
    stream: bool,
    route: Option<Route>,
    failed_target: Option<String>,
    failed_attempts: u32,
    status: u16,
    error_kind: Option<ErrorKind>,
    first_event: Option<Duration>,
    usage: Option<Usage>,
    done: bool,
}

impl Recorder {
    fn new(host: Arc<Host>, request_id: String, client: String) -> Recorder {
        Recorder {
            host,
            started: Instant::now(),
            at: crate::usage::now_unix(),
            request_id,
            client,
            stream: false,
            route: None,
            failed_target: None,
            failed_attempts: 0,
            status: 200,
            error_kind: None,
            first_event: None,
            usage: None,
            done: false,
        }
    }

    /// Moves the recording into a stream, leaving a finished husk behind.
    fn take(&mut self) -> Recorder {
        let mut husk = Recorder::new(self.host.clone(), String::new(), String::new());
        husk.done = true;
        std::mem::replace(self, husk)
    }

    fn saw(&mut self, event: &StreamEvent) {
        if self.first_event.is_none() {
            self.first_event = Some(self.started.elapsed());
        }
        if let StreamEvent::Usage { usage } = event {
            self.usage = Some(*usage);
        }
    }

    fn failed(&mut self, error: &DispatchError) -> ApiError {
        let api = ApiError::from_dispatch(error);
        if self.route.is_none() {
            self.status = api.status.as_u16();
        }
        self.error_kind = Some(error.kind());
        if let DispatchError::Provider {
            target, attempts, ..
        } = error
        {
            self.failed_target = Some(target.clone());
            if *attempts > 0 {
                self.failed_attempts = *attempts;
            }
        }
        api
    }

    fn finish(&mut self, cancelled: bool) {
        if std::mem::replace(&mut self.done, true) {
            return;
        }
        let latency = self.started.elapsed();
        let (provider, model) = match (&self.route, &self.failed_target) {
            (Some(route), _) => (
                Some(route.target.provider.clone()),
                Some(route.target.model.clone()),
            ),
            (None, Some(target)) => match target.split_once('/') {
                Some((p, m)) => (Some(p.to_owned()), Some(m.to_owned())),
                None => (None, None),
            },
            (None, None) => (None, None),
        };
        let config = self.host.config();
        let registry = self.host.registry();
        let cost = match (&provider, &model, &self.usage) {
            (Some(p), Some(m), Some(usage)) => {
                let manifest = registry.provider(p).and_then(|s| s.manifest.as_deref());
                crate::usage::cost::prices(&config.pricing, p, m, manifest)
                    .map(|price| crate::usage::cost::cost(price, usage))
            }
            _ => None,
        };
        let waited = self
            .route
            .as_ref()
            .map(|r| r.upstream_wait)
            .unwrap_or_default();
        let host_time = if self.stream {
            self.first_event.unwrap_or(latency)
        } else {
            latency
        };
        let record = UsageRecord {
            at: self.at,
            request_id: std::mem::take(&mut self.request_id),
            client: std::mem::take(&mut self.client),
            provider,
            model,
            fallback_index: self.route.as_ref().map(|r| r.fallback_index),
            attempts: self
                .route
                .as_ref()
                .map(|r| r.attempts)
                .unwrap_or(self.failed_attempts),
            status: self.status,
            error_kind: self.error_kind,
            stream: self.stream,
            cancelled,
            latency_ms: latency.as_secs_f64() * 1000.0,
            ttft_ms: self.first_event.map(|d| d.as_secs_f64() * 1000.0),
            overhead_ms: host_time.saturating_sub(waited).as_secs_f64() * 1000.0,
            usage: self.usage,
            cost_usd: cost,
        };
        // Debug, not info: at thousands of requests a second an access line per request
        // costs more than the request; usage and metrics already count every one.
        tracing::debug!(
            request_id = %record.request_id,
            client = %record.client,
            provider = record.provider.as_deref().unwrap_or("-"),
            model = record.model.as_deref().unwrap_or("-"),
            status = record.status,
            error = record.error_kind.map(|k| k.as_str()).unwrap_or("-"),
            attempts = record.attempts,
            latency_ms = record.latency_ms,
            prompt_tokens = record.usage.map(|u| u.prompt_tokens),
            completion_tokens = record.usage.map(|u| u.completion_tokens),
            cost_usd = record.cost_usd,
            cancelled,
            "request"
        );
        self.host.record(record);
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.finish(true);
    }
}

fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let mut json = serde_json::Deserializer::from_slice(bytes);
    let request: ChatRequest = serde_path_to_error::deserialize(&mut json).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
        } else if path == "." {
            ApiError::bad_request(format!("invalid request: {inner}"))
        } else {
            ApiError::bad_request(format!("invalid request at `{path}`: {inner}"))
        }
    })?;
    if request.model.is_empty() {
        return Err(ApiError::bad_request(
            "`model` is empty: name a `provider/model` or an alias",
        ));
    }
    if request.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`messages` is empty: send at least one message",
        ));
    }
    if request.n.is_some_and(|n| n != 1) {
        return Err(ApiError::bad_request("only `n: 1` is supported"));
    }
    Ok(request)
}

/// Tells the client which provider and model answered, which target of the fallback
/// chain that was, and how many attempts it took.
fn annotate(response: &mut Response, route: &Route) {
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&route.target.provider) {
        headers.insert("x-provider", v);
    }
    if let Ok(v) = HeaderValue::from_str(&route.target.model) {
        headers.insert("x-model", v);
    }
    headers.insert("x-fallback-index", HeaderValue::from(route.fallback_index));
    headers.insert("x-attempts", HeaderValue::from(route.attempts));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
}

/// A unique id for a completion: time and a process-wide counter.
fn completion_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    format!(
        "chatcmpl-{nanos:x}{:06x}",
        NEXT.fetch_add(1, Ordering::Relaxed) & 0xff_ffff
    )
}
