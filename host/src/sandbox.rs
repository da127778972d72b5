//! Validation in a child process, so that no plugin file can take the host down by
//! being checked.
//!
//! Every new plugin file is first validated by the host binary re-executed as
//! `provider-host validate-child <copy>`, under an address-space limit, a CPU limit and a
//! wall-clock limit. The child reports each check as it starts and ends on stdout (see
//! [`Line`]); a crash, an abort, an allocation past the limit or a hang there refuses the
//! file with the signal or the limit named in one line, and the host process never maps
//! it. Only files that passed are loaded in-process. A pass is remembered by the file's
//! SHA-256, so an unchanged file is not checked again on every reload.
//!
//! The child's last check is a fuzz pass ([`crate::fuzz`]): it writes each input to a
//! recording file before the plugin sees it, so when the plugin panics, crashes or hangs
//! on one, the parent keeps that file as `<cache>/fuzz-inputs/<plugin>-<sha>-<seed>.input`
//! and names it in the refusal; `provider-host validate <plugin> --replay <input>` runs
//! that input again.

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{atomic::AtomicU64, mpsc, Mutex},
    time::{Duration, Instant},
};

use serde::{Deserialize, Serialize};

use crate::{
    config::SandboxConfig,
    validate::{Check, Outcome, CHECKS},
};

/// The folder of the plugin cache where inputs that broke a plugin are kept.
pub const FUZZ_INPUTS_DIR: &str = "fuzz-inputs";

/// How many saved inputs that folder keeps (the newest): each is at most a few MiB,
/// and every refused file adds one.
pub const KEEP_SAVED_INPUTS: usize = 32;

/// The hidden subcommand that runs validation in the child.
pub const CHILD_COMMAND: &str = "validate-child";

/// The limits a validation child runs under.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Address space (`RLIMIT_AS`), in bytes: an allocation past it fails in the child.
    pub address_space: u64,
    /// Wall-clock time before the child is killed.
    pub wall: Duration,
}

impl Limits {
    /// The limits a config asks for (a child's fuzz pass gets its own time on top of
    /// the wall-clock limit).
    pub fn from_config(config: &SandboxConfig) -> Limits {
        Limits {
            address_space: config.address_space_mb.saturating_mul(1024 * 1024),
            wall: Duration::from_secs_f64(config.timeout_secs.max(0.1)),
        }
    }
}

/// The fuzz pass each validation child runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FuzzOptions {
    /// How long it makes inputs.
    pub duration: Duration,
    /// Its seed; a fresh one for each child when `None`.
    pub seed: Option<u64>,
    /// Replay this saved input instead (for `provider-host validate --replay`).
    pub replay: Option<PathBuf>,
}

impl FuzzOptions {
    /// The fuzz pass a config asks for.
    pub fn from_config(config: &SandboxConfig) -> FuzzOptions {
        let secs = config.fuzz_secs;
        FuzzOptions {
            duration: match secs.is_finite() {
                true => Duration::from_secs_f64(secs.clamp(0.0, crate::config::MAX_FUZZ_SECS)),
                false => Duration::ZERO,
            },
            seed: config.fuzz_seed,
            replay: None,
        }
    }
}

impl Default for FuzzOptions {
    fn default() -> Self {
        FuzzOptions::from_config(&SandboxConfig::default())
    }
}

/// Runs validation children with one binary and one set of limits.
#[derive(Debug)]
pub struct Sandbox {
    binary: PathBuf,
    limits: Limits,
    /// The checks of every file (by SHA-256) that passed.
    passed: Mutex<HashMap<String, Vec<Check>>>,
    /// Children started so far.
    children: AtomicU64,
    /// The fuzz pass of each child.
    fuzz: FuzzOptions,
}

/// One line of the child's protocol on stdout. Lines that are not JSON objects of this
/// shape (a plugin may print anything) are ignored.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "sandbox", rename_all = "snake_case")]
pub enum Line {
    /// A check starts.
    Start {
        /// Its name.
        check: String,
    },
    /// A check ended.
    Done {
        /// Its name.
        check: String,
        /// `Ok(note)` or `Err(reason)`.
        result: Result<String, String>,
    },
    /// Every check ran (the verdict is in the `Done` lines).
    End,
}

impl Sandbox {
    /// A sandbox that re-executes `binary` under `limits`.
    pub fn new(binary: PathBuf, limits: Limits) -> Sandbox {
        Sandbox {
            binary,
            limits,
            passed: Mutex::new(HashMap::new()),
            children: AtomicU64::new(0),
            fuzz: FuzzOptions::default(),
        }
    }

