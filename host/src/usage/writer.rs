//! The ledger's writer: a thread that appends usage records in batches, fed by a queue
//! the request path appends to without waking it.
//!
//! Why a queue and a timer rather than a channel: at request rates a channel send wakes
//! the sleeping writer for every record (a futex wake, then a context switch on a busy
//! core), which cost about 21 µs of host CPU per request in the benchmark. Here a
//! record is one push under an uncontended lock; the writer wakes every
//! [`BATCH_WINDOW`] and takes the whole queue at once. Flushes, resets and a queue
//! filling up wake it at once.

use std::{
    collections::VecDeque,
    mem,
    sync::{
        atomic::{AtomicBool, Ordering},
        mpsc, Arc, Mutex,
    },
    time::{Duration, Instant},
};

use super::{
    series::{Series, SeriesError, SeriesQuery},
    Health, Ledger, UsageRecord,
};
use crate::config::UsageConfig;

/// How long records gather before a commit.
const BATCH_WINDOW: Duration = Duration::from_millis(100);

/// How often a failing write is retried while nothing new arrives.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Records queued past this wake the writer before its window ends, so a burst is
/// written in batches of about this size instead of growing the queue.
const WAKE_AT: usize = 1_000;

/// What only the writer thread can do, each acknowledged when done.
enum Control {
    /// Everything recorded so far is written (or waits for a writable ledger).
    Flush(mpsc::Sender<()>),
    /// The summary starts over at this time.
    Reset(f64, mpsc::Sender<()>),
    /// The queue passed [`WAKE_AT`].
    Wake,
    /// Usage over time, read after what is queued is written.
    Series(SeriesQuery, mpsc::Sender<Result<Series, SeriesError>>),
}

/// How long a series query may wait for the ledger (behind a batch being written, a
/// PostgreSQL server that is slow to answer) before it is answered with an error.
const SERIES_WAIT: Duration = Duration::from_secs(30);

/// Records on their way to the writer.
struct Inbox {
    records: Mutex<Vec<UsageRecord>>,
    /// A [`Control::Wake`] was sent and the writer has not drained since.
    woken: AtomicBool,
}

/// The meter's side of the writer.
pub(super) struct WriterHandle {
    inbox: Arc<Inbox>,
    control: Mutex<mpsc::Sender<Control>>,
    /// `usage.max_pending`: the queue never holds more.
    max_queued: usize,
    health: Arc<Health>,
}

impl WriterHandle {
    /// Starts the writer thread on `ledger` (or on none yet: it keeps trying to open
    /// one while records wait, bounded by `usage.max_pending`).
    pub(super) fn spawn(
        ledger: Option<Ledger>,
        config: UsageConfig,
        health: Arc<Health>,
    ) -> WriterHandle {
        let inbox = Arc::new(Inbox {
            records: Mutex::new(Vec::new()),
            woken: AtomicBool::new(false),
        });
        let (control, rx) = mpsc::channel();
        let max_queued = config.max_pending.max(1);
        let writer = Writer {
            ledger,
            config,
            health: health.clone(),
            pending: VecDeque::new(),
            last_attempt: None,
        };
        let thread_inbox = inbox.clone();
        std::thread::Builder::new()
            .name("usage-ledger".into())
            .spawn(move || {
                yield_to_requests();
                write_loop(writer, thread_inbox, rx)
            })
            .expect("spawn the usage writer");
        WriterHandle {
            inbox,
            control: Mutex::new(control),
            max_queued,
            health,
        }
    }

    /// Queues `record` for the next batch. Never blocks on storage and, below
    /// [`WAKE_AT`] queued records, never wakes the writer.
    pub(super) fn record(&self, record: UsageRecord) {
        let queued = {
            let mut records = self.inbox.records.lock().unwrap_or_else(|e| e.into_inner());
            if records.len() >= self.max_queued {
                // The writer is stuck (a ledger write that does not return): the
                // queue stays bounded and the loss is counted, never silent.
                drop(records);
                let lost = self.health.lost.fetch_add(1, Ordering::Relaxed) + 1;
                if lost.is_power_of_two() {
                    tracing::error!(lost, "usage records lost: the ledger writer is stuck and its queue holds usage.max_pending records");
                }
                return;
            }
            records.push(record);
            records.len()
        };
        if queued >= WAKE_AT && !self.inbox.woken.swap(true, Ordering::Relaxed) {
            self.send(Control::Wake);
        }
    }

    /// Waits until every record queued so far is written (or waits for the ledger).
    pub(super) fn flush(&self) {
        let (ack, done) = mpsc::channel();
        self.send(Control::Flush(ack));
        let _ = done.recv();
    }

