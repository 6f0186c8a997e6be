//! The egress guard against server-side request forgery: on a production platform, webhook deliveries and bank calls
//! to addresses that are not public (loopback, private, link-local / cloud metadata…) are refused after resolution
//! and before any connection, unless the operator allowed the network; participants see only a coarse reason.
//!
//! Names are resolved by a resolver the test controls, and every endpoint listens on loopback: a refusal is proven by
//! the endpoint never seeing a connection, and nothing leaves the machine (10.0.0.1 and 169.254.169.254 are refused
//! before any connection is attempted; were the guard missing, the test would fail on the operator's detail).

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::common::browser::{Browser, bin, operator_user};
use crate::common::participant::{admin_of_new_organisation, csrf_of, db};
use crate::common::{self, Platform};
use axum::body::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kopir::config::{Config, Mode};
use kopir::egress::{Guard, Lookup, Purpose};
use kopir::store::StoreError;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::json;

/// A resolver answering from a fixed table; any other name does not exist.
struct Hosts(HashMap<String, Vec<IpAddr>>);

impl Lookup for Hosts {
    fn lookup(&self, host: String) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let found = self.0.get(&host).cloned();
        Box::pin(async move {
            found.ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, format!("{host}: no such name")))
        })
    }
}

fn hosts(table: &[(&str, &str)]) -> Arc<dyn Lookup> {
    let mut map: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for (name, address) in table {
        map.entry(name.to_string()).or_default().push(address.parse().unwrap());
    }
    Arc::new(Hosts(map))
}

/// Production mode (with the command adapters production demands) and quick webhook retries.
fn production(config: &mut Config) {
    config.mode = Mode::Production;
    config.trust.sms_adapter = kopir::config::SmsAdapter::Command;
    config.trust.sms_command = "/nonexistent/sms-gateway".into();
    config.trust.biometric_adapter = kopir::config::BiometricAdapter::Command;
    config.trust.biometric_command = "/nonexistent/face-check".into();
    config.webhooks.retry_initial_secs = 1;
    config.webhooks.retry_max_secs = 2;
    config.webhooks.timeout_secs = 3;
}

/// An HTTPS endpoint on a loopback address with a certificate from the platform's CA for `names`, counting the TCP
/// connections it accepts and answering every request with 200.
struct Endpoint {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
}

