//! `provider-host validate <file>`: every real plugin passes; every bad file is refused
//! with one line that says which file, what is wrong and what to do.

use std::path::Path;

use e2e::{mock_plugin, plugin, run_host, texts, Scratch};

/// Runs `validate` with a private cache; returns (passed, report, error line).
fn validate(scratch: &Scratch, file: &Path) -> (bool, String, String) {
    let config = scratch.config(serde_json::json!({}));
    let output = run_host(&[&"--config", &config, &"validate", &file]);
    let (stdout, stderr) = texts(&output);
    (output.status.success(), stdout, stderr)
}

/// Asserts the file is refused with exactly one error line containing every `expected` part.
fn assert_refused(file: &Path, expected: &[&str]) -> String {
    let scratch = Scratch::new();
    let (passed, report, stderr) = validate(&scratch, file);
    assert!(
        !passed,
        "{} must be refused; report:\n{report}",
        file.display()
    );
    assert!(report.contains("plugin is NOT valid"), "{report}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("error: "))
        .collect();
    assert_eq!(errors.len(), 1, "exactly one error line, got:\n{stderr}");
    let line = errors[0];
    assert!(
        line.contains(&file.display().to_string()),
        "the line names the file: {line}"
    );
    for part in expected {
        assert!(line.contains(part), "expected `{part}` in: {line}");
    }
    line.to_owned()
}

#[test]
fn every_provider_plugin_in_the_workspace_passes_every_check() {
    let scratch = Scratch::new();
    let plugins = e2e::workspace_provider_plugins();
    assert!(plugins.contains(&mock_plugin()), "{plugins:?}");
    for file in plugins {
        let (passed, report, stderr) = validate(&scratch, &file);
        assert!(passed, "{report}\n{stderr}");
        assert_eq!(report.matches("  PASS  ").count(), 11, "{report}");
        for note in [
            "same answer when split at every byte",
            "each reported by the decoder or losing nothing",
            "fuzzed upstream answers in",
            "no crash, hang or panic",
        ] {
            assert!(report.contains(note), "{note}: {report}");
        }
        // OpenAI and Anthropic speak protocols the host has tool-call streams for.
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if name.contains("openai") || name.contains("anthropic") {
            assert!(report.contains("1 tool call(s)"), "{report}");
        }
    }
}

#[test]
fn a_missing_file_is_refused() {
    let scratch = Scratch::new();
    assert_refused(
        &scratch.path("nope.so"),
        &["no such file", "build the plugin"],
    );
}

#[test]
fn a_text_file_is_refused() {
    let scratch = Scratch::new();
    let file = scratch.write("notes.so", "this is not a library\n");
    assert_refused(&file, &["not a shared library", "text file"]);
}

#[test]
fn random_bytes_are_refused_with_or_without_an_elf_header() {
    let scratch = Scratch::new();
    let noise: Vec<u8> = (0u32..4096)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let file = scratch.write("noise.so", &noise);
    assert_refused(&file, &["not a shared library", "no ELF header"]);
    let mut elfish = b"\x7fELF".to_vec();
    elfish.extend_from_slice(&noise);
    let file = scratch.write("elfish.so", &elfish);
    assert_refused(&file, &["not a shared library", "ELF"]);
}

#[test]
fn a_truncated_copy_of_a_real_plugin_is_refused_wherever_it_is_cut() {
    let scratch = Scratch::new();
    let bytes = std::fs::read(mock_plugin()).unwrap();
    // Cut in the debug sections (which the dynamic loader alone would accept), in the
    // code, and just after the header.
    for cut in [bytes.len() - 1, bytes.len() / 3, bytes.len() / 50, 200] {
        let file = scratch.write(&format!("libmock_cut_{cut}.so"), &bytes[..cut]);
        assert_refused(
            &file,
            &[
                "truncated",
                &format!("the file has {cut} bytes"),
                "wait for the copy to finish",
            ],
        );
    }
}

#[test]
fn an_executable_is_refused_by_the_dynamic_loader_with_its_reason() {
    assert_refused(
        &e2e::host_binary(),
        &["not a loadable shared library", "executable"],
    );
}

#[test]
fn a_shared_library_that_is_not_a_provider_is_refused() {
    assert_refused(
        &plugin("fixture_not_a_provider"),
        &["not a provider plugin", "export_provider!"],
    );
}

#[test]
fn a_plugin_with_a_mismatched_layout_is_refused_in_one_line() {
    let line = assert_refused(
        &plugin("fixture_bad_layout"),
        &[
            "layout does not match provider-sdk",
            "claims provider-sdk 1.0.0",
            "rebuild the plugin against provider-sdk 1.x",
        ],
    );
    assert!(
        line.len() < 600,
        "abi_stable's long dump is summarised, got {} bytes",
        line.len()
    );
}

#[test]
fn a_plugin_built_against_another_sdk_major_is_refused() {
    assert_refused(
        &plugin("fixture_sdk_v2"),
        &["built against provider-sdk 2.0.0, this host speaks 1.x: rebuild the plugin against provider-sdk 1.x"],
    );
}

#[test]
fn a_plugin_that_panics_in_construct_is_refused_and_the_panic_is_contained() {
    let line = assert_refused(
        &plugin("fixture_panic_in_construct"),
        &[
            "construct",
            "plugin panicked",
            "fixture panics in construct",
        ],
    );
    assert!(line.contains("plugin_fault"), "{line}");
}

#[test]
fn a_plugin_that_panics_in_build_request_is_refused_and_the_panic_is_contained() {
    assert_refused(
        &plugin("fixture_panic_in_build"),
        &[
            "build_request",
            "plugin panicked",
            "fixture panics in build_request",
        ],
    );
}