    /// Writes what is queued, then records a reset of the summary at `at`.
    pub(super) fn reset(&self, at: f64) {
        let (ack, done) = mpsc::channel();
        self.send(Control::Reset(at, ack));
        let _ = done.recv();
    }

    /// Reads usage over time from the ledger, after what is queued is written, so what
    /// was recorded is in the answer. Waits at most [`SERIES_WAIT`].
    pub(super) fn series(&self, query: SeriesQuery) -> Result<Series, SeriesError> {
        let (answer, answered) = mpsc::channel();
        self.send(Control::Series(query, answer));
        answered.recv_timeout(SERIES_WAIT).map_err(|_| {
            SeriesError::Unreadable(format!(
                "no answer within {} s (see the ledger's state in /readyz)",
                SERIES_WAIT.as_secs()
            ))
        })?
    }

    fn send(&self, message: Control) {
        let _ = self
            .control
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(message);
    }
}

/// The writer thread's side: the ledger (once it could be opened), and the records
/// that wait for it.
struct Writer {
    ledger: Option<Ledger>,
    config: UsageConfig,
    health: Arc<Health>,
    pending: VecDeque<UsageRecord>,
    /// When a write was last tried, to pace retries while the ledger fails.
    last_attempt: Option<Instant>,
}

impl Writer {
    /// Queues `record`, giving up the oldest past `usage.max_pending` (at the default
    /// 100,000, some 30 MB).
    fn push(&mut self, record: UsageRecord) {
        if self.pending.len() >= self.config.max_pending.max(1) {
            self.pending.pop_front();
            let lost = self.health.lost.fetch_add(1, Ordering::Relaxed) + 1;
            if lost.is_power_of_two() {
                tracing::error!(lost, max_pending = self.config.max_pending, "usage records lost: the ledger stayed unwritable for more than usage.max_pending records");
            }
        }
        self.pending.push_back(record);
        self.health
            .pending
            .store(self.pending.len() as u64, Ordering::Relaxed);
    }

    /// Takes everything queued by the request path.
    fn drain(&mut self, inbox: &Inbox, spare: &mut Vec<UsageRecord>) -> usize {
        {
            let mut records = inbox.records.lock().unwrap_or_else(|e| e.into_inner());
            // Swap in the emptied buffer of the last drain: no allocation per batch.
            mem::swap(&mut *records, spare);
            inbox.woken.store(false, Ordering::Relaxed);
        }
        let taken = spare.len();
        for record in spare.drain(..) {
            self.push(record);
        }
        taken
    }

    /// Writes what waits, in one transaction; on failure it keeps waiting.
    fn write(&mut self) {
        self.last_attempt = Some(Instant::now());
        if self.pending.is_empty() && self.ledger.is_some() {
            return;
        }
        let ledger = match &mut self.ledger {
            Some(ledger) => ledger,
            None => match Ledger::open(&self.config) {
                Ok(ledger) => {
                    tracing::info!("the usage ledger is open for writing again");
                    self.ledger.insert(ledger)
                }
                Err(e) => return self.health.failed(e),
            },
        };
        if self.pending.is_empty() {
            return self.health.wrote();
        }
        let batch = self.pending.make_contiguous();
        match ledger.append(batch, &self.config) {
            Ok(()) => {
                if self
                    .health
                    .failing
                    .lock()
                    .map(|f| f.is_some())
                    .unwrap_or(false)
                {
                    tracing::info!(
                        records = batch.len(),
                        "usage records written after an earlier failure"
                    );
                }
                self.pending.clear();
                self.health.pending.store(0, Ordering::Relaxed);
                self.health.wrote();
            }
            Err(e) => {
                tracing::warn!(error = %e, records = batch.len(), "cannot write usage records; they wait and are retried");
                self.health.failed(e);
            }
        }
    }

    /// Whether a write is due: new records arrived, or records (or an unopened ledger)
    /// wait and the last attempt is [`RETRY_EVERY`] old.
    fn due(&self, arrived: usize) -> bool {
        let waiting = !self.pending.is_empty() || self.ledger.is_none();
        arrived > 0 || (waiting && self.last_attempt.is_none_or(|t| t.elapsed() >= RETRY_EVERY))
    }
}

