//! The bounded fuzz pass of validation: for about a second, upstream answers made from
//! the plugin's own samples (truncated, mutated, random, with huge lines, streams split
//! at random points) go through `parse_response`, the stream decoder and
//! `classify_error`. Errors the plugin returns are fine answers to garbage; a panic
//! fails the pass. It runs in the validation sandbox's child, where a crash or a hang
//! ends only the child: each input is written to a [`Recorder`] file before the plugin
//! sees it, so the one that broke the plugin is there afterwards.

pub mod generate;
pub mod input;
pub mod rng;

use std::time::{Duration, Instant};

use provider_sdk::abi::load::PluginProvider;

pub use generate::Sample;
pub use input::{Call, Input, Recorder};

/// At most this many inputs in one pass, whatever its time.
const MAX_INPUTS: u64 = 1_000_000;

/// What a fuzz pass does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// How long to make inputs for (zero: no pass).
    pub duration: Duration,
    /// The PRNG's seed; the same seed makes the same inputs.
    pub seed: u64,
    /// Replay this one saved input instead of making any.
    pub replay: Option<Input>,
}

/// How a pass went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Passed {
    /// Inputs tried.
    pub inputs: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The plugin panicked on an input.
    #[error("panicked on fuzzed upstream bytes given to {} (input {number}, seed {seed:#018x}): {message}", call.as_str())]
    Panicked {
        /// The call that panicked.
        call: Call,
        /// Which input of the pass, from 0.
        number: u64,
        /// The pass's seed.
        seed: u64,
        /// The panic's message.
        message: String,
    },
}

/// Runs a pass over `provider` with inputs made from `samples`, recording each input
/// in `recorder` before the plugin sees it. A recorder that fails (a full disk) is
/// dropped and the pass goes on: the host's own trouble must not refuse a plugin, it
/// only costs the saved input of a crash.
pub fn run(
    provider: &PluginProvider,
    samples: &[Sample],
    settings: &Settings,
    mut recorder: Option<&mut Recorder>,
) -> Result<Passed, Failure> {
    let started = Instant::now();
    let mut rng = rng::Rng::new(settings.seed);
    let mut number = 0;
    loop {
        let input = match &settings.replay {
            Some(_) if number > 0 => break,
            Some(saved) => saved.clone(),
            None if number >= MAX_INPUTS || started.elapsed() >= settings.duration => break,
            None if samples.is_empty() => break,
            None => generate::input(&mut rng, number, samples),
        };
        if let Some(writer) = recorder.as_deref_mut() {
            if writer.record(&input).is_err() {
                recorder = None;
            }
        }
        if let Err(panic) = input.run(provider) {
            return Err(Failure::Panicked {
                call: input.call,
                number,
                seed: settings.seed,
                message: panic.0,
            });
        }
        number += 1;
    }
    Ok(Passed {
        inputs: number,
        elapsed: started.elapsed(),
    })
}
