//! The plugin side of the boundary: wraps a [`Provider`] into the root module.
//!
//! Every function here runs inside `catch_unwind`: a panic that crossed an `extern "C"`
//! boundary would abort the host, so it becomes a [`ErrorKind::PluginFault`] instead.

use std::panic::{catch_unwind, AssertUnwindSafe};

use abi_stable::{
    prefix_type::PrefixTypeTrait,
    sabi_trait::TD_Opaque,
    std_types::{ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
};
use serde::Serialize;

use super::{
    extension, FfiDecoder, FfiDecoderBox, FfiDecoder_TO, FfiHttpRequest, FfiHttpResponse,
    FfiLocalResponse, FfiOutbound, FfiProvider, FfiProviderBox, FfiProvider_TO, PluginModule,
    PluginModuleRef,
};
use crate::{
    ChatRequest, ErrorKind, Header, HttpResponse, LocalResponse, Outbound, Provider,
    ProviderConfig, ProviderError, StreamDecoder, StreamEvent, SDK_VERSION,
};

/// Exports `$provider` (a type implementing [`crate::Provider`]) as this library's plugin.
///
/// Call it once, at the root of a `cdylib` crate.
#[macro_export]
macro_rules! export_provider {
    ($provider:ty) => {
        #[doc(hidden)]
        #[no_mangle]
        pub static _1as_0lib_1header_0root_bmodule_bloader: $crate::abi::export::LibHeader = {
            extern "C" fn load_root_module() -> $crate::abi::export::RootModuleResult {
                $crate::abi::export::call_root_module_loader(
                    $crate::abi::export::root_module::<$provider>,
                )
            }
            // SAFETY: `load_root_module` returns the `PluginModuleRef` the header names.
            unsafe { $crate::abi::export::lib_header(load_root_module) }
        };
    };
}

#[doc(hidden)]
pub use abi_stable::library::{LibHeader, RootModuleResult};

#[doc(hidden)]
pub fn call_root_module_loader(loader: fn() -> PluginModuleRef) -> RootModuleResult {
    abi_stable::library::__call_root_module_loader(loader)
}

/// # Safety
/// `constructor` must return the root module of type [`PluginModuleRef`].
#[doc(hidden)]
pub const unsafe fn lib_header(constructor: extern "C" fn() -> RootModuleResult) -> LibHeader {
    unsafe {
        LibHeader::from_constructor::<PluginModuleRef>(
            constructor,
            abi_stable::library::CheckTypeLayout::Yes,
        )
    }
}

/// The root module for provider `P`.
#[doc(hidden)]
pub fn root_module<P: Provider>() -> PluginModuleRef {
    quiet_panics();
    let module = PluginModule {
        manifest: manifest::<P>,
        conformance: conformance::<P>,
        construct: construct::<P>,
    };
    // Leaked once per library: the host never unloads plugins (see docs/architecture.md).
    module.leak_into_prefix()
}

extern "C" fn manifest<P: Provider>() -> RResult<RString, RString> {
    guard(|| {
        let mut manifest = P::manifest();
        manifest.sdk_version = SDK_VERSION.to_owned();
        let json = to_json(&manifest)?;
        // `cfg!(panic)` is the same for every crate of one build, so the SDK's own
        // expansion tells how the whole plugin was built. Only `abort` is written: an
        // unwinding plugin's manifest stays byte for byte what older hosts (which
        // refuse unknown manifest members) read, and an older host refuses an
        // abort-built plugin for the unknown member, which is what it should do.
        if cfg!(panic = "unwind") {
            return Ok(json);
        }
        let mut value: serde_json::Value = serde_json::from_str(json.as_str())
            .map_err(|e| ProviderError::plugin_fault(format!("manifest JSON: {e}")))?;
        value[super::BUILD_MEMBER] = serde_json::json!({ "panic": "abort" });
        to_json(&value)
    })
}

extern "C" fn conformance<P: Provider>() -> RResult<RString, RString> {
    guard(|| to_json(&P::conformance()))
}

extern "C" fn construct<P: Provider>(config: RStr<'_>) -> RResult<FfiProviderBox, RString> {
    guard(|| {
        let config: ProviderConfig = serde_json::from_str(config.as_str())
            .map_err(|e| ProviderError::invalid_request(format!("bad provider config: {e}")))?;
        let provider = P::new(config)?;
        let auth = to_json(&provider.auth())?;
        let instance = Instance { provider, auth };
        Ok(FfiProvider_TO::from_value(instance, TD_Opaque))
    })
}

struct Instance<P> {
    provider: P,
    auth: RString,
}

impl<P: Provider> Instance<P> {
    /// Answers an extension call (see [`extension`]) as a status-0 local response.
    fn extension(&self, call: &str) -> Result<FfiOutbound, ProviderError> {
        let call: extension::Call = serde_json::from_str(call)
            .map_err(|e| ProviderError::invalid_request(format!("bad extension call: {e}")))?;
        let answer = match call {
            extension::Call::NativeRequest { query } => to_json(&self.provider.native_request(
                query.protocol,
                &query.model,
                query.stream,
            )?)?,
            extension::Call::BuildEmbeddingRequest { request } => {
                return Ok(ffi_outbound(
                    self.provider.build_embedding_request(&request)?,
                ));
            }
            extension::Call::ParseEmbeddingResponse { response } => {
                let headers: Vec<Header<'_>> = response
                    .headers
                    .iter()
                    .map(|(n, v)| Header::new(n, v))
                    .collect();
                let view = HttpResponse::new(response.status, &headers, response.body.as_bytes());
                to_json(&self.provider.parse_embedding_response(&view)?)?
            }
            extension::Call::NativeRequestsReusable => {
                to_json(&self.provider.native_requests_reusable())?
            }
        };
        Ok(FfiOutbound::Local(FfiLocalResponse {
            status: extension::ANSWER_STATUS,
            headers: RVec::new(),
            chunks: vec![answer.into_bytes()].into(),
            interval_ms: 0,
        }))
    }
}

impl<P: Provider> FfiProvider for Instance<P> {
    fn auth(&self) -> RString {
        self.auth.clone()
    }

    fn build_request(&self, request: RStr<'_>) -> RResult<FfiOutbound, RString> {
        if request.as_str().starts_with(extension::PREFIX) {
            return guard(|| self.extension(request.as_str()));
        }
        guard(|| {
            let request: ChatRequest = serde_json::from_str(request.as_str())
                .map_err(|e| ProviderError::invalid_request(format!("bad chat request: {e}")))?;
            Ok(ffi_outbound(self.provider.build_request(&request)?))
        })
    }

    fn health_request(&self) -> RResult<ROption<FfiOutbound>, RString> {
        guard(|| Ok(self.provider.health_request()?.map(ffi_outbound).into()))
    }

    fn parse_response(&self, response: FfiHttpResponse<'_>) -> RResult<RString, RString> {
        guard(|| to_json(&self.provider.parse_response(&view(&response))?))
    }

    fn classify_error(&self, response: FfiHttpResponse<'_>) -> RString {
        match guard(|| to_json(&self.provider.classify_error(&view(&response)))) {
            RResult::ROk(json) | RResult::RErr(json) => json,
        }
    }

    fn stream_decoder(&self) -> RResult<FfiDecoderBox, RString> {
        guard(|| {
            let decoder = Decoder {
                inner: self.provider.stream_decoder(),
                events: Vec::new(),
                poisoned: false,
            };
            Ok(FfiDecoder_TO::from_value(decoder, TD_Opaque))
        })
    }
}

struct Decoder<D> {
    inner: D,
    events: Vec<StreamEvent>,
    poisoned: bool,
}

impl<D: StreamDecoder> Decoder<D> {
    fn run(
        &mut self,
        step: impl FnOnce(&mut D, &mut Vec<StreamEvent>) -> Result<(), ProviderError>,
    ) -> RResult<RString, RString> {
        if self.poisoned {
            return RResult::RErr(error_json(&ProviderError::plugin_fault(
                "stream decoder used after it panicked",
            )));
        }
        self.events.clear();
        let (inner, events) = (&mut self.inner, &mut self.events);
        match catch_unwind(AssertUnwindSafe(|| step(inner, events))) {
            Ok(Ok(())) if events.is_empty() => RResult::ROk(RString::new()),
            Ok(Ok(())) => match to_json(&*events) {
                Ok(json) => RResult::ROk(json),
                Err(e) => RResult::RErr(error_json(&e)),
            },
            // The events decoded before the failure travel with it, so that text that
            // arrived in the same read as an error event still reaches the client.
            Ok(Err(error)) => RResult::RErr(failure_json(&error, events)),
            Err(payload) => {
                self.poisoned = true;
                RResult::RErr(error_json(&panic_error(payload.as_ref())))
            }
        }
    }
}

impl<D: StreamDecoder> FfiDecoder for Decoder<D> {
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> RResult<RString, RString> {
        if bytes.is_empty() && !self.poisoned {
            // The completion query (see `FfiDecoder`); a panic counts as not complete.
            let inner = &self.inner;
            let complete = catch_unwind(AssertUnwindSafe(|| inner.is_complete())).unwrap_or(false);
            return RResult::ROk(if complete {
                "[]".into()
            } else {
                RString::new()
            });
        }
        self.run(|d, events| d.feed(bytes.as_slice(), events))
    }

    fn finish(&mut self) -> RResult<RString, RString> {
        self.run(|d, events| d.finish(events))
    }
}

fn ffi_outbound(outbound: Outbound) -> FfiOutbound {
    match outbound {
        Outbound::Http(http) => FfiOutbound::Http(FfiHttpRequest {
            method: http.method.into(),
            url: http.url.into(),
            headers: pairs(http.headers),
            body: http.body.into(),
        }),
        Outbound::Local(local) => FfiOutbound::Local(local_response(local)),
    }
}

fn view<'a>(response: &FfiHttpResponse<'a>) -> HttpResponse<'a> {
    HttpResponse::new(
        response.status,
        response.headers.as_slice(),
        response.body.as_slice(),
    )
}

