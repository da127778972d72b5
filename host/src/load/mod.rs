//! Turns a plugin file into a loaded library: content-addressed copy, then open.
//!
//! Every version of a plugin is opened from its own copy, `<cache>/<stem>-<sha256>.so`,
//! never from the path an operator edits: the dynamic loader hands back an
//! already-loaded library for a path it has seen, and copying first means a file being
//! rewritten in place is never mapped half-written.

use std::{
    collections::{HashMap, HashSet},
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Mutex,
};

mod elf;

use provider_sdk::abi::load::{self as abi, OpenError, PluginLibrary};
use sha2::{Digest, Sha256};

/// Why a plugin file could not be loaded. `Display` is one line naming the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The file is not there.
    #[error("{path}: no such file: build the plugin (`cargo build --release`) or fix the path", path = .path.display())]
    Missing {
        /// The file.
        path: PathBuf,
    },
    /// The file could not be read or copied.
    #[error("{path}: {reason}", path = .path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The file is not a shared library at all.
    #[error("{path}: not a shared library ({what}): point the config at the plugin's .so file", path = .path.display())]
    NotALibrary {
        /// The file.
        path: PathBuf,
        /// What it looks like instead.
        what: String,
    },
    /// The file's content is not the one the config pins.
    #[error("{path}: sha256 is {actual}, the config pins {pinned}: refused; update the pin if this version is intended", path = .path.display())]
    PinMismatch {
        /// The file.
        path: PathBuf,
        /// Its hash.
        actual: String,
        /// The pinned hash.
        pinned: String,
    },
    /// The file or its folder can be changed by other users.
    #[error("{path}: {reason}: refused, since anyone who can write there can run code in the host; `chmod o-w` it", path = .path.display())]
    Insecure {
        /// The file or folder.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file is a library the SDK cannot use.
    #[error("{path}: {error}", path = .path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        error: OpenError,
    },
}

/// A plugin file opened from its content-addressed copy.
#[derive(Debug, Clone)]
pub struct LoadedLibrary {
    /// The file the operator named.
    pub source: PathBuf,
    /// The copy the library was opened from.
    pub cached: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
    /// The opened library.
    pub library: PluginLibrary,
}

/// A plugin file read, checked and copied to its content-addressed path, not opened.
#[derive(Debug, Clone)]
pub struct Staged {
    /// The file the operator named.
    pub source: PathBuf,
    /// The private copy to validate and open.
    pub cached: PathBuf,
    /// SHA-256 of the file, lowercase hex.
    pub sha256: String,
}

/// Opens plugin files, each distinct content once.
#[derive(Debug)]
pub struct Loader {
    cache_dir: PathBuf,
    opened: Mutex<HashMap<String, PluginLibrary>>,
    sandbox: Option<crate::sandbox::Sandbox>,
    /// The copies this loader wrote or reused, which it may delete once no version
    /// uses them (a mapped library needs its file only to be opened).
    copies: Mutex<HashSet<PathBuf>>,
}

/// How old a copy this process never used must be before [`Loader::prune`] deletes
/// it: the cache folder may be shared with other hosts of the same user, and one of
/// them may be between writing a copy and opening it.
pub const FOREIGN_COPY_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// What [`Loader::prune`] deleted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    /// Copies deleted.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
}

impl Loader {
    /// A loader that copies plugins into `cache_dir` (created if missing, private to
    /// this user).
    pub fn new(cache_dir: impl Into<PathBuf>) -> Loader {
        Loader {
            cache_dir: cache_dir.into(),
            opened: Mutex::new(HashMap::new()),
            sandbox: None,
            copies: Mutex::new(HashSet::new()),
        }
    }

