//! The automatic check an API passes before publication — a pluggable step.
//!
//! [`PublicationCheck`] is what publication (and the scheduled checks) call; [`checker`] gives the one in use: the
//! sandbox's conformance suite ([`crate::sandbox::suite`]), run against the API's base URL as the platform calls
//! banks — over HTTPS with the platform's client certificate, trusting the platform's root CA and
//! `gateway.provider_ca_file`, with no redirects, within the API's time-out, with headers signed by the platform's
//! active key, for the bank's BIN. Each case of the suite becomes a [`Finding`]; an API passes when none failed.
//!
//! Findings carry a short evidence excerpt that is never a secret and never account data: the request line, the
//! status, the content type and size, error codes, and the JSON pointers of schema violations.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::Api;
use crate::clock::Clock;
use crate::config::Config;
use crate::oauth::jwks::Signer;
use crate::sandbox::cases;
pub use crate::sandbox::evidence::{FindingOutcome, Severity};
use crate::sandbox::suite::{self, Credentials, CredentialsError, SuiteReport, Target};
use crate::store::{Db, StoreError};
use crate::web::AppState;

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckReport> + Send + 'a>>;

crate::text_enum! {
    /// Which of an API's two base URLs a check calls.
    pub enum Environment {
        Sandbox = "sandbox",
        Production = "production",
    }
}

impl Environment {
    /// The API's base URL for this environment, without a trailing slash.
    pub fn base_url(self, api: &Api) -> &str {
        match self {
            Environment::Sandbox => api.sandbox_base_url.trim_end_matches('/'),
            Environment::Production => api.production_base_url.trim_end_matches('/'),
        }
    }
}

/// A check of an API's endpoint: run before an API is published (against its sandbox) and, once it is published, on
/// a schedule against both environments. It never fails as such: whatever goes wrong is a finding.
pub trait PublicationCheck: Send + Sync {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a>;
}

/// One thing a check looked at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable identifier, e.g. `tls.reachable` (the conformance suite's case ids, see [`cases::CASES`]).
    pub id: String,
    /// What was checked, in English (as recorded).
    pub description: String,
    pub outcome: FindingOutcome,
    /// A short, non-secret excerpt of what was seen.
    pub evidence: String,
    /// The case's severity (absent in runs recorded before the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl Finding {
    pub fn new(id: &str, description: &str, outcome: FindingOutcome, evidence: impl Into<String>) -> Finding {
        Finding { id: id.into(), description: description.into(), outcome, evidence: evidence.into(), severity: None }
    }

    /// The text key of the description, for the findings this platform knows (others show `description`).
    pub fn text_key(&self) -> Option<&'static str> {
        if self.id == SETUP {
            return Some("catalog.finding.setup");
        }
        cases::find(&self.id).map(|case| case.text_key)
    }
}

/// What a check found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckReport {
    /// `sandbox` (or `production`).
    pub environment: &'static str,
    pub base_url: String,
    /// At least one finding passed and none failed.
    pub passed: bool,
    pub findings: Vec<Finding>,
    /// The 95th percentile of the response times of the check's calls (to the answer, when there was one).
    pub latency_ms: Option<i64>,
    pub started_at: String,
    pub finished_at: String,
}

impl CheckReport {
    pub fn new(
        environment: &'static str,
        base_url: &str,
        started_at: String,
        finished_at: String,
        findings: Vec<Finding>,
        latency_ms: Option<i64>,
    ) -> CheckReport {
        let passed = findings.iter().any(|f| f.outcome == FindingOutcome::Passed)
            && !findings.iter().any(|f| f.outcome == FindingOutcome::Failed);
        CheckReport {
            environment,
            base_url: base_url.to_string(),
            passed,
            findings,
            latency_ms,
            started_at,
            finished_at,
        }
    }
}

/// The check publication and the schedule use: the conformance suite, with the platform's credentials.
pub fn checker(state: &AppState) -> Arc<dyn PublicationCheck> {
    Arc::new(ConformanceCheck {
        config: state.config.clone(),
        db: state.db.clone(),
        signer: state.signer.clone(),
        issuer: crate::oauth::metadata::issuer(state),
        guard: state.egress.banks.clone(),
        credentials: Arc::default(),
        clock: state.clock.clone(),
    })
}

/// How long the suite's HTTP clients are kept between runs: the scheduled checks then reuse their connections
/// (keep-alive, TLS sessions) instead of paying fresh handshakes and CA loading for every check, and a renewed
/// certificate or CA file is still picked up within this time.
const CREDENTIALS_FOR: std::time::Duration = std::time::Duration::from_secs(600);

