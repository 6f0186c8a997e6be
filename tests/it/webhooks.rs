//! Signed webhooks to participants: events enqueued in a transaction reach a participant's HTTPS endpoint as a JWS
//! that verifies against the published key set, failures are retried with back-off and recorded, a restart loses
//! nothing, an event that cannot be delivered is given up at its deadline, and an organisation's administrator sets
//! the URL and sees the deliveries on the profile page.

use crate::common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::browser::bin;
use crate::common::participant::{activate, admin_of_new_organisation, count, db, invite};
use crate::common::{Platform, assert_success};
use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kopir::config::Config;
use kopir::store::StoreError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};
use tower::ServiceExt;

/// Small values so that retries happen within a test.
fn fast(config: &mut Config) {
    config.webhooks.retry_initial_secs = 1;
    config.webhooks.retry_max_secs = 2;
    config.webhooks.timeout_secs = 3;
    config.webhooks.give_up_after_hours = 1;
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    pub(crate) at: Instant,
    pub(crate) event_id: String,
    pub(crate) content_type: String,
    pub(crate) body: String,
    /// The common name of the client certificate the caller presented.
    client: String,
    answered: u16,
}

/// A participant's webhook endpoint: HTTPS with a certificate from the platform's CA, requiring a client certificate
/// from that CA, recording every request, answering 503 while `failures` is above zero.
pub(crate) struct Receiver {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    failures: Arc<AtomicUsize>,
}

