//! `kopir bench`: load through the gateway with live consent checks to a local reference bank, and the same load
//! through a bare TLS reverse proxy (nginx) in front of the same bank, for a ratio.
//!
//! The platform and the bank run as child processes (`kopir serve`, `kopir reference-bank`) so that the platform's
//! peak memory is its own; the load generator is this process: keep-alive HTTP/1.1 connections, each request timed.
//! Set-up goes through the platform's domain functions (the demo's), run once in-process before the platform starts.

pub mod billing;
pub mod checks;
pub mod reports;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use std::sync::Arc;

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::config::Config;
use crate::consent::{ChangedBy, NewConsent};
use crate::standard::Permission;

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
}

impl From<crate::store::StoreError> for BenchError {
    fn from(error: crate::store::StoreError) -> BenchError {
        setup(error)
    }
}

impl From<rusqlite::Error> for BenchError {
    fn from(error: rusqlite::Error) -> BenchError {
        setup(error)
    }
}

fn setup(what: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(what.to_string())
}

/// How to run the benchmark.
#[derive(Debug, Clone)]
pub struct BenchOptions {
    pub duration: Duration,
    pub warmup: Duration,
    pub connections: usize,
    /// The nginx binary; `None` skips the comparison.
    pub nginx: Option<PathBuf>,
    /// The `kopir` binary for the child processes.
    pub kopir: PathBuf,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Figures {
    pub requests: u64,
    pub errors: u64,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub peak_rss_kib: Option<u64>,
    /// CPU time per measured request of the process in front of the bank (kopir or nginx), of the bank, and of the
    /// load generator (this process), in microseconds: what a request costs, whatever else the machine is doing.
    pub cpu_us_per_request: Option<CpuPerRequest>,
}

#[derive(Debug, Clone, Copy)]
pub struct CpuPerRequest {
    pub front: f64,
    pub bank: f64,
    pub load: f64,
}

/// Processes whose CPU time is sampled over the measured window.
#[derive(Debug, Clone, Copy)]
struct Sampled {
    front: u32,
    bank: u32,
}

/// User + system CPU time of a process so far, from `/proc/<pid>/stat` (clock ticks of 10 ms: Linux's USER_HZ is
/// 100 on every architecture it exports to user space).
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn cpu_times(sampled: Sampled) -> Option<[Duration; 3]> {
    Some([cpu_time(sampled.front)?, cpu_time(sampled.bank)?, cpu_time(std::process::id())?])
}

fn free_port() -> Result<u16, BenchError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| setup(format!("no free port: {e}")))?;
    listener.local_addr().map(|a| a.port()).map_err(setup)
}

/// Kills a child process when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_for_port(port: u16, what: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_err() {
        if Instant::now() > deadline {
            return Err(setup(format!("{what} did not start listening on port {port}")));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// The peak resident memory of a process, from `/proc`.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Where the load goes: address, path, the request's headers, and the TLS set-up of the application's client.
#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    path: hyper::Uri,
    headers: HeaderMap,
    tls: Arc<rustls::ClientConfig>,
}

impl Target {
    /// The load's request: `GET` of the target's path with its headers.
    fn request(&self) -> hyper::Request<Empty<Bytes>> {
        let mut request = hyper::Request::new(Empty::new());
        *request.uri_mut() = self.path.clone();
        *request.headers_mut() = self.headers.clone();
        request
    }
}

/// One connection's record: the latency of each measured success (µs), and the failures.
type Timings = (Vec<u32>, u64);

