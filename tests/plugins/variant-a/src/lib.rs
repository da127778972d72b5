//! Version A of a provider; version B (variant-b) answers differently, for reload tests.

#[path = "../../minimal.rs"]
mod minimal;

const PANIC_AT: u8 = minimal::NOWHERE;
const NAME: &str = "variant";
const ANSWER: &str = "variant A";

provider_sdk::export_provider!(minimal::Minimal);
