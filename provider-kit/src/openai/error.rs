//! Upstream error bodies → [`ProviderError`], refined with the codes OpenAI documents.
//!
//! OpenAI's error body is `{"error": {"message", "type", "param", "code"}}`
//! (platform.openai.com/docs/guides/error-codes); OpenAI-compatible servers send the
//! same shape, sometimes with a numeric `code` (vLLM, OpenRouter) or only a `type`.

use provider_sdk::{ErrorKind, Header, HttpResponse, ProviderError};

use crate::errors::{ErrorRules, Rule, When};
use serde_json::Value;

/// Classifies a non-2xx response: the SDK's status-based default, refined by the body.
pub fn classify(response: &HttpResponse<'_>) -> ProviderError {
    let body: Value = serde_json::from_slice(response.body).unwrap_or(Value::Null);
    refine(ProviderError::from_http(response), &body)
}

/// Classifies an error that arrived inside a 200 stream or body (`{"error": ...}`) as if
/// it had come as an HTTP error: its numeric `code` stands for the status when it is one.
pub fn from_event(event: &Value) -> ProviderError {
    let error = event.get("error").unwrap_or(event);
    let status = ["code", "status"]
        .iter()
        .filter_map(|k| error.get(*k).and_then(Value::as_u64))
        .find(|n| (400..600).contains(n))
        .map(|n| n as u16);
    let body = match event.get("error") {
        Some(_) => event.clone(),
        None => serde_json::json!({ "error": event }),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let headers: [Header<'_>; 0] = [];
    let mut error = classify(&HttpResponse::new(status.unwrap_or(500), &headers, &bytes));
    error.status = status;
    if status.is_none() && error.message.is_empty() {
        error.message = "the upstream reported an error mid-stream".to_owned();
    }
    error
}

/// OpenAI's billing errors: `type` is `insufficient_quota` whatever the `code`.
const QUOTA_CODES: &[&str] = &[
    "insufficient_quota",
    "credit_balance_exhausted",
    "organization_spend_limit_exceeded",
    "project_spend_limit_exceeded",
    "organization_usage_limit_exceeded",
];

/// What OpenAI's error codes and types mean (platform.openai.com/docs/guides/error-codes),
/// and the codes compatible servers add.
const RULES: ErrorRules = ErrorRules {
    code_fields: &["code", "type"],
    rules: &[
        Rule::new(&[When::Code(QUOTA_CODES)], ErrorKind::QuotaExceeded),
        // 402 is OpenRouter's "insufficient credits" (openrouter.ai/docs/api/errors).
        Rule::new(&[When::Status(402)], ErrorKind::QuotaExceeded),
        Rule::new(
            &[When::Code(&["context_length_exceeded"])],
            ErrorKind::ContextWindowExceeded,
        ),
        Rule::new(
            &[When::Code(&["model_not_found", "DeploymentNotFound"])],
            ErrorKind::ModelNotFound,
        ),
        Rule::new(
            &[When::Code(&[
                "invalid_api_key",
                "invalid_authentication",
                "authentication_error",
            ])],
            ErrorKind::Authentication,
        ),
        Rule::new(
            &[
                When::Code(&["rate_limit_exceeded", "requests", "tokens"]),
                When::Status(429),
            ],
            ErrorKind::RateLimited,
        ),
        Rule::new(
            &[When::Code(&[
                "server_error",
                "overloaded_error",
                "service_unavailable",
            ])],
            ErrorKind::ProviderService,
        ),
    ],
};

fn refine(error: ProviderError, body: &Value) -> ProviderError {
    let mut error = RULES.refine(error, body);
    if error.kind == ErrorKind::RateLimited && error.retry_after_ms.is_none() {
        error.retry_after_ms = try_again_in_ms(&error.message);
    }
    error
}

/// Reads OpenAI's "Please try again in 2.502s" / "in 644ms" / "in 1m30s" hint, or
/// Azure's "Please retry after 6 seconds".
fn try_again_in_ms(message: &str) -> Option<u64> {
    if let Some(at) = message.find("retry after ") {
        let rest = &message[at + "retry after ".len()..];
        let mut words = rest.split_whitespace();
        let seconds: f64 = words.next()?.parse().ok()?;
        return words
            .next()
            .filter(|unit| unit.starts_with("second"))
            .map(|_| (seconds * 1000.0).round() as u64);
    }
    let rest = &message[message.find("try again in ")? + "try again in ".len()..];
    let token = rest.split(|c: char| c.is_whitespace() || c == ',').next()?;
    let token = token.trim_end_matches('.');
    let mut total = 0.0_f64;
    let mut number = String::new();
    let mut chars = token.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() || c == '.' {
            number.push(c);
            continue;
        }
        let value: f64 = number.parse().ok()?;
        number.clear();
        let unit_ms = match c {
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                1.0
            }
            'h' => 3_600_000.0,
            'm' => 60_000.0,
            's' => 1000.0,
            _ => return None,
        };
        total += value * unit_ms;
        any = true;
    }
    (any && number.is_empty()).then_some(total.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify_bytes(status: u16, headers: &[(&str, &str)], body: &str) -> ProviderError {
        let headers: Vec<Header<'_>> = headers.iter().map(|(n, v)| Header::new(n, v)).collect();
        classify(&HttpResponse::new(status, &headers, body.as_bytes()))
    }

    // Bodies below are OpenAI's, as captured in public bug reports (OpenAI sends them
    // pretty-printed with four-space indentation).

    #[test]
    fn a_401_invalid_api_key_is_authentication() {
        // chatanywhere/GPT_API_free#62, continuedev/continue#11409.
        let e = classify_bytes(
            401,
            &[],
            r#"{"error":{"message":"Incorrect API key provided: sk-VKMIs***************************************wjh3. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::Authentication);
        assert_eq!(e.provider_code.as_deref(), Some("invalid_api_key"));
        assert!(e.message.starts_with("Incorrect API key provided"));
        assert_eq!(e.status, Some(401));
    }

    #[test]
    fn a_429_rate_limit_keeps_the_wait_the_upstream_asked_for() {
        // openai/codex#88 (fields as OpenAI sent them).
        let body = "{\n    \"error\": {\n        \"message\": \"Rate limit reached for gpt-4o in organization org-KllXuNW4YzQAfv9Nxc0CGSVl on tokens per min (TPM): Limit 10000, Used 6630, Requested 3787. Please try again in 2.502s. Visit https://platform.openai.com/account/rate-limits to learn more.\",\n        \"type\": \"tokens\",\n        \"param\": null,\n        \"code\": \"rate_limit_exceeded\"\n    }\n}\n";
        let e = classify_bytes(429, &[("retry-after", "3")], body);
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::RateLimited, Some(3000))
        );
        assert_eq!(e.provider_code.as_deref(), Some("rate_limit_exceeded"));
        let e = classify_bytes(429, &[], body);
        assert_eq!(
            e.retry_after_ms,
            Some(2502),
            "the message's hint when no header came"
        );
    }

    #[test]
    fn a_429_insufficient_quota_is_quota_not_rate() {
        // mattvr/ShellGPT#23: code and type are both insufficient_quota.
        let e = classify_bytes(429, &[], "{\n    \"error\": {\n        \"message\": \"You exceeded your current quota, please check your plan and billing details. For more information on this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors.\",\n        \"type\": \"insufficient_quota\",\n        \"param\": null,\n        \"code\": \"insufficient_quota\"\n    }\n}\n");
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
        assert_eq!(e.retry_after_ms, None);
        // Newer billing errors keep the type and give the reason in `code`.
        let e = classify_bytes(
            429,
            &[],
            r#"{"error":{"message":"Spend limit reached.","type":"insufficient_quota","code":"project_spend_limit_exceeded"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
        assert_eq!(
            e.provider_code.as_deref(),
            Some("project_spend_limit_exceeded")
        );
    }

    #[test]
    fn a_400_context_length_exceeded_is_a_context_window_error() {
        // himanushi/chat-code#17.
        let e = classify_bytes(400, &[], "{\n  \"error\": {\n    \"message\": \"This model's maximum context length is 4097 tokens. However, your messages resulted in 4363 tokens. Please reduce the length of the messages.\",\n    \"type\": \"invalid_request_error\",\n    \"param\": \"messages\",\n    \"code\": \"context_length_exceeded\"\n  }\n}");
        assert_eq!(e.kind, ErrorKind::ContextWindowExceeded);
        assert_eq!(e.provider_code.as_deref(), Some("context_length_exceeded"));
    }

    #[test]
    fn a_404_model_not_found_is_model_not_found() {
        // rd-1-2022/ai-openai-helloworld#9.
        let e = classify_bytes(404, &[], "{\n    \"error\": {\n        \"message\": \"The model `gpt-4o` does not exist or you do not have access to it.\",\n        \"type\": \"invalid_request_error\",\n        \"param\": null,\n        \"code\": \"model_not_found\"\n    }\n}\n");
        assert_eq!(e.kind, ErrorKind::ModelNotFound);
        assert_eq!(e.provider_code.as_deref(), Some("model_not_found"));
        // Some gateways answer 400 with the same code.
        let e = classify_bytes(
            400,
            &[],
            r#"{"error":{"message":"no such model","type":"invalid_request_error","code":"model_not_found"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::ModelNotFound);
    }

    #[test]
    fn a_500_and_a_503_are_provider_service_errors() {
        // The messages of OpenAI's error-code guide for 500 and 503.
        let e = classify_bytes(
            500,
            &[],
            r#"{"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}}"#,
        );
        assert_eq!(
            (e.kind, e.provider_code.as_deref()),
            (ErrorKind::ProviderService, Some("server_error"))
        );
        let e = classify_bytes(
            503,
            &[("retry-after", "1")],
            r#"{"error":{"message":"The engine is currently overloaded, please try again later","type":"server_error","param":null,"code":null}}"#,
        );
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::ProviderService, Some(1000))
        );
    }

    #[test]
    fn azure_429s_are_rate_limits_with_their_wait() {
        // Azure OpenAI's quota message (code is the status as a string).
        let e = classify_bytes(
            429,
            &[],
            r#"{"error":{"code":"429","message":"Requests to the ChatCompletions_Create Operation under Azure OpenAI API version 2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. Please retry after 6 seconds. Please go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate limit."}}"#,
        );
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::RateLimited, Some(6000))
        );
    }

    #[test]
    fn vllm_top_level_error_objects_are_understood() {
        // vLLM's ErrorResponse: no `error` wrapper, numeric `code`.
        let e = from_event(
            &serde_json::json!({"object": "error", "message": "The model `llama` does not exist.", "type": "NotFoundError", "param": null, "code": 404}),
        );
        assert_eq!((e.kind, e.status), (ErrorKind::ModelNotFound, Some(404)));
        assert_eq!(e.message, "The model `llama` does not exist.");
    }

    #[test]
    fn openrouter_402_is_out_of_credit() {
        let e = classify_bytes(
            402,
            &[],
            r#"{"error":{"code":402,"message":"Insufficient credits. Add more using https://openrouter.ai/settings/credits"}}"#,
        );
        assert_eq!(e.kind, ErrorKind::QuotaExceeded);
    }

    #[test]
    fn a_mid_stream_error_event_is_classified_like_its_http_twin() {
        let e = from_event(
            &serde_json::json!({"error": {"message": "The server had an error while processing your request. Sorry about that!", "type": "server_error", "param": null, "code": null}}),
        );
        assert_eq!((e.kind, e.status), (ErrorKind::ProviderService, None));
        assert!(e.message.starts_with("The server had an error"));
        // vLLM's shape: a numeric code that is the HTTP status.
        let e = from_event(
            &serde_json::json!({"error": {"object": "error", "message": "This model's maximum context length is 4096 tokens.", "type": "BadRequestError", "param": null, "code": 400}}),
        );
        assert_eq!(
            (e.kind, e.status),
            (ErrorKind::ContextWindowExceeded, Some(400))
        );
        let e = from_event(
            &serde_json::json!({"error": {"code": 429, "message": "Rate limit exceeded. Please try again in 20s."}}),
        );
        assert_eq!(
            (e.kind, e.retry_after_ms),
            (ErrorKind::RateLimited, Some(20_000))
        );
    }

    #[test]
    fn try_again_hints_are_read_in_every_unit() {
        assert_eq!(
            try_again_in_ms("Please try again in 644ms. Visit"),
            Some(644)
        );
        assert_eq!(
            try_again_in_ms("Please try again in 18.642s. Visit"),
            Some(18_642)
        );
        assert_eq!(try_again_in_ms("try again in 1m30s"), Some(90_000));
        assert_eq!(try_again_in_ms("try again in a while"), None);
        assert_eq!(try_again_in_ms("slow down"), None);
        assert_eq!(try_again_in_ms("Please retry after 6 seconds."), Some(6000));
        assert_eq!(try_again_in_ms("retry after a moment"), None);
    }
}
