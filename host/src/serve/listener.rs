//! The HTTP listener: serves connections up to a limit, bounds how long a client may
//! take to send its headers, and drains within a deadline on shutdown, so slow or
//! half-sent requests can neither hold the process open nor exhaust it.
//!
//! axum's own `serve` has none of these knobs; this is the same hyper connection
//! builder (HTTP/1 and HTTP/2) with them set.

use std::{future::Future, time::Duration};

use axum::{body::Body, extract::Request, Router};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
    sync::Semaphore,
};
use tower::ServiceExt;

use crate::config::ServerLimits;

/// The answer to a connection past `max_connections`, written without reading its
/// request (that is the work the limit saves).
fn busy() -> String {
    let body = r#"{"error":{"message":"the server is at its connection limit (server.max_connections)","type":"server_error","param":null,"code":"too_many_connections"}}"#;
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

/// Answers a connection past the limit with [`busy`] and closes it, spending at most
/// a second and a few kilobytes on it. The request head is read first: an HTTP client
/// takes an answer sent before its request for a broken connection. Then the rest is
/// read until the client closes, since closing with input unread resets the connection
/// and could cut the 503 short.
async fn refuse(mut tcp: tokio::net::TcpStream) {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while seen.len() < 16 * 1024 && !seen.windows(4).any(|w| w == b"\r\n\r\n") {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    let _ = tcp.write_all(busy().as_bytes()).await;
    let _ = tcp.shutdown().await;
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let mut left = 64 * 1024;
        while left > 0 {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    })
    .await;
}

/// Serves `app` on `listener` until `shutdown` resolves, within `limits`; then waits
/// for requests in flight at most `drain_timeout` and drops what is left.
pub async fn run(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let connections = std::sync::Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs_f64(limits.header_timeout));
    let mut refused: u64 = 0;
    tokio::pin!(shutdown);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Ok(permit) = connections.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    limit = limits.max_connections,
                    "connection limit reached (server.max_connections): new connections are answered 503 and closed"
                );
            }
            tokio::spawn(refuse(tcp));
            continue;
        };
        // Without TCP_NODELAY, Nagle holds each SSE event after the first until the
        // client's delayed ACK (~40 ms on Linux): every stream would stall once.
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            app.clone().oneshot(request.map(Body::new))
        });
        let connection = builder
            .serve_connection(TokioIo::new(tcp), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            let _ = connection.await;
            drop(permit);
        });
    }
    drop(listener);
    let drain = Duration::from_secs_f64(limits.drain_timeout);
    let open = graceful.count();
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = open,
            "requests still in flight after server.drain_timeout ({}s): dropping them",
            limits.drain_timeout
        );
    }
    Ok(())
}
