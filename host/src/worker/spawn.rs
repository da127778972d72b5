//! Starting a worker process: the host binary re-executed as the hidden
//! `plugin-worker` command, its stdin one end of a Unix socket pair, under an
//! address-space limit, without core files, in a process group of its own, and set to
//! be killed by the kernel when the thread that started it ends (`PR_SET_PDEATHSIG`),
//! so no worker outlives the host, even a host killed with SIGKILL.

use std::{
    os::unix::net::UnixStream,
    path::Path,
    process::{Child, Command, Stdio},
};

/// The hidden subcommand a worker runs.
pub const WORKER_COMMAND: &str = "plugin-worker";

/// The environment variable that tells a worker its host's process id.
const PARENT_VAR: &str = "PROVIDER_HOST_WORKER_PARENT";

/// Starts `binary` as a worker on the plugin copy `plugin`, with an address-space
/// limit of `address_space` bytes; returns the child and the host's end of its socket.
///
/// Call it from a thread that lives as long as the worker should: the kernel kills
/// the worker when the thread that started it ends.
pub fn start(
    binary: &Path,
    plugin: &Path,
    address_space: u64,
) -> std::io::Result<(Child, UnixStream)> {
    let (ours, theirs) = UnixStream::pair()?;
    let mut command = Command::new(binary);
    command
        .arg(WORKER_COMMAND)
        .arg(plugin)
        .stdin(Stdio::from(std::os::fd::OwnedFd::from(theirs)))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env(PARENT_VAR, std::process::id().to_string())
        .env("RUST_LOG", "off")
        .env_remove("RUST_BACKTRACE");
    limit(&mut command, address_space);
    let child = command.spawn()?;
    Ok((child, ours))
}

fn limit(command: &mut Command, address_space: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec only async-signal-safe calls are made (prctl,
    // setrlimit, setpgid), with values computed before the fork.
    unsafe {
        command.pre_exec(move || {
            #[cfg(target_os = "linux")]
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            let set = |resource, value: u64| {
                let limit = libc::rlimit {
                    rlim_cur: value as libc::rlim_t,
                    rlim_max: value as libc::rlim_t,
                };
                if libc::setrlimit(resource, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            };
            set(libc::RLIMIT_AS, address_space)?;
            set(libc::RLIMIT_CORE, 0)?;
            libc::setpgid(0, 0);
            Ok(())
        });
    }
}

/// In the worker: exits at once if the host that started it is already gone (it may
/// have died before the parent-death signal was armed).
pub fn die_with_parent() {
    let expected = std::env::var(PARENT_VAR)
        .ok()
        .and_then(|pid| pid.parse::<libc::pid_t>().ok());
    // SAFETY: getppid has no preconditions.
    let parent = unsafe { libc::getppid() };
    if expected.is_some_and(|pid| pid != parent) {
        std::process::exit(0);
    }
}

/// Kills a worker's process group (the worker and anything its plugin started).
pub fn kill(pid: u32) {
    // SAFETY: signals the worker's own process group, which only the worker created.
    unsafe {
        libc::kill(-(pid as libc::pid_t), libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}
