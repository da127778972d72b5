//! The set of providers the host serves: one immutable snapshot per config generation.
//!
//! Building a registry loads and validates every enabled entry and every drop-in
//! plugin; a provider that fails is recorded with its one-line reason and never
//! serves, while the others do.

use std::{
    collections::BTreeMap,
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
    time::SystemTime,
};

use provider_sdk::{Manifest, ProviderConfig};
use serde::Serialize;
use serde_json::Value;

pub use crate::target::Target;
use crate::{
    config::{Config, Isolation, ProviderEntry},
    load::{LoadedLibrary, Loader},
    plugin::Plugin,
    validate::validate_file,
    worker,
};

/// An API key. It prints as `***` so it cannot leak through `Debug` or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(key.into())
    }

    /// The key itself, for the one place that puts it on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(***)")
    }
}

/// Whether a provider serves, and why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Loaded, validated, constructed: serving.
    Ready,
    /// `enabled: false` in the config.
    Disabled,
    /// Valid but missing something at run time (its API key).
    Unavailable(String),
    /// The plugin failed to load, validate or construct.
    Failed(String),
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            State::Ready => f.write_str("ready"),
            State::Disabled => f.write_str("disabled"),
            State::Unavailable(why) => write!(f, "unavailable: {why}"),
            State::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Where a provider entry came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An entry of `providers` in the config.
    Config,
    /// A file found in one of the `plugin_dirs`.
    PluginDir,
}

/// A provider instance that serves requests, with what the transport needs to call it.
#[derive(Debug)]
pub struct ReadyProvider {
    /// Routing name.
    pub name: String,
    /// The plugin instance, in this process or in worker processes.
    pub plugin: Plugin,
    /// The plugin's manifest.
    pub manifest: Arc<Manifest>,
    /// The API key, when the entry has one.
    pub api_key: Option<ApiKey>,
    /// The upstream base URL: the entry's, else the manifest's default (for display;
    /// the plugin builds the URLs).
    pub base_url: Option<String>,
    /// Whether upstream addresses in private ranges are allowed.
    pub allow_private_network: bool,
    /// Whether a client's own body may go to this upstream unchanged.
    pub passthrough: bool,
}

impl ReadyProvider {
    /// Why this plugin version is faulted (an in-process call overran its deadline),
    /// if it is: it is no longer routed to, until a new version replaces it.
    pub fn faulted(&self) -> Option<&str> {
        self.plugin.faulted()
    }

    /// Marks this version faulted; the first reason stays.
    pub fn mark_faulted(&self, reason: &str) {
        self.plugin.mark_faulted(reason);
    }
}

/// One provider's status, ready or not.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// Routing name.
    pub name: String,
    /// Config entry or drop-in.
    pub origin: Origin,
    /// The entry this status was built from (synthesized for drop-ins).
    pub entry: ProviderEntry,
    /// The plugin file.
    pub library: PathBuf,
    /// SHA-256 of the plugin file, when it was read.
    pub sha256: Option<String>,
    /// The manifest, when it was read.
    pub manifest: Option<Arc<Manifest>>,
    /// Whether it serves.
    pub state: State,
    /// The serving instance, when ready.
    pub ready: Option<Arc<ReadyProvider>>,
    /// How many versions have been published under this name (1 for the first).
    pub generation: u64,
    /// When this version was loaded.
    pub loaded_at: SystemTime,
    /// Why the last reload of this provider failed, while the version above serves on.
    pub last_reload_error: Option<String>,
    /// The key this version was built with, to notice a rotated key.
    key: Option<ApiKey>,
    /// The entry and file hash of the last replacement that failed, so the same bad
    /// version is tried (and reported) once, not on every reload.
    rejected: Option<(ProviderEntry, Option<String>)>,
}

/// What a rebuild did to each provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// New names.
    pub added: Vec<String>,
    /// Names whose new version was published.
    pub reloaded: Vec<String>,
    /// Names no longer configured or found.
    pub removed: Vec<String>,
    /// Names kept as they were (same file, same entry, same key).
    pub unchanged: Vec<String>,
    /// Names whose new version failed, with the reason; a previous version serves on.
    pub failed: Vec<(String, String)>,
}

/// An immutable snapshot of every provider and alias.
#[derive(Debug, Default)]
pub struct Registry {
    providers: BTreeMap<String, ProviderStatus>,
    aliases: BTreeMap<String, Vec<Target>>,
    problems: Vec<String>,
}

