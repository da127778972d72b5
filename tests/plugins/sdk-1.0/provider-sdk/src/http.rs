//! What a provider asks the host to send, and what the host hands back.

use abi_stable::{std_types::RStr, StableAbi};
use serde::{Deserialize, Serialize};

/// What the host should do to serve a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Outbound {
    /// Send this HTTP request upstream (the host adds the API key per [`crate::AuthScheme`]).
    Http(HttpRequest),
    /// Don't call anyone: this is the upstream's answer. The host feeds it through
    /// `parse_response` or the stream decoder exactly as if it had come over the wire,
    /// so local providers (mock, test doubles) exercise the same path as real ones.
    Local(LocalResponse),
}

/// An HTTP request for the upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full URL, query included.
    pub url: String,
    /// Headers other than the API key.
    pub headers: Vec<(String, String)>,
    /// The body, usually JSON.
    pub body: Vec<u8>,
}

impl HttpRequest {
    /// A `POST` of a JSON body to `url`.
    pub fn post_json(url: impl Into<String>, body: Vec<u8>) -> Self {
        HttpRequest {
            method: "POST".to_owned(),
            url: url.into(),
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body,
        }
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// An answer produced without any network call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LocalResponse {
    /// HTTP status the answer stands for.
    pub status: u16,
    /// Response headers.
    #[serde(default)]
    pub headers: Vec<(String, String)>,
    /// The body, in pieces: the host delivers them one by one, as a network would.
    pub chunks: Vec<Vec<u8>>,
    /// Pause between two pieces, in milliseconds (the host sleeps, never the plugin).
    #[serde(default)]
    pub interval_ms: u32,
}

/// One response header, borrowed from the host for the duration of a call.
#[repr(C)]
#[derive(Debug, Clone, Copy, StableAbi)]
pub struct Header<'a> {
    name: RStr<'a>,
    value: RStr<'a>,
}

impl<'a> Header<'a> {
    /// A header from its name and value.
    pub fn new(name: &'a str, value: &'a str) -> Self {
        Header {
            name: name.into(),
            value: value.into(),
        }
    }

    /// The header's name, as received (compare case-insensitively).
    pub fn name(&self) -> &'a str {
        self.name.as_str()
    }

    /// The header's value.
    pub fn value(&self) -> &'a str {
        self.value.as_str()
    }
}

/// An upstream response, borrowed from the host for the duration of a call.
#[derive(Debug, Clone, Copy)]
pub struct HttpResponse<'a> {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: &'a [Header<'a>],
    /// The body (for errors, capped by the host).
    pub body: &'a [u8],
}

impl<'a> HttpResponse<'a> {
    /// A response view over borrowed parts.
    pub fn new(status: u16, headers: &'a [Header<'a>], body: &'a [u8]) -> Self {
        HttpResponse {
            status,
            headers,
            body,
        }
    }

    /// The first header called `name`, compared case-insensitively.
    pub fn header(&self, name: &str) -> Option<&'a str> {
        self.headers
            .iter()
            .find(|h| h.name().eq_ignore_ascii_case(name))
            .map(|h| h.value())
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}