/// Drives `connections` keep-alive connections at the target for the warm-up and then the measured duration.
async fn drive(target: Target, options: &BenchOptions, sampled: Sampled) -> Result<Figures, BenchError> {
    let warm_until = Instant::now() + options.warmup;
    let stop_at = warm_until + options.duration;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(warm_until.into()).await;
        let before = cpu_times(sampled)?;
        tokio::time::sleep_until(stop_at.into()).await;
        let after = cpu_times(sampled)?;
        Some([after[0] - before[0], after[1] - before[1], after[2] - before[2]])
    });
    // The connections run on one thread of their own: the load is apparatus, and a second thread would only add
    // wake-ups and work stealing that take CPU from the process measured.
    let connections = options.connections;
    let load = tokio::task::spawn_blocking(move || -> Result<Vec<Timings>, BenchError> {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(setup)?;
        Ok(runtime.block_on(async move {
            let workers: Vec<_> =
                (0..connections).map(|_| tokio::spawn(connection(target.clone(), warm_until, stop_at))).collect();
            let mut timings = Vec::with_capacity(workers.len());
            for worker in workers {
                if let Ok(t) = worker.await {
                    timings.push(t);
                }
            }
            timings
        }))
    });
    let timings = load.await.map_err(setup)??;
    let mut all: Vec<u32> = Vec::new();
    let mut errors = 0;
    for (latencies, e) in timings {
        all.extend(latencies);
        errors += e;
    }
    all.sort_unstable();
    let requests = all.len().max(1) as f64;
    let cpu_us_per_request = sampler.await.ok().flatten().map(|[front, bank, load]| CpuPerRequest {
        front: front.as_secs_f64() * 1e6 / requests,
        bank: bank.as_secs_f64() * 1e6 / requests,
        load: load.as_secs_f64() * 1e6 / requests,
    });
    let at = |q: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let index = ((all.len() as f64 - 1.0) * q).round() as usize;
        f64::from(all[index.min(all.len() - 1)]) / 1000.0
    };
    Ok(Figures {
        requests: all.len() as u64,
        errors,
        per_second: all.len() as f64 / options.duration.as_secs_f64(),
        p50_ms: at(0.50),
        p99_ms: at(0.99),
        peak_rss_kib: None,
        cpu_us_per_request,
    })
}

/// One keep-alive connection's loop: a request, its answer read whole, the next; a connection that breaks is made
/// again (and counted as an error). The load generator speaks HTTP/1.1 with hyper directly, one connection per
/// worker and no pool: it shares the CPUs with the process measured, so it should cost as little as a C tool would.
async fn connection(target: Target, warm_until: Instant, stop_at: Instant) -> Timings {
    let mut latencies: Vec<u32> = Vec::with_capacity(100_000);
    let mut errors = 0u64;
    let mut sender = None;
    loop {
        let started = Instant::now();
        if started >= stop_at {
            break;
        }
        if sender.is_none() {
            sender = connect(&target).await.ok();
        }
        let ok = match sender.as_mut() {
            Some(s) => exchange(s, &target).await,
            None => false,
        };
        if !ok {
            sender = None;
        }
        if started >= warm_until {
            if ok {
                latencies.push(started.elapsed().as_micros().min(u32::MAX as u128) as u32);
            } else {
                errors += 1;
            }
        }
    }
    (latencies, errors)
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

/// A TLS connection to the target with the application's certificate, and HTTP/1.1 over it.
async fn connect(target: &Target) -> Result<Sender, BenchError> {
    let tcp = tokio::net::TcpStream::connect(target.addr).await.map_err(setup)?;
    tcp.set_nodelay(true).map_err(setup)?;
    let name = rustls_pki_types::ServerName::try_from("localhost").map_err(setup)?;
    let tls = tokio_rustls::TlsConnector::from(target.tls.clone()).connect(name, tcp).await.map_err(setup)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await.map_err(setup)?;
    tokio::spawn(connection);
    Ok(sender)
}

/// One request; true when it succeeded and its answer was read whole.
async fn exchange(sender: &mut Sender, target: &Target) -> bool {
    match sender.send_request(target.request()).await {
        Ok(response) => response.status().is_success() && response.into_body().collect().await.is_ok(),
        Err(_) => false,
    }
}

/// One request on a connection of its own: the answer's status and body.
async fn probe(target: &Target) -> Result<(hyper::StatusCode, Bytes), BenchError> {
    let mut sender = connect(target).await?;
    let response = sender.send_request(target.request()).await.map_err(setup)?;
    let status = response.status();
    let body = response.into_body().collect().await.map_err(setup)?.to_bytes();
    Ok((status, body))
}

/// The TLS set-up of the load: trusting `root_pem`, presenting `identity_pem` (certificate chain and key).
fn load_tls(root_pem: &str, identity_pem: &str) -> Result<Arc<rustls::ClientConfig>, BenchError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(root_pem.as_bytes()) {
        roots.add(cert.map_err(setup)?).map_err(setup)?;
    }
    let chain =
        CertificateDer::pem_slice_iter(identity_pem.as_bytes()).collect::<Result<Vec<_>, _>>().map_err(setup)?;
    let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(identity_pem.as_bytes()).map_err(setup)?;
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(setup)?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(setup)?;
    Ok(Arc::new(config))
}

