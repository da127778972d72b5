//! In-process plugin calls on the request path run here, on threads of their own,
//! never on the async runtime's: a plugin stuck in a call (an endless loop) then
//! blocks one of these threads, not the server. Each call has a deadline; past it the
//! caller is told (and `crate::plugin` faults the plugin version), and a fresh thread
//! replaces the stuck one, which is left to its fate: a thread cannot be stopped from
//! outside, and the plugin's code is still running on it.
//!
//! Not tokio's blocking pool: a runtime waits for its blocking tasks when it shuts
//! down, so one stuck call would hang the shutdown; these threads are detached.

use std::{
    sync::{mpsc, Arc, Mutex, OnceLock},
    time::Duration,
};

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide pool of plugin-call threads.
struct Pool {
    jobs: Mutex<mpsc::Sender<Job>>,
    queue: Arc<Mutex<mpsc::Receiver<Job>>>,
}

/// Threads started at first use; stuck ones are replaced one for one.
const THREADS: usize = 8;

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let pool = Pool {
            jobs: Mutex::new(tx),
            queue: Arc::new(Mutex::new(rx)),
        };
        for _ in 0..THREADS {
            pool.add_thread();
        }
        pool
    })
}

impl Pool {
    fn add_thread(&self) {
        let queue = self.queue.clone();
        let spawned = std::thread::Builder::new()
            .name("plugin-call".to_owned())
            .spawn(move || loop {
                // The lock is held only while waiting for the next job, never while
                // running one, so a stuck job holds no lock.
                let job = match queue.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    Ok(job) => job(),
                    Err(_) => return,
                }
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start a plugin-call thread");
        }
    }
}

/// Why a call on the plugin-call threads gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The threads are gone (the process is going down).
    #[error("the plugin-call threads are gone")]
    ThreadsGone,
    /// The call ended without an answer (it panicked past the SDK's guard).
    #[error("the plugin call ended without an answer")]
    NoAnswer,
    /// The call did not return within its deadline; its thread was replaced.
    #[error("did not return within {:.1} s", .0.as_secs_f64())]
    Overran(Duration),
}

/// Runs `call` on `plugin` on a plugin-call thread and waits for it at most `limit`;
/// past it, a fresh thread replaces the stuck one and the caller gets
/// [`CallError::Overran`] (the caller decides what that means for the plugin).
pub async fn run<P: Send + Sync + 'static, T: Send + 'static>(
    plugin: &Arc<P>,
    limit: Duration,
    call: impl FnOnce(&P) -> T + Send + 'static,
) -> Result<T, CallError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = plugin.clone();
    let job: Job = Box::new(move || {
        let _ = tx.send(call(&owned));
    });
    let pool = pool();
    if pool.jobs.lock().map(|jobs| jobs.send(job)).is_err() {
        return Err(CallError::ThreadsGone);
    }
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(CallError::NoAnswer),
        Err(_) => {
            pool.add_thread();
            Err(CallError::Overran(limit))
        }
    }
}
