//! rustls set-up: TLS 1.3 and 1.2 only, rustls' modern AEAD suites, ALPN h2 + http/1.1, and client certificates
//! that are optional at the handshake and judged per connection right after it.
//!
//! Why judge after the handshake: a rejected certificate at the handshake gives the caller a bare TLS alert. A bank
//! integrating with the platform needs to read *why* (expired, wrong CA, revoked) in the standard error body, so the
//! handshake only proves possession of the key (the CertificateVerify signature is still checked), and the chain is
//! verified against the platform CA immediately afterwards. Routes that need a certificate accept only a verified
//! one (see `client_cert::MtlsClient`); nothing else can reach them.

use std::sync::{Arc, RwLock};

use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert, ServerConfig, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::client_cert::{CertProblem, ClientCert, PeerCert};
use crate::pki::{Authority, TlsIdentity};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// Verifies presented client certificates against the platform CA.
#[derive(Debug, Clone)]
pub struct ClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientVerifier {
    pub fn new(authority: &Authority) -> Result<ClientVerifier, TlsError> {
        let mut roots = RootCertStore::empty();
        roots.add(authority.root_der.clone())?;
        let inner = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .allow_unauthenticated()
        .build()?;
        Ok(ClientVerifier { inner })
    }

    /// Judges the certificate chain a client presented during the handshake.
    pub fn judge(&self, chain: Option<&[CertificateDer<'static>]>) -> PeerCert {
        let Some((end_entity, intermediates)) = chain.and_then(|c| c.split_first()) else {
            return PeerCert::Absent;
        };
        let Some(cert) = ClientCert::parse(end_entity) else {
            return PeerCert::Rejected { problem: CertProblem::Malformed, cert: None };
        };
        match self.inner.verify_client_cert(end_entity, intermediates, UnixTime::now()) {
            Ok(_) => PeerCert::Presented(cert),
            Err(error) => {
                let problem = match error {
                    rustls::Error::InvalidCertificate(CertificateError::Expired)
                    | rustls::Error::InvalidCertificate(CertificateError::ExpiredContext { .. }) => {
                        CertProblem::Expired
                    }
                    rustls::Error::InvalidCertificate(CertificateError::NotValidYet)
                    | rustls::Error::InvalidCertificate(CertificateError::NotValidYetContext { .. }) => {
                        CertProblem::NotYetValid
                    }
                    rustls::Error::InvalidCertificate(CertificateError::InvalidPurpose)
                    | rustls::Error::InvalidCertificate(CertificateError::InvalidPurposeContext { .. }) => {
                        CertProblem::WrongUsage
                    }
                    rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer)
                    | rustls::Error::InvalidCertificate(CertificateError::BadSignature) => CertProblem::Untrusted,
                    _ => CertProblem::Untrusted,
                };
                tracing::debug!(%error, serial = %cert.serial, "client certificate rejected");
                PeerCert::Rejected { problem, cert: Some(cert) }
            }
        }
    }
}

/// Accepts any client certificate at the handshake after checking the key-possession signature; the chain is
/// judged by [`ClientVerifier::judge`] once the handshake is done.
#[derive(Debug)]
struct DeferredVerifier {
    inner: Arc<dyn ClientCertVerifier>,
}

impl ClientCertVerifier for DeferredVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The server certificate, swappable while the server runs (`kopir ca renew-server`, then SIGHUP).
#[derive(Debug)]
pub struct ServerCert {
    current: RwLock<Arc<CertifiedKey>>,
}

impl ServerCert {
    pub fn new(identity: TlsIdentity) -> Result<Arc<ServerCert>, TlsError> {
        Ok(Arc::new(ServerCert { current: RwLock::new(Arc::new(certified(identity)?)) }))
    }

    /// Replaces the certificate for new handshakes; open connections keep theirs until they are retired.
    pub fn replace(&self, identity: TlsIdentity) -> Result<(), TlsError> {
        let next = Arc::new(certified(identity)?);
        if let Ok(mut current) = self.current.write() {
            *current = next;
        }
        Ok(())
    }
}

fn certified(identity: TlsIdentity) -> Result<CertifiedKey, TlsError> {
    Ok(CertifiedKey::from_der(identity.chain, identity.key, &rustls::crypto::aws_lc_rs::default_provider())?)
}

impl ResolvesServerCert for ServerCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| c.clone())
    }
}

/// The server's rustls configuration.
pub fn server_config(cert: Arc<ServerCert>, verifier: &ClientVerifier) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(DeferredVerifier { inner: verifier.inner.clone() }))
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
