//! Who may call the gateway, judged on every request: a verified, registered certificate of an active application
//! of an accredited API user (`ApiClient`), a bearer access token signed by the platform, unexpired and unrevoked,
//! bound to that very certificate and issued to that application, and its consent authorised and unexpired now —
//! with the banks it still names, each with the API the application is connected to. Everything after the
//! certificate check is one database read — or none: what that read found is kept in memory for the same
//! certificate and token while the store's [`Generation`] says nothing judged has changed (no certificate, application,
//! participant, token, consent, connection or API written, here or by the CLI), for at most [`JUDGEMENT_MAX_AGE`].
//! Time is judged again on every request (the token's and the consent's expiry, a rotated certificate's retirement).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use jsonwebtoken::DecodingKey;
use rusqlite::{Connection, OptionalExtension};

use crate::apps::AppMode;
use crate::apps::client::ApiClient;
use crate::catalog::ApiStatus;
use crate::consent::{self, Consent};
use crate::digest::constant_time_eq;
use crate::oauth::access::{self, AccessClaims};
use crate::pki::certs::CertCheck;
use crate::standard::error::{ApiError, ObErrorCode};
use crate::store::{Generation, StoreError};
use crate::web::AppState;
use crate::web::client_cert::MtlsClient;

/// A bank of the consent and the API through which the application reaches it.
#[derive(Debug, Clone)]
pub struct Route {
    pub provider: i64,
    pub bin: String,
    pub name: String,
    /// `None` when the application is no longer connected to a published API of this bank.
    pub api: Option<ConnectedApi>,
}

#[derive(Debug, Clone)]
pub struct ConnectedApi {
    pub id: i64,
    /// The API's production base URL, or its sandbox base URL for a sandbox application (empty when it has none).
    pub base_url: String,
    pub timeout_ms: u64,
    /// Taken off the marketplace by the sandbox's checks or the operator: its calls are refused with 503.
    pub delisted: bool,
}

/// A request the gateway may serve.
#[derive(Debug, Clone)]
pub struct Grant {
    pub client: ApiClient,
    /// Shared with the judgement kept in memory: cloning a grant clones no consent.
    pub consent: Arc<Consent>,
    pub customer_iin: Arc<str>,
    pub routes: Arc<[Route]>,
}

impl Grant {
    pub fn route(&self, provider: i64) -> Option<&Route> {
        self.routes.iter().find(|r| r.provider == provider)
    }
}

/// Verification keys by key id, read once from `signing_keys` (a key never changes; retired ones stay valid for
/// what they signed until unpublished, and tokens live minutes).
#[derive(Default)]
pub struct KeyCache {
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Tokens whose signature, issuer and audience were verified, with their claims: an API user presents the same
    /// token for minutes, and an ECDSA verification per request is the costliest part of the check. Expiry and
    /// revocation are still judged on every request.
    verified: RwLock<HashMap<String, Arc<AccessClaims>>>,
}

/// Verified tokens remembered at most; the memory is cleared when full (tokens live minutes).
const VERIFIED_MAX: usize = 50_000;

/// How long a judgement is kept at most, even when nothing judged has changed: a bound on what a change made behind
/// the platform's back (an administrator's `sqlite3`) could leave unnoticed.
pub const JUDGEMENT_MAX_AGE: Duration = Duration::from_secs(1);

/// What the one read found for a certificate and a token.
#[derive(Clone)]
struct Judged {
    verdict: CertCheck,
    found: Option<crate::apps::client::Found>,
    grant: Option<Found>,
    /// When a certificate replaced in a rotation stops being accepted.
    retire_at: Option<String>,
}

struct Remembered {
    generation: Generation,
    at: Instant,
    judged: Arc<Judged>,
}

/// Judgements by (certificate fingerprint, token id); see the module's description.
#[derive(Default)]
pub struct Judgements {
    entries: RwLock<HashMap<(String, String), Remembered>>,
}

impl Judgements {
    fn get(&self, key: &(String, String), generation: Generation, now: &str) -> Option<Arc<Judged>> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        let fresh = entry.generation == generation
            && entry.at.elapsed() < JUDGEMENT_MAX_AGE
            && entry.judged.retire_at.as_deref().is_none_or(|retire_at| retire_at > now);
        fresh.then(|| entry.judged.clone())
    }

    fn put(&self, key: (String, String), generation: Generation, judged: Arc<Judged>) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= VERIFIED_MAX {
                entries.retain(|_, e| e.generation == generation && e.at.elapsed() < JUDGEMENT_MAX_AGE);
            }
            entries.insert(key, Remembered { generation, at: Instant::now(), judged });
        }
    }
}

