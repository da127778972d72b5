//! The host's side of one provider version's worker processes: a fixed number of
//! slots, each with a supervisor thread that starts its worker, reads its answers,
//! notices its death, fails the calls that were in flight on it and starts the next
//! one after a backoff.
//!
//! Calls are written to a worker's socket by the calling task itself (a send that
//! never blocks; see [`Conn::send`]) and answered through a one-shot channel the
//! supervisor completes when the answer's frame arrives, so a call costs one send and
//! one wake-up. Several calls may be queued on one worker (they run one at a time
//! there); a call goes to the worker with the fewest in flight.

use std::{
    collections::HashMap,
    io::BufReader,
    os::{fd::AsRawFd, unix::net::UnixStream},
    path::PathBuf,
    process::Child,
    sync::{
        atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex, OnceLock,
    },
    time::{Duration, Instant, SystemTime},
};

use provider_sdk::{AuthScheme, ErrorKind, ProviderError};
use tokio::sync::{oneshot, Notify};

use super::{
    frame::{self, Kind},
    spawn,
};

/// How long a new worker may take to open its plugin and build the provider.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// The longest wait between restarts of a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// A worker that lived this long before dying starts a new series of backoffs.
const HEALTHY_AFTER: Duration = Duration::from_secs(30);

/// How long a call waits for a worker to come up when none is running.
const WAIT_FOR_WORKER: Duration = Duration::from_secs(2);

/// What a pool runs and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The provider's routing name (for messages).
    pub name: String,
    /// The `provider-host` binary to re-execute.
    pub binary: PathBuf,
    /// The validated plugin copy each worker opens.
    pub library: PathBuf,
    /// The provider's config, as the plugin's `construct` takes it.
    pub config_json: String,
    /// How many workers.
    pub size: usize,
    /// Each worker's address-space limit, in bytes.
    pub address_space: u64,
    /// How long one call may take before its worker is killed and replaced.
    pub call_timeout: Duration,
}

/// Why a pool could not start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StartError(pub String);

/// What `/admin/providers` shows of a pool.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WorkerStats {
    /// Workers configured.
    pub size: usize,
    /// Workers running now.
    pub running: usize,
    /// Workers started again after one died or was killed.
    pub restarts: u64,
    /// Workers that died or were killed.
    pub crashes: u64,
    /// How the last one died.
    pub last_crash: Option<String>,
    /// The signal that ended it, when one did (`SIGSEGV (segmentation fault)`).
    pub last_crash_signal: Option<String>,
    /// When, in seconds since the Unix epoch.
    pub last_crash_at: Option<f64>,
}

/// One provider version's workers. Dropping it (the version is retired and no request
/// uses it any more) closes every worker.
pub struct Pool {
    shared: Arc<Shared>,
    auth: AuthScheme,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.shared.settings.name)
            .field("size", &self.shared.settings.size)
            .finish_non_exhaustive()
    }
}

/// What a pool's handle, its supervisors and its streams' decoders share.
pub struct Shared {
    settings: Settings,
    slots: Vec<Mutex<Option<Arc<Conn>>>>,
    closing: AtomicBool,
    /// Woken whenever a worker comes up.
    started: Notify,
    next_id: AtomicU64,
    next_slot: AtomicUsize,
    restarts: AtomicU64,
    crashes: AtomicU64,
    last_crash: Mutex<Option<(String, Option<String>, SystemTime)>>,
}

/// An answer from a worker: the call's result payload, or the plugin's error.
#[derive(Debug)]
pub enum Reply {
    /// [`Kind::Ok`]'s payload.
    Ok(Vec<u8>),
    /// [`Kind::Err`]'s payload.
    Err(Vec<u8>),
}

/// The connection to one running worker.
pub struct Conn {
    pid: u32,
    socket: UnixStream,
    outbox: Mutex<Outbox>,
    pending: Mutex<Pending>,
    /// Why the host killed it, when it did.
    killed: OnceLock<String>,
    /// How it ended, set before its pending calls are failed.
    death: OnceLock<String>,
    inflight: AtomicUsize,
    /// When it last answered, or last became busy, in [`millis`].
    progress: AtomicU64,
}

/// A worker busy this long without answering is passed over while another is free.
const STALLED_AFTER_MS: u64 = 100;

