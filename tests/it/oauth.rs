//! The authorization server as an API user's application meets it: discovery, a consent created over mTLS, a pushed
//! authorization request, the customer's journey, and the code exchanged and refreshed with the `oauth2` crate (an
//! independent client); tokens checked against the JWKS with `jsonwebtoken`. Then every refusal the profile asks for.

use crate::common;

use std::time::Duration;

use crate::common::browser::Browser;
use crate::common::consent::{self, Scenario, authorise, param, scenario, scenario_with};
use crate::common::participant::{count, set_status};
use crate::common::{Identity, Platform};
use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, AuthUrl, AuthorizationCode, ClientId, CsrfToken, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RevocationUrl, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde_json::Value;

type Client = oauth2::Client<
    oauth2::basic::BasicErrorResponse,
    oauth2::basic::BasicTokenResponse,
    oauth2::basic::BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    oauth2::basic::BasicRevocationErrorResponse,
    oauth2::EndpointSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointNotSet,
    oauth2::EndpointSet,
    oauth2::EndpointSet,
>;

/// The `oauth2` client, configured from the platform's discovery document.
fn oauth_client(metadata: &Value, client_id: &str) -> Client {
    let url = |key: &str| metadata[key].as_str().unwrap().to_string();
    BasicClient::new(ClientId::new(client_id.to_string()))
        .set_auth_type(AuthType::RequestBody)
        .set_auth_uri(AuthUrl::new(url("authorization_endpoint")).unwrap())
        .set_token_uri(TokenUrl::new(url("token_endpoint")).unwrap())
        .set_revocation_url(RevocationUrl::new(url("revocation_endpoint")).unwrap())
        .set_redirect_uri(RedirectUrl::new(consent::REDIRECT_URI.to_string()).unwrap())
}

/// `oauth2`'s HTTP client, backed by reqwest with the application's certificate (mTLS).
fn http(
    client: reqwest::Client,
) -> impl Fn(
    oauth2::HttpRequest,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<oauth2::HttpResponse, reqwest::Error>> + Send>> {
    move |request: oauth2::HttpRequest| {
        let client = client.clone();
        Box::pin(async move {
            let request = reqwest::Request::try_from(request).unwrap();
            let response = client.execute(request).await?;
            let mut builder = oauth2::http::Response::builder().status(response.status());
            for (name, value) in response.headers() {
                builder = builder.header(name, value);
            }
            Ok(builder.body(response.bytes().await?.to_vec()).unwrap())
        })
    }
}

async fn discovery(platform: &Platform) -> Value {
    let response = platform.client(None).get(platform.url("/.well-known/openid-configuration")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Independent verification: the platform's JWKS over HTTPS, `jsonwebtoken` with the key of the token's `kid`.
async fn verify_jwt(platform: &Platform, metadata: &Value, token: &str) -> Value {
    let jwks: jsonwebtoken::jwk::JwkSet =
        platform.client(None).get(metadata["jwks_uri"].as_str().unwrap()).send().await.unwrap().json().await.unwrap();
    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwk = jwks.find(header.kid.as_deref().unwrap()).expect("the token's key is published");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[metadata["issuer"].as_str().unwrap()]);
    validation.set_audience(&[metadata["issuer"].as_str().unwrap()]);
    jsonwebtoken::decode::<Value>(token, &jsonwebtoken::DecodingKey::from_jwk(jwk).unwrap(), &validation)
        .unwrap()
        .claims
}

/// SHA-256 of the DER of the identity's certificate, base64url: what `cnf.x5t#S256` must say.
fn thumbprint(identity: &Identity) -> String {
    use base64::Engine;
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes()).next().unwrap().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der.as_ref()))
}

