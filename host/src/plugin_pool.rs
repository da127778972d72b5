//! Plugin calls on the request path run here, on threads of their own, never on the
//! async runtime's: a plugin stuck in a call (an endless loop) then blocks one of
//! these threads, not the server. Each call has a deadline; past it the caller gets a
//! `plugin_fault`, the plugin version is marked faulted (it is no longer routed to),
//! and a fresh thread replaces the stuck one, which is left to its fate: a thread
//! cannot be stopped from outside, and the plugin's code is still running on it.
//!
//! Not tokio's blocking pool: a runtime waits for its blocking tasks when it shuts
//! down, so one stuck call would hang the shutdown; these threads are detached.

use std::{
    sync::{mpsc, Arc, Mutex, OnceLock},
    time::Instant,
};

use provider_sdk::{ErrorKind, ProviderError};

use crate::registry::ReadyProvider;

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

/// Runs `call` (a call into `provider`'s plugin named `what`) on a plugin-call thread
/// and waits for it until `provider`'s call deadline; past it, marks the version
/// faulted and fails with `plugin_fault`.
pub async fn run<T: Send + 'static>(
    provider: &Arc<ReadyProvider>,
    what: &'static str,
    call: impl FnOnce(&ReadyProvider) -> T + Send + 'static,
) -> Result<T, ProviderError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let owned = provider.clone();
    let job: Job = Box::new(move || {
        let _ = tx.send(call(&owned));
    });
    let pool = pool();
    if pool.jobs.lock().map(|jobs| jobs.send(job)).is_err() {
        return Err(ProviderError::plugin_fault(
            "the plugin-call threads are gone",
        ));
    }
    let limit = provider.call_timeout;
    let started = Instant::now();
    match tokio::time::timeout(limit, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(ProviderError::plugin_fault(format!(
            "the plugin's {what} ended without an answer"
        ))),
        Err(_) => {
            pool.add_thread();
            let reason = format!(
                "{what} did not return within {:.1} s (it hangs): this plugin version is faulted and no longer served; replace the file",
                limit.as_secs_f64()
            );
            provider.mark_faulted(&reason);
            tracing::error!(provider = %provider.name, waited_ms = started.elapsed().as_millis() as u64, %reason, "plugin call past its deadline");
            Err(ProviderError::new(ErrorKind::PluginFault, reason))
        }
    }
}