impl Receiver {
    pub(crate) async fn start(platform: &Platform, failures: usize) -> Receiver {
        let identity = platform.forge_with_platform_ca("hooks.bank.kz", |p| {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            p.subject_alt_names = vec![rcgen::SanType::DnsName("localhost".try_into().unwrap())];
        });
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes()).map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(platform.root_pem().as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(AtomicUsize::new(failures));
        let (seen_by_server, failures_left) = (seen.clone(), failures.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, seen, failures) = (acceptor.clone(), seen_by_server.clone(), failures_left.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let client = tls.get_ref().1.peer_certificates().and_then(|c| c.first()).map(common_name);
                    let client = client.unwrap_or_default();
                    let handler = move |headers: HeaderMap, body: Bytes| {
                        let (seen, failures, client) = (seen.clone(), failures.clone(), client.clone());
                        async move {
                            let failing =
                                failures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
                            let status = if failing.is_ok() { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
                            let header = |name: &str| {
                                headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string()
                            };
                            seen.lock().unwrap().push(Seen {
                                at: Instant::now(),
                                event_id: header("x-kopir-event-id"),
                                content_type: header("content-type"),
                                body: String::from_utf8_lossy(&body).to_string(),
                                client,
                                answered: status.as_u16(),
                            });
                            // A body that must never end up in the outbox.
                            (status, "receiver-internal-detail: database of bank down")
                        }
                    };
                    let app = Router::new().route("/hook", post(handler));
                    let service = hyper::service::service_fn(move |r: hyper::Request<hyper::body::Incoming>| {
                        app.clone().oneshot(r.map(axum::body::Body::new))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Receiver { addr, seen, failures }
    }

    pub(crate) fn url(&self) -> String {
        format!("https://localhost:{}/hook", self.addr.port())
    }

    pub(crate) fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

fn common_name(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_string()
}

/// Registers an organisation directly in the database; returns its id.
async fn organisation(platform: &Platform, digits: &str, name: &str) -> (i64, String) {
    let bin = bin(digits);
    let new = kopir::participants::NewOrganisation {
        bin: bin.parse().unwrap(),
        name: name.into(),
        licence_number: "1.2.34/56".into(),
        contact_email: "ops@bank.kz".into(),
        contact_phone: "+7 727 250 00 00".into(),
    };
    let id = platform
        .running()
        .state
        .db
        .write(move |tx| kopir::participants::insert(tx, &new, kopir::clock::now()).map_err(StoreError::from))
        .await
        .unwrap();
    (id, bin)
}

pub(crate) async fn set_url(platform: &Platform, organisation: i64, url: &str) {
    let url = url.to_string();
    let now = platform.running().state.clock.now();
    platform
        .running()
        .state
        .db
        .write(move |tx| kopir::notify::set_webhook_url(tx, organisation, &url, now).map_err(StoreError::from))
        .await
        .unwrap();
}

/// Enqueues an event the way the consent flow will: inside a write transaction.
async fn enqueue(platform: &Platform, organisation: i64, event_type: &str, data: Value) -> String {
    let event_type = event_type.to_string();
    let now = platform.running().state.clock.now();
    platform
        .running()
        .state
        .db
        .write(move |tx| kopir::notify::enqueue(tx, organisation, &event_type, &data, now).map_err(StoreError::from))
        .await
        .unwrap()
}

/// An outbox row: status, attempts, last error, delivered at, created at, next attempt at, last attempt at.
#[derive(Debug, Clone)]
struct Row {
    status: String,
    attempts: i64,
    last_error: String,
    delivered_at: Option<String>,
    next_attempt_at: String,
    last_attempt_at: Option<String>,
}

fn row(platform: &Platform, event_id: &str) -> Row {
    db(platform)
        .query_row(
            "SELECT status, attempts, last_error, delivered_at, next_attempt_at, last_attempt_at
             FROM webhook_outbox WHERE event_id = ?1",
            [event_id],
            |r| {
                Ok(Row {
                    status: r.get(0)?,
                    attempts: r.get(1)?,
                    last_error: r.get(2)?,
                    delivered_at: r.get(3)?,
                    next_attempt_at: r.get(4)?,
                    last_attempt_at: r.get(5)?,
                })
            },
        )
        .unwrap()
}

/// Polls the event's row until `done` holds; fails with the last row seen after `secs`.
async fn wait_row(platform: &Platform, event_id: &str, secs: u64, done: impl Fn(&Row) -> bool) -> Row {
    common::eventually(&format!("event {event_id} to get there"), Duration::from_secs(secs), async || {
        let current = row(platform, event_id);
        if done(&current) { Ok(current) } else { Err(current) }
    })
    .await
}

/// Verifies a webhook body the way a bank would, with an off-the-shelf JWT library and the key set fetched over
/// HTTPS from the platform.
pub(crate) async fn verify(platform: &Platform, jws: &str, audience: &str) -> Value {
    let response = platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let set: Value = response.json().await.unwrap();
    let header = jsonwebtoken::decode_header(jws).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::ES256);
    assert_eq!(header.typ.as_deref(), Some("kopir-event+jwt"));
    let kid = header.kid.expect("kid in the header");
    let jwk = set["keys"].as_array().unwrap().iter().find(|k| k["kid"] == kid.as_str()).expect("kid published");
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwk.clone()).unwrap();
    let key = jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_issuer(&[format!("https://localhost:{}", platform.addr.port())]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    jsonwebtoken::decode::<Value>(jws, &key, &validation).expect("the webhook verifies").claims
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enqueued_event_is_delivered_signed_and_verifies_against_the_published_keys() {
    let platform = Platform::start_with(fast, None).await;
    let receiver = Receiver::start(&platform, 0).await;
    let (org, bin) = organisation(&platform, "99014000201", "Hook Bank JSC").await;
    set_url(&platform, org, &receiver.url()).await;

    let data = json!({ "ConsentId": "aac-7f3e", "ClientId": "kc_0123456789abcdef0123" });
    let event_id = enqueue(&platform, org, "consent.revoked", data.clone()).await;
    assert!(uuid::Uuid::parse_str(&event_id).is_ok(), "{event_id}");
    let delivered = wait_row(&platform, &event_id, 15, |r| r.status == "delivered").await;
    assert_eq!(delivered.attempts, 1);
    assert_eq!(delivered.last_error, "");
    assert!(delivered.delivered_at.is_some());

    let seen = receiver.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].event_id, event_id);
    assert_eq!(seen[0].content_type, "application/jwt");
    assert_eq!(seen[0].client, "kopir platform client", "the platform presents its own client certificate");
    let claims = verify(&platform, &seen[0].body, &bin).await;
    assert_eq!(claims["jti"], event_id.as_str());
    assert_eq!(claims["event"], "consent.revoked");
    assert_eq!(claims["aud"], bin.as_str());
    assert_eq!(claims["data"], data);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let iat = claims["iat"].as_i64().unwrap();
    assert!((now - 60..=now).contains(&iat), "iat {iat}, now {now}");
    assert!(claims["exp"].as_i64().unwrap() > now);
    assert!(claims["occurred_at"].as_i64().unwrap() <= iat);
    // A tampered body does not verify.
    let mut forged = seen[0].body.clone();
    let at = forged.find('.').unwrap() + 5;
    forged.replace_range(at..at + 1, if &forged[at..at + 1] == "A" { "B" } else { "A" });
    let key_set: Value =
        platform.client(None).get(platform.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key_set["keys"][0].clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
    validation.set_audience(&[&bin]);
    assert!(
        jsonwebtoken::decode::<Value>(&forged, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation)
            .is_err()
    );

    // An unknown event type fails the caller's transaction, so nothing half-done commits.
    let now = platform.running().state.clock.now();
    let refused = platform
        .running()
        .state
        .db
        .write(move |tx| kopir::notify::enqueue(tx, org, "consent.revokd", &json!({}), now).map_err(StoreError::from))
        .await;
    assert!(refused.is_err());
    assert_eq!(count(&platform, "SELECT count(*) FROM webhook_outbox"), 1);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_attempts_are_retried_with_back_off_and_recorded() {
    let platform = Platform::start_with(fast, None).await;
    let receiver = Receiver::start(&platform, 3).await;
    let (org, _) = organisation(&platform, "99014000202", "Retry Bank JSC").await;
    set_url(&platform, org, &receiver.url()).await;
    let event_id = enqueue(&platform, org, "consent.authorised", json!({ "ConsentId": "aac-1" })).await;

    // After the first failure: still pending, the attempt counted, the reason short and free of the answer's body.
    let failed_once = wait_row(&platform, &event_id, 10, |r| r.attempts >= 1).await;
    assert_eq!(failed_once.status, "pending");
    assert_eq!(failed_once.last_error, "HTTP 503");
    assert!(failed_once.next_attempt_at > *failed_once.last_attempt_at.as_ref().unwrap(), "{failed_once:?}");

    let delivered = wait_row(&platform, &event_id, 30, |r| r.status == "delivered").await;
    assert_eq!(delivered.attempts, 4);
    assert_eq!(delivered.last_error, "");
    let seen = receiver.seen();
    assert_eq!(seen.iter().map(|s| s.answered).collect::<Vec<_>>(), [503, 503, 503, 200]);
    assert!(seen.iter().all(|s| s.event_id == event_id));
    // Waits of 1, 2 and 2 seconds (initial 1 s, doubling, capped at 2 s; stored to the whole second).
    let gaps: Vec<Duration> = seen.windows(2).map(|w| w[1].at - w[0].at).collect();
    assert!(gaps[1] >= Duration::from_millis(1000) && gaps[2] >= Duration::from_millis(1000), "{gaps:?}");
    assert!(seen[3].at - seen[0].at >= Duration::from_secs(2), "{gaps:?}");
    assert_eq!(count(&platform, "SELECT count(*) FROM webhook_outbox WHERE last_error LIKE '%receiver-internal%'"), 0);

    // Nobody listening: the failure says so, without the URL.
    let (closed, _) = organisation(&platform, "99014000203", "Closed Bank JSC").await;
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    set_url(&platform, closed, &format!("https://localhost:{port}/hook")).await;
    let refused = enqueue(&platform, closed, "consent.expired", json!({ "ConsentId": "aac-2" })).await;
    let failed = wait_row(&platform, &refused, 10, |r| r.attempts >= 1).await;
    // Coarse for the participant: no telling a closed port from a filtered one.
    assert_eq!(failed.last_error, "could not connect", "{failed:?}");
    assert!(!failed.last_error.contains("localhost"), "{failed:?}");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_delivery_survives_a_restart() {
    let mut platform = Platform::start_with(fast, None).await;
    let receiver = Receiver::start(&platform, usize::MAX).await;
    let (org, bin) = organisation(&platform, "99014000204", "Restart Bank JSC").await;
    set_url(&platform, org, &receiver.url()).await;
    let event_id = enqueue(&platform, org, "consent.revoked", json!({ "ConsentId": "aac-restart" })).await;
    wait_row(&platform, &event_id, 10, |r| r.attempts >= 2).await;

    // Shut down in the middle of the retries: the worker stops with the server, and nothing is attempted meanwhile.
    platform.shutdown_keep_dir().await;
    let before = receiver.seen().len();
    let stopped = row(&platform, &event_id);
    assert_eq!(stopped.status, "pending");
    // Real time, on purpose: with the platform stopped there is no clock of its own to move.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(receiver.seen().len(), before, "a delivery was attempted while the platform was down");

    // The receiver recovers; the platform starts again on the same data directory and delivers the event.
    receiver.failures.store(0, Ordering::SeqCst);
    let running = kopir::web::start(platform.config.clone(), None).await.expect("server restarts");
    let platform = Platform::attach(platform.dir, platform.config, running);
    let delivered = wait_row(&platform, &event_id, 15, |r| r.status == "delivered").await;
    assert!(delivered.attempts > stopped.attempts, "{delivered:?}");
    let successes: Vec<Seen> = receiver.seen().into_iter().filter(|s| s.answered == 200).collect();
    assert_eq!(successes.len(), 1, "{successes:?}");
    assert_eq!(successes[0].event_id, event_id);
    let claims = verify(&platform, &successes[0].body, &bin).await;
    assert_eq!(claims["jti"], event_id.as_str());
    assert_eq!(claims["data"]["ConsentId"], "aac-restart");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeliverable_events_are_given_up_after_the_configured_time() {
    let platform = Platform::start_with(fast, None).await;
    let receiver = Receiver::start(&platform, usize::MAX).await;
    let (org, _) = organisation(&platform, "99014000205", "Down Bank JSC").await;
    set_url(&platform, org, &receiver.url()).await;
    let (silent, _) = organisation(&platform, "99014000206", "Silent Bank JSC").await;
    let event_id = enqueue(&platform, org, "consent.revoked", json!({ "ConsentId": "aac-3" })).await;
    let no_url = enqueue(&platform, silent, "consent.revoked", json!({ "ConsentId": "aac-4" })).await;
    wait_row(&platform, &event_id, 10, |r| r.attempts >= 1).await;
    // An organisation without a URL: the event waits, not attempted.
    let waiting = row(&platform, &no_url);
    assert_eq!((waiting.status.as_str(), waiting.attempts), ("pending", 0));

    // More than give_up_after_hours (1) pass on the platform's clock.
    platform.clock().advance(time::Duration::minutes(61));
    let failed = wait_row(&platform, &event_id, 10, |r| r.status == "failed").await;
    assert!(failed.attempts >= 2, "{failed:?}");
    assert_eq!(failed.last_error, "HTTP 503");
    let attempts = receiver.seen().len();
    let never = wait_row(&platform, &no_url, 15, |r| r.status == "failed").await;
    assert_eq!(never.attempts, 0);
    assert_eq!(never.last_error, "not attempted: no webhook URL was set");
    // Failed is final: no further attempts, however long the worker goes on. Another event, delivered after hours
    // more on the clock, shows the worker has passed over the outbox since.
    platform.clock().advance(time::Duration::hours(2));
    let healthy = Receiver::start(&platform, 0).await;
    let (up, _) = organisation(&platform, "99014000208", "Up Bank JSC").await;
    set_url(&platform, up, &healthy.url()).await;
    let later = enqueue(&platform, up, "consent.revoked", json!({ "ConsentId": "aac-5" })).await;
    wait_row(&platform, &later, 15, |r| r.status == "delivered").await;
    assert_eq!(receiver.seen().len(), attempts);

    // The operator sees them in `kopir status`, and in the metrics.
    let status = tokio::task::spawn_blocking({
        let mut cmd = platform.kopir();
        cmd.args(["status", "--json"]);
        move || cmd.output().unwrap()
    })
    .await
    .unwrap();
    assert_success(&status);
    let report: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(report["facts"]["webhooks"], json!({ "pending": 0, "failed": 2 }));
    assert!(report["warnings"].as_array().unwrap().iter().any(|w| w.as_str().unwrap().contains("webhook")), "{report}");
    let human = platform.kopir().arg("status").output().unwrap();
    assert!(String::from_utf8_lossy(&human.stdout).contains("webhooks        0 pending, 2 failed"));
    let metrics = reqwest::get(format!("http://{}/metrics", platform.admin_addr.unwrap())).await.unwrap();
    let metrics = metrics.text().await.unwrap();
    assert!(metrics.contains("kopir_webhook_deliveries_total{outcome=\"failed\"}"), "{metrics}");
    assert!(metrics.contains("kopir_webhook_pending"), "{metrics}");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organisation_admin_sets_the_webhook_url_and_members_see_the_deliveries() {
    let platform = Platform::start_with(fast, None).await;
    let receiver = Receiver::start(&platform, 0).await;
    let bin = bin("99014000207");
    let admin = admin_of_new_organisation(&platform, &bin, "Portal Bank JSC", "portal.admin").await;
    let org: i64 =
        db(&platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [&bin], |r| r.get(0)).unwrap();

    let page = admin.get("/org/profile").await;
    assert_eq!(page.status, 200);
    page.assert_contains("Webhooks")
        .assert_contains("Not set")
        .assert_contains(&format!("https://localhost:{}/.well-known/jwks.json", platform.addr.port()))
        .assert_contains("action=\"/org/profile/webhook\"");
    let csrf = common::participant::csrf_of(&page);

    // Plain http is refused with a clear message, and nothing is stored.
    let refused = admin.post("/org/profile/webhook", &csrf, &[("webhook_url", "http://hooks.bank.kz/kopir")]).await;
    assert_eq!(refused.status, 422);
    refused.assert_contains("must be an https:// address").assert_contains("http://hooks.bank.kz/kopir");
    let refused =
        admin.post("/org/profile/webhook", &csrf, &[("webhook_url", "https://hooks.bank.kz/k?token=x")]).await;
    assert_eq!(refused.status, 422);
    assert_eq!(kopir_url(&platform, org), "");

    let saved = admin.post("/org/profile/webhook", &csrf, &[("webhook_url", &receiver.url())]).await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    saved.assert_contains("Saved.").assert_contains(&receiver.url());
    assert_eq!(kopir_url(&platform, org), receiver.url());
    assert_eq!(
        count(&platform, "SELECT count(*) FROM audit_log WHERE action = 'participants.profile.webhook_updated'"),
        1
    );

    // A delivered event and a failing one, as the page lists them.
    let delivered = enqueue(&platform, org, "consent.authorised", json!({ "ConsentId": "aac-5" })).await;
    wait_row(&platform, &delivered, 15, |r| r.status == "delivered").await;
    receiver.failures.store(usize::MAX, Ordering::SeqCst);
    let failing = enqueue(&platform, org, "consent.revoked", json!({ "ConsentId": "aac-5" })).await;
    wait_row(&platform, &failing, 15, |r| r.attempts >= 1).await;
    let page = admin.get("/org/profile").await;
    page.assert_contains(&delivered)
        .assert_contains(&failing)
        .assert_contains("consent.authorised")
        .assert_contains("data-status=\"delivered\"")
        .assert_contains("data-status=\"pending\"")
        .assert_contains("HTTP 503");

    // Another role sees the deliveries but may not change the URL.
    let otp = invite(&admin, "portal.dev", "participant_developer").await;
    let (developer, _) = activate(&platform, "portal.dev", &otp).await;
    let page = developer.get("/org/profile").await;
    assert_eq!(page.status, 200);
    page.assert_contains(&delivered).assert_contains("HTTP 503");
    assert!(!page.body.contains("action=\"/org/profile/webhook\""), "a developer got the webhook form");
    let forged =
        developer.post("/org/profile/webhook", &page.csrf(), &[("webhook_url", "https://evil.example/hook")]).await;
    assert_eq!(forged.status, 403);
    assert_eq!(kopir_url(&platform, org), receiver.url());

    // Clearing the URL switches sending off.
    let cleared = admin.post("/org/profile/webhook", &csrf, &[("webhook_url", "")]).await;
    assert_eq!(cleared.status, 200);
    cleared.assert_contains("Not set");
    assert_eq!(kopir_url(&platform, org), "");
    platform.shutdown().await;
}

fn kopir_url(platform: &Platform, organisation: i64) -> String {
    db(platform).query_row("SELECT webhook_url FROM organisations WHERE id = ?1", [organisation], |r| r.get(0)).unwrap()
}
