//! A provider whose `build_request` calls `hostile::allocate_20_gib` (see hostile.rs for when).

#[path = "../../minimal.rs"]
mod minimal;

#[path = "../../hostile.rs"]
mod hostile;

const PANIC_AT: u8 = minimal::NOWHERE;
const NAME: &str = "hostile-oom";
const ANSWER: &str = "hostile";
const HARM: fn() = hostile::allocate_20_gib;

provider_sdk::export_provider!(hostile::Hostile);
