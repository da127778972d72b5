//! The conformance check a plugin passes before it serves.
//!
//! Checks run in order and stop at the first failure: the file, the ABI (load), the
//! manifest, construction, then a canned round trip through `build_request`,
//! `parse_response`, the stream decoder (fed whole and one byte at a time: the events
//! must agree) and `classify_error`, using the material the plugin ships; then harder:
//! a tool-call stream and streams cut short ([`crate::stream_checks`]), and a bounded
//! fuzz pass over the calls that read upstream bytes ([`crate::fuzz`], in the sandbox).

use std::{fmt, path::Path};

use crate::{
    config::check_name,
    load::{LoadError, LoadedLibrary, Loader},
    stream_checks,
};
use provider_sdk::{
    abi::load::{PanicStrategy, PluginLibrary, PluginProvider},
    samples, ChatRequest, Conformance, Header, HttpResponse, LocalResponse, Manifest, Outbound,
    ProviderConfig, ProviderError, StreamEvent,
};

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Passed, with a short note.
    Pass(String),
    /// Failed, with the reason and what to do.
    Fail(String),
    /// Not run because an earlier check failed.
    Skipped,
}

/// One named check and how it went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// What was checked (`file`, `load`, `manifest`, ...).
    pub name: &'static str,
    /// How it went.
    pub outcome: Outcome,
}

/// The checks, in the order they run.
pub const CHECKS: [&str; 11] = [
    "file",
    "load",
    "manifest",
    "construct",
    "build_request",
    "parse_response",
    "stream",
    "classify_error",
    "tool_stream",
    "cut_stream",
    "fuzz",
];

/// Everything a validation found; the plugin is usable when [`Report::passed`].
#[derive(Debug)]
pub struct Report {
    /// The validated file.
    pub file: std::path::PathBuf,
    /// Each check, in order.
    pub checks: Vec<Check>,
    /// The loaded library, when it loaded.
    pub library: Option<LoadedLibrary>,
    /// The manifest, when it was read and sane.
    pub manifest: Option<Manifest>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks
            .iter()
            .all(|c| matches!(c.outcome, Outcome::Pass(_)))
    }

    /// The first failure as one line: `<file>: <check>: <reason>`.
    pub fn failure(&self) -> Option<String> {
        self.checks.iter().find_map(|c| match &c.outcome {
            Outcome::Fail(reason) if c.name == "file" || c.name == "load" => Some(reason.clone()),
            Outcome::Fail(reason) => Some(format!("{}: {}: {reason}", self.file.display(), c.name)),
            _ => None,
        })
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "validating {}", self.file.display())?;
        for check in &self.checks {
            match &check.outcome {
                Outcome::Pass(note) => writeln!(f, "  PASS  {:<15} {note}", check.name)?,
                Outcome::Fail(reason) => writeln!(f, "  FAIL  {:<15} {reason}", check.name)?,
                Outcome::Skipped => writeln!(f, "  skip  {}", check.name)?,
            }
        }
        match self.failure() {
            None => write!(f, "plugin is valid"),
            Some(_) => write!(f, "plugin is NOT valid"),
        }
    }
}

/// Validates the plugin file at `path`; `pinned_sha256` refuses other content before
/// anything is loaded. With the loader's sandbox, every check of the library runs in a
/// child process and the library is opened here only when it passed; without one, in
/// this process.
pub fn validate_file(loader: &Loader, path: &Path, pinned_sha256: Option<&str>) -> Report {
    validate(loader, path, pinned_sha256, true)
}

/// Like [`validate_file`], without opening the library in this process even when it
/// passed (for `provider-host validate`, which only reports).
pub fn check_only(loader: &Loader, path: &Path) -> Report {
    validate(loader, path, None, false)
}

