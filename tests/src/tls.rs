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
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}
