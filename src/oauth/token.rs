//! The token endpoint (authorization code with PKCE S256, refresh token), revocation (RFC 7009) and introspection
//! (RFC 7662). All over mutual TLS; the caller is the application its certificate belongs to (`tls_client_auth`).
//!
//! Codes are single-use and short-lived; a second use of a code revokes what the first one gave (RFC 6749 §4.1.2).
//! Refresh tokens are bound to the application and the certificate, live no longer than the consent and are not
//! rotated (FAPI 2.0 §5.3.2.1). Every grant reads the consent live: revoked or expired means no token.

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use rusqlite::{OptionalExtension, Transaction, params};
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::access::{self, AccessClaims};
use super::error::{OauthClient, OauthError, Params};
use super::metadata::{INTROSPECT, REVOKE, TOKEN};
use super::requests::{self, RequestStatus};
use crate::apps::client::ApiClient;
use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::consent;
use crate::digest::{constant_time_eq, sha256, sha256_hex};
use crate::store::StoreError;
use crate::web::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route(TOKEN, post(token)).route(REVOKE, post(revoke)).route(INTROSPECT, post(introspect))
}

/// What a grant came to, decided in its write transaction (a refusal may be journalled there too).
enum Grant {
    Issued(AccessClaims),
    Refused(OauthError),
}

impl Grant {
    fn into_result(self) -> Result<AccessClaims, OauthError> {
        match self {
            Grant::Issued(claims) => Ok(claims),
            Grant::Refused(e) => Err(e),
        }
    }
}

