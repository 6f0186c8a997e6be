//! Pushed authorization requests (RFC 9126), required for every authorization: the client sends the request over
//! mutual TLS and gets a one-time `request_uri` that lives `oauth.request_uri_secs` (under 600 s, FAPI 2.0).
//!
//! Parameters: `response_type=code`, `client_id`, `redirect_uri` (registered, exact), `scope=accounts`,
//! `code_challenge` + `code_challenge_method=S256`, optional `state`, and `consent_id` — the account-access consent
//! (in `AwaitingAuthorisation`, of this application) the customer is asked to authorise.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use super::error::{OauthClient, OauthError, Params};
use super::metadata::{PAR, SCOPE};
use super::requests::{self, NewRequest};
use crate::clock;
use crate::consent::{self, Status};
use crate::digest::sha256_hex;
use crate::store::StoreError;
use crate::web::AppState;

pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// What became of a push.
enum Pushed {
    Stored,
    /// The consent cannot be authorised through this request.
    Refused(OauthError),
}

impl Pushed {
    fn into_result(self) -> Result<(), OauthError> {
        match self {
            Pushed::Stored => Ok(()),
            Pushed::Refused(e) => Err(e),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route(PAR, post(push))
}

/// A PKCE S256 challenge is the base64url SHA-256 of the verifier: 43 characters.
fn challenge_acceptable(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Who may call: an accredited API user's application, authenticated by its certificate.
async fn push(
    State(state): State<AppState>,
    OauthClient(client): OauthClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OauthError> {
    let params = Params::parse(&headers, &body)?;
    params.check_client_id(&client)?;
    if params.get("client_id").is_none() {
        return Err(OauthError::invalid_request("Parameter client_id is missing"));
    }
    if params.has("request_uri") {
        return Err(OauthError::invalid_request("request_uri must not be pushed (RFC 9126 §2.1)"));
    }
    if params.has("request") {
        return Err(OauthError::new(
            StatusCode::BAD_REQUEST,
            "request_not_supported",
            "Signed request objects are not supported; push the parameters",
        ));
    }
    if params.require("response_type")? != "code" {
        return Err(OauthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_response_type",
            "response_type must be code",
        ));
    }
    let redirect_uri = params.require("redirect_uri")?.to_string();
    if !crate::apps::redirect_uri_registered(&client.app, &redirect_uri) {
        return Err(OauthError::invalid_request("redirect_uri is not registered for this application (exact match)"));
    }
    let scope = params.require("scope")?;
    if scope.split(' ').any(|s| s != SCOPE) {
        return Err(OauthError::new(StatusCode::BAD_REQUEST, "invalid_scope", format!("The only scope is {SCOPE}")));
    }
    if params.require("code_challenge_method")? != "S256" {
        return Err(OauthError::invalid_request("code_challenge_method must be S256"));
    }
    let challenge = params.require("code_challenge")?.to_string();
    if !challenge_acceptable(&challenge) {
        return Err(OauthError::invalid_request("code_challenge must be a base64url SHA-256 (43 characters)"));
    }
    let state_param = params.get("state").map(str::to_string);
    if state_param.as_ref().is_some_and(|s| s.len() > 512) {
        return Err(OauthError::invalid_request("state may be at most 512 characters"));
    }
    let consent_id = params.require("consent_id")?.to_string();

    let secret = crate::random::token();
    let request_uri = format!("{REQUEST_URI_PREFIX}{secret}");
    let lifetime = state.config.oauth.request_uri_secs;
    let now = state.clock.now();
    let new = NewRequest {
        request_uri_hash: sha256_hex(secret.as_bytes()),
        application_id: client.app.id,
        consent_id,
        redirect_uri,
        scope: SCOPE.to_string(),
        state: state_param,
        code_challenge: challenge,
        cert_sha256: client.cert.sha256.clone(),
    };
    state
        .db
        .write(move |tx| -> Result<Pushed, StoreError> {
            match consent::load(tx, &new.consent_id)? {
                Some(c) if c.application_id == new.application_id && c.status == Status::AwaitingAuthorisation => {
                    if c.expires_at <= clock::rfc3339(now) {
                        return Ok(Pushed::Refused(OauthError::invalid_request("The consent has expired")));
                    }
                }
                Some(c) if c.application_id == new.application_id => {
                    return Ok(Pushed::Refused(OauthError::invalid_request(format!(
                        "The consent is {}, not AwaitingAuthorisation",
                        c.status.as_str()
                    ))));
                }
                _ => {
                    return Ok(Pushed::Refused(OauthError::invalid_request("No such consent for this application")));
                }
            }
            requests::push(tx, &new, now, now + time::Duration::seconds(lifetime as i64))?;
            Ok(Pushed::Stored)
        })
        .await
        .map_err(|e| OauthError::server_error(&e))?
        .into_result()?;
    let mut response = (StatusCode::CREATED, axum::Json(json!({ "request_uri": request_uri, "expires_in": lifetime })))
        .into_response();
    response.headers_mut().insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_must_look_like_s256() {
        assert!(challenge_acceptable("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"));
        assert!(!challenge_acceptable("plain-verifier"));
        assert!(!challenge_acceptable("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw+cM"));
    }
}
