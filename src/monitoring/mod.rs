//! Monitoring: the figures Prometheus scrapes that are not counted on the request path, and the SLA breach signal.
//!
//! One task per platform wakes every [`REFRESH`] on the platform's clock and
//! - judges SLA breaches from the last hour of metered calls ([`sla`]), announcing each to its provider once;
//! - sets the gauges: each listed API's SLA and whether it is in breach, the expiry of the platform's own
//!   certificates and the earliest of the participants' certificates in force, the free space of the data
//!   directory's filesystem, and consents by status and customers with live consents, for the platform and per bank
//!   (from small tables the consents' triggers keep, never a scan of the registry: see [`figures`]).
//!
//! The request path's counters and histograms (per API and endpoint) are recorded where the call happens
//! (`web::metrics::record_bank_call`). Every metric is listed in the README's "Monitoring" section; the alert rules
//! and the Grafana dashboard built on them are in `packaging/monitoring/`.

pub mod console;
pub mod figures;
pub mod sla;

use std::path::{Path, PathBuf};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;

use crate::clock::{self, Clock};
use crate::store::{Db, StoreError};

pub use console::router;

/// How often the gauges are refreshed and breaches judged.
pub const REFRESH: Duration = Duration::from_secs(60);

/// What the task reads besides the store.
#[derive(Debug, Clone)]
pub struct Sources {
    pub data_dir: PathBuf,
    /// The platform's own certificates, by the `certificate` label they are shown under.
    pub certificates: Vec<(&'static str, PathBuf)>,
}

impl Sources {
    pub fn from_config(config: &crate::config::Config) -> Sources {
        let paths = crate::pki::PkiPaths::new(config);
        Sources {
            data_dir: config.data_dir.clone(),
            certificates: vec![
                ("root_ca", paths.root_cert()),
                ("issuing_ca", paths.issuing_cert()),
                ("server", paths.server_cert()),
                ("platform_client", paths.platform_client_cert()),
            ],
        }
    }
}

/// Starts the task: a first round at once, then one every [`REFRESH`] until `stop`.
pub fn spawn(db: Db, clock: Clock, sources: Sources, mut stop: watch::Receiver<bool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if *stop.borrow() {
                return;
            }
            let now = clock.now();
            judge_slas(&db, now).await;
            refresh(&db, &sources, now).await;
            tokio::select! {
                () = clock.sleep(REFRESH) => {}
                _ = stop.wait_for(|s| *s) => return,
            }
        }
    })
}

/// Opens and ends SLA breaches from the last [`sla::WINDOW_MINUTES`] of calls up to `now`.
pub async fn judge_slas(db: &Db, now: OffsetDateTime) {
    let (from, to) = (clock::rfc3339(now - time::Duration::minutes(sla::WINDOW_MINUTES)), clock::rfc3339(now));
    let judged = async {
        let until = to.clone();
        let (stats, may_change) = db
            .read(move |c| -> Result<_, StoreError> {
                let stats = sla::window(c, &from, &until)?;
                let may_change = sla::may_change(c, &stats)?;
                Ok((stats, may_change))
            })
            .await?;
        if !may_change {
            return Ok(Vec::new());
        }
        db.write(move |tx| sla::evaluate(tx, &stats, &to).map_err(StoreError::from)).await
    };
    match judged.await {
        Ok(changes) => {
            for change in changes {
                match change {
                    sla::Change::Began { api_id, breach_id } => {
                        tracing::warn!(api_id, breach_id, "an API's p95 latency is over its SLA")
                    }
                    sla::Change::Ended { api_id, breach_id } => {
                        tracing::info!(api_id, breach_id, "an API's p95 latency is within its SLA again")
                    }
                }
            }
        }
        Err(error) => tracing::error!(%error, "judging SLA breaches failed"),
    }
}

/// Everything the gauges show, read in one go.
struct Figures {
    consents: ConsentFigures,
    apis: Vec<figures::ListedApi>,
    breached: Vec<i64>,
    participant_certificates: Option<String>,
}

struct ConsentFigures {
    by_status: Vec<figures::Count>,
    customers: i64,
    by_provider: Vec<figures::ProviderCount>,
    customers_by_provider: Vec<figures::ProviderCount>,
}

