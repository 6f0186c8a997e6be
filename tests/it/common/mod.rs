//! Test harness: a real kopir server on 127.0.0.1:0 with a temporary data directory, real TLS and certificates from
//! its own CA, plus helpers to call it like a bank would and to run the `kopir` binary against the same data.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod chrome;
pub mod consent;
pub mod exchange;
pub mod participant;
pub mod wire;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use kopir::config::Config;
use kopir::web::{AppState, Running};
use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

pub struct Platform {
    pub dir: tempfile::TempDir,
    pub config: Config,
    pub addr: SocketAddr,
    pub admin_addr: Option<SocketAddr>,
    running: Option<Running>,
}

/// The test configuration: everything in a temporary directory, ports chosen by the kernel, logs quiet.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::defaults().expect("defaults are valid");
    config.data_dir = dir.join("data");
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    config.admin.listen = "127.0.0.1:0".parse().unwrap();
    // Port 0: the platform advertises the port it actually bound.
    config.server.public_url = "https://localhost:0".into();
    config.log.stderr = false;
    config.server.shutdown_grace_secs = 10;
    // Tests send many requests from 127.0.0.1 in quick succession. The rate limits stay on (every request passes
    // the middleware) but high enough that only the tests about limits, which lower them, meet them.
    config.limits.pages_per_second = 100_000;
    config.limits.pages_burst = 100_000;
    config.limits.sign_in_per_minute = 100_000;
    config.limits.sign_in_burst = 100_000;
    config.limits.oauth_per_second = 100_000;
    config.limits.oauth_burst = 100_000;
    config
}

impl Platform {
    pub async fn start() -> Platform {
        Platform::start_with(|_| {}, None).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config), extra: Option<Router<AppState>>) -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        kopir::bootstrap::init(&config, "test:harness", kopir::clock::now()).await.expect("init");
        let running = kopir::web::start(config.clone(), extra).await.expect("server starts");
        Platform { addr: running.addr, admin_addr: running.admin_addr, running: Some(running), dir, config }
    }

    /// [`Platform::start_with`], with the names of the platform's outgoing calls resolved by `lookup`: a test maps
    /// names to the addresses it wants the egress guard to judge, and no query leaves the machine.
    pub async fn start_with_lookup(
        tweak: impl FnOnce(&mut Config),
        lookup: Arc<dyn kopir::egress::Lookup>,
    ) -> Platform {
        let dir = tempfile::tempdir().unwrap();
        let mut config = test_config(dir.path());
        tweak(&mut config);
        kopir::bootstrap::init(&config, "test:harness", kopir::clock::now()).await.expect("init");
        let running = kopir::web::start_with_lookup(config.clone(), None, lookup).await.expect("server starts");
        Platform { addr: running.addr, admin_addr: running.admin_addr, running: Some(running), dir, config }
    }

    /// Wraps a server started by the test itself.
    pub fn attach(dir: tempfile::TempDir, config: Config, running: Running) -> Platform {
        Platform { addr: running.addr, admin_addr: running.admin_addr, running: Some(running), dir, config }
    }

    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://localhost:{}{}", self.addr.port(), path)
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("pki/root-ca.pem")).unwrap()
    }

    /// A client that trusts only the platform root and presents `identity` (if any).
    pub fn client(&self, identity: Option<&Identity>) -> reqwest::Client {
        client_for(self.addr, &self.root_pem(), identity, None)
    }

    /// The `kopir` binary, pointed at this platform's data directory.
    pub fn kopir(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kopir"));
        cmd.arg("--data-dir").arg(self.data_dir());
        cmd.env_remove("KOPIR_CONFIG");
        cmd
    }

    pub fn running(&self) -> &Running {
        self.running.as_ref().expect("running")
    }

    /// The platform's clock: tests move it forward instead of sleeping.
    pub fn clock(&self) -> &kopir::clock::Clock {
        &self.running().state.clock
    }

    pub fn take_running(&mut self) -> Running {
        self.running.take().expect("running")
    }

    /// Makes a key and a CSR, has `kopir ca issue` sign it, and returns the identity.
    pub fn issue_identity(&self, common_name: &str) -> Identity {
        let csr = Csr::new(common_name);
        let out = self.dir.path().join(format!("{common_name}.pem"));
        let csr_path = self.dir.path().join(format!("{common_name}.csr"));
        std::fs::write(&csr_path, &csr.csr_pem).unwrap();
        let output = self
            .kopir()
            .args(["ca", "issue", "--label", "test"])
            .arg("--csr")
            .arg(&csr_path)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert_success(&output);
        Identity { chain_pem: std::fs::read_to_string(&out).unwrap(), key_pem: csr.key_pem }
    }

    /// Signs a client certificate directly with the platform's issuing CA key, bypassing the database — for
    /// certificates the CLI would never make (already expired, never recorded).
    pub fn forge_with_platform_ca(&self, common_name: &str, tweak: impl FnOnce(&mut CertificateParams)) -> Identity {
        let pki = self.data_dir().join("pki");
        let ca_pem = std::fs::read_to_string(pki.join("issuing-ca.pem")).unwrap();
        let ca_key = KeyPair::from_pem(&std::fs::read_to_string(pki.join("issuing-ca.key")).unwrap()).unwrap();
        let issuer = rcgen::Issuer::from_ca_cert_pem(&ca_pem, ca_key).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        params.serial_number = Some(kopir::pki::random_serial());
        tweak(&mut params);
        let cert = params.signed_by(&key, &issuer).unwrap();
        Identity { chain_pem: format!("{}{}", cert.pem(), ca_pem), key_pem: key.serialize_pem() }
    }

    /// Stops the server but keeps the temporary directory (for tests that go on with its files).
    pub async fn shutdown_keep_dir(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }
}