fn validate(loader: &Loader, path: &Path, pinned_sha256: Option<&str>, open: bool) -> Report {
    let mut run = Run::default();
    let mut library = None;
    let mut manifest = None;
    if run.check("file", || check_file(path)).is_some() {
        match loader.sandbox() {
            Some(sandbox) => {
                let staged = loader.stage(path, pinned_sha256);
                match staged {
                    Err(e) => {
                        run.check("load", || Err::<(), _>(e.to_string()));
                    }
                    Ok(staged) => {
                        run.checks
                            .extend(sandbox.validate(path, &staged.cached, &staged.sha256));
                        if open && run.passed_all() {
                            // Only a file that passed in the child is mapped here.
                            match loader.open(staged).map_err(|e| e.to_string()).and_then(
                                |loaded| {
                                    let m = check_manifest(&loaded.library)?;
                                    Ok((loaded, m))
                                },
                            ) {
                                Ok((loaded, m)) => {
                                    library = Some(loaded);
                                    manifest = Some(m);
                                }
                                Err(reason) => {
                                    run.checks.clear();
                                    run.check("file", || Ok(()));
                                    run.check("load", || Err::<(), _>(reason));
                                }
                            }
                        }
                    }
                }
            }
            None => {
                library = run.check("load", || {
                    loader.load(path, pinned_sha256).map_err(|e| e.to_string())
                });
                if let Some(loaded) = &library {
                    // No fuzz pass here: a crash on a fuzzed input would end this process.
                    manifest = library_checks(&mut run, &loaded.library, None);
                }
            }
        }
    }
    let mut checks = run.checks;
    for name in CHECKS.iter().skip(checks.len()) {
        checks.push(Check {
            name,
            outcome: Outcome::Skipped,
        });
    }
    Report {
        file: path.to_owned(),
        checks,
        library,
        manifest,
    }
}

/// A step of a validation, for a caller that reports progress (the sandbox child).
#[derive(Debug)]
pub enum Progress<'a> {
    /// A check starts.
    Start(&'static str),
    /// A check ended: its note, or why it failed.
    Done(&'static str, &'a Result<String, String>),
}

/// Every check from `load` on, in this process, on the library at `file` opened as it
/// is (the sandbox child's job: `file` is already the host's private copy).
pub fn validate_library_at(file: &Path, fuzz: &mut Fuzz, progress: &mut dyn FnMut(Progress<'_>)) {
    let mut run = Run {
        checks: Vec::new(),
        progress: Some(progress),
    };
    // SAFETY: opening runs the plugin's initializers; this is the sandbox child, which
    // exists to run them.
    let library = run.check("load", || {
        unsafe { provider_sdk::abi::load::open(file) }
            .map(LibraryNote)
            .map_err(|e| e.to_string())
    });
    if let Some(LibraryNote(library)) = library {
        library_checks(&mut run, &library, Some(fuzz));
    }
}

/// The manifest and the round trip; the manifest when it was sane.
fn library_checks(
    run: &mut Run<'_>,
    library: &PluginLibrary,
    fuzz: Option<&mut Fuzz>,
) -> Option<Manifest> {
    let manifest = run.check("manifest", || check_manifest(library));
    if let Some(manifest) = &manifest {
        round_trip(run, library, manifest, fuzz);
    }
    manifest
}

struct LibraryNote(PluginLibrary);

impl Noted for LibraryNote {
    fn note(&self) -> String {
        "ABI and layout match".to_owned()
    }
}

#[derive(Default)]
struct Run<'a> {
    checks: Vec<Check>,
    progress: Option<&'a mut dyn FnMut(Progress<'_>)>,
}

impl Run<'_> {
    fn passed_all(&self) -> bool {
        self.checks.len() == CHECKS.len()
            && self
                .checks
                .iter()
                .all(|c| matches!(c.outcome, Outcome::Pass(_)))
    }

    /// Runs one check if no earlier one failed, recording its outcome.
    fn check<T: Noted>(
        &mut self,
        name: &'static str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Option<T> {
        if self
            .checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Fail(_)))
        {
            return None;
        }
        if let Some(progress) = &mut self.progress {
            progress(Progress::Start(name));
        }
        let result = f();
        let noted = result.as_ref().map(Noted::note).map_err(Clone::clone);
        if let Some(progress) = &mut self.progress {
            progress(Progress::Done(name, &noted));
        }
        self.checks.push(Check {
            name,
            outcome: match noted {
                Ok(note) => Outcome::Pass(note),
                Err(reason) => Outcome::Fail(reason),
            },
        });
        result.ok()
    }
}

/// A short note about a passed check's result.
trait Noted {
    fn note(&self) -> String;
}

impl Noted for () {
    fn note(&self) -> String {
        String::new()
    }
}

