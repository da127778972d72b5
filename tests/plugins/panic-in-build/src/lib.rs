//! A provider that panics in `build_request`.

#[path = "../../minimal.rs"]
mod minimal;

provider_sdk::export_provider!(minimal::Minimal<{ minimal::BUILD_REQUEST }>);
