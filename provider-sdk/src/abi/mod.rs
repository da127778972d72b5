//! The stable ABI between the host and a plugin. Everything that touches `abi_stable`
//! is in this module, so the ABI crate can be replaced without touching a provider.
//!
//! The boundary is deliberately narrow: a root module of three functions and two small
//! trait objects. Its layout is frozen at 1.0; calls added in 1.x go through the
//! JSON [`extension`] channel, so a plugin built against an older 1.x SDK keeps loading. Canonical values cross it as JSON text, which keeps the layout that
//! `abi_stable` checks tiny and lets the canonical types grow (new optional fields)
//! without an ABI break; bodies cross as borrowed byte slices, never copied by the ABI.
//! Every plugin-side entry point catches panics ([`export`]); every value a plugin
//! returns is turned into a host-owned value before the call returns ([`load`]).

// abi_stable 0.11's `sabi_trait` expansion trips this newer lint; the code is its own.
#![allow(non_local_definitions)]

pub mod export;
pub mod load;

use abi_stable::{
    declare_root_module_statics,
    library::RootModule,
    package_version_strings, sabi_trait,
    sabi_types::VersionStrings,
    std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec, Tuple2},
    StableAbi,
};

use crate::http::Header;

/// The root module a plugin exports.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModuleRef)))]
#[sabi(missing_field(option))]
pub struct PluginModule {
    /// The manifest, as JSON.
    pub manifest: extern "C" fn() -> RResult<RString, RString>,
    /// The conformance material, as JSON.
    pub conformance: extern "C" fn() -> RResult<RString, RString>,
    /// Builds an instance from a `ProviderConfig` given as JSON.
    #[sabi(last_prefix_field)]
    pub construct: extern "C" fn(config: RStr<'_>) -> RResult<FfiProviderBox, RString>,
}

impl RootModule for PluginModuleRef {
    declare_root_module_statics! {PluginModuleRef}
    const BASE_NAME: &'static str = "provider_plugin";
    const NAME: &'static str = "provider_plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// A provider instance across the boundary. Errors are `ProviderError`s as JSON.
#[sabi_trait]
pub trait FfiProvider: Send + Sync {
    /// The `AuthScheme`, as JSON.
    fn auth(&self) -> RString;

