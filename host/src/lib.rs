//! provider-host: loads LLM provider plugins and serves them behind one API.
//!
//! A request travels top-down through the modules: [`config`] says what to load,
//! [`load`] opens plugin files, [`validate`] checks them, [`registry`] holds what
//! serves, [`dispatch`] routes a request to a provider, [`transport`] does the I/O, and
//! [`serve`] puts it all behind an OpenAI-compatible HTTP API.
//! [`Host`] ties them together for embedders and for the binary.

pub mod breaker;
pub mod config;
pub mod dispatch;
pub mod health;
mod host;
pub mod load;
pub mod metrics;
pub mod registry;
pub mod serve;
pub mod transport;
pub mod usage;
pub mod validate;
pub mod watch;

pub use host::{Host, HostBuilder, KeyLookup};
pub use provider_sdk;