impl KeyCache {
    fn remembered(&self, token: &str) -> Option<Arc<AccessClaims>> {
        self.verified.read().ok()?.get(token).cloned()
    }

    fn remember(&self, token: &str, claims: &Arc<AccessClaims>) {
        if let Ok(mut verified) = self.verified.write() {
            if verified.len() >= VERIFIED_MAX {
                verified.clear();
            }
            verified.insert(token.to_string(), claims.clone());
        }
    }
}

impl KeyCache {
    pub async fn key(&self, state: &AppState, kid: &str) -> Option<DecodingKey> {
        if let Ok(keys) = self.keys.read()
            && let Some(key) = keys.get(kid)
        {
            return Some(key.clone());
        }
        let wanted = kid.to_string();
        let text: Option<String> = state
            .db
            .read(move |c| {
                c.query_row("SELECT public_jwk FROM signing_keys WHERE kid = ?1", [wanted], |r| r.get(0))
                    .optional()
                    .map_err(StoreError::from)
            })
            .await
            .ok()
            .flatten();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&text?).ok()?;
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        if let Ok(mut keys) = self.keys.write() {
            keys.insert(kid.to_string(), key.clone());
        }
        Some(key)
    }
}

fn unauthorised(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ObErrorCode::Reauthenticate, message)
}

fn forbidden(code: ObErrorCode, message: &str) -> ApiError {
    ApiError::new(StatusCode::FORBIDDEN, code, message)
}

/// The signature, issuer, audience and expiry of a bearer token.
async fn claims(state: &AppState, token: &str) -> Result<Arc<AccessClaims>, ApiError> {
    if let Some(claims) = state.gateway.keys.remembered(token) {
        if claims.exp <= state.clock.now().unix_timestamp() {
            return Err(unauthorised("The access token has expired; refresh it"));
        }
        return Ok(claims);
    }
    let invalid = |e: access::Invalid| match e {
        access::Invalid::Expired => unauthorised("The access token has expired; refresh it"),
        _ => unauthorised("The access token is not valid"),
    };
    let kid = access::key_id(token).map_err(invalid)?;
    let key = state.gateway.keys.key(state, &kid).await.ok_or_else(|| unauthorised("The access token is not valid"))?;
    let claims = Arc::new(
        access::decode(token, &key, &crate::oauth::metadata::issuer(state), state.clock.now()).map_err(invalid)?,
    );
    state.gateway.keys.remember(token, &claims);
    Ok(claims)
}

/// What the one read finds.
#[derive(Clone)]
enum Found {
    NoConsent,
    Grant(Box<Read>),
}

#[derive(Clone)]
struct Read {
    consent: Arc<Consent>,
    iin: Arc<str>,
    routes: Arc<[Route]>,
    /// The token's own record: unknown or revoked. A consent that ended also revoked its tokens; its own status
    /// says more, so it is judged first.
    token_revoked: bool,
}

fn read_grant(
    conn: &Connection,
    jti: &str,
    consent_id: &str,
    application_id: i64,
    mode: AppMode,
) -> rusqlite::Result<Found> {
    let revoked: Option<Option<String>> = conn
        .prepare_cached("SELECT revoked_at FROM access_tokens WHERE jti = ?1")?
        .query_row([jti], |r| r.get(0))
        .optional()?;
    let Some(consent) = consent::load(conn, consent_id)? else { return Ok(Found::NoConsent) };
    let Some(customer_id) = consent.customer_id else { return Ok(Found::NoConsent) };
    let iin: String =
        conn.prepare_cached("SELECT iin FROM customers WHERE id = ?1")?.query_row([customer_id], |r| r.get(0))?;
    let mut routes = Vec::new();
    for provider in consent.active_providers() {
        let api =
            crate::catalog::connected_api(conn, application_id, provider.organisation_id)?.map(|api| ConnectedApi {
                id: api.api_id,
                base_url: if mode.is_sandbox() { api.sandbox_base_url } else { api.production_base_url },
                timeout_ms: api.timeout_ms.max(1) as u64,
                delisted: api.status == ApiStatus::Suspended,
            });
        routes.push(Route {
            provider: provider.organisation_id,
            bin: provider.bin.clone(),
            name: provider.name.clone(),
            api,
        });
    }
    let token_revoked = !matches!(revoked, Some(None));
    Ok(Found::Grant(Box::new(Read {
        consent: Arc::new(consent),
        iin: iin.into(),
        routes: routes.into(),
        token_revoked,
    })))
}