fn no_store(body: Value) -> Response {
    let mut response = Json(body).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Marks every unrevoked refresh and access token issued under a consent revoked — only those of one application
/// when it is given, `now`. (Tokens are also judged against the consent live; this makes the record say so too.)
pub fn revoke_for_consent(
    tx: &Transaction,
    consent_id: &str,
    application_id: Option<i64>,
    now: OffsetDateTime,
) -> rusqlite::Result<()> {
    let now = clock::rfc3339(now);
    for table in ["refresh_tokens", "access_tokens"] {
        // The table name is one of two literals, never input.
        tx.execute(
            &format!(
                "UPDATE {table} SET revoked_at = ?3 WHERE consent_id = ?1 AND (?2 IS NULL OR application_id = ?2)
                 AND revoked_at IS NULL"
            ),
            params![consent_id, application_id, now],
        )?;
    }
    Ok(())
}

/// Who may call: an accredited API user's application, authenticated by its certificate.
async fn token(
    State(state): State<AppState>,
    OauthClient(client): OauthClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OauthError> {
    let params = Params::parse(&headers, &body)?;
    params.check_client_id(&client)?;
    match params.require("grant_type")? {
        "authorization_code" => authorization_code(&state, &client, &params).await,
        "refresh_token" => refresh(&state, &client, &params).await,
        _ => Err(OauthError::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            "grant_type must be authorization_code or refresh_token",
        )),
    }
}

/// RFC 7636 §4.6: BASE64URL(SHA256(verifier)) == challenge; a verifier is 43–128 unreserved characters.
fn pkce_matches(verifier: &str, challenge: &str) -> bool {
    let well_formed = (43..=128).contains(&verifier.len())
        && verifier.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
    well_formed && constant_time_eq(super::b64url(&sha256(verifier.as_bytes())).as_bytes(), challenge.as_bytes())
}

fn audit_grant(
    tx: &Transaction,
    client: &ApiClient,
    action: &str,
    outcome: Outcome,
    consent_id: &str,
    why: &str,
    now: OffsetDateTime,
) {
    let event = Event::new(format!("client:{}", client.app.client_id), action, outcome)
        .at(now)
        .object(format!("consent:{consent_id}"))
        .organisation(client.organisation.id.to_string())
        .source(&client.cert.serial)
        .detail(json!({ "reason": why }));
    if let Err(error) = audit::append(tx, &event) {
        tracing::error!(%error, "audit of a token grant failed");
    }
}

async fn authorization_code(state: &AppState, client: &ApiClient, params: &Params) -> Result<Response, OauthError> {
    let code = params.require("code")?.to_string();
    let redirect_uri = params.require("redirect_uri")?.to_string();
    let verifier = params.require("code_verifier")?.to_string();
    let code_hash = sha256_hex(code.as_bytes());
    let grant = state
        .db
        .read(move |c| requests::get_by_code(c, &code_hash).map_err(StoreError::from))
        .await
        .map_err(|e| OauthError::server_error(&e))?
        .ok_or_else(|| OauthError::invalid_grant("The authorization code is not valid"))?;
    if grant.application_id != client.app.id {
        return Err(OauthError::invalid_grant("The authorization code was issued to another client"));
    }
    if grant.status == RequestStatus::Redeemed {
        // A replayed code: whatever it gave may be in the wrong hands.
        let (consent_id, app_id, c) = (grant.consent_id.clone(), client.app.id, client.clone());
        let now = state.clock.now();
        state
            .db
            .write(move |tx| -> Result<(), StoreError> {
                revoke_for_consent(tx, &consent_id, Some(app_id), now)?;
                audit_grant(tx, &c, "oauth.code.replayed", Outcome::Denied, &consent_id, "code used twice", now);
                Ok(())
            })
            .await
            .map_err(|e| OauthError::server_error(&e))?;
        return Err(OauthError::invalid_grant("The authorization code was already used"));
    }
    if grant.status != RequestStatus::Approved {
        return Err(OauthError::invalid_grant("The authorization code is not valid"));
    }
    let moment = state.clock.now();
    let now = clock::rfc3339(moment);
    if grant.code_expires_at.as_deref().unwrap_or_default() <= now.as_str() {
        return Err(OauthError::invalid_grant("The authorization code has expired"));
    }
    if grant.redirect_uri != redirect_uri {
        return Err(OauthError::invalid_grant("redirect_uri differs from the authorization request"));
    }
    if !pkce_matches(&verifier, &grant.code_challenge) {
        return Err(OauthError::invalid_grant("code_verifier does not match the code_challenge"));
    }
    let (token, claims) = access::sign_for(state, &state.signer, &client.app, &grant.consent_id, &client.cert.x5t_s256)
        .await
        .map_err(|e| OauthError::server_error(&e))?;
    let refresh_token = crate::random::token();
    let (refresh_hash, c, request_id) = (sha256_hex(refresh_token.as_bytes()), client.clone(), grant.id);
    let issued = state
        .db
        .write(move |tx| -> Result<Grant, StoreError> {
            // Compare-and-set: of two racing redemptions, one wins.
            if !requests::redeem(tx, &request_id)? {
                return Ok(Grant::Refused(OauthError::invalid_grant("The authorization code was already used")));
            }
            let consent = consent::load(tx, &claims.consent_id)?;
            let Some(consent) = consent.filter(|c| c.is_live(&now)) else {
                return Ok(Grant::Refused(OauthError::invalid_grant("The consent is no longer authorised")));
            };
            access::record(tx, &claims, c.app.id, &c.cert.sha256)?;
            tx.execute(
                "INSERT INTO refresh_tokens (token_hash, application_id, consent_id, cert_sha256, scope, created_at,
                     expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    refresh_hash,
                    c.app.id,
                    consent.id,
                    c.cert.sha256,
                    claims.scope,
                    now,
                    // A refresh token lives no longer than its consent.
                    consent.expires_at
                ],
            )?;
            consent::touch(tx, &consent.id, moment)?;
            audit_grant(
                tx,
                &c,
                "oauth.token.issued",
                Outcome::Success,
                consent.id.as_str(),
                "authorization_code",
                moment,
            );
            Ok(Grant::Issued(claims))
        })
        .await
        .map_err(|e| OauthError::server_error(&e))?
        .into_result()?;
    Ok(no_store(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": issued.exp - issued.iat,
        "refresh_token": refresh_token,
        "scope": issued.scope,
        "consent_id": issued.consent_id,
    })))
}

