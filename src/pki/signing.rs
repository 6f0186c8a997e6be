//! The platform's JWS signing keys: ECDSA P-256 (ES256), private keys in `<data_dir>/pki/signing-<kid>.key` (0600),
//! public keys in the `signing_keys` table and published at `GET /.well-known/jwks.json`. The key id is the RFC 7638
//! thumbprint of the public key. Rotation makes a new key the signer; the old one stays published for a retention
//! period so that everything it signed still verifies. The endpoint is the authorization server's
//! (`oauth::jwks`); the keys and the [`Signer`] are the platform's, used by tokens, signed headers, webhooks and
//! snapshots alike.

use crate::digest::b64url;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use rcgen::KeyPair;
use rusqlite::{Connection, OptionalExtension, Transaction, params};
use rustls_pki_types::pem::PemObject;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::audit::{self, Event, Outcome};
use crate::clock;
use crate::config::Config;
use crate::digest::sha256;
use crate::pki::files;
use crate::pki::lifecycle::Actor;
use crate::store::{Db, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("signing key {0} is unusable: {1}")]
    Unusable(String, String),
    #[error("no active signing key: run `kopir init`")]
    NoActiveKey,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<rusqlite::Error> for KeyError {
    fn from(e: rusqlite::Error) -> Self {
        KeyError::Store(e.into())
    }
}

fn key_path(config: &Config, kid: &str) -> PathBuf {
    config.pki_dir().join(format!("signing-{kid}.key"))
}

/// The public JWK and RFC 7638 thumbprint (the key id) of a P-256 key.
fn public_jwk(key: &KeyPair) -> Result<(String, Value), KeyError> {
    let raw = key.public_key_raw();
    // Uncompressed SEC1 point: 0x04 || X (32 bytes) || Y (32 bytes).
    if raw.len() != 65 || raw[0] != 4 {
        return Err(KeyError::Unusable("new".into(), "not an uncompressed P-256 point".into()));
    }
    let (x, y) = (b64url(&raw[1..33]), b64url(&raw[33..65]));
    // RFC 7638: the required members in lexicographic order, no white space.
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    let kid = b64url(&sha256(canonical.as_bytes()));
    let jwk = json!({ "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "use": "sig", "alg": "ES256" });
    Ok((kid, jwk))
}

/// Makes a new key, writes its private half, records its public half (created `now`). Returns the key id.
fn create_key(config: &Config, tx: &Transaction, now: OffsetDateTime) -> Result<String, KeyError> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let (kid, jwk) = public_jwk(&key)?;
    let path = key_path(config, &kid);
    files::private_dir(&config.pki_dir()).map_err(|error| KeyError::File { path: config.pki_dir(), error })?;
    files::write_key(&path, &key.serialize_pem()).map_err(|error| KeyError::File { path, error })?;
    tx.execute(
        "INSERT INTO signing_keys (kid, alg, public_jwk, created_at) VALUES (?1, 'ES256', ?2, ?3)",
        params![kid, jwk.to_string(), clock::rfc3339(now)],
    )?;
    Ok(kid)
}

/// The key id of the key that signs now.
pub fn active_kid(conn: &Connection) -> rusqlite::Result<Option<String>> {
    conn.query_row(
        "SELECT kid FROM signing_keys WHERE retired_at IS NULL ORDER BY created_at DESC, kid LIMIT 1",
        [],
        |r| r.get(0),
    )
    .optional()
}

/// For `kopir init`: a first key when there is none. Returns the new key id, if one was made.
pub fn ensure_key(config: &Config, tx: &Transaction, now: OffsetDateTime) -> Result<Option<String>, KeyError> {
    if active_kid(tx)?.is_some() {
        return Ok(None);
    }
    create_key(config, tx, now).map(Some)
}

/// Makes a new signing key `now`; the current one retires and stays published for `retain_hours`.
pub async fn rotate(
    db: &Db,
    config: &Config,
    retain_hours: u32,
    actor: Actor,
    now: OffsetDateTime,
) -> Result<String, KeyError> {
    let config = config.clone();
    db.write(move |tx| -> Result<String, KeyError> {
        let old = active_kid(tx)?;
        let kid = create_key(&config, tx, now)?;
        if let Some(old) = &old {
            tx.execute(
                "UPDATE signing_keys SET retired_at = ?2, unpublish_at = ?3 WHERE kid = ?1",
                params![old, clock::rfc3339(now), clock::rfc3339(now + time::Duration::hours(retain_hours.into()))],
            )?;
        }
        audit::append(
            tx,
            &Event::new(&actor.name, "oauth.signing_key.rotated", Outcome::Success)
                .at(now)
                .object(format!("signing_key:{kid}"))
                .source(&actor.source)
                .detail(json!({ "retired": old, "retained_hours": retain_hours })),
        )?;
        Ok(kid)
    })
    .await
}

/// A row of `signing_keys`, for listings.
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: String,
    pub created_at: String,
    pub retired_at: Option<String>,
    pub unpublish_at: Option<String>,
}

