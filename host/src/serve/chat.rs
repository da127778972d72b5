//! `POST /v1/chat/completions`.

use std::{
    convert::Infallible,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Extension, State},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use futures_util::{stream, StreamExt};
use provider_sdk::{ChatRequest, ErrorKind, Protocol};

use super::{annotate, auth::ClientName, ingress, relay, RequestId};
use super::{
    error::ApiError,
    wire::{ChunkWriter, Completion},
};
use crate::{
    pipeline::{Call, DispatchError, NativeBody, Streamed},
    Host,
};

/// Answers a chat completion, whole or as SSE. The pipeline counts it.
pub async fn completions(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let caller = ingress::caller(client, id, &headers);
    let read = match super::body::read(&host, body).await {
        Err(error) => Err(ApiError::from_body(&error)),
        Ok(bytes) => super::body::parse(&bytes, parse)
            .await
            .map(|request| (request, bytes)),
    };
    let (request, bytes) = match read {
        Ok(read) => read,
        Err(error) => {
            host.refused(
                caller,
                false,
                error.status.as_u16(),
                ErrorKind::InvalidRequest,
            );
            return error.into_response();
        }
    };
    let call = Call {
        request,
        caller,
        native: Some(NativeBody {
            protocol: Protocol::OpenAiChat,
            body: bytes,
            headers: Vec::new(),
            lost: Vec::new(),
        }),
    };
    match answer(&host, call).await {
        Ok(response) => response,
        Err(error) => {
            super::with_limit_headers(ApiError::from_dispatch(&error).into_response(), &error)
        }
    }
}

async fn answer(host: &Host, call: Call) -> Result<Response, DispatchError> {
    let id = ingress::unique_id("chatcmpl-");
    let created = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if !call.request.stream {
        let done = host.complete(call).await?;
        if let Some(body) = done.native {
            return Ok(relay::whole(body, &done.route));
        }
        let model = done.target.to_string();
        let mut response =
            Json(Completion::new(&id, created, &model, &done.response)).into_response();
        annotate(&mut response, &done.route);
        return Ok(response);
    }
    let include_usage = call
        .request
        .stream_options
        .as_ref()
        .is_some_and(|o| o.include_usage);
    let events = match host.stream(call).await? {
        Streamed::Events(events) => events,
        Streamed::Native(raw) => {
            // The host asks a passed-through stream for its usage, to count it; a client
            // that did not ask does not get the usage-only chunk (`choices: []`), which
            // code reading `choices[0]` of every chunk would trip on.
            let events = move |events| match include_usage {
                true => relay::unchanged(events),
                false => relay::without_events_containing(
                    events,
                    &[b"\"choices\":[]", b"\"choices\": []"],
                ),
            };
            return Ok(relay::streamed(raw, events, |error| {
                let error = ApiError::from_dispatch(error);
                let body = serde_json::to_string(&error.body()).expect("serializable");
                format!("data: {body}\n\ndata: [DONE]\n\n")
            }));
        }
    };
    let model = events.target.to_string();
    let route = events.route.clone();
    let mut writer = ChunkWriter::new(id, created, model, include_usage);
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
                    Some(Ok(event)) => writer.event(&event, &mut chunks),
                    // Mid-stream failure: the client gets an error event and the stream ends.
                    Some(Err(error)) => {
                        let error = ApiError::from_dispatch(&error);
                        chunks.push(serde_json::to_string(&error.body()).expect("serializable"));
                    }
                    None => writer.end(&mut chunks),
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
    Ok(super::relay::event_stream(body, &route))
}

fn parse(bytes: &[u8]) -> Result<ChatRequest, ApiError> {
    let request: ChatRequest =
        ingress::deserialize(bytes).map_err(|e| ApiError::bad_request(ingress::body_error(e)))?;
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
