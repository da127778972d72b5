//! A hostile provider for the isolation tests, shared by the `hostile-*` plugins
//! through `#[path]` (beside [`minimal.rs`], which it wraps).
//!
//! The including crate sets `HARM` (what it does to the process it runs in) besides
//! minimal's `NAME`, `ANSWER` and `PANIC_AT`. It harms in `build_request`: as built, on
//! every request, so validation always meets it; in a copy whose [`TRIGGER`] bytes a
//! test rewrote to `HOSTILE-TRIGGER:on-EVIL`, only on a request whose last user message
//! contains `EVIL`, so it passes validation and harms later.

use provider_sdk::{ChatRequest, Outbound, Provider, ProviderConfig, ProviderError};

use crate::minimal::Minimal;

/// Rewritten in place (same length) by tests that want the marked-request variant.
#[used]
static TRIGGER: [u8; 23] = *b"HOSTILE-TRIGGER:always.";

/// Dereferences a null pointer: SIGSEGV.
#[allow(dead_code)]
pub fn segfault() {
    // SAFETY: none; crashing is the point of this fixture.
    unsafe { std::ptr::null_mut::<u64>().write_volatile(7) }
}

/// `abort()`: SIGABRT.
#[allow(dead_code)]
pub fn abort() {
    std::process::abort()
}

/// Allocates 20 GiB and touches every page: under the sandbox's address-space limit
/// the allocation fails (and Rust aborts), elsewhere it exhausts the machine.
#[allow(dead_code)]
pub fn allocate_20_gib() {
    let size = 20usize << 30;
    let mut memory: Vec<u8> = Vec::with_capacity(size);
    let base = memory.as_mut_ptr();
    for page in (0..size).step_by(4096) {
        // SAFETY: within the capacity just allocated.
        unsafe { base.add(page).write_volatile(1) }
    }
    std::hint::black_box(&memory);
}

/// Never returns, and never yields.
#[allow(dead_code)]
pub fn spin_forever() {
    loop {
        std::hint::black_box(());
    }
}

/// [`Minimal`], harming in `build_request`.
pub struct Hostile(Minimal);

fn fires(request: &ChatRequest) -> bool {
    // Volatile, so the compiler cannot fold the bytes a test rewrites.
    // SAFETY: reads a static.
    let trigger = unsafe { std::ptr::read_volatile(&TRIGGER) };
    trigger.ends_with(b"always.")
        || request
            .last_user_text()
            .is_some_and(|text| text.contains("EVIL"))
}

impl Provider for Hostile {
    type Decoder = crate::minimal::LineDecoder;

    fn manifest() -> provider_sdk::Manifest {
        Minimal::manifest()
    }

    fn conformance() -> provider_sdk::Conformance {
        Minimal::conformance()
    }

    fn new(config: ProviderConfig) -> Result<Self, ProviderError> {
        Minimal::new(config).map(Hostile)
    }

    fn build_request(&self, request: &ChatRequest) -> Result<Outbound, ProviderError> {
        if fires(request) {
            crate::HARM();
        }
        self.0.build_request(request)
    }

    fn parse_response(
        &self,
        response: &provider_sdk::HttpResponse<'_>,
    ) -> Result<provider_sdk::ChatResponse, ProviderError> {
        self.0.parse_response(response)
    }

    fn stream_decoder(&self) -> Self::Decoder {
        self.0.stream_decoder()
    }
}