/// The load's request headers: `Host`, and `extra`.
fn load_headers(extra: &[(HeaderName, String)]) -> Result<HeaderMap, BenchError> {
    let mut headers = HeaderMap::new();
    headers.insert(hyper::header::HOST, HeaderValue::from_static("localhost"));
    for (name, value) in extra {
        headers.insert(name.clone(), HeaderValue::from_str(value).map_err(setup)?);
    }
    Ok(headers)
}

/// The SHA-256 of the first certificate of a chain: hex, and base64url (`x5t#S256`).
fn thumbprints(chain_pem: &str) -> Result<(String, String), BenchError> {
    let der = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .ok_or_else(|| setup("no certificate in the chain"))?
        .map_err(setup)?;
    let digest = crate::digest::sha256(der.as_ref());
    Ok((hex::encode(digest), crate::digest::b64url(&digest)))
}

/// What the set-up leaves for the load: the application's identity, its access token, a signed consent header for
/// the bank (for the nginx comparison), the bank's BIN.
struct Prepared {
    identity_pem: String,
    token: String,
    consent_header: String,
}

async fn prepare(config: &Config, dir: &Path, bank_base: &str, bank_digits: &str) -> Result<Prepared, BenchError> {
    crate::pki::files::private_dir(dir).map_err(|error| BenchError::File { path: dir.to_path_buf(), error })?;
    let running = crate::web::start(config.clone(), None).await.map_err(setup)?;
    let state = running.state.clone();
    let plan = [("Bench Bank JSC", bank_digits)];
    let mut credentials = Vec::new();
    let seeded = crate::demo::seed(&state, &plan, &[bank_base], dir, &mut credentials).await;
    let (client_id, identity_pem, banks) = seeded.map_err(setup)?;
    let client_id = crate::apps::ClientId::parse(&client_id).map_err(setup)?;
    let (cert_hex, x5t) = thumbprints(&identity_pem)?;
    let bin = banks.first().map(|(bin, _)| bin.as_str()).ok_or_else(|| setup("no bank"))?;
    let bin = crate::kz::Bin::parse(bin).map_err(setup)?;
    let customer = crate::standard::SANDBOX_CUSTOMERS[0].iin.to_string();
    let (client, iin) = (client_id.clone(), customer.clone());
    let consent_id = state
        .db
        .write(move |tx| -> Result<String, BenchError> {
            let Some(app) = crate::apps::by_client_id(tx, &client)? else { return Err(setup("no application")) };
            let Some(org) = crate::participants::organisation_by_bin(tx, &bin)? else { return Err(setup("no bank")) };
            let now = crate::clock::now();
            tx.execute(
                "INSERT INTO customers (iin, created_at, last_seen_at) VALUES (?1, ?2, ?2) ON CONFLICT (iin) DO NOTHING",
                rusqlite::params![iin, crate::clock::rfc3339(now)],
            )?;
            let customer_id: i64 = tx.query_row("SELECT id FROM customers WHERE iin = ?1", [&iin], |r| r.get(0))?;
            let by = ChangedBy { actor: "cli:bench".into(), source: "cli".into() };
            let new = NewConsent {
                permissions: vec![Permission::ReadAccountsDetail, Permission::ReadBalances],
                required: vec![Permission::ReadAccountsDetail],
                purpose: "kopir bench".into(),
                purpose_translations: Default::default(),
                expires_at: crate::clock::rfc3339(now + time::Duration::days(1)),
                transaction_from: None,
                transaction_to: None,
                provider_ids: vec![org.id],
            };
            let consent = crate::consent::insert(tx, app.id, &new, &by, now)?;
            if let Err(e) = crate::consent::authorise(tx, &consent.id, customer_id, &by, now) {
                return Err(setup(e));
            }
            Ok(consent.id.into_string())
        })
        .await
        ?;
    let (token, claims) =
        crate::oauth::access::sign(&state, &state.signer, &client_id, &consent_id, &x5t).await.map_err(setup)?;
    let app_id = state
        .db
        .read({
            let client = client_id.clone();
            move |c| crate::apps::by_client_id(c, &client).map_err(crate::store::StoreError::from)
        })
        .await
        .map_err(setup)?
        .map(|a| a.id)
        .ok_or_else(|| setup("no application"))?;
    state
        .db
        .write(move |tx| {
            crate::oauth::access::record(tx, &claims, app_id, &cert_hex).map_err(crate::store::StoreError::from)
        })
        .await
        .map_err(setup)?;
    // The header a bank expects, as the gateway would sign it, valid for the whole comparison.
    let now = crate::clock::now().unix_timestamp();
    let header = crate::standard::ConsentClaims {
        iss: state.public_url.to_string(),
        aud: bank_bin(bank_digits),
        sub: customer,
        consent_id: consent_id.clone(),
        permissions: vec!["ReadAccountsDetail".into(), "ReadBalances".into()],
        transaction_from: None,
        transaction_to: None,
        interaction_id: "kopir-bench".into(),
        iat: now,
        exp: now + 3600,
        jti: crate::random::uuid_v4().to_string(),
    };
    let consent_header = state.signer.sign(&state.db, crate::standard::CONSENT_TYP, &header).await.map_err(setup)?;
    running.shutdown().await;
    Ok(Prepared { identity_pem, token, consent_header })
}

