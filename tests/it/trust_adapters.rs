//! The `http` adapters against a vendor served over real TLS from its own CA: requests are signed and verifiable,
//! answers are honoured, a wrong key or a slow vendor is an error — never a pass.

use crate::common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use hyper_util::rt::{TokioExecutor, TokioIo};
use kopir::trust::biometric::{BiometricError, BiometricVerifier, Verdict};
use kopir::trust::phone::PhoneRegistry;
use kopir::trust::sms::{SmsError, SmsSender};
use kopir::trust::webhook::signature;
use rcgen::{CertificateParams, KeyPair};
use tower::ServiceExt;

const KEY: &str = "0123456789abcdef0123456789abcdef-vendor-key";

/// A vendor: checks the signature (HMAC over "t.body" with the shared key), records the body, answers.
async fn vendor(received: Arc<Mutex<Vec<serde_json::Value>>>) -> (SocketAddr, String) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&key, &issuer).unwrap();
    let tls = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()))
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(tls));
    let handler = move |headers: HeaderMap, body: Bytes| {
        let received = received.clone();
        async move {
            let header = headers.get("x-kopir-signature").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let t: i64 =
                header.split(',').next().and_then(|p| p.strip_prefix("t=")).and_then(|t| t.parse().ok()).unwrap_or(0);
            if header != signature(KEY.as_bytes(), t, &body) {
                return (StatusCode::UNAUTHORIZED, "bad signature".to_string());
            }
            let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
            received.lock().unwrap().push(request.clone());
            let answer = match request["kind"].as_str() {
                Some("sms") => serde_json::json!({ "ok": true }),
                _ if request["session"] == "slow" => {
                    // A vendor slower than the adapter's time-out: the real network wait is what is tested.
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    serde_json::json!({ "ok": true, "liveness": true, "match": true })
                }
                Some("phone") => serde_json::json!({ "ok": true, "owner": request["phone"] == "+77011234567" }),
                // A real vendor echoes the nonce its capture widget was given with this capture.
                _ => serde_json::json!({
                    "ok": true, "liveness": true, "match": request["session"] == "me", "nonce": request["nonce"]
                }),
            };
            (StatusCode::OK, answer.to_string())
        }
    };
    let app = Router::new()
        .route("/sms", post(handler.clone()))
        .route("/biometric", post(handler.clone()))
        .route("/phone", post(handler));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let service = hyper::service::service_fn(move |r: hyper::Request<hyper::body::Incoming>| {
                    app.clone().oneshot(r.map(axum::body::Body::new))
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca_cert.pem())
}

fn config(dir: &std::path::Path, addr: SocketAddr, ca_pem: &str, key: &str) -> kopir::config::Config {
    use std::os::unix::fs::PermissionsExt;
    let mut config = common::test_config(dir);
    let key_file = dir.join("vendor.key");
    std::fs::write(&key_file, key).unwrap();
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(dir.join("vendor-ca.pem"), ca_pem).unwrap();
    config.trust.sms_adapter = kopir::config::SmsAdapter::Http;
    config.trust.biometric_adapter = kopir::config::BiometricAdapter::Http;
    config.trust.sms_url = format!("https://localhost:{}/sms", addr.port());
    config.trust.biometric_url = format!("https://localhost:{}/biometric", addr.port());
    config.trust.phone_adapter = kopir::config::PhoneAdapter::Http;
    config.trust.phone_url = format!("https://localhost:{}/phone", addr.port());
    config.trust.webhook_secret_file = key_file;
    config.trust.vendor_ca_file = dir.join("vendor-ca.pem");
    config.trust.adapter_timeout_secs = 1;
    config
}

fn iin() -> kopir::kz::Iin {
    let digits = (10..99).find_map(|i| kopir::kz::with_control_digit(&format!("850101300{i:02}"))).unwrap();
    kopir::kz::Iin::parse(&digits).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_adapters_sign_their_requests_and_never_pass_on_failure() {
    let received = Arc::new(Mutex::new(Vec::new()));
    let (addr, ca) = vendor(received.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), addr, &ca, KEY);
    // The adapters resolve "localhost" like any client; the vendor listens on 127.0.0.1.
    let (db, _) = kopir::store::Db::open(&dir.path().join("t.db"), Default::default(), true).unwrap();

    let sms = SmsSender::from_config(&config, &db).unwrap();
    sms.send("+77010000000", "Your kopir code: 482913").await.unwrap();
    let bio = BiometricVerifier::from_config(&config).unwrap();
    assert_eq!(bio.verify(&iin(), "me", "n-1").await.unwrap(), Verdict::Passed);
    assert_eq!(bio.verify(&iin(), "someone else", "n-1").await.unwrap(), Verdict::NoMatch);
    assert!(matches!(bio.verify(&iin(), "slow", "n-1").await, Err(BiometricError::Timeout(_))));
    let registry = PhoneRegistry::from_config(&config).unwrap();
    assert!(registry.owns(&iin(), "+77011234567").await.unwrap());
    assert!(!registry.owns(&iin(), "+77019999999").await.unwrap());
    let seen = received.lock().unwrap().clone();
    assert_eq!(seen[0]["kind"], "sms");
    assert_eq!(seen[0]["to"], "+77010000000");
    assert_eq!(seen[1]["iin"], iin().as_str());
    assert_eq!(seen[1]["nonce"], "n-1");
    let asked = seen.iter().find(|r| r["kind"] == "phone").unwrap();
    assert_eq!((asked["iin"].as_str(), asked["phone"].as_str()), (Some(iin().as_str()), Some("+77011234567")));

    // Signed with another key: the vendor refuses, and that is an error, not a pass.
    let forged_dir = tempfile::tempdir().unwrap();
    let forged = config_with_key(forged_dir.path(), addr, &ca);
    let sms = SmsSender::from_config(&forged, &db).unwrap();
    assert!(matches!(sms.send("+77010000000", "x").await, Err(SmsError::Unavailable(_))));
    assert!(BiometricVerifier::from_config(&forged).unwrap().verify(&iin(), "me", "n-1").await.is_err());
    assert!(PhoneRegistry::from_config(&forged).unwrap().owns(&iin(), "+77011234567").await.is_err());

    // A vendor certificate the platform does not trust is refused.
    let mut untrusted = config.clone();
    untrusted.trust.vendor_ca_file = std::path::PathBuf::new();
    assert!(SmsSender::from_config(&untrusted, &db).unwrap().send("+77010000000", "x").await.is_err());

    // A key file that is too short, or readable by others, stops the adapter from being built.
    std::fs::write(dir.path().join("short.key"), "short").unwrap();
    let mut short = config.clone();
    short.trust.webhook_secret_file = dir.path().join("short.key");
    assert!(SmsSender::from_config(&short, &db).is_err());
}

fn config_with_key(dir: &std::path::Path, addr: SocketAddr, ca: &str) -> kopir::config::Config {
    config(dir, addr, ca, "another-key-another-key-another-key-0000")
}
