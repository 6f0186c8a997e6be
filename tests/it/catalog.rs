//! The API catalogue driven like a browser: providers describe APIs and publish them after the automatic check (the
//! sandbox's conformance suite) against reference banks, and see it refuse small HTTPS "banks" running inside the
//! test that break the standard (their certificates from a test CA the platform is told to trust, requiring the
//! platform's client certificate); the marketplace's search and filters; API users connecting an application in one
//! step, and what the connection allows over mTLS.

use crate::common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::common::Platform;
use crate::common::browser::{Browser, Page, bin, operator_user, participant_user};
use crate::common::consent::{application, consent_body};
use crate::common::participant::{accredit, accredit_as, admin_of_new_organisation, count, csrf_of, db};
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kopir::identity::Role;
use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

const CONSENTS: &str = "/open-banking/v1/aisp/account-access-consents";

// ---------------------------------------------------------------------------------------------------------------
// A bank's sandbox, in the test

/// How the test bank answers `GET /ob/accounts`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Behaviour {
    /// Without the platform's signed consent header: 401 with the OBIE error body (and nothing else of the standard).
    Conforming,
    /// 200 with account data, no questions asked.
    Open,
    /// 401, but an HTML page.
    Garbage,
    /// Answers after three seconds.
    Slow,
}

struct BankState {
    behaviour: Behaviour,
    hits: AtomicUsize,
}

async fn accounts(State(bank): State<Arc<BankState>>, headers: HeaderMap) -> Response {
    bank.hits.fetch_add(1, Ordering::SeqCst);
    match bank.behaviour {
        Behaviour::Conforming | Behaviour::Slow => {
            if bank.behaviour == Behaviour::Slow {
                // Slower than the check's time-out: the real network wait is what is tested.
                tokio::time::sleep(std::time::Duration::from_secs(3)).await;
            }
            if headers.contains_key("x-kopir-consent") {
                return axum::Json(json!({ "Data": { "Account": [] } })).into_response();
            }
            let body = json!({
                "Code": "401 Unauthorized",
                "Id": "bank-req-1",
                "Message": "The request could not be authenticated",
                "Errors": [{ "ErrorCode": "UK.OBIE.Header.Missing", "Message": "x-kopir-consent is required" }]
            });
            (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response()
        }
        Behaviour::Open => {
            let body = json!({ "Data": { "Account": [{ "AccountId": "acc-secret-4471", "Nickname": "Salary" }] } });
            axum::Json(body).into_response()
        }
        Behaviour::Garbage => {
            (StatusCode::UNAUTHORIZED, [(header::CONTENT_TYPE, "text/html")], "<html>Access denied</html>")
                .into_response()
        }
    }
}

/// A CA for banks' server certificates, and where its certificate is written.
struct TestCa {
    issuer: rcgen::Issuer<'static, KeyPair>,
    pem: String,
    key_pem: String,
}

impl TestCa {
    fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let cert = params.self_signed(&key).unwrap();
        let key_pem = key.serialize_pem();
        TestCa { issuer: rcgen::Issuer::new(params, key), pem: cert.pem(), key_pem }
    }

    fn write(&self, dir: &Path) -> PathBuf {
        let path = dir.join("provider-ca.pem");
        std::fs::write(&path, &self.pem).unwrap();
        path
    }

    /// A server certificate for 127.0.0.1 and localhost: (chain PEM, key PEM).
    fn server(&self) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params.subject_alt_names.push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
        params.distinguished_name.push(DnType::CommonName, "sandbox.bank.test");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (format!("{}{}", cert.pem(), self.pem), key.serialize_pem())
    }
}

struct Bank {
    addr: SocketAddr,
    state: Arc<BankState>,
}

