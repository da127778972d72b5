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

/// The key a request presents. OpenAI clients send `Authorization: Bearer`; Anthropic
/// clients send `x-api-key` (or, in newer SDKs and Claude Code's
/// `ANTHROPIC_AUTH_TOKEN`, the bearer form).
fn presented_key(headers: &axum::http::HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
}

/// Where the router is served, as [`super::serve`] declares it in each request's
/// extensions. An embedder that mounts [`super::router`] itself may insert it (with
/// `axum::Extension`); without it the listener counts as reachable from beyond
/// loopback, so admin endpoints need `auth.admin_keys`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listener {
    /// Whether the listening address is a loopback address.
    pub loopback: bool,
}

/// Middleware for `/admin/*`: with `auth.admin_keys` set, only an admin key opens them
/// (401 without a key, 403 with a client key). Without admin keys they answer only on
/// a loopback listener (behind client keys, when those are set) and are refused with a
/// 403 naming `auth.admin_keys` elsewhere, so no client key administers a shared host.
pub async fn require_admin(
    State(host): State<Arc<Host>>,
    mut request: Request,
    next: Next,
) -> Response {
    let snapshot = host.snapshot();
    let admins = &snapshot.admin_keys;
    if !admins.enabled() {
        let loopback = request
            .extensions()
            .get::<Listener>()
            .is_some_and(|l| l.loopback);
        if loopback {
            drop(snapshot);
            return require_key(State(host), request, next).await;
        }
        return ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "admin_disabled",
            param: None,
            message: "admin endpoints are off on a listener beyond loopback: set `auth.admin_keys` in the config and send one of them as `Authorization: Bearer <key>`".to_owned(),
        }
        .into_response();
    }
    let presented = presented_key(request.headers());
    let name = presented
        .and_then(|key| admins.accepts(key))
        .map(str::to_owned);
    match (name, presented) {
        (Some(name), _) => {
            request
                .extensions_mut()
                .insert(ClientName(format!("admin:{name}")));
            next.run(request).await
        }
        (None, None) => ApiError {
            status: axum::http::StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            code: "invalid_api_key",
            param: None,
            message: "admin endpoints need a key from `auth.admin_keys`: send `Authorization: Bearer <key>`".to_owned(),
        }
        .into_response(),
        (None, Some(_)) => ApiError {
            status: axum::http::StatusCode::FORBIDDEN,
            kind: "permission_error",
            code: "not_an_admin_key",
            param: None,
            message: "this key is not an admin key: admin endpoints take only keys from `auth.admin_keys`".to_owned(),
        }
        .into_response(),
    }
}

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
    let name = presented_key(request.headers())
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
