//! The bank's HTTPS listener: rustls requiring a client certificate that chains to the platform's root (anything
//! else is refused at the handshake, before a byte of HTTP), whether that certificate is the platform's own (its
//! certificate policy, `pki::PLATFORM_CLIENT_POLICY`) passed to the handlers, HTTP/1.1 with keep-alive or HTTP/2,
//! and a short drain on shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use rustls::RootCertStore;
use rustls::server::{ServerConfig, WebPkiClientVerifier};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;

use super::BankError;
use crate::pki::TlsIdentity;
use crate::web::client_cert::ConnectionInfo;
use crate::web::server::{ConnectionSetup, Limits, TlsConnection};

const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// TLS 1.3 and 1.2, the bank's certificate, the platform's root as the only client trust anchor.
pub fn tls_config(identity: TlsIdentity, platform_root_pem: &str) -> Result<Arc<ServerConfig>, BankError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(platform_root_pem.as_bytes()) {
        let cert = cert.map_err(|e| BankError::PlatformRoot(e.to_string()))?;
        roots.add(cert).map_err(|e| BankError::PlatformRoot(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(BankError::PlatformRoot("no certificate in the PEM".into()));
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| BankError::PlatformRoot(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain, identity.key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves until `shutdown` turns true, then lets open requests finish for a few seconds: the platform's accept loop
/// with the bank's fixed limits.
pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, router: Router, shutdown: watch::Receiver<bool>) {
    let limits = Limits {
        handshake_timeout: HANDSHAKE_TIMEOUT,
        // A bank's certificate check is the handshake's; nothing to re-judge on old connections.
        max_connection_age: Duration::from_secs(24 * 3600),
        shutdown_grace: SHUTDOWN_GRACE,
        // Longer than the gateway's pool keeps idle connections (90 s), so the client, not the bank, closes them and
        // no request races a closing connection. (hyper holds an idle HTTP/1.1 connection to the header time-out.)
        header_read_timeout: Duration::from_secs(120),
        idle_timeout: Duration::from_secs(300),
        graceful_close: SHUTDOWN_GRACE,
        max_connections: usize::MAX,
        max_connections_per_address: usize::MAX,
        http2_max_concurrent_streams: 256,
        max_header_bytes: 16 * 1024,
        max_body_bytes: 1024 * 1024,
    };
    crate::web::server::serve(listener, acceptor, BankConnections { router }, limits, shutdown).await;
}

/// The bank's connections: whether the caller is the platform goes into every request.
#[derive(Clone)]
struct BankConnections {
    router: Router,
}

impl ConnectionSetup for BankConnections {
    fn setup(&self, tls: &TlsConnection, _peer_addr: SocketAddr) -> (Router, Option<Arc<ConnectionInfo>>) {
        // The platform is recognised by the policy in its client certificate, not by the subject (which any
        // participant's certificate from the same CA may repeat); the handlers refuse everyone else.
        let caller = super::api::PlatformCaller(
            tls.get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .is_some_and(|leaf| crate::pki::is_platform_client(leaf.as_ref())),
        );
        (self.router.clone().layer(axum::Extension(caller)), None)
    }

    fn metered(&self) -> bool {
        false
    }
}
