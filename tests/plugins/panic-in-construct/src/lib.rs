//! A provider that panics when the host constructs it.

#[path = "../../minimal.rs"]
mod minimal;

provider_sdk::export_provider!(minimal::Minimal<{ minimal::CONSTRUCT }>);