fn pairs(headers: Vec<(String, String)>) -> RVec<Tuple2<RString, RString>> {
    headers
        .into_iter()
        .map(|(n, v)| Tuple2(n.into(), v.into()))
        .collect()
}

fn local_response(local: LocalResponse) -> FfiLocalResponse {
    FfiLocalResponse {
        status: local.status,
        headers: pairs(local.headers),
        chunks: local.chunks.into_iter().map(RVec::from).collect(),
        interval_ms: local.interval_ms,
    }
}

fn to_json<T: Serialize + ?Sized>(value: &T) -> Result<RString, ProviderError> {
    serde_json::to_string(value)
        .map(RString::from)
        .map_err(|e| ProviderError::plugin_fault(format!("cannot encode a value as JSON: {e}")))
}

fn error_json(error: &ProviderError) -> RString {
    serde_json::to_string(error)
        .unwrap_or_else(|_| r#"{"kind":"plugin_fault","message":"unencodable error"}"#.to_owned())
        .into()
}

/// A decoder failure: the `ProviderError` with the events decoded before it.
fn failure_json(error: &ProviderError, events_before: &[StreamEvent]) -> RString {
    #[derive(Serialize)]
    struct Failure<'a> {
        #[serde(flatten)]
        error: &'a ProviderError,
        #[serde(skip_serializing_if = "<[StreamEvent]>::is_empty")]
        events_before: &'a [StreamEvent],
    }
    serde_json::to_string(&Failure {
        error,
        events_before,
    })
    .map(RString::from)
    .unwrap_or_else(|_| error_json(error))
}