/// Milliseconds since the first call of this function (a cheap monotonic clock).
fn millis() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64
}

#[derive(Default)]
struct Pending {
    dead: bool,
    calls: HashMap<u64, oneshot::Sender<Reply>>,
}

/// Bytes queued for the socket: frames are appended whole and written as the socket
/// takes them, so concurrent callers never interleave partial frames.
#[derive(Default)]
struct Outbox {
    buffer: Vec<u8>,
    start: usize,
    enqueued: u64,
    written: u64,
}

impl Pool {
    /// Starts `settings.size` workers and waits until each has built its provider; the
    /// first failure (the plugin cannot be opened or constructed there) is the error.
    pub fn start(settings: Settings) -> Result<Pool, StartError> {
        let shared = Arc::new(Shared {
            slots: (0..settings.size).map(|_| Mutex::new(None)).collect(),
            settings,
            closing: AtomicBool::new(false),
            started: Notify::new(),
            next_id: AtomicU64::new(1),
            next_slot: AtomicUsize::new(0),
            restarts: AtomicU64::new(0),
            crashes: AtomicU64::new(0),
            last_crash: Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        for slot in 0..shared.settings.size {
            let (owned, tx) = (shared.clone(), tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("worker-{}-{slot}", shared.settings.name))
                .spawn(move || supervise(&owned, slot, tx));
            if let Err(e) = spawned {
                shared.close();
                return Err(StartError(format!("cannot start a worker thread: {e}")));
            }
        }
        drop(tx);
        let mut auth = None;
        for _ in 0..shared.settings.size {
            match rx.recv_timeout(START_TIMEOUT + Duration::from_secs(1)) {
                Ok(Ok(scheme)) => auth = Some(scheme),
                Ok(Err(reason)) => {
                    shared.close();
                    return Err(StartError(reason));
                }
                Err(_) => {
                    shared.close();
                    return Err(StartError("its worker processes did not start".to_owned()));
                }
            }
        }
        let auth = auth.ok_or_else(|| StartError("a pool of no workers".to_owned()))?;
        Ok(Pool { shared, auth })
    }

    /// Where the host must put the API key (the plugin's answer in its first worker).
    pub fn auth(&self) -> &AuthScheme {
        &self.auth
    }

    /// How the workers are doing.
    pub fn stats(&self) -> WorkerStats {
        let shared = &self.shared;
        let running = shared
            .slots
            .iter()
            .filter(|s| s.lock().map(|c| c.is_some()).unwrap_or(false))
            .count();
        let last = shared.last_crash.lock().ok().and_then(|l| l.clone());
        WorkerStats {
            size: shared.settings.size,
            running,
            restarts: shared.restarts.load(Ordering::Relaxed),
            crashes: shared.crashes.load(Ordering::Relaxed),
            last_crash_signal: last.as_ref().and_then(|(_, signal, _)| signal.clone()),
            last_crash_at: last.as_ref().map(|(_, _, at)| {
                at.duration_since(SystemTime::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or(0.0)
            }),
            last_crash: last.map(|(reason, _, _)| reason),
        }
    }

    /// The process ids of the running workers.
    pub fn pids(&self) -> Vec<u32> {
        self.shared
            .slots
            .iter()
            .filter_map(|s| s.lock().ok()?.as_ref().map(|c| c.pid))
            .collect()
    }

    /// Makes the call `kind` (named `what` in errors) on the least busy worker.
    pub async fn call(
        &self,
        kind: Kind,
        payload: &[u8],
        what: &str,
    ) -> Result<Reply, ProviderError> {
        let conn = self.shared.pick().await?;
        conn.call(&self.shared, kind, payload, what).await
    }

    /// What outlives this handle for as long as a stream uses the pool.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl Shared {
    /// A running worker, waiting a little for one to come up when none runs.
    async fn pick(&self) -> Result<Arc<Conn>, ProviderError> {
        let shared = self;
        let give_up = Instant::now() + WAIT_FOR_WORKER.min(shared.settings.call_timeout);
        loop {
            let notified = shared.started.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let (picked, restarting) = shared.least_busy();
            match picked {
                Some((conn, false)) => return Ok(conn),
                // Every running worker is stuck in a call: rather wait for the one
                // being restarted than queue behind a call that may never return.
                Some((conn, true)) if !restarting || Instant::now() >= give_up => return Ok(conn),
                _ => {}
            }
            let waited = tokio::time::timeout_at(give_up.into(), notified).await;
            if waited.is_err() && restarting {
                if let (Some((conn, _)), _) = shared.least_busy() {
                    return Ok(conn);
                }
            }
            if waited.is_err() || shared.closing.load(Ordering::Relaxed) {
                let last = shared
                    .last_crash
                    .lock()
                    .ok()
                    .and_then(|l| l.as_ref().map(|(reason, _, _)| reason.clone()))
                    .unwrap_or_else(|| "none started".to_owned());
                return Err(worker_died(format!(
                    "no worker process of {} is running (last: {last}); it is being restarted",
                    shared.settings.name
                )));
            }
        }
    }

    /// The running worker with the fewest calls in flight, preferring one that is not
    /// stalled (see [`Conn::stalled`]), and whether the pick is stalled; and whether a
    /// slot is waiting for its worker to (re)start.
    fn least_busy(&self) -> (Option<(Arc<Conn>, bool)>, bool) {
        let n = self.slots.len();
        let first = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let now = millis();
        let mut best: Option<(Arc<Conn>, bool, usize)> = None;
        let mut restarting = false;
        for i in 0..n {
            let slot = &self.slots[(first + i) % n];
            let Some(conn) = slot.lock().ok().and_then(|c| c.clone()) else {
                restarting = true;
                continue;
            };
            // Killed, and about to be replaced.
            if conn.killed.get().is_some() {
                restarting = true;
                continue;
            }
            let load = conn.inflight.load(Ordering::Relaxed);
            if load == 0 {
                return (Some((conn, false)), restarting);
            }
            let stalled = conn.stalled(now);
            let better = match &best {
                None => true,
                Some((_, best_stalled, best_load)) => (stalled, load) < (*best_stalled, *best_load),
            };
            if better {
                best = Some((conn, stalled, load));
            }
        }
        (best.map(|(conn, stalled, _)| (conn, stalled)), restarting)
    }

    /// Closes every worker: they read the end of their socket and exit, and their
    /// supervisors stop.
    fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        for slot in &self.slots {
            if let Some(conn) = slot.lock().ok().and_then(|c| c.clone()) {
                let _ = conn.socket.shutdown(std::net::Shutdown::Both);
            }
        }
        self.started.notify_waiters();
    }

    fn record_crash(&self, reason: &str, signal: Option<String>) {
        self.crashes.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut last) = self.last_crash.lock() {
            *last = Some((reason.to_owned(), signal, SystemTime::now()));
        }
    }
}

/// One worker, chosen for a series of calls that must all reach it.
pub struct Pinned {
    conn: Arc<Conn>,
    shared: Arc<Shared>,
}

impl Pinned {
    /// A running worker of `shared`'s pool, for calls that must all reach the same
    /// one (a stream's decoder).
    pub async fn new(shared: &Arc<Shared>) -> Result<Pinned, ProviderError> {
        Ok(Pinned {
            conn: shared.pick().await?,
            shared: shared.clone(),
        })
    }

