//! Version B of a provider; version A (variant-a) answers differently, for reload tests.

#[path = "../../minimal.rs"]
mod minimal;

const PANIC_AT: u8 = minimal::NOWHERE;
const NAME: &str = "variant";
const ANSWER: &str = "variant B";

provider_sdk::export_provider!(minimal::Minimal);