const SETUP: &str = "platform.setup";
const SETUP_TEXT: &str = "The platform can call providers (its client certificate and trusted CAs load)";

/// The conformance suite as a [`PublicationCheck`].
#[derive(Clone)]
pub struct ConformanceCheck {
    config: Arc<Config>,
    db: Db,
    signer: Signer,
    issuer: String,
    /// Where checks may connect: the same guard as bank calls.
    guard: crate::egress::Guard,
    /// The credentials in use and when they were made (see [`CREDENTIALS_FOR`]).
    credentials: Arc<std::sync::Mutex<Option<(std::time::Instant, Credentials)>>>,
    /// The platform's: times the checks.
    clock: Clock,
}

impl ConformanceCheck {
    /// The kept credentials, or new ones when there are none or they are older than [`CREDENTIALS_FOR`].
    fn credentials(&self) -> Result<Credentials, CredentialsError> {
        let mut kept = self.credentials.lock().map_err(|_| CredentialsError::Poisoned)?;
        if let Some((made, credentials)) = kept.as_ref()
            && made.elapsed() < CREDENTIALS_FOR
        {
            return Ok(credentials.clone());
        }
        let fresh = Credentials::platform(
            &self.config,
            self.db.clone(),
            self.signer.clone(),
            &self.issuer,
            self.guard.clone(),
        )?;
        *kept = Some((std::time::Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    async fn run(&self, api: &Api, environment: Environment) -> CheckReport {
        let started_at = self.clock.now_rfc3339();
        let base = environment.base_url(api);
        let setup_failed = |evidence: &str| {
            let finding = Finding::new(SETUP, SETUP_TEXT, FindingOutcome::Failed, evidence);
            let finished_at = self.clock.now_rfc3339();
            CheckReport::new(environment.as_str(), base, started_at.clone(), finished_at, vec![finding], None)
        };
        let organisation = api.organisation_id;
        let bin = self
            .db
            .read(move |c| {
                crate::participants::organisation(c, organisation)
                    .map(|org| org.map(|org| org.bin.to_string()))
                    .map_err(StoreError::from)
            })
            .await;
        let bin = match bin {
            Ok(Some(bin)) => bin,
            Ok(None) => return setup_failed("the API's provider is not on the platform"),
            Err(error) => {
                tracing::error!(%error, api = api.id, "the publication check cannot read the provider's BIN");
                return setup_failed("the platform could not read the provider; the operator has been told in the log");
            }
        };
        // Kept between runs for CREDENTIALS_FOR (a renewed certificate or CA file is picked up after that).
        let credentials = match self.credentials() {
            Ok(credentials) => credentials,
            Err(error) => {
                tracing::error!(%error, api = api.id, "the publication check cannot call providers");
                return setup_failed(
                    "the platform is not set up to call providers; the operator has been told in the log",
                );
            }
        };
        let target = Target {
            base_url: base.to_string(),
            bin,
            sla_ms: u64::try_from(api.sla_response_ms).unwrap_or(0),
            timeout_ms: u64::try_from(api.timeout_ms).unwrap_or(5000),
            customers: Vec::new(),
            with_customers: environment == Environment::Sandbox,
        };
        let report = suite::run(&target, &credentials, &self.clock).await;
        CheckReport::from_suite(environment, &report)
    }
}

impl PublicationCheck for ConformanceCheck {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a> {
        Box::pin(self.run(api, environment))
    }
}

impl CheckReport {
    /// A suite's run as a check's report: one finding per case; the latency is the runs' 95th percentile.
    pub fn from_suite(environment: Environment, report: &SuiteReport) -> CheckReport {
        let findings = report
            .cases
            .iter()
            .map(|c| Finding {
                id: c.case.id.to_string(),
                description: c.case.description.to_string(),
                outcome: c.outcome,
                evidence: c.evidence.clone(),
                severity: Some(c.case.severity),
            })
            .collect();
        CheckReport::new(
            environment.as_str(),
            &report.base_url,
            report.started_at.clone(),
            report.finished_at.clone(),
            findings,
            report.p95_ms,
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_report_passes_only_with_no_failure_and_something_passed() {
        let f = |o| Finding::new("x", "x", o, "");
        let report = |findings| {
            let at = "2026-11-25T12:00:00Z".to_string();
            CheckReport::new("sandbox", "u", at.clone(), at, findings, None)
        };
        assert!(report(vec![f(FindingOutcome::Passed)]).passed);
        assert!(!report(vec![]).passed);
        assert!(!report(vec![f(FindingOutcome::Skipped)]).passed);
        assert!(!report(vec![f(FindingOutcome::Passed), f(FindingOutcome::Failed)]).passed);
    }
}
