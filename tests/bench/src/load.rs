//! The load generator: HTTP/1.1 keep-alive connections opened on demand (hyper's
//! client connection, no pool library in the way), driven open-loop at a fixed rate
//! or closed-loop at a fixed concurrency.
//!
//! Open loop: a ticker thread sleeps until each request's intended send time and
//! hands it to the runtime; nothing ever waits for a response before the next send.
//! Every latency is measured from the intended send time, so a stall of the system
//! under test (or of the generator itself) shows in the figures instead of silently
//! delaying later requests (coordinated omission).

use std::{
    cell::RefCell,
    net::SocketAddr,
    rc::Rc,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{client::conn::http1::SendRequest, Request};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::Semaphore, task::LocalSet};

/// Where requests go and what they carry.
#[derive(Clone)]
pub struct Target {
    /// The server.
    pub addr: SocketAddr,
    /// The request path.
    pub path: &'static str,
    /// The JSON body.
    pub body: Bytes,
    /// Whether the body asks for a stream (the response must end with `stream_end`).
    pub stream: bool,
    /// How a complete stream of this protocol ends (`data: [DONE]` for OpenAI chat).
    pub stream_end: &'static str,
}

/// One request's outcome, times in nanoseconds from its intended send time.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    /// Until the first body bytes (the first chunk of a stream).
    pub first: u64,
    /// Until the last body bytes.
    pub done: u64,
    /// A 200 with a complete body.
    pub ok: bool,
}

/// The most connections one target may have open (requests beyond wait their turn,
/// and the wait counts in their latency).
const MAX_CONNECTIONS: usize = 1024;

/// Idle keep-alive connections to one server.
struct Pool {
    addr: SocketAddr,
    idle: RefCell<Vec<SendRequest<Full<Bytes>>>>,
    permits: Semaphore,
}

impl Pool {
    fn new(addr: SocketAddr) -> Rc<Pool> {
        Rc::new(Pool {
            addr,
            idle: RefCell::new(Vec::new()),
            permits: Semaphore::new(MAX_CONNECTIONS),
        })
    }

    async fn connection(&self) -> Result<SendRequest<Full<Bytes>>, String> {
        loop {
            let next = self.idle.borrow_mut().pop();
            match next {
                Some(mut sender) if !sender.is_closed() => {
                    if sender.ready().await.is_ok() {
                        return Ok(sender);
                    }
                }
                Some(_) => continue,
                None => break,
            }
        }
        let socket = TcpStream::connect(self.addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let _ = socket.set_nodelay(true);
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        tokio::task::spawn_local(async move {
            let _ = connection.await;
        });
        Ok(sender)
    }

    fn give_back(&self, sender: SendRequest<Full<Bytes>>) {
        if !sender.is_closed() {
            self.idle.borrow_mut().push(sender);
        }
    }
}

/// Sends one request and reads the whole response. Returns (ok, first body bytes at).
async fn exchange(pool: &Pool, target: &Target) -> Result<(bool, Option<Instant>), String> {
    let _permit = pool.permits.acquire().await.map_err(|e| e.to_string())?;
    let mut sender = pool.connection().await?;
    let request = Request::post(target.path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(target.body.clone()))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status_ok = response.status() == 200;
    let mut body = response.into_body();
    let mut first = None;
    let mut tail = Vec::with_capacity(32);
    let mut length = 0usize;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| format!("body: {e}"))?;
        if let Ok(data) = frame.into_data() {
            if data.is_empty() {
                continue;
            }
            if first.is_none() {
                first = Some(Instant::now());
            }
            length += data.len();
            tail.extend_from_slice(&data[data.len().saturating_sub(32)..]);
            let cut = tail.len().saturating_sub(32);
            tail.drain(..cut);
        }
    }
    pool.give_back(sender);
    let complete = if target.stream {
        String::from_utf8_lossy(&tail)
            .trim_end()
            .ends_with(target.stream_end)
    } else {
        length > 0 && tail.last() == Some(&b'}')
    };
    Ok((status_ok && complete, first))
}

async fn timed(pool: &Pool, target: &Target, intended: Instant, timeout: Duration) -> Sample {
    let outcome =
        tokio::time::timeout_at((intended + timeout).into(), exchange(pool, target)).await;
    let end = Instant::now();
    let since = |t: Instant| t.saturating_duration_since(intended).as_nanos() as u64;
    match outcome {
        Ok(Ok((ok, first))) => Sample {
            first: since(first.unwrap_or(end)),
            done: since(end),
            ok,
        },
        _ => Sample {
            first: since(end),
            done: since(end),
            ok: false,
        },
    }
}

