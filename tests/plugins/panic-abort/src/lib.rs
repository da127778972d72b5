//! A provider built with `panic = "abort"` that panics in `build_request`: loaded
//! without the build check, its first request would end the host.

#[path = "../../minimal.rs"]
mod minimal;

const PANIC_AT: u8 = minimal::BUILD_REQUEST;
const NAME: &str = "panic-abort";
const ANSWER: &str = "abort";

provider_sdk::export_provider!(minimal::Minimal);
