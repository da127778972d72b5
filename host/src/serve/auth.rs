//! Client authentication: bearer keys from the config, compared in constant time.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

use super::error::ApiError;
use crate::Host;

/// The client a request is counted under: a key's name, or `anonymous` when the
/// server takes no keys. Inserted into the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(pub String);

/// Middleware: refuses requests without an accepted bearer key (the keys of the
/// current snapshot, so a reload that changes them applies at once).
pub async fn require_key(
    State(host): State<Arc<Host>>,
    mut request: Request,
    next: Next,
) -> Response {
    let snapshot = host.snapshot();
    let keys = &snapshot.client_keys;
    if !keys.enabled() {
        request
            .extensions_mut()
            .insert(ClientName("anonymous".to_owned()));
        return next.run(request).await;
    }
    // OpenAI clients send `Authorization: Bearer`; Anthropic clients send `x-api-key`
    // (or, in newer SDKs and Claude Code's `ANTHROPIC_AUTH_TOKEN`, the bearer form).
    let headers = request.headers();
    let presented = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim);
    let name = presented
        .and_then(|key| keys.accepts(key))
        .map(str::to_owned);
    match name {
        Some(name) => {
            request.extensions_mut().insert(ClientName(name));
            next.run(request).await
        }
        None if request.uri().path().starts_with("/v1/messages") => {
            super::messages::AnthropicError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing or invalid API key: send `x-api-key: <key>` or `Authorization: Bearer <key>` with a key from the host's config",
            )
            .into_response()
        }
        None => ApiError::unauthorized().into_response(),
    }
}
