//! The reference bank: a simulated provider implementing the bank side of the kopir AIS v1 standard, for the tests,
//! the sandbox, the benchmark and `kopir demo`.
//!
//! It holds the standard's sandbox customers and some twenty more, each with KZT (and some with USD) current
//! accounts and a year of transactions, all derived from a seed (see `data`). It answers only the platform: a
//! client certificate chaining to the platform's root at the handshake, and the platform's signed consent header,
//! verified with the platform's JWKS (see `consent`). Its own CA and server certificate live in its data directory.
//! A fault mode makes it break one rule of the standard on purpose (slow, failing, malformed, leaking Detail fields,
//! ignoring the date filter, open to anyone, or with wrong paging links), for the tests of the conformance suite.

mod api;
mod consent;
mod data;
pub mod pki;
mod server;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::standard::AIS_BASE_PATH;

/// How the bank misbehaves on purpose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Every answer comes after `BankConfig::fault_delay`.
    Slow,
    /// Every answer is 500 with the standard error body.
    Error,
    /// Every answer is 200 with a body that is not the standard's shape (truncated JSON).
    Malformed,
    /// Answers a Basic consent with the Detail fields (identification of accounts, transaction details).
    Leaky,
    /// Ignores `fromBookingDateTime` and `toBookingDateTime` (still refusing malformed ones).
    Unfiltered,
    /// Answers calls without the signed header, or with one that does not verify (forged, expired, for another
    /// bank): for the header's customer if it names one, else for the first sandbox customer.
    Open,
    /// `Links.Next` of a transaction page points at the page itself.
    BadPaging,
    /// Every answer is 200 with well-formed JSON of 17 MiB: more than the platform reads of a bank's answer.
    Oversized,
}

/// The fault names, for the command line's help and errors.
pub const FAULTS: &str = "slow, error, malformed, leaky, unfiltered, open, badpaging or oversized";

impl FromStr for Fault {
    type Err = String;

    fn from_str(s: &str) -> Result<Fault, String> {
        match s.to_ascii_lowercase().as_str() {
            "slow" => Ok(Fault::Slow),
            "error" => Ok(Fault::Error),
            "malformed" => Ok(Fault::Malformed),
            "leaky" => Ok(Fault::Leaky),
            "unfiltered" => Ok(Fault::Unfiltered),
            "open" => Ok(Fault::Open),
            "badpaging" => Ok(Fault::BadPaging),
            "oversized" => Ok(Fault::Oversized),
            other => Err(format!("unknown fault {other:?}: use {FAULTS}")),
        }
    }
}

/// How to run a reference bank.
#[derive(Debug, Clone)]
pub struct BankConfig {
    pub name: String,
    /// The bank's BIN: the `aud` the consent header must name.
    pub bin: String,
    /// Where to listen; port 0 lets the kernel choose.
    pub listen: SocketAddr,
    /// The bank's CA and server certificate and keys.
    pub data_dir: PathBuf,
    /// The platform's URL (`server.public_url`): the header's `iss`, and where the JWKS is fetched from.
    pub platform_url: String,
    /// The platform's root CA (PEM): client certificates must chain to it, and the JWKS is fetched trusting only it.
    pub platform_root_pem: String,
    /// Picks the bank code, account numbers and every transaction.
    pub seed: u64,
    pub fault: Option<Fault>,
    /// The delay of `Fault::Slow`.
    pub fault_delay: Duration,
}