    /// Runs `fuzz` as each child's fuzz pass.
    pub fn with_fuzz(mut self, fuzz: FuzzOptions) -> Sandbox {
        self.fuzz = fuzz;
        self
    }

    /// The sandbox a config asks for: its binary, else a `provider-host` beside this
    /// executable, else one on `PATH`. `None` (with a warning) when it is turned off or
    /// no binary is found: validation then runs in-process.
    pub fn from_config(config: &SandboxConfig, binary: Option<&Path>) -> Option<Sandbox> {
        if !config.enabled {
            tracing::warn!("plugin validation sandbox is off (sandbox.enabled = false): a plugin that crashes while it is checked takes the host down");
            return None;
        }
        let found = match binary.or(config.binary.as_deref()) {
            Some(path) if path.is_file() => Some(path.to_owned()),
            Some(path) => {
                tracing::warn!(binary = %path.display(), "the sandbox binary does not exist; plugins are validated in-process (the sandbox is off)");
                return None;
            }
            None => locate_binary(),
        };
        match found {
            Some(binary) => Some(
                Sandbox::new(binary, Limits::from_config(config))
                    .with_fuzz(FuzzOptions::from_config(config)),
            ),
            None => {
                tracing::warn!("no provider-host binary found beside this program or on PATH (set sandbox.binary): plugins are validated in-process, the sandbox is off");
                None
            }
        }
    }

    /// The binary re-executed for each validation.
    pub fn binary(&self) -> &Path {
        &self.binary
    }

    /// How many validation children have run (a remembered pass runs none).
    pub fn children_run(&self) -> u64 {
        self.children.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The limits each child runs under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Validates the content-addressed copy `copy` (SHA-256 `sha256`) of the plugin
    /// `source` in a child; the checks from `load` on, each reason naming `source`.
    pub fn validate(&self, source: &Path, copy: &Path, sha256: &str) -> Vec<Check> {
        let replay = self.fuzz.replay.is_some();
        if let Some(checks) = self.passed.lock().expect("sandbox lock").get(sha256) {
            if !replay {
                return checks.clone();
            }
        }
        let seed = self.fuzz.seed.unwrap_or_else(crate::fuzz::rng::fresh_seed);
        let inputs = copy
            .parent()
            .unwrap_or(Path::new("."))
            .join(FUZZ_INPUTS_DIR);
        let stem = source
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "plugin".to_owned());
        let name = format!("{stem}-{}", &sha256[..sha256.len().min(16)]);
        let number = self.children_run();
        let recording = (!replay)
            .then(|| {
                crate::load::create_private_dir(&inputs).ok()?;
                Some(inputs.join(format!("{name}-{}-{number}.recording", std::process::id())))
            })
            .flatten();
        let mut checks = self.run_child(source, copy, seed, recording.as_deref());
        if let Some(recording) = &recording {
            let saved = inputs.join(format!("{name}-{seed:016x}.input"));
            keep_breaking_input(&mut checks, source, recording, &saved);
            let _ = std::fs::remove_file(recording);
        }
        if let (Some(replayed), Some(reason)) = (&self.fuzz.replay, fuzz_failure(&mut checks)) {
            if !reason.contains("fuzzed upstream bytes") {
                on_what(
                    reason,
                    &format!("on the replayed input {}", replayed.display()),
                );
            }
        }
        let passed = checks.len() + 1 == CHECKS.len()
            && checks.iter().all(|c| matches!(c.outcome, Outcome::Pass(_)));
        if passed && !replay {
            self.passed
                .lock()
                .expect("sandbox lock")
                .insert(sha256.to_owned(), checks.clone());
        }
        checks
    }