    /// A fresh call id, unique in the pool.
    pub fn next_id(&self) -> u64 {
        self.shared.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Makes the call `kind` on this worker.
    pub async fn call(
        &self,
        kind: Kind,
        payload: &[u8],
        what: &str,
    ) -> Result<Reply, ProviderError> {
        self.conn.call(&self.shared, kind, payload, what).await
    }

    /// Sends a frame that takes no answer, without waiting (from a destructor).
    pub fn post(&self, kind: Kind, payload: &[u8]) {
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut outbox) = self.conn.outbox.lock() {
            outbox.push(kind, id, payload);
            let _ = outbox.flush(&self.conn.socket);
        }
    }
}

impl Conn {
    /// Whether it has calls in flight and has not answered one for a while (a call
    /// that may be stuck: the next calls would queue behind it).
    fn stalled(&self, now: u64) -> bool {
        self.inflight.load(Ordering::Relaxed) > 0
            && now.saturating_sub(self.progress.load(Ordering::Relaxed)) > STALLED_AFTER_MS
    }

    async fn call(
        self: &Arc<Self>,
        shared: &Shared,
        kind: Kind,
        payload: &[u8],
        what: &str,
    ) -> Result<Reply, ProviderError> {
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending.dead {
                return Err(self.died(what));
            }
            pending.calls.insert(id, tx);
        }
        let _guard = InFlight::new(self, id);
        let limit = shared.settings.call_timeout;
        let deadline = Instant::now() + limit;
        match self.send(kind, id, payload, deadline).await {
            Ok(()) => {}
            // The worker closed its end: it is dying by itself (a crash), and its
            // supervisor fails this call, saying how it died, once it reaps it.
            // Killing it here would record the host's SIGKILL instead of its own
            // signal.
            Err(SendFailure::Broken) => {}
            Err(SendFailure::Overdue) => {
                self.kill(format!("its socket stopped taking a {what} call"));
                return Err(self.died(what));
            }
        }
        match tokio::time::timeout_at(deadline.into(), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(self.died(what)),
            Err(_) => {
                let reason = format!("{what} did not return within {:.1} s", limit.as_secs_f64());
                self.kill(reason.clone());
                tracing::error!(provider = %shared.settings.name, pid = self.pid, %reason, "plugin call past its deadline: its worker is killed and replaced");
                Err(worker_died(format!(
                    "{reason}: its worker process was killed and is being replaced"
                )))
            }
        }
    }

