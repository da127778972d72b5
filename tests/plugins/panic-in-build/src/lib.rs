//! A provider that panics in `build_request`.

#[path = "../../minimal.rs"]
mod minimal;

const PANIC_AT: u8 = minimal::BUILD_REQUEST;
const NAME: &str = "panic-in-build";
const ANSWER: &str = "build";

provider_sdk::export_provider!(minimal::Minimal);
