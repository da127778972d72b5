//! The benchmark suite of provider-host (issue #8): see `docs/benchmarks.md`.
//!
//! The library holds what the `bench` binary and the micro-benchmarks share: the
//! workload, the fake upstream, the bare proxy, the load generator and the figures.

pub mod fake;
pub mod load;
pub mod proxy;
pub mod stats;
pub mod workload;
