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

/// The accepted keys, kept only as SHA-256 digests.
#[derive(Debug, Clone, Default)]
pub struct ClientKeys {
    digests: Vec<[u8; 32]>,
}

impl ClientKeys {
    /// Accepts `keys`; empty means no authentication.
    pub fn new<'a>(keys: impl IntoIterator<Item = &'a str>) -> Self {
        ClientKeys {
            digests: keys.into_iter().map(digest).collect(),
        }
    }

    /// Whether any key is required.
    pub fn enabled(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `presented` is one of the keys. Comparing fixed-size digests byte by
    /// byte without early exit leaks neither the keys nor their length.
    pub fn accepts(&self, presented: &str) -> bool {
        let presented = digest(presented);
        self.digests.iter().fold(false, |found, key| {
            let diff = key
                .iter()
                .zip(presented.iter())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            found | (diff == 0)
        })
    }
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Middleware: refuses requests without an accepted bearer key (the keys of the
/// current snapshot, so a reload that changes them applies at once).
pub async fn require_key(State(host): State<Arc<Host>>, request: Request, next: Next) -> Response {
    let snapshot = host.snapshot();
    let keys = &snapshot.client_keys;
    if !keys.enabled() {
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
    match presented {
        Some(key) if keys.accepts(key) => next.run(request).await,
        _ => ApiError::unauthorized().into_response(),
    }
}