    /// Deletes the copies in the cache folder that no version in `in_use` (SHA-256s)
    /// was opened from: this loader's own at once, others (an earlier run's, another
    /// host's, half-written temporaries) once older than [`FOREIGN_COPY_GRACE`]. A
    /// retired version stays mapped and keeps serving the requests it has: its file is
    /// not needed after it was opened, and a reload back to it reuses the mapping.
    pub fn prune(&self, in_use: &HashSet<&str>) -> Pruned {
        let mut pruned = Pruned::default();
        let Ok(entries) = fs::read_dir(&self.cache_dir) else {
            return pruned;
        };
        let used = |name: &str| {
            in_use
                .iter()
                .any(|sha| sha.len() >= 16 && name.contains(&format!("-{}.", &sha[..16])))
        };
        let mut copies = self.copies.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(meta) = entry.metadata() else { continue };
            if !meta.is_file() || used(&name) {
                continue;
            }
            let ours = copies.contains(&path);
            let old = meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > FOREIGN_COPY_GRACE);
            if (ours || old) && fs::remove_file(&path).is_ok() {
                copies.remove(&path);
                pruned.files += 1;
                pruned.bytes += meta.len();
            }
        }
        pruned
    }

    /// Validates every new file in `sandbox`'s child processes before it is opened
    /// here (see [`crate::validate::validate_file`]).
    pub fn with_sandbox(mut self, sandbox: Option<crate::sandbox::Sandbox>) -> Loader {
        self.sandbox = sandbox;
        self
    }

    /// The validation sandbox, when there is one.
    pub fn sandbox(&self) -> Option<&crate::sandbox::Sandbox> {
        self.sandbox.as_ref()
    }

    /// The cache directory used when the config names none: `$XDG_CACHE_HOME` or
    /// `~/.cache`, else a folder beside the config.
    pub fn default_cache_dir(config_dir: &Path) -> PathBuf {
        std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
            .map(|d| d.join("provider-host").join("plugins"))
            .unwrap_or_else(|| config_dir.join(".provider-host-cache"))
    }

    /// How many distinct library versions this loader has mapped.
    pub fn mapped_libraries(&self) -> usize {
        self.opened.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// The SHA-256 of every library version this loader has mapped.
    pub fn mapped_shas(&self) -> Vec<String> {
        self.opened
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Loads `path` without a sandbox: [`Loader::stage`], then [`Loader::open`].
    pub fn load(
        &self,
        path: &Path,
        pinned_sha256: Option<&str>,
    ) -> Result<LoadedLibrary, LoadError> {
        self.open(self.stage(path, pinned_sha256)?)
    }

    /// Checks who can write `path`, reads it, checks the pin and the ELF structure, and
    /// copies it to its content-addressed path; runs no code of the plugin.
    pub fn stage(&self, path: &Path, pinned_sha256: Option<&str>) -> Result<Staged, LoadError> {
        let bytes = read_plugin(path)?;
        let sha256 = hex(&Sha256::digest(&bytes));
        if let Some(pinned) = pinned_sha256 {
            if !pinned.eq_ignore_ascii_case(&sha256) {
                return Err(LoadError::PinMismatch {
                    path: path.to_owned(),
                    actual: sha256,
                    pinned: pinned.to_owned(),
                });
            }
        }
        let cached = self.cached_path(path, &sha256);
        let mapped = self
            .opened
            .lock()
            .expect("loader lock")
            .contains_key(&sha256);
        match self.write_copy(&cached, &bytes, &sha256) {
            Ok(()) => {}
            // Mapped already, so the copy is not needed to open it; it is put back (a
            // prune may have taken it while the version was retired) so that the cache
            // always holds the copy of every version that serves.
            Err(reason) if mapped => {
                tracing::warn!(%reason, "plugin cache: cannot restore a copy")
            }
            Err(reason) => {
                return Err(LoadError::Io {
                    path: path.to_owned(),
                    reason,
                })
            }
        }
        Ok(Staged {
            source: path.to_owned(),
            cached,
            sha256,
        })
    }

    /// Opens a staged copy in this process (once per content).
    pub fn open(&self, staged: Staged) -> Result<LoadedLibrary, LoadError> {
        let Staged {
            source,
            cached,
            sha256,
        } = staged;
        let mapped = self
            .opened
            .lock()
            .expect("loader lock")
            .get(&sha256)
            .copied();
        if let Some(library) = mapped {
            return Ok(LoadedLibrary {
                source,
                cached,
                sha256,
                library,
            });
        }
        // SAFETY: loading a plugin runs its code; the operator chose this file as a plugin.
        let library = unsafe { abi::open(&cached) }.map_err(|error| LoadError::Open {
            path: source.clone(),
            error,
        })?;
        self.opened
            .lock()
            .expect("loader lock")
            .insert(sha256.clone(), library);
        Ok(LoadedLibrary {
            source,
            cached,
            sha256,
            library,
        })
    }

    fn cached_path(&self, source: &Path, sha256: &str) -> PathBuf {
        let stem = source
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin");
        let ext = source.extension().and_then(|s| s.to_str()).unwrap_or("so");
        self.cache_dir
            .join(format!("{stem}-{}.{ext}", &sha256[..16]))
    }

    /// Writes the copy unless an intact one is there, via a temporary file and a rename
    /// so that no reader ever sees a partial copy.
    fn write_copy(&self, cached: &Path, bytes: &[u8], sha256: &str) -> Result<(), String> {
        self.copies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cached.to_owned());
        if let Ok(existing) = fs::read(cached) {
            if hex(&Sha256::digest(&existing)) == sha256 {
                // Fresh again, so another host's prune leaves it alone while we open it.
                let _ = fs::File::options()
                    .write(true)
                    .open(cached)
                    .and_then(|f| f.set_modified(std::time::SystemTime::now()));
                return Ok(());
            }
        }
        create_private_dir(&self.cache_dir).map_err(|e| {
            format!(
                "cannot create the plugin cache {}: {e}",
                self.cache_dir.display()
            )
        })?;
        let tmp = cached.with_extension(format!("tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            fs::rename(&tmp, cached)
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            format!("cannot copy the plugin to {}: {e}", cached.display())
        })
    }
}

