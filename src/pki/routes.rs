//! Public PKI endpoints: the trust anchor, the chain, the CRL; and the certificate check for mTLS callers.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use super::crl;
use crate::standard::error::ApiError;
use crate::web::AppState;
use crate::web::client_cert::MtlsClient;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/pki/ca.pem", get(ca_pem))
        .route("/pki/chain.pem", get(chain_pem))
        .route("/pki/crl.pem", get(crl_pem))
        .route("/pki/client-certificate", get(client_certificate))
}

fn pem_response(body: String, content_type: &'static str, max_age: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(max_age));
    response
}

/// Public: the platform's root CA certificate, the trust anchor for the server and for client certificates.
async fn ca_pem(State(state): State<AppState>) -> Response {
    pem_response(state.authority.root_pem.clone(), "application/x-pem-file", "public, max-age=3600")
}

/// Public: the issuing CA followed by the root, for relying parties that want the full path.
async fn chain_pem(State(state): State<AppState>) -> Response {
    let body = format!("{}{}", state.authority.issuing_pem, state.authority.root_pem);
    pem_response(body, "application/x-pem-file", "public, max-age=3600")
}

/// Public: the current signed certificate revocation list (PEM).
async fn crl_pem(State(state): State<AppState>) -> Result<Response, ApiError> {
    let hours = state.config.pki.crl_validity_hours;
    let pem = crl::current(&state.db, state.authority.clone(), hours, state.clock.now())
        .await
        .map_err(|e| ApiError::internal(&e))?;
    Ok(pem_response(pem, "application/x-pem-file", "public, max-age=300"))
}

/// mTLS: what the platform sees of the caller's certificate — lets a participant check its set-up. `ClientId` is
/// there when the certificate belongs to a registered application.
async fn client_certificate(MtlsClient { cert, application }: MtlsClient) -> Json<serde_json::Value> {
    let mut data = json!({
        "Subject": cert.subject,
        "SerialNumber": cert.serial,
        "Sha256Thumbprint": cert.sha256,
        "X5tS256": cert.x5t_s256,
        "NotAfter": cert.not_after,
        "Status": "Active",
    });
    if let Some(app) = application {
        data["ClientId"] = json!(app.client_id);
    }
    Json(json!({ "Data": data }))
}