impl Registry {
    /// Loads, validates and constructs everything `config` names.
    ///
    /// `env` looks up API keys (the process environment in production).
    pub fn build(
        config: &Config,
        loader: &Loader,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Registry {
        Registry::rebuild(None, config, loader, env).0
    }

    /// Builds the registry for `config`, keeping from `previous` every provider whose
    /// file, entry and key did not change, and keeping a previous version serving
    /// when its replacement fails.
    pub fn rebuild(
        previous: Option<&Registry>,
        config: &Config,
        loader: &Loader,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> (Registry, Changes) {
        let mut registry = Registry::default();
        let mut changes = Changes::default();
        let mut wanted: Vec<(ProviderEntry, Origin)> = config
            .providers
            .iter()
            .map(|e| (e.clone(), Origin::Config))
            .collect();
        for dir in &config.plugin_dirs {
            registry.discover(dir, &mut wanted, loader, config);
        }
        for (entry, origin) in wanted {
            let old = previous.and_then(|p| p.providers.get(&entry.name));
            let status = match old {
                Some(old) if old.is_current(&entry, env) => {
                    changes.unchanged.push(entry.name.clone());
                    old.clone()
                }
                _ => {
                    let mut new = build_entry(&entry, config, origin, loader, env);
                    match (old, &new.state) {
                        (Some(old), State::Failed(reason)) if old.ready.is_some() => {
                            changes.failed.push((entry.name.clone(), reason.clone()));
                            let mut kept = old.clone();
                            kept.last_reload_error = Some(reason.clone());
                            let file = new
                                .sha256
                                .clone()
                                .or_else(|| crate::load::file_sha256(&entry.library).ok());
                            kept.rejected = Some((entry.clone(), file));
                            kept
                        }
                        (old, state) => {
                            if let State::Failed(reason) = state {
                                changes.failed.push((entry.name.clone(), reason.clone()));
                            }
                            match old {
                                Some(old) => {
                                    new.generation = old.generation + 1;
                                    changes.reloaded.push(entry.name.clone());
                                }
                                None => changes.added.push(entry.name.clone()),
                            }
                            new
                        }
                    }
                }
            };
            registry.providers.insert(entry.name.clone(), status);
        }
        if let Some(previous) = previous {
            changes.removed = previous
                .providers
                .keys()
                .filter(|name| !registry.providers.contains_key(*name))
                .cloned()
                .collect();
        }
        for (alias, spec) in &config.models {
            let targets = spec
                .targets
                .iter()
                .filter_map(|t| {
                    let target = Target::parse(t.target())?;
                    Some(Target {
                        larger_context: t.larger_context(),
                        ..target
                    })
                })
                .collect();
            registry.aliases.insert(alias.clone(), targets);
        }
        (registry, changes)
    }

    /// Every provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderStatus> {
        self.providers.values()
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderStatus> {
        self.providers.get(name)
    }

    /// Whether `provider/model` is a configured target: a model its plugin's manifest
    /// lists, or a target of an alias. Only these get their own metric labels, usage
    /// rows and breakers; clients choose every other name, without bound.
    pub fn is_configured(&self, provider: &str, model: &str) -> bool {
        let listed = self
            .provider(provider)
            .and_then(|p| p.manifest.as_ref())
            .is_some_and(|m| m.models.iter().any(|m| m.id == model));
        listed
            || self
                .aliases
                .values()
                .flatten()
                .any(|t| t.provider == provider && t.model == model)
    }

    /// Every alias and its targets.
    pub fn aliases(&self) -> &BTreeMap<String, Vec<Target>> {
        &self.aliases
    }

    /// Problems not tied to one provider (clashing drop-in names, missing folders).
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether at least one provider serves.
    pub fn any_ready(&self) -> bool {
        self.providers.values().any(|p| p.ready.is_some())
    }

    /// The SHA-256 of every plugin file a provider of this snapshot uses (serving, or
    /// loaded and waiting for its API key).
    pub fn libraries_in_use(&self) -> impl Iterator<Item = &str> {
        // A provider waiting for its key is the current version too: its library is
        // mapped for this config, not retired.
        self.providers
            .values()
            .filter(|p| p.ready.is_some() || matches!(p.state, State::Unavailable(_)))
            .filter_map(|p| p.sha256.as_deref())
    }

    /// The targets a model string stands for: an alias's targets, or `provider/model`.
    pub fn targets(&self, model: &str) -> Option<Vec<Target>> {
        if let Some(targets) = self.aliases.get(model) {
            return Some(targets.clone());
        }
        let target = Target::parse(model)?;
        self.providers
            .contains_key(&target.provider)
            .then(|| vec![target])
    }

    /// Adds an entry for every plugin file in `dir`, named after its manifest. Only the
    /// manifest is read here (the full check runs when the entry is built).
    fn discover(
        &mut self,
        dir: &Path,
        wanted: &mut Vec<(ProviderEntry, Origin)>,
        loader: &Loader,
        config: &Config,
    ) {
        let files = match plugin_files(dir) {
            Ok(files) => files,
            Err(e) => {
                self.problems
                    .push(format!("plugin folder {}: {e}", dir.display()));
                return;
            }
        };
        for file in files {
            let manifest = match discover_manifest(&file, loader) {
                Ok(manifest) => manifest,
                Err(problem) => {
                    self.problems.push(problem);
                    continue;
                }
            };
            if let Some((existing, _)) = wanted.iter().find(|(e, _)| e.name == manifest.name) {
                self.problems.push(format!(
                    "{}: claims provider name `{}`, which {} already serves: remove one of them or give one its own config entry",
                    file.display(),
                    manifest.name,
                    existing.library.display()
                ));
                continue;
            }
            let entry = ProviderEntry {
                name: manifest.name.clone(),
                library: file.clone(),
                enabled: true,
                base_url: None,
                api_key_env: None,
                allow_private_network: false,
                options: Value::Null,
                sha256: None,
                retry: None,
                passthrough: true,
                isolation: Some(config.isolation),
                workers: Some(config.workers.pool_size),
            };
            wanted.push((entry, Origin::PluginDir));
        }
    }
}

impl ProviderStatus {
    /// Whether this status is what building `entry` now would give: same entry, same
    /// file content, same key.
    fn is_current(&self, entry: &ProviderEntry, env: &dyn Fn(&str) -> Option<String>) -> bool {
        let file = crate::load::file_sha256(&entry.library).ok();
        if let Some((rejected_entry, rejected_sha)) = &self.rejected {
            if rejected_entry == entry && *rejected_sha == file {
                return true;
            }
        }
        if &self.entry != entry {
            return false;
        }
        if !entry.enabled {
            return true;
        }
        let same_file = self.sha256 == file;
        same_file && self.key == lookup_key(entry, self.manifest.as_deref(), env)
    }
}

/// The manifest of a drop-in file. With a sandbox, the file is validated in a child
/// first (a pass is remembered, so building the entry does not check it again), since
/// reading a manifest means mapping the file here.
fn discover_manifest(file: &Path, loader: &Loader) -> Result<Manifest, String> {
    if loader.sandbox().is_some() {
        let report = validate_file(loader, file, None);
        return match (report.failure(), report.manifest) {
            (None, Some(manifest)) => Ok(manifest),
            (failure, _) => {
                Err(failure.unwrap_or_else(|| format!("{}: failed validation", file.display())))
            }
        };
    }
    let loaded = loader.load(file, None).map_err(|e| e.to_string())?;
    crate::validate::check_build(&loaded.library)
        .and_then(|()| loaded.library.manifest().map_err(|e| e.to_string()))
        .map_err(|e| format!("{}: manifest: {e}", file.display()))
}

/// Shared-library files directly inside `dir`, sorted so discovery is deterministic.
fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    crate::load::check_not_writable_by_others(dir)?;
    let read = std::fs::read_dir(dir).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            "does not exist: create it or remove it from `plugin_dirs`".to_owned()
        }
        _ => format!("cannot be read: {e}"),
    })?;
    let suffix = std::env::consts::DLL_SUFFIX.trim_start_matches('.');
    let mut files: Vec<PathBuf> = read
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.extension().and_then(|e| e.to_str()) == Some(suffix))
        .collect();
    files.sort();
    Ok(files)
}