    /// `Provider::build_request`, the request given as JSON.
    fn build_request(&self, request: RStr<'_>) -> RResult<FfiOutbound, RString>;

    /// `Provider::parse_response`; the answer is a `ChatResponse` as JSON.
    fn parse_response(&self, response: FfiHttpResponse<'_>) -> RResult<RString, RString>;

    /// `Provider::classify_error`; the answer is a `ProviderError` as JSON.
    fn classify_error(&self, response: FfiHttpResponse<'_>) -> RString;

    /// `Provider::stream_decoder`.
    fn stream_decoder(&self) -> RResult<FfiDecoderBox, RString>;

    /// `Provider::health_request`.
    #[sabi(last_prefix_field)]
    fn health_request(&self) -> RResult<ROption<FfiOutbound>, RString>;
}

/// The member `export_provider!` adds to the manifest JSON for build facts the layout
/// check cannot see (see [`load::BuildFacts`]); it is not part of [`crate::Manifest`],
/// so no plugin's source has to change for it.
pub const BUILD_MEMBER: &str = "$build";

/// How SDK 1.x grows without changing a layout.
///
/// abi_stable 0.11 lets a library's prefix types have *more* fields than the host
/// expects, never fewer: a host whose vtable gained a method refuses every plugin built
/// before (measured: "too many fields", by the SDK 1.0 fixture in the test suite). So
/// the layout above stays exactly 1.0's, and calls added in 1.x travel as JSON through
/// `build_request`: the host sends `{"$sdk_extension": <name>, ...}` only to plugins
/// whose manifest says they were built against an SDK that has the call, and the
/// plugin's SDK layer answers with a `Local` outbound of status 0 whose one chunk is
/// the answer's JSON (no real HTTP status is 0). One call,
/// `build_embedding_request`, answers with the provider's outbound itself (an HTTP
/// request, or a local answer with its real status), so bodies stay bytes.
pub mod extension {
    use serde::{Deserialize, Serialize};

    use crate::{EmbeddingAnswer, EmbeddingRequest, NativeQuery};

    /// How an extension call's JSON starts (serde writes fields in declaration order,
    /// without spaces), so a plugin tells one from a chat request by its first bytes.
    pub const PREFIX: &str = "{\"$sdk_extension\":";

    /// The status of the `Local` outbound that carries an extension's answer.
    pub const ANSWER_STATUS: u16 = 0;

    /// An extension call.
    #[derive(Debug, Clone, Serialize, Deserialize)]
    #[serde(tag = "$sdk_extension", rename_all = "snake_case")]
    pub enum Call {
        /// `Provider::native_request` (SDK 1.1); answers a `NativeRequest` or `null`.
        NativeRequest {
            /// What the host asks.
            query: NativeQuery,
        },
        /// `Provider::build_embedding_request` (SDK 1.2); answers with the provider's
        /// `Outbound` as it is, not as status-0 JSON.
        BuildEmbeddingRequest {
            /// The canonical request, model set to the provider's.
            request: EmbeddingRequest,
        },
        /// `Provider::parse_embedding_response` (SDK 1.2); answers an
        /// `EmbeddingResponse`.
        ParseEmbeddingResponse {
            /// The upstream's 2xx answer (its body as text: embeddings answers are JSON).
            response: EmbeddingAnswer,
        },
        /// `Provider::native_requests_reusable` (SDK 1.4); answers `true` or `false`.
        NativeRequestsReusable,
    }

    /// The SDK minor version (of 1.x) that introduced the embedding calls.
    pub const EMBEDDINGS_SINCE_MINOR: u64 = 2;

    /// The SDK minor version (of 1.x) that introduced [`Call::NativeRequestsReusable`].
    pub const REUSABLE_NATIVE_REQUESTS_SINCE_MINOR: u64 = 4;

    /// The JSON of a [`Call::BuildEmbeddingRequest`] around a request already encoded
    /// as JSON (what serde would write, without decoding the request again).
    pub fn build_embedding_request(request_json: &str) -> String {
        format!("{PREFIX}\"build_embedding_request\",\"request\":{request_json}}}")
    }

    /// The SDK minor version (of 1.x) that introduced `call`: older plugins are never
    /// sent it.
    pub fn since_minor(call: &Call) -> u64 {
        match call {
            Call::NativeRequest { .. } => 1,
            Call::BuildEmbeddingRequest { .. } | Call::ParseEmbeddingResponse { .. } => {
                EMBEDDINGS_SINCE_MINOR
            }
            Call::NativeRequestsReusable => REUSABLE_NATIVE_REQUESTS_SINCE_MINOR,
        }
    }
}

/// An owned provider instance.
pub type FfiProviderBox = FfiProvider_TO<'static, RBox<()>>;

/// A stream decoder across the boundary. Events come back as a JSON array, or as an
/// empty string when a piece completed no event.
///
/// An empty `feed` is a completion query (SDK 1.2, `StreamDecoder::is_complete`), which
/// needs no new vtable entry: the SDK layer answers `[]` (no events) once the stream
/// is complete and an empty string before. An older plugin answers an empty string to
/// an empty piece, so to the host it is never complete and its streams end when their
/// body does, as they always did; an older host reads `[]` as no events.
#[sabi_trait]
pub trait FfiDecoder: Send {
    /// `StreamDecoder::feed`.
    fn feed(&mut self, bytes: RSlice<'_, u8>) -> RResult<RString, RString>;

    /// `StreamDecoder::finish`.
    #[sabi(last_prefix_field)]
    fn finish(&mut self) -> RResult<RString, RString>;
}

/// An owned stream decoder.
pub type FfiDecoderBox = FfiDecoder_TO<'static, RBox<()>>;

/// `Outbound` across the boundary.
#[repr(u8)]
#[derive(StableAbi)]
pub enum FfiOutbound {
    /// `Outbound::Http`.
    Http(FfiHttpRequest),
    /// `Outbound::Local`.
    Local(FfiLocalResponse),
}

/// `HttpRequest` across the boundary.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiHttpRequest {
    /// Method.
    pub method: RString,
    /// URL.
    pub url: RString,
    /// Headers.
    pub headers: RVec<Tuple2<RString, RString>>,
    /// Body.
    pub body: RVec<u8>,
}

/// `LocalResponse` across the boundary.
#[repr(C)]
#[derive(StableAbi)]
pub struct FfiLocalResponse {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: RVec<Tuple2<RString, RString>>,
    /// Body pieces.
    pub chunks: RVec<RVec<u8>>,
    /// Pause between pieces.
    pub interval_ms: u32,
}

/// `HttpResponse` across the boundary, borrowed from the host.
#[repr(C)]
#[derive(StableAbi, Clone, Copy)]
pub struct FfiHttpResponse<'a> {
    /// Status.
    pub status: u16,
    /// Headers.
    pub headers: RSlice<'a, Header<'a>>,
    /// Body.
    pub body: RSlice<'a, u8>,
}

/// The symbol every plugin exports its root module under (abi_stable's mangled name).
/// Spelled out because `export_provider!` must name it without depending on
/// `abi_stable`'s proc macro, which only works in crates that depend on `abi_stable`.
#[doc(hidden)]
pub const ROOT_MODULE_SYMBOL: &str = "_1as_0lib_1header_0root_bmodule_bloader";

#[cfg(test)]
mod tests {
    use super::extension;

    #[test]
    fn a_spliced_embedding_call_is_what_serde_writes() {
        let request = crate::EmbeddingRequest::texts("m", vec!["a".into()]);
        let json = serde_json::to_string(&request).unwrap();
        let call = extension::Call::BuildEmbeddingRequest { request };
        assert_eq!(
            extension::build_embedding_request(&json),
            serde_json::to_string(&call).unwrap()
        );
        assert_eq!(extension::since_minor(&call), 2);
    }

    #[test]
    fn the_exported_symbol_is_the_one_abi_stable_looks_up() {
        assert_eq!(
            super::ROOT_MODULE_SYMBOL,
            abi_stable::library::ROOT_MODULE_LOADER_NAME
        );
    }
}
