//! The last failure seen of each provider, for `/admin/providers` and the console: what
//! is failing now, without reading logs.
//!
//! Written only when a request fails (a lock then, never on success); bounded by
//! [`PROVIDERS`] names, since a failed record can carry a provider name a client chose.

use std::{collections::HashMap, sync::Mutex};

use serde::Serialize;

use crate::usage::UsageRecord;

/// The most provider names remembered.
const PROVIDERS: usize = 256;

/// One provider's last failure.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LastError {
    /// When the request arrived (Unix seconds).
    pub at: f64,
    /// The error's kind (`rate_limited`, `timeout`, ...).
    pub kind: &'static str,
    /// The HTTP status the client got.
    pub status: u16,
    /// The model it was for.
    pub model: Option<String>,
    /// The request's id, to find it in the logs.
    pub request_id: String,
}

/// Last failures by provider name.
#[derive(Debug, Default)]
pub struct LastErrors {
    by_provider: Mutex<HashMap<String, LastError>>,
}

impl LastErrors {
    /// Remembers `record` when it is a failure that reached a provider.
    pub fn observe(&self, record: &UsageRecord) {
        let (Some(kind), Some(provider)) = (record.error_kind, &record.provider) else {
            return;
        };
        let mut map = self.by_provider.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= PROVIDERS && !map.contains_key(provider) {
            return;
        }
        map.insert(
            provider.clone(),
            LastError {
                at: record.at,
                kind: kind.as_str(),
                status: record.status,
                model: record.model.clone(),
                request_id: record.request_id.clone(),
            },
        );
    }

    /// The last failure of `provider`, if any.
    pub fn of(&self, provider: &str) -> Option<LastError> {
        self.by_provider
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(provider)
            .cloned()
    }
}