    fn run_child(
        &self,
        source: &Path,
        copy: &Path,
        seed: u64,
        recording: Option<&Path>,
    ) -> Vec<Check> {
        let mut command = Command::new(&self.binary);
        command
            .arg(CHILD_COMMAND)
            .arg(copy)
            .arg("--fuzz-secs")
            .arg(self.fuzz.duration.as_secs_f64().to_string())
            .arg("--fuzz-seed")
            .arg(seed.to_string());
        if let Some(recording) = recording {
            command.arg("--record").arg(recording);
        }
        if let Some(replay) = &self.fuzz.replay {
            command.arg("--replay").arg(replay);
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env("RUST_LOG", "off")
            .env_remove("RUST_BACKTRACE");
        let limits = Limits {
            wall: self.limits.wall + self.fuzz.duration,
            ..self.limits
        };
        limit_child(&mut command, limits);
        self.children
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                return vec![fail(
                    "load",
                    format!(
                        "{}: cannot start the validation sandbox {}: {e}",
                        source.display(),
                        self.binary.display()
                    ),
                )]
            }
        };
        let incoming = read_lines(child.stdout.take().expect("piped stdout"));
        let stderr = read_tail(child.stderr.take().expect("piped stderr"));
        // The fuzz pass gets its own time once it starts, so a hang before it is
        // reported at the configured limit.
        let mut wall = self.limits.wall;
        let mut lines = Vec::new();
        let status = loop {
            while let Ok(line) = incoming.try_recv() {
                if matches!(serde_json::from_str(&line), Ok(Line::Start { check }) if check == "fuzz")
                {
                    wall = limits.wall;
                }
                lines.push(line);
            }
            let deadline = started + wall;
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() >= deadline => break None,
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(_) => break None,
            }
        };
        let timed_out = status.is_none();
        if timed_out {
            let _ = child.kill();
        }
        let status = status.or_else(|| child.wait().ok());
        kill_group(child.id());
        // A grandchild may hold the pipes open; never wait on it for long.
        let drained = Instant::now() + Duration::from_secs(1);
        while let Ok(line) =
            incoming.recv_timeout(drained.saturating_duration_since(Instant::now()))
        {
            lines.push(line);
        }
        let stderr = stderr
            .recv_timeout(Duration::from_secs(1))
            .unwrap_or_default();
        let (mut checks, running, ended) = parse_lines(&lines, source);
        let clean_exit = status.is_some_and(|s| s.success());
        if ended && clean_exit && !timed_out {
            return checks;
        }
        let death = if timed_out {
            format!(
                "did not finish within {} s in the validation sandbox and was killed (SIGKILL): it hangs",
                wall.as_secs_f64()
            )
        } else {
            describe_exit(status, &stderr, Limits { wall, ..limits })
        };
        let check = running.unwrap_or("load");
        let reason = if check == "load" {
            format!("{}: {death}", source.display())
        } else {
            death
        };
        checks.push(fail(check, reason));
        checks
    }
}

/// When the fuzz check failed and the recording holds the input it was on, keeps it as
/// `saved` and names it in the failure.
fn keep_breaking_input(checks: &mut [Check], source: &Path, recording: &Path, saved: &Path) {
    let Some(reason) = fuzz_failure(checks) else {
        return;
    };
    let recorded = std::fs::read(recording).unwrap_or_default();
    if recorded.is_empty() || std::fs::rename(recording, saved).is_err() {
        return;
    }
    if let Some(folder) = saved.parent() {
        prune_saved_inputs(folder, KEEP_SAVED_INPUTS);
    }
    if !reason.contains("fuzzed upstream bytes") {
        // The child died or hung, and could not say on what: the recording can.
        let call = String::from_utf8_lossy(&recorded[..recorded.len().min(200)])
            .lines()
            .find_map(|l| l.strip_prefix("call: ").map(str::to_owned))
            .unwrap_or_default();
        on_what(reason, &format!("on fuzzed upstream bytes given to {call}"));
    }
    reason.push_str(&format!(
        "; the input is saved in {} (replay it: provider-host validate {} --replay {})",
        saved.display(),
        source.display(),
        saved.display()
    ));
}

/// Deletes all but the newest `keep` saved inputs in `folder`.
fn prune_saved_inputs(folder: &Path, keep: usize) {
    let Ok(entries) = std::fs::read_dir(folder) else {
        return;
    };
    let mut saved: Vec<(std::time::SystemTime, PathBuf)> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "input"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    saved.sort_unstable_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    for (_, old) in saved.into_iter().skip(keep) {
        let _ = std::fs::remove_file(old);
    }
}

/// The reason of a failed fuzz check, when that is how the checks ended.
fn fuzz_failure(checks: &mut [Check]) -> Option<&mut String> {
    match checks.last_mut() {
        Some(Check {
            name: "fuzz",
            outcome: Outcome::Fail(reason),
        }) => Some(reason),
        _ => None,
    }
}

/// Puts `what` after the first clause of a death's description (`crashed in the
/// validation sandbox with SIGSEGV (segmentation fault)`, `... it hangs`).
fn on_what(reason: &mut String, what: &str) {
    match reason.find(';') {
        Some(at) => reason.insert_str(at, &format!(" {what}")),
        None => reason.push_str(&format!(" {what}")),
    }
}

