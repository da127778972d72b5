//! The bare byte-forwarding proxy: the floor for any HTTP hop. hyper's server in front
//! of hyper's pooled client; request and response bodies are forwarded frame by frame,
//! untouched. It runs as its own process (`bench proxy`) so that, like the host, it can
//! be pinned and its CPU time read.

use std::net::SocketAddr;

use hyper::{body::Incoming, server::conn::http1, service::service_fn, Request, Uri};
use hyper_util::{
    client::legacy::{connect::HttpConnector, Client},
    rt::{TokioExecutor, TokioIo},
};
use tokio::net::TcpListener;

/// Forwards every request received on `listen` to `upstream`, until killed.
pub async fn run(listen: SocketAddr, upstream: SocketAddr) -> std::io::Result<()> {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Incoming> = Client::builder(TokioExecutor::new()).build(connector);
    let listener = TcpListener::bind(listen).await?;
    loop {
        let (socket, _) = listener.accept().await?;
        let _ = socket.set_nodelay(true);
        let client = client.clone();
        tokio::spawn(async move {
            let service = service_fn(move |mut request: Request<Incoming>| {
                let client = client.clone();
                async move {
                    let path = request.uri().path_and_query().map_or("/", |p| p.as_str());
                    *request.uri_mut() = Uri::try_from(format!("http://{upstream}{path}"))
                        .expect("a valid upstream URI");
                    client.request(request).await
                }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(socket), service)
                .await;
        });
    }
}
