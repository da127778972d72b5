//! Everything one request needs, published as one immutable value: the config, the
//! providers, the transport built for the config's timeouts and the accepted client
//! keys. A reload builds a new snapshot beside the old and swaps it in; a request
//! holds the one it started on until it ends.

use std::sync::Arc;

use crate::{
    clients::ClientKeys,
    config::{Config, KeyLookup},
    registry::Registry,
    transport::Transport,
};

/// Everything a request needs, swapped as one.
pub struct Snapshot {
    /// The config in effect.
    pub config: Arc<Config>,
    /// The providers.
    pub registry: Arc<Registry>,
    /// The HTTP side, built for this config's timeouts.
    pub transport: Transport,
    /// Accepted client keys.
    pub client_keys: ClientKeys,
    /// Accepted admin keys (`auth.admin_keys`), never the same as client keys.
    pub admin_keys: ClientKeys,
    /// Increments with every published snapshot.
    pub generation: u64,
}

impl Snapshot {
    /// Puts a config and what was built from it together.
    pub fn new(
        config: Config,
        registry: Registry,
        transport: Transport,
        generation: u64,
        keys: &KeyLookup,
    ) -> Snapshot {
        Snapshot {
            transport,
            client_keys: crate::clients::client_keys(&config, keys),
            admin_keys: crate::clients::admin_keys(&config),
            config: Arc::new(config),
            registry: Arc::new(registry),
            generation,
        }
    }
}