/// The `provider-host` binary beside this executable (or this executable, when it is
/// that binary), else the first on `PATH`.
fn locate_binary() -> Option<PathBuf> {
    let name = format!("provider-host{}", std::env::consts::EXE_SUFFIX);
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(&name)));
    beside.filter(|p| p.is_file()).or_else(|| {
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(&name))
                .find(|p| p.is_file())
        })
    })
}

/// Sets the child's limits and its own process group (so a plugin's stray children die
/// with it), and turns off core files (a crash here is expected, not debugged).
fn limit_child(command: &mut Command, limits: Limits) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let cpu = limits.wall.as_secs().saturating_add(2);
        let address_space = limits.address_space;
        // SAFETY: between fork and exec only async-signal-safe calls are made
        // (setrlimit, setpgid), with values computed before the fork.
        unsafe {
            command.pre_exec(move || {
                let set = |resource, soft: u64, hard: u64| {
                    let limit = libc::rlimit {
                        rlim_cur: soft as libc::rlim_t,
                        rlim_max: hard as libc::rlim_t,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                };
                set(libc::RLIMIT_AS, address_space, address_space)?;
                set(libc::RLIMIT_CPU, cpu, cpu + 1)?;
                set(libc::RLIMIT_CORE, 0, 0)?;
                libc::setpgid(0, 0);
                Ok(())
            });
        }
    }
    #[cfg(not(unix))]
    let _ = (command, limits);
}

fn kill_group(pid: u32) {
    #[cfg(unix)]
    // SAFETY: signals the child's own process group, which only the child created.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
    }
    #[cfg(not(unix))]
    let _ = pid;
}

/// Reads the child's protocol lines on stdout (at most 10,000 lines are read) on a
/// thread of its own, passing each on as it arrives.
fn read_lines(stdout: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let lines = BufReader::new(stdout)
            .lines()
            .take(10_000)
            .map_while(Result::ok)
            .filter(|l| l.starts_with("{\"sandbox\""));
        for line in lines {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Keeps the last 4 KiB of the child's stderr (a Rust allocation failure says its size
/// there), on a thread of its own.
fn read_tail(stderr: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = stderr;
        let mut tail: Vec<u8> = Vec::new();
        let mut buffer = [0u8; 4096];
        while let Ok(n) = reader.read(&mut buffer) {
            if n == 0 {
                break;
            }
            tail.extend_from_slice(&buffer[..n]);
            if tail.len() > 4096 {
                tail.drain(..tail.len() - 4096);
            }
        }
        let _ = tx.send(String::from_utf8_lossy(&tail).into_owned());
    });
    rx
}

/// The finished checks, the check that was running when the child stopped, and whether
/// it said it ended.
fn parse_lines(lines: &[String], source: &Path) -> (Vec<Check>, Option<&'static str>, bool) {
    let mut checks = Vec::new();
    let mut running = None;
    let mut ended = false;
    for line in lines {
        match serde_json::from_str::<Line>(line) {
            Ok(Line::Start { check }) => running = check_name(&check),
            Ok(Line::Done { check, result }) => {
                let Some(name) = check_name(&check) else {
                    continue;
                };
                running = None;
                checks.push(Check {
                    name,
                    outcome: match result {
                        Ok(note) => Outcome::Pass(note),
                        // The child names its private copy; the operator knows the source.
                        Err(reason) if name == "load" => {
                            Outcome::Fail(format!("{}: {reason}", source.display()))
                        }
                        Err(reason) => Outcome::Fail(reason),
                    },
                });
            }
            Ok(Line::End) => ended = true,
            Err(_) => {}
        }
    }
    (checks, running, ended)
}

fn check_name(name: &str) -> Option<&'static str> {
    CHECKS.iter().copied().find(|c| *c == name)
}

fn fail(name: &'static str, reason: String) -> Check {
    Check {
        name,
        outcome: Outcome::Fail(reason),
    }
}