    /// Queues the frame and writes until its last byte is in the socket, never
    /// blocking the thread: a full socket (the worker is busy with a large backlog)
    /// is retried after a millisecond, until the deadline. `Err` when the socket is
    /// broken or the deadline passed.
    async fn send(
        &self,
        kind: Kind,
        id: u64,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<(), SendFailure> {
        let end = {
            let mut outbox = self.outbox.lock().map_err(|_| SendFailure::Broken)?;
            let end = outbox.push(kind, id, payload);
            outbox
                .flush(&self.socket)
                .map_err(|()| SendFailure::Broken)?;
            if outbox.written >= end {
                return Ok(());
            }
            end
        };
        loop {
            if Instant::now() >= deadline {
                return Err(SendFailure::Overdue);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            let mut outbox = self.outbox.lock().map_err(|_| SendFailure::Broken)?;
            outbox
                .flush(&self.socket)
                .map_err(|()| SendFailure::Broken)?;
            if outbox.written >= end {
                return Ok(());
            }
        }
    }

    /// Kills the worker (a call overran, or its socket broke); its supervisor then
    /// fails what was in flight and starts another.
    fn kill(&self, why: String) {
        let dead = self.pending.lock().map(|p| p.dead).unwrap_or(true);
        if !dead && self.killed.set(why).is_ok() {
            spawn::kill(self.pid);
        }
    }

    /// The error for a call that was in flight when the worker ended.
    fn died(&self, what: &str) -> ProviderError {
        let how = self
            .death
            .get()
            .cloned()
            .unwrap_or_else(|| "ended".to_owned());
        worker_died(format!(
            "the plugin's worker process {how} during {what}; it is being replaced"
        ))
    }
}

/// Why a frame did not reach a worker's socket.
enum SendFailure {
    /// The socket is broken: the worker closed its end (it is exiting or crashed).
    Broken,
    /// The socket stayed full until the call's deadline: the worker stopped reading.
    Overdue,
}

/// A `plugin_fault` marked as a worker's death (see [`super::WORKER_DIED`]).
fn worker_died(message: String) -> ProviderError {
    let mut error = ProviderError::new(ErrorKind::PluginFault, message);
    error.provider_code = Some(super::WORKER_DIED.to_owned());
    error
}

/// Counts a call in flight on its worker and forgets it when the caller is done
/// (answered, failed, or dropped because the client left).
struct InFlight<'a> {
    conn: &'a Conn,
    id: u64,
}

impl<'a> InFlight<'a> {
    fn new(conn: &'a Conn, id: u64) -> Self {
        if conn.inflight.fetch_add(1, Ordering::Relaxed) == 0 {
            conn.progress.store(millis(), Ordering::Relaxed);
        }
        InFlight { conn, id }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.conn.inflight.fetch_sub(1, Ordering::Relaxed);
        if let Ok(mut pending) = self.conn.pending.lock() {
            pending.calls.remove(&self.id);
        }
    }
}

impl Outbox {
    /// Appends a frame; returns the stream offset of its end.
    fn push(&mut self, kind: Kind, id: u64, payload: &[u8]) -> u64 {
        frame::encode(&mut self.buffer, kind, id, payload);
        self.enqueued += (frame::HEADER_BYTES + payload.len()) as u64;
        self.enqueued
    }