/// A private key and the certificate chain that goes with it.
#[derive(Clone)]
pub struct Identity {
    pub chain_pem: String,
    pub key_pem: String,
}

impl Identity {
    pub fn serial(&self) -> String {
        let der = CertificateDer::pem_slice_iter(self.chain_pem.as_bytes()).next().unwrap().unwrap();
        let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
        hex::encode(cert.raw_serial())
    }
}

/// A fresh P-256 key and a CSR for it, as a participant would make them.
pub struct Csr {
    pub key_pem: String,
    pub csr_pem: String,
}

impl Csr {
    pub fn new(common_name: &str) -> Csr {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.distinguished_name.push(DnType::OrganizationName, "Test Bank JSC");
        let csr = params.serialize_request(&key).unwrap();
        Csr { key_pem: key.serialize_pem(), csr_pem: csr.pem().unwrap() }
    }
}

/// A self-signed CA that is not the platform's, and a client certificate from it.
pub fn foreign_identity(common_name: &str) -> Identity {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.distinguished_name.push(DnType::CommonName, "Some Other CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, &issuer).unwrap();
    Identity { chain_pem: format!("{}{}", cert.pem(), ca_cert.pem()), key_pem: key.serialize_pem() }
}

/// A rustls client configuration trusting only `root_pem`.
pub fn tls_config(
    root_pem: &str,
    identity: Option<&Identity>,
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions.unwrap_or(rustls::DEFAULT_VERSIONS))
        .unwrap()
        .with_root_certificates(roots);
    match identity {
        Some(id) => {
            let chain: Vec<CertificateDer<'static>> =
                CertificateDer::pem_slice_iter(id.chain_pem.as_bytes()).map(|c| c.unwrap()).collect();
            let key = PrivateKeyDer::from_pem_slice(id.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    }
}

pub fn client_for(
    addr: SocketAddr,
    root_pem: &str,
    identity: Option<&Identity>,
    versions: Option<&[&'static rustls::SupportedProtocolVersion]>,
) -> reqwest::Client {
    reqwest::Client::builder()
        .use_preconfigured_tls(tls_config(root_pem, identity, versions))
        .resolve("localhost", addr)
        .build()
        .unwrap()
}

pub fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "command failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Checks the OBIE error body shape and returns it.
pub async fn expect_ob_error(response: reqwest::Response, status: u16, error_code: &str) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status, "unexpected status");
    let request_id = response.headers().get("x-request-id").map(|v| v.to_str().unwrap().to_string());
    assert_eq!(response.headers().get("content-type").map(|v| v.to_str().unwrap()), Some("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    let object = body.as_object().unwrap();
    for key in object.keys() {
        assert!(["Code", "Id", "Message", "Errors"].contains(&key.as_str()), "unexpected key {key} in {body}");
    }
    assert!(body["Code"].as_str().unwrap().starts_with(&status.to_string()), "{body}");
    assert!(!body["Message"].as_str().unwrap().is_empty());
    assert_eq!(body["Id"].as_str().map(str::to_string), request_id, "error Id is the request id");
    let errors = body["Errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert_eq!(errors[0]["ErrorCode"], error_code, "{body}");
    assert!(!errors[0]["Message"].as_str().unwrap().is_empty());
    body
}

/// How often [`eventually`] looks again.
const POLL_EVERY: Duration = Duration::from_millis(50);

/// Polls `probe` until it returns `Ok`, and returns that value. A probe answers `Err` with what it saw instead, and
/// after `within` (wall-clock time, whatever clock the platform runs on) the test fails, naming `what` it awaited and
/// the last thing seen. This is for states the system reaches in its own time (a background worker, a sweep, a server
/// noticing a closed connection, a page after its redirect), never for time itself to pass.
pub async fn eventually<T, S: std::fmt::Debug>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, S>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("waited {within:?} for {what}, in vain; last seen: {seen:?}")
            }
            Err(_) => tokio::time::sleep(POLL_EVERY).await,
        }
    }
}

pub fn data_path(dir: &Path, rel: &str) -> PathBuf {
    dir.join(rel)
}
