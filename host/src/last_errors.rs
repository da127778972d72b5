//! The last failed attempt of each provider, for `/admin/providers` and the console:
//! what is failing now, without reading logs.
//!
//! Written only when an attempt fails (a lock then, never on success), including an
//! attempt a fallback or retry recovered from; bounded by [`PROVIDERS`] names and
//! [`MESSAGE_CHARS`] of message. Messages are the redacted ones the logs carry.

use std::{collections::HashMap, sync::Mutex};

use provider_sdk::ProviderError;
use serde::Serialize;

/// The most provider names remembered.
const PROVIDERS: usize = 256;
/// The longest message kept, in characters.
const MESSAGE_CHARS: usize = 300;

/// One provider's last failed attempt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    /// When it failed (Unix seconds).
    pub at: f64,
    /// The error's kind (`rate_limited`, `timeout`, ...).
    pub kind: &'static str,
    /// The upstream's HTTP status, when there was one.
    pub status: Option<u16>,
    /// The model it was for.
    pub model: String,
    /// What went wrong (credentials redacted, cut to 300 characters).
    pub message: String,
}

/// Last failed attempts by provider name.
#[derive(Debug, Default)]
pub struct LastErrors {
    by_provider: Mutex<HashMap<String, LastError>>,
}

impl LastErrors {
    /// Remembers a failed attempt of `provider/model` at `at` (Unix seconds).
    pub fn failed(&self, provider: &str, model: &str, error: &ProviderError, at: f64) {
        let mut map = self.by_provider.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PROVIDERS && !map.contains_key(provider) {
            return;
        }
        map.insert(
            provider.to_owned(),
            LastError {
                at,
                kind: error.kind.as_str(),
                status: error.status,
                model: model.to_owned(),
                message: error.message.chars().take(MESSAGE_CHARS).collect(),
            },
        );
    }

    /// The last failed attempt of `provider`, if any.
    pub fn of(&self, provider: &str) -> Option<LastError> {
        self.by_provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
            .cloned()
    }
}
