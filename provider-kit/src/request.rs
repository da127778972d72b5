//! The request pieces every translator needs: the output-token limit, images given as
//! URLs or `data:` URLs, optional fields, the JSON body, and typed entry options.
//!
//! ```
//! use provider_kit::request::{image, put, Image};
//! use provider_sdk::serde_json::{json, Map};
//!
//! assert_eq!(
//!     image("data:image/png;base64,iVBORw0KGgo=", "example").unwrap(),
//!     Image::Base64 { media_type: "image/png", data: "iVBORw0KGgo=" }
//! );
//! let mut body = Map::new();
//! put(&mut body, "temperature", Some(0.2));
//! put(&mut body, "seed", None::<i64>);
//! assert_eq!(body, json!({"temperature": 0.2}).as_object().unwrap().clone());
//! ```

use provider_sdk::{
    serde_json::{self, Map, Value},
    ChatRequest, ProviderConfig, ProviderError,
};
use serde::{de::DeserializeOwned, Serialize};

/// The request's output-token limit: `max_completion_tokens`, else `max_tokens`.
pub fn token_limit(request: &ChatRequest) -> Option<u32> {
    request.max_completion_tokens.or(request.max_tokens)
}

/// An image a client sent, as an upstream wants it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Image<'a> {
    /// A base64 `data:` URL's media type (parameters dropped) and data.
    Base64 {
        /// `image/png`, ...
        media_type: &'a str,
        /// The base64 text.
        data: &'a str,
    },
    /// An `http(s)://` URL.
    Url(&'a str),
}

/// Reads an image URL: `data:<media type>[;params];base64,<data>` or `http(s)://...`.
/// Anything else is an `invalid_request` naming `provider` and what is accepted.
pub fn image<'a>(url: &'a str, provider: &str) -> Result<Image<'a>, ProviderError> {
    if let Some(rest) = url.strip_prefix("data:") {
        let (meta, data) = rest.split_once(',').ok_or_else(|| {
            ProviderError::invalid_request(format!(
                "{provider}: a data: image URL has no `,` before its data"
            ))
        })?;
        let mut params = meta.split(';');
        let media_type = params.next().unwrap_or_default().trim();
        if media_type.is_empty() || !params.any(|p| p.trim().eq_ignore_ascii_case("base64")) {
            return Err(ProviderError::invalid_request(format!(
                "{provider}: data: image URLs must be `data:<media type>;base64,<data>` (such as `data:image/png;base64,...`)"
            )));
        }
        return Ok(Image::Base64 { media_type, data });
    }
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(Image::Url(url));
    }
    let shown: String = url.chars().take(40).collect();
    Err(ProviderError::invalid_request(format!(
        "{provider}: image URLs must be http(s) or base64 data: URLs, not `{shown}`"
    )))
}

/// Sets `body[key]` when `value` is `Some`.
pub fn put<T: Serialize>(body: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(value) = value.and_then(|v| serde_json::to_value(v).ok()) {
        body.insert(key.to_owned(), value);
    }
}

/// Encodes a request body; failing to is the plugin's fault.
pub fn json_body<T: Serialize>(body: &T) -> Result<Vec<u8>, ProviderError> {
    serde_json::to_vec(body)
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode the request: {e}")))
}

/// Deserializes an entry's `options` into `T` (give it `#[serde(deny_unknown_fields)]`
/// so that typos are refused); no options at all is `T::default()`. Errors name the
/// plugin and serde's reason (`unknown field `x`, expected one of ...`).
pub fn options<T: DeserializeOwned + Default>(
    plugin: &str,
    config: &ProviderConfig,
) -> Result<T, ProviderError> {
    match &config.options {
        Value::Null => Ok(T::default()),
        options => serde_json::from_value(options.clone())
            .map_err(|e| ProviderError::invalid_request(format!("{plugin} options: {e}"))),
    }
}

/// Refuses any option, for providers that take none.
pub fn no_options(plugin: &str, config: &ProviderConfig) -> Result<(), ProviderError> {
    match &config.options {
        Value::Null => Ok(()),
        Value::Object(options) if options.is_empty() => Ok(()),
        _ => Err(ProviderError::invalid_request(format!(
            "{plugin} takes no options; remove the entry's `options`"
        ))),
    }
}

/// The entry's base URL (see [`base_url`]), refused unless it is http(s).
pub fn http_base_url(
    plugin: &str,
    config: &ProviderConfig,
    default: &str,
) -> Result<String, ProviderError> {
    let url = base_url(config, default);
    if url.starts_with("https://") || url.starts_with("http://") {
        return Ok(url);
    }
    Err(ProviderError::invalid_request(format!(
        "{plugin} base_url `{url}` is not an http(s) URL"
    )))
}

/// Parses an upstream's 2xx body as JSON; a body that is not is the upstream's fault.
pub fn json_answer(upstream: &str, body: &[u8]) -> Result<Value, ProviderError> {
    serde_json::from_slice(body).map_err(|e| {
        ProviderError::new(
            provider_sdk::ErrorKind::ProviderService,
            format!("{upstream} sent an answer that is not JSON: {e}"),
        )
    })
}

/// The entry's base URL without a trailing `/` ([`ProviderConfig::base_url_or`]).
pub fn base_url(config: &ProviderConfig, default: &str) -> String {
    config.base_url_or(default)
}
