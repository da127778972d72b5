//! The host side of the boundary: opens a plugin file and wraps what it exports in
//! plain Rust types. Every value a plugin returns is copied or parsed into a host-owned
//! value before the call returns, so nothing plugin-allocated outlives a call.

use std::{fmt, path::Path};

use abi_stable::{
    library::{lib_header_from_raw_library, LibraryError, RawLibrary},
    sabi_types::VersionNumber,
    std_types::{RResult, RSlice, RStr, RString},
};
use serde::de::DeserializeOwned;

use super::{
    extension, FfiDecoderBox, FfiHttpResponse, FfiOutbound, FfiProviderBox, PluginModuleRef,
};
use crate::{
    AuthScheme, ChatRequest, ChatResponse, Conformance, EmbeddingAnswer, EmbeddingRequest,
    EmbeddingResponse, HttpRequest, HttpResponse, LocalResponse, Manifest, NativeQuery,
    NativeRequest, Outbound, Protocol, ProviderConfig, ProviderError, StreamEvent, SDK_VERSION,
};

/// Why a file could not be opened as a plugin. `Display` gives one line: what is wrong
/// and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The dynamic loader refused the file (not a shared object, truncated, missing
    /// dependencies, wrong architecture).
    NotLoadable {
        /// The loader's own explanation.
        reason: String,
    },
    /// The file is a shared library but exports no provider root module.
    NotAProvider,
    /// The plugin was built with an incompatible `abi_stable`.
    AbiStableMismatch,
    /// The plugin was built against an SDK whose major version differs from the host's.
    SdkVersionMismatch {
        /// The SDK version the plugin was built against.
        plugin: String,
    },
    /// The plugin's root module layout is not the one this host expects.
    LayoutMismatch {
        /// The SDK version the plugin claims.
        plugin: String,
        /// The first line of the layout checker's report.
        detail: String,
    },
    /// The plugin's root module failed to initialize.
    InitFailed {
        /// What it said.
        reason: String,
    },
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let major = sdk_major();
        match self {
            OpenError::NotLoadable { reason } => {
                write!(f, "not a loadable shared library ({reason}): point the config at a plugin built with `cargo build --release`")
            }
            OpenError::NotAProvider => write!(
                f,
                "a shared library, but not a provider plugin (it exports no provider root module): build it with provider_sdk::export_provider!"
            ),
            OpenError::AbiStableMismatch => write!(
                f,
                "built with an incompatible abi_stable: rebuild the plugin against provider-sdk {major}.x"
            ),
            OpenError::SdkVersionMismatch { plugin } => write!(
                f,
                "built against provider-sdk {plugin}, this host speaks {major}.x: rebuild the plugin against provider-sdk {major}.x"
            ),
            OpenError::LayoutMismatch { plugin, detail } => write!(
                f,
                "its stable-ABI layout does not match provider-sdk {SDK_VERSION} although it claims provider-sdk {plugin} ({detail}): rebuild the plugin against provider-sdk {major}.x from a release, not a modified SDK"
            ),
            OpenError::InitFailed { reason } => {
                write!(f, "its root module failed to initialize ({reason}): fix the plugin")
            }
        }
    }
}

impl std::error::Error for OpenError {}

fn sdk_major() -> &'static str {
    SDK_VERSION.split('.').next().unwrap_or(SDK_VERSION)
}

/// What `export_provider!` records about the plugin's build that the layout check
/// cannot see. A plugin built before SDK 1.3, or built to unwind, records nothing:
/// [`PanicStrategy::Unknown`], which hosts accept (the workspace profile that built
/// every earlier plugin sets `panic = "unwind"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuildFacts {
    /// The plugin build's panic strategy.
    pub panic: PanicStrategy,
}

/// A build's `panic` setting, as far as the plugin recorded it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanicStrategy {
    /// Not recorded: built to unwind, or before the SDK recorded it.
    #[default]
    Unknown,
    /// `panic = "abort"`: a panic anywhere in the plugin ends the process it runs in.
    Abort,
}

/// A loaded plugin library. Libraries are never unloaded (see docs/architecture.md): values of
/// this type are cheap handles to a mapping that lives for the rest of the process.
#[derive(Clone, Copy)]
pub struct PluginLibrary {
    module: PluginModuleRef,
}

