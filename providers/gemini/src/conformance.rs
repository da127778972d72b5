//! Canned Gemini bytes for the host's conformance check (`provider-host validate`).
//!
//! All three are real upstream bytes, copied unchanged into `fixtures/` (sources in
//! `fixtures/README.md`), never produced by this crate's encoder:
//! - a `generateContent` answer captured from the Gemini API (gemini-2.0-flash);
//! - a `streamGenerateContent?alt=sse` body of three `data:` events, the last with
//!   `finishReason` and the final `usageMetadata`;
//! - a `429 RESOURCE_EXHAUSTED` body with a `RetryInfo` detail (`retryDelay: "26s"`).

use provider_kit::fixtures::{error, json, sse_body};
use provider_sdk::{serde_json::json, Conformance, ErrorKind, LocalResponse};

/// A `generateContent` response.
pub(crate) const RESPONSE: &[u8] = include_bytes!("../fixtures/generate-content-basic-reply.json");

/// A `streamGenerateContent?alt=sse` body.
pub(crate) const STREAM: &[u8] = include_bytes!("../fixtures/stream-basic-reply.sse");

/// A 429 error body.
pub(crate) const RATE_LIMITED: &[u8] =
    include_bytes!("../fixtures/error-429-resource-exhausted.json");

/// A JSON answer as Google labels it.
fn google_json(status: u16, body: &[u8]) -> LocalResponse {
    let mut response = json(status, "");
    response.headers[0].1 = "application/json; charset=UTF-8".to_owned();
    response.chunks = vec![body.to_vec()];
    response
}

/// The material `Provider::conformance` returns.
pub(crate) fn conformance() -> Conformance {
    Conformance {
        options: json!({}),
        response: google_json(200, RESPONSE),
        stream: sse_body(STREAM),
        error: Some(error(
            google_json(429, RATE_LIMITED),
            ErrorKind::RateLimited,
        )),
    }
}
