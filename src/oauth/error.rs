//! Errors of the OAuth endpoints (PAR, token, revocation, introspection) in the RFC 6749 §5.2 shape
//! `{"error","error_description"}` that every OAuth client library reads — not the Open Banking error body.

use axum::Json;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::apps::client::ApiClient;
use crate::web::AppState;

#[derive(Debug, Clone)]
pub struct OauthError {
    pub status: StatusCode,
    /// The RFC 6749 / RFC 9126 error code, e.g. `invalid_grant`.
    pub error: &'static str,
    pub description: String,
}

impl OauthError {
    pub fn new(status: StatusCode, error: &'static str, description: impl Into<String>) -> OauthError {
        OauthError { status, error, description: description.into() }
    }

    pub fn invalid_request(description: impl Into<String>) -> OauthError {
        OauthError::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_grant(description: impl Into<String>) -> OauthError {
        OauthError::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    pub fn invalid_client(description: impl Into<String>) -> OauthError {
        OauthError::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn server_error(cause: &dyn std::fmt::Display) -> OauthError {
        tracing::error!(error = %cause, "OAuth request failed");
        OauthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            format!(
                "The platform could not complete the request; quote request id {} to the operator",
                crate::web::request_id::current().unwrap_or_default()
            ),
        )
    }
}

impl IntoResponse for OauthError {
    fn into_response(self) -> Response {
        // A last guard: whatever a description quotes, the answer stays short.
        let description = crate::standard::error::truncate(&self.description, 500);
        let mut response =
            (self.status, Json(json!({ "error": self.error, "error_description": description }))).into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A client of the authorization server: authenticated by its application's platform-issued certificate
/// (`tls_client_auth`, RFC 8705), the application an accredited API user's. Any failure is `invalid_client`.
pub struct OauthClient(pub ApiClient);

impl FromRequestParts<AppState> for OauthClient {
    type Rejection = OauthError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let client =
            ApiClient::from_request_parts(parts, state).await.map_err(|e| OauthError::invalid_client(e.message))?;
        client.require_api_user().map_err(|e| OauthError::invalid_client(e.message))?;
        Ok(OauthClient(client))
    }
}

/// The parameters of a form body (`application/x-www-form-urlencoded`), each at most once (RFC 6749 §3.1).
pub struct Params(Vec<(String, String)>);

impl Params {
    pub fn parse(headers: &axum::http::HeaderMap, body: &[u8]) -> Result<Params, OauthError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| m.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !is_form {
            return Err(OauthError::invalid_request("The body must be application/x-www-form-urlencoded"));
        }
        let mut params: Vec<(String, String)> = Vec::new();
        for (name, value) in form_urlencoded::parse(body) {
            if params.iter().any(|(n, _)| *n == name) {
                let name = crate::standard::error::quote(&name);
                return Err(OauthError::invalid_request(format!("Parameter {name} is repeated")));
            }
            params.push((name.into_owned(), value.into_owned()));
        }
        Ok(Params(params))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
    }

    pub fn require(&self, name: &str) -> Result<&str, OauthError> {
        self.get(name).ok_or_else(|| OauthError::invalid_request(format!("Parameter {name} is missing")))
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(n, _)| n == name)
    }

    /// RFC 8705 §2.1: a `client_id` that is sent must name the application of the certificate.
    pub fn check_client_id(&self, client: &ApiClient) -> Result<(), OauthError> {
        match self.get("client_id") {
            Some(id) if client.app.client_id == id => Ok(()),
            Some(_) => Err(OauthError::invalid_client("client_id does not match the client certificate")),
            None => Ok(()),
        }
    }
}