impl Noted for String {
    fn note(&self) -> String {
        self.clone()
    }
}

impl Noted for LoadedLibrary {
    fn note(&self) -> String {
        format!("sha256 {}, ABI and layout match", &self.sha256[..16])
    }
}

impl Noted for Manifest {
    fn note(&self) -> String {
        format!(
            "{} {} (provider-sdk {}), {} models",
            self.name,
            self.version,
            self.sdk_version,
            self.models.len()
        )
    }
}

impl Noted for (PluginProvider, Conformance) {
    fn note(&self) -> String {
        "instance built from the plugin's conformance options".to_owned()
    }
}

fn check_file(path: &Path) -> Result<(), String> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(LoadError::Missing {
            path: path.to_owned(),
        }
        .to_string()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
        Ok(m) if !m.is_file() => Err(format!("{}: not a regular file", path.display())),
        Ok(_) => Ok(()),
    }
}

/// Refuses a plugin built with `panic = "abort"`: its panics cannot be caught at the
/// boundary, so its first panic would end whatever process runs it. Reading the build
/// facts is the manifest call, the first call into a plugin.
pub fn check_build(library: &PluginLibrary) -> Result<(), String> {
    let build = library.build_facts().map_err(|e| e.to_string())?;
    match build.panic {
        PanicStrategy::Abort => Err(
            "built with panic = \"abort\", so its first panic would end the host: set `panic = \"unwind\"` in the plugin's release profile and rebuild".to_owned(),
        ),
        PanicStrategy::Unknown => Ok(()),
    }
}