    /// Writes what the socket takes now.
    fn flush(&mut self, socket: &UnixStream) -> Result<(), ()> {
        while self.start < self.buffer.len() {
            let rest = &self.buffer[self.start..];
            // SAFETY: `rest` is a live slice for the duration of the call.
            let n = unsafe {
                libc::send(
                    socket.as_raw_fd(),
                    rest.as_ptr().cast(),
                    rest.len(),
                    libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
                )
            };
            if n < 0 {
                let error = std::io::Error::last_os_error();
                match error.kind() {
                    std::io::ErrorKind::WouldBlock => break,
                    std::io::ErrorKind::Interrupted => continue,
                    _ => return Err(()),
                }
            }
            self.start += n as usize;
            self.written += n as u64;
        }
        if self.start == self.buffer.len() {
            self.buffer.clear();
            self.start = 0;
        }
        Ok(())
    }
}

/// A slot's life: start a worker, serve its answers until it ends, fail what was in
/// flight, wait the backoff, start the next; until the pool closes. The first start's
/// outcome goes to `first` (the pool's constructor waits for it).
fn supervise(shared: &Shared, slot: usize, first: mpsc::Sender<Result<AuthScheme, String>>) {
    let mut first = Some(first);
    let mut failures: u32 = 0;
    while !shared.closing.load(Ordering::SeqCst) {
        match start_worker(shared) {
            Ok((child, conn, reader, auth)) => {
                let restarted = first.is_none();
                if let Some(first) = first.take() {
                    let _ = first.send(Ok(auth));
                }
                let born = Instant::now();
                if let Ok(mut s) = shared.slots[slot].lock() {
                    *s = Some(conn.clone());
                }
                if restarted {
                    shared.restarts.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(provider = %shared.settings.name, pid = conn.pid, "worker process restarted");
                }
                // Closed while starting: the close saw no connection to shut down.
                if shared.closing.load(Ordering::SeqCst) {
                    let _ = conn.socket.shutdown(std::net::Shutdown::Both);
                }
                shared.started.notify_waiters();
                serve(&conn, reader);
                if let Ok(mut s) = shared.slots[slot].lock() {
                    *s = None;
                }
                let closing = shared.closing.load(Ordering::SeqCst);
                let how = bury(child, &conn, (!closing).then_some(shared));
                if closing {
                    return;
                }
                tracing::warn!(provider = %shared.settings.name, pid = conn.pid, "worker process {how}; calls in flight on it failed as plugin_fault");
                failures = if born.elapsed() >= HEALTHY_AFTER {
                    1
                } else {
                    failures + 1
                };
            }
            Err(reason) => {
                if let Some(first) = first.take() {
                    let _ = first.send(Err(reason));
                    return;
                }
                shared.record_crash(&reason, None);
                tracing::warn!(provider = %shared.settings.name, %reason, "worker process did not start");
                failures += 1;
            }
        }
        // 0 before the first restart, then 100 ms doubling up to MAX_BACKOFF.
        let backoff = match failures {
            0 | 1 => Duration::ZERO,
            n => Duration::from_millis(100u64 << (n - 2).min(10)).min(MAX_BACKOFF),
        };
        let until = Instant::now() + backoff;
        while Instant::now() < until && !shared.closing.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(20).min(until - Instant::now()));
        }
    }
}