pub fn list(conn: &Connection) -> rusqlite::Result<Vec<KeyInfo>> {
    let mut stmt = conn
        .prepare("SELECT kid, alg, created_at, retired_at, unpublish_at FROM signing_keys ORDER BY created_at, kid")?;
    let rows = stmt.query_map([], |r| {
        Ok(KeyInfo {
            kid: r.get(0)?,
            alg: r.get(1)?,
            created_at: r.get(2)?,
            retired_at: r.get(3)?,
            unpublish_at: r.get(4)?,
        })
    })?;
    rows.collect()
}

/// The published key set `now`: the active key and the retired ones still within their retention.
pub fn jwks(conn: &Connection, now: OffsetDateTime) -> rusqlite::Result<Value> {
    let mut stmt = conn.prepare(
        "SELECT public_jwk FROM signing_keys WHERE unpublish_at IS NULL OR unpublish_at > ?1 ORDER BY created_at DESC",
    )?;
    let keys: Vec<Value> = stmt
        .query_map([clock::rfc3339(now)], |r| r.get::<_, String>(0))?
        .filter_map(|row| row.ok().and_then(|text| serde_json::from_str(&text).ok()))
        .collect();
    Ok(json!({ "keys": keys }))
}

/// Signs with the active key. Private keys are read from disk once per key id and kept in memory.
#[derive(Clone)]
pub struct Signer {
    config: Arc<Config>,
    /// Parsed signing keys by key id: parsing a PKCS#8 key costs more than the signature itself, and the gateway
    /// signs a header for every call to a bank. (Why not `jsonwebtoken::encode`: version 11 parses the key again at
    /// every signature — measured with `kopir bench`, 6 % more of the gateway's CPU per request.)
    loaded: Arc<Mutex<HashMap<String, Arc<EcdsaKeyPair>>>>,
    /// The active key id and when it was read: re-read at most every [`ACTIVE_KEY_TTL`], so that signing on the
    /// hot path (a header per bank call) costs no database read, and a rotation takes effect within seconds.
    active: Arc<Mutex<Option<(String, std::time::Instant)>>>,
}

/// How long the active key id is trusted before it is read again.
const ACTIVE_KEY_TTL: std::time::Duration = std::time::Duration::from_secs(5);

impl Signer {
    pub fn new(config: Arc<Config>) -> Signer {
        Signer { config, loaded: Arc::new(Mutex::new(HashMap::new())), active: Arc::new(Mutex::new(None)) }
    }

    async fn active_kid(&self, db: &Db) -> Result<String, KeyError> {
        if let Ok(active) = self.active.lock()
            && let Some((kid, at)) = active.as_ref()
            && at.elapsed() < ACTIVE_KEY_TTL
        {
            return Ok(kid.clone());
        }
        let kid = db.read(|c| active_kid(c).map_err(StoreError::from)).await?.ok_or(KeyError::NoActiveKey)?;
        if let Ok(mut active) = self.active.lock() {
            *active = Some((kid.clone(), std::time::Instant::now()));
        }
        Ok(kid)
    }

    /// Signs `claims` as a compact JWS (RFC 7515) with the active key: ES256, `kid`, `typ` as given (e.g. `at+jwt`).
    pub async fn sign<T: Serialize>(&self, db: &Db, typ: &str, claims: &T) -> Result<String, KeyError> {
        let kid = self.active_kid(db).await?;
        let key = self.key(&kid)?;
        let unusable = |why: String| KeyError::Unusable(kid.clone(), why);
        let header = serde_json::to_vec(&json!({ "alg": "ES256", "kid": kid, "typ": typ }))
            .map_err(|e| unusable(e.to_string()))?;
        let payload = serde_json::to_vec(claims).map_err(|e| unusable(e.to_string()))?;
        let mut jws = format!("{}.{}", b64url(&header), b64url(&payload));
        let signature = key
            .sign(&aws_lc_rs::rand::SystemRandom::new(), jws.as_bytes())
            .map_err(|_| unusable("signing failed".into()))?;
        jws.push('.');
        jws.push_str(&b64url(signature.as_ref()));
        Ok(jws)
    }

    fn key(&self, kid: &str) -> Result<Arc<EcdsaKeyPair>, KeyError> {
        if let Ok(cache) = self.loaded.lock()
            && let Some(key) = cache.get(kid)
        {
            return Ok(key.clone());
        }
        let path = key_path(&self.config, kid);
        let pem = files::read_key(&path).map_err(|error| KeyError::File { path: path.clone(), error })?;
        let der = rustls_pki_types::PrivateKeyDer::from_pem_slice(pem.as_bytes())
            .map_err(|e| KeyError::Unusable(kid.to_string(), e.to_string()))?;
        // JWS ES256 wants the fixed-length r‖s signature, not ASN.1 (RFC 7518 §3.4).
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.secret_der())
            .map_err(|e| KeyError::Unusable(kid.to_string(), e.to_string()))?;
        let key = Arc::new(key);
        if let Ok(mut cache) = self.loaded.lock() {
            cache.insert(kid.to_string(), key.clone());
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    #[test]
    fn thumbprint_matches_rfc_7638_shape_and_is_stable() {
        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        let (kid, jwk) = public_jwk(&key).unwrap();
        let (again, _) = public_jwk(&key).unwrap();
        assert_eq!(kid, again);
        assert_eq!(kid.len(), 43);
        assert_eq!(jwk["kid"], kid.as_str());
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(b64url(&[0xfb, 0xff]), "-_8");
    }
}