async fn refresh(state: &AppState, client: &ApiClient, params: &Params) -> Result<Response, OauthError> {
    let refresh_hash = sha256_hex(params.require("refresh_token")?.as_bytes());
    let lookup = refresh_hash.clone();
    let row: Option<(i64, String, String, String, Option<String>)> = state
        .db
        .read(move |c| {
            c.query_row(
                "SELECT application_id, consent_id, cert_sha256, expires_at, revoked_at FROM refresh_tokens
                 WHERE token_hash = ?1",
                [lookup],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()
            .map_err(StoreError::from)
        })
        .await
        .map_err(|e| OauthError::server_error(&e))?;
    let Some((app_id, consent_id, cert, expires_at, revoked_at)) = row else {
        return Err(OauthError::invalid_grant("The refresh token is not valid"));
    };
    if app_id != client.app.id {
        return Err(OauthError::invalid_grant("The refresh token was issued to another client"));
    }
    if !constant_time_eq(cert.as_bytes(), client.cert.sha256.as_bytes()) {
        return Err(OauthError::invalid_grant("The refresh token is bound to another certificate"));
    }
    if revoked_at.is_some() {
        return Err(OauthError::invalid_grant("The refresh token has been revoked"));
    }
    let moment = state.clock.now();
    let now = clock::rfc3339(moment);
    if expires_at.as_str() <= now.as_str() {
        return Err(OauthError::invalid_grant("The refresh token has expired with its consent"));
    }
    let (token, claims) = access::sign_for(state, &state.signer, &client.app, &consent_id, &client.cert.x5t_s256)
        .await
        .map_err(|e| OauthError::server_error(&e))?;
    let c = client.clone();
    let issued = state
        .db
        .write(move |tx| -> Result<Grant, StoreError> {
            let consent = consent::load(tx, &claims.consent_id)?;
            let Some(consent) = consent.filter(|c| c.is_live(&now)) else {
                let why = "consent not live";
                audit_grant(tx, &c, "oauth.token.refused", Outcome::Denied, &claims.consent_id, why, moment);
                return Ok(Grant::Refused(OauthError::invalid_grant("The consent is no longer authorised")));
            };
            access::record(tx, &claims, c.app.id, &c.cert.sha256)?;
            consent::touch(tx, &consent.id, moment)?;
            Ok(Grant::Issued(claims))
        })
        .await
        .map_err(|e| OauthError::server_error(&e))?
        .into_result()?;
    Ok(no_store(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": issued.exp - issued.iat,
        "scope": issued.scope,
        "consent_id": issued.consent_id,
    })))
}

