//! `POST /v1/chat/completions`.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::{to_bytes, Body},
    extract::State,
    http::{header, HeaderValue},
    response::{
        sse::{Event, Sse},
        IntoResponse, Response,
    },
    Json,
};
use futures_util::{stream, StreamExt};
use provider_sdk::ChatRequest;

use super::{
    error::ApiError,
    wire::{ChunkWriter, Completion},
};
use crate::{dispatch::Route, Host};

/// Answers a chat completion, whole or as SSE.
pub async fn completions(State(host): State<Arc<Host>>, body: Body) -> Response {
    match answer(host, body).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn answer(host: Arc<Host>, body: Body) -> Result<Response, ApiError> {
    let limit = host.config().max_request_bytes;
    let bytes = to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::too_large(limit))?;
    let request = parse(&bytes)?;
    let id = completion_id();
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if !request.stream {
        let done = host
            .chat(request)
            .await
            .map_err(|e| ApiError::from_dispatch(&e))?;
        let model = done.target.to_string();
        let mut response =
            Json(Completion::new(&id, created, &model, &done.response)).into_response();
        annotate(&mut response, &done.route);
        return Ok(response);
    }
    let include_usage = request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let events = host
        .chat_stream(request)
        .await
        .map_err(|e| ApiError::from_dispatch(&e))?;
    let model = events.target.to_string();
    let route = events.route.clone();
    let mut writer = ChunkWriter::new(id, created, model.clone(), include_usage);
    let mut chunks = Vec::new();
    let sse = events
        .map(Some)
        .chain(stream::iter([None]))
        .flat_map(move |item| {
            chunks.clear();
            match item {
                Some(Ok(event)) => writer.event(&event, &mut chunks),
                // Mid-stream failure: the client gets an error event and the stream ends.
                Some(Err(error)) => chunks.push(
                    serde_json::to_string(&ApiError::from_dispatch(&error).body())
                        .expect("serializable"),
                ),
                None => writer.end(&mut chunks),
            }
            let out: Vec<Result<Event, Infallible>> = chunks
                .drain(..)
                .map(|c| Ok(Event::default().data(c)))
                .collect();
            stream::iter(out)
        });
    let sse = Sse::new(sse.chain(stream::once(async { Ok(Event::default().data("[DONE]")) })));
    let mut response = sse.into_response();
    annotate(&mut response, &route);
    Ok(response)
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
