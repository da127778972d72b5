//! Executes what a provider asked for and hands back the upstream's status, headers
//! and body as a stream of byte chunks.
//!
//! One pooled HTTP client serves every provider (two, in fact: one whose resolver
//! refuses private addresses, one for entries that allow them; see [`client`]). The
//! API key is added here, the only place it touches the wire. `Outbound::Local` answers are replayed
//! chunk by chunk with the pauses the plugin asked for, so a local provider travels the
//! same decode path as a remote one.

mod client;
pub mod guard;
pub mod rawlog;
pub mod redact;
mod timed;

use std::{error::Error as StdError, pin::Pin, sync::Arc, time::Duration};

use bytes::Bytes;
use futures_util::{stream, Stream, StreamExt, TryStreamExt};
use http_body_util::{BodyDataStream, Full};
use hyper::{
    header::{HeaderName, HeaderValue, AUTHORIZATION, PROXY_AUTHORIZATION},
    Method, Request, Uri,
};
use provider_sdk::{AuthScheme, ErrorKind, HttpRequest, LocalResponse, Outbound, ProviderError};
use std::time::Instant;

use crate::{config::Timeouts, registry::ReadyProvider};
use client::HttpClient;
use guard::{Policy, Refused};
use rawlog::RawLog;
use redact::Redactor;

/// An upstream body, chunk by chunk.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, ProviderError>> + Send>>;

/// The most of an upstream error body that is read; the rest is dropped.
pub const ERROR_BODY_CAP: usize = 64 * 1024;

/// The most of a successful non-streamed body that is read.
pub const RESPONSE_BODY_CAP: usize = 32 * 1024 * 1024;

/// An upstream response whose body has not been read yet.
pub struct UpstreamResponse {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: BodyStream,
}

/// The host's HTTP side: pooled clients, timeouts and the address guard.
#[derive(Clone)]
pub struct Transport {
    public_only: HttpClient,
    allow_private: HttpClient,
    timeouts: Timeouts,
    /// The configured proxy's URL; `None` means no proxy at all.
    proxy: Option<url::Url>,
    /// The `proxy-authorization` of plain `http` calls through a proxy with credentials
    /// (`https` calls send it on the `CONNECT` that opens their tunnel).
    proxy_auth: Option<HeaderValue>,
    raw: Option<Arc<RawLog>>,
    urls: Arc<UrlCache>,
}

/// The URLs plugins built, parsed: a plugin builds the same few URLs for every request,
/// and parsing one (with its host name's IDNA mapping) was ~3% of the host's CPU per
/// request in the profile, a lookup and a clone a fraction of that.
#[derive(Default)]
struct UrlCache(std::sync::Mutex<std::collections::HashMap<String, Arc<ParsedUrl>>>);

/// A URL in both forms: the `url` crate's, which checks it (IDNA host names included)
/// and edits its query, and the `Uri` the HTTP client takes. Shared, so a request
/// takes it from the cache without copying.
struct ParsedUrl {
    url: url::Url,
    uri: Uri,
}