fn panic_error(payload: &(dyn std::any::Any + Send)) -> ProviderError {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string payload".to_owned());
    let at = LAST_PANIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .take()
        .map(|at| format!(" (at {at})"))
        .unwrap_or_default();
    ProviderError::new(
        ErrorKind::PluginFault,
        format!("plugin panicked: {what}{at}"),
    )
}

/// Where this plugin's latest panic happened, recorded by [`quiet_panics`]' hook for
/// [`panic_error`] to report. A global rather than a thread-local (a plugin keeps no
/// thread-locals): two threads panicking at once may swap their locations, which only
/// mislabels a bug report.
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Replaces this plugin's panic hook, once, with one that records where a panic
/// happened instead of printing it. Every panic of a plugin is caught at the boundary
/// and reported as a `plugin_fault` error with that location; the default hook would
/// also write it, with a backtrace under `RUST_BACKTRACE`, to the host's stderr, above
/// whatever the host reports (`provider-host validate`'s check list). A `cdylib` links
/// its own copy of std, so this hook sees this plugin's panics only, never the host's.
fn quiet_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            if let Some(at) = info.location() {
                let mut last = LAST_PANIC
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner());
                *last = Some(format!("{}:{}:{}", at.file(), at.line(), at.column()));
            }
        }));
    });
}

/// Runs `f`, turning both its error and any panic into a JSON `ProviderError`.
fn guard<T>(f: impl FnOnce() -> Result<T, ProviderError>) -> RResult<T, RString> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(value)) => RResult::ROk(value),
        Ok(Err(error)) => RResult::RErr(error_json(&error)),
        Err(payload) => RResult::RErr(error_json(&panic_error(payload.as_ref()))),
    }
}