impl FromRequestParts<AppState> for Grant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let (cert, peer) = MtlsClient::presented(parts)?;
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
            .map(str::trim)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    ObErrorCode::HeaderMissing,
                    "An access token is required: Authorization: Bearer <token>",
                )
                .at("Authorization")
            })?
            .to_string();
        let claims = claims(state, &token).await?;
        // RFC 8705 §3: the token works only with the certificate it was issued to.
        if !constant_time_eq(claims.cnf.x5t_s256.as_bytes(), cert.x5t_s256.as_bytes()) {
            return Err(unauthorised("The access token is bound to another certificate"));
        }
        // One read for everything else: the certificate's record, application, organisation, token and consent —
        // unless the same read was made a moment ago and nothing it depends on has changed since.
        let now = state.clock.now_rfc3339();
        let key = (cert.sha256.clone(), claims.jti.clone());
        let generation = state.db.generation();
        let judged = match state.gateway.judgements.get(&key, generation, &now) {
            Some(judged) => judged,
            None => {
                let judged = Arc::new(judge(state, &cert.serial, &cert.sha256, &claims, &now).await?);
                state.gateway.judgements.put(key, generation, judged.clone());
                judged
            }
        };
        let Judged { verdict, found, grant, .. } = (*judged).clone();
        let client = ApiClient::assemble(MtlsClient::judge(cert, peer, verdict)?, found)?;
        client.require_api_user()?;
        if claims.client_id != client.app.client_id {
            return Err(unauthorised("The access token was issued to another application"));
        }
        match grant {
            None | Some(Found::NoConsent) => {
                Err(forbidden(ObErrorCode::ResourceInvalidConsentStatus, "The consent is not authorised"))
            }
            Some(Found::Grant(read)) => {
                let Read { consent, iin, routes, token_revoked } = *read;
                if consent.application_id != client.app.id {
                    return Err(forbidden(
                        ObErrorCode::ResourceConsentMismatch,
                        "The consent belongs to another application",
                    ));
                }
                if !consent.is_live(&now) {
                    let message = match consent.status {
                        consent::Status::Authorised => "The consent has expired",
                        consent::Status::Revoked => "The consent has been revoked",
                        consent::Status::Expired => "The consent has expired",
                        _ => "The consent is not authorised",
                    };
                    return Err(forbidden(ObErrorCode::ResourceInvalidConsentStatus, message));
                }
                if token_revoked {
                    return Err(unauthorised("The access token has been revoked"));
                }
                Ok(Grant { client, consent, customer_iin: iin, routes })
            }
        }
    }
}

/// The one read: the certificate's record, its application and organisation, the token's record and the consent.
async fn judge(
    state: &AppState,
    serial: &str,
    sha256: &str,
    claims: &AccessClaims,
    now: &str,
) -> Result<Judged, ApiError> {
    let (serial, fingerprint, now) = (serial.to_string(), sha256.to_string(), now.to_string());
    let (jti, consent_id) = (claims.jti.clone(), claims.consent_id.clone());
    state
        .db
        .read(move |c| -> Result<_, StoreError> {
            // One read transaction: one snapshot, and one round of file locks instead of one per statement.
            let tx = c.unchecked_transaction()?;
            let c = &*tx;
            let verdict = crate::pki::certs::check(c, &serial, &fingerprint, &now)?;
            let retire_at = crate::pki::certs::retire_at(c, &serial)?;
            let (found, grant) = match &verdict {
                CertCheck::Active(Some(app)) => match ApiClient::load(c, app)? {
                    Some((application, organisation)) => {
                        let grant = read_grant(c, &jti, &consent_id, app.id, application.mode)?;
                        (Some((application, organisation)), Some(grant))
                    }
                    None => (None, None),
                },
                _ => (None, None),
            };
            drop(tx);
            Ok(Judged { verdict, found, grant, retire_at })
        })
        .await
        .map_err(|e| ApiError::internal(&e))
}