impl fmt::Debug for PluginLibrary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PluginLibrary")
    }
}

/// Opens the plugin at `path`, checking the ABI header, the SDK version and the layout
/// of the root module.
///
/// Load each version of a plugin from its own path: the dynamic loader hands back the
/// already-loaded library for a path (and inode) it has seen.
///
/// # Safety
/// Opening a library runs its static initializers: `path` must be a file the operator
/// trusts as code.
pub unsafe fn open(path: &Path) -> Result<PluginLibrary, OpenError> {
    let raw = RawLibrary::load_at(path).map_err(|e| describe(e, ""))?;
    // SAFETY: `raw` is leaked below on success, so the header's 'static references stay
    // valid; on failure nothing refers into the library once the error is owned.
    let header = match unsafe { lib_header_from_raw_library(&raw) } {
        Ok(header) => header,
        Err(e) => return Err(describe(e, "")),
    };
    let plugin_version = header.version_strings().version.as_str().to_owned();
    let built_with = VersionNumber::new(header.version_strings());
    let ours =
        VersionNumber::new(<PluginModuleRef as abi_stable::library::RootModule>::VERSION_STRINGS);
    match (built_with, ours) {
        (Ok(theirs), Ok(ours)) if theirs.major == ours.major => {}
        _ => {
            return Err(OpenError::SdkVersionMismatch {
                plugin: plugin_version,
            })
        }
    }
    let module = header
        .init_root_module::<PluginModuleRef>()
        .map_err(|e| describe(e, &plugin_version))?;
    std::mem::forget(raw);
    Ok(PluginLibrary { module })
}

fn describe(error: LibraryError, plugin_version: &str) -> OpenError {
    match error {
        LibraryError::OpenError { err, .. } => OpenError::NotLoadable {
            reason: strip_path_prefix(&err.to_string()),
        },
        LibraryError::GetSymbolError { .. } => OpenError::NotAProvider,
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => {
            OpenError::AbiStableMismatch
        }
        LibraryError::ParseVersionError(_) | LibraryError::IncompatibleVersionNumber { .. } => {
            OpenError::SdkVersionMismatch {
                plugin: plugin_version.to_owned(),
            }
        }
        LibraryError::AbiInstability(report) => OpenError::LayoutMismatch {
            plugin: plugin_version.to_owned(),
            detail: first_layout_difference(&report.to_string()),
        },
        LibraryError::RootModule { err, .. } => OpenError::InitFailed {
            reason: one_line(&err.to_string()),
        },
        LibraryError::Many(mut list) => match list.pop() {
            Some(e) => describe(e, plugin_version),
            None => OpenError::InitFailed {
                reason: "unknown loader error".to_owned(),
            },
        },
    }
}

/// dlopen errors start with the path, which the caller reports already.
fn strip_path_prefix(message: &str) -> String {
    let message = one_line(message);
    match message.split_once(": ") {
        Some((path, rest)) if path.starts_with('/') || path.contains(".so") => rest.to_owned(),
        _ => message,
    }
}

/// abi_stable's layout report is a long, multi-line dump; keep the first line that
/// names what differs.
fn first_layout_difference(report: &str) -> String {
    let interesting = report
        .lines()
        .map(str::trim)
        .find(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("error") || l.contains("mismatch") || l.contains("different")
        })
        .or_else(|| report.lines().map(str::trim).find(|l| !l.is_empty()))
        .unwrap_or("layouts differ");
    let mut line = interesting.trim_end_matches(':').to_owned();
    if line.len() > 160 {
        let mut cut = 160;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push_str("...");
    }
    line
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

impl PluginLibrary {
    /// The plugin's manifest.
    pub fn manifest(&self) -> Result<Manifest, ProviderError> {
        self.manifest_and_build().map(|(manifest, _)| manifest)
    }

    /// How the plugin was built, as far as the ABI check cannot see (read from the
    /// manifest call, which runs no code of the plugin's provider beyond `manifest()`).
    pub fn build_facts(&self) -> Result<BuildFacts, ProviderError> {
        self.manifest_and_build().map(|(_, build)| build)
    }