/// Lowers this thread's timer slack to 1 ns so sleeps end when asked (the default
/// 50 µs slack would bunch sends together).
fn precise_sleeps() {
    // SAFETY: prctl with PR_SET_TIMERSLACK takes an integer and touches no memory.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0);
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The outcome of an open-loop run.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    /// The measured requests (the warm-up's are dropped).
    pub samples: Vec<Sample>,
    /// How late the ticker sent, at worst, after its intended time (ns).
    pub worst_send_lag: u64,
}

/// Sends to `target` at `rate` requests per second for `warmup + duration`, and
/// returns the samples of the requests intended after the warm-up.
pub fn open_loop(
    target: &Target,
    rate: f64,
    warmup: Duration,
    duration: Duration,
    timeout: Duration,
) -> OpenLoop {
    let total = ((warmup + duration).as_secs_f64() * rate).round() as u64;
    let start = Instant::now() + Duration::from_millis(20);
    let measured_from = start + warmup;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let lag = Arc::new(AtomicU64::new(0));
    let ticker_lag = lag.clone();
    let ticker = std::thread::Builder::new()
        .name("ticker".into())
        .spawn(move || {
            precise_sleeps();
            for i in 0..total {
                let intended = start + Duration::from_secs_f64(i as f64 / rate);
                let now = Instant::now();
                if intended > now {
                    std::thread::sleep(intended - now);
                }
                let late = Instant::now()
                    .saturating_duration_since(intended)
                    .as_nanos() as u64;
                ticker_lag.fetch_max(late, Ordering::Relaxed);
                if tx.send(intended).is_err() {
                    break;
                }
            }
        })
        .expect("spawn the ticker");
    let pool = Pool::new(target.addr);
    let local = LocalSet::new();
    let samples = local.block_on(&runtime(), async move {
        let mut running = Vec::with_capacity(total as usize);
        while let Some(intended) = rx.recv().await {
            let (pool, target) = (pool.clone(), target.clone());
            let measured = intended >= measured_from;
            running.push(tokio::task::spawn_local(async move {
                let sample = timed(&pool, &target, intended, timeout).await;
                measured.then_some(sample)
            }));
        }
        let mut samples = Vec::with_capacity(running.len());
        for task in running {
            if let Ok(Some(sample)) = task.await {
                samples.push(sample);
            }
        }
        samples
    });
    let _ = ticker.join();
    OpenLoop {
        samples,
        worst_send_lag: lag.load(Ordering::Relaxed),
    }
}

/// The outcome of a closed-loop run.
#[derive(Debug, Clone, Copy)]
pub struct ClosedLoop {
    /// Requests answered completely with a 200.
    pub ok: u64,
    /// The others.
    pub failed: u64,
    /// Wall time.
    pub elapsed: Duration,
}

/// Sends `total` requests with `concurrency` in flight, each to the target `pick`
/// chooses for its index.
pub fn closed_loop(
    targets: &[Target],
    pick: impl Fn(u64) -> usize + Clone + 'static,
    total: u64,
    concurrency: usize,
    timeout: Duration,
) -> ClosedLoop {
    let started = Instant::now();
    let next = Rc::new(std::cell::Cell::new(0u64));
    let pools: Vec<Rc<Pool>> = targets.iter().map(|t| Pool::new(t.addr)).collect();
    let local = LocalSet::new();
    let (ok, failed) = local.block_on(&runtime(), async move {
        let mut workers = Vec::new();
        for _ in 0..concurrency {
            let (next, pools, targets, pick) =
                (next.clone(), pools.clone(), targets.to_vec(), pick.clone());
            workers.push(tokio::task::spawn_local(async move {
                let (mut ok, mut failed) = (0u64, 0u64);
                loop {
                    let i = next.get();
                    if i >= total {
                        break;
                    }
                    next.set(i + 1);
                    let which = pick(i);
                    let sample =
                        timed(&pools[which], &targets[which], Instant::now(), timeout).await;
                    if sample.ok {
                        ok += 1;
                    } else {
                        failed += 1;
                    }
                }
                (ok, failed)
            }));
        }
        let (mut ok, mut failed) = (0, 0);
        for worker in workers {
            if let Ok((o, f)) = worker.await {
                ok += o;
                failed += f;
            }
        }
        (ok, failed)
    });
    ClosedLoop {
        ok,
        failed,
        elapsed: started.elapsed(),
    }
}

/// One request on a fresh connection, for admin calls: (status, body).
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Bytes), String> {
    let socket = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(socket))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    let request = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "127.0.0.1")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::copy_from_slice(body)))
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// [`call`] from synchronous code.
pub fn call_blocking(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(u16, Bytes), String> {
    runtime().block_on(call(addr, method, path, body))
}
