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

use rusqlite::OptionalExtension;
use serde::{Deserialize, Serialize};

use super::Api;
use crate::clock;
use crate::config::Config;
use crate::oauth::jwks::Signer;
use crate::sandbox::cases;
use crate::sandbox::suite::{self, Credentials, SuiteReport, Target};
use crate::store::{Db, StoreError};
use crate::web::AppState;

/// The future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = CheckReport> + Send + 'a>>;

/// Which of an API's two base URLs a check calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Environment {
    Sandbox,
    Production,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Environment::Sandbox => "sandbox",
            Environment::Production => "production",
        }
    }

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingOutcome {
    Passed,
    Failed,
    /// Not run, because an earlier finding made it pointless.
    Skipped,
}

impl FindingOutcome {
    pub fn text_key(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "catalog.finding.passed",
            FindingOutcome::Failed => "catalog.finding.failed",
            FindingOutcome::Skipped => "catalog.finding.skipped",
        }
    }

    pub fn badge(self) -> &'static str {
        match self {
            FindingOutcome::Passed => "status-active",
            FindingOutcome::Failed => "status-revoked",
            FindingOutcome::Skipped => "status-suspended",
        }
    }
}

/// How much a failed case matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The platform's credentials or the customers' data are not protected, or nothing works.
    Critical,
    /// A rule of the standard is broken: API users' code will trip on it.
    Major,
    /// A detail of the standard.
    Minor,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Major => "major",
            Severity::Minor => "minor",
        }
    }
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
            finished_at: clock::now_rfc3339(),
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
}

impl ConformanceCheck {
    /// The kept credentials, or new ones when there are none or they are older than [`CREDENTIALS_FOR`].
    fn credentials(&self) -> Result<Credentials, String> {
        let mut kept = self.credentials.lock().map_err(|_| "the credentials' lock is poisoned".to_string())?;
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
        let started_at = clock::now_rfc3339();
        let base = environment.base_url(api);
        let setup_failed = |evidence: &str| {
            let finding = Finding::new(SETUP, SETUP_TEXT, FindingOutcome::Failed, evidence);
            CheckReport::new(environment.as_str(), base, started_at.clone(), vec![finding], None)
        };
        let organisation = api.organisation_id;
        let bin = self
            .db
            .read(move |c| {
                c.query_row("SELECT bin FROM organisations WHERE id = ?1", [organisation], |r| r.get::<_, String>(0))
                    .optional()
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
        let report = suite::run(&target, &credentials).await;
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
        let mut out = CheckReport::new(
            environment.as_str(),
            &report.base_url,
            report.started_at.clone(),
            findings,
            report.p95_ms,
        );
        out.finished_at = report.finished_at.clone();
        out
    }
}

/// At most `max` characters of `s`, without control characters.
pub fn excerpt(s: &str, max: usize) -> String {
    let clean: String = s.chars().filter(|c| !c.is_control()).take(max + 1).collect();
    if clean.chars().count() > max { format!("{}…", clean.chars().take(max).collect::<String>()) } else { clean }
}

/// Whether `body` is an OBIE error body; `Ok` with its `Code` and `ErrorCode`s, `Err` with what is wrong.
pub fn error_shape(body: &[u8]) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| "the body is not JSON".to_string())?;
    let text = |key: &str| value.get(key).and_then(|v| v.as_str());
    for key in ["Code", "Id", "Message"] {
        if text(key).is_none_or(str::is_empty) {
            return Err(format!("no {key} (a non-empty string)"));
        }
    }
    let errors = value
        .get("Errors")
        .and_then(|v| v.as_array())
        .filter(|a| !a.is_empty())
        .ok_or_else(|| "no Errors (a non-empty array)".to_string())?;
    let mut codes = Vec::new();
    for (i, error) in errors.iter().enumerate() {
        match error.get("ErrorCode").and_then(|v| v.as_str()).filter(|s| !s.is_empty()) {
            Some(code) => codes.push(excerpt(code, 60)),
            None => return Err(format!("no Errors[{i}].ErrorCode")),
        }
        if i >= 4 {
            break;
        }
    }
    Ok(format!("Code \"{}\", ErrorCode {}", excerpt(text("Code").unwrap_or_default(), 40), codes.join(", ")))
}

