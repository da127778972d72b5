//! provider-host: loads LLM provider plugins and serves them behind one API.
//!
//! A request travels top-down: an ingress adapter in [`serve`] turns a client's
//! request into a canonical [`pipeline::Call`]; the [`pipeline`] runs it (route,
//! capabilities, budgets, breakers, retries and fallback, usage, metrics) against
//! the providers of the current [`snapshot`]; the plugin translates and the
//! [`transport`] does the I/O; the adapter renders the answer in the client's protocol.
//!
//! Around that path: [`config`] says what to load, [`load`] opens plugin files,
//! [`validate`] checks them, [`registry`] holds what serves, [`watch`] reloads.
//! [`Host`] ties them together for embedders and for the binary.

pub mod breaker;
pub mod cache;
pub mod clients;
pub mod config;
pub mod fuzz;
pub mod health;
mod host;
pub mod last_errors;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod pipeline;
pub mod plugin;
pub mod plugin_pool;
pub mod registry;
pub mod response_store;
pub mod sandbox;
pub mod scaffold;
pub mod serve;
pub mod shared_state;
pub mod snapshot;
pub mod stream_checks;
pub mod target;
pub mod traffic;
pub mod transport;
pub mod usage;
pub mod validate;
pub mod watch;
pub mod worker;

pub use config::KeyLookup;
pub use host::{Host, HostBuilder};
pub use provider_sdk;