    fn manifest_and_build(&self) -> Result<(Manifest, BuildFacts), ProviderError> {
        let manifest = self.module.manifest();
        let mut value: serde_json::Value = from_plugin_json(manifest(), "manifest")?;
        let build = match value
            .as_object_mut()
            .and_then(|m| m.remove(super::BUILD_MEMBER))
        {
            Some(build) => serde_json::from_value(build).map_err(|e| {
                ProviderError::plugin_fault(format!(
                    "the plugin returned a malformed manifest: `{}`: {e}",
                    super::BUILD_MEMBER
                ))
            })?,
            None => BuildFacts::default(),
        };
        let manifest = serde_json::from_value(value).map_err(|e| {
            ProviderError::plugin_fault(format!("the plugin returned a malformed manifest: {e}"))
        })?;
        Ok((manifest, build))
    }

    /// The plugin's conformance material.
    pub fn conformance(&self) -> Result<Conformance, ProviderError> {
        let conformance = self.module.conformance();
        from_plugin_json(conformance(), "conformance material")
    }

    /// Builds a provider instance for one config entry.
    pub fn construct(&self, config: &ProviderConfig) -> Result<PluginProvider, ProviderError> {
        let config = serde_json::to_string(config)
            .map_err(|e| ProviderError::invalid_request(format!("unencodable config: {e}")))?;
        let construct = self.module.construct();
        let inner = into_result(construct(RStr::from_str(&config)))?;
        let auth = parse_json::<AuthScheme>(inner.auth().as_str(), "auth scheme")?;
        let sdk_minor = sdk_minor(&self.manifest()?.sdk_version);
        Ok(PluginProvider {
            inner,
            auth,
            sdk_minor,
        })
    }
}

/// A provider instance living in a plugin.
pub struct PluginProvider {
    inner: FfiProviderBox,
    auth: AuthScheme,
    /// The minor version of the 1.x SDK the plugin was built against: which
    /// [`extension`] calls it understands.
    sdk_minor: u64,
}

/// The minor version in `1.<minor>.<patch>` (0 when unreadable: no extensions).
fn sdk_minor(version: &str) -> u64 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