/// One line on how the child died.
fn describe_exit(status: Option<std::process::ExitStatus>, stderr: &str, limits: Limits) -> String {
    let limit_mib = limits.address_space / (1024 * 1024);
    let allocation = stderr
        .lines()
        .rev()
        .find(|l| l.starts_with("memory allocation of"))
        .map(str::trim);
    #[cfg(unix)]
    if let Some(signal) = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)) {
        let name = signal_name(signal);
        return match (signal, allocation) {
            (libc::SIGABRT, Some(what)) => format!(
                "ran out of memory in the validation sandbox ({what}, past its {limit_mib} MiB address-space limit; {name})"
            ),
            (libc::SIGXCPU, _) => format!(
                "used more than {} s of CPU in the validation sandbox and was stopped ({name}): it hangs",
                limits.wall.as_secs().saturating_add(2)
            ),
            _ => format!("crashed in the validation sandbox with {name}; the host never loaded it: fix the plugin"),
        };
    }
    match status.and_then(|s| s.code()) {
        Some(code) => format!(
            "the validation sandbox exited with status {code} before finishing: {}",
            stderr.lines().last().unwrap_or("no message").trim()
        ),
        None => "the validation sandbox ended without a report".to_owned(),
    }
}

/// `SIGSEGV (segmentation fault)` and the like.
pub fn signal_name(signal: i32) -> String {
    #[cfg(unix)]
    {
        let name = match signal {
            libc::SIGSEGV => "SIGSEGV (segmentation fault)",
            libc::SIGABRT => "SIGABRT (abort)",
            libc::SIGKILL => "SIGKILL",
            libc::SIGBUS => "SIGBUS (bus error)",
            libc::SIGILL => "SIGILL (illegal instruction)",
            libc::SIGFPE => "SIGFPE (arithmetic fault)",
            libc::SIGXCPU => "SIGXCPU (CPU time limit)",
            libc::SIGTERM => "SIGTERM",
            libc::SIGTRAP => "SIGTRAP",
            _ => return format!("signal {signal}"),
        };
        name.to_owned()
    }
    #[cfg(not(unix))]
    format!("signal {signal}")
}

/// What the parent asks of a child besides the file.
#[derive(Debug, Clone, Default)]
pub struct ChildOptions {
    /// The fuzz pass's length.
    pub fuzz_secs: f64,
    /// Its seed.
    pub fuzz_seed: u64,
    /// The file each fuzz input is written to before the plugin sees it.
    pub record: Option<PathBuf>,
    /// A saved input to replay instead of fuzzing.
    pub replay: Option<PathBuf>,
}

/// The child's side: validates the library at `file` in this process, reporting each
/// check on stdout as a [`Line`]; returns the process exit code (0 when every check
/// ran, whatever the verdict; 2 when the options are unusable).
pub fn child_main(file: &Path, options: &ChildOptions) -> i32 {
    use std::io::Write;
    let emit = |line: &Line| {
        let mut out = std::io::stdout().lock();
        // The parent reads lines as they come: a crash in the next check must not
        // lose this one in a buffer.
        let _ = writeln!(out, "{}", serde_json::to_string(line).unwrap_or_default());
        let _ = out.flush();
    };
    let replay = match options
        .replay
        .as_deref()
        .map(crate::fuzz::Input::decode_file)
        .transpose()
    {
        Ok(replay) => replay,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    // Without a recording the pass still runs: only a crash's input would not be saved.
    let recorder = options
        .record
        .as_deref()
        .and_then(|path| crate::fuzz::Recorder::create(path).ok());
    let mut fuzz = crate::validate::Fuzz {
        settings: crate::fuzz::Settings {
            duration: match options.fuzz_secs.is_finite() {
                true => Duration::from_secs_f64(
                    options.fuzz_secs.clamp(0.0, crate::config::MAX_FUZZ_SECS),
                ),
                false => Duration::ZERO,
            },
            seed: options.fuzz_seed,
            replay,
        },
        recorder,
    };
    crate::validate::validate_library_at(file, &mut fuzz, &mut |event| match event {
        crate::validate::Progress::Start(check) => emit(&Line::Start {
            check: check.to_owned(),
        }),
        crate::validate::Progress::Done(check, result) => emit(&Line::Done {
            check: check.to_owned(),
            result: result.clone(),
        }),
    });
    emit(&Line::End);
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_newest_saved_inputs_are_kept() {
        let folder = tempfile::tempdir().unwrap();
        let start = std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        for i in 0..5u64 {
            let file = folder.path().join(format!("p-{i}.input"));
            std::fs::write(&file, b"x").unwrap();
            let when = start + Duration::from_secs(i);
            std::fs::File::options()
                .write(true)
                .open(&file)
                .unwrap()
                .set_modified(when)
                .unwrap();
        }
        std::fs::write(folder.path().join("p-9.recording"), b"x").unwrap();
        prune_saved_inputs(folder.path(), 2);
        let mut left: Vec<String> = std::fs::read_dir(folder.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["p-3.input", "p-4.input", "p-9.recording"]);
    }
}
