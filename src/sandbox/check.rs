//! The publication check as the sandbox runs it: the conformance suite ([`super::suite`]) against the API's base
//! URL, called as the platform calls banks — over HTTPS with the platform's client certificate, trusting the
//! platform's root CA and `gateway.provider_ca_file`, with no redirects, within the API's time-out, with headers
//! signed by the platform's active key, for the bank's BIN. Each case of the suite becomes a catalogue
//! [`Finding`]; the catalogue owns the step ([`PublicationCheck`]) and its report, this module implements it.

use std::sync::Arc;

use super::cases;
use super::suite::{self, Credentials, CredentialsError, SuiteReport, Target};
use crate::catalog::check::CheckFuture;
use crate::catalog::{Api, CheckReport, Environment, Finding, FindingOutcome, PublicationCheck};
use crate::clock::Clock;
use crate::config::Config;
use crate::egress::Guard;
use crate::pki::signing::Signer;
use crate::store::{Db, StoreError};

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
    guard: Guard,
    /// The credentials in use and when they were made (see [`CREDENTIALS_FOR`]).
    credentials: Arc<std::sync::Mutex<Option<(std::time::Instant, Credentials)>>>,
    /// The platform's: times the checks.
    clock: Clock,
}

impl ConformanceCheck {
    /// The check publication and the schedule use (the platform builds it once, `state.publication_check`): the
    /// conformance suite with the platform's credentials, signing for `issuer` (the OAuth issuer, the public URL).
    pub fn new(
        config: Arc<Config>,
        db: Db,
        signer: Signer,
        issuer: String,
        guard: Guard,
        clock: Clock,
    ) -> ConformanceCheck {
        ConformanceCheck { config, db, signer, issuer, guard, credentials: Arc::default(), clock }
    }

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
        self::report(environment, &report)
    }
}

impl PublicationCheck for ConformanceCheck {
    fn check<'a>(&'a self, api: &'a Api, environment: Environment) -> CheckFuture<'a> {
        Box::pin(self.run(api, environment))
    }

    fn text_key(&self, finding_id: &str) -> Option<&'static str> {
        text_key(finding_id)
    }

    fn last_check(
        &self,
        conn: &rusqlite::Connection,
        api_id: i64,
    ) -> rusqlite::Result<Option<crate::catalog::LastCheck>> {
        super::health::last_check(conn, api_id)
    }
}

/// The text key of the description of a finding this check makes (a case of the suite, or the set-up finding).
pub fn text_key(finding_id: &str) -> Option<&'static str> {
    if finding_id == SETUP {
        return Some("catalog.finding.setup");
    }
    cases::find(finding_id).map(|case| case.text_key)
}

/// A suite's run as a check's report: one finding per case; the latency is the runs' 95th percentile.
pub fn report(environment: Environment, report: &SuiteReport) -> CheckReport {
    let findings = report
        .cases
        .iter()
        .map(|c| Finding {
            id: c.case.id.to_string(),
            description: c.case.description.to_string(),
            outcome: c.outcome,
            evidence: c.evidence.clone(),
            severity: Some(c.case.severity),
            text_key: None,
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
