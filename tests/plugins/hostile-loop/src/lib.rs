//! A provider whose `build_request` calls `hostile::spin_forever` (see hostile.rs for when).

#[path = "../../minimal.rs"]
mod minimal;

#[path = "../../hostile.rs"]
mod hostile;

const PANIC_AT: u8 = minimal::NOWHERE;
const NAME: &str = "hostile-loop";
const ANSWER: &str = "hostile";
const HARM: fn() = hostile::spin_forever;

provider_sdk::export_provider!(hostile::Hostile);
