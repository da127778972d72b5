//! The pooled HTTP client every upstream call goes through: hyper-util's client on a
//! connector of the host's own, which resolves names through the address guard, goes
//! through the configured proxy (if any) and speaks TLS with rustls and the platform's
//! certificate verifier, HTTP/2 where the server offers it by ALPN.
//!
//! Why not a higher-level client: the one the host used before parsed every request's
//! URL twice more on its own (for its redirect layer and for the response), about 8 µs
//! of CPU per request that bought nothing here, since the host follows no redirects
//! and keeps the URL it parsed itself.

use std::{
    error::Error as StdError,
    future::Future,
    io,
    net::SocketAddr,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{
    header::HeaderValue,
    rt::{Read, ReadBufCursor, Write},
    Uri,
};
use hyper_util::{
    client::legacy::{
        connect::{dns::Name, proxy::Tunnel, Connected, Connection, HttpConnector},
        Client,
    },
    rt::{TokioExecutor, TokioIo, TokioTimer},
};
use rustls::{
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    pki_types::{CertificateDer, ServerName, UnixTime},
    DigitallySignedStruct,
};
use tokio::net::TcpStream;
use tower::Service;

use super::guard::{refusal, Policy, Refused};

/// The client: pooled connections (idle ones closed after 90 s), bodies sent whole.
pub type HttpClient = Client<hyper_rustls::HttpsConnector<Connector>, Full<Bytes>>;

/// A client that connects under `policy`, within `connect_timeout`, through `proxy`
/// when one is configured (whose `CONNECT`s carry `proxy_auth`).
pub fn build(
    policy: Policy,
    connect_timeout: Duration,
    proxy: Option<Uri>,
    proxy_auth: Option<HeaderValue>,
    tls: rustls::ClientConfig,
) -> HttpClient {
    let mut tcp = HttpConnector::new_with_resolver(GuardedResolver { policy });
    tcp.set_connect_timeout(Some(connect_timeout));
    // Requests are written whole and answers are awaited: no reason to batch writes.
    tcp.set_nodelay(true);
    // The HTTPS wrapper below asks for `https` URLs too, to open the TCP side of them.
    tcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(Connector {
            tcp,
            proxy,
            proxy_auth,
        });
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(90))
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(connector)
}

/// TLS as a browser would verify it: the platform's verifier (the system's roots, or
/// those `SSL_CERT_FILE`/`SSL_CERT_DIR` name), TLS 1.2 and 1.3, aws-lc-rs for the
/// cryptography. A machine without any CA certificate (a bare container) still serves
/// plain-HTTP upstreams: its HTTPS calls fail, each saying why.
pub fn tls_config() -> rustls::ClientConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier: Arc<dyn ServerCertVerifier> = match rustls_platform_verifier::Verifier::new(
        provider.clone(),
    ) {
        Ok(verifier) => Arc::new(verifier),
        Err(error) => {
            tracing::warn!(%error, "no CA certificates to verify upstreams with: calls to https upstreams will fail (install the system's CA certificates or name a file of them in SSL_CERT_FILE)");
            Arc::new(NoRoots {
                why: error.to_string(),
                schemes: provider
                    .signature_verification_algorithms
                    .supported_schemes(),
            })
        }
    };
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("aws-lc-rs offers TLS 1.2 and 1.3")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth()
}

/// The verifier of a machine without CA certificates: it trusts no server.
#[derive(Debug)]
struct NoRoots {
    why: String,
    schemes: Vec<rustls::SignatureScheme>,
}

impl NoRoots {
    fn refusal(&self) -> rustls::Error {
        rustls::Error::General(format!(
            "no CA certificates to verify the upstream with ({}): install the system's CA certificates or name a file of them in SSL_CERT_FILE",
            self.why
        ))
    }
}

impl ServerCertVerifier for NoRoots {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Err(self.refusal())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.refusal())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(self.refusal())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.schemes.clone()
    }
}

/// A name resolver that refuses, after resolving, any name with an address the policy
/// forbids: a name that resolves (or re-resolves) to a private address is refused like
/// a literal one. The proxy's own name goes through it too.
#[derive(Debug, Clone, Copy)]
pub struct GuardedResolver {
    policy: Policy,
}

impl Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = self.policy;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            // Every address must pass: otherwise a name could mix a public and a private
            // address and let the connector pick the private one.
            if let Some((ip, why)) = addrs
                .iter()
                .find_map(|a| refusal(a.ip(), policy).map(|why| (a.ip(), why)))
            {
                return Err(Box::new(Refused { host, ip, why }) as Self::Error);
            }
            Ok(addrs.into_iter())
        })
    }
}

/// Opens the TCP side of a connection: to the target itself, or to the configured
/// proxy, which gets `http` requests in absolute form and carries `https` ones through
/// a `CONNECT` tunnel (TLS then runs end to end with the target, above this).
#[derive(Clone)]
pub struct Connector {
    tcp: HttpConnector<GuardedResolver>,
    proxy: Option<Uri>,
    proxy_auth: Option<HeaderValue>,
}

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = Box<dyn StdError + Send + Sync>;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.tcp.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, target: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        match self.proxy.clone() {
            None => Box::pin(async move {
                Ok(Conn {
                    io: tcp.call(target).await?,
                    proxied: false,
                })
            }),
            Some(proxy) if target.scheme_str() == Some("https") => {
                let mut tunnel = Tunnel::new(proxy, tcp);
                if let Some(auth) = self.proxy_auth.clone() {
                    tunnel = tunnel.with_auth(auth);
                }
                Box::pin(async move {
                    Ok(Conn {
                        io: tunnel.call(target).await?,
                        proxied: false,
                    })
                })
            }
            Some(proxy) => Box::pin(async move {
                Ok(Conn {
                    io: tcp.call(proxy).await?,
                    proxied: true,
                })
            }),
        }
    }
}

/// A TCP connection that knows whether it leads to a proxy (the client then writes
/// absolute-form request targets).
pub struct Conn {
    io: TokioIo<TcpStream>,
    proxied: bool,
}

impl Connection for Conn {
    fn connected(&self) -> Connected {
        self.io.connected().proxy(self.proxied)
    }
}

impl Read for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl Write for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt as _;

    #[tokio::test]
    async fn names_are_checked_after_resolution() {
        let localhost = || "localhost".parse::<Name>().unwrap();
        let resolver = GuardedResolver {
            policy: Policy::PublicOnly,
        };
        let error = resolver
            .oneshot(localhost())
            .await
            .expect_err("localhost is loopback");
        let refused = error.downcast_ref::<Refused>().expect("a guard refusal");
        assert!(refused.ip.is_loopback());
        let open = GuardedResolver {
            policy: Policy::AllowPrivate,
        };
        assert!(open.oneshot(localhost()).await.is_ok());
    }
}
