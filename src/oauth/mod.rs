//! The authorization server (FAPI 2.0 Security Profile): metadata, the platform's signing keys and JWKS, pushed
//! authorization requests, the authorize pages (customer identification and the consent screen), the token
//! endpoint, revocation and introspection. Client authentication everywhere is mutual TLS with the application's
//! platform-issued certificate, and tokens are bound to that certificate.

pub mod access;
pub mod authorize;
pub mod error;
pub mod jwks;
pub mod metadata;
pub mod par;
pub mod requests;
pub mod token;

use crate::digest::b64url;

use crate::web::AppState;

/// Removes what no one can use any more: authorization requests a week past their `request_uri` expiry (their
/// codes died long before), and customer journeys a day past their end.
pub fn purge_stale(tx: &rusqlite::Transaction, now: time::OffsetDateTime) -> rusqlite::Result<usize> {
    let requests = requests::purge(tx, now - time::Duration::days(7))?;
    let journeys = crate::trust::journey::purge(tx, now - time::Duration::days(1))?;
    Ok(requests + journeys)
}

/// Every route of the authorization server.
pub fn router() -> axum::Router<AppState> {
    axum::Router::new()
        .merge(jwks::router())
        .merge(metadata::router())
        .merge(par::router())
        .merge(authorize::router())
        .merge(token::router())
}
