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
};

use provider_sdk::{abi::load::PluginProvider, Manifest, ProviderConfig};
use serde_json::Value;

use crate::{
    config::{Config, ProviderEntry},
    load::Loader,
    validate::validate_file,
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
    /// The plugin instance.
    pub plugin: PluginProvider,
    /// The plugin's manifest.
    pub manifest: Arc<Manifest>,
    /// The API key, when the entry has one.
    pub api_key: Option<ApiKey>,
    /// The upstream base URL: the entry's, else the manifest's default (for display;
    /// the plugin builds the URLs).
    pub base_url: Option<String>,
    /// Whether upstream addresses in private ranges are allowed.
    pub allow_private_network: bool,
}

/// One provider's status, ready or not.
#[derive(Debug, Clone)]
pub struct ProviderStatus {
    /// Routing name.
    pub name: String,
    /// Config entry or drop-in.
    pub origin: Origin,
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
}

/// A `provider/model` pair a request can be sent to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Routing name of the provider.
    pub provider: String,
    /// The provider's model id.
    pub model: String,
}

impl Target {
    /// Splits `provider/model` at the first `/` (model ids may contain more).
    pub fn parse(text: &str) -> Option<Target> {
        let (provider, model) = text.split_once('/')?;
        (!provider.is_empty() && !model.is_empty()).then(|| Target {
            provider: provider.to_owned(),
            model: model.to_owned(),
        })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.provider, self.model)
    }
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
        let mut registry = Registry::default();
        for entry in &config.providers {
            let status = build_entry(entry, Origin::Config, loader, env);
            registry.providers.insert(entry.name.clone(), status);
        }
        for dir in &config.plugin_dirs {
            registry.discover(dir, loader, env);
        }
        for (alias, spec) in &config.models {
            let targets = spec
                .targets
                .iter()
                .filter_map(|t| Target::parse(t))
                .collect();
            registry.aliases.insert(alias.clone(), targets);
        }
        registry
    }

    /// Every provider, by name.
    pub fn providers(&self) -> impl Iterator<Item = &ProviderStatus> {
        self.providers.values()
    }

    /// The provider called `name`.
    pub fn provider(&self, name: &str) -> Option<&ProviderStatus> {
        self.providers.get(name)
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

    /// Loads every plugin file in `dir`, serving each under its manifest's name.
    fn discover(&mut self, dir: &Path, loader: &Loader, env: &dyn Fn(&str) -> Option<String>) {
        let files = match plugin_files(dir) {
            Ok(files) => files,
            Err(e) => {
                self.problems
                    .push(format!("plugin folder {}: {e}", dir.display()));
                return;
            }
        };
        for file in files {
            let report = validate_file(loader, &file);
            let Some(manifest) = report.manifest.as_ref().filter(|_| report.passed()) else {
                let reason = report
                    .failure()
                    .unwrap_or_else(|| "failed validation".to_owned());
                self.problems.push(reason);
                continue;
            };
            if let Some(existing) = self.providers.get(&manifest.name) {
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
            };
            let status = build_entry(&entry, Origin::PluginDir, loader, env);
            self.providers.insert(entry.name.clone(), status);
        }
    }
}

/// Shared-library files directly inside `dir`, sorted so discovery is deterministic.
fn plugin_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
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

fn build_entry(
    entry: &ProviderEntry,
    origin: Origin,
    loader: &Loader,
    env: &dyn Fn(&str) -> Option<String>,
) -> ProviderStatus {
    let mut status = ProviderStatus {
        name: entry.name.clone(),
        origin,
        library: entry.library.clone(),
        sha256: None,
        manifest: None,
        state: State::Disabled,
        ready: None,
    };
    if !entry.enabled {
        return status;
    }
    let report = validate_file(loader, &entry.library);
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
    let base_url = entry
        .base_url
        .clone()
        .or_else(|| manifest.defaults.base_url.clone());
    let config = ProviderConfig {
        name: entry.name.clone(),
        base_url: base_url.clone(),
        options: if entry.options.is_null() {
            Value::Object(Default::default())
        } else {
            entry.options.clone()
        },
    };
    let plugin = match loaded.library.construct(&config) {
        Ok(plugin) => plugin,
        Err(e) => {
            status.state = State::Failed(format!("{}: construct: {e}", entry.library.display()));
            return status;
        }
    };
    let key_env = entry
        .api_key_env
        .clone()
        .or_else(|| manifest.defaults.api_key_env.clone());
    let api_key = match &key_env {
        None => None,
        Some(var) => match env(var).filter(|k| !k.trim().is_empty()) {
            Some(key) => Some(ApiKey::new(key.trim())),
            None => {
                status.state = State::Unavailable(format!("missing key: set {var}"));
                return status;
            }
        },
    };
    status.state = State::Ready;
    status.ready = Some(Arc::new(ReadyProvider {
        name: entry.name.clone(),
        plugin,
        manifest: manifest.clone(),
        api_key,
        base_url: entry
            .base_url
            .clone()
            .or_else(|| manifest.defaults.base_url.clone()),
        allow_private_network: entry.allow_private_network,
    }));
    status
}
