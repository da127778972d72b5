//! The OpenAI Responses ingress: `POST /v1/responses` (whole or SSE), and
//! `GET` / `DELETE /v1/responses/{id}` for stored answers. Translates between the
//! Responses shapes and the canonical call; `previous_response_id` continues a stored
//! conversation, expanded into what is sent, so any target can continue it.

mod request;
mod response;
mod stream;

use std::{
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    body::Body,
    extract::{Extension, Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use bytes::Bytes;
use futures_util::{stream as futures_stream, StreamExt};
use provider_sdk::{ChatResponse, Content, ErrorKind, Message};
use serde_json::{json, Value};

use super::{annotate, auth::ClientName, error::ApiError, RequestId};
use crate::{
    pipeline::{Call, Streamed},
    response_store::StoredResponse,
    Host,
};
use request::ResponsesRequest;
use response::{new_id, output_items, Head, Status};
use stream::EventWriter;

/// `POST /v1/responses`.
pub async fn create(
    State(host): State<Arc<Host>>,
    client: Option<Extension<ClientName>>,
    id: Option<Extension<RequestId>>,
    headers: axum::http::HeaderMap,
    body: Body,
) -> Response {
    let caller = super::ingress::caller(client, id, &headers);
    let prepared = prepare(&host, body).await;
    let (request, canonical, conversation) = match prepared {
        Ok(prepared) => prepared,
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
        request: canonical,
        caller,
        native: None,
    };
    match request.stream {
        false => whole(host, request, call, conversation).await,
        true => streamed(host, request, call, conversation).await,
    }
}

/// Reads, parses and translates the body, expanding `previous_response_id`.
async fn prepare(
    host: &Arc<Host>,
    body: Body,
) -> Result<(ResponsesRequest, provider_sdk::ChatRequest, Vec<Message>), ApiError> {
    let bytes = super::body::read(host, body)
        .await
        .map_err(|error| ApiError::from_body(&error))?;
    let request: ResponsesRequest = super::body::parse(&bytes, |bytes| {
        super::ingress::deserialize(bytes).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if inner.is_syntax() || inner.is_eof() {
                ApiError::bad_request(format!("the body is not valid JSON: {inner}"))
            } else {
                ApiError::bad_request(format!("invalid request at `{path}`: {inner}"))
            }
        })
    })
    .await?;
    if request.model.is_empty() {
        return Err(ApiError::bad_request(
            "`model` is empty: name a `provider/model` or an alias",
        ));
    }
    let history = match &request.previous_response_id {
        None => Vec::new(),
        Some(previous) => match load(host, previous).await? {
            Some(stored) => stored.conversation,
            None => {
                return Err(ApiError {
                    status: StatusCode::BAD_REQUEST,
                    kind: "invalid_request_error",
                    code: "previous_response_not_found",
                    param: Some("previous_response_id"),
                    message: format!(
                        "Previous response with id '{previous}' not found: it was never stored (store: false), expired, or was deleted"
                    ),
                })
            }
        },
    };
    let (canonical, conversation) = request
        .to_canonical(history)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if canonical.messages.is_empty() {
        return Err(ApiError::bad_request(
            "`input` is empty: send a string or at least one item",
        ));
    }
    Ok((request, canonical, conversation))
}

async fn whole(
    host: Arc<Host>,
    request: ResponsesRequest,
    call: Call,
    mut conversation: Vec<Message>,
) -> Response {
    let done = match host.complete(call).await {
        Ok(done) => done,
        Err(error) => {
            return super::with_limit_headers(
                ApiError::from_dispatch(&error).into_response(),
                &error,
            )
        }
    };
    let head = Head::new(new_id("resp"), now(), done.target.to_string(), &request);
    let status = Status::finished(Some(done.response.finish_reason));
    let output = output_items(&done.response, &status);
    let object = head.object(&status, &output, done.response.usage);
    if request.store() {
        conversation.push(assistant_message(&done.response));
        if let Err(error) = save(&host, &head.id, &object, conversation).await {
            return error.into_response();
        }
    }
    let mut response = Json(object).into_response();
    annotate(&mut response, &done.route);
    response
}

