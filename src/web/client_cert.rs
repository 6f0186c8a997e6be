//! The client certificate of a connection, and `MtlsClient`, the extractor that makes a route require a verified,
//! registered, unrevoked certificate issued by the platform CA.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use rustls_pki_types::CertificateDer;
use serde::Serialize;

use super::AppState;
use crate::digest::sha256;
use crate::pki::certs::{self, AppRef, CertCheck};
use crate::standard::error::{ApiError, ObErrorCode};

/// What the platform knows of a presented certificate.
#[derive(Debug, Clone, Serialize)]
pub struct ClientCert {
    pub subject: String,
    /// Lower-case hex of the serial number's bytes (as `kopir ca list` shows it).
    pub serial: String,
    /// SHA-256 of the DER certificate, lower-case hex.
    pub sha256: String,
    /// The same thumbprint, base64url without padding: the `x5t#S256` of RFC 8705 token binding.
    pub x5t_s256: String,
    pub not_after: String,
}

impl ClientCert {
    pub fn parse(der: &CertificateDer<'_>) -> Option<ClientCert> {
        let (serial, subject, _, not_after) = crate::pki::describe(der.as_ref()).ok()?;
        let digest = sha256(der.as_ref());
        Some(ClientCert {
            subject,
            serial,
            sha256: hex::encode(digest),
            x5t_s256: crate::digest::b64url(&digest),
            not_after,
        })
    }
}

/// Why a presented certificate was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertProblem {
    Expired,
    NotYetValid,
    Untrusted,
    WrongUsage,
    Malformed,
}

impl CertProblem {
    fn message(self) -> &'static str {
        match self {
            CertProblem::Expired => "The client certificate has expired",
            CertProblem::NotYetValid => "The client certificate is not valid yet",
            CertProblem::Untrusted => "The client certificate was not issued by the platform certificate authority",
            CertProblem::WrongUsage => "The client certificate is not issued for client authentication",
            CertProblem::Malformed => "The client certificate cannot be parsed",
        }
    }
}

/// The outcome of judging a connection's client certificate, decided once per connection.
#[derive(Debug, Clone)]
pub enum PeerCert {
    Absent,
    Rejected { problem: CertProblem, cert: Option<ClientCert> },
    Presented(ClientCert),
}

/// Per-connection facts handed to every request on that connection.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    pub peer_addr: SocketAddr,
    pub peer_cert: PeerCert,
}

/// A caller authenticated by a client certificate that chains to the platform CA, is within its validity, was
/// issued by this platform (serial and fingerprint both on record), is not revoked nor retired after a rotation, and
/// whose application (if it belongs to one) is active and whose organisation is not suspended or revoked — checked on
/// every request, in one read, so a revocation, a disabled application or a suspension takes effect on the very next
/// one.
#[derive(Debug, Clone)]
pub struct MtlsClient {
    pub cert: ClientCert,
    /// The application the certificate was issued to; `None` for certificates from `kopir ca issue`.
    pub application: Option<AppRef>,
}

fn unauthorized(code: ObErrorCode, message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, code, message)
}

impl MtlsClient {
    /// The verified certificate of the request's connection, not yet judged against the records.
    pub fn presented(parts: &Parts) -> Result<(ClientCert, SocketAddr), ApiError> {
        let info = parts
            .extensions
            .get::<Arc<ConnectionInfo>>()
            .ok_or_else(|| ApiError::internal(&"request without connection information"))?;
        match &info.peer_cert {
            PeerCert::Absent => Err(unauthorized(
                ObErrorCode::HeaderMissing,
                "This endpoint requires mutual TLS with a client certificate issued by the platform",
            )),
            PeerCert::Rejected { problem, cert } => {
                tracing::warn!(
                    problem = ?problem,
                    serial = cert.as_ref().map(|c| c.serial.as_str()).unwrap_or("-"),
                    peer = %info.peer_addr,
                    "refused client certificate"
                );
                Err(unauthorized(ObErrorCode::SignatureInvalid, problem.message()))
            }
            PeerCert::Presented(cert) => Ok((cert.clone(), info.peer_addr)),
        }
    }

    /// Judges a presented certificate by its record (see [`certs::check`]).
    pub fn judge(cert: ClientCert, peer: SocketAddr, verdict: CertCheck) -> Result<MtlsClient, ApiError> {
        let refuse = |why: &str, message: &str| {
            tracing::warn!(serial = %cert.serial, %peer, why, "refused client certificate");
            Err(unauthorized(ObErrorCode::SignatureInvalid, message))
        };
        match verdict {
            CertCheck::Active(application) => Ok(MtlsClient { cert, application }),
            CertCheck::Revoked => refuse("revoked", "The client certificate has been revoked"),
            CertCheck::Unknown => refuse("unregistered", "The client certificate is not registered with the platform"),
            CertCheck::Retired => refuse(
                "retired",
                "The client certificate was replaced in a rotation and its grace period has ended; use the new one",
            ),
            CertCheck::ApplicationDisabled => {
                refuse("application disabled", "The application this client certificate belongs to is disabled")
            }
            CertCheck::OrganisationBlocked => refuse(
                "organisation blocked",
                "The participant this client certificate belongs to is suspended or revoked",
            ),
        }
    }
}

impl FromRequestParts<AppState> for MtlsClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (cert, peer) = MtlsClient::presented(parts)?;
        let now = state.clock.now_rfc3339();
        // The handshake judged the validity when the connection opened; the platform's time decides at each request
        // (a long-lived connection outlives a certificate that ends in the meantime).
        if cert.not_after.as_str() <= now.as_str() {
            tracing::warn!(serial = %cert.serial, %peer, "refused client certificate: expired since the handshake");
            return Err(unauthorized(ObErrorCode::SignatureInvalid, CertProblem::Expired.message()));
        }
        let (serial, fingerprint) = (cert.serial.clone(), cert.sha256.clone());
        let verdict = state
            .db
            .read(move |c| certs::check(c, &serial, &fingerprint, &now).map_err(crate::store::StoreError::from))
            .await
            .map_err(|e| ApiError::internal(&e))?;
        MtlsClient::judge(cert, peer, verdict)
    }
}