impl Endpoint {
    async fn start(platform: &Platform, bind: &str, names: &[&str]) -> Endpoint {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let identity = platform.forge_with_platform_ca("endpoint.test", |p| {
            p.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
            p.subject_alt_names =
                names.iter().map(|n| rcgen::SanType::DnsName(n.as_str().try_into().unwrap())).collect();
        });
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(identity.chain_pem.as_bytes()).map(|c| c.unwrap()).collect();
        let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
        let listener = tokio::net::TcpListener::bind(bind).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else { return };
                    let service = hyper::service::service_fn(|_: hyper::Request<hyper::body::Incoming>| async {
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(http_body_util::Full::new(
                            Bytes::from_static(b"{}"),
                        )))
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Endpoint { addr, accepted }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn organisation(platform: &Platform, digits: &str, name: &str, url: &str) -> i64 {
    let new = kopir::participants::NewOrganisation {
        bin: bin(digits).parse().unwrap(),
        name: name.into(),
        licence_number: "1.2.34/56".into(),
        contact_email: "ops@bank.kz".into(),
        contact_phone: "+7 727 250 00 00".into(),
    };
    let url = url.to_string();
    platform
        .running()
        .state
        .db
        .write(move |tx| {
            let id = kopir::participants::insert(tx, &new, kopir::clock::now())?;
            kopir::notify::set_webhook_url(tx, id, &url, kopir::clock::now())?;
            Ok::<_, StoreError>(id)
        })
        .await
        .unwrap()
}

async fn enqueue(platform: &Platform, organisation: i64) -> String {
    let now = platform.running().state.clock.now();
    platform
        .running()
        .state
        .db
        .write(move |tx| {
            kopir::notify::enqueue(tx, organisation, "consent.revoked", &json!({ "ConsentId": "aac-egress" }), now)
                .map_err(StoreError::from)
        })
        .await
        .unwrap()
}

/// (status, attempts, last_error, last_error_detail) of an event once `done` holds.
async fn settled(
    platform: &Platform,
    event_id: &str,
    done: impl Fn(&str, i64) -> bool,
) -> (String, i64, String, String) {
    common::eventually(&format!("event {event_id} to settle"), Duration::from_secs(15), async || {
        let row: (String, i64, String, String) = db(platform)
            .query_row(
                "SELECT status, attempts, last_error, last_error_detail FROM webhook_outbox WHERE event_id = ?1",
                [event_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .unwrap();
        if done(&row.0, row.1) { Ok(row.clone()) } else { Err(row) }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_refuses_webhooks_to_private_metadata_and_loopback_addresses_before_connecting() {
    let lookup = hosts(&[
        ("hooks.internal.test", "10.0.0.1"),
        ("metadata.internal.test", "169.254.169.254"),
        ("localhost", "127.0.0.1"),
        ("mapped.internal.test", "::ffff:127.0.0.1"),
    ]);
    let platform = Platform::start_with_lookup(production, lookup).await;
    let receiver = Endpoint::start(&platform, "127.0.0.1:0", &["localhost", "mapped.internal.test"]).await;
    let port = receiver.addr.port();

    let cases = [
        ("https://hooks.internal.test/hook", "10.0.0.1"),
        ("https://metadata.internal.test/latest/meta-data", "169.254.169.254"),
        ("https://169.254.169.254/latest/meta-data", "169.254.169.254"),
        (&*format!("https://localhost:{port}/hook"), "127.0.0.1"),
        (&*format!("https://127.0.0.1:{port}/hook"), "127.0.0.1"),
        (&*format!("https://[::ffff:127.0.0.1]:{port}/hook"), "127.0.0.1"),
        (&*format!("https://mapped.internal.test:{port}/hook"), "::ffff:127.0.0.1"),
    ];
    for (i, (url, address)) in cases.iter().enumerate() {
        let org = organisation(&platform, &format!("9901500010{i}"), &format!("Probe {i} LLP"), url).await;
        let event = enqueue(&platform, org).await;
        let (status, _, shown, detail) = settled(&platform, &event, |_, attempts| attempts >= 1).await;
        assert_eq!(status, "pending", "{url}");
        assert_eq!(shown, "could not connect", "{url}: the participant sees only that much");
        assert!(detail.contains("egress guard") && detail.contains(address), "{url}: {detail}");
    }
    assert_eq!(receiver.accepted(), 0, "a refused delivery reached the receiver");

    // The participant's members see the coarse reason on their profile page; the operator's console has the detail.
    let participant_bin = bin("99015000200");
    let admin = admin_of_new_organisation(&platform, &participant_bin, "Prober JSC", "prober.admin").await;
    let page = admin.get("/org/profile").await;
    let saved = admin
        .post("/org/profile/webhook", &csrf_of(&page), &[("webhook_url", "https://metadata.internal.test/latest")])
        .await;
    assert_eq!(saved.status, 200, "{}", saved.body);
    let org: i64 = db(&platform)
        .query_row("SELECT id FROM organisations WHERE bin = ?1", [&participant_bin], |r| r.get(0))
        .unwrap();
    let event = enqueue(&platform, org).await;
    settled(&platform, &event, |_, attempts| attempts >= 1).await;
    let page = admin.get("/org/profile").await;
    page.assert_contains(&event).assert_contains("could not connect");
    for hidden in ["169.254", "egress", "not a public address", "allowed_networks"] {
        assert!(!page.body.contains(hidden), "the participant's page shows {hidden:?}");
    }
    let password = operator_user(&platform, "egress.operator", kopir::identity::Role::OperatorStaff).await;
    let mut operator = Browser::new(&platform);
    operator.sign_in("egress.operator", &password).await;
    let console = operator.get(&format!("/console/participants/{org}")).await;
    assert_eq!(console.status, 200, "{}", console.body);
    console.assert_contains(&event).assert_contains("169.254.169.254").assert_contains("webhooks.allowed_networks");
    platform.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_network_is_reached_and_without_the_allowance_it_is_refused() {
    let lookup = hosts(&[("localhost", "127.0.0.1"), ("metadata.internal.test", "169.254.169.254")]);
    let platform = Platform::start_with_lookup(
        |c| {
            production(c);
            c.webhooks.allowed_networks = vec!["127.0.0.0/8".parse().unwrap()];
        },
        lookup.clone(),
    )
    .await;
    let receiver = Endpoint::start(&platform, "127.0.0.1:0", &["localhost"]).await;
    let allowed = organisation(
        &platform,
        "99015000301",
        "Private Net Bank JSC",
        &format!("https://localhost:{}/hook", receiver.addr.port()),
    )
    .await;
    let event = enqueue(&platform, allowed).await;
    let (status, attempts, shown, _) = settled(&platform, &event, |status, _| status == "delivered").await;
    assert_eq!((status.as_str(), attempts, shown.as_str()), ("delivered", 1, ""));
    assert_eq!(receiver.accepted(), 1);
    // The allowance is for that network only.
    let outside = organisation(&platform, "99015000302", "Outside JSC", "https://metadata.internal.test/x").await;
    let event = enqueue(&platform, outside).await;
    let (_, _, shown, detail) = settled(&platform, &event, |_, attempts| attempts >= 1).await;
    assert_eq!(shown, "could not connect");
    assert!(detail.contains("169.254.169.254"), "{detail}");
    platform.shutdown().await;

    // The same receiver, a platform without the allowance: refused before connecting.
    let platform = Platform::start_with_lookup(production, lookup).await;
    let refused = organisation(
        &platform,
        "99015000303",
        "Private Net Bank JSC",
        &format!("https://localhost:{}/hook", receiver.addr.port()),
    )
    .await;
    let event = enqueue(&platform, refused).await;
    let (_, _, shown, detail) = settled(&platform, &event, |_, attempts| attempts >= 1).await;
    assert_eq!(shown, "could not connect");
    assert!(detail.contains("egress guard") && detail.contains("127.0.0.1"), "{detail}");
    assert_eq!(receiver.accepted(), 1, "the refused delivery reached the receiver");
    platform.shutdown().await;
}

/// A bank call: the gateway's client for banks, on a production platform, refuses a bank whose name resolves to an
/// address outside `gateway.allowed_networks` (and the same address as a literal) before connecting, and calls it once
/// its network is allowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bank_client_refuses_banks_outside_the_allowed_networks_before_connecting() {
    let lookup = hosts(&[("bank.internal.test", "127.0.0.2"), ("metadata.internal.test", "169.254.169.254")]);
    let platform = Platform::start_with_lookup(production, lookup.clone()).await;
    let bank = Endpoint::start(&platform, "127.0.0.2:0", &["bank.internal.test"]).await;
    let port = bank.addr.port();
    let call = |client: &kopir::gateway::provider::BankClient, url: String| {
        let request = hyper::Request::get(url.parse::<hyper::Uri>().unwrap()).body(Empty::<Bytes>::new()).unwrap();
        client.request(request)
    };

    let config = platform.config.clone();
    let client =
        kopir::gateway::provider::client(&config, Guard::for_purpose(&config, Purpose::Banks, lookup.clone())).unwrap();
    for url in [
        format!("https://bank.internal.test:{port}/open-banking/v1/aisp/accounts"),
        format!("https://127.0.0.2:{port}/open-banking/v1/aisp/accounts"),
        "https://metadata.internal.test/latest/meta-data".to_string(),
    ] {
        let error = call(&client, url.clone()).await.expect_err(&url);
        let refused = kopir::egress::refusal(&error).unwrap_or_else(|| panic!("{url}: not the guard: {error:?}"));
        assert!(refused.to_string().contains("gateway.allowed_networks"), "{refused}");
    }
    assert_eq!(bank.accepted(), 0, "a refused bank call reached the bank");

    let mut allowing = config.clone();
    allowing.gateway.allowed_networks = vec!["127.0.0.2/32".parse().unwrap()];
    let client =
        kopir::gateway::provider::client(&allowing, Guard::for_purpose(&allowing, Purpose::Banks, lookup)).unwrap();
    let answer = call(&client, format!("https://bank.internal.test:{port}/open-banking/v1/aisp/accounts")).await;
    assert_eq!(answer.unwrap().status(), 200);
    assert_eq!(bank.accepted(), 1);
    platform.shutdown().await;
}

/// The sandbox's checks of a provider's API use the platform's credentials through the same guard as bank calls: on a
/// production platform a base URL on a private or metadata address is refused before connecting, and the finding
/// says so without the address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_checks_refuse_base_urls_outside_the_allowed_networks_before_connecting() {
    use kopir::sandbox::suite::{self, Credentials, Target};
    let lookup = hosts(&[("bank.internal.test", "127.0.0.2"), ("metadata.internal.test", "169.254.169.254")]);
    let platform = Platform::start_with_lookup(production, lookup).await;
    let bank = Endpoint::start(&platform, "127.0.0.2:0", &["bank.internal.test"]).await;
    let state = &platform.running().state;
    let credentials = Credentials::platform(
        &platform.config,
        state.db.clone(),
        state.signer.clone(),
        &platform.url(""),
        state.egress.banks.clone(),
    )
    .unwrap();
    for base_url in [
        format!("https://bank.internal.test:{}/open-banking/v1/aisp", bank.addr.port()),
        format!("https://127.0.0.2:{}/open-banking/v1/aisp", bank.addr.port()),
        "https://metadata.internal.test/latest".to_string(),
    ] {
        let target = Target {
            base_url: base_url.clone(),
            bin: bin("99015000401"),
            sla_ms: 1_000,
            timeout_ms: 3_000,
            customers: Vec::new(),
            with_customers: true,
        };
        let report = suite::run(&target, &credentials, &state.clock).await;
        assert!(report.failed() > 0, "{base_url}");
        let evidence: Vec<&str> = report.cases.iter().map(|c| c.evidence.as_str()).collect();
        assert!(
            evidence.iter().any(|e| e.contains("the address is not one the platform may call")),
            "{base_url}: {evidence:?}"
        );
        assert!(evidence.iter().all(|e| !e.contains("127.0.0.2") && !e.contains("169.254")), "{evidence:?}");
    }
    assert_eq!(bank.accepted(), 0, "a refused check reached the bank");
    platform.shutdown().await;
}