impl BankConfig {
    /// A bank on 127.0.0.1 with a kernel-chosen port, seed 1, no fault (3 s delay if made slow).
    pub fn new(
        name: impl Into<String>,
        bin: impl Into<String>,
        data_dir: impl Into<PathBuf>,
        platform_url: impl Into<String>,
        platform_root_pem: impl Into<String>,
    ) -> BankConfig {
        BankConfig {
            name: name.into(),
            bin: bin.into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            platform_url: platform_url.into(),
            platform_root_pem: platform_root_pem.into(),
            seed: 1,
            fault: None,
            fault_delay: Duration::from_secs(3),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BankError {
    #[error("{0:?} is not a valid BIN (12 digits with a valid control digit)")]
    Bin(String),
    #[error("the platform URL must start with https:// (got {0:?})")]
    PlatformUrl(String),
    #[error("the platform root certificate: {0}")]
    PlatformRoot(String),
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("certificate generation: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error(transparent)]
    Pki(#[from] crate::pki::PkiError),
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    #[error("HTTP client: {0}")]
    Client(String),
    #[error("cannot listen on {addr}: {error}")]
    Bind { addr: SocketAddr, error: std::io::Error },
}

/// A started bank.
pub struct RunningBank {
    pub addr: SocketAddr,
    /// `https://localhost:PORT/open-banking/v1/aisp`: the base URL of its API (for the catalogue's API passport).
    pub base_url: String,
    /// The CA its server certificate chains to (PEM), for the platform's `gateway.provider_ca_file`.
    pub ca_pem: String,
    /// The file holding `ca_pem`.
    pub ca_file: PathBuf,
    /// The bank code in its IBANs.
    pub bank_code: String,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RunningBank {
    /// Stops listening, lets open requests finish (a few seconds at most) and returns.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

/// Starts a bank: certificates made or loaded, data generated, listener bound. Fetches nothing yet: the platform's
/// JWKS is fetched on the first call, so a bank may start before the platform.
pub async fn start(config: BankConfig) -> Result<RunningBank, BankError> {
    if crate::kz::Bin::parse(&config.bin).is_err() {
        return Err(BankError::Bin(config.bin));
    }
    if !config.platform_url.starts_with("https://") {
        return Err(BankError::PlatformUrl(config.platform_url));
    }
    let pki = pki::load_or_create(&config.data_dir, &config.name)?;
    let tls = server::tls_config(pki.identity, &config.platform_root_pem)?;
    let client = jwks_client(&config.platform_root_pem)?;

    let listener =
        TcpListener::bind(config.listen).await.map_err(|error| BankError::Bind { addr: config.listen, error })?;
    let addr = listener.local_addr().map_err(|error| BankError::Bind { addr: config.listen, error })?;
    let base_url = format!("https://localhost:{}{AIS_BASE_PATH}", addr.port());

    let book = data::Book::generate(config.seed);
    // Today's histories are built now, not on the first requests of a benchmark.
    let now = crate::clock::now().unix_timestamp();
    for account in 0..book.accounts.len() {
        book.history(account, now);
    }
    let bank_code = book.bank_code.clone();
    let bank = Arc::new(api::Inner {
        book,
        verifier: consent::Verifier::new(&config.platform_url, &config.bin, client),
        base_url: base_url.clone(),
        fault: config.fault,
        fault_delay: config.fault_delay,
    });
    let (shutdown, receiver) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, tokio_rustls::TlsAcceptor::from(tls), api::router(bank), receiver));
    tracing::info!(name = %config.name, bin = %config.bin, %addr, fault = ?config.fault, "reference bank serving");
    Ok(RunningBank { addr, base_url, ca_pem: pki.ca_pem, ca_file: pki.ca_file, bank_code, shutdown, task })
}

/// The client that fetches the platform's JWKS: trusts only the platform's root, follows no redirects.
fn jwks_client(platform_root_pem: &str) -> Result<reqwest::Client, BankError> {
    let mut certs = Vec::new();
    for der in CertificateDer::pem_slice_iter(platform_root_pem.as_bytes()) {
        let der = der.map_err(|e| BankError::PlatformRoot(e.to_string()))?;
        certs.push(reqwest::Certificate::from_der(&der).map_err(|e| BankError::PlatformRoot(e.to_string()))?);
    }
    reqwest::Client::builder()
        .tls_certs_only(certs)
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .build()
        .map_err(|e| BankError::Client(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_the_command_line() {
        assert_eq!("slow".parse::<Fault>(), Ok(Fault::Slow));
        assert_eq!("Error".parse::<Fault>(), Ok(Fault::Error));
        assert_eq!("malformed".parse::<Fault>(), Ok(Fault::Malformed));
        assert_eq!("leaky".parse::<Fault>(), Ok(Fault::Leaky));
        assert_eq!("Unfiltered".parse::<Fault>(), Ok(Fault::Unfiltered));
        assert_eq!("open".parse::<Fault>(), Ok(Fault::Open));
        assert_eq!("badpaging".parse::<Fault>(), Ok(Fault::BadPaging));
        assert!("sometimes".parse::<Fault>().is_err());
    }
}
