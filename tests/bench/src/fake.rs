//! A zero-delay fake upstream speaking OpenAI chat completions, written for speed:
//! hyper's HTTP/1.1 server, canned bodies built once and shared by reference count,
//! no JSON parsing (a request is streamed when its body contains `"stream":true`).

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::{Arc, RwLock},
};

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::{body::Frame, body::Incoming, server::conn::http1, service::service_fn, Request};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::workload;

/// What the fake answers with.
pub struct Canned {
    answer: Bytes,
    pieces: RwLock<Arc<Vec<Bytes>>>,
}

impl Canned {
    /// The workload's answer, and a stream of `chunks` content chunks.
    pub fn new(chunks: usize) -> Arc<Canned> {
        let canned = Canned {
            answer: Bytes::from(workload::answer_body()),
            pieces: RwLock::default(),
        };
        canned.set_chunks(chunks);
        Arc::new(canned)
    }

    /// Streams from now on carry `chunks` content chunks.
    pub fn set_chunks(&self, chunks: usize) {
        let pieces = workload::stream_pieces(chunks)
            .into_iter()
            .map(Bytes::from)
            .collect();
        *self.pieces.write().expect("lock") = Arc::new(pieces);
    }
}

type Body = BoxBody<Bytes, Infallible>;

fn is_stream(body: &[u8]) -> bool {
    const NEEDLE: &[u8] = b"\"stream\":true";
    body.windows(NEEDLE.len()).any(|w| w == NEEDLE)
}

async fn answer(
    request: Request<Incoming>,
    canned: Arc<Canned>,
) -> Result<hyper::Response<Body>, Infallible> {
    let body = match request.into_body().collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let response = if is_stream(&body) {
        let pieces = canned.pieces.read().expect("lock").clone();
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            pieces.iter().map(|p| Ok(Frame::data(p.clone()))).collect();
        hyper::Response::builder()
            .header("content-type", "text/event-stream")
            .header("cache-control", "no-cache")
            .body(StreamBody::new(futures_util::stream::iter(frames)).boxed())
    } else {
        hyper::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(canned.answer.clone()).boxed())
    };
    Ok(response.expect("valid response"))
}

/// Serves the fake on `listener` until the runtime stops.
pub async fn serve(listener: TcpListener, canned: Arc<Canned>) {
    while let Ok((socket, _)) = listener.accept().await {
        let _ = socket.set_nodelay(true);
        let canned = canned.clone();
        tokio::spawn(async move {
            let service = service_fn(move |r| answer(r, canned.clone()));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}

/// Starts the fake on its own thread (a single-threaded runtime) and returns its address.
pub fn spawn(canned: Arc<Canned>) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("fake-upstream".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
                tx.send(listener.local_addr().expect("address"))
                    .expect("send");
                serve(listener, canned).await;
            });
        })
        .expect("spawn the fake");
    rx.recv().expect("the fake starts")
}

#[cfg(test)]
mod tests {
    #[test]
    fn streamed_requests_are_recognised() {
        assert!(super::is_stream(&crate::workload::chat_request_bytes(
            "m", true
        )));
        assert!(!super::is_stream(&crate::workload::chat_request_bytes(
            "m", false
        )));
    }
}
