//! Client authentication: bearer keys from the config, compared in constant time.
//!
//! A browser cannot add a bearer header by itself, so a key is also taken as the
//! password of HTTP Basic authentication (any user name). `/console` and `/admin/*`
//! answer a missing or refused key with a Basic challenge, so a browser asks for it once
//! and then sends it with the console's own requests.

use std::borrow::Cow;

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
/// `ANTHROPIC_AUTH_TOKEN`, the bearer form); a browser sends `Authorization: Basic` with
/// the key as the password.
fn presented_key(headers: &axum::http::HeaderMap) -> Option<Cow<'_, str>> {
    let authorization = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let bearer = authorization.and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    if let Some(key) = bearer.or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok())) {
        return Some(Cow::Borrowed(key.trim()));
    }
    let basic = authorization.and_then(|v| {
        v.strip_prefix("Basic ")
            .or_else(|| v.strip_prefix("basic "))
    })?;
    basic_password(basic.trim()).map(Cow::Owned)
}

/// The password of HTTP Basic credentials (`base64(user:password)`).
fn basic_password(credentials: &str) -> Option<String> {
    use base64::Engine as _;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(credentials)
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (_user, password) = text.split_once(':')?;
    Some(password.trim().to_owned())
}

/// The challenge that makes a browser ask for the admin key (as a password).
pub const BASIC_CHALLENGE: &str = "Basic realm=\"provider-host console\", charset=\"UTF-8\"";

/// [`require_admin`] for the console's page: a refused key is a 401 with the Basic
/// challenge too (not a 403), so a browser asks again instead of showing an error.
pub async fn require_admin_page(
    State(host): State<Arc<Host>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = presented_key(request.headers()).is_some();
    let admin_keys = host.snapshot().admin_keys.enabled();
    let mut response = require_admin(State(host), request, next).await;
    if response.status() == axum::http::StatusCode::FORBIDDEN && presented && admin_keys {
        *response.status_mut() = axum::http::StatusCode::UNAUTHORIZED;
        challenge(&mut response);
    }
    response
}

fn challenge(response: &mut Response) {
    response.headers_mut().insert(
        axum::http::header::WWW_AUTHENTICATE,
        axum::http::HeaderValue::from_static(BASIC_CHALLENGE),
    );
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
/// A 401 carries the Basic challenge ([`BASIC_CHALLENGE`]), so a browser asks for the key.
pub async fn require_admin(
    State(host): State<Arc<Host>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = admit_admin(host, request, next).await;
    if response.status() == axum::http::StatusCode::UNAUTHORIZED {
        challenge(&mut response);
    }
    response
}

async fn admit_admin(host: Arc<Host>, mut request: Request, next: Next) -> Response {
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
        .as_deref()
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

/// Middleware: refuses requests without an accepted bearer key (see [`client_of`]).
pub async fn require_key(
    State(host): State<Arc<Host>>,
    mut request: Request,
    next: Next,
) -> Response {
    match client_of(&host, &request) {
        Ok(client) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(refused) => refused.into_response(),
    }
}

/// Who `request` comes from, by the key it presents: a key of the current snapshot
/// (so a reload that changes them applies at once), or `anonymous` when the server
/// takes no keys.
pub fn client_of(host: &Host, request: &Request) -> Result<ClientName, KeyRefused> {
    let snapshot = host.snapshot();
    let keys = &snapshot.client_keys;
    if !keys.enabled() {
        return Ok(ClientName("anonymous".to_owned()));
    }
    presented_key(request.headers())
        .as_deref()
        .and_then(|key| keys.accepts(key))
        .map(|name| ClientName(name.to_owned()))
        .ok_or(KeyRefused {
            anthropic: request.uri().path().starts_with("/v1/messages"),
        })
}

/// A request without an accepted key: a 401 in the protocol of its route (Anthropic's
/// error shape on `/v1/messages`, OpenAI's elsewhere).
#[derive(Debug)]
pub struct KeyRefused {
    anthropic: bool,
}

impl IntoResponse for KeyRefused {
    fn into_response(self) -> Response {
        if self.anthropic {
            super::messages::AnthropicError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing or invalid API key: send `x-api-key: <key>` or `Authorization: Bearer <key>` with a key from the host's config",
            )
            .into_response()
        } else {
            ApiError::unauthorized().into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_from_bearer_x_api_key_or_a_basic_password() {
        let key = |name: &str, value: &str| {
            let mut headers = axum::http::HeaderMap::new();
            headers.insert(
                axum::http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
            presented_key(&headers).map(|k| k.into_owned())
        };
        assert_eq!(key("authorization", "Bearer sk-1").as_deref(), Some("sk-1"));
        assert_eq!(key("x-api-key", "sk-2").as_deref(), Some("sk-2"));
        // base64("admin:sk-3:with-colon")
        assert_eq!(
            key("authorization", "Basic YWRtaW46c2stMzp3aXRoLWNvbG9u").as_deref(),
            Some("sk-3:with-colon")
        );
        assert_eq!(key("authorization", "Basic !!!"), None);
        assert_eq!(key("authorization", "Digest x"), None);
    }
}
