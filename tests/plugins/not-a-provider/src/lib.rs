//! A perfectly good shared library that is not a provider plugin.

/// Something for the library to export.
#[no_mangle]
pub extern "C" fn fixture_add(a: u32, b: u32) -> u32 {
    a.wrapping_add(b)
}
