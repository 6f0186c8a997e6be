//! Access tokens: JWTs signed ES256 with the platform key, bound to the client certificate (`cnf.x5t#S256`,
//! RFC 8705), short-lived, carrying the consent id. Their `jti`s are recorded so that revocation (RFC 7009) and
//! introspection (RFC 7662) can judge them; the consent itself is always read live.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use super::metadata::issuer;
use crate::apps::ClientId;
use crate::clock;
use crate::pki::signing::Signer;
use crate::store::StoreError;
use crate::web::AppState;

pub const TOKEN_TYPE: &str = "at+jwt";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Confirmation {
    #[serde(rename = "x5t#S256")]
    pub x5t_s256: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    /// The consent the token acts under (a customer's identity never leaves the platform in a token).
    pub sub: String,
    pub aud: String,
    pub client_id: ClientId,
    pub scope: String,
    pub consent_id: String,
    pub cnf: Confirmation,
    pub iat: i64,
    pub exp: i64,
    pub jti: String,
    /// kopir: `sandbox` for a token of a sandbox application (test customers, the banks' sandboxes); absent for a
    /// production one. Informative: the gateway judges the application itself, never this claim.
    #[serde(rename = "kopir_env", default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
}

/// Signs a new access token for the consent and the certificate. The `jti` must be recorded in the same
/// transaction that gives the token out ([`record`]).
pub async fn sign(
    state: &AppState,
    signer: &Signer,
    client_id: &ClientId,
    consent_id: &str,
    x5t_s256: &str,
) -> Result<(String, AccessClaims), crate::pki::signing::KeyError> {
    sign_with(state, signer, client_id, consent_id, x5t_s256, None).await
}

/// [`sign`] for an application: a sandbox application's token says so (`kopir_env`).
pub async fn sign_for(
    state: &AppState,
    signer: &Signer,
    app: &crate::apps::Application,
    consent_id: &str,
    x5t_s256: &str,
) -> Result<(String, AccessClaims), crate::pki::signing::KeyError> {
    let environment = app.mode.is_sandbox().then(|| app.mode.as_str().to_string());
    sign_with(state, signer, &app.client_id, consent_id, x5t_s256, environment).await
}

async fn sign_with(
    state: &AppState,
    signer: &Signer,
    client_id: &ClientId,
    consent_id: &str,
    x5t_s256: &str,
    environment: Option<String>,
) -> Result<(String, AccessClaims), crate::pki::signing::KeyError> {
    let now = state.clock.now().unix_timestamp();
    let claims = AccessClaims {
        iss: issuer(state),
        sub: consent_id.to_string(),
        aud: issuer(state),
        client_id: client_id.clone(),
        scope: super::metadata::SCOPE.to_string(),
        consent_id: consent_id.to_string(),
        cnf: Confirmation { x5t_s256: x5t_s256.to_string() },
        iat: now,
        exp: now + state.config.oauth.access_token_secs as i64,
        jti: crate::random::uuid_v4().to_string(),
        environment,
    };
    let token = signer.sign(&state.db, TOKEN_TYPE, &claims).await?;
    Ok((token, claims))
}

pub fn record(
    tx: &rusqlite::Transaction,
    claims: &AccessClaims,
    application_id: i64,
    cert_sha256: &str,
) -> rusqlite::Result<()> {
    // The token was signed `iat` (read from the platform's clock then): that is this record's now.
    // (Both times came from the platform's clock, so neither is out of range.)
    let time = |unix: i64| {
        time::OffsetDateTime::from_unix_timestamp(unix)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
    };
    let now = time(claims.iat)?;
    // Expired rows are of no use to anyone: keep the table small.
    tx.execute("DELETE FROM access_tokens WHERE expires_at < ?1", [clock::rfc3339(now - time::Duration::days(1))])?;
    tx.execute(
        "INSERT INTO access_tokens (jti, application_id, consent_id, cert_sha256, issued_at, expires_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            claims.jti,
            application_id,
            claims.consent_id,
            cert_sha256,
            clock::rfc3339(now),
            clock::rfc3339(time(claims.exp)?)
        ],
    )?;
    Ok(())
}

/// Why a presented access token is not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Invalid {
    /// Not a token of this platform, altered, or of an unknown key.
    Malformed,
    Expired,
    Revoked,
}

/// The key id in a platform access token's header (ES256, `at+jwt`), read before the signature is checked.
pub fn key_id(token: &str) -> Result<String, Invalid> {
    let header = jsonwebtoken::decode_header(token).map_err(|_| Invalid::Malformed)?;
    if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(TOKEN_TYPE) {
        return Err(Invalid::Malformed);
    }
    header.kid.ok_or(Invalid::Malformed)
}

/// The claims of a token signed with `key` by this `issuer` (also its audience), unexpired `now` (no leeway).
pub fn decode(token: &str, key: &DecodingKey, issuer: &str, now: OffsetDateTime) -> Result<AccessClaims, Invalid> {
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[issuer]);
    // Expiry is judged below on the platform's clock (the library would read the system's).
    validation.validate_exp = false;
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    let claims = jsonwebtoken::decode::<AccessClaims>(token, key, &validation).map_err(|_| Invalid::Malformed)?.claims;
    if claims.exp < now.unix_timestamp() {
        return Err(Invalid::Expired);
    }
    Ok(claims)
}

/// Checks signature, issuer, audience and expiry, and that the token was issued and not revoked. The certificate
/// binding and the consent are the caller's to check.
pub async fn verify(state: &AppState, token: &str) -> Result<AccessClaims, Invalid> {
    let kid = key_id(token)?;
    let key = state.gateway.keys.key(state, &kid).await.ok_or(Invalid::Malformed)?;
    let claims = decode(token, &key, &issuer(state), state.clock.now())?;
    let jti = claims.jti.clone();
    let row: Option<Option<String>> = state
        .db
        .read(move |c| {
            c.query_row("SELECT revoked_at FROM access_tokens WHERE jti = ?1", [jti], |r| r.get(0))
                .optional()
                .map_err(StoreError::from)
        })
        .await
        .map_err(|_| Invalid::Malformed)?;
    match row {
        None => Err(Invalid::Malformed),
        Some(Some(_)) => Err(Invalid::Revoked),
        Some(None) => Ok(claims),
    }
}
