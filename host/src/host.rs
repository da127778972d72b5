//! The host as a library: one handle that owns the loader and the current registry.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use arc_swap::ArcSwap;
use provider_sdk::ChatRequest;

use crate::{
    config::{Config, ConfigError},
    dispatch::{self, Completion, DispatchError, EventStream},
    load::Loader,
    registry::Registry,
    transport::Transport,
};

/// Looks up an API key by the name of its environment variable.
pub type KeyLookup = dyn Fn(&str) -> Option<String> + Send + Sync;

/// Builds a [`Host`] from a config file or an in-memory config.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let host = provider_host::Host::builder()
///     .config_file("external_providers.json")
///     .build()?;
/// let app = axum::Router::new().nest("/llm", host.router());
/// # let _ = app; Ok(()) }
/// ```
#[derive(Default)]
pub struct HostBuilder {
    file: Option<PathBuf>,
    config: Option<(Config, PathBuf)>,
    keys: Option<Box<KeyLookup>>,
}

impl HostBuilder {
    /// Reads the config from `path`.
    pub fn config_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.file = Some(path.into());
        self
    }

    /// Uses an in-memory config; relative paths in it resolve from `dir`.
    pub fn config(mut self, config: Config, dir: impl Into<PathBuf>) -> Self {
        self.config = Some((config, dir.into()));
        self
    }

    /// Where API keys come from (the process environment by default), e.g. a secret store.
    pub fn api_keys(
        mut self,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.keys = Some(Box::new(lookup));
        self
    }

    /// Loads every provider. Only a bad config fails; failed providers are recorded
    /// in the registry with their reason.
    pub fn build(self) -> Result<Arc<Host>, ConfigError> {
        let (config, dir, path) = match (self.config, self.file) {
            (Some((config, dir)), _) => (config, dir, None),
            (None, file) => {
                let path =
                    file.unwrap_or_else(|| PathBuf::from(crate::config::DEFAULT_CONFIG_FILE));
                let config = Config::load(&path)?;
                let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
                (config, dir, Some(path))
            }
        };
        let keys = self
            .keys
            .unwrap_or_else(|| Box::new(|name: &str| std::env::var(name).ok()));
        let mut host = Host::assemble(config, &dir, keys);
        host.config_path = path;
        Ok(Arc::new(host))
    }
}

/// A running set of providers. Cheap to share: wrap it in an `Arc`.
pub struct Host {
    config: Config,
    config_path: Option<PathBuf>,
    loader: Loader,
    registry: ArcSwap<Registry>,
    transport: Transport,
}

impl Host {
    /// A builder for a host.
    pub fn builder() -> HostBuilder {
        HostBuilder::default()
    }

    /// Reads the config at `path` and loads every provider it names, keys from the
    /// environment. Providers that fail are recorded in the registry with their
    /// reason; only a bad config fails.
    pub fn from_config_file(path: &Path) -> Result<Host, ConfigError> {
        let config = Config::load(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut host = Host::assemble(config, dir, Box::new(|name: &str| std::env::var(name).ok()));
        host.config_path = Some(path.to_owned());
        Ok(host)
    }

    fn assemble(config: Config, dir: &Path, keys: Box<KeyLookup>) -> Host {
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| Loader::default_cache_dir(dir));
        let loader = Loader::new(cache_dir);
        let registry = Registry::build(&config, &loader, &*keys);
        Host {
            transport: Transport::new(config.timeouts),
            config,
            config_path: None,
            loader,
            registry: ArcSwap::from_pointee(registry),
        }
    }

    /// The config in effect.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The config file, when the host was built from one.
    pub fn config_path(&self) -> Option<&Path> {
        self.config_path.as_deref()
    }

    /// The loader, with the count of mapped plugin libraries.
    pub fn loader(&self) -> &Loader {
        &self.loader
    }

    /// The current registry snapshot. Requests hold it for their whole life.
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.load_full()
    }

    /// The HTTP API as an axum `Router`, to serve or to mount under a prefix.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        crate::serve::router(self.clone())
    }

    /// Answers a chat request in one piece; `request.model` is `provider/model` or an alias.
    pub async fn chat(&self, request: ChatRequest) -> Result<Completion, DispatchError> {
        dispatch::chat(&self.registry(), &self.transport, request).await
    }

    /// Answers a chat request as a stream of events.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, DispatchError> {
        dispatch::chat_stream(&self.registry(), &self.transport, request).await
    }
}