/// Who may call: an accredited API user's application. Revokes a refresh or access token of its own; anything else
/// is answered 200 all the same (RFC 7009 §2.2), so tokens cannot be probed. The consent goes on; to end it, the
/// application deletes the consent.
async fn revoke(
    State(state): State<AppState>,
    OauthClient(client): OauthClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OauthError> {
    let params = Params::parse(&headers, &body)?;
    params.check_client_id(&client)?;
    let token = params.require("token")?.to_string();
    let jti = access::verify(&state, &token).await.ok().map(|claims| claims.jti);
    let (app_id, hash, now) = (client.app.id, sha256_hex(token.as_bytes()), state.clock.now_rfc3339());
    state
        .db
        .write(move |tx| -> Result<(), StoreError> {
            tx.execute(
                "UPDATE refresh_tokens SET revoked_at = ?3 WHERE token_hash = ?1 AND application_id = ?2
                 AND revoked_at IS NULL",
                params![hash, app_id, now],
            )?;
            if let Some(jti) = jti {
                tx.execute(
                    "UPDATE access_tokens SET revoked_at = ?3 WHERE jti = ?1 AND application_id = ?2
                     AND revoked_at IS NULL",
                    params![jti, app_id, now],
                )?;
            }
            Ok(())
        })
        .await
        .map_err(|e| OauthError::server_error(&e))?;
    Ok(no_store(json!({})))
}

/// Who may call: an accredited API user's application, about its own tokens; for anything else the answer is
/// `{"active": false}`. Active means: ours, unexpired, unrevoked, and its consent authorised and unexpired now.
async fn introspect(
    State(state): State<AppState>,
    OauthClient(client): OauthClient,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, OauthError> {
    let params = Params::parse(&headers, &body)?;
    params.check_client_id(&client)?;
    let token = params.require("token")?.to_string();
    let inactive = || Ok(no_store(json!({ "active": false })));
    let now = state.clock.now_rfc3339();
    // `token_type_hint` is optional (RFC 7662 §2.1): both kinds are tried, access token first.
    let (claims, token_type) = match access::verify(&state, &token).await {
        Ok(claims) => (claims, "access_token"),
        Err(_) => {
            let hash = sha256_hex(token.as_bytes());
            let row: Option<(i64, String, String, String, Option<String>, String)> = state
                .db
                .read(move |c| {
                    c.query_row(
                        "SELECT application_id, consent_id, cert_sha256, expires_at, revoked_at, created_at
                         FROM refresh_tokens WHERE token_hash = ?1",
                        [hash],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)),
                    )
                    .optional()
                    .map_err(StoreError::from)
                })
                .await
                .map_err(|e| OauthError::server_error(&e))?;
            let Some((app_id, consent_id, cert, expires_at, revoked_at, created_at)) = row else { return inactive() };
            if app_id != client.app.id || revoked_at.is_some() || expires_at <= now {
                return inactive();
            }
            let unix = |s: &str| clock::parse(s).map(|t| t.unix_timestamp()).unwrap_or(0);
            let x5t = hex::decode(&cert).map(|d| super::b64url(&d)).unwrap_or_default();
            let claims = AccessClaims {
                iss: super::metadata::issuer(&state),
                sub: consent_id.clone(),
                aud: super::metadata::issuer(&state),
                client_id: client.app.client_id.clone(),
                scope: super::metadata::SCOPE.into(),
                consent_id,
                cnf: access::Confirmation { x5t_s256: x5t },
                iat: unix(&created_at),
                exp: unix(&expires_at),
                jti: String::new(),
                environment: None,
            };
            (claims, "refresh_token")
        }
    };
    if claims.client_id != client.app.client_id {
        return inactive();
    }
    let consent_id = claims.consent_id.clone();
    let consent = state
        .db
        .read(move |c| consent::load(c, &consent_id).map_err(StoreError::from))
        .await
        .map_err(|e| OauthError::server_error(&e))?;
    let Some(consent) = consent.filter(|c| c.is_live(&now)) else { return inactive() };
    let mut answer = json!({
        "active": true,
        "token_type": token_type,
        "client_id": claims.client_id,
        "scope": claims.scope,
        "sub": claims.sub,
        "aud": claims.aud,
        "iss": claims.iss,
        "iat": claims.iat,
        "exp": claims.exp,
        "consent_id": claims.consent_id,
        "cnf": { "x5t#S256": claims.cnf.x5t_s256 },
        // kopir: the consent's (its application's) environment, so a resource server keeps the sandbox apart.
        "kopir_env": consent.mode.as_str(),
    });
    if !claims.jti.is_empty() {
        answer["jti"] = json!(claims.jti);
    }
    Ok(no_store(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_s256_is_base64url_of_the_sha256() {
        let verifier = "dBjftJeZ4CK-A8J5hYFvnJbM6s1sHWz9G8Ey1Bv-pRtM";
        assert!(pkce_matches(verifier, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4"));
        assert!(!pkce_matches(verifier, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdAA"));
        assert!(
            !pkce_matches("short", &super::super::b64url(&sha256(b"short"))),
            "a verifier is 43 characters or more"
        );
    }
}