/// Why a URL a plugin built cannot be sent.
#[derive(Debug, thiserror::Error)]
enum BadUrl {
    #[error(transparent)]
    Url(#[from] url::ParseError),
    #[error(transparent)]
    Uri(#[from] hyper::http::uri::InvalidUri),
}

/// More distinct URLs than this and the cache starts over (plugins that put something
/// per request in their URLs gain nothing from it, and memory stays bounded).
const URL_CACHE_ENTRIES: usize = 256;

impl UrlCache {
    fn parse(&self, text: &str) -> Result<Arc<ParsedUrl>, BadUrl> {
        let lock = || self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(parsed) = lock().get(text) {
            return Ok(parsed.clone());
        }
        let url = url::Url::parse(text)?;
        let uri = to_uri(&url)?;
        let parsed = Arc::new(ParsedUrl { url, uri });
        let mut urls = lock();
        if urls.len() >= URL_CACHE_ENTRIES {
            urls.clear();
        }
        urls.insert(text.to_owned(), parsed.clone());
        Ok(parsed)
    }
}

/// `url` with the key appended to its query as `name` (percent-encoded), in both forms.
fn with_query_key(
    url: &url::Url,
    name: &str,
    key: &str,
) -> Result<(url::Url, Uri), hyper::http::uri::InvalidUri> {
    let mut url = url.clone();
    url.query_pairs_mut().append_pair(name, key);
    let uri = to_uri(&url)?;
    Ok((url, uri))
}

/// The client's form of a checked URL (ASCII by then: host names in punycode, the rest
/// percent-encoded).
fn to_uri(url: &url::Url) -> Result<Uri, hyper::http::uri::InvalidUri> {
    url.as_str().parse()
}

impl Transport {
    /// Clients with the given timeouts, through `proxy` when the config names one and
    /// through none otherwise (the environment's `HTTP_PROXY` is ignored). A `proxy`
    /// that is not a URL was refused by config validation; here it means no proxy.
    ///
    /// Redirects are not followed (they would bypass the checks on the URL the plugin
    /// built): a 3xx goes back to the plugin like any other status.
    pub fn new(timeouts: Timeouts, proxy: Option<&str>, raw: Option<Arc<RawLog>>) -> Transport {
        let proxy = proxy.and_then(|p| url::Url::parse(p).ok());
        let proxy_auth = proxy.as_ref().and_then(basic_auth);
        let proxy_uri = proxy.as_ref().and_then(|p| {
            let mut bare = p.clone();
            // Credentials travel in the header, never in the URI the connector sees.
            let _ = bare.set_username("");
            let _ = bare.set_password(None);
            to_uri(&bare).ok()
        });
        let tls = client::tls_config();
        let client = |policy| {
            client::build(
                policy,
                timeouts.connect(),
                proxy_uri.clone(),
                proxy_auth.clone(),
                tls.clone(),
            )
        };
        Transport {
            public_only: client(Policy::PublicOnly),
            allow_private: client(Policy::AllowPrivate),
            timeouts,
            proxy,
            proxy_auth,
            raw,
            urls: Arc::default(),
        }
    }

    /// The same clients (and connection pools) with another raw log.
    pub fn with_raw_log(&self, raw: Option<Arc<RawLog>>) -> Transport {
        Transport {
            raw,
            ..self.clone()
        }
    }

    /// Performs `outbound` for `provider`; nothing of it outlives `deadline` (the
    /// request's, retries included).
    pub async fn send(
        &self,
        provider: &ReadyProvider,
        outbound: Outbound,
        deadline: Instant,
    ) -> Result<UpstreamResponse, ProviderError> {
        match outbound {
            Outbound::Local(local) => Ok(replay(local)),
            Outbound::Http(http) => self.send_http(provider, http, deadline).await,
        }
    }

    async fn send_http(
        &self,
        provider: &ReadyProvider,
        http: HttpRequest,
        request_deadline: Instant,
    ) -> Result<UpstreamResponse, ProviderError> {
        let started = Instant::now();
        let policy = if provider.allow_private_network {
            Policy::AllowPrivate
        } else {
            Policy::PublicOnly
        };
        let parsed = self.urls.parse(&http.url).map_err(|e| {
            ProviderError::plugin_fault(format!(
                "the plugin built an invalid URL `{}`: {e}",
                http.url
            ))
        })?;
        if !matches!(parsed.url.scheme(), "http" | "https") {
            return Err(ProviderError::plugin_fault(format!(
                "the plugin built a non-HTTP URL `{}`",
                http.url
            )));
        }
        // Literal IPs never reach the resolver: check them here. Through a proxy the
        // proxy resolves the target, so the host resolves and checks it first, and
        // checks a literal proxy address as it would the target's.
        if let Some(host) = parsed.url.host_str() {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            guard::check(host, policy, self.proxy.is_some())
                .await
                .map_err(|refused| {
                    ProviderError::new(ErrorKind::Connection, refused.to_string())
                })?;
        }
        if let Some(proxy) = self.proxy.as_ref().and_then(|p| p.host_str()) {
            let proxy = proxy.trim_start_matches('[').trim_end_matches(']');
            guard::check(proxy, policy, false)
                .await
                .map_err(|refused| {
                    ProviderError::new(ErrorKind::Connection, refused.to_string())
                })?;
        }
        let method = Method::from_bytes(http.method.as_bytes()).map_err(|_| {
            ProviderError::plugin_fault(format!(
                "the plugin built an invalid method `{}`",
                http.method
            ))
        })?;
        // The cached URL as it is, or a copy of it with the key in its query.
        let (url, uri) = match (&provider.api_key, provider.plugin.auth()) {
            (Some(key), AuthScheme::Query { name }) => {
                let (url, uri) = with_query_key(&parsed.url, name, key.expose()).map_err(|_| {
                    ProviderError::plugin_fault(format!(
                        "the query parameter `{name}` does not fit in the plugin's URL"
                    ))
                })?;
                (std::borrow::Cow::Owned(url), uri)
            }
            _ => (std::borrow::Cow::Borrowed(&parsed.url), parsed.uri.clone()),
        };
        let client = match policy {
            Policy::PublicOnly => &self.public_only,
            Policy::AllowPrivate => &self.allow_private,
        };
        // The raw log's record of the request, and what it must hide of the response's
        // (built only when the log is on: the key's encodings cost a few allocations).
        let exchange = self.raw.as_ref().map(|log| {
            let redactor = redactor_for(provider);
            let id = RawLog::exchange();
            let mut headers = http.headers.clone();
            match (provider.plugin.auth(), &provider.api_key) {
                (AuthScheme::Bearer, Some(_)) => {
                    headers.push(("authorization".to_owned(), "***".to_owned()))
                }
                (AuthScheme::Header { name }, Some(_)) => {
                    headers.push((name.clone(), "***".to_owned()))
                }
                _ => {}
            }
            let mut record = log.record(
                "request",
                &provider.name,
                id,
                &headers,
                &http.body,
                &redactor,
            );
            record.method = Some(http.method.clone());
            record.url = Some(redactor.redact(url.as_str()));
            log.emit(&record);
            (id, redactor)
        });
        let plain_http = url.scheme() == "http";
        let mut request = Request::new(Full::new(Bytes::from(http.body)));
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        let headers = request.headers_mut();
        for (name, value) in &http.headers {
            headers.append(header_name(name)?, header_value(name, value)?);
        }
        if let Some(key) = &provider.api_key {
            let secret = |text: &str| {
                // Marked sensitive: HTTP/2's header compression leaves it out of its table.
                let mut value = HeaderValue::from_str(text).map_err(|_| {
                    ProviderError::new(
                        ErrorKind::Authentication,
                        format!(
                            "the API key of {} holds characters a header cannot carry",
                            provider.name
                        ),
                    )
                })?;
                value.set_sensitive(true);
                Ok::<_, ProviderError>(value)
            };
            match provider.plugin.auth() {
                AuthScheme::Bearer => {
                    let value = secret(&format!("Bearer {}", key.expose()))?;
                    headers.insert(AUTHORIZATION, value);
                }
                AuthScheme::Header { name } => {
                    headers.insert(header_name(name)?, secret(key.expose())?);
                }
                AuthScheme::Query { .. } | AuthScheme::None => {}
            }
        }
        if let (Some(auth), true) = (&self.proxy_auth, plain_http) {
            headers.insert(PROXY_AUTHORIZATION, auth.clone());
        }
        let deadline = (started + self.timeouts.total()).min(request_deadline);
        let first_byte = self
            .timeouts
            .first_byte()
            .min(deadline.saturating_duration_since(started));
        let response = match tokio::time::timeout(first_byte, client.request(request)).await {
            Err(_) => {
                return Err(ProviderError::new(
                    ErrorKind::Timeout,
                    format!(
                        "{} sent no response within {:.1}s",
                        provider.name,
                        first_byte.as_secs_f64()
                    ),
                ))
            }
            Ok(Err(e)) => return Err(transport_error(&e)),
            Ok(Ok(response)) => response,
        };
        let status = response.status().as_u16();
        let headers: Vec<(String, String)> = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let body = BodyDataStream::new(response.into_body()).map_err(|e| transport_error(&e));
        let mut body: BodyStream =
            Box::pin(timed::TimedBody::new(body, self.timeouts.idle(), deadline));
        if let (Some(log), Some((id, redactor))) = (&self.raw, exchange) {
            let mut record = log.record("response", &provider.name, id, &headers, &[], &redactor);
            record.status = Some(status);
            body = Box::pin(rawlog::Teed::new(body, log.clone(), record, redactor));
        }
        Ok(UpstreamResponse {
            status,
            headers,
            body,
        })
    }
}

/// What must never be shown of `provider`'s traffic: its API key, in every form.
pub fn redactor_for(provider: &ReadyProvider) -> Redactor {
    match &provider.api_key {
        Some(key) => Redactor::new(&[key.expose()]),
        None => Redactor::default(),
    }
}

/// A header the plugin named, checked (the SDK's strings may hold anything).
fn header_name(name: &str) -> Result<HeaderName, ProviderError> {
    HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
        ProviderError::plugin_fault(format!("the plugin built an invalid header name `{name}`"))
    })
}