/// The variable that holds the entry's key: its own, else the manifest's; `""` says none.
fn key_var(entry: &ProviderEntry, manifest: Option<&Manifest>) -> Option<String> {
    match &entry.api_key_env {
        Some(var) if var.is_empty() => None,
        Some(var) => Some(var.clone()),
        None => manifest.and_then(|m| m.defaults.api_key_env.clone()),
    }
}

/// The entry's API key, when it names a key variable and the variable is set.
fn lookup_key(
    entry: &ProviderEntry,
    manifest: Option<&Manifest>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Option<ApiKey> {
    let var = key_var(entry, manifest)?;
    env(&var)
        .map(|k| k.trim().to_owned())
        .filter(|k| !k.is_empty())
        .map(ApiKey::new)
}

fn build_entry(
    entry: &ProviderEntry,
    config: &Config,
    origin: Origin,
    loader: &Loader,
    env: &dyn Fn(&str) -> Option<String>,
) -> ProviderStatus {
    let mut status = ProviderStatus {
        name: entry.name.clone(),
        origin,
        entry: entry.clone(),
        library: entry.library.clone(),
        sha256: None,
        manifest: None,
        state: State::Disabled,
        ready: None,
        generation: 1,
        loaded_at: SystemTime::now(),
        last_reload_error: None,
        key: None,
        rejected: None,
    };
    if !entry.enabled {
        return status;
    }
    let report = validate_file(loader, &entry.library, entry.sha256.as_deref());
    status.sha256 = report.library.as_ref().map(|l| l.sha256.clone());
    status.manifest = report.manifest.clone().map(Arc::new);
    let (Some(loaded), Some(manifest), true) = (&report.library, &status.manifest, report.passed())
    else {
        status.state = State::Failed(
            report
                .failure()
                .unwrap_or_else(|| "failed validation".to_owned()),
        );
        return status;
    };
    let plugin_config = ProviderConfig {
        name: entry.name.clone(),
        base_url: entry.base_url.clone(),
        options: if entry.options.is_null() {
            Value::Object(Default::default())
        } else {
            entry.options.clone()
        },
        resolved_base_url: entry
            .base_url
            .clone()
            .or_else(|| manifest.defaults.base_url.clone()),
    };
    status.key = lookup_key(entry, Some(manifest), env);
    let missing_key = match (&status.key, key_var(entry, Some(manifest))) {
        (None, Some(var)) => Some(format!("missing key: set {var}")),
        _ => None,
    };
    let call_timeout = config.plugin_call_timeout();
    let plugin = match entry.isolation() {
        Isolation::InProcess => match loaded.library.construct(&plugin_config) {
            Ok(plugin) => Plugin::in_process(&entry.name, plugin, call_timeout),
            Err(e) => {
                status.state =
                    State::Failed(format!("{}: construct: {e}", entry.library.display()));
                return status;
            }
        },
        // Workers are started only for a provider that can serve.
        Isolation::Process if missing_key.is_some() => {
            status.state = State::Unavailable(missing_key.unwrap_or_default());
            return status;
        }
        Isolation::Process => match start_workers(entry, config, loader, loaded, &plugin_config) {
            Ok(pool) => Plugin::in_workers(&entry.name, pool, manifest, call_timeout),
            Err(e) => {
                status.state = State::Failed(format!(
                    "{}: isolation \"process\": {e}",
                    entry.library.display()
                ));
                return status;
            }
        },
    };
    if let Some(missing) = missing_key {
        status.state = State::Unavailable(missing);
        return status;
    }
    status.state = State::Ready;
    status.ready = Some(Arc::new(ReadyProvider {
        name: entry.name.clone(),
        plugin,
        manifest: manifest.clone(),
        api_key: status.key.clone(),
        base_url: entry
            .base_url
            .clone()
            .or_else(|| manifest.defaults.base_url.clone()),
        allow_private_network: entry.allow_private_network,
        passthrough: entry.passthrough,
    }));
    status
}

/// Starts the worker processes of an entry in process isolation, on the validated
/// copy of its plugin.
fn start_workers(
    entry: &ProviderEntry,
    config: &Config,
    loader: &Loader,
    loaded: &LoadedLibrary,
    plugin_config: &ProviderConfig,
) -> Result<worker::Pool, worker::StartError> {
    let binary = loader
        .sandbox()
        .map(|s| s.binary().to_owned())
        .or_else(|| config.sandbox.binary.clone())
        .or_else(crate::sandbox::locate_binary)
        .ok_or_else(|| {
            worker::StartError(
                "no provider-host binary found to run its workers (beside this program or on PATH): set sandbox.binary".to_owned(),
            )
        })?;
    let config_json = serde_json::to_string(plugin_config)
        .map_err(|e| worker::StartError(format!("unencodable provider config: {e}")))?;
    worker::Pool::start(worker::Settings {
        name: entry.name.clone(),
        binary,
        library: loaded.cached.clone(),
        config_json,
        size: entry.worker_count(),
        address_space: config.sandbox.address_space_mb.saturating_mul(1024 * 1024),
        call_timeout: config.plugin_call_timeout(),
    })
}