/// Starts `kopir serve` as a child process on `port` with the data directory set up beforehand, trusting
/// `provider_ca_file` for banks, with a quiet log, no admin listener and `env` besides; waits until it listens.
async fn start_platform(
    kopir: &Path,
    dir: &Path,
    port: u16,
    config: &Config,
    provider_ca_file: &Path,
    env: &[(&str, String)],
) -> Result<Guard, BenchError> {
    let platform = Guard(
        Command::new(kopir)
            .arg("--data-dir")
            .arg(dir)
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("KOPIR_SERVER_PUBLIC_URL", &config.server.public_url)
            .env("KOPIR_GATEWAY_PROVIDER_CA_FILE", provider_ca_file)
            .env("KOPIR_ADMIN_ENABLED", "false")
            .env("KOPIR_LOG_LEVEL", "warn")
            .env("KOPIR_LOG_STDERR", "false")
            .envs(env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| setup(format!("starting the platform: {e}")))?,
    );
    wait_for_port(port, "the platform").await?;
    Ok(platform)
}

/// Starts `kopir reference-bank` as a child process on `port` and waits until it listens; returns its guard and
/// its AIS base URL.
async fn start_bank(
    kopir: &Path,
    dir: &Path,
    name: &str,
    digits: &str,
    port: u16,
    config: &Config,
    platform_root: &Path,
) -> Result<(Guard, String), BenchError> {
    let bank = Guard(
        Command::new(kopir)
            .arg("--data-dir")
            .arg(dir)
            .args(["reference-bank", "--name", name, "--bin", &bank_bin(digits)])
            .args(["--listen", &format!("127.0.0.1:{port}"), "--platform-url", &config.server.public_url])
            .arg("--platform-ca")
            .arg(platform_root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| setup(format!("starting the reference bank {name}: {e}")))?,
    );
    wait_for_port(port, "the reference bank").await?;
    Ok((bank, format!("https://localhost:{port}{}", crate::standard::AIS_BASE_PATH)))
}

fn bank_bin(digits: &str) -> String {
    crate::kz::with_control_digit(digits).unwrap_or_default()
}

fn nginx_conf(dir: &Path, port: u16, bank_port: u16, pki: &Path) -> String {
    format!(
        "daemon off;\nmaster_process off;\nworker_processes 1;\npid {dir}/nginx.pid;\nerror_log {dir}/nginx-error.log warn;\n\
         events {{ worker_connections 1024; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
           fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
           upstream bank {{ server 127.0.0.1:{bank_port}; keepalive 64; }}\n\
           server {{\n    listen 127.0.0.1:{port} ssl;\n    ssl_certificate {pki}/server.pem;\n    ssl_certificate_key {pki}/server.key;\n\
             keepalive_requests 1000000;\n\
             location / {{\n      proxy_pass https://bank;\n      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n\
               proxy_ssl_certificate {pki}/platform-client.pem;\n      proxy_ssl_certificate_key {pki}/platform-client.key;\n\
               proxy_ssl_session_reuse on;\n    }}\n  }}\n}}\n",
        dir = dir.display(),
        pki = pki.display(),
    )
}