/// Starts one worker and waits for its provider to be built; the child, its
/// connection, the reading end, and the plugin's auth scheme.
fn start_worker(
    shared: &Shared,
) -> Result<(Child, Arc<Conn>, BufReader<UnixStream>, AuthScheme), String> {
    let settings = &shared.settings;
    let (mut child, socket) =
        spawn::start(&settings.binary, &settings.library, settings.address_space).map_err(|e| {
            format!(
                "cannot start a worker process ({}): {e}",
                settings.binary.display()
            )
        })?;
    let fail = |child: &mut Child, why: String| {
        spawn::kill(child.id());
        let status = child.wait().ok();
        match status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s)) {
            Some(signal) => format!(
                "{why}: its worker process died with {}",
                crate::sandbox::signal_name(signal)
            ),
            None => why,
        }
    };
    let reader = match socket.try_clone() {
        Ok(reader) => reader,
        Err(e) => return Err(fail(&mut child, format!("worker socket: {e}"))),
    };
    let conn = Arc::new(Conn {
        pid: child.id(),
        socket,
        outbox: Mutex::new(Outbox::default()),
        pending: Mutex::new(Pending::default()),
        killed: OnceLock::new(),
        death: OnceLock::new(),
        inflight: AtomicUsize::new(0),
        progress: AtomicU64::new(millis()),
    });
    let hello = (|| {
        frame::write(
            &mut &conn.socket,
            Kind::Init,
            0,
            settings.config_json.as_bytes(),
        )
        .map_err(|e| format!("cannot send the worker its config: {e}"))?;
        reader
            .set_read_timeout(Some(START_TIMEOUT))
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::with_capacity(64 * 1024, reader);
        let answer = match frame::read(&mut reader) {
            Ok(Some(answer)) => answer,
            Ok(None) => return Err("the worker ended before building the provider".to_owned()),
            Err(e) => return Err(format!("the worker did not build the provider: {e}")),
        };
        reader
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| e.to_string())?;
        match answer.kind {
            Kind::Ok => serde_json::from_slice::<AuthScheme>(&answer.payload)
                .map(|auth| (reader, auth))
                .map_err(|e| format!("the worker answered an unreadable auth scheme: {e}")),
            _ => Err(serde_json::from_slice::<ProviderError>(&answer.payload)
                .map(|e| format!("construct (in its worker process): {}", e.message))
                .unwrap_or_else(|_| "the worker could not build the provider".to_owned())),
        }
    })();
    match hello {
        Ok((reader, auth)) => Ok((child, conn, reader, auth)),
        Err(why) => Err(fail(&mut child, why)),
    }
}

/// Hands each answer to the call waiting for it, until the worker's socket ends.
fn serve(conn: &Conn, mut reader: BufReader<UnixStream>) {
    loop {
        let frame = match frame::read(&mut reader) {
            Ok(Some(frame)) => frame,
            Ok(None) | Err(_) => return,
        };
        let reply = match frame.kind {
            Kind::Ok => Reply::Ok(frame.payload),
            Kind::Err => Reply::Err(frame.payload),
            // A worker only answers: anything else means it is not ours any more.
            _ => return,
        };
        conn.progress.store(millis(), Ordering::Relaxed);
        let waiting = conn
            .pending
            .lock()
            .ok()
            .and_then(|mut p| p.calls.remove(&frame.id));
        if let Some(waiting) = waiting {
            let _ = waiting.send(reply);
        }
    }
}

/// Makes sure the worker is gone, reaps it, records the crash in `crashed` (none when
/// the pool closed it), and fails the calls in flight on it; how it ended.
fn bury(mut child: Child, conn: &Conn, crashed: Option<&Shared>) -> String {
    let closing = crashed.is_none();
    // It may still run (a broken frame, or the pool closed): a worker is never left
    // behind.
    if closing || conn.killed.get().is_some() || child.try_wait().ok().flatten().is_none() {
        spawn::kill(conn.pid);
    }
    let status = child.wait().ok();
    let signal = status
        .and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s))
        .map(crate::sandbox::signal_name);
    let how = match (conn.killed.get(), &signal, status.and_then(|s| s.code())) {
        (Some(why), _, _) => format!("(pid {}) was killed because {why}", conn.pid),
        (None, Some(signal), _) => format!("(pid {}) died with {signal}", conn.pid),
        (None, None, Some(code)) => format!("(pid {}) exited with status {code}", conn.pid),
        (None, None, None) => format!("(pid {}) ended", conn.pid),
    };
    let signal = match conn.killed.get() {
        Some(_) => Some(crate::sandbox::signal_name(libc::SIGKILL)),
        None => signal,
    };
    let _ = conn.death.set(how.clone());
    if let Some(shared) = crashed {
        shared.record_crash(&how, signal);
    }
    let calls = {
        let mut pending = conn.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.dead = true;
        std::mem::take(&mut pending.calls)
    };
    // Dropping the senders wakes each waiting call with the death above.
    drop(calls);
    how
}
