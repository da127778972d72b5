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
};

/// A running set of providers. Cheap to share: wrap it in an `Arc`.
pub struct Host {
    config: Config,
    config_path: Option<PathBuf>,
    loader: Loader,
    registry: ArcSwap<Registry>,
}

impl Host {
    /// Reads the config at `path` and loads every provider it names. Providers that
    /// fail are recorded in the registry with their reason; only a bad config fails.
    pub fn from_config_file(path: &Path) -> Result<Host, ConfigError> {
        let config = Config::load(path)?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut host = Host::from_config(config, dir);
        host.config_path = Some(path.to_owned());
        Ok(host)
    }

    /// Loads every provider of an in-memory config; `dir` stands for the config's folder
    /// (for the default plugin cache).
    pub fn from_config(config: Config, dir: &Path) -> Host {
        let cache_dir = config
            .cache_dir
            .clone()
            .unwrap_or_else(|| Loader::default_cache_dir(dir));
        let loader = Loader::new(cache_dir);
        let registry = Registry::build(&config, &loader, &|name| std::env::var(name).ok());
        Host {
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

    /// Answers a chat request in one piece; `request.model` is `provider/model` or an alias.
    pub async fn chat(&self, request: ChatRequest) -> Result<Completion, DispatchError> {
        dispatch::chat(&self.registry(), request).await
    }

    /// Answers a chat request as a stream of events.
    pub async fn chat_stream(&self, request: ChatRequest) -> Result<EventStream, DispatchError> {
        dispatch::chat_stream(&self.registry(), request).await
    }
}
