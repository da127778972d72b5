//! Declarative error classification: rules from an upstream's documented statuses,
//! error codes and message phrases to error kinds, applied on top of the SDK's
//! status-based default ([`ProviderError::from_http`]).
//!
//! ```
//! use provider_kit::errors::{ErrorRules, Rule, When};
//! use provider_sdk::{ErrorKind, HttpResponse};
//!
//! const RULES: ErrorRules = ErrorRules {
//!     code_fields: &["type"],
//!     rules: &[
//!         Rule::new(&[When::Code(&["billing_error"])], ErrorKind::QuotaExceeded),
//!         Rule::new(&[When::Code(&["invalid_request_error"]), When::ContextWindow], ErrorKind::ContextWindowExceeded),
//!         Rule::new(&[When::Status(402)], ErrorKind::QuotaExceeded),
//!     ],
//! };
//! let body = br#"{"error": {"type": "invalid_request_error", "message": "prompt is too long: 200251 tokens > 200000 maximum"}}"#;
//! let error = RULES.classify(&HttpResponse::new(400, &[], body));
//! assert_eq!(error.kind, ErrorKind::ContextWindowExceeded);
//! assert_eq!(error.provider_code.as_deref(), Some("invalid_request_error"));
//! ```

use provider_sdk::{
    mentions_context_window, serde_json::Value, ErrorKind, HttpResponse, ProviderError,
};

/// One condition of a [`Rule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum When {
    /// The HTTP status is this one.
    Status(u16),
    /// The HTTP status is in this inclusive range.
    StatusIn(u16, u16),
    /// One of the body's code fields ([`ErrorRules::code_fields`]) is one of these.
    Code(&'static [&'static str]),
    /// The message contains one of these phrases (compared in lowercase).
    Phrase(&'static [&'static str]),
    /// The message says the prompt does not fit the context window, in any of the
    /// phrasings the SDK knows ([`provider_sdk::CONTEXT_WINDOW_PHRASES`]).
    ContextWindow,
}

/// Conditions that must all hold, and the kind they give.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rule {
    /// The conditions.
    pub when: &'static [When],
    /// The kind.
    pub kind: ErrorKind,
}

impl Rule {
    /// A rule.
    pub const fn new(when: &'static [When], kind: ErrorKind) -> Rule {
        Rule { when, kind }
    }
}

/// An upstream's error rules, tried in order; the first that matches decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorRules {
    /// The fields of the error object (`{"error": {...}}`, or the body itself) that
    /// carry the upstream's codes, such as `["code", "type"]`; the first present one
    /// becomes [`ProviderError::provider_code`].
    pub code_fields: &'static [&'static str],
    /// The rules.
    pub rules: &'static [Rule],
}

impl ErrorRules {
    /// Classifies a non-2xx response: the SDK's default, refined by the rules.
    pub fn classify(&self, response: &HttpResponse<'_>) -> ProviderError {
        let body: Value =
            provider_sdk::serde_json::from_slice(response.body).unwrap_or(Value::Null);
        self.refine(ProviderError::from_http(response), &body)
    }

    /// Refines an error already classified by status with what `body` says.
    pub fn refine(&self, mut error: ProviderError, body: &Value) -> ProviderError {
        let codes = self.codes(body);
        if let Some(code) = codes.first() {
            error.provider_code = Some((*code).to_owned());
        }
        if let Some(kind) = self.first_match(error.status, &codes, &error.message) {
            error.kind = kind;
        }
        error
    }

    /// The kind the first matching rule gives an error `body` (with `status`, when it
    /// came with one), or `None` when no rule matches: for errors that arrive inside a
    /// stream, where the caller picks the fallback.
    pub fn kind_of(&self, status: Option<u16>, body: &Value) -> Option<ErrorKind> {
        let detail = detail(body);
        let message = detail
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_default();
        self.first_match(status, &self.codes(body), message)
    }

    fn codes<'a>(&self, body: &'a Value) -> Vec<&'a str> {
        let detail = detail(body);
        self.code_fields
            .iter()
            .filter_map(|field| detail.get(*field).and_then(Value::as_str))
            .collect()
    }

    fn first_match(&self, status: Option<u16>, codes: &[&str], message: &str) -> Option<ErrorKind> {
        let status = status.unwrap_or(0);
        let message = message.to_ascii_lowercase();
        let holds = |when: &When| match *when {
            When::Status(s) => status == s,
            When::StatusIn(low, high) => (low..=high).contains(&status),
            When::Code(names) => codes.iter().any(|c| names.contains(c)),
            When::Phrase(phrases) => phrases.iter().any(|p| message.contains(p)),
            When::ContextWindow => mentions_context_window(&message),
        };
        self.rules
            .iter()
            .find(|r| r.when.iter().all(holds))
            .map(|r| r.kind)
    }
}

/// The error object of a body: `{"error": {...}}`, or the body itself.
fn detail(body: &Value) -> &Value {
    match body.get("error") {
        Some(detail) if detail.is_object() => detail,
        _ => body,
    }
}
