//! Google error bodies → error kinds.
//!
//! Gemini answers errors with a `google.rpc.Status` body,
//! `{"error": {"code": 429, "message": "...", "status": "RESOURCE_EXHAUSTED", "details": [...]}}`
//! (<https://ai.google.dev/gemini-api/docs/generate-content/api-errors>). The `status`
//! decides the kind:
//!
//! | status | kind |
//! |---|---|
//! | `INVALID_ARGUMENT`, `FAILED_PRECONDITION`, `OUT_OF_RANGE` | `invalid_request`; `context_window_exceeded` when the message says the input token count exceeds the limit; `authentication` for "API key not valid" (`API_KEY_INVALID`) |
//! | `UNAUTHENTICATED`, `PERMISSION_DENIED` | `authentication` |
//! | `NOT_FOUND` | `model_not_found` |
//! | `RESOURCE_EXHAUSTED` | `rate_limited`; `quota_exceeded` with HTTP 402 (prepaid credit used up: waiting will not help) |
//! | `DEADLINE_EXCEEDED` | `timeout` |
//! | `CANCELLED` | `connection` |
//! | `INTERNAL`, `UNAVAILABLE`, `UNKNOWN`, `ABORTED`, `DATA_LOSS` | `provider_service` |
//! | `UNIMPLEMENTED`, `ALREADY_EXISTS` | `invalid_request` |
//!
//! Anything else (no JSON, no status) falls back to the SDK's status-code mapping.
//! The wait comes from the `google.rpc.RetryInfo` detail (`"retryDelay": "26s"`), else
//! from the `retry-after` headers. `provider_code` is the status.

use provider_sdk::{serde_json, ErrorKind, HttpResponse, ProviderError};
use serde_json::Value;

/// Classifies a non-2xx Gemini response.
pub(crate) fn classify(response: &HttpResponse<'_>) -> ProviderError {
    let fallback = ProviderError::from_http(response);
    let Ok(body) = serde_json::from_slice::<Value>(response.body) else {
        return fallback;
    };
    // `streamGenerateContent` without `alt=sse` wraps bodies in an array.
    let body = match &body {
        Value::Array(items) => items.first().unwrap_or(&body),
        _ => &body,
    };
    let Some(error) = body.get("error").filter(|e| e.is_object()) else {
        return fallback;
    };
    let mut classified = from_body(Some(response.status), error);
    if classified.retry_after_ms.is_none() {
        classified.retry_after_ms = fallback.retry_after_ms;
    }
    classified
}

/// Classifies the `error` object of a Google error body (also sent inside a stream).
/// `http_status` is the response's status; the body's own `code` stands in for it.
pub(crate) fn from_body(http_status: Option<u16>, error: &Value) -> ProviderError {
    let code = error
        .get("code")
        .and_then(Value::as_u64)
        .and_then(|c| u16::try_from(c).ok());
    let status = http_status.or(code);
    let grpc = error.get("status").and_then(Value::as_str);
    let message = error
        .get("message")
        .and_then(Value::as_str)
        .filter(|m| !m.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| format!("Gemini error {}", grpc.unwrap_or("without a status")));
    let details = error
        .get("details")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();

    let kind = match grpc {
        Some("INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE") => {
            if api_key_invalid(&message, details) {
                ErrorKind::Authentication
            } else if context_window_exceeded(&message) {
                ErrorKind::ContextWindowExceeded
            } else {
                ErrorKind::InvalidRequest
            }
        }
        Some("UNAUTHENTICATED" | "PERMISSION_DENIED") => ErrorKind::Authentication,
        Some("NOT_FOUND") => ErrorKind::ModelNotFound,
        Some("RESOURCE_EXHAUSTED") if status == Some(402) => ErrorKind::QuotaExceeded,
        Some("RESOURCE_EXHAUSTED") => ErrorKind::RateLimited,
        Some("DEADLINE_EXCEEDED") => ErrorKind::Timeout,
        Some("CANCELLED") => ErrorKind::Connection,
        Some("UNIMPLEMENTED" | "ALREADY_EXISTS") => ErrorKind::InvalidRequest,
        // No (known) gRPC status: the HTTP status decides.
        _ => match status {
            Some(401 | 403) => ErrorKind::Authentication,
            Some(404) => ErrorKind::ModelNotFound,
            Some(408) => ErrorKind::Timeout,
            Some(429) => ErrorKind::RateLimited,
            Some(400..=499) if context_window_exceeded(&message) => {
                ErrorKind::ContextWindowExceeded
            }
            Some(400..=499) => ErrorKind::InvalidRequest,
            _ => ErrorKind::ProviderService,
        },
    };
    let mut classified = ProviderError::new(kind, message);
    classified.status = status;
    classified.provider_code = grpc.map(str::to_owned);
    classified.retry_after_ms = details.iter().find_map(retry_delay_ms);
    classified
}

/// "API key not valid" comes as `400 INVALID_ARGUMENT` with an `API_KEY_INVALID` reason.
fn api_key_invalid(message: &str, details: &[Value]) -> bool {
    details.iter().any(|d| {
        d.get("reason")
            .and_then(Value::as_str)
            .is_some_and(|r| r.starts_with("API_KEY_"))
    }) || message.contains("API key not valid")
        || message.contains("API key expired")
}

/// "The input token count (132478) exceeds the maximum number of tokens allowed (131072)."
fn context_window_exceeded(message: &str) -> bool {
    // Gemini: "The input token count (1234567) exceeds the maximum number of tokens
    // allowed (1048576)", one of the SDK's phrasings.
    provider_sdk::mentions_context_window(message)
}

/// The wait of a `google.rpc.RetryInfo` detail, in milliseconds (rounded up):
/// `retryDelay` is a protobuf `Duration` in JSON, seconds with an `s` suffix.
fn retry_delay_ms(detail: &Value) -> Option<u64> {
    let kind = detail.get("@type").and_then(Value::as_str)?;
    if !kind.ends_with("google.rpc.RetryInfo") {
        return None;
    }
    let seconds: f64 = detail
        .get("retryDelay")?
        .as_str()?
        .trim()
        .strip_suffix('s')?
        .parse()
        .ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| (seconds * 1000.0).ceil() as u64)
}