async fn streamed(
    host: Arc<Host>,
    request: ResponsesRequest,
    call: Call,
    conversation: Vec<Message>,
) -> Response {
    let events = match host.stream(call).await {
        Ok(Streamed::Events(events)) => events,
        Ok(Streamed::Native(_)) => unreachable!("a call without a native body is translated"),
        // Known before the first byte: a real status, which clients map to the right
        // exception.
        Err(error) => {
            return super::with_limit_headers(
                ApiError::from_dispatch(&error).into_response(),
                &error,
            )
        }
    };
    let route = events.route.clone();
    let head = Head::new(new_id("resp"), now(), events.target.to_string(), &request);
    let id = head.id.clone();
    let mut first = String::new();
    let writer = EventWriter::new(head, &mut first);
    let store = request.store();
    let state = Arc::new(std::sync::Mutex::new((writer, conversation)));
    let body = futures_stream::iter([Ok(Bytes::from(first))]).chain(
        events
            .map(Some)
            .chain(futures_stream::iter([None]))
            .ready_chunks(64)
            .then(move |items| {
                let (host, state, id) = (host.clone(), state.clone(), id.clone());
                async move {
                    let mut out = String::new();
                    let mut finished = None;
                    {
                        let mut guard = state.lock().unwrap_or_else(|e| e.into_inner());
                        let (writer, conversation) = &mut *guard;
                        for item in items {
                            match item {
                                Some(Ok(event)) => writer.event(&event, &mut out),
                                Some(Err(error)) => {
                                    let api = ApiError::from_dispatch(&error);
                                    writer.fail(api.code, &api.message, &mut out);
                                }
                                None => {
                                    let object = writer.end(&mut out);
                                    let mut conversation = std::mem::take(conversation);
                                    conversation.push(writer.assistant_message());
                                    finished = Some((object, conversation));
                                }
                            }
                        }
                    }
                    if let (true, Some((object, conversation))) = (store, finished) {
                        // Stored before the terminal event leaves, so a client that
                        // continues at once finds it.
                        if let Err(error) = save(&host, &id, &object, conversation).await {
                            tracing::warn!(error = %error.message, response = %id, "a streamed response could not be stored");
                        }
                    }
                    Ok::<_, std::convert::Infallible>(Bytes::from(out))
                }
            })
            .filter(|piece| std::future::ready(!matches!(piece, Ok(bytes) if bytes.is_empty()))),
    );
    super::relay::event_stream(body, &route)
}

/// `GET /v1/responses/{id}`.
pub async fn retrieve(State(host): State<Arc<Host>>, Path(id): Path<String>) -> Response {
    match load(&host, &id).await {
        Ok(Some(stored)) => Json(stored.response).into_response(),
        Ok(None) => not_found(&id).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `DELETE /v1/responses/{id}`.
pub async fn delete(State(host): State<Arc<Host>>, Path(id): Path<String>) -> Response {
    let forget = host.clone();
    let key = id.clone();
    match tokio::task::spawn_blocking(move || forget.responses().delete(&key)).await {
        Ok(Ok(true)) => {
            Json(json!({"id": id, "object": "response", "deleted": true})).into_response()
        }
        Ok(Ok(false)) => not_found(&id).into_response(),
        Ok(Err(error)) => store_error(error.to_string()).into_response(),
        Err(_) => store_error("the store task failed".to_owned()).into_response(),
    }
}

fn not_found(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "invalid_request_error",
        code: "response_not_found",
        param: None,
        message: format!("Response with id '{id}' not found: it was never stored (store: false), expired, or was deleted"),
    }
}

fn store_error(message: String) -> ApiError {
    ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        kind: "server_error",
        code: "response_store_unavailable",
        param: None,
        message,
    }
}

async fn load(host: &Arc<Host>, id: &str) -> Result<Option<StoredResponse>, ApiError> {
    let (host, id) = (host.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || host.responses().get(&id))
        .await
        .map_err(|_| store_error("the store task failed".to_owned()))?
        .map_err(|e| store_error(e.to_string()))
}

async fn save(
    host: &Arc<Host>,
    id: &str,
    object: &Value,
    conversation: Vec<Message>,
) -> Result<(), ApiError> {
    let stored = StoredResponse {
        id: id.to_owned(),
        created_at: crate::usage::now_unix(),
        response: object.clone(),
        conversation,
    };
    let host = host.clone();
    tokio::task::spawn_blocking(move || host.responses().put(&stored))
        .await
        .map_err(|_| store_error("the store task failed".to_owned()))?
        .map_err(|e| store_error(e.to_string()))
}

/// The canonical assistant turn of a whole answer, for a stored conversation.
fn assistant_message(response: &ChatResponse) -> Message {
    let m = &response.message;
    Message::Assistant {
        content: m.content.clone().map(Content::Text),
        reasoning_content: m.reasoning.clone(),
        reasoning_details: m.reasoning_details.clone(),
        tool_calls: m.tool_calls.clone(),
        refusal: m.refusal.clone(),
        name: None,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
