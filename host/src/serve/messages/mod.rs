//! The Anthropic Messages ingress: `POST /v1/messages` (whole or SSE) and
//! `POST /v1/messages/count_tokens`. Translates between Anthropic's wire shapes and
//! the canonical call; every policy is the pipeline's.

mod error;
mod request;
mod response;
mod stream;

use std::{convert::Infallible, sync::Arc};

use axum::{
    body::Body,
    extract::{Extension, State},
    http::{HeaderMap, HeaderValue},
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use futures_util::{stream as futures_stream, StreamExt};
use provider_sdk::{Content, ContentPart, ErrorKind, Message, Protocol};
use serde_json::json;

use super::{annotate, auth::ClientName, ingress, relay, RequestId};
use crate::{
    pipeline::{Call, DispatchError, NativeBody, Streamed},
    Host,
};
pub use error::AnthropicError;
use request::{MessagesRequest, Translated};
use stream::EventWriter;

/// Client headers an Anthropic upstream gets as the client sent them.
const FORWARDED_HEADERS: [&str; 2] = ["anthropic-version", "anthropic-beta"];

/// `POST /v1/messages`.
pub async fn messages(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = ingress::caller(client, id, &headers);
    let request_id = caller.request_id.clone();
    let read = read(&host, body).await.and_then(|(request, bytes)| {
        let translated = request
            .into_canonical()
            .map_err(|e| AnthropicError::bad_request(e.to_string()))?;
        Ok((translated, bytes))
    });
    let (Translated { request, lost }, bytes) = match read {
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
            protocol: Protocol::AnthropicMessages,
            body: bytes,
            headers: forwarded(&headers),
            lost,
        }),
    };
    let mut response = answer(&host, call).await;
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

async fn answer(host: &Host, call: Call) -> Response {
    let id = ingress::unique_id("msg_");
    if !call.request.stream {
        return match host.complete(call).await {
            Ok(done) if done.native.is_some() => {
                let body = done.native.expect("checked");
                relay::whole(body, &done.route)
            }
            Ok(done) => {
                let model = done.target.to_string();
                let mut response =
                    Json(response::message(&id, &model, &done.response)).into_response();
                annotate(&mut response, &done.route);
                response
            }
            Err(error) => super::with_limit_headers(
                AnthropicError::from_dispatch(&error).into_response(),
                &error,
            ),
        };
    }
    let events = match host.stream(call).await {
        Ok(Streamed::Events(events)) => events,
        Ok(Streamed::Native(raw)) => {
            return relay::streamed(raw, relay::unchanged, |error| {
                let error = AnthropicError::from_dispatch(error);
                let mut out = String::new();
                stream::EventWriter::error_event(error.kind, &error.message, &mut out);
                out
            })
        }
        // Known before the first byte: a real status, which Anthropic clients map to
        // the right exception and may retry.
        Err(error) => {
            return super::with_limit_headers(
                AnthropicError::from_dispatch(&error).into_response(),
                &error,
            )
        }
    };
    let route = events.route.clone();
    let mut writer = EventWriter::new(id, events.target.to_string());
    // Events decoded from one upstream read leave in one write.
    let body = events
        .map(Some)
        .chain(futures_stream::iter([None]))
        .ready_chunks(64)
        .map(move |items| {
            let mut out = String::new();
            for item in items {
                match item {
                    Some(Ok(event)) => writer.event(&event, &mut out),
                    Some(Err(error)) => {
                        let error = AnthropicError::from_dispatch(&error);
                        writer.error(error.kind, &error.message, &mut out);
                    }
                    None => writer.end(&mut out),
                }
            }
            Ok::<_, Infallible>(Bytes::from(out))
        })
        .filter(|piece| std::future::ready(!matches!(piece, Ok(bytes) if bytes.is_empty())));
    super::relay::event_stream(body, &route)
}

