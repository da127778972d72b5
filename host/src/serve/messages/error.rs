//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`, with
//! the statuses Anthropic's clients map to their exception classes.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use provider_sdk::ErrorKind;
use serde_json::json;

use crate::pipeline::DispatchError;

/// An error as an Anthropic client expects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnthropicError {
    /// HTTP status.
    pub status: StatusCode,
    /// Anthropic's `error.type`.
    pub kind: &'static str,
    /// For humans.
    pub message: String,
}

impl AnthropicError {
    /// A status the host chose, with Anthropic's error type for it.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let kind = match status.as_u16() {
            400 => "invalid_request_error",
            401 => "authentication_error",
            403 => "permission_error",
            404 => "not_found_error",
            413 => "request_too_large",
            429 => "rate_limit_error",
            504 => "timeout_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        AnthropicError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 with `message`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        AnthropicError::new(StatusCode::BAD_REQUEST, message)
    }

    /// The Anthropic form of a pipeline failure. Upstream failures other than
    /// timeouts become 500 `api_error`; an upstream that is overloaded or no provider
    /// ready becomes 529 `overloaded_error`, which Anthropic clients retry.
    pub fn from_dispatch(error: &DispatchError) -> Self {
        let status = match (error, error.kind()) {
            (DispatchError::NotReady { .. }, _) | (_, ErrorKind::ProviderService) => 529,
            (_, ErrorKind::Authentication | ErrorKind::Connection | ErrorKind::PluginFault) => 500,
            _ => error.http_status(),
        };
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        AnthropicError::new(status, error.to_string())
    }

    /// The error body.
    pub fn body(&self) -> serde_json::Value {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}})
    }
}

impl IntoResponse for AnthropicError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body())).into_response()
    }
}
