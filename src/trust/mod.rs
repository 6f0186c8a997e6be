//! Trust infrastructure: verifying the customer before any consent — one-time codes by SMS (stored hashed, 5
//! minutes, 5 attempts, throttled resends), biometric verification (liveness + photo match), and the adapters that
//! reach the vendors.

pub mod biometric;
pub mod command;
pub mod journey;
pub mod limits;
pub mod otp;
pub mod pages;
pub mod phone;
pub mod sms;
pub mod webhook;

use std::path::PathBuf;

use crate::config::Config;

/// Why a configured adapter cannot be set up (the messages name files, never key material).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    #[error("{path}: {error}")]
    File { path: PathBuf, error: std::io::Error },
    #[error("{0}: the key must have at least 32 bytes")]
    ShortKey(PathBuf),
    #[error(transparent)]
    Client(#[from] crate::egress::OutboundError),
}

/// The `http` adapters' shared parts, read once from the configured files.
pub fn webhook(config: &Config, url: &str) -> Result<webhook::Webhook, AdapterError> {
    let path = &config.trust.webhook_secret_file;
    let key = crate::pki::files::read_key(path).map_err(|error| AdapterError::File { path: path.clone(), error })?;
    let key = key.trim().as_bytes().to_vec();
    if key.len() < 32 {
        return Err(AdapterError::ShortKey(path.clone()));
    }
    let ca = if config.trust.vendor_ca_file.as_os_str().is_empty() {
        None
    } else {
        let ca = &config.trust.vendor_ca_file;
        Some(std::fs::read_to_string(ca).map_err(|error| AdapterError::File { path: ca.clone(), error })?)
    };
    let timeout = std::time::Duration::from_secs(config.trust.adapter_timeout_secs);
    Ok(webhook::Webhook::new(url, key, timeout, ca.as_deref())?)
}

/// Every route of the customer's verification journey (the pages; the rest of trust serves them).
pub fn router() -> axum::Router<crate::web::AppState> {
    pages::router()
}
