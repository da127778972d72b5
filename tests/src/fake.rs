//! A scriptable fake upstream: a raw HTTP/1.1 server on loopback that answers each
//! request with the next scripted reply, byte for byte, and records what it received.
//!
//! It is deliberately raw (no HTTP framework) so a test controls every byte the host
//! sees: SSE framing, pauses between chunks, a connection closed mid-body, a reply that
//! never comes. Canned bodies come from the providers' published API references.

use std::{
    collections::VecDeque,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};

/// What the fake does with one request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// A complete response with a `Content-Length` body.
    Full {
        /// Status code.
        status: u16,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// The body.
        body: Vec<u8>,
    },
    /// A streamed body (`text/event-stream`, closed at the end), written piece by piece.
    Stream {
        /// Status code.
        status: u16,
        /// The pieces, written as they are.
        pieces: Vec<Vec<u8>>,
        /// Pause before each piece after the first.
        pause: Duration,
        /// After the last piece, keep the connection open and silent.
        then_hang: bool,
    },
    /// Read the request, then never answer.
    Hang,
    /// Read the request, then close the connection without a word.
    Close,
}

impl Reply {
    /// A 200 JSON body.
    pub fn json(body: &str) -> Reply {
        Reply::status_json(200, body)
    }

    /// A JSON body with `status`.
    pub fn status_json(status: u16, body: &str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("content-type".to_owned(), "application/json".to_owned())],
            body: body.as_bytes().to_vec(),
        }
    }

    /// Adds a header to a `Full` reply.
    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// A 200 SSE body sent in the given pieces, `pause` apart.
    pub fn sse(pieces: &[&str], pause: Duration) -> Reply {
        Reply::Stream {
            status: 200,
            pieces: pieces.iter().map(|p| p.as_bytes().to_vec()).collect(),
            pause,
            then_hang: false,
        }
    }
}

/// A request the fake received.
#[derive(Debug, Clone)]
pub struct Received {
    /// `POST`, ...
    pub method: String,
    /// Path and query.
    pub target: String,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Received {
    /// The first header called `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the host sent JSON")
    }
}

#[derive(Default)]
struct State {
    script: Mutex<VecDeque<Reply>>,
    fallback: Mutex<Option<Reply>>,
    received: Mutex<Vec<Received>>,
    /// Streams whose client went away before the last piece was written.
    abandoned: AtomicUsize,
    /// Streams that hung after their last piece and whose client then hung up.
    let_go: AtomicUsize,
    /// Full replies that ended: the body bytes the socket accepted, and whether all
    /// of the body was written (false: the client hung up first).
    sent: Mutex<Vec<(usize, bool)>>,
    /// Woken whenever a request arrives or a reply ends.
    changed: tokio::sync::Notify,
}

/// A running fake upstream.
pub struct FakeUpstream {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    state: Arc<State>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeUpstream {
    /// Starts a fake on an ephemeral loopback port. Call from within a tokio runtime.
    pub async fn start() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        FakeUpstream { url, state, task }
    }

