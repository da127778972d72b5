//! A provider that panics when the host constructs it.

#[path = "../../minimal.rs"]
mod minimal;

const PANIC_AT: u8 = minimal::CONSTRUCT;
const NAME: &str = "panic-in-construct";
const ANSWER: &str = "construct";

provider_sdk::export_provider!(minimal::Minimal);
