//! `provider-host new-provider` writes a crate that builds, passes its own fixture tests
//! and `provider-host validate` as generated: here outside the workspace, in a scratch
//! folder, depending on this checkout's provider-sdk and provider-kit by path.
//!
//! The generated crates are built with the target folder the tests run from, so the
//! dependencies they share with the workspace are not compiled again, and offline,
//! with a copy of the workspace's Cargo.lock (the only file added to the crate), so
//! that no registry is asked: the test suite never calls the internet.

use std::{path::Path, process::Command};

use e2e::{run_host, target_dir, texts, Scratch};

/// Runs cargo `args` on the crate at `dir`, which must succeed; returns its output.
fn cargo(dir: &Path, args: &[&str]) -> String {
    let target = target_dir();
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .arg("--offline")
        .arg("--manifest-path")
        .arg(dir.join("Cargo.toml"))
        .env(
            "CARGO_TARGET_DIR",
            target.parent().expect("target/<profile>"),
        )
        .output()
        .expect("run cargo");
    let (stdout, stderr) = texts(&output);
    assert!(
        output.status.success(),
        "cargo {args:?} failed:\n{stdout}\n{stderr}"
    );
    stdout + &stderr
}

/// Generates `name` (with `extra` arguments), runs its tests, builds it and validates
/// the library.
fn generate_build_and_validate(name: &str, extra: &[&str]) {
    let scratch = Scratch::new();
    let dir = scratch.path(name);
    let sources = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut args: Vec<&dyn AsRef<std::ffi::OsStr>> = vec![
        &"new-provider",
        &name,
        &"--path",
        &dir,
        &"--sdk-path",
        &sources,
    ];
    for arg in extra {
        args.push(arg);
    }
    let output = run_host(&args);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("provider-sdk and provider-kit by path"),
        "{stdout}"
    );
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    assert!(manifest.contains("panic = \"unwind\""), "{manifest}");
    std::fs::copy(sources.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    let tested = cargo(&dir, &["test"]);
    assert!(tested.contains("test result: ok"), "{tested}");
    assert!(
        !tested.contains(" 0 passed"),
        "the generated tests ran: {tested}"
    );
    cargo(&dir, &["build"]);

    let library = target_dir().join(format!("lib{}_provider.so", name.replace('-', "_")));
    let output = run_host(&[&"validate", &library]);
    let (stdout, stderr) = texts(&output);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("plugin is valid"), "{stdout}");
    for check in [
        "build_request",
        "parse_response",
        "stream",
        "classify_error",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.contains("PASS") && l.contains(check)),
            "{check}: {stdout}"
        );
    }
}

#[test]
fn a_generated_provider_of_its_own_protocol_builds_tests_and_validates_untouched() {
    generate_build_and_validate("scaffold-native", &[]);
}

#[test]
fn a_generated_openai_compatible_provider_builds_tests_and_validates_untouched() {
    generate_build_and_validate("scaffold-compat", &["--openai-compatible"]);
}

#[test]
fn bad_names_and_occupied_folders_are_refused_with_the_reason() {
    let scratch = Scratch::new();
    let output = run_host(&[&"new-provider", &"Acme!", &"--path", &scratch.path("x")]);
    let (_, stderr) = texts(&output);
    assert!(!output.status.success());
    assert!(stderr.contains("is not a provider name"), "{stderr}");
    let taken = scratch.write("taken/file", "x");
    let output = run_host(&[
        &"new-provider",
        &"acme",
        &"--path",
        &taken.parent().unwrap(),
    ]);
    let (_, stderr) = texts(&output);
    assert!(
        stderr.contains("already exists and is not empty"),
        "{stderr}"
    );
}
