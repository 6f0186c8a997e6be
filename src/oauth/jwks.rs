//! `GET /.well-known/jwks.json`: the platform's signing keys ([`crate::pki::signing`]) as a JWK set.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};

use crate::pki::signing::jwks;
use crate::standard::error::ApiError;
use crate::store::StoreError;
use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/.well-known/jwks.json", get(jwks_document))
}

/// Public: the platform's signing keys, for anyone verifying tokens, signed headers or webhooks.
async fn jwks_document(State(state): State<AppState>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let set =
        state.db.read(move |c| jwks(c, now).map_err(StoreError::from)).await.map_err(|e| ApiError::internal(&e))?;
    let mut response = Json(set).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/jwk-set+json"));
    Ok(response)
}
