//! `ApiClient`: a caller over mutual TLS whose certificate belongs to a registered application — the application
//! and its organisation read alongside, so routes can judge the kind of application and the accreditation.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{AppKind, AppMode, Application};
use crate::participants::{OrgStatus, Organisation};
use crate::pki::certs::{AppRef, CertCheck};
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::client_cert::{ClientCert, MtlsClient};

#[derive(Debug, Clone)]
pub struct ApiClient {
    pub cert: ClientCert,
    /// Shared, so that the gateway's remembered judgement hands them out without a copy.
    pub app: Arc<Application>,
    pub organisation: Arc<Organisation>,
}

impl ApiClient {
    /// An API user's application: in production mode its organisation must be accredited as an API user; a sandbox
    /// application's organisation need only be registered and in good standing (a suspended or revoked one never
    /// gets this far: its certificates are refused).
    pub fn require_api_user(&self) -> Result<(), ApiError> {
        if self.app.kind != AppKind::ApiUser {
            return Err(forbidden("Only an API user's application may call this endpoint"));
        }
        match self.app.mode {
            AppMode::Sandbox if !self.organisation.status.is_blocked() => Ok(()),
            AppMode::Sandbox => Err(forbidden("The participant is suspended or revoked")),
            AppMode::Production if self.organisation.status == OrgStatus::Accredited && self.organisation.is_user => {
                Ok(())
            }
            AppMode::Production => Err(forbidden("The participant is not accredited as an API user")),
        }
    }
}

pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ObErrorCode::ResourceConsentMismatch, message)
}

/// An application and its organisation, as read for a certificate.
pub type Found = (Arc<Application>, Arc<Organisation>);

impl ApiClient {
    /// The application and organisation behind an application's certificate, read on `conn`.
    pub fn load(conn: &rusqlite::Connection, app: &AppRef) -> rusqlite::Result<Option<Found>> {
        let application = super::by_id_for_organisation(conn, app.organisation_id, app.id)?;
        let organisation = crate::participants::organisation(conn, app.organisation_id)?;
        Ok(application.map(Arc::new).zip(organisation.map(Arc::new)))
    }

    /// Builds the client from a judged certificate and what [`ApiClient::load`] found.
    pub fn assemble(client: MtlsClient, found: Option<Found>) -> Result<ApiClient, ApiError> {
        if client.application.is_none() {
            return Err(forbidden("This endpoint is for participants' applications; the certificate belongs to none"));
        }
        let (app, organisation) = found.ok_or_else(|| ApiError::internal(&"certificate of a missing application"))?;
        Ok(ApiClient { cert: client.cert, app, organisation })
    }
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // One read: the certificate's record, its application and organisation.
        let (cert, peer) = MtlsClient::presented(parts)?;
        let (serial, fingerprint) = (cert.serial.clone(), cert.sha256.clone());
        let now = state.clock.now_rfc3339();
        let (verdict, found) = state
            .db
            .read(move |c| -> Result<_, StoreError> {
                let verdict = crate::pki::certs::check(c, &serial, &fingerprint, &now)?;
                let found = match &verdict {
                    CertCheck::Active(Some(app)) => ApiClient::load(c, app)?,
                    _ => None,
                };
                Ok((verdict, found))
            })
            .await
            .map_err(|e| ApiError::internal(&e))?;
        ApiClient::assemble(MtlsClient::judge(cert, peer, verdict)?, found)
    }
}
