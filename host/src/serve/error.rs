//! Errors as the client sees them: an OpenAI error body with the matching status.

use axum::{
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use provider_sdk::ErrorKind;
use serde::Serialize;

use crate::pipeline::DispatchError;

/// An error response: status, OpenAI `type`, `code` and a message.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI error `type`.
    pub kind: &'static str,
    /// Machine-readable code.
    pub code: &'static str,
    /// For humans.
    pub message: String,
    /// The request field at fault, when there is one (OpenAI's `param`).
    pub param: Option<&'static str>,
}

impl ApiError {
    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            code: "invalid_request",
            message: message.into(),
            param: None,
        }
    }

    /// 400: the request field `param` is wrong; `message` says how.
    pub fn bad_param(param: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            param: Some(param),
            ..ApiError::bad_request(message)
        }
    }

    /// 401: no or a wrong client key.
    pub fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            kind: "authentication_error",
            code: "invalid_api_key",
            message: "missing or invalid API key: send `Authorization: Bearer <key>` with a key from the host's config".to_owned(),
            param: None,
        }
    }

    /// 413: the body exceeds the configured cap.
    pub fn too_large(limit: usize) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            kind: "invalid_request_error",
            code: "request_too_large",
            message: format!("the request body is larger than {limit} bytes (max_request_bytes)"),
            param: None,
        }
    }

    /// The client-facing form of a body that could not be read.
    pub fn from_body(error: &super::body::BodyError) -> Self {
        use super::body::BodyError;
        let code = match error {
            BodyError::TooLarge { .. } => "request_too_large",
            BodyError::TimedOut { .. } => "request_timeout",
            BodyError::Broken(_) => "invalid_request",
        };
        ApiError {
            status: error.status(),
            kind: "invalid_request_error",
            code,
            message: error.to_string(),
            param: None,
        }
    }

    /// The client-facing form of a dispatch failure.
    pub fn from_dispatch(error: &DispatchError) -> Self {
        let status =
            StatusCode::from_u16(error.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let (kind, code) = match error {
            DispatchError::ClientBudgetSpent(_) | DispatchError::BudgetSpent { .. } => {
                ("insufficient_quota", "budget_exceeded")
            }
            DispatchError::Unsupported { .. } => {
                ("invalid_request_error", "unsupported_capability")
            }
            DispatchError::NotReady { .. } => ("server_error", "provider_unavailable"),
            DispatchError::SharedStateUnavailable(_) => {
                ("server_error", "shared_state_unavailable")
            }
            _ => match error.kind() {
                ErrorKind::InvalidRequest => ("invalid_request_error", "invalid_request"),
                ErrorKind::ContextWindowExceeded => {
                    ("invalid_request_error", "context_length_exceeded")
                }
                ErrorKind::ModelNotFound => ("invalid_request_error", "model_not_found"),
                ErrorKind::RateLimited => ("rate_limit_error", "rate_limit_exceeded"),
                ErrorKind::QuotaExceeded => ("insufficient_quota", "insufficient_quota"),
                ErrorKind::Authentication => ("upstream_error", "upstream_authentication_failed"),
                ErrorKind::Timeout => ("upstream_error", "upstream_timeout"),
                ErrorKind::Connection => ("upstream_error", "upstream_connection_failed"),
                ErrorKind::ProviderService => ("upstream_error", "upstream_error"),
                ErrorKind::PluginFault => ("server_error", "plugin_fault"),
            },
        };
        ApiError {
            status,
            kind,
            code,
            message: error.to_string(),
            param: None,
        }
    }

    /// The `{"error": {...}}` body.
    pub fn body(&self) -> ErrorBody<'_> {
        ErrorBody {
            error: ErrorObject {
                message: &self.message,
                kind: self.kind,
                param: self.param,
                code: self.code,
            },
        }
    }
}

/// `{"error": {"message", "type", "param", "code"}}`.
#[derive(Serialize)]
pub struct ErrorBody<'a> {
    error: ErrorObject<'a>,
}

#[derive(Serialize)]
struct ErrorObject<'a> {
    message: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    param: Option<&'a str>,
    code: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}
