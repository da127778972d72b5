//! In-process plugin calls on the request path run here, on threads of their own,
//! never on the async runtime's: a plugin stuck in a call (an endless loop) then
//! blocks one of these threads, not the server. Each call has a deadline; past it the
//! caller is told (and `crate::plugin` faults the plugin version), and a fresh thread
//! replaces the stuck one, which is left to its fate: a thread cannot be stopped from
//! outside, and the plugin's code is still running on it.
//!
//! The caller first waits for the answer in place, blocking its runtime thread for at
//! most `WAIT_IN_PLACE`, then as a task: see that constant for why.
//!
//! Not tokio's blocking pool: a runtime waits for its blocking tasks when it shuts
//! down, so one stuck call would hang the shutdown; these threads are detached.

use std::{
    collections::VecDeque,
    future::Future,
    panic::{catch_unwind, AssertUnwindSafe},
    pin::Pin,
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

type Job = Box<dyn FnOnce() + Send>;

/// The process-wide pool of plugin-call threads: a queue of jobs, and idle threads
/// waiting on one condition variable (a job wakes exactly one of them).
struct Pool {
    jobs: Mutex<VecDeque<Job>>,
    queued: Condvar,
}

/// Threads started at first use; stuck ones are replaced one for one.
const THREADS: usize = 8;

/// How long a caller waits for its call in place, blocking its runtime thread, before
/// it waits as a task. A call takes microseconds; waiting in place costs two thread
/// switches (to the plugin-call thread and back), waiting as a task adds a wake-up of
/// the runtime through its I/O driver (an eventfd write, one more `epoll_wait`) and the
/// task's rescheduling. Measured with the pool before this one (tasks only, and a
/// receiver mutex that woke a second idle thread per job): ~28 µs more per call on the
/// bench machine. A call that takes longer (a huge answer, a plugin that hangs) holds
/// the runtime thread at most this long.
const WAIT_IN_PLACE: Duration = Duration::from_millis(1);

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(|| {
        let pool = Pool {
            jobs: Mutex::new(VecDeque::new()),
            queued: Condvar::new(),
        };
        for _ in 0..THREADS {
            add_thread();
        }
        pool
    })
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing runs plugin code under these locks, so a poisoned one holds sound data.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn add_thread() {
    let spawned = std::thread::Builder::new()
        .name("plugin-call".to_owned())
        .spawn(|| loop {
            // The lock is held only while taking the next job, never while running
            // one, so a stuck job holds no lock.
            let job = {
                let pool = pool();
                let mut jobs = lock(&pool.jobs);
                loop {
                    match jobs.pop_front() {
                        Some(job) => break job,
                        None => {
                            jobs = pool
                                .queued
                                .wait(jobs)
                                .unwrap_or_else(|poisoned| poisoned.into_inner())
                        }
                    }
                }
            };
            job();
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start a plugin-call thread");
    }
}

/// Where a call's answer lands, for a caller waiting in place or as a task.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    done: Condvar,
}

struct SlotState<T> {
    /// `Some` once the call ended: its value, or `None` when it panicked.
    answer: Option<Option<T>>,
    /// The task to wake, once the caller stopped waiting in place.
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn finish(&self, value: Option<T>) {
        let waker = {
            let mut state = lock(&self.state);
            state.answer = Some(value);
            state.waker.take()
        };
        self.done.notify_one();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Waits in place until `until`; the answer if it came.
    fn wait_until(&self, until: Instant) -> Option<Option<T>> {
        let mut state = lock(&self.state);
        loop {
            if let Some(answer) = state.answer.take() {
                return Some(answer);
            }
            let left = until.checked_duration_since(Instant::now())?;
            state = self
                .done
                .wait_timeout(state, left)
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .0;
        }
    }
}

/// The answer of a call, awaited as a task.
struct Answer<T>(Arc<Slot<T>>);

impl<T> Future for Answer<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut state = lock(&self.0.state);
        match state.answer.take() {
            Some(answer) => Poll::Ready(answer),
            None => {
                state.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Why a call on the plugin-call threads gave no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
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
    let started = Instant::now();
    let slot = Arc::new(Slot {
        state: Mutex::new(SlotState {
            answer: None,
            waker: None,
        }),
        done: Condvar::new(),
    });
    let owned = plugin.clone();
    let answer = slot.clone();
    let job: Job = Box::new(move || {
        // The SDK turns a plugin's panic into an error; this catches what gets past it,
        // so that the thread lives on and the caller hears at once.
        let value = catch_unwind(AssertUnwindSafe(|| call(&owned))).ok();
        answer.finish(value);
    });
    let pool = pool();
    lock(&pool.jobs).push_back(job);
    pool.queued.notify_one();
    let answer = match slot.wait_until(started + WAIT_IN_PLACE.min(limit)) {
        Some(answer) => answer,
        None => {
            let left = limit.saturating_sub(started.elapsed());
            match tokio::time::timeout(left, Answer(slot)).await {
                Ok(answer) => answer,
                Err(_) => {
                    add_thread();
                    return Err(CallError::Overran(limit));
                }
            }
        }
    };
    answer.ok_or(CallError::NoAnswer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_quick_call_is_answered_in_place_and_a_slow_one_as_a_task() {
        let plugin = Arc::new(20_u64);
        let limit = Duration::from_secs(5);
        assert_eq!(run(&plugin, limit, |n| n + 1).await, Ok(21));
        let slow = run(&plugin, limit, |n| {
            std::thread::sleep(WAIT_IN_PLACE * 20);
            n * 2
        });
        assert_eq!(slow.await, Ok(40));
    }

    #[tokio::test]
    async fn a_call_past_its_limit_is_given_up_and_the_pool_serves_on() {
        let plugin = Arc::new(());
        let stuck = run(&plugin, Duration::from_millis(30), |_| {
            std::thread::sleep(Duration::from_millis(500));
        });
        assert_eq!(
            stuck.await,
            Err(CallError::Overran(Duration::from_millis(30)))
        );
        let after = run(&plugin, Duration::from_secs(5), |_| "served");
        assert_eq!(after.await, Ok("served"));
    }

    #[tokio::test]
    async fn a_call_that_panics_has_no_answer_and_its_thread_lives_on() {
        let plugin = Arc::new(());
        for _ in 0..2 * THREADS {
            let panicked = run(&plugin, Duration::from_secs(5), |_| -> u8 {
                panic!("a plugin bug past the SDK's guard")
            });
            assert_eq!(panicked.await, Err(CallError::NoAnswer));
        }
        assert_eq!(run(&plugin, Duration::from_secs(5), |_| 7).await, Ok(7));
    }
}