    /// Starts a fake that speaks HTTP/1.1 over TLS, as `localhost`, with a certificate
    /// signed by the test CA ([`crate::tls::CA`]): `https://localhost:<port>`. A
    /// handshake that fails is not a request and is not recorded.
    pub async fn start_tls() -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let port = listener.local_addr().expect("address").port();
        let url = format!("https://localhost:{port}");
        let acceptor =
            tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(crate::tls::server_config()));
        let state = Arc::new(State::default());
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let (acceptor, shared) = (acceptor.clone(), shared.clone());
                tokio::spawn(async move {
                    if let Ok(tls) = acceptor.accept(socket).await {
                        serve(tls, shared).await;
                    }
                });
            }
        });
        FakeUpstream { url, state, task }
    }

    /// Queues replies, used in order, one per request.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().unwrap().extend(replies);
    }

    /// The reply used once the script is empty.
    pub fn always(&self, reply: Reply) {
        *self.state.fallback.lock().unwrap() = Some(reply);
    }

    /// Every request received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many streamed replies lost their client before the end.
    pub fn abandoned(&self) -> usize {
        self.state.abandoned.load(Ordering::SeqCst)
    }

    /// Waits until the client has hung up on `n` streams that hung after their last
    /// piece (`then_hang`), i.e. let their connections go.
    pub async fn until_let_go(&self, n: usize) {
        self.until(
            || self.state.let_go.load(Ordering::SeqCst) >= n,
            &format!("{n} hung streams let go"),
        )
        .await
    }

    /// For each `Full` reply that ended, in order: how many body bytes the socket
    /// accepted, and whether that was the whole body.
    pub fn sent(&self) -> Vec<(usize, bool)> {
        self.state.sent.lock().unwrap().clone()
    }

    /// Waits until `n` requests have arrived (failing after a minute: a test that
    /// waits that long is broken, not slow).
    pub async fn until_received(&self, n: usize) {
        self.until(|| self.received().len() >= n, &format!("{n} requests"))
            .await
    }

    /// Waits until `n` `Full` replies have ended, and returns [`FakeUpstream::sent`].
    pub async fn until_sent(&self, n: usize) -> Vec<(usize, bool)> {
        self.until(|| self.sent().len() >= n, &format!("{n} replies sent"))
            .await;
        self.sent()
    }

    async fn until(&self, done: impl Fn() -> bool, what: &str) {
        let wait = async {
            loop {
                let changed = self.state.changed.notified();
                tokio::pin!(changed);
                // Registered before the check, so a change in between is not missed.
                changed.as_mut().enable();
                if done() {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(Duration::from_secs(60), wait)
            .await
            .unwrap_or_else(|_| panic!("the fake never saw {what}"));
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(mut socket: impl AsyncRead + AsyncWrite + Unpin, state: Arc<State>) {
    let Some(request) = read_request(&mut socket).await else {
        return;
    };
    state.received.lock().unwrap().push(request);
    state.changed.notify_waiters();
    let reply = {
        let next = state.script.lock().unwrap().pop_front();
        next.or_else(|| state.fallback.lock().unwrap().clone())
    };
    let Some(reply) = reply else {
        let _ = socket
            .write_all(b"HTTP/1.1 599 Unscripted\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
            .await;
        return;
    };
    match reply {
        Reply::Full {
            status,
            headers,
            body,
        } => {
            let mut head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
                reason(status),
                body.len()
            );
            for (n, v) in headers {
                head.push_str(&format!("{n}: {v}\r\n"));
            }
            head.push_str("\r\n");
            let _ = socket.write_all(head.as_bytes()).await;
            // In pieces, counting what the socket takes, so a test can tell how much
            // the client read before it hung up.
            let mut written = 0;
            for piece in body.chunks(16 * 1024) {
                if socket.write_all(piece).await.is_err() {
                    break;
                }
                written += piece.len();
            }
            state
                .sent
                .lock()
                .unwrap()
                .push((written, written == body.len()));
            state.changed.notify_waiters();
        }
        Reply::Stream {
            status,
            pieces,
            pause,
            then_hang,
        } => {
            let head = format!(
                "HTTP/1.1 {status} {}\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n",
                reason(status)
            );
            if socket.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for (i, piece) in pieces.iter().enumerate() {
                if i > 0 && !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                if socket.write_all(piece).await.is_err() || socket.flush().await.is_err() {
                    state.abandoned.fetch_add(1, Ordering::SeqCst);
                    return;
                }
            }
            if then_hang {
                // Silent until the client hangs up (or an hour passes).
                let hung_up = async {
                    let mut buf = [0u8; 1024];
                    while let Ok(1..) = socket.read(&mut buf).await {}
                };
                if tokio::time::timeout(Duration::from_secs(3600), hung_up)
                    .await
                    .is_ok()
                {
                    state.let_go.fetch_add(1, Ordering::SeqCst);
                    state.changed.notify_waiters();
                }
            }
        }
        Reply::Hang => tokio::time::sleep(Duration::from_secs(3600)).await,
        Reply::Close => {}
    }
    let _ = socket.shutdown().await;
}

async fn read_request(socket: &mut (impl AsyncRead + Unpin)) -> Option<Received> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_owned(), first.next()?.to_owned());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Received {
        method,
        target,
        headers,
        body,
        at: std::time::Instant::now(),
    })
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Overloaded",
        _ => "Status",
    }
}
