//! Authorization server metadata (RFC 8414), served at both `/.well-known/openid-configuration` (where the
//! platform's contract says clients look) and `/.well-known/oauth-authorization-server`. Public.

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::web::AppState;

pub const AUTHORIZE: &str = "/oauth/authorize";
pub const PAR: &str = "/oauth/par";
pub const TOKEN: &str = "/oauth/token";
pub const REVOKE: &str = "/oauth/revoke";
pub const INTROSPECT: &str = "/oauth/introspect";
pub const JWKS: &str = "/.well-known/jwks.json";
/// The only scope: account information under a consent.
pub const SCOPE: &str = "accounts";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/.well-known/openid-configuration", get(document))
        .route("/.well-known/oauth-authorization-server", get(document))
}

/// The issuer identifier: the platform's public URL.
pub fn issuer(state: &AppState) -> String {
    state.public_url.to_string()
}

pub fn metadata(state: &AppState) -> Value {
    let url = |path: &str| state.url(path);
    json!({
        "issuer": issuer(state),
        "authorization_endpoint": url(AUTHORIZE),
        "pushed_authorization_request_endpoint": url(PAR),
        "require_pushed_authorization_requests": true,
        "token_endpoint": url(TOKEN),
        "revocation_endpoint": url(REVOKE),
        "introspection_endpoint": url(INTROSPECT),
        "jwks_uri": url(JWKS),
        // One listener serves browsers and mTLS clients alike; the aliases say where mTLS is expected (RFC 8705 §5).
        "mtls_endpoint_aliases": {
            "token_endpoint": url(TOKEN),
            "pushed_authorization_request_endpoint": url(PAR),
            "revocation_endpoint": url(REVOKE),
            "introspection_endpoint": url(INTROSPECT),
        },
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["tls_client_auth"],
        "revocation_endpoint_auth_methods_supported": ["tls_client_auth"],
        "introspection_endpoint_auth_methods_supported": ["tls_client_auth"],
        "tls_client_certificate_bound_access_tokens": true,
        "authorization_response_iss_parameter_supported": true,
        "access_token_signing_alg_values_supported": ["ES256"],
        "ui_locales_supported": ["en", "ru", "kk"],
        "kopir_consent_endpoint": url(crate::consent::api::BASE),
    })
}

async fn document(State(state): State<AppState>) -> Response {
    let mut response = Json(metadata(&state)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}