impl fmt::Debug for PluginProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PluginProvider")
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl PluginProvider {
    /// Where the host must put the API key.
    pub fn auth(&self) -> &AuthScheme {
        &self.auth
    }

    /// `Provider::build_request`.
    pub fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        let json = serde_json::to_string(request)
            .map_err(|e| ProviderError::invalid_request(format!("unencodable request: {e}")))?;
        self.build_request_json(&json)
    }

    /// `Provider::build_request` for a request already encoded as JSON, so that a
    /// retry or a fallback need not encode it again.
    pub fn build_request_json(&self, request_json: &str) -> Result<Outbound, ProviderError> {
        let outbound = into_result(self.inner.build_request(RStr::from_str(request_json)))?;
        Ok(host_outbound(outbound))
    }

    /// `Provider::health_request`: the plugin's cheap live request, if it has one.
    pub fn health_request(&self) -> Result<Option<Outbound>, ProviderError> {
        let outbound = into_result(self.inner.health_request())?;
        Ok(outbound.into_option().map(host_outbound))
    }

    /// `Provider::native_request`: how to pass a request in `protocol` through to this
    /// upstream unchanged, or `None` (always, for plugins built before SDK 1.1).
    pub fn native_request(
        &self,
        protocol: Protocol,
        model: &str,
        stream: bool,
    ) -> Result<Option<NativeRequest>, ProviderError> {
        let call = extension::Call::NativeRequest {
            query: NativeQuery {
                protocol,
                model: model.to_owned(),
                stream,
            },
        };
        match self.extension(&call)? {
            Some(json) => parse_json(&json, "native request"),
            None => Ok(None),
        }
    }

    /// `Provider::native_requests_reusable` (SDK 1.4); `false` for older plugins,
    /// which are asked every time.
    pub fn native_requests_reusable(&self) -> Result<bool, ProviderError> {
        match self.extension(&extension::Call::NativeRequestsReusable)? {
            Some(json) => parse_json(&json, "reusable native requests answer"),
            None => Ok(false),
        }
    }

    /// Whether the plugin was built against an SDK with embeddings (1.2 or later);
    /// older plugins have none, whatever their manifest says.
    pub fn has_embeddings(&self) -> bool {
        self.sdk_minor >= extension::EMBEDDINGS_SINCE_MINOR
    }

    /// `Provider::build_embedding_request` (SDK 1.2), the request given as JSON (model
    /// set to the provider's), so that a retry or a fallback need not encode it again.
    pub fn build_embedding_request_json(
        &self,
        request_json: &str,
    ) -> Result<Outbound, ProviderError> {
        if !self.has_embeddings() {
            return Err(no_embeddings_before_1_2());
        }
        let json = extension::build_embedding_request(request_json);
        Ok(host_outbound(into_result(
            self.inner.build_request(RStr::from_str(&json)),
        )?))
    }

    /// `Provider::build_embedding_request` (SDK 1.2).
    pub fn build_embedding_request(
        &self,
        request: &EmbeddingRequest,
    ) -> Result<Outbound, ProviderError> {
        let json = serde_json::to_string(request)
            .map_err(|e| ProviderError::invalid_request(format!("unencodable request: {e}")))?;
        self.build_embedding_request_json(&json)
    }

    /// `Provider::parse_embedding_response` (SDK 1.2). The body must be UTF-8 (JSON).
    pub fn parse_embedding_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<EmbeddingResponse, ProviderError> {
        let body = std::str::from_utf8(response.body).map_err(|_| {
            ProviderError::new(
                crate::ErrorKind::ProviderService,
                "the upstream's embeddings answer is not UTF-8 text",
            )
        })?;
        let call = extension::Call::ParseEmbeddingResponse {
            response: EmbeddingAnswer {
                status: response.status,
                headers: response
                    .headers
                    .iter()
                    .map(|h| (h.name().to_owned(), h.value().to_owned()))
                    .collect(),
                body: body.to_owned(),
            },
        };
        match self.extension(&call)? {
            Some(json) => parse_json(&json, "embeddings answer"),
            None => Err(no_embeddings_before_1_2()),
        }
    }

    /// Sends an [`extension`] call to a plugin that understands it; `None` for a plugin
    /// built before the call existed.
    fn extension(&self, call: &extension::Call) -> Result<Option<String>, ProviderError> {
        if self.sdk_minor < extension::since_minor(call) {
            return Ok(None);
        }
        let json = serde_json::to_string(call)
            .map_err(|e| ProviderError::plugin_fault(format!("unencodable extension call: {e}")))?;
        debug_assert!(json.starts_with(extension::PREFIX));
        match host_outbound(into_result(self.inner.build_request(RStr::from_str(&json)))?) {
            Outbound::Local(answer) if answer.status == extension::ANSWER_STATUS => {
                let bytes = answer.chunks.concat();
                String::from_utf8(bytes).map(Some).map_err(|_| {
                    ProviderError::plugin_fault("an extension answer is not UTF-8 JSON")
                })
            }
            _ => Err(ProviderError::plugin_fault(
                "the plugin answered an extension call with a request: it claims an SDK it was not built with",
            )),
        }
    }

    /// `Provider::parse_response`.
    pub fn parse_response(
        &self,
        response: &HttpResponse<'_>,
    ) -> Result<ChatResponse, ProviderError> {
        let json = into_result(self.inner.parse_response(ffi_response(response)))?;
        parse_json(json.as_str(), "response")
    }

    /// `Provider::classify_error`.
    pub fn classify_error(&self, response: &HttpResponse<'_>) -> ProviderError {
        let json = self.inner.classify_error(ffi_response(response));
        parse_json(json.as_str(), "error classification").unwrap_or_else(|e| e)
    }

    /// `Provider::stream_decoder`.
    pub fn stream_decoder(&self) -> Result<PluginDecoder, ProviderError> {
        let inner = into_result(self.inner.stream_decoder())?;
        Ok(PluginDecoder { inner })
    }
}

/// What a plugin built before SDK 1.2 answers for embeddings.
fn no_embeddings_before_1_2() -> ProviderError {
    ProviderError::invalid_request(
        "the plugin was built against a provider-sdk without embeddings (before 1.2): rebuild it against provider-sdk 1.2 or later",
    )
}