/// `POST /v1/messages/count_tokens`: the upstream's own count when the model's chain
/// has an Anthropic target (the body passed through, as for messages); otherwise an
/// estimate, about four characters a token (the rule of thumb for English text), marked
/// by the header `x-token-count: estimate`.
pub async fn count_tokens(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let bytes = match read_bytes(&host, body).await {
        Ok(bytes) => bytes,
        Err(error) => return error.into_response(),
    };
    let request = match count_request(&bytes) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let call = Call {
        request: request.clone(),
        caller: ingress::caller(client, id, &headers),
        native: Some(NativeBody {
            protocol: Protocol::AnthropicCountTokens,
            body: bytes,
            headers: forwarded(&headers),
            lost: vec!["the token count, which only an Anthropic upstream gives".to_owned()],
        }),
    };
    match host.forward(call).await {
        Ok((counted, route)) => relay::whole(counted, &route),
        Err(DispatchError::Unsupported { .. }) => estimate(&request),
        Err(error) => super::with_limit_headers(
            AnthropicError::from_dispatch(&error).into_response(),
            &error,
        ),
    }
}

/// The estimate for a request no target can count.
fn estimate(request: &provider_sdk::ChatRequest) -> Response {
    let mut chars = 0usize;
    for message in &request.messages {
        let text = |c: &Content| match c {
            Content::Text(t) => t.len(),
            Content::Parts(parts) => parts
                .iter()
                .map(|p| match p {
                    ContentPart::Text { text } => text.len(),
                    // An image costs on the order of a thousand tokens.
                    ContentPart::ImageUrl { .. } => 4_000,
                })
                .sum(),
        };
        chars += match message {
            Message::System { content, .. }
            | Message::Developer { content, .. }
            | Message::User { content, .. }
            | Message::Tool { content, .. } => text(content),
            Message::Assistant {
                content,
                tool_calls,
                ..
            } => {
                content.as_ref().map(text).unwrap_or(0)
                    + tool_calls
                        .iter()
                        .map(|c| c.function.name.len() + c.function.arguments.len())
                        .sum::<usize>()
            }
        };
    }
    chars += request
        .tools
        .iter()
        .map(|t| serde_json::to_string(t).map(|s| s.len()).unwrap_or(0))
        .sum::<usize>();
    let mut response = Json(json!({"input_tokens": chars.div_ceil(4)})).into_response();
    response
        .headers_mut()
        .insert("x-token-count", HeaderValue::from_static("estimate"));
    response
}

/// A count_tokens body (a Messages body without `max_tokens`) as a canonical request.
fn count_request(bytes: &[u8]) -> Result<provider_sdk::ChatRequest, AnthropicError> {
    let mut value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| AnthropicError::bad_request(format!("the body is not valid JSON: {e}")))?;
    if let Some(object) = value.as_object_mut() {
        object.entry("max_tokens").or_insert(json!(1));
    }
    let request: MessagesRequest = serde_path_to_error::deserialize(value)
        .map_err(|e| AnthropicError::bad_request(ingress::body_error(e)))?;
    request
        .into_canonical()
        .map(|translated| translated.request)
        .map_err(|e| AnthropicError::bad_request(e.to_string()))
}

/// The client headers an Anthropic upstream gets as the client sent them.
fn forwarded(headers: &HeaderMap) -> Vec<(String, String)> {
    FORWARDED_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            Some((name.to_string(), value.to_owned()))
        })
        .collect()
}

async fn read_bytes(host: &Host, body: Body) -> Result<Bytes, AnthropicError> {
    super::body::read(host, body)
        .await
        .map_err(|error| AnthropicError::new(error.status(), error.to_string()))
}

async fn read(host: &Host, body: Body) -> Result<(MessagesRequest, Bytes), AnthropicError> {
    let bytes = read_bytes(host, body).await?;
    let request: MessagesRequest = super::body::parse(&bytes, |bytes| {
        ingress::deserialize(bytes).map_err(|e| AnthropicError::bad_request(ingress::body_error(e)))
    })
    .await?;
    if request.model.is_empty() {
        return Err(AnthropicError::bad_request(
            "`model` is empty: name a `provider/model` or an alias",
        ));
    }
    if request.messages.is_empty() {
        return Err(AnthropicError::bad_request(
            "`messages` is empty: send at least one message",
        ));
    }
    Ok((request, bytes))
}
