//! Watches the config file, the configured plugin files and the plugin folders, and
//! reloads when they change.
//!
//! Bursts of events are debounced, and a changed plugin file is only loaded once its
//! size, modification time and hash stay the same across a short pause: `cp` over a
//! plugin leaves it truncated for a moment, and an atomic rename arrives as several
//! events. What is reloaded, and how a failure keeps the previous version serving, is
//! [`Host::reload`]'s business.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use notify::{RecursiveMode, Watcher as _};
use tokio::sync::mpsc;

use crate::Host;

/// Quiet time that ends a burst of events.
const DEBOUNCE: Duration = Duration::from_millis(120);
/// Pause between the two looks that decide a file has stopped changing.
const SETTLE: Duration = Duration::from_millis(80);
/// The longest a file may keep changing before it is loaded anyway (and probably refused).
const SETTLE_LIMIT: Duration = Duration::from_secs(10);

/// A running watcher; dropping it stops watching.
pub struct Watcher {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts watching what `host`'s config names. Call from within a tokio runtime.
pub fn watch(host: Arc<Host>) -> notify::Result<Watcher> {
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !matches!(event.kind, notify::EventKind::Access(_)) {
                let _ = tx.send(event.paths);
            }
        }
    })?;
    // Watches are in place when this returns: a change right after it is not missed.
    let mut watcher = watcher;
    let mut watched = HashSet::new();
    let targets = Targets::of(&host);
    sync_watches(&mut watcher, &mut watched, &targets);
    let task = tokio::spawn(run(host, watcher, watched, targets, rx));
    Ok(Watcher { task })
}

async fn run(
    host: Arc<Host>,
    mut watcher: notify::RecommendedWatcher,
    mut watched: HashSet<PathBuf>,
    mut targets: Targets,
    mut events: mpsc::UnboundedReceiver<Vec<PathBuf>>,
) {
    while let Some(paths) = events.recv().await {
        let mut changed: HashSet<PathBuf> =
            paths.into_iter().filter(|p| targets.matters(p)).collect();
        if changed.is_empty() {
            // Other files in a watched folder (a usage ledger, editor swap files).
            continue;
        }
        // Take in the rest of the burst: until no relevant event for DEBOUNCE. Only
        // relevant events extend it, so a busy neighbour file cannot hold it open.
        let mut quiet_at = tokio::time::Instant::now() + DEBOUNCE;
        loop {
            match tokio::time::timeout_at(quiet_at, events.recv()).await {
                Ok(Some(more)) => {
                    let relevant: Vec<PathBuf> =
                        more.into_iter().filter(|p| targets.matters(p)).collect();
                    if !relevant.is_empty() {
                        changed.extend(relevant);
                        quiet_at = tokio::time::Instant::now() + DEBOUNCE;
                    }
                }
                Ok(None) => return,
                Err(_) => break,
            }
        }
        for path in changed.iter().filter(|p| !targets.is_config(p)) {
            settle(path).await;
        }
        let report = host.reload_async("watch").await;
        // As visible as a SIGHUP reload: an operator who edits the config sees it land.
        tracing::info!(
            generation = report.generation,
            added = report.changes.added.len(),
            reloaded = report.changes.reloaded.len(),
            removed = report.changes.removed.len(),
            failed = report.changes.failed.len(),
            config_error = report.config_error.as_deref().unwrap_or("-"),
            "reloaded after a file change"
        );
        targets = Targets::of(&host);
        sync_watches(&mut watcher, &mut watched, &targets);
    }
}

/// What the watcher cares about, as (folder, file name) pairs with the folder
/// canonicalized, so relative and absolute spellings compare equal.
struct Targets {
    config: Option<PathBuf>,
    files: HashSet<PathBuf>,
    folders: HashSet<PathBuf>,
    plugin_folders: HashSet<PathBuf>,
}

impl Targets {
    fn of(host: &Host) -> Targets {
        let config = host.config();
        let mut targets = Targets {
            config: host.config_path().map(normalize),
            files: HashSet::new(),
            folders: HashSet::new(),
            plugin_folders: config
                .plugin_dirs
                .iter()
                .map(|d| normalize_dir(d))
                .collect(),
        };
        targets
            .files
            .extend(config.providers.iter().map(|p| normalize(&p.library)));
        targets.files.extend(targets.config.clone());
        targets.folders = targets
            .files
            .iter()
            .filter_map(|f| f.parent().map(Path::to_owned))
            .collect();
        targets
            .folders
            .extend(targets.plugin_folders.iter().cloned());
        targets
    }

    fn matters(&self, path: &Path) -> bool {
        let path = normalize(path);
        let suffix = std::env::consts::DLL_SUFFIX.trim_start_matches('.');
        self.files.contains(&path)
            || (path.extension().and_then(|e| e.to_str()) == Some(suffix)
                && path
                    .parent()
                    .is_some_and(|d| self.plugin_folders.contains(d)))
    }

    fn is_config(&self, path: &Path) -> bool {
        self.config.as_deref() == Some(normalize(path).as_path())
    }
}

fn sync_watches(
    watcher: &mut notify::RecommendedWatcher,
    watched: &mut HashSet<PathBuf>,
    targets: &Targets,
) {
    for folder in &targets.folders {
        if !watched.contains(folder) {
            match watcher.watch(folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    watched.insert(folder.clone());
                }
                Err(e) => {
                    tracing::warn!(folder = %folder.display(), error = %e, "cannot watch; changes there need SIGHUP or POST /admin/reload")
                }
            }
        }
    }
    let stale: Vec<PathBuf> = watched.difference(&targets.folders).cloned().collect();
    for folder in stale {
        let _ = watcher.unwatch(&folder);
        watched.remove(&folder);
    }
}

/// Waits until `path` looks the same twice in a row (or is gone).
async fn settle(path: &Path) {
    let started = Instant::now();
    let mut last = look(path);
    while started.elapsed() < SETTLE_LIMIT {
        tokio::time::sleep(SETTLE).await;
        let now = look(path);
        if now == last {
            return;
        }
        last = now;
    }
}

fn look(path: &Path) -> Option<(u64, SystemTime, String)> {
    let meta = std::fs::metadata(path).ok()?;
    let sha = crate::load::file_sha256(path).ok()?;
    Some((meta.len(), meta.modified().ok()?, sha))
}

fn normalize_dir(dir: &Path) -> PathBuf {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    dir.canonicalize().unwrap_or_else(|_| dir.to_owned())
}

fn normalize(file: &Path) -> PathBuf {
    match (file.parent(), file.file_name()) {
        (Some(parent), Some(name)) => normalize_dir(parent).join(name),
        _ => file.to_owned(),
    }
}
