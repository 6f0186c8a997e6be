//! The one way the platform builds a client that calls out of it: HTTPS only, no redirects followed, time-outs,
//! the trust anchors (the system's roots plus named CAs), optionally a client identity, and — for participants'
//! URLs — the egress [`Guard`] as resolver.
//!
//! ```ignore
//! let client = Outbound::new()
//!     .platform_identity(&config)?
//!     .trust_platform_and_providers(&config)?
//!     .build(guard)?;                       // a GuardedClient (reqwest)
//! let tls = Outbound::new().platform_identity(&config)?.rustls_config()?; // for a hyper connector
//! ```
//!
//! Users: the conformance suite, webhook deliveries, the vendors' adapters (reqwest) and the bank client of the
//! gateway (hyper over the same TLS set-up).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{Guard, GuardedClient};
use crate::config::Config;
use crate::pki::PkiPaths;

/// Why an outbound client could not be built (the messages name files and parts, never key material).
#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    /// A part of the set-up is unusable: which part, and the library's words.
    #[error("{what}: {detail}")]
    Invalid { what: &'static str, detail: String },
}

impl OutboundError {
    fn invalid(what: &'static str, detail: &dyn std::fmt::Display) -> OutboundError {
        OutboundError::Invalid { what, detail: detail.to_string() }
    }
}

/// When no time-out is named: how long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// An outbound client in the making (see the module's example). Not `Debug`: it holds a private key.
#[derive(Clone, Default)]
pub struct Outbound {
    /// The client certificate chain and its key, PEM.
    identity: Option<(String, String)>,
    /// CA certificates trusted besides the system's roots, PEM (possibly empty).
    extra_roots: String,
    /// A time-out of the whole request (and of connecting); without it, requests set their own.
    timeout: Option<Duration>,
    user_agent: Option<&'static str>,
}

fn read(path: PathBuf) -> Result<String, OutboundError> {
    std::fs::read_to_string(&path).map_err(|error| OutboundError::File { path, error })
}

impl Outbound {
    pub fn new() -> Outbound {
        Outbound::default()
    }

    /// Presents `cert_pem` (the chain) with `key_pem`.
    pub fn identity_pem(mut self, cert_pem: &str, key_pem: &str) -> Outbound {
        self.identity = Some((cert_pem.to_string(), key_pem.to_string()));
        self
    }

    /// Presents the platform's client certificate (read from the data directory).
    pub fn platform_identity(self, config: &Config) -> Result<Outbound, OutboundError> {
        let paths = PkiPaths::new(config);
        let cert = read(paths.platform_client_cert())?;
        let key_path = paths.platform_client_key();
        let key =
            crate::pki::files::read_key(&key_path).map_err(|error| OutboundError::File { path: key_path, error })?;
        Ok(self.identity_pem(&cert, &key))
    }

    /// Trusts the CA certificates in `pem` too.
    pub fn trust_pem(mut self, pem: &str) -> Outbound {
        self.extra_roots.push_str(pem);
        self
    }

    /// Trusts the platform's root CA and `gateway.provider_ca_file` (as calls to banks do).
    pub fn trust_platform_and_providers(self, config: &Config) -> Result<Outbound, OutboundError> {
        let mut trust = read(PkiPaths::new(config).root_cert())?;
        if !config.gateway.provider_ca_file.as_os_str().is_empty() {
            trust.push_str(&read(config.gateway.provider_ca_file.clone())?);
        }
        Ok(self.trust_pem(&trust))
    }

    /// Gives up on a request (and on connecting) after `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Outbound {
        self.timeout = Some(timeout);
        self
    }

    pub fn user_agent(mut self, user_agent: &'static str) -> Outbound {
        self.user_agent = Some(user_agent);
        self
    }

    fn reqwest_builder(&self, what_identity: &'static str) -> Result<reqwest::ClientBuilder, OutboundError> {
        let mut builder = reqwest::Client::builder()
            .https_only(true)
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(self.timeout.unwrap_or(CONNECT_TIMEOUT))
            .tcp_nodelay(true);
        if let Some(timeout) = self.timeout {
            builder = builder.timeout(timeout);
        }
        if let Some(user_agent) = self.user_agent {
            builder = builder.user_agent(user_agent);
        }
        if let Some((cert, key)) = &self.identity {
            let identity = reqwest::Identity::from_pem(format!("{cert}\n{key}").as_bytes())
                .map_err(|e| OutboundError::invalid(what_identity, &e))?;
            builder = builder.identity(identity);
        }
        if !self.extra_roots.trim().is_empty() {
            let certs = reqwest::Certificate::from_pem_bundle(self.extra_roots.as_bytes())
                .map_err(|e| OutboundError::invalid("the trusted CA certificates", &e))?;
            builder = builder.tls_certs_merge(certs);
        }
        Ok(builder)
    }

    /// A client for participants' URLs: every address judged by `guard`.
    pub fn build(self, guard: Guard) -> Result<GuardedClient, OutboundError> {
        let builder = self.reqwest_builder("the client certificate and key")?;
        GuardedClient::build(builder, guard).map_err(|e| OutboundError::invalid("HTTP client", &e))
    }

    /// A client for a URL the operator configured (a vendor's), which the guard does not judge.
    pub fn build_for_configured_url(self) -> Result<reqwest::Client, OutboundError> {
        let builder = self.reqwest_builder("the client certificate and key")?;
        builder.build().map_err(|e| OutboundError::invalid("HTTP client", &e))
    }

    /// The same set-up as a rustls client configuration, for a hyper connector: the system's roots (through the
    /// platform verifier) plus the extra ones, and the identity when there is one.
    pub fn rustls_config(&self) -> Result<rustls::ClientConfig, OutboundError> {
        let extra_roots = CertificateDer::pem_slice_iter(self.extra_roots.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| OutboundError::invalid("the trusted CA certificates", &e))?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra_roots, provider.clone())
            .map_err(|e| OutboundError::invalid("the certificate verifier", &e))?;
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| OutboundError::invalid("TLS versions", &e))?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier));
        match &self.identity {
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert.as_bytes())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| OutboundError::invalid("the platform's client certificate", &e))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|e| OutboundError::invalid("the platform's client key", &e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| OutboundError::invalid("the platform's client certificate", &e))
            }
            None => Ok(builder.with_no_client_auth()),
        }
    }
}