/// A stream decoder living in a plugin.
pub struct PluginDecoder {
    inner: FfiDecoderBox,
}

impl fmt::Debug for PluginDecoder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PluginDecoder")
    }
}

impl PluginDecoder {
    /// `StreamDecoder::feed`: appends the events `bytes` completed.
    pub fn feed(
        &mut self,
        bytes: &[u8],
        events: &mut Vec<StreamEvent>,
    ) -> Result<(), ProviderError> {
        let result = self.inner.feed(RSlice::from_slice(bytes));
        decoded(result, events)
    }

    /// `StreamDecoder::is_complete`, asked as an empty `feed` (see `FfiDecoder`): `false`
    /// from a plugin built before SDK 1.2.
    pub fn is_complete(&mut self) -> bool {
        matches!(self.inner.feed(RSlice::from_slice(&[])), RResult::ROk(answer) if answer.as_str() == "[]")
    }

    /// `StreamDecoder::finish`: appends the events still buffered.
    pub fn finish(&mut self, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
        let result = self.inner.finish();
        decoded(result, events)
    }
}

/// Appends a decoder call's events; on failure, the events it decoded before failing
/// are appended too, then the error is returned.
fn decoded(
    result: RResult<RString, RString>,
    events: &mut Vec<StreamEvent>,
) -> Result<(), ProviderError> {
    #[derive(serde::Deserialize)]
    struct Failure {
        #[serde(flatten)]
        error: ProviderError,
        #[serde(default)]
        events_before: Vec<StreamEvent>,
    }
    match result {
        RResult::ROk(json) => append_events(&json, events),
        RResult::RErr(json) => {
            let failure: Failure = parse_json(json.as_str(), "error")?;
            events.extend(failure.events_before);
            Err(failure.error)
        }
    }
}

fn append_events(json: &RString, events: &mut Vec<StreamEvent>) -> Result<(), ProviderError> {
    if json.is_empty() {
        return Ok(());
    }
    let mut more: Vec<StreamEvent> = parse_json(json.as_str(), "stream events")?;
    events.append(&mut more);
    Ok(())
}

/// Copies a plugin's outbound request into host-owned values.
fn host_outbound(outbound: FfiOutbound) -> Outbound {
    let pairs =
        |headers: abi_stable::std_types::RVec<abi_stable::std_types::Tuple2<RString, RString>>| {
            headers
                .into_iter()
                .map(|t| (t.0.into_string(), t.1.into_string()))
                .collect()
        };
    match outbound {
        FfiOutbound::Http(http) => Outbound::Http(HttpRequest {
            method: http.method.into_string(),
            url: http.url.into_string(),
            headers: pairs(http.headers),
            body: http.body.into_vec(),
        }),
        FfiOutbound::Local(local) => Outbound::Local(LocalResponse {
            status: local.status,
            headers: pairs(local.headers),
            chunks: local.chunks.into_iter().map(|c| c.into_vec()).collect(),
            interval_ms: local.interval_ms,
        }),
    }
}

fn ffi_response<'a>(response: &HttpResponse<'a>) -> FfiHttpResponse<'a> {
    FfiHttpResponse {
        status: response.status,
        headers: RSlice::from_slice(response.headers),
        body: RSlice::from_slice(response.body),
    }
}

fn into_result<T>(result: RResult<T, RString>) -> Result<T, ProviderError> {
    match result {
        RResult::ROk(value) => Ok(value),
        RResult::RErr(json) => {
            Err(parse_json::<ProviderError>(json.as_str(), "error").unwrap_or_else(|e| e))
        }
    }
}

fn from_plugin_json<T: DeserializeOwned>(
    result: RResult<RString, RString>,
    what: &str,
) -> Result<T, ProviderError> {
    let json = into_result(result)?;
    parse_json(json.as_str(), what)
}

fn parse_json<T: DeserializeOwned>(json: &str, what: &str) -> Result<T, ProviderError> {
    serde_json::from_str(json).map_err(|e| {
        ProviderError::plugin_fault(format!("the plugin returned a malformed {what}: {e}"))
    })
}
