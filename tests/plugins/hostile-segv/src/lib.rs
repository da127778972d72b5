//! A provider whose `build_request` calls `hostile::segfault` (see hostile.rs for when).

#[path = "../../minimal.rs"]
mod minimal;

#[path = "../../hostile.rs"]
mod hostile;

const PANIC_AT: u8 = minimal::NOWHERE;
const NAME: &str = "hostile-segv";
const ANSWER: &str = "hostile";
const HARM: fn() = hostile::segfault;

provider_sdk::export_provider!(hostile::Hostile);
