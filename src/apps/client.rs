//! `ApiClient`: a caller over mutual TLS whose certificate belongs to a registered application — the application
//! and its organisation read alongside, so routes can judge the kind of application and the accreditation.

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;

use super::{AppKind, Application};
use crate::participants::{OrgStatus, Organisation};
use crate::store::StoreError;
use crate::web::AppState;
use crate::web::client_cert::{ClientCert, MtlsClient};
use crate::web::error::{ApiError, ObErrorCode};

#[derive(Debug, Clone)]
pub struct ApiClient {
    pub cert: ClientCert,
    pub app: Application,
    pub organisation: Organisation,
}

impl ApiClient {
    /// An API user's application whose organisation is accredited as an API user.
    pub fn require_api_user(&self) -> Result<(), ApiError> {
        if self.app.kind != AppKind::ApiUser {
            return Err(forbidden("Only an API user's application may call this endpoint"));
        }
        if self.organisation.status != OrgStatus::Accredited || !self.organisation.is_user {
            return Err(forbidden("The participant is not accredited as an API user"));
        }
        Ok(())
    }
}

pub fn forbidden(message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, ObErrorCode::ResourceConsentMismatch, message)
}

impl FromRequestParts<AppState> for ApiClient {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let client = MtlsClient::from_request_parts(parts, state).await?;
        let Some(app_ref) = client.application else {
            return Err(forbidden("This endpoint is for participants' applications; the certificate belongs to none"));
        };
        let found = state
            .db
            .read(move |c| -> Result<_, StoreError> {
                let app = super::by_id_for_organisation(c, app_ref.organisation_id, app_ref.id)?;
                let org = crate::participants::organisation(c, app_ref.organisation_id)?;
                Ok(app.zip(org))
            })
            .await
            .map_err(|e| ApiError::internal(&e))?;
        let (app, organisation) = found.ok_or_else(|| ApiError::internal(&"certificate of a missing application"))?;
        Ok(ApiClient { cert: client.cert, app, organisation })
    }
}