impl Bank {
    /// Starts a bank on a loopback port that requires a client certificate issued under `client_root_pem` (the
    /// platform's root): so every answer it gives proves the platform presented its own certificate.
    async fn start(ca: &TestCa, client_root_pem: &str, behaviour: Behaviour) -> Bank {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(client_root_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .unwrap();
        let (chain_pem, key_pem) = ca.server();
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(chain_pem.as_bytes()).map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain, key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(BankState { behaviour, hits: AtomicUsize::new(0) });
        let app = Router::new().route("/ob/accounts", get(accounts)).with_state(state.clone());
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let (acceptor, app) = (acceptor.clone(), app.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper_util::service::TowerToHyperService::new(app);
                    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Bank { addr, state }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/ob", self.addr.port())
    }

    fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }
}

/// A reference bank (the whole standard, with the sandbox's test customers) for the BIN of its organisation, its
/// server certificate issued by `ca`: what the publication check lets through.
struct Reference {
    running: kopir::refbank::RunningBank,
    _dir: tempfile::TempDir,
}

impl Reference {
    async fn start(ca: &TestCa, platform: &Platform, bank_bin: &str) -> Reference {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let bank_dir = dir.path().join("bank");
        std::fs::create_dir(&bank_dir).unwrap();
        std::fs::write(bank_dir.join("ca.pem"), &ca.pem).unwrap();
        std::fs::write(bank_dir.join("ca.key"), &ca.key_pem).unwrap();
        std::fs::set_permissions(bank_dir.join("ca.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        let config =
            kopir::refbank::BankConfig::new("Test Bank", bank_bin, bank_dir, platform.url(""), platform.root_pem());
        Reference { running: kopir::refbank::start(config).await.unwrap(), _dir: dir }
    }

    fn url(&self) -> String {
        self.running.base_url.clone()
    }
}

/// A platform that trusts the test CA for providers' endpoints.
async fn platform_trusting(ca: &TestCa) -> Platform {
    let dir = tempfile::tempdir().unwrap();
    let file = ca.write(dir.path());
    let platform = Platform::start_with(|c| c.gateway.provider_ca_file = file.clone(), None).await;
    // Keep the CA file as long as the platform (the check reads it on each run).
    std::mem::forget(dir);
    platform
}

// ---------------------------------------------------------------------------------------------------------------
// Pages

fn passport(sandbox: &str) -> Vec<(String, String)> {
    [
        ("name", "Current accounts"),
        ("version", "1.0"),
        ("standard", "kopir-ais-v1"),
        ("description", "Accounts, balances and transactions of personal current accounts"),
        ("sandbox_base_url", sandbox),
        ("production_base_url", "https://api.bank.test/ob"),
        ("sla_response_ms", "800"),
        ("timeout_ms", "2000"),
        ("contact_email", "api@bank.test"),
        ("contact_phone", "+7 727 250 00 00"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn with(mut fields: Vec<(String, String)>, changes: &[(&str, &str)]) -> Vec<(String, String)> {
    for (key, value) in changes {
        match fields.iter_mut().find(|(k, _)| k == key) {
            Some(field) => field.1 = value.to_string(),
            None => fields.push((key.to_string(), value.to_string())),
        }
    }
    fields
}

fn borrowed(fields: &[(String, String)]) -> Vec<(&str, &str)> {
    fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

async fn create_api(browser: &Browser, fields: &[(String, String)]) -> Page {
    browser.submit("/org/apis", "/org/apis", &borrowed(fields)).await
}

fn api_id(page: &Page) -> i64 {
    let tail = page.url.rsplit("/org/apis/").next().unwrap();
    tail.parse().unwrap_or_else(|_| panic!("not an API page: {} ({}):\n{}", page.url, page.status, page.body))
}

async fn publish(browser: &Browser, id: i64) -> Page {
    browser.submit(&format!("/org/apis/{id}"), &format!("/org/apis/{id}/publish"), &[]).await
}

fn status_of(platform: &Platform, id: i64) -> String {
    db(platform).query_row("SELECT status FROM apis WHERE id = ?1", [id], |r| r.get(0)).unwrap()
}

fn audits(platform: &Platform, action: &str, outcome: &str) -> i64 {
    db(platform)
        .query_row("SELECT count(*) FROM audit_log WHERE action = ?1 AND outcome = ?2", [action, outcome], |r| r.get(0))
        .unwrap()
}

fn organisation_id(platform: &Platform, bin: &str) -> i64 {
    db(platform).query_row("SELECT id FROM organisations WHERE bin = ?1", [bin], |r| r.get(0)).unwrap()
}

/// The latest check of an API: passed, findings.
fn last_check(platform: &Platform, id: i64) -> (bool, Value) {
    let (passed, findings): (bool, String) = db(platform)
        .query_row(
            "SELECT passed, findings FROM api_checks WHERE api_id = ?1 AND purpose = 'publication'
               AND environment = 'sandbox' ORDER BY id DESC LIMIT 1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    (passed, serde_json::from_str(&findings).unwrap())
}

fn finding<'a>(findings: &'a Value, id: &str) -> &'a Value {
    findings.as_array().unwrap().iter().find(|f| f["id"] == id).unwrap_or_else(|| panic!("no {id} in {findings}"))
}

/// An accredited bank's administrator with a published API on a reference bank of its BIN (certificate from `ca`);
/// returns the browser, the BIN, the API id and the bank.
async fn published_api(
    platform: &Platform,
    ca: &TestCa,
    digits: &str,
    name: &str,
    admin: &str,
    changes: &[(&str, &str)],
) -> (Browser, String, i64, Reference) {
    let bank_bin = bin(digits);
    let bank = Reference::start(ca, platform, &bank_bin).await;
    let browser = admin_of_new_organisation(platform, &bank_bin, name, admin).await;
    accredit(platform, &bank_bin).await;
    let page = create_api(&browser, &with(passport(&bank.url()), changes)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let id = api_id(&page);
    let page = publish(&browser, id).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(status_of(platform, id), "published", "{}", page.body);
    (browser, bank_bin, id, bank)
}

async fn member(platform: &Platform, bank_bin: &str, username: &str, role: Role) -> Browser {
    let password = participant_user(platform, bank_bin, username, role).await;
    let mut browser = Browser::new(platform);
    let page = browser.sign_in(username, &password).await;
    assert!(page.url.ends_with("/org"), "{}", page.url);
    browser
}

/// Opens an API's marketplace page and posts its connect form for `application`.
async fn connect_as(browser: &Browser, api: i64, application: i64) -> Page {
    let path = format!("/marketplace/{api}");
    let page = browser.get(&path).await;
    browser.post(&format!("{path}/connect"), &csrf_of(&page), &[("application", &application.to_string())]).await
}

// ---------------------------------------------------------------------------------------------------------------
// Tests

#[tokio::test(flavor = "multi_thread")]
async fn accredited_provider_publishes_after_the_check_and_no_one_else_may() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let bank_bin = bin("99050000001");
    let bank = Reference::start(&ca, &platform, &bank_bin).await;
    let admin = admin_of_new_organisation(&platform, &bank_bin, "Altyn Bank JSC", "altyn.admin").await;

    // Registered but not accredited: the form is not offered and a post is refused (and journalled).
    let page = admin.get("/org/apis").await;
    assert_eq!(page.status, 200);
    page.assert_contains("Only an accredited participant may do this.");
    assert!(!page.body.contains("action=\"/org/apis\""));
    let refused = admin.post("/org/apis", &csrf_of(&page), &borrowed(&passport(&bank.url()))).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(audits(&platform, "catalog.api.create", "denied"), 1);

    // Accredited as API user only (another organisation: accreditation decides the roles once): still refused.
    let user_only_bin = bin("99050000004");
    let user_only = admin_of_new_organisation(&platform, &user_only_bin, "Qarzhy Budget LLP", "qarzhy.admin").await;
    accredit_as(&platform, &user_only_bin, false, true).await;
    let refused = create_api(&user_only, &passport(&bank.url())).await;
    assert_eq!(refused.status, 403);
    refused.assert_contains("Only an organisation accredited as API provider publishes APIs.");
    accredit(&platform, &bank_bin).await;

    // URLs and numbers are checked; nothing is stored on refusal.
    let bad: Vec<(&str, &str, &str)> = vec![
        ("sandbox_base_url", "http://127.0.0.1/ob", "The sandbox base URL must be"),
        ("sandbox_base_url", "https://user:secret@bank.test/ob", "The sandbox base URL must be"),
        ("sandbox_base_url", "https://bank.test/ob#top", "The sandbox base URL must be"),
        ("production_base_url", "https://api.bank.test/ob?key=1", "The production base URL must be"),
        ("production_base_url", "api.bank.test/ob", "The production base URL must be"),
        ("timeout_ms", "500", "The time-out must not be shorter than the SLA response time."),
        ("sla_response_ms", "soon", "The SLA response time must be"),
        ("contact_email", "api-at-bank", "Give a valid contact e-mail address."),
        ("standard", "obie-3.1", "Choose a standard the platform knows."),
    ];
    for (field, value, message) in bad {
        let page = create_api(&admin, &with(passport(&bank.url()), &[(field, value)])).await;
        assert_eq!(page.status, 422, "{field}={value}");
        page.assert_contains(message);
    }
    assert_eq!(count(&platform, "SELECT count(*) FROM apis"), 0);

    // A draft, then publication after the check.
    let page = create_api(&admin, &passport(&format!("{}/", bank.url()))).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let id = api_id(&page);
    page.assert_contains("Draft").assert_contains("Not checked yet.");
    let stored: String = db(&platform).query_row("SELECT sandbox_base_url FROM apis", [], |r| r.get(0)).unwrap();
    assert_eq!(stored, bank.url(), "the trailing slash is dropped");
    let page = publish(&admin, id).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.url.ends_with(&format!("/org/apis/{id}")));
    page.assert_contains("id=\"api-status\">Published").assert_contains("UK.OBIE.Header.Missing");
    assert_eq!(status_of(&platform, id), "published");
    let published_at: Option<String> =
        db(&platform).query_row("SELECT published_at FROM apis WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    assert!(published_at.is_some());
    let (passed, findings) = last_check(&platform, id);
    assert!(passed, "{findings}");
    for f in findings.as_array().unwrap() {
        assert_eq!(f["outcome"], "passed", "{findings}");
    }
    assert_eq!(
        finding(&findings, "auth.refused")["evidence"],
        "GET /accounts (no x-kopir-consent) → 401, ErrorCode UK.OBIE.Header.Missing"
    );
    let latency: Option<i64> =
        db(&platform).query_row("SELECT latency_ms FROM api_checks WHERE api_id = ?1", [id], |r| r.get(0)).unwrap();
    assert!(latency.is_some());

    // Once published, version and URLs are fixed; the description may change (and the search follows).
    let page = admin
        .submit(
            &format!("/org/apis/{id}"),
            &format!("/org/apis/{id}"),
            &borrowed(&with(
                passport("https://elsewhere.test/ob"),
                &[("description", "Savings and deposits too"), ("version", "9.9")],
            )),
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains("Savings and deposits too").assert_contains(&bank.url());
    assert!(!page.body.contains("elsewhere.test"));
    let version: String =
        db(&platform).query_row("SELECT version FROM apis WHERE id = ?1", [id], |r| r.get(0)).unwrap();
    assert_eq!(version, "1.0");
    let hits: i64 = db(&platform)
        .query_row("SELECT count(*) FROM apis_search WHERE apis_search MATCH '\"deposits\"*'", [], |r| r.get(0))
        .unwrap();
    assert_eq!(hits, 1);

    // An analyst sees but cannot change; another organisation's API is not found.
    let analyst = member(&platform, &bank_bin, "altyn.analyst", Role::ParticipantAnalyst).await;
    let page = analyst.get(&format!("/org/apis/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/publish") && !page.body.contains("/withdraw"));
    let refused = analyst.post(&format!("/org/apis/{id}/withdraw"), &csrf_of(&page), &[]).await;
    assert_eq!(refused.status, 403);
    let refused = analyst.post("/org/apis", &csrf_of(&page), &borrowed(&passport(&bank.url()))).await;
    assert_eq!(refused.status, 403);

    let other_bin = bin("99050000002");
    let other = admin_of_new_organisation(&platform, &other_bin, "Dala Bank JSC", "dala.admin").await;
    accredit(&platform, &other_bin).await;
    assert_eq!(other.get(&format!("/org/apis/{id}")).await.status, 404);
    let csrf = csrf_of(&other.get("/org/apis").await);
    assert_eq!(other.post(&format!("/org/apis/{id}/publish"), &csrf, &[]).await.status, 404);
    assert_eq!(other.post(&format!("/org/apis/{id}/withdraw"), &csrf, &[]).await.status, 404);
    assert_eq!(other.post(&format!("/org/apis/{id}"), &csrf, &borrowed(&passport(&bank.url()))).await.status, 404);
    assert!(!other.get("/org/apis").await.body.contains("Current accounts"));

    // A form without the CSRF token is refused.
    assert_eq!(admin.post(&format!("/org/apis/{id}/withdraw"), "forged", &[]).await.status, 403);
    assert_eq!(status_of(&platform, id), "published");

    // The journal has every step.
    assert_eq!(audits(&platform, "catalog.api.created", "success"), 1);
    assert_eq!(audits(&platform, "catalog.api.published", "success"), 1);
    assert_eq!(audits(&platform, "catalog.api.updated", "success"), 1);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn publication_is_refused_with_the_findings_when_the_sandbox_does_not_conform() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let root = platform.root_pem();
    let open = Bank::start(&ca, &root, Behaviour::Open).await;
    let garbage = Bank::start(&ca, &root, Behaviour::Garbage).await;
    let slow = Bank::start(&ca, &root, Behaviour::Slow).await;
    let untrusted = Bank::start(&TestCa::new("Unknown CA"), &root, Behaviour::Conforming).await;
    // Refuses calls without the header with the error body, but holds no test customer.
    let refusing = Bank::start(&ca, &root, Behaviour::Conforming).await;
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let bank_bin = bin("99050000011");
    let conforming = Reference::start(&ca, &platform, &bank_bin).await;
    let admin = admin_of_new_organisation(&platform, &bank_bin, "Kapshagai Bank JSC", "kap.admin").await;
    accredit(&platform, &bank_bin).await;
    let page = create_api(&admin, &passport(&open.url())).await;
    let id = api_id(&page);

    let cases: Vec<(String, &str, &str, &str)> = vec![
        (open.url(), "auth.refused", "→ 200", "failed"),
        (garbage.url(), "error.shape", "the body is not JSON", "failed"),
        (slow.url(), "tls.reachable", "no answer within the time-out of 1000 ms", "failed"),
        (untrusted.url(), "tls.reachable", "TLS:", "failed"),
        (format!("https://127.0.0.1:{closed}/ob"), "tls.reachable", "connection failed", "failed"),
        (refusing.url(), "accounts.schema", "test customer 1: GET /accounts (test customer 1 of 5) → 200", "failed"),
    ];
    for (i, (url, id_of_finding, evidence, outcome)) in cases.iter().enumerate() {
        let changes = [("sandbox_base_url", url.as_str()), ("sla_response_ms", "500"), ("timeout_ms", "1000")];
        let saved = admin
            .submit(&format!("/org/apis/{id}"), &format!("/org/apis/{id}"), &borrowed(&with(passport(url), &changes)))
            .await;
        assert_eq!(saved.status, 200, "{}", saved.body);
        let page = publish(&admin, id).await;
        assert_eq!(page.status, 422, "{url}: {}", page.body);
        page.assert_contains("The check failed, so the API was not published.");
        assert_eq!(status_of(&platform, id), "draft", "{url}");
        let (passed, findings) = last_check(&platform, id);
        assert!(!passed);
        let f = finding(&findings, id_of_finding);
        assert_eq!(f["outcome"], *outcome, "{url}: {findings}");
        assert!(f["evidence"].as_str().unwrap().contains(evidence), "{url}: {findings}");
        assert_eq!(audits(&platform, "catalog.api.publication_refused", "failure"), i as i64 + 1);
    }
    // The open bank's account data is not kept as evidence, only the answer's size.
    let all: String =
        db(&platform).query_row("SELECT group_concat(findings) FROM api_checks", [], |r| r.get(0)).unwrap();
    assert!(!all.contains("acc-secret-4471") && !all.contains("Salary"), "{all}");
    // An endpoint that does not answer in time is called once: the rest of the suite is skipped.
    assert_eq!(slow.hits(), 1);
    assert!(open.hits() > 1 && garbage.hits() > 1 && refusing.hits() > 1);
    assert!(admin.get("/marketplace").await.body.contains("No API has been published yet."));

    // Fixed in the draft, it passes.
    let changes = [("sandbox_base_url", conforming.url())];
    let changes: Vec<(&str, &str)> = changes.iter().map(|(k, v)| (*k, v.as_str())).collect();
    admin
        .submit(
            &format!("/org/apis/{id}"),
            &format!("/org/apis/{id}"),
            &borrowed(&with(passport(&conforming.url()), &changes)),
        )
        .await;
    let page = publish(&admin, id).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(status_of(&platform, id), "published");
    assert_eq!(count(&platform, "SELECT count(*) FROM api_checks"), 7);
    page.assert_contains("Earlier checks");

    // Publishing what is published is refused.
    let again = publish(&admin, id).await;
    assert_eq!(again.status, 409);
    again.assert_contains("Only a draft or a deprecated API can be published.");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn marketplace_finds_apis_by_words_in_any_language_and_filters_them() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let (_, altyn_bin, altyn_api, bank) = published_api(
        &platform,
        &ca,
        "99050000021",
        "Altyn Bank JSC",
        "altyn.admin",
        &[("name", "Счета Altyn"), ("description", "Остатки по депозитам и зарплатным картам")],
    )
    .await;
    let (kazakh, kazakh_bin, kazakh_api, _kazakh_bank) = published_api(
        &platform,
        &ca,
        "99050000022",
        "Қазақ Банкі АҚ",
        "qazaq.admin",
        &[("name", "Шоттар"), ("description", "Жеке кәсіпкерлерге арналған төлем карталары")],
    )
    .await;
    // A draft is never listed, whatever it says.
    let draft = create_api(&kazakh, &with(passport(&bank.url()), &[("description", "Zebraword secret plans")])).await;
    assert_eq!(draft.status, 200);

    let user_bin = bin("99050000029");
    let user = admin_of_new_organisation(&platform, &user_bin, "Fintech One LLP", "fintech.admin").await;
    accredit(&platform, &user_bin).await;
    let ids = |page: &Page| -> Vec<i64> {
        [altyn_api, kazakh_api].into_iter().filter(|id| page.body.contains(&format!("/marketplace/{id}\""))).collect()
    };
    let all = user.get("/marketplace").await;
    assert_eq!(all.status, 200);
    all.assert_contains("Altyn Bank JSC").assert_contains("Қазақ Банкі АҚ").assert_contains(&altyn_bin);
    assert_eq!(ids(&all), vec![altyn_api, kazakh_api]);
    assert!(!all.body.contains("Zebraword"));

    let search =
        |q: &str| format!("/marketplace?q={}", form_urlencoded::byte_serialize(q.as_bytes()).collect::<String>());
    // Words of the description (any case, beginnings enough), of the provider's name or BIN, of the standard's
    // title in any language; every word must match.
    for (q, expected) in [
        ("остатки", vec![altyn_api]),
        ("ЗАРПЛАТН", vec![altyn_api]),
        ("кәсіпкерлерге", vec![kazakh_api]),
        ("КӘСІПКЕР төлем", vec![kazakh_api]),
        ("ҚАЗАҚ", vec![kazakh_api]),
        ("altyn", vec![altyn_api]),
        (&kazakh_bin[..6], vec![altyn_api, kazakh_api]),
        (&kazakh_bin[..], vec![kazakh_api]),
        ("Customer current-account", vec![altyn_api, kazakh_api]),
        ("текущих счетах", vec![altyn_api, kazakh_api]),
        ("ағымдағы шоттары", vec![altyn_api, kazakh_api]),
        ("депозитам Қазақ", vec![]),
        ("zebraword", vec![]),
        ("\" OR * NEAR(", vec![]),
    ] {
        let page = user.get(&search(q)).await;
        assert_eq!(page.status, 200, "{q}");
        assert_eq!(ids(&page), expected, "search {q:?}");
        if expected.is_empty() {
            page.assert_contains("No API matches.");
        }
    }
    let altyn_org = organisation_id(&platform, &altyn_bin);
    let page = user.get(&format!("/marketplace?provider={altyn_org}")).await;
    assert_eq!(ids(&page), vec![altyn_api]);
    let page = user.get(&format!("/marketplace?provider={altyn_org}&q=кәсіпкерлерге")).await;
    assert_eq!(ids(&page), Vec::<i64>::new());
    let page = user.get("/marketplace?standard=kopir-ais-v1").await;
    assert_eq!(ids(&page), vec![altyn_api, kazakh_api]);

    // The passport of a listed API; a draft's is not found.
    let page = user.get(&format!("/marketplace/{kazakh_api}")).await;
    assert_eq!(page.status, 200);
    page.assert_contains("Жеке кәсіпкерлерге арналған төлем карталары").assert_contains(&kazakh_bin);
    assert_eq!(user.get(&format!("/marketplace/{}", api_id(&draft))).await.status, 404);

    // The same for programs, publicly.
    let anonymous = platform.client(None);
    let list: Value = anonymous.get(platform.url("/api/v1/marketplace")).send().await.unwrap().json().await.unwrap();
    assert_eq!(list.as_array().unwrap().len(), 2, "{list}");
    let one: Value = anonymous
        .get(platform.url(&format!("/api/v1/marketplace?provider={altyn_bin}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one[0]["Provider"]["Bin"], altyn_bin.as_str());
    assert_eq!(one[0]["Status"], "Published");
    assert_eq!(one[0]["Standard"], "kopir-ais-v1");
    let found: Value = anonymous
        .get(platform.url(&search("кәсіп").replace("/marketplace", "/api/v1/marketplace")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(found.as_array().unwrap().len(), 1);
    assert_eq!(found[0]["Id"], kazakh_api);

    // Console readers see the marketplace and every API with its last check; participants do not see the console.
    let password = operator_user(&platform, "aliya.ops", Role::Regulator).await;
    let mut regulator = Browser::new(&platform);
    regulator.sign_in("aliya.ops", &password).await;
    let page = regulator.get("/console/apis").await;
    assert_eq!(page.status, 200);
    page.assert_contains("Altyn Bank JSC").assert_contains("Passed").assert_contains("Draft");
    let page = regulator.get("/marketplace").await;
    assert_eq!(page.status, 200);
    assert_eq!(ids(&page), vec![altyn_api, kazakh_api]);
    let page = regulator.get(&format!("/marketplace/{altyn_api}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/connect"));
    assert_eq!(user.get("/console/apis").await.status, 403);
    // The marketplace is public: a visitor reads the list and a passport, with the platform's endpoint to call and
    // the way to sign in to connect — not the provider's own URLs, which only the console shows.
    let visitor = Browser::new(&platform);
    let page = visitor.get("/marketplace").await;
    assert_eq!(page.status, 200);
    assert_eq!(ids(&page), vec![altyn_api, kazakh_api]);
    let page = visitor.get(&format!("/marketplace/{altyn_api}")).await;
    assert_eq!(page.status, 200);
    page.assert_contains(&format!("<code id=\"platform-endpoint\">{}/open-banking/v1/aisp</code>", platform.url("")));
    page.assert_contains("id=\"sign-in-to-connect\"").assert_contains("/.well-known/openid-configuration");
    assert!(!page.body.contains("https://api.bank.test/ob") && !page.body.contains("/connect\""));
    let member = user.get(&format!("/marketplace/{altyn_api}")).await;
    member.assert_contains("id=\"platform-endpoint\"");
    assert!(!member.body.contains("https://api.bank.test/ob"), "a participant sees the provider's own URL");
    regulator.get(&format!("/marketplace/{altyn_api}")).await.assert_contains("https://api.bank.test/ob");
    assert_eq!(visitor.get(&format!("/marketplace/{}", api_id(&draft))).await.status, 404);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_user_connects_in_one_step_and_consents_follow_the_connection() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let (bank_admin, bank_bin, api, _bank) =
        published_api(&platform, &ca, "99050000031", "Altyn Bank JSC", "altyn.admin", &[]).await;
    let user_bin = bin("99050000039");
    let user = admin_of_new_organisation(&platform, &user_bin, "Fintech One LLP", "fintech.admin").await;
    accredit(&platform, &user_bin).await;
    let (app, client_id, identity) = application(&user, "Budget App").await;
    let post_consent = || async {
        platform
            .client(Some(&identity))
            .post(platform.url(CONSENTS))
            .json(&consent_body(&[&bank_bin]))
            .send()
            .await
            .unwrap()
    };

    // Not connected yet: a consent naming the bank is refused.
    let error = common::expect_ob_error(post_consent().await, 400, "UK.OBIE.Field.Invalid").await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("not connected"), "{error}");

    // One step: connected, active.
    let page = user.get(&format!("/marketplace/{api}")).await;
    page.assert_contains("Budget App").assert_contains("Not connected");
    let page =
        user.post(&format!("/marketplace/{api}/connect"), &csrf_of(&page), &[("application", &app.to_string())]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains(&format!("id=\"connection-{app}\">Connected"));
    let (status, disconnected_at): (String, Option<String>) = db(&platform)
        .query_row(
            "SELECT status, disconnected_at FROM api_connections WHERE application_id = ?1 AND api_id = ?2",
            [app, api],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((status.as_str(), disconnected_at), ("active", None));
    assert_eq!(audits(&platform, "catalog.api.connected", "success"), 1);
    let detail: String = db(&platform)
        .query_row("SELECT detail FROM audit_log WHERE action = 'catalog.api.connected'", [], |r| r.get(0))
        .unwrap();
    assert!(detail.contains(&client_id) && detail.contains(&bank_bin), "{detail}");

    // The application's page lists its connection.
    let page = user.get(&format!("/org/apps/{app}")).await;
    page.assert_contains("Connections to APIs")
        .assert_contains(&format!("/marketplace/{api}\""))
        .assert_contains("Altyn Bank JSC");

    // What the gateway reads.
    let bank_org = organisation_id(&platform, &bank_bin);
    let connected = kopir::catalog::connected_api(&db(&platform), app, bank_org).unwrap().unwrap();
    assert_eq!(connected.api_id, api);
    assert_eq!(connected.production_base_url, "https://api.bank.test/ob");
    assert_eq!(connected.timeout_ms, 2000);
    assert_eq!(connected.status, kopir::catalog::ApiStatus::Published);

    // The connection is what the consent rules check.
    assert_eq!(post_consent().await.status(), 201);

    // Connecting again changes nothing; disconnecting ends it, and consents naming the bank are refused.
    let page = user.get(&format!("/marketplace/{api}")).await;
    let again =
        user.post(&format!("/marketplace/{api}/connect"), &csrf_of(&page), &[("application", &app.to_string())]).await;
    assert_eq!(again.status, 200);
    assert_eq!(audits(&platform, "catalog.api.connected", "success"), 1);
    let page = user
        .post(&format!("/marketplace/{api}/disconnect"), &csrf_of(&page), &[("application", &app.to_string())])
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page.assert_contains(&format!("id=\"connection-{app}\">Disconnected"));
    let disconnected_at: Option<String> = db(&platform)
        .query_row(
            "SELECT disconnected_at FROM api_connections WHERE application_id = ?1 AND status = 'disconnected'",
            [app],
            |r| r.get(0),
        )
        .unwrap();
    assert!(disconnected_at.is_some());
    assert_eq!(audits(&platform, "catalog.api.disconnected", "success"), 1);
    assert!(kopir::catalog::connected_api(&db(&platform), app, bank_org).unwrap().is_none());
    let error = common::expect_ob_error(post_consent().await, 400, "UK.OBIE.Field.Invalid").await;
    assert!(error["Errors"][0]["Message"].as_str().unwrap().contains("not connected"), "{error}");
    let twice = user
        .post(&format!("/marketplace/{api}/disconnect"), &csrf_of(&page), &[("application", &app.to_string())])
        .await;
    assert_eq!(twice.status, 409);

    // Reconnecting reactivates the same row.
    let page =
        user.post(&format!("/marketplace/{api}/connect"), &csrf_of(&page), &[("application", &app.to_string())]).await;
    assert_eq!(page.status, 200);
    assert_eq!(count(&platform, "SELECT count(*) FROM api_connections"), 1);
    assert_eq!(
        count(&platform, "SELECT count(*) FROM api_connections WHERE status = 'active' AND disconnected_at IS NULL"),
        1
    );
    assert_eq!(post_consent().await.status(), 201);

    // The provider withdraws the API: connected applications are still served, but no new consents or connections.
    let page = bank_admin.submit(&format!("/org/apis/{api}"), &format!("/org/apis/{api}/withdraw"), &[]).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(status_of(&platform, api), "deprecated");
    assert_eq!(audits(&platform, "catalog.api.deprecated", "success"), 1);
    let still = kopir::catalog::connected_api(&db(&platform), app, bank_org).unwrap().unwrap();
    assert_eq!(still.status, kopir::catalog::ApiStatus::Deprecated);
    common::expect_ob_error(post_consent().await, 400, "UK.OBIE.Field.Invalid").await;
    let (second, _, _) = application(&user, "Second App").await;
    let page = user.get(&format!("/marketplace/{api}")).await;
    page.assert_contains("Deprecated");
    let refused = user
        .post(&format!("/marketplace/{api}/connect"), &csrf_of(&page), &[("application", &second.to_string())])
        .await;
    assert_eq!(refused.status, 403);
    refused.assert_contains("This API takes no new connections");

    // Retired: gone from the marketplace, and its connections end.
    bank_admin.submit(&format!("/org/apis/{api}"), &format!("/org/apis/{api}/retire"), &[]).await;
    assert_eq!(status_of(&platform, api), "retired");
    assert_eq!(count(&platform, "SELECT count(*) FROM api_connections WHERE status = 'active'"), 0);
    assert!(kopir::catalog::connected_api(&db(&platform), app, bank_org).unwrap().is_none());
    assert_eq!(user.get(&format!("/marketplace/{api}")).await.status, 404);
    assert_eq!(audits(&platform, "catalog.api.retired", "success"), 1);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn only_accredited_api_users_in_good_standing_connect_their_own_active_applications() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let (_, _, api, _bank) = published_api(&platform, &ca, "99050000041", "Altyn Bank JSC", "altyn.admin", &[]).await;
    let user_bin = bin("99050000049");
    let mut user = admin_of_new_organisation(&platform, &user_bin, "Fintech One LLP", "fintech.admin").await;
    accredit(&platform, &user_bin).await;
    let (app, _, _) = application(&user, "Budget App").await;

    // An organisation accredited as provider only: told why, refused, journalled.
    let provider_bin = bin("99050000042");
    let provider = admin_of_new_organisation(&platform, &provider_bin, "Dala Bank JSC", "dala.admin").await;
    accredit_as(&platform, &provider_bin, true, false).await;
    let page = provider.get(&format!("/marketplace/{api}")).await;
    page.assert_contains("Only an organisation accredited as API user connects applications to APIs.");
    assert!(!page.body.contains("/connect\""));
    assert_eq!(connect_as(&provider, api, app).await.status, 403);
    // Registered, not accredited.
    let newcomer_bin = bin("99050000043");
    let newcomer = admin_of_new_organisation(&platform, &newcomer_bin, "Newcomer LLP", "newcomer.admin").await;
    assert_eq!(connect_as(&newcomer, api, app).await.status, 403);
    assert_eq!(audits(&platform, "catalog.api.connect", "denied"), 2);

    // Another organisation's application is not found; an analyst may not connect.
    let other_bin = bin("99050000044");
    let other = admin_of_new_organisation(&platform, &other_bin, "Fintech Two LLP", "fintech2.admin").await;
    accredit(&platform, &other_bin).await;
    assert_eq!(connect_as(&other, api, app).await.status, 404);
    let analyst = member(&platform, &user_bin, "fintech.analyst", Role::ParticipantAnalyst).await;
    let page = analyst.get(&format!("/marketplace/{api}")).await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("/connect\""));
    assert_eq!(connect_as(&analyst, api, app).await.status, 403);

    // A disabled application is refused until enabled again.
    user.submit(&format!("/org/apps/{app}"), &format!("/org/apps/{app}/disable"), &[]).await;
    let refused = connect_as(&user, api, app).await;
    assert_eq!(refused.status, 403);
    refused.assert_contains("The application is disabled");
    user.submit(&format!("/org/apps/{app}"), &format!("/org/apps/{app}/enable"), &[]).await;

    // A suspended API user is refused at once: suspension ends its sessions, so a form it still holds connects
    // nothing and the marketplace sends it to sign in.
    let page = user.get(&format!("/marketplace/{api}")).await;
    common::participant::set_status(&platform, &user_bin, "suspended").await;
    let refused =
        user.post(&format!("/marketplace/{api}/connect"), &csrf_of(&page), &[("application", &app.to_string())]).await;
    assert!(
        refused.url.ends_with("/login"),
        "the held form was not sent to sign in: {} {}",
        refused.status,
        refused.url
    );
    // The (public) marketplace now shows it as a visitor: no connections, no form.
    let page = user.get(&format!("/marketplace/{api}")).await;
    assert!(page.status == 200 && !page.body.contains("class=\"who\"") && !page.body.contains("/connect\""));
    assert_eq!(count(&platform, "SELECT count(*) FROM api_connections"), 0);

    // Reinstated, it signs in again and connects.
    common::participant::set_status(&platform, &user_bin, "accredited").await;
    let signed_in = user.sign_in("fintech.admin", "fintech.admin-Passw0rd-long").await;
    assert!(signed_in.url.ends_with("/org"), "{}: {}", signed_in.url, signed_in.body);
    let page = connect_as(&user, api, app).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(count(&platform, "SELECT count(*) FROM api_connections WHERE status = 'active'"), 1);
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_reference_bank_passes_the_publication_check() {
    // The bank's certificate authority exists before the platform starts, so that the platform can trust it.
    let dir = tempfile::tempdir().unwrap();
    let bank_dir = dir.path().join("refbank");
    let pki = kopir::refbank::pki::load_or_create(&bank_dir, "Altyn Bank JSC").unwrap();
    let platform = Platform::start_with(|c| c.gateway.provider_ca_file = pki.ca_file.clone(), None).await;
    let bank_bin = bin("99050000061");
    let config = kopir::refbank::BankConfig::new(
        "Altyn Bank JSC",
        bank_bin.clone(),
        bank_dir,
        platform.url(""),
        platform.root_pem(),
    );
    let refbank = kopir::refbank::start(config).await.unwrap();
    let admin = admin_of_new_organisation(&platform, &bank_bin, "Altyn Bank JSC", "altyn.admin").await;
    accredit(&platform, &bank_bin).await;
    let page = create_api(&admin, &passport(&refbank.base_url)).await;
    let id = api_id(&page);
    let page = publish(&admin, id).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(status_of(&platform, id), "published");
    let (passed, findings) = last_check(&platform, id);
    assert!(passed, "{findings}");
    assert!(finding(&findings, "error.shape")["evidence"].as_str().unwrap().contains("UK.OBIE."), "{findings}");
    refbank.shutdown().await;
    platform.shutdown().await;
}

/// Signs in with Chromium (enrolling TOTP on the first sign-in) and waits for the workspace.
async fn chrome_sign_in(chrome: &common::chrome::Chrome, username: &str, password: &str) {
    chrome.goto("/login").await;
    chrome.fill("username", username).await;
    chrome.fill("password", password).await;
    chrome.click("form[action='/login'] button[type=submit]").await;
    chrome.wait_path("/account/enrol").await;
    let secret = kopir::identity::totp::parse_secret_text(&chrome.text("#totp-secret").await).unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    chrome.fill("code", &kopir::identity::totp::code_at(&secret, username, now).unwrap()).await;
    chrome.click("form[action='/account/enrol'] button[type=submit]").await;
    chrome.wait_path("/org").await;
}

/// In a real browser (screenshots in `target/tmp/screenshots/catalog/`): a bank describes and publishes its API, a
/// fintech registers an application, finds the API in the marketplace (in Kazakh too) and connects it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_a_bank_publishes_and_a_fintech_connects() {
    let ca = TestCa::new("Test Banks CA");
    let platform = platform_trusting(&ca).await;
    let bank_bin = bin("99050000051");
    let bank = Reference::start(&ca, &platform, &bank_bin).await;
    let (bank_admin, bank_password) =
        common::browser::register_organisation(&platform, &bank_bin, "Altyn Bank JSC", "altyn.admin").await;
    accredit(&platform, &bank_bin).await;
    let user_bin = bin("99050000059");
    let (user_admin, user_password) =
        common::browser::register_organisation(&platform, &user_bin, "Qaz Budget LLP", "qaz.admin").await;
    accredit(&platform, &user_bin).await;
    let base = format!("https://localhost:{}", platform.addr.port());

    let chrome = common::chrome::Chrome::start(&base, "catalog").await;
    chrome_sign_in(&chrome, &bank_admin, &bank_password).await;
    chrome.goto("/org/apis").await;
    chrome.wait_text("Describe a new API").await;
    chrome.fill("name", "Current accounts").await;
    chrome.fill("version", "1.0").await;
    chrome.fill("description", "Accounts, balances and a year of transactions of personal current accounts").await;
    chrome.fill("sandbox_base_url", &bank.url()).await;
    chrome.fill("production_base_url", "https://api.altyn.test/ob").await;
    chrome.fill("sla_response_ms", "800").await;
    chrome.fill("timeout_ms", "3000").await;
    chrome.shot("01-passport").await;
    chrome.click("form[action='/org/apis'] button[type=submit]").await;
    chrome.wait_path("/org/apis/1").await;
    chrome.wait_text("Not checked yet.").await;
    chrome.shot("02-draft").await;
    chrome.click("form[action='/org/apis/1/publish'] button[type=submit]").await;
    chrome.wait_text("UK.OBIE.Header.Missing").await;
    assert_eq!(chrome.text("#api-status").await, "Published");
    chrome.shot("03-published").await;
    chrome.click("form[action='/logout'] button[type=submit]").await;
    chrome.wait_path("/").await;

    chrome_sign_in(&chrome, &user_admin, &user_password).await;
    chrome.goto("/org/apps").await;
    chrome.fill("name", "Qaz Budget").await;
    chrome.fill("redirect_uris", "https://app.qazbudget.test/callback").await;
    chrome.fill("csr", &common::Csr::new("qaz-budget").csr_pem).await;
    chrome.click("form[action='/org/apps'] button[type=submit]").await;
    chrome.wait_text("Transport certificates").await;
    chrome.goto("/marketplace").await;
    chrome.fill("q", "balances").await;
    chrome.click("form[action='/marketplace'] button[type=submit]").await;
    chrome.wait_text("APIs (1)").await;
    chrome.shot("04-marketplace-search").await;
    chrome.click("a[href='/marketplace/1']").await;
    chrome.wait_path("/marketplace/1").await;
    chrome.wait_text("Not connected").await;
    chrome.shot("05-api-passport").await;
    chrome.click("form[action='/marketplace/1/connect'] button[type=submit]").await;
    chrome.wait_text("Disconnect").await;
    assert_eq!(count(&platform, "SELECT count(*) FROM api_connections WHERE status = 'active'"), 1);
    chrome.shot("06-connected").await;
    chrome.click("a[href='/lang/kk']").await;
    chrome.wait_text("Қосылған").await;
    chrome.shot("07-connected-kk").await;
    chrome.goto("/marketplace").await;
    chrome.wait_text("Маркетплейс").await;
    chrome.shot("08-marketplace-kk").await;
    chrome.close().await;
    platform.shutdown().await;
}
