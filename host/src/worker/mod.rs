//! Process isolation (`"isolation": "process"`): a provider's plugin runs in worker
//! processes, the host binary re-executed as `provider-host plugin-worker`, and the
//! host calls it over a Unix socket. A worker that crashes, aborts, runs out of
//! memory or overruns a call's deadline costs only the calls in flight on it (they
//! fail as `plugin_fault`, so a fallback chain moves on); it is replaced with a
//! backoff.
//!
//! [`frame`] is the wire, [`child`] the worker's side, [`pool`] the host's side of one
//! provider version's workers, [`remote`] the plugin calls made over it.

pub mod child;
pub mod frame;
pub mod pool;
pub mod remote;
mod spawn;

/// The `provider_code` of the `plugin_fault` a call gets when its worker process died
/// or was killed under it: the pipeline counts it against the provider's breaker.
pub const WORKER_DIED: &str = "worker_died";

pub use pool::{Pool, Settings, StartError, WorkerStats};
pub use remote::RemoteDecoder;
pub use spawn::WORKER_COMMAND;
