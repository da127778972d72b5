//! TLS for fake upstreams: a test CA and a `localhost` certificate it signed, kept in
//! `tls/` (EC P-256, valid for a hundred years), plus an unrelated CA that signed
//! nothing here. The host trusts whatever CA file `SSL_CERT_FILE` names, so a test
//! points it at one of these to make its upstream trusted or not.
//!
//! Made with:
//!
//! ```sh
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!   -keyout ca.key -out ca.pem -days 36500 -subj "/CN=provider-host test CA" \
//!   -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
//! openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!   -keyout localhost.key -out leaf.csr -subj "/CN=localhost"
//! openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -out localhost.pem -days 36500 \
//!   -extfile leaf.ext  # CA:FALSE, digitalSignature, serverAuth, DNS:localhost
//! ```
//!
//! (`other-ca.pem` like `ca.pem`, with its own key; the CA keys were not kept.)

use tokio_rustls::rustls::{
    self,
    pki_types::{pem::PemObject, CertificateDer, PrivateKeyDer},
};

/// The test CA's certificate, PEM.
pub const CA: &str = include_str!("tls/ca.pem");

/// A CA that signed nothing the fakes use, PEM.
pub const OTHER_CA: &str = include_str!("tls/other-ca.pem");

const LOCALHOST_CERT: &str = include_str!("tls/localhost.pem");
const LOCALHOST_KEY: &str = include_str!("tls/localhost.key");

/// A server config for `localhost`, HTTP/1.1 offered by ALPN.
pub fn server_config() -> rustls::ServerConfig {
    server_config_for(&[b"http/1.1"])
}

/// A server config for `localhost` that offers `protocols` by ALPN, in that order.
fn server_config_for(protocols: &[&[u8]]) -> rustls::ServerConfig {
    let chain = CertificateDer::pem_slice_iter(LOCALHOST_CERT.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .expect("the test certificate parses");
    let key = PrivateKeyDer::from_pem_slice(LOCALHOST_KEY.as_bytes()).expect("the test key parses");
    let mut config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("TLS 1.2 and 1.3")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("the test certificate and key match");
    config.alpn_protocols = protocols.iter().map(|p| p.to_vec()).collect();
    config
}

/// An upstream that serves `router` over TLS as `localhost`, offering HTTP/2 first by
/// ALPN (as the large providers' servers do) and HTTP/1.1 after it. Returns its
/// `https://localhost:<port>`; it serves until the runtime ends.
pub async fn serve_h2(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind loopback");
    let port = listener.local_addr().expect("address").port();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(server_config_for(&[
        b"h2",
        b"http/1.1",
    ])));
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(socket).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    format!("https://localhost:{port}")
}
