//! Client authentication: bearer keys from the config, compared in constant time.

use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use sha2::{Digest, Sha256};
use std::sync::Arc;

use super::error::ApiError;
use crate::Host;

/// The accepted keys, kept only as SHA-256 digests, with the name usage is counted under.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    keys: Vec<([u8; 32], String)>,
}

/// The client a request is counted under: a key's name, or `anonymous` when the
/// server takes no keys. Inserted into the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientName(pub String);

impl ClientKeys {
    /// Accepts `keys` (key, optional name); empty means no authentication.
    pub fn new<'a>(keys: impl IntoIterator<Item = (&'a str, Option<&'a str>)>) -> Self {
        ClientKeys {
            keys: keys
                .into_iter()
                .map(|(key, name)| {
                    let digest = digest(key);
                    let name = name
                        .map(str::to_owned)
                        .unwrap_or_else(|| format!("key-{}", crate::load::hex(&digest[..4])));
                    (digest, name)
                })
                .collect(),
        }
    }

    /// Whether any key is required.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The name of `presented` if it is one of the keys. Fixed-size digests are
    /// compared without early exit, leaking neither the keys nor their length.
    pub fn accepts(&self, presented: &str) -> Option<&str> {
        let presented = digest(presented);
        let mut found = None;
        for (key, name) in &self.keys {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 && found.is_none() {
                found = Some(name.as_str());
            }
        }
        found
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
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
    let presented = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    let name = presented
        .and_then(|key| keys.accepts(key))
        .map(str::to_owned);
    match name {
        Some(name) => {
            request.extensions_mut().insert(ClientName(name));
            next.run(request).await
        }
        None => ApiError::unauthorized().into_response(),
    }
}
