//! The one error type that crosses the plugin boundary, and its kinds.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::HttpResponse;

/// What went wrong, in the terms the host's retry and fallback policy understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The API key is missing, wrong or lacks permission.
    Authentication,
    /// Too many requests; see [`ProviderError::retry_after_ms`].
    RateLimited,
    /// The account's quota or credit is used up; waiting will not help.
    QuotaExceeded,
    /// The prompt does not fit the model's context window.
    ContextWindowExceeded,
    /// The request is malformed or unsupported.
    InvalidRequest,
    /// The model does not exist or is not available to this key.
    ModelNotFound,
    /// The upstream did not answer in time.
    Timeout,
    /// The connection failed or broke.
    Connection,
    /// The upstream failed on its side (5xx, overloaded).
    ProviderService,
    /// The plugin itself misbehaved: panicked, returned garbage, broke the contract.
    PluginFault,
}

impl ErrorKind {
    /// The snake_case name used in logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Authentication => "authentication",
            ErrorKind::RateLimited => "rate_limited",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::ContextWindowExceeded => "context_window_exceeded",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::ModelNotFound => "model_not_found",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Connection => "connection",
            ErrorKind::ProviderService => "provider_service",
            ErrorKind::PluginFault => "plugin_fault",
        }
    }

    /// Every kind, for tools and tests that enumerate them.
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Authentication,
        ErrorKind::RateLimited,
        ErrorKind::QuotaExceeded,
        ErrorKind::ContextWindowExceeded,
        ErrorKind::InvalidRequest,
        ErrorKind::ModelNotFound,
        ErrorKind::Timeout,
        ErrorKind::Connection,
        ErrorKind::ProviderService,
        ErrorKind::PluginFault,
    ];

    /// Parses a snake_case kind name.
    pub fn parse(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == name)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a provider: its kind, a human message, and what the upstream said.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderError {
    /// The classification that drives retries and fallback.
    pub kind: ErrorKind,
    /// A message for humans; never contains credentials.
    pub message: String,
    /// The upstream's HTTP status, when there was one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// How long the upstream asked us to wait before retrying.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// The upstream's own error code or type (`insufficient_quota`, `overloaded_error`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_code: Option<String>,
}

/// How much of an upstream body is quoted in an error message.
const MAX_QUOTED_BODY: usize = 512;

impl ProviderError {
    /// An error of `kind` with a message.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ProviderError {
            kind,
            message: message.into(),
            status: None,
            retry_after_ms: None,
            provider_code: None,
        }
    }

    /// The request cannot be served as asked.
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    /// The plugin broke its contract.
    pub fn plugin_fault(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PluginFault, message)
    }

    /// Records the upstream status.
    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    /// Records the upstream's error code.
    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }

    /// Records how long to wait before a retry.
    pub fn with_retry_after_ms(mut self, ms: u64) -> Self {
        self.retry_after_ms = Some(ms);
        self
    }

    /// Classifies an upstream error response by its status, headers and body.
    ///
    /// This is the default for [`crate::Provider::classify_error`]; providers refine it
    /// with the codes their API documents. It reads `retry-after-ms` and `retry-after`
    /// (seconds), takes the message from `{"error": {"message"}}`, `{"error": "..."}` or
    /// `{"message"}` bodies, and recognises the usual context-window phrasing.
    pub fn from_http(response: &HttpResponse<'_>) -> Self {
        let status = response.status;
        let (message, code) = error_message_and_code(response.body);
        let kind = match status {
            401 | 403 => ErrorKind::Authentication,
            404 => ErrorKind::ModelNotFound,
            408 => ErrorKind::Timeout,
            429 if looks_like_quota(&message, code.as_deref()) => ErrorKind::QuotaExceeded,
            429 => ErrorKind::RateLimited,
            400 | 413 | 422 if looks_like_context_window(&message, code.as_deref()) => {
                ErrorKind::ContextWindowExceeded
            }
            400..=499 => ErrorKind::InvalidRequest,
            _ => ErrorKind::ProviderService,
        };
        let mut error = ProviderError::new(kind, message).with_status(status);
        error.provider_code = code;
        error.retry_after_ms = retry_after_ms(response);
        error
    }
}