/// A header value the plugin built; the value is not quoted back, it may be a secret.
fn header_value(name: &str, value: &str) -> Result<HeaderValue, ProviderError> {
    HeaderValue::from_str(value).map_err(|_| {
        ProviderError::plugin_fault(format!(
            "the plugin built a value of header `{name}` that a header cannot carry"
        ))
    })
}

/// `Basic` credentials for a proxy URL's `user:password@`, percent-decoded as the URL
/// encodes them; `None` without a user name.
fn basic_auth(proxy: &url::Url) -> Option<HeaderValue> {
    use base64::Engine as _;
    if proxy.username().is_empty() {
        return None;
    }
    let decode = |text: &str| percent_encoding::percent_decode_str(text).collect::<Vec<u8>>();
    let mut credentials = decode(proxy.username());
    credentials.push(b':');
    credentials.extend(decode(proxy.password().unwrap_or("")));
    let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    value.set_sensitive(true);
    Some(value)
}

/// Maps a client error to a kind, with every cause in the message (none of which holds
/// the URL, which may carry a key in its query). A refusal of the address guard is
/// said as such; a connection that timed out is a timeout.
fn transport_error(error: &(dyn StdError + 'static)) -> ProviderError {
    let mut timed_out = false;
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<Refused>() {
            return ProviderError::new(ErrorKind::Connection, refused.to_string());
        }
        timed_out |= cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::TimedOut);
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    let kind = if timed_out {
        ErrorKind::Timeout
    } else {
        ErrorKind::Connection
    };
    ProviderError::new(kind, message)
}