fn check_manifest(library: &PluginLibrary) -> Result<Manifest, String> {
    check_build(library)?;
    let manifest = library.manifest().map_err(|e| e.to_string())?;
    check_name(&manifest.name).map_err(|e| format!("manifest name: {e}"))?;
    if !is_semver(&manifest.version) {
        return Err(format!(
            "version `{}` is not semver (x.y.z)",
            manifest.version
        ));
    }
    if manifest.sdk_version.split('.').next() != provider_sdk::SDK_VERSION.split('.').next() {
        return Err(format!(
            "declares provider-sdk {}, this host speaks {}: rebuild against provider-sdk 1.x",
            manifest.sdk_version,
            provider_sdk::SDK_VERSION
        ));
    }
    if let Some(url) = &manifest.defaults.base_url {
        if !url.starts_with("http://") && !url.starts_with("https://") {
            return Err(format!("default base_url `{url}` is not an http(s) URL"));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for model in &manifest.models {
        if model.id.is_empty() {
            return Err("a model has an empty id".to_owned());
        }
        if !seen.insert(model.id.as_str()) {
            return Err(format!("model `{}` is listed twice", model.id));
        }
        if model.context_window == Some(0) {
            return Err(format!("model `{}` has a context window of 0", model.id));
        }
        if let Some(p) = &model.pricing {
            let prices = [
                Some(p.input_per_mtok),
                Some(p.output_per_mtok),
                p.cached_input_per_mtok,
            ];
            if prices
                .into_iter()
                .flatten()
                .any(|x| !x.is_finite() || x < 0.0)
            {
                return Err(format!(
                    "model `{}` has a negative or non-finite price",
                    model.id
                ));
            }
        }
    }
    Ok(manifest)
}

fn is_semver(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<_> = core.split('.').collect();
    parts.len() == 3
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// The fuzz pass a validation runs: its settings, and where each input is recorded.
#[derive(Debug)]
pub struct Fuzz {
    /// Duration, seed, or an input to replay.
    pub settings: crate::fuzz::Settings,
    /// Where each input is written before the plugin sees it.
    pub recorder: Option<crate::fuzz::Recorder>,
}

fn round_trip(
    run: &mut Run<'_>,
    library: &PluginLibrary,
    manifest: &Manifest,
    fuzz: Option<&mut Fuzz>,
) {
    let Some((provider, conformance)) = run.check("construct", || {
        let conformance = library.conformance().map_err(|e| e.to_string())?;
        let config = ProviderConfig {
            name: manifest.name.clone(),
            base_url: None,
            options: conformance.options.clone(),
        };
        let provider = library.construct(&config).map_err(|e| e.to_string())?;
        Ok((provider, conformance))
    }) else {
        return;
    };
    let model = manifest
        .models
        .first()
        .map(|m| m.id.as_str())
        .unwrap_or("default");
    run.check("build_request", || {
        let mut requests = vec![samples::chat_request(model), samples::stream_request(model)];
        if manifest.capabilities.tools {
            requests.push(samples::tool_request(model));
        }
        for request in &requests {
            check_outbound(&provider, request)?;
        }
        Ok(format!("{} sample requests", requests.len()))
    });
    run.check("parse_response", || {
        let body = conformance.response.chunks.concat();
        let headers = headers(&conformance.response);
        let response = provider
            .parse_response(&HttpResponse::new(
                conformance.response.status,
                &headers,
                &body,
            ))
            .map_err(|e| e.to_string())?;
        if response.message.content.is_none() && response.message.tool_calls.is_empty() {
            return Err(
                "the sample response parsed to an answer with no text and no tool calls".to_owned(),
            );
        }
        Ok(match response.usage {
            Some(u) => format!(
                "{} prompt + {} completion tokens",
                u.prompt_tokens, u.completion_tokens
            ),
            None => "no usage reported".to_owned(),
        })
    });
    run.check("stream", || check_stream(&provider, &conformance.stream));
    run.check("classify_error", || {
        let Some(canned) = &conformance.error else {
            return Ok("no sample error shipped".to_owned());
        };
        let body = canned.response.chunks.concat();
        let headers = headers(&canned.response);
        let error =
            provider.classify_error(&HttpResponse::new(canned.response.status, &headers, &body));
        if error.kind != canned.kind {
            return Err(format!(
                "classified the sample error as {}, the plugin says it is {}",
                error.kind, canned.kind
            ));
        }
        Ok(format!(
            "status {} is {}",
            canned.response.status, error.kind
        ))
    });
    let sample = conformance.stream.chunks.concat();
    run.check("tool_stream", || {
        let events = stream_checks::decode(&provider, [sample.as_slice()].into_iter())
            .map_err(|e| e.to_string())?;
        match stream_checks::tool_stream(
            &provider,
            model,
            manifest.capabilities.tools,
            &events,
            &sample,
        ) {
            Err(why) => Ok(format!("none checked: {why}")),
            Ok((body, from, expect_weather)) => {
                let calls = stream_checks::check_tool_stream(&provider, &body, expect_weather)
                    .map_err(|e| format!("{from}: {e}"))?;
                Ok(format!(
                    "{from}: {calls} tool call(s), same when split at every byte"
                ))
            }
        }
    });
    run.check("cut_stream", || {
        let mut cuts = stream_checks::check_cuts(&provider, &sample)
            .map_err(|e| format!("the sample stream: {e}"))?;
        if let Some(body) = tool_body(&provider, model, manifest, &sample) {
            cuts += stream_checks::check_cuts(&provider, &body)
                .map_err(|e| format!("the tool-call stream: {e}"))?;
        }
        Ok(format!(
            "{cuts} cuts, each reported by the decoder or losing nothing"
        ))
    });
    run.check("fuzz", || {
        let Some(fuzz) = fuzz else {
            return Ok("not run: the fuzz pass runs only in the validation sandbox".to_owned());
        };
        let mut samples = vec![
            sample_of(crate::fuzz::Call::ParseResponse, &conformance.response),
            sample_of(crate::fuzz::Call::Stream, &conformance.stream),
        ];
        if let Some(canned) = &conformance.error {
            samples.push(sample_of(
                crate::fuzz::Call::ClassifyError,
                &canned.response,
            ));
        }
        if let Some(body) = tool_body(&provider, model, manifest, &sample) {
            samples.push(crate::fuzz::Sample {
                body,
                ..sample_of(crate::fuzz::Call::Stream, &conformance.stream)
            });
        }
        let passed = crate::fuzz::run(&provider, &samples, &fuzz.settings, fuzz.recorder.as_mut())
            .map_err(|e| e.to_string())?;
        Ok(match fuzz.settings.replay {
            Some(_) => "the replayed input passed: an answer or an error, no panic".to_owned(),
            None if fuzz.settings.duration.is_zero() => "off (sandbox.fuzz_secs is 0)".to_owned(),
            None => format!(
                "{} fuzzed upstream answers in {:.2} s (seed {:#018x}): no crash, hang or panic",
                passed.inputs,
                passed.elapsed.as_secs_f64(),
                fuzz.settings.seed
            ),
        })
    });
}

/// The tool-call stream the `tool_stream` check used, when it used one.
fn tool_body(
    provider: &PluginProvider,
    model: &str,
    manifest: &Manifest,
    sample: &[u8],
) -> Option<Vec<u8>> {
    let events = stream_checks::decode(provider, [sample].into_iter()).ok()?;
    stream_checks::tool_stream(
        provider,
        model,
        manifest.capabilities.tools,
        &events,
        sample,
    )
    .ok()
    .map(|(body, _, _)| body)
}

fn sample_of(call: crate::fuzz::Call, response: &LocalResponse) -> crate::fuzz::Sample {
    crate::fuzz::Sample {
        call,
        status: response.status,
        headers: response.headers.clone(),
        body: response.chunks.concat(),
    }
}

fn check_outbound(provider: &PluginProvider, request: &ChatRequest) -> Result<(), String> {
    let what = if request.stream {
        "streamed"
    } else if request.tools.is_empty() {
        "plain"
    } else {
        "tool"
    };
    match provider.build_request(request) {
        Err(e) => Err(format!("{what} sample: {e}")),
        Ok(Outbound::Http(http)) => {
            if http.method.is_empty() || !http.method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!(
                    "{what} sample: `{}` is not an HTTP method",
                    http.method
                ));
            }
            match url::Url::parse(&http.url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") => Ok(()),
                _ => Err(format!(
                    "{what} sample: `{}` is not an absolute http(s) URL",
                    http.url
                )),
            }
        }
        Ok(Outbound::Local(local)) if (100..600).contains(&local.status) => Ok(()),
        Ok(Outbound::Local(local)) => Err(format!(
            "{what} sample: local answer has status {}",
            local.status
        )),
    }
}

/// Decodes the sample stream whole and one byte at a time; both must give the same
/// answer and end with a finish event.
fn check_stream(provider: &PluginProvider, stream: &LocalResponse) -> Result<String, String> {
    let whole =
        decode(provider, stream.chunks.iter().map(Vec::as_slice)).map_err(|e| e.to_string())?;
    let body = stream.chunks.concat();
    let bytewise =
        decode(provider, body.chunks(1)).map_err(|e| format!("fed one byte at a time: {e}"))?;
    if !whole
        .iter()
        .any(|e| matches!(e, StreamEvent::Finish { .. }))
    {
        return Err("the sample stream decoded to no finish event".to_owned());
    }
    if merge_deltas(&whole) != merge_deltas(&bytewise) {
        return Err("decoding the sample stream one byte at a time gave a different answer than decoding it whole: the decoder mishandles split input".to_owned());
    }
    Ok(format!(
        "{} events, same answer when split at every byte",
        whole.len()
    ))
}

fn decode<'a>(
    provider: &PluginProvider,
    pieces: impl Iterator<Item = &'a [u8]>,
) -> Result<Vec<StreamEvent>, ProviderError> {
    let mut decoder = provider.stream_decoder()?;
    let mut events = Vec::new();
    for piece in pieces {
        decoder.feed(piece, &mut events)?;
    }
    decoder.finish(&mut events)?;
    Ok(events)
}

/// Joins consecutive deltas of the same kind, so streams split differently compare equal.
fn merge_deltas(events: &[StreamEvent]) -> Vec<StreamEvent> {
    let mut merged: Vec<StreamEvent> = Vec::with_capacity(events.len());
    for event in events {
        match (merged.last_mut(), event) {
            (Some(StreamEvent::TextDelta { text }), StreamEvent::TextDelta { text: more })
            | (
                Some(StreamEvent::ReasoningDelta { text }),
                StreamEvent::ReasoningDelta { text: more },
            ) => text.push_str(more),
            (
                Some(StreamEvent::ToolCallDelta { index, arguments }),
                StreamEvent::ToolCallDelta {
                    index: i,
                    arguments: more,
                },
            ) if index == i => arguments.push_str(more),
            _ => merged.push(event.clone()),
        }
    }
    merged
}

fn headers(response: &LocalResponse) -> Vec<Header<'_>> {
    response
        .headers
        .iter()
        .map(|(n, v)| Header::new(n, v))
        .collect()
}