impl fmt::Display for ProviderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        if let Some(status) = self.status {
            write!(f, " (status {status})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProviderError {}

/// Reads `retry-after-ms`, then `retry-after` in (possibly fractional) seconds.
fn retry_after_ms(response: &HttpResponse<'_>) -> Option<u64> {
    if let Some(ms) = response
        .header("retry-after-ms")
        .and_then(|v| v.trim().parse::<f64>().ok())
    {
        return Some(ms.max(0.0) as u64);
    }
    response
        .header("retry-after")
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map(|s| (s.max(0.0) * 1000.0) as u64)
}

fn error_message_and_code(body: &[u8]) -> (String, Option<String>) {
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        let error = json.get("error").unwrap_or(&json);
        let message = match error {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => o.get("message").and_then(Value::as_str).map(str::to_owned),
            _ => None,
        };
        let code = error
            .get("code")
            .or_else(|| error.get("type"))
            .or_else(|| error.get("status"))
            .and_then(|c| match c {
                Value::String(s) => Some(s.clone()),
                Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        if let Some(message) = message {
            return (message, code);
        }
    }
    (quote_body(body), None)
}

/// The first bytes of a body as text, for error messages.
pub(crate) fn quote_body(body: &[u8]) -> String {
    let cut = &body[..body.len().min(MAX_QUOTED_BODY)];
    let mut text = String::from_utf8_lossy(cut).trim().to_owned();
    if body.len() > MAX_QUOTED_BODY {
        text.push_str("...");
    }
    if text.is_empty() {
        text.push_str("(empty body)");
    }
    text
}

/// How upstreams say that a prompt does not fit the model's context window, in
/// lowercase: one list for every provider (OpenAI and compatible servers, Anthropic's
/// `prompt is too long` and `exceed context limit`, Gemini's `input token count ...
/// exceeds the maximum number of tokens`). Since SDK 1.3.
pub const CONTEXT_WINDOW_PHRASES: &[&str] = &[
    "context length",
    "context_length",
    "context window",
    "maximum context",
    "prompt is too long",
    "input is too long",
    "too many tokens",
    "exceed context limit",
    "exceeds the maximum number of tokens",
];

/// Whether `message` says the prompt does not fit the context window (any of
/// [`CONTEXT_WINDOW_PHRASES`], case-insensitively). Since SDK 1.3.
pub fn mentions_context_window(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    CONTEXT_WINDOW_PHRASES.iter().any(|p| m.contains(p))
}

fn looks_like_context_window(message: &str, code: Option<&str>) -> bool {
    code == Some("context_length_exceeded") || mentions_context_window(message)
}

fn looks_like_quota(message: &str, code: Option<&str>) -> bool {
    code == Some("insufficient_quota")
        || message
            .to_ascii_lowercase()
            .contains("exceeded your current quota")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Header;

    fn classify(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderError {
        let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| Header::new(n, v)).collect();
        ProviderError::from_http(&HttpResponse::new(status, &headers, body.as_bytes()))
    }

    #[test]
    fn a_429_is_rate_limited_with_the_wait_it_asked_for() {
        let e = classify(
            429,
            &[("Retry-After", "2")],
            r#"{"error":{"message":"slow down","type":"requests"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::RateLimited);
        assert_eq!(e.retry_after_ms, Some(2000));
        assert_eq!(e.message, "slow down");
        let e = classify(
            429,
            &[("retry-after-ms", "150"), ("retry-after", "9")],
            "{}",
        );
        assert_eq!(
            e.retry_after_ms,
            Some(150),
            "retry-after-ms is the more precise header"
        );
    }

    #[test]
    fn a_429_for_spent_credit_is_quota_not_rate() {
        let e = classify(
            429,
            &[],
            r#"{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","code":"insufficient_quota"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
        assert_eq!(e.provider_code.as_deref(), Some("insufficient_quota"));
    }

    #[test]
    fn context_window_errors_are_recognised() {
        let e = classify(
            400,
            &[],
            r#"{"error":{"message":"This model's maximum context length is 8192 tokens","code":"context_length_exceeded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ContextWindowExceeded);
        assert_eq!(
            classify(400, &[], r#"{"error":"bad field"}"#).kind,
            ErrorKind::InvalidRequest
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        assert_eq!(classify(401, &[], "").kind, ErrorKind::Authentication);
        assert_eq!(classify(404, &[], "").kind, ErrorKind::ModelNotFound);
        assert_eq!(classify(500, &[], "").kind, ErrorKind::ProviderService);
        assert_eq!(classify(529, &[], "").kind, ErrorKind::ProviderService);
    }

    #[test]
    fn non_json_bodies_are_quoted_and_capped() {
        let body = "x".repeat(10_000);
        let e = classify(502, &[], &body);
        assert!(e.message.len() <= MAX_QUOTED_BODY + 3);
        assert_eq!(classify(502, &[], "").message, "(empty body)");
    }
}