fn replay(local: LocalResponse) -> UpstreamResponse {
    let interval = Duration::from_millis(u64::from(local.interval_ms));
    let body =
        stream::iter(local.chunks.into_iter().enumerate()).then(move |(i, chunk)| async move {
            if i > 0 && !interval.is_zero() {
                tokio::time::sleep(interval).await;
            }
            Ok(Bytes::from(chunk))
        });
    UpstreamResponse {
        status: local.status,
        headers: local.headers,
        body: Box::pin(body),
    }
}

/// Reads a body up to `cap` bytes; what lies beyond is not read. The flag tells
/// whether the body was cut.
pub async fn read_capped(
    mut body: BodyStream,
    cap: usize,
) -> Result<(Vec<u8>, bool), ProviderError> {
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk?;
        let room = cap - out.len();
        if chunk.len() > room {
            out.extend_from_slice(&chunk[..room]);
            return Ok((out, true));
        }
        out.extend_from_slice(&chunk);
    }
    Ok((out, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_key_is_appended_encoded_to_a_copy_and_the_cached_url_keeps_none() {
        let cache = UrlCache::default();
        let text = "https://generativelanguage.example/v1beta/models/m:generate?alt=sse";
        let parsed = cache.parse(text).unwrap();
        let (url, uri) = with_query_key(&parsed.url, "key", "sk/a b&c").unwrap();
        assert_eq!(url.query(), Some("alt=sse&key=sk%2Fa+b%26c"));
        assert_eq!(uri.query(), url.query());
        assert_eq!(uri.path(), "/v1beta/models/m:generate");
        let again = cache.parse(text).unwrap();
        assert!(
            Arc::ptr_eq(&parsed, &again),
            "the second request reuses the parse"
        );
        assert_eq!(
            again.uri.query(),
            Some("alt=sse"),
            "the key is never cached"
        );
        assert!(matches!(cache.parse("not a url"), Err(BadUrl::Url(_))));
    }
}
