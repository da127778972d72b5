//! Classifying Google error bodies.
//!
//! Fixture bodies are real; the hand-written ones follow the status table of
//! <https://ai.google.dev/gemini-api/docs/generate-content/api-errors> (code, status,
//! and the description Google gives) in Google's `google.rpc.Status` shape.

use provider_sdk::ErrorKind;

use super::{classify, fixtures};

/// A `{"error": {...}}` body in Google's shape.
fn google_error(code: u16, status: &str, message: &str) -> Vec<u8> {
    format!(r#"{{"error": {{"code": {code}, "message": "{message}", "status": "{status}"}}}}"#)
        .into_bytes()
}

#[test]
fn resource_exhausted_is_rate_limited_with_the_retry_info_delay() {
    let error = classify(429, &[], fixtures::ERROR_429);
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after_ms, Some(26_000), "retryDelay \"26s\"");
    assert_eq!(error.status, Some(429));
    assert_eq!(error.provider_code.as_deref(), Some("RESOURCE_EXHAUSTED"));
    assert!(
        error.message.starts_with("You exceeded your current quota"),
        "{}",
        error.message
    );
}

#[test]
fn without_retry_info_the_retry_after_header_gives_the_wait() {
    let body = google_error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
    );
    let error = classify(429, &[("Retry-After", "17")], &body);
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after_ms, Some(17_000));
    assert_eq!(classify(429, &[], &body).retry_after_ms, None);
}

#[test]
fn fractional_retry_delays_are_rounded_up_to_the_millisecond() {
    let body = br#"{"error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED",
        "details": [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.203608125s"}]}}"#;
    assert_eq!(classify(429, &[], body).retry_after_ms, Some(1204));
}

#[test]
fn prepaid_credit_used_up_is_quota_exceeded_not_a_rate_limit() {
    let body = google_error(
        402,
        "RESOURCE_EXHAUSTED",
        "Your prepayment credits are depleted.",
    );
    assert_eq!(classify(402, &[], &body).kind, ErrorKind::QuotaExceeded);
}

#[test]
fn an_invalid_api_key_is_an_authentication_error_despite_its_400() {
    let error = classify(400, &[], fixtures::ERROR_400_API_KEY);
    assert_eq!(error.kind, ErrorKind::Authentication);
    assert_eq!(error.status, Some(400));
    assert_eq!(error.provider_code.as_deref(), Some("INVALID_ARGUMENT"));
    assert_eq!(
        error.message,
        "API key not valid. Please pass a valid API key."
    );
}

#[test]
fn permission_denied_is_an_authentication_error() {
    let error = classify(403, &[], fixtures::ERROR_403);
    assert_eq!(error.kind, ErrorKind::Authentication);
    assert_eq!(error.provider_code.as_deref(), Some("PERMISSION_DENIED"));
}

#[test]
fn not_found_is_model_not_found() {
    let error = classify(404, &[], fixtures::ERROR_404);
    assert_eq!(error.kind, ErrorKind::ModelNotFound);
    assert!(error
        .message
        .starts_with("models/gemini-5.0-flash is not found"));
}

#[test]
fn an_input_over_the_token_limit_is_context_window_exceeded() {
    let error = classify(400, &[], fixtures::ERROR_400_TOKEN_COUNT);
    assert_eq!(error.kind, ErrorKind::ContextWindowExceeded);
    assert_eq!(error.provider_code.as_deref(), Some("INVALID_ARGUMENT"));
}

#[test]
fn other_invalid_arguments_and_failed_preconditions_are_invalid_requests() {
    let malformed = google_error(
        400,
        "INVALID_ARGUMENT",
        "Invalid JSON payload received. Unknown name \\\"foo\\\": Cannot find field.",
    );
    assert_eq!(
        classify(400, &[], &malformed).kind,
        ErrorKind::InvalidRequest
    );
    let region = google_error(
        400,
        "FAILED_PRECONDITION",
        "Gemini API free tier is not available in your country. Please enable billing on your project in Google AI Studio.",
    );
    let error = classify(400, &[], &region);
    assert_eq!(error.kind, ErrorKind::InvalidRequest);
    assert_eq!(error.provider_code.as_deref(), Some("FAILED_PRECONDITION"));
}

#[test]
fn server_side_failures_are_provider_service_and_deadlines_are_timeouts() {
    for (code, status, kind) in [
        (500, "INTERNAL", ErrorKind::ProviderService),
        (503, "UNAVAILABLE", ErrorKind::ProviderService),
        (504, "DEADLINE_EXCEEDED", ErrorKind::Timeout),
        (499, "CANCELLED", ErrorKind::Connection),
        (401, "UNAUTHENTICATED", ErrorKind::Authentication),
    ] {
        let body = google_error(code, status, "An internal error has occurred.");
        let error = classify(code, &[], &body);
        assert_eq!(error.kind, kind, "{code} {status}");
        assert_eq!(error.provider_code.as_deref(), Some(status));
        assert_eq!(error.status, Some(code));
    }
}

#[test]
fn a_body_that_is_not_a_google_error_falls_back_to_the_status_code() {
    let error = classify(502, &[], b"<html><title>502 Bad Gateway</title></html>");
    assert_eq!(error.kind, ErrorKind::ProviderService);
    assert_eq!(error.provider_code, None);
    assert_eq!(classify(401, &[], b"").kind, ErrorKind::Authentication);
    assert_eq!(
        classify(429, &[("retry-after", "3")], b"Too Many Requests").retry_after_ms,
        Some(3000)
    );
}

#[test]
fn an_error_body_wrapped_in_an_array_is_read_too() {
    let mut body = b"[".to_vec();
    body.extend_from_slice(fixtures::ERROR_429);
    body.extend_from_slice(b"]");
    let error = classify(429, &[], &body);
    assert_eq!(error.kind, ErrorKind::RateLimited);
    assert_eq!(error.retry_after_ms, Some(26_000));
}