/// The rustls error in `error`, looking through I/O errors wrapped in I/O errors (as the HTTP client wraps them).
fn tls_error<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = error.downcast_ref::<std::io::Error>()?.get_ref()?;
    tls_error(inner)
}

/// [`describe`] for a request through the egress guard: a refused address is named as such, without the address
/// (the provider is told its URL is not reachable from the platform; the operator's log has the detail).
pub fn describe_send(error: &crate::egress::SendError, timeout_ms: i64) -> String {
    if let Some(refused) = error.refusal() {
        if !refused.is_refusal() {
            return "connection failed: the host name does not resolve".into();
        }
        tracing::warn!(%refused, "a check's call was refused by the egress guard");
        return "connection failed: the address is not one the platform may call".into();
    }
    match error {
        crate::egress::SendError::Http(error) => describe(error, timeout_ms),
        crate::egress::SendError::Refused(refused) => refused.to_string(),
    }
}

/// A transport failure in a few words: time-out, TLS (rustls' own description), connection (the I/O error kind).
pub fn describe(error: &reqwest::Error, timeout_ms: i64) -> String {
    if error.is_timeout() {
        return format!("no answer within the time-out of {timeout_ms} ms");
    }
    let mut io_kind = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(current) = source {
        if let Some(tls) = tls_error(current) {
            return format!("TLS: {tls}");
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            io_kind.get_or_insert(io.kind());
        }
        source = current.source();
    }
    match (error.is_connect(), io_kind) {
        (true, Some(kind)) => format!("connection failed: {kind}"),
        (true, None) => "connection failed".into(),
        _ if error.is_redirect() => "redirects are not followed".into(),
        _ if error.is_builder() => "the sandbox URL cannot be used".into(),
        (false, Some(kind)) => format!("request failed: {kind}"),
        (false, None) => "request failed".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn error_bodies_are_recognised_and_excerpted() {
        let good = br#"{"Code":"401 Unauthorized","Id":"r1","Message":"no","Errors":[{"ErrorCode":"UK.OBIE.Header.Missing","Message":"m"}]}"#;
        assert_eq!(error_shape(good).unwrap(), "Code \"401 Unauthorized\", ErrorCode UK.OBIE.Header.Missing");
        assert_eq!(error_shape(b"<html>").unwrap_err(), "the body is not JSON");
        assert_eq!(
            error_shape(br#"{"Code":"x","Id":"1","Message":"m","Errors":[]}"#).unwrap_err(),
            "no Errors (a non-empty array)"
        );
        assert_eq!(
            error_shape(br#"{"Code":"x","Id":"1","Message":"m","Errors":[{}]}"#).unwrap_err(),
            "no Errors[0].ErrorCode"
        );
        assert_eq!(error_shape(br#"{"error":"unauthorized"}"#).unwrap_err(), "no Code (a non-empty string)");
    }

    #[test]
    fn a_report_passes_only_with_no_failure_and_something_passed() {
        let f = |o| Finding::new("x", "x", o, "");
        let at = || clock::now_rfc3339();
        assert!(CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Passed)], None).passed);
        assert!(!CheckReport::new("sandbox", "u", at(), vec![], None).passed);
        assert!(!CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Skipped)], None).passed);
        assert!(
            !CheckReport::new("sandbox", "u", at(), vec![f(FindingOutcome::Passed), f(FindingOutcome::Failed)], None)
                .passed
        );
    }

    #[test]
    fn excerpts_are_short_and_clean() {
        assert_eq!(excerpt("a\nb", 10), "ab");
        assert_eq!(excerpt("abcdef", 3), "abc…");
    }
}