/// The SHA-256 of a file, lowercase hex, read in pieces (plugins are megabytes, and
/// every reload hashes each configured file).
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Refuses a file or folder that users other than its owner (and root) may write, and
/// a file whose folder they may write (they could swap the file).
pub fn check_not_writable_by_others(path: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let writable = |p: &Path| -> Option<String> {
            let meta = fs::metadata(p).ok()?;
            let mode = meta.permissions().mode();
            // A sticky folder (like /tmp) lets others add files but not replace ours.
            let sticky_dir = meta.is_dir() && mode & 0o1000 != 0;
            (mode & 0o002 != 0 && !sticky_dir).then(|| {
                format!(
                    "{} is writable by every user (mode {:o})",
                    p.display(),
                    mode & 0o7777
                )
            })
        };
        if let Some(reason) = writable(path) {
            return Err(reason);
        }
        if path.is_file() {
            if let Some(reason) = path.parent().and_then(writable) {
                return Err(reason);
            }
        }
    }
    let _ = path;
    Ok(())
}

fn read_plugin(path: &Path) -> Result<Vec<u8>, LoadError> {
    check_not_writable_by_others(path).map_err(|reason| LoadError::Insecure {
        path: path.to_owned(),
        reason,
    })?;
    let bytes = fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => LoadError::Missing {
            path: path.to_owned(),
        },
        _ => LoadError::Io {
            path: path.to_owned(),
            reason: format!("cannot read: {e}"),
        },
    })?;
    if let Some(what) = not_a_library(&bytes) {
        return Err(LoadError::NotALibrary {
            path: path.to_owned(),
            what,
        });
    }
    Ok(bytes)
}

/// Recognises files that are not a complete shared library before handing them to
/// the dynamic loader.
fn not_a_library(bytes: &[u8]) -> Option<String> {
    if bytes.is_empty() {
        return Some("the file is empty".to_owned());
    }
    if cfg!(target_os = "linux") {
        return elf::check(bytes).err();
    }
    None
}

pub(crate) fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