async fn introspect(s: &Scenario, identity: &Identity, token: &str) -> Value {
    let response = s
        .platform
        .client(Some(identity))
        .post(s.platform.url("/oauth/introspect"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    response.json().await.unwrap()
}

/// Consent → PAR → customer allows → the code in the redirect. Returns (code, verifier, consent id).
async fn allowed_code(s: &Scenario, seed: u32) -> (String, PkceCodeVerifier, String) {
    let consent_id = s.create_consent().await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let request_uri = s.push(&consent_id, challenge.as_str(), "st-1").await;
    let params = authorise(s, &request_uri, &consent::iin(seed), &format!("+7701000{seed:04}"), "allow").await;
    (param(&params, "code").expect("a code").to_string(), verifier, consent_id)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_application_gets_certificate_bound_tokens_through_par_and_the_customer_journey() {
    let s = scenario(2).await;
    let metadata = discovery(&s.platform).await;
    let issuer = metadata["issuer"].as_str().unwrap().to_string();
    assert_eq!(issuer, s.platform.url(""));
    assert_eq!(metadata["require_pushed_authorization_requests"], true);
    assert_eq!(metadata["code_challenge_methods_supported"], serde_json::json!(["S256"]));
    assert_eq!(metadata["token_endpoint_auth_methods_supported"], serde_json::json!(["tls_client_auth"]));
    assert_eq!(metadata["tls_client_certificate_bound_access_tokens"], true);
    assert_eq!(metadata["authorization_response_iss_parameter_supported"], true);
    for key in
        ["token_endpoint", "pushed_authorization_request_endpoint", "revocation_endpoint", "introspection_endpoint"]
    {
        assert_eq!(metadata["mtls_endpoint_aliases"][key], metadata[key], "{key}");
    }

    let consent_id = s.create_consent().await;
    let client = oauth_client(&metadata, &s.client_id);
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (authorize_url, csrf) = client
        .authorize_url(CsrfToken::new_random)
        .add_scope(Scope::new("accounts".into()))
        .set_pkce_challenge(challenge.clone())
        .url();
    let response = s.push_as(&s.identity, &s.client_id, &consent_id, challenge.as_str(), csrf.secret()).await;
    assert_eq!(response.status(), 201);
    let request_uri = response.json::<Value>().await.unwrap()["request_uri"].as_str().unwrap().to_string();
    assert!(request_uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // The customer follows the library's authorization URL with the request_uri added.
    let mut url = authorize_url;
    url.query_pairs_mut().append_pair("request_uri", &request_uri);
    let path = format!("{}?{}", url.path(), url.query().unwrap());
    let customer = Browser::customer(&s.platform);
    let iin = consent::iin(1);
    let page = consent::identify(&s.platform, &customer, &path, &iin, "+7 701 555 00 01").await;
    assert!(page.url.ends_with("/oauth/authorize/consent"), "{}", page.body);
    page.assert_contains("Budget App")
        .assert_contains("Fintech One")
        .assert_contains("Altyn Bank")
        .assert_contains("Dala Bank");
    page.assert_contains("Show all your accounts in one place").assert_contains("Your accounts with their numbers");
    assert!(!page.body.contains(&iin), "the full IIN is shown back");
    let redirect = customer.post("/oauth/authorize/consent", &page.csrf(), &[("decision", "allow")]).await;
    let params = consent::redirect_params(&redirect);
    assert_eq!(param(&params, "state"), Some(csrf.secret().as_str()));
    assert_eq!(param(&params, "iss"), Some(issuer.as_str()), "RFC 9207");
    let code = param(&params, "code").unwrap().to_string();

    let http = http(s.api());
    let token = client
        .exchange_code(AuthorizationCode::new(code.clone()))
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code is exchanged");
    let claims = verify_jwt(&s.platform, &metadata, token.access_token().secret()).await;
    assert_eq!(claims["consent_id"], consent_id.as_str());
    assert_eq!(claims["client_id"], s.client_id.as_str());
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(&s.identity).as_str(), "bound to the certificate");
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!(lifetime > 0 && lifetime <= 300, "short-lived: {lifetime} s");
    assert_eq!(token.expires_in(), Some(Duration::from_secs(300)));
    let refresh = token.refresh_token().expect("a refresh token").clone();

    let consent = s.consent(&consent_id).await;
    assert_eq!(consent["Status"], "Authorised");
    assert!(consent["LastUsedDateTime"].is_string());

    let active = introspect(&s, &s.identity, token.access_token().secret()).await;
    assert_eq!(active["active"], true);
    assert_eq!(active["consent_id"], consent_id.as_str());
    assert_eq!(active["cnf"]["x5t#S256"], thumbprint(&s.identity).as_str());
    let active = introspect(&s, &s.identity, refresh.secret()).await;
    assert_eq!((active["active"].clone(), active["token_type"].clone()), (true.into(), "refresh_token".into()));

    // Refresh: a new access token, the same refresh token (not rotated).
    let refreshed = client.exchange_refresh_token(&refresh).request_async(&http).await.expect("refreshed");
    assert!(refreshed.refresh_token().is_none(), "FAPI 2.0: refresh tokens are not rotated");
    let again = verify_jwt(&s.platform, &metadata, refreshed.access_token().secret()).await;
    assert_eq!(again["consent_id"], consent_id.as_str());
    assert_ne!(again["jti"], claims["jti"]);

    // Webhooks for the API user and both banks wait in the outbox (no URL configured yet).
    assert_eq!(
        count(&s.platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'consent.authorised'"),
        3,
        "one event for the API user, one per bank"
    );
    // Nothing secret reached the database or the audit journal.
    let db = common::participant::db(&s.platform);
    let dump: String = db
        .query_row(
            "SELECT group_concat(coalesce(detail, '') || actor || coalesce(object, ''), ' ') FROM audit_log",
            [],
            |r| r.get(0),
        )
        .unwrap_or_default();
    for secret in [token.access_token().secret(), refresh.secret(), &code, &iin] {
        assert!(!dump.contains(secret.as_str()), "a secret is in the audit journal");
    }
    let stored: i64 = db
        .query_row("SELECT count(*) FROM refresh_tokens WHERE token_hash = ?1", [refresh.secret()], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 0, "refresh tokens are stored hashed");

    // Revocation (RFC 7009) through the library: the refresh token stops working; the consent goes on.
    client
        .revoke_token(StandardRevocableToken::RefreshToken(refresh.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .expect("revoked");
    let refused = client.exchange_refresh_token(&refresh).request_async(&http).await;
    assert!(
        matches!(refused, Err(oauth2::RequestTokenError::ServerResponse(ref e)) if e.error().as_ref() == "invalid_grant"),
        "{refused:?}"
    );
    assert_eq!(introspect(&s, &s.identity, refresh.secret()).await["active"], false);
    assert_eq!(s.consent(&consent_id).await["Status"], "Authorised");
    s.platform.shutdown().await;
}

async fn token_error(response: reqwest::Response) -> String {
    assert_eq!(response.headers()["cache-control"], "no-store");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert!(body["error_description"].is_string());
    format!("{status} {}", body["error"].as_str().unwrap())
}

async fn exchange(s: &Scenario, identity: &Identity, code: &str, verifier: &str, redirect: &str) -> reqwest::Response {
    s.platform
        .client(Some(identity))
        .post(s.platform.url("/oauth/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("code_verifier", verifier),
            ("redirect_uri", redirect),
        ])
        .send()
        .await
        .unwrap()
}

/// A refresh-token grant as the application with `identity` makes it.
async fn refresh_with(s: &Scenario, identity: &Identity, refresh_token: &str) -> reqwest::Response {
    s.platform
        .client(Some(identity))
        .post(s.platform.url("/oauth/token"))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh_token)])
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_endpoint_refuses_wrong_clients_codes_verifiers_and_redirects() {
    let s = scenario(1).await;
    let (other_app, other_client, other_identity) = consent::application(&s.user_admin, "Other App").await;
    consent::connect(&s.platform, &s.user_bin, other_app, &s.banks[0].0).await;

    // Another application's certificate.
    let (code, verifier, _) = allowed_code(&s, 11).await;
    let refused = exchange(&s, &other_identity, &code, verifier.secret(), consent::REDIRECT_URI).await;
    assert_eq!(token_error(refused).await, "400 invalid_grant");
    // A certificate of no application, and none at all.
    let stray = s.platform.issue_identity("stray-client");
    assert_eq!(
        token_error(exchange(&s, &stray, &code, verifier.secret(), consent::REDIRECT_URI).await).await,
        "401 invalid_client"
    );
    let none = s
        .platform
        .client(None)
        .post(s.platform.url("/oauth/token"))
        .form(&[("grant_type", "authorization_code")])
        .send()
        .await
        .unwrap();
    assert_eq!(token_error(none).await, "401 invalid_client");
    // client_id that is not the certificate's.
    let mismatch = s
        .api()
        .post(s.platform.url("/oauth/token"))
        .form(&[("grant_type", "authorization_code"), ("client_id", other_client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(token_error(mismatch).await, "401 invalid_client");

    // PKCE mismatch, then a redirect URI mismatch: the code is still unused after both.
    let wrong_verifier = PkceCodeVerifier::new("x".repeat(64));
    assert_eq!(
        token_error(exchange(&s, &s.identity, &code, wrong_verifier.secret(), consent::REDIRECT_URI).await).await,
        "400 invalid_grant"
    );
    assert_eq!(
        token_error(exchange(&s, &s.identity, &code, verifier.secret(), "https://fintech.example/other").await).await,
        "400 invalid_grant"
    );
    let first = exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await;
    assert_eq!(first.status(), 200);
    let tokens: Value = first.json().await.unwrap();

    // Reuse: refused, and what the first use gave is revoked.
    let reused = exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await;
    assert_eq!(token_error(reused).await, "400 invalid_grant");
    assert_eq!(introspect(&s, &s.identity, tokens["access_token"].as_str().unwrap()).await["active"], false);
    assert_eq!(introspect(&s, &s.identity, tokens["refresh_token"].as_str().unwrap()).await["active"], false);

    // Another application cannot introspect or revoke this one's tokens.
    let (code, verifier, _) = allowed_code(&s, 12).await;
    let tokens: Value =
        exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(introspect(&s, &other_identity, access).await["active"], false);
    let revoked = s
        .platform
        .client(Some(&other_identity))
        .post(s.platform.url("/oauth/revoke"))
        .form(&[("token", access)])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 200, "RFC 7009: 200 whatever the token");
    assert_eq!(introspect(&s, &s.identity, access).await["active"], true, "another client revoked it");

    // The same refresh token with another certificate of the same application is refused too.
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refused = refresh_with(&s, &other_identity, refresh).await;
    assert_eq!(token_error(refused).await, "400 invalid_grant");

    // PAR refusals: unregistered redirect URI, plain PKCE, another application's consent, a missing consent.
    let consent_id = s.create_consent().await;
    let par = |fields: Vec<(&'static str, String)>| {
        let client = s.api();
        let url = s.platform.url("/oauth/par");
        async move { client.post(url).form(&fields).send().await.unwrap() }
    };
    let base = |redirect: &str, method: &str, consent: &str| {
        vec![
            ("client_id", s.client_id.clone()),
            ("response_type", "code".to_string()),
            ("redirect_uri", redirect.to_string()),
            ("scope", "accounts".to_string()),
            ("code_challenge", "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4".to_string()),
            ("code_challenge_method", method.to_string()),
            ("consent_id", consent.to_string()),
        ]
    };
    assert_eq!(
        token_error(par(base("https://evil.example/cb", "S256", &consent_id)).await).await,
        "400 invalid_request"
    );
    assert_eq!(token_error(par(base(consent::REDIRECT_URI, "plain", &consent_id)).await).await, "400 invalid_request");
    assert_eq!(token_error(par(base(consent::REDIRECT_URI, "S256", "aac-missing")).await).await, "400 invalid_request");
    let other_consent = {
        let response = s
            .platform
            .client(Some(&other_identity))
            .post(s.platform.url("/open-banking/v1/aisp/account-access-consents"))
            .json(&consent::consent_body(&s.bank_bins()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        response.json::<Value>().await.unwrap()["Data"]["ConsentId"].as_str().unwrap().to_string()
    };
    assert_eq!(
        token_error(par(base(consent::REDIRECT_URI, "S256", &other_consent)).await).await,
        "400 invalid_request"
    );

    // A request_uri works once.
    let request_uri = s.push(&consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    let customer = Browser::customer(&s.platform);
    assert!(customer.get(&s.authorize_path(&request_uri)).await.url.ends_with("/verify"));
    let again = Browser::customer(&s.platform).get(&s.authorize_path(&request_uri)).await;
    assert_eq!(again.status, 400, "{}", again.body);
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_code_is_refused() {
    let platform = Platform::start_with(|c| c.oauth.code_secs = 1, None).await;
    let s = scenario_with(platform, 1).await;
    let (code, verifier, _) = allowed_code(&s, 21).await;
    s.platform.clock().advance(time::Duration::seconds(2));
    let refused = exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await;
    assert_eq!(token_error(refused).await, "400 invalid_grant");
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_suspended_participant_gets_no_tokens() {
    let s = scenario(1).await;
    let (code, verifier, consent_id) = allowed_code(&s, 31).await;
    let tokens: Value =
        exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await.json().await.unwrap();
    set_status(&s.platform, &s.user_bin, "suspended").await;
    let refresh = refresh_with(&s, &s.identity, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(token_error(refresh).await, "401 invalid_client");
    let par =
        s.push_as(&s.identity, &s.client_id, &consent_id, "R13_TdhCNqHHszZgSNvkIhuNsrzzWuiVodgRbuFDdA4", "s").await;
    assert_eq!(token_error(par).await, "401 invalid_client");
    let consents = s.api().get(s.platform.url("/open-banking/v1/aisp/account-access-consents")).send().await.unwrap();
    assert_eq!(consents.status(), 401);
    set_status(&s.platform, &s.user_bin, "accredited").await;
    let refresh = refresh_with(&s, &s.identity, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(refresh.status(), 200, "reinstated, it works again");
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn revoked_and_expired_consents_stop_introspection_and_refresh() {
    let platform = Platform::start_with(|c| c.oauth.expiry_sweep_secs = 1, None).await;
    let s = scenario_with(platform, 1).await;
    let (code, verifier, consent_id) = allowed_code(&s, 41).await;
    let tokens: Value =
        exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await.json().await.unwrap();
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    let deleted = s
        .api()
        .delete(s.platform.url(&format!("/open-banking/v1/aisp/account-access-consents/{consent_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(s.consent(&consent_id).await["Status"], "Revoked");
    assert_eq!(introspect(&s, &s.identity, access).await["active"], false);
    assert_eq!(introspect(&s, &s.identity, refresh).await["active"], false);
    let refused = refresh_with(&s, &s.identity, refresh).await;
    assert_eq!(token_error(refused).await, "400 invalid_grant");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'consent.revoked'"), 2);

    // A consent that expires a few seconds after it is given.
    let expiry = kopir::clock::rfc3339(kopir::clock::now() + time::Duration::seconds(4));
    let mut body = consent::consent_body(&s.bank_bins());
    body["Data"]["ExpirationDateTime"] = expiry.into();
    let consent_id = s.create_consent_with(body).await;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let request_uri = s.push(&consent_id, challenge.as_str(), "s").await;
    let params = authorise(&s, &request_uri, &consent::iin(42), "+77010000042", "allow").await;
    let tokens: Value =
        exchange(&s, &s.identity, param(&params, "code").unwrap(), verifier.secret(), consent::REDIRECT_URI)
            .await
            .json()
            .await
            .unwrap();
    let (access, refresh) = (tokens["access_token"].as_str().unwrap(), tokens["refresh_token"].as_str().unwrap());
    assert_eq!(introspect(&s, &s.identity, access).await["active"], true);
    // The consent expires 4 s after its creation; the background sweep (every second) notices soon after.
    common::eventually("the expired consent swept in the background", Duration::from_secs(8), async || {
        let status = s.consent(&consent_id).await["Status"].clone();
        if status == "Expired" { Ok(()) } else { Err(status) }
    })
    .await;
    assert_eq!(introspect(&s, &s.identity, access).await["active"], false);
    let refused = refresh_with(&s, &s.identity, refresh).await;
    assert_eq!(token_error(refused).await, "400 invalid_grant");
    assert_eq!(count(&s.platform, "SELECT count(*) FROM webhook_outbox WHERE event_type = 'consent.expired'"), 2);
    assert_eq!(
        count(&s.platform, &format!("SELECT count(*) FROM consent_history WHERE consent_id = '{consent_id}'")),
        3,
        "Awaiting, Authorised, Expired"
    );
    s.platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_tokens_move_to_the_new_certificate_when_the_application_rotates_it() {
    let s = scenario(1).await;
    let (code, verifier, _) = allowed_code(&s, 96).await;
    let tokens: Value =
        exchange(&s, &s.identity, &code, verifier.secret(), consent::REDIRECT_URI).await.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let page = s.user_admin.get(&format!("/org/apps/{}", s.app_id)).await;
    let csr = common::Csr::new("budget-app-2");
    let rotated = s
        .user_admin
        .post(&format!("/org/apps/{}/certificates", s.app_id), &page.csrf(), &[("csr", &csr.csr_pem)])
        .await;
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let serial = common::participant::serials(&rotated).remove(0);
    let new_identity = common::participant::download(&s.user_admin, s.app_id, &serial, &csr.key_pem).await;
    let old = refresh_with(&s, &s.identity, refresh).await;
    assert_eq!(token_error(old).await, "400 invalid_grant", "the retiring certificate no longer refreshes");
    let new = refresh_with(&s, &new_identity, refresh).await;
    assert_eq!(new.status(), 200);
    let body: Value = new.json().await.unwrap();
    let claims = verify_jwt(&s.platform, &discovery(&s.platform).await, body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["cnf"]["x5t#S256"], thumbprint(&new_identity).as_str());
    s.platform.shutdown().await;
}