/// Runs the whole benchmark in `dir` (made empty first) and returns (kopir, nginx) figures.
pub async fn run(dir: &Path, options: &BenchOptions) -> Result<(Figures, Option<Figures>), BenchError> {
    let platform_dir = dir.join("platform");
    let bank_dir = dir.join("bank");
    let (port, bank_port) = (free_port()?, free_port()?);
    let mut config = Config::defaults().map_err(setup)?;
    config.data_dir = platform_dir.clone();
    config.server.listen = SocketAddr::from(([127, 0, 0, 1], port));
    config.server.public_url = format!("https://localhost:{port}");
    config.admin.enabled = false;
    config.log.stderr = false;
    config.log.level = "warn".into();
    config.oauth.access_token_secs = 3600;
    crate::bootstrap::init(&config, "cli:bench", crate::clock::now()).await.map_err(setup)?;
    let bank_pki = crate::refbank::pki::load_or_create(&bank_dir, "Bench Bank JSC").map_err(setup)?;
    config.gateway.provider_ca_file = bank_pki.ca_file.clone();
    let root = config.pki_dir().join("root-ca.pem");
    let bank_digits = "99064000077";
    let (bank, bank_base) =
        start_bank(&options.kopir, &bank_dir, "Bench Bank JSC", bank_digits, bank_port, &config, &root).await?;
    let prepared = prepare(&config, &platform_dir.join("demo"), &bank_base, bank_digits).await?;

    let env = [("KOPIR_OAUTH_ACCESS_TOKEN_SECS", "3600".to_string())];
    let platform = start_platform(&options.kopir, &platform_dir, port, &config, &bank_pki.ca_file, &env).await?;
    let root_pem = std::fs::read_to_string(&root).map_err(|error| BenchError::File { path: root.clone(), error })?;
    let tls = load_tls(&root_pem, &prepared.identity_pem)?;
    let target = Target {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        path: format!("{}/accounts", crate::gateway::BASE).parse().map_err(setup)?,
        headers: load_headers(&[(hyper::header::AUTHORIZATION, format!("Bearer {}", prepared.token))])?,
        tls: tls.clone(),
    };
    // One call first: a set-up error should say so, not show as a benchmark of errors.
    let (status, body) = probe(&target).await?;
    if !status.is_success() {
        return Err(setup(format!("the gateway answered {status}: {}", String::from_utf8_lossy(&body))));
    }
    let sampled = Sampled { front: platform.0.id(), bank: bank.0.id() };
    let mut kopir = drive(target, options, sampled).await?;
    kopir.peak_rss_kib = peak_rss_kib(platform.0.id());
    drop(platform);

    let nginx = match &options.nginx {
        None => None,
        Some(binary) => {
            let nginx_port = free_port()?;
            let nginx_dir = dir.join("nginx");
            std::fs::create_dir_all(&nginx_dir).map_err(|error| BenchError::File { path: nginx_dir.clone(), error })?;
            let conf = nginx_dir.join("nginx.conf");
            std::fs::write(&conf, nginx_conf(&nginx_dir, nginx_port, bank_port, &config.pki_dir()))
                .map_err(|error| BenchError::File { path: conf.clone(), error })?;
            let proxy = Guard(
                Command::new(binary)
                    .arg("-p")
                    .arg(&nginx_dir)
                    .arg("-c")
                    .arg(&conf)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .map_err(|e| setup(format!("starting nginx ({}): {e}", binary.display())))?,
            );
            wait_for_port(nginx_port, "nginx").await?;
            let consent = HeaderName::from_static(crate::standard::CONSENT_HEADER);
            let target = Target {
                addr: SocketAddr::from(([127, 0, 0, 1], nginx_port)),
                path: format!("{}/accounts", crate::standard::AIS_BASE_PATH).parse().map_err(setup)?,
                headers: load_headers(&[(consent, prepared.consent_header.clone())])?,
                tls,
            };
            let (status, _) = probe(&target).await?;
            if !status.is_success() {
                return Err(setup(format!(
                    "nginx → bank answered {status}; see {}",
                    nginx_dir.join("nginx-error.log").display()
                )));
            }
            let sampled = Sampled { front: proxy.0.id(), bank: bank.0.id() };
            let mut figures = drive(target, options, sampled).await?;
            figures.peak_rss_kib = peak_rss_kib(proxy.0.id());
            Some(figures)
        }
    };
    Ok((kopir, nginx))
}

/// A line of the report.
pub fn line(name: &str, f: &Figures) -> String {
    let memory = f.peak_rss_kib.map(|k| format!("{:.1} MiB", k as f64 / 1024.0)).unwrap_or_else(|| "—".into());
    let cpu = f
        .cpu_us_per_request
        .map(|c| format!("   CPU/request {:.0} µs (bank {:.0} µs, load {:.0} µs)", c.front, c.bank, c.load))
        .unwrap_or_default();
    format!(
        "{name:<28} {:>10.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   errors {:>5}   peak memory {memory}{cpu}",
        f.per_second, f.p50_ms, f.p99_ms, f.errors
    )
}
