//! The platform's signing keys: published as a JWKS, verifiable by anyone with a standard JWT library, rotated with
//! the old key kept published for its retention period.

use crate::common;

use std::sync::Arc;

use crate::common::Platform;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
}

async fn published(platform: &Platform) -> serde_json::Value {
    let response = platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/jwk-set+json");
    response.json().await.unwrap()
}

/// Verifies a token the way a bank would: pick the JWK by `kid` from the published set.
fn verify(token: &str, set: &serde_json::Value) -> Result<Claims, String> {
    let header = jsonwebtoken::decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).ok_or("kid not published")?;
    assert_eq!(jwk["kty"], "EC");
    assert_eq!(jwk["crv"], "P-256");
    let key = DecodingKey::from_ec_components(jwk["x"].as_str().unwrap(), jwk["y"].as_str().unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_required_spec_claims(&["exp"]);
    jsonwebtoken::decode::<Claims>(token, &key, &validation).map(|d| d.claims).map_err(|e| e.to_string())
}

#[tokio::test]
async fn tokens_verify_against_the_published_keys_across_a_rotation() {
    let platform = Platform::start().await;
    let set = published(&platform).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    assert!(set["keys"][0].get("d").is_none(), "private key material published");

    let signer = kopir::pki::signing::Signer::new(Arc::new(platform.config.clone()));
    let db = &platform.running().state.db;
    let claims = Claims { iss: "https://localhost".into(), sub: "test".into(), exp: 4_000_000_000 };
    let before = signer.sign(db, "JWT", &claims).await.unwrap();
    assert_eq!(verify(&before, &set).unwrap(), claims);
    // A token whose signature was tampered with is refused.
    let mut forged = before.clone();
    forged.replace_range(forged.len() - 4.., "AAAA");
    assert!(verify(&forged, &set).is_err());

    let rotated = platform.kopir().args(["keys", "rotate", "--retain-hours", "24"]).output().unwrap();
    common::assert_success(&rotated);
    let set = published(&platform).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 2);
    // A running signer picks the new key up within seconds (it re-reads the active key id every 5 s).
    let old_kid = jsonwebtoken::decode_header(&before).unwrap().kid;
    let after = common::eventually("a token signed with the new key", std::time::Duration::from_secs(8), async || {
        let after = signer.sign(db, "JWT", &claims).await.unwrap();
        let kid = jsonwebtoken::decode_header(&after).unwrap().kid;
        if kid != old_kid { Ok(after) } else { Err(kid) }
    })
    .await;
    assert!(verify(&before, &set).is_ok(), "a token signed before the rotation no longer verifies");
    assert!(verify(&after, &set).is_ok());

    // After its retention the old key is no longer published.
    let conn = rusqlite::Connection::open(platform.config.db_path()).unwrap();
    conn.execute("UPDATE signing_keys SET unpublish_at = '2000-01-01T00:00:00Z' WHERE retired_at IS NOT NULL", [])
        .unwrap();
    let set = published(&platform).await;
    assert_eq!(set["keys"].as_array().unwrap().len(), 1);
    assert!(verify(&before, &set).is_err());

    // Private key files are owner-only.
    use std::os::unix::fs::PermissionsExt;
    for entry in std::fs::read_dir(platform.data_dir().join("pki")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name().to_string_lossy().starts_with("signing-") {
            assert_eq!(entry.metadata().unwrap().permissions().mode() & 0o777, 0o600);
        }
    }
    platform.shutdown().await;
}
