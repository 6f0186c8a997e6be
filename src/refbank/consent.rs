//! The platform's signed consent header (`x-kopir-consent`), verified the way the standard asks every bank to: an
//! ES256 JWS of `typ` `kopir-consent+jwt` whose `kid` is in the platform's JWKS, issued by the platform, addressed to
//! this bank's BIN, unexpired.
//!
//! The JWKS is fetched once, kept in memory and fetched again only when a token names a key id it lacks (a key
//! rotation) — and then at most once every few seconds (later misses wait for the next fetch), so a stream of forged
//! key ids cannot make the bank hammer the platform.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use time::OffsetDateTime;

use crate::standard::{CONSENT_TYP, ConsentClaims, Scope};

/// The shortest pause between two fetches of the JWKS.
const REFETCH_PAUSE: Duration = Duration::from_secs(5);
/// Clock difference tolerated between the platform and the bank.
const LEEWAY_SECS: u64 = 30;

#[derive(Debug, thiserror::Error)]
pub enum ConsentError {
    #[error("the header is not a valid ES256 JWS of type {CONSENT_TYP}")]
    Malformed,
    #[error("the key {0} is not in the platform's JWKS")]
    UnknownKey(String),
    #[error("verification failed: {0}")]
    Invalid(String),
    #[error("the consent window is not RFC 3339: {0}")]
    Window(String),
}

/// A verified header: who the customer is, what the consent allows, and the transaction window (Unix seconds).
#[derive(Debug, Clone)]
pub struct Consent {
    pub claims: ConsentClaims,
    pub scope: Scope,
    pub from: Option<i64>,
    pub to: Option<i64>,
}

pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_url: String,
    client: reqwest::Client,
    keys: RwLock<HashMap<String, DecodingKey>>,
    /// Held while fetching (so concurrent misses wait for one fetch), with the time of the last fetch.
    fetching: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    pub fn new(platform_url: &str, bin: &str, client: reqwest::Client) -> Verifier {
        let issuer = platform_url.trim_end_matches('/').to_string();
        Verifier {
            jwks_url: format!("{issuer}/.well-known/jwks.json"),
            issuer,
            audience: bin.to_string(),
            client,
            keys: RwLock::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(None),
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Consent, ConsentError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| ConsentError::Malformed)?;
        if header.alg != Algorithm::ES256 || header.typ.as_deref() != Some(CONSENT_TYP) {
            return Err(ConsentError::Malformed);
        }
        let kid = header.kid.ok_or(ConsentError::Malformed)?;
        let key = match self.cached(&kid) {
            Some(key) => key,
            None => self.refresh(&kid).await?,
        };
        let mut validation = Validation::new(Algorithm::ES256);
        validation.set_issuer(&[self.issuer.as_str()]);
        validation.set_audience(&[self.audience.as_str()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        let claims = jsonwebtoken::decode::<ConsentClaims>(token, &key, &validation)
            .map_err(|e| ConsentError::Invalid(e.to_string()))?
            .claims;
        let parse = |t: &Option<String>| -> Result<Option<i64>, ConsentError> {
            t.as_deref()
                .map(|s| {
                    crate::clock::parse(s)
                        .map(OffsetDateTime::unix_timestamp)
                        .map_err(|_| ConsentError::Window(s.to_string()))
                })
                .transpose()
        };
        let (from, to) = (parse(&claims.transaction_from)?, parse(&claims.transaction_to)?);
        Ok(Consent { scope: claims.scope(), claims, from, to })
    }

    fn cached(&self, kid: &str) -> Option<DecodingKey> {
        self.keys.read().ok().and_then(|keys| keys.get(kid).cloned())
    }

    /// Fetches the JWKS for a key id not yet known, unless another request just did.
    async fn refresh(&self, kid: &str) -> Result<DecodingKey, ConsentError> {
        let mut last = self.fetching.lock().await;
        // Someone else may have fetched while this request waited.
        if let Some(key) = self.cached(kid) {
            return Ok(key);
        }
        // Fetched a moment ago: wait out the pause rather than refuse, so a key rotation never fails a call, while
        // the platform still sees at most one fetch per pause however many unknown key ids arrive.
        if let Some(at) = *last {
            tokio::time::sleep(REFETCH_PAUSE.saturating_sub(at.elapsed())).await;
            if let Some(key) = self.cached(kid) {
                return Ok(key);
            }
        }
        *last = Some(Instant::now());
        match self.fetch().await {
            Ok(keys) => {
                if let Ok(mut current) = self.keys.write() {
                    *current = keys;
                }
            }
            Err(error) => tracing::warn!(%error, url = %self.jwks_url, "cannot fetch the platform's JWKS"),
        }
        self.cached(kid).ok_or_else(|| ConsentError::UnknownKey(kid.to_string()))
    }

    async fn fetch(&self) -> Result<HashMap<String, DecodingKey>, String> {
        let response = self
            .client
            .get(&self.jwks_url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .map_err(|e| e.without_url().to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        let set: JwkSet = response.json().await.map_err(|e| e.without_url().to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            if let (Some(kid), Ok(key)) = (jwk.common.key_id.clone(), DecodingKey::from_jwk(jwk)) {
                keys.insert(kid, key);
            }
        }
        tracing::debug!(keys = keys.len(), "platform JWKS fetched");
        Ok(keys)
    }
}

/// What `Fault::Open` answers for: the claims of `header` read without any verification, or, without a readable
/// header, the first sandbox customer with every permission. Never used by a conforming bank.
pub fn unverified(header: Option<&axum::http::HeaderValue>) -> Consent {
    use base64::Engine;
    let claims = header
        .and_then(|v| v.to_str().ok())
        .and_then(|token| token.split('.').nth(1))
        .and_then(|payload| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok())
        .and_then(|json| serde_json::from_slice::<ConsentClaims>(&json).ok());
    let claims = claims.unwrap_or_else(|| ConsentClaims {
        iss: String::new(),
        aud: String::new(),
        sub: crate::standard::SANDBOX_CUSTOMERS.first().map(|c| c.iin.to_string()).unwrap_or_default(),
        consent_id: "open".into(),
        permissions: crate::standard::Permission::ALL.iter().map(|p| p.as_str().to_string()).collect(),
        transaction_from: None,
        transaction_to: None,
        interaction_id: "open".into(),
        iat: 0,
        exp: 0,
        jti: "open".into(),
    });
    let at =
        |t: &Option<String>| t.as_deref().and_then(|s| crate::clock::parse(s).ok()).map(OffsetDateTime::unix_timestamp);
    Consent { scope: claims.scope(), from: at(&claims.transaction_from), to: at(&claims.transaction_to), claims }
}
