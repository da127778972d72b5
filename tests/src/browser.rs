//! A real browser for the console's tests: Debian's Chromium (`/usr/bin/chromium`)
//! driven by `playwright-core` from the npm registry, both installed by
//! `.ci/install-browser` (run once per test process when missing; under a second when
//! both are there). Scripts live in `tests/browser/` and print one JSON line.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::OnceLock,
    time::Instant,
};

use serde_json::Value;

/// Runs `.ci/install-browser` once per process and returns the folder whose
/// `node_modules` holds playwright-core.
pub fn tools() -> &'static Path {
    static TOOLS: OnceLock<PathBuf> = OnceLock::new();
    TOOLS.get_or_init(|| {
        let started = Instant::now();
        let dir = crate::run_setup_script(".ci/install-browser", &[]);
        assert!(
            dir.join("node_modules/playwright-core").is_dir(),
            ".ci/install-browser printed `{}`, not a folder with playwright-core",
            dir.display()
        );
        eprintln!("browser: ready in {:.1?}", started.elapsed());
        dir
    })
}

/// Where a test leaves its screenshots: `target/console-screenshots/<name>/`.
pub fn artifacts(name: &str) -> PathBuf {
    let dir = crate::target_dir()
        .parent()
        .expect("target/<profile> has a parent")
        .join("console-screenshots")
        .join(name);
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    dir
}

/// Runs `tests/browser/<script>` with `args` under node and returns the JSON it prints
/// last. Runs on a blocking thread, so a host in this process keeps serving.
pub async fn run(script: &'static str, args: Vec<String>) -> Value {
    tokio::task::spawn_blocking(move || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("browser")
            .join(script);
        let output = Command::new("node")
            .arg(&script)
            .args(&args)
            .env("NODE_PATH", tools().join("node_modules"))
            .env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost")
            .stdin(Stdio::null())
            .output()
            .expect("run node");
        let (stdout, stderr) = crate::texts(&output);
        assert!(
            output.status.success(),
            "{} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            script.display(),
            output.status
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| {
            panic!("the browser script printed no JSON ({e}):\n{stdout}\n{stderr}")
        })
    })
    .await
    .expect("the browser script's thread")
}