/// Every [`BATCH_WINDOW`] (or sooner when woken), takes the queue and appends it in one
/// transaction. Records whose write fails wait (up to `usage.max_pending`) and go with
/// the next batch, or within [`RETRY_EVERY`] when nothing new comes.
fn write_loop(mut writer: Writer, inbox: Arc<Inbox>, rx: mpsc::Receiver<Control>) {
    let mut spare = Vec::new();
    let mut deadline = Instant::now() + BATCH_WINDOW;
    loop {
        let mut acks = Vec::new();
        let mut resets = Vec::new();
        let mut queries = Vec::new();
        let left = deadline.saturating_duration_since(Instant::now());
        let mut next = match rx.recv_timeout(left) {
            Ok(message) => Some(message),
            Err(mpsc::RecvTimeoutError::Timeout) => None,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        while let Some(message) = next.take() {
            match message {
                Control::Flush(ack) => acks.push(ack),
                Control::Reset(at, ack) => resets.push((at, ack)),
                Control::Wake => {}
                Control::Series(query, answer) => queries.push((query, answer)),
            }
            next = rx.try_recv().ok();
        }
        let window_over = Instant::now() >= deadline;
        let asked = !acks.is_empty() || !resets.is_empty() || !queries.is_empty();
        if !(window_over || asked || woken(&inbox)) {
            continue;
        }
        deadline = Instant::now() + BATCH_WINDOW;
        let arrived = writer.drain(&inbox, &mut spare);
        if writer.due(arrived) || asked {
            writer.write();
        }
        for (at, ack) in resets {
            match &mut writer.ledger {
                Some(ledger) => {
                    if let Err(e) = ledger.reset(at) {
                        tracing::warn!(error = %e, "cannot record the usage reset");
                    }
                }
                None => tracing::warn!("cannot record the usage reset: the ledger is not writable"),
            }
            let _ = ack.send(());
        }
        for ack in acks {
            let _ = ack.send(());
        }
        for (query, answer) in queries {
            let result = match &mut writer.ledger {
                Some(ledger) => ledger.series(&query).map_err(SeriesError::Unreadable),
                None => Err(SeriesError::Unreadable(
                    writer
                        .health
                        .status()
                        .last_error
                        .unwrap_or_else(|| "the ledger is not open".to_owned()),
                )),
            };
            let _ = answer.send(result);
        }
    }
    // The host is going away: one last try for what is still queued.
    writer.drain(&inbox, &mut spare);
    writer.write();
    let left = writer.pending.len();
    if left > 0 {
        writer.health.lost.fetch_add(left as u64, Ordering::Relaxed);
        tracing::error!(
            records = left,
            "usage records lost at exit: the ledger is not writable"
        );
    }
}

fn woken(inbox: &Inbox) -> bool {
    inbox.woken.load(Ordering::Relaxed)
}

/// Puts the calling (writer) thread at a lower scheduling priority than the request
/// path. A batch commit takes a millisecond or two of CPU every 100 ms at thousands of
/// requests a second; at the same priority, requests that arrive while it runs on the
/// same core wait for it, which showed in the host's p99. A failure leaves the
/// priority as it was: it only costs latency.
fn yield_to_requests() {
    #[cfg(target_os = "linux")]
    // SAFETY: `gettid` and `setpriority` on this thread's own id touch no memory.
    unsafe {
        let thread = libc::syscall(libc::SYS_gettid) as libc::id_t;
        let _ = libc::setpriority(libc::PRIO_PROCESS, thread, 10);
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    /// The nice value of every thread of this process named `name`.
    fn nice_of_threads_named(name: &str) -> Vec<i64> {
        let tasks = std::fs::read_dir("/proc/self/task").expect("procfs");
        tasks
            .filter_map(|task| {
                let task = task.ok()?.path();
                let comm = std::fs::read_to_string(task.join("comm")).ok()?;
                if comm.trim() != name {
                    return None;
                }
                let stat = std::fs::read_to_string(task.join("stat")).ok()?;
                // Fields after the command's closing parenthesis start at field 3;
                // nice is field 19.
                let after = &stat[stat.rfind(')')? + 2..];
                after.split_whitespace().nth(16)?.parse().ok()
            })
            .collect()
    }

    #[test]
    fn the_writer_runs_below_the_request_paths_priority() {
        // Its own folder: the default path is relative and would land in the source tree.
        let folder = tempfile::tempdir().unwrap();
        let config = UsageConfig {
            database: folder.path().join("usage.sqlite3"),
            ..UsageConfig::default()
        };
        let _writer = WriterHandle::spawn(None, config, Arc::default());
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let nice = nice_of_threads_named("usage-ledger");
            if !nice.is_empty() && nice.iter().all(|n| *n == 10) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "usage-ledger threads' nice: {nice:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}