async fn refresh(db: &Db, sources: &Sources, now: OffsetDateTime) {
    let at = clock::rfc3339(now);
    let read = db
        .read(move |c| -> Result<Figures, StoreError> {
            let consents = ConsentFigures {
                by_status: figures::consents_by_status(c)?,
                customers: figures::customers_with_live_consents(c, &at)?,
                by_provider: figures::consents_by_provider(c)?,
                customers_by_provider: figures::customers_by_provider(c, &at)?,
            };
            Ok(Figures {
                consents,
                apis: figures::listed_apis(c)?,
                breached: sla::open_api_ids(c)?,
                participant_certificates: figures::earliest_participant_certificate_expiry(c, &at)?,
            })
        })
        .await;
    match read {
        Ok(figures) => set_gauges(&figures),
        Err(error) => tracing::error!(%error, "reading the monitoring figures failed"),
    }
    for (label, path) in &sources.certificates {
        if let Some(not_after) = certificate_not_after(path) {
            metrics::gauge!("kopir_certificate_expiry_timestamp_seconds", "certificate" => *label)
                .set(not_after.unix_timestamp() as f64);
        }
    }
    match disk_space(&sources.data_dir) {
        Ok(space) => {
            metrics::gauge!("kopir_data_dir_free_bytes").set(space.available as f64);
            metrics::gauge!("kopir_data_dir_size_bytes").set(space.total as f64);
        }
        Err(error) => {
            tracing::warn!(%error, dir = %sources.data_dir.display(), "free space of the data directory unknown")
        }
    }
}

fn set_gauges(f: &Figures) {
    set_consent_gauges(&f.consents);
    for api in &f.apis {
        let (provider, id) = (api.bin.clone(), api.id.to_string());
        metrics::gauge!("kopir_api_sla_seconds", "provider" => provider.clone(), "api" => id.clone())
            .set(api.sla_ms as f64 / 1000.0);
        let breached = f.breached.contains(&api.id);
        metrics::gauge!("kopir_api_sla_breached", "provider" => provider.clone(), "api" => id.clone())
            .set(if breached { 1.0 } else { 0.0 });
        metrics::gauge!("kopir_api_info", "provider" => provider, "api" => id, "name" => api.name.clone(),
            "version" => api.version.clone(), "status" => api.status.clone())
        .set(1.0);
    }
    if let Some(not_after) = f.participant_certificates.as_deref().and_then(|t| clock::parse(t).ok()) {
        metrics::gauge!("kopir_certificate_expiry_timestamp_seconds", "certificate" => "participants")
            .set(not_after.unix_timestamp() as f64);
    }
}

fn set_consent_gauges(f: &ConsentFigures) {
    for c in &f.by_status {
        metrics::gauge!("kopir_consents", "status" => c.label.clone()).set(c.count as f64);
    }
    metrics::gauge!("kopir_customers_with_live_consents").set(f.customers as f64);
    // Every status of each bank counted, zeros included (a status the bank never had reads 0, not absent).
    let mut banks: Vec<&str> = f.by_provider.iter().map(|c| c.bin.as_str()).collect();
    banks.dedup();
    for bin in banks {
        for status in figures::CONSENT_STATUSES {
            let n = f.by_provider.iter().find(|c| c.bin == bin && c.label == status).map_or(0, |c| c.count);
            metrics::gauge!("kopir_provider_consents", "provider" => bin.to_string(), "status" => status).set(n as f64);
        }
    }
    for c in &f.customers_by_provider {
        metrics::gauge!("kopir_provider_customers_with_live_consents", "provider" => c.bin.clone()).set(c.count as f64);
    }
}

/// The `notAfter` of the first certificate in a PEM file; `None` when it cannot be read (start-up already refuses a
/// broken platform certificate, so this only misses a file replaced badly since).
fn certificate_not_after(path: &Path) -> Option<OffsetDateTime> {
    let pem = std::fs::read(path).ok()?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).ok()?;
    let cert = pem.parse_x509().ok()?;
    Some(cert.validity().not_after.to_datetime())
}

/// A filesystem's size and the space an unprivileged process may still use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskSpace {
    pub total: u64,
    pub available: u64,
}

pub fn disk_space(dir: &Path) -> std::io::Result<DiskSpace> {
    let stat = rustix::fs::statvfs(dir)?;
    Ok(DiskSpace {
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
        available: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_data_directory_s_filesystem_has_a_size_and_free_space() {
        let dir = std::env::temp_dir();
        let space = disk_space(&dir).unwrap();
        assert!(space.total > 0 && space.available <= space.total, "{space:?}");
    }
}
